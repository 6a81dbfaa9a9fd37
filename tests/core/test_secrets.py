"""Keys live in the keyring only; lookup order; no keyring means a clear error, not a file."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from keyring.backends import fail

from parley.core.errors import KeyringUnavailable
from parley.core.secrets import KeyringSecretStore, MemorySecretStore, Secrets
from tests.fakes.keyring_backend import MemoryKeyring, using_keyring


def test_lookup_order_explicit_keyring_session_environment() -> None:
    store = MemorySecretStore()
    s = Secrets(store, environ={"OPENAI_API_KEY": "from-env"})
    assert s.resolve("openai", env_var="OPENAI_API_KEY").source == "environment"  # type: ignore[union-attr]
    s.save("openai", "from-session", session_only=True)
    assert s.resolve("openai", env_var="OPENAI_API_KEY").value == "from-session"  # type: ignore[union-attr]
    store.set("openai", "from-keyring")
    got = s.resolve("openai", env_var="OPENAI_API_KEY")
    assert got is not None and (got.value, got.source) == ("from-keyring", "keyring")
    got = s.resolve("openai", explicit="explicit", env_var="OPENAI_API_KEY")
    assert got is not None and got.source == "explicit"
    assert "from-keyring" not in repr(s.resolve("openai"))
    assert s.resolve("anthropic", env_var="ANTHROPIC_API_KEY") is None


def test_keyring_store_round_trip() -> None:
    with using_keyring(MemoryKeyring()) as kr:
        store = KeyringSecretStore()
        assert store.available()
        store.set("anthropic", "sk-ant-123")
        assert kr.data[("parley", "anthropic")] == "sk-ant-123"  # type: ignore[attr-defined]
        assert store.get("anthropic") == "sk-ant-123"
        assert store.delete("anthropic") is True
        assert store.delete("anthropic") is False
        assert store.get("anthropic") is None


def test_no_keyring_is_a_clear_error_and_nothing_is_written(parley_home: Path) -> None:
    with using_keyring(fail.Keyring()):
        store = KeyringSecretStore()
        assert not store.available()
        with pytest.raises(KeyringUnavailable, match="gnome-keyring") as info:
            Secrets(store).save("openai", "sk-canary-0001")
        assert "sk-canary" not in info.value.user_message
        assert store.get("openai") is None
        # opt-in session-only key works without a keyring
        s = Secrets(store)
        assert s.save("openai", "sk-canary-0001", session_only=True) == "session"
        assert s.resolve("openai").source == "session"  # type: ignore[union-attr]
    for f in parley_home.rglob("*"):
        if f.is_file():
            assert b"sk-canary" not in f.read_bytes()


async def test_canary_key_never_reaches_disk_or_logs(
    fake_llm: Any, parley_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A full turn with a rejected key: the key is in no file, log line or error text."""
    from parley.core.paths import default_paths
    from parley.core.services import build_services
    from parley.core.settings import ProviderSettings, Settings
    from tests.fakes.script import HTTPError, Text

    canary = "sk-CANARY-7f3a9c2e5b1d4f6a8c0e"
    caplog.set_level(logging.DEBUG)
    settings = Settings(providers={"openai": ProviderSettings(base_url=fake_llm.openai_base_url)})
    secrets = Secrets(MemorySecretStore())
    secrets.store.set("openai", canary)
    services = build_services(default_paths(), settings, secrets)
    fake_llm.enqueue(Text("hello"), HTTPError(401, message=f"Incorrect API key provided: {canary}"))
    texts = []
    for _ in range(2):
        async for ev in services.chat.send("hi", services.turn_options(provider="openai")):
            texts.append(repr(ev))
    await services.aclose()
    assert fake_llm.requests[0].headers["authorization"] == f"Bearer {canary}"
    assert not any(canary in t for t in texts)
    assert canary not in caplog.text
    for f in parley_home.rglob("*"):
        if f.is_file():
            assert canary.encode() not in f.read_bytes(), f
