"""Providers register themselves: a new protocol is one adapter module and one register() line.

The made-up ``echo`` protocol (``echo_adapter.py``, no network) goes through the real
composition root, the chat session and the real stream worker process.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from parley.core.chat import TurnFinished
from parley.core.errors import ConfigError
from parley.core.paths import Paths, default_paths
from parley.core.providers.base import Timeouts
from parley.core.providers.registry import AdapterSpec, ProviderRegistry, builtin_registry
from parley.core.secrets import MemorySecretStore, Secrets
from parley.core.services import Services, build_services
from parley.core.settings import Settings
from tests.core.providers.echo_adapter import EchoProvider

ECHO = "tests.core.providers.echo_adapter:EchoProvider"


def _echo_vendor(paths: Paths, protocol: str = "echo") -> None:
    """A provider of that protocol in the user's models.toml (as a person would add one)."""
    paths.ensure()
    paths.user_models_file.write_text(
        "[providers.echo-vendor]\n"
        'label = "Echo Vendor"\n'
        f'protocol = "{protocol}"\n'
        "key_optional = true\n"
        'default_model = "echo-1"\n'
    )


def _services(registry: ProviderRegistry | None, *, stream_worker: bool = False) -> Services:
    paths = default_paths()
    _echo_vendor(paths)
    return build_services(
        paths,
        Settings(default_provider="echo-vendor"),
        Secrets(MemorySecretStore(), environ={}),
        environ={},
        registry=registry,
        stream_worker=stream_worker,
    )


def _with_echo() -> ProviderRegistry:
    registry = builtin_registry()
    registry.register("echo", ECHO)  # the one line a new vendor protocol needs
    return registry


async def _answer(services: Services, question: str) -> TurnFinished:
    events = [ev async for ev in services.chat.send(question, services.turn_options())]
    finished = events[-1]
    assert isinstance(finished, TurnFinished)
    return finished


async def test_a_registered_protocol_answers_through_the_chat(parley_home: Path) -> None:
    services = _services(_with_echo())
    try:
        finished = await _answer(services, "hello")
    finally:
        await services.aclose()
    assert finished.status == "complete", finished.error
    assert finished.text == f"echo {os.getpid()}: hello"  # built and run in this process


async def test_the_stream_worker_builds_a_registered_protocol_itself(parley_home: Path) -> None:
    services = _services(_with_echo(), stream_worker=True)
    worker = services.providers.stream_worker
    assert worker is not None
    try:
        assert await worker.start()
        pid = worker.pid
        finished = await _answer(services, "through the worker")
    finally:
        await services.aclose()
    assert finished.status == "complete", finished.error
    match = re.fullmatch(r"echo (\d+): through the worker", finished.text)
    assert match is not None, finished.text
    assert int(match.group(1)) == pid != os.getpid()  # the child built the adapter
    assert worker.streams == 1


async def test_an_unregistered_protocol_is_one_clear_config_error(parley_home: Path) -> None:
    services = _services(None)  # the built-in registry: no "echo"
    try:
        with pytest.raises(ConfigError, match="Provider 'echo-vendor' has unknown protocol 'echo'"):
            services.providers.raw("echo-vendor")
    finally:
        await services.aclose()


def test_register_takes_a_class_or_a_path_once() -> None:
    registry = ProviderRegistry()
    registry.register("echo", EchoProvider)
    registry.register("echo-by-path", ECHO, sdk="json")
    assert registry.protocols() == ("echo", "echo-by-path")
    assert registry.sdk_modules() == ("json",)
    spec = AdapterSpec("echo-by-path", "e", "E", None, Timeouts())
    built = registry.build(spec)
    assert isinstance(built, EchoProvider) and built.name == "e"
    with pytest.raises(ValueError, match="registered already"):
        registry.register("echo", EchoProvider)
    with pytest.raises(ValueError, match="module:Name"):
        registry.register("other", "no_colon_here")
    with pytest.raises(ValueError, match="unknown protocol"):
        registry.build(AdapterSpec("nope", "n", "N", None, Timeouts()))


def test_the_builtin_registry_imports_no_adapter_until_one_is_built() -> None:
    code = (
        "import sys\n"
        "from parley.core.providers.registry import builtin_registry\n"
        "r = builtin_registry()\n"
        "assert r.protocols() == ('openai', 'anthropic'), r.protocols()\n"
        "assert r.sdk_modules() == ('openai', 'anthropic')\n"
        "loaded = [m for m in sys.modules if m.startswith('parley.core.providers.')]\n"
        "assert sorted(loaded) == ['parley.core.providers.base', "
        "'parley.core.providers.registry'], loaded\n"
        "assert 'openai' not in sys.modules and 'anthropic' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_each_builtin_protocol_builds_its_adapter(fake_llm: Any) -> None:
    from parley.core.providers.anthropic import AnthropicProvider
    from parley.core.providers.openai import OpenAIProvider

    registry = builtin_registry()
    for protocol, cls in (("openai", OpenAIProvider), ("anthropic", AnthropicProvider)):
        spec = AdapterSpec(
            protocol, protocol, protocol.title(), fake_llm.openai_base_url, Timeouts()
        )
        assert type(registry.build(spec)) is cls
