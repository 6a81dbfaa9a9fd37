"""Which adapter speaks which vendor protocol: a registry filled by ``register()`` calls.

A provider in ``models.toml`` names its wire protocol (``protocol = "openai"``). The
:class:`ProviderRegistry` maps each protocol to the adapter class that speaks it; the
composition root (``core/services.py``) makes one with :func:`builtin_registry` and hands it
to the :class:`~parley.core.services.ProviderFactory` and to the stream worker's child
process (:mod:`parley.core.providers.worker`), which builds the same adapters from it.

Adding a vendor protocol is one adapter module (``providers/<vendor>.py``, taking the keyword
arguments of :class:`AdapterSpec`) and one ``register()`` line in :func:`builtin_registry`;
a plugin would call ``register()`` on the same instance (STYLE.md §5, after llm's
``register_models`` hook). Nothing else dispatches on the protocol.

An adapter may be registered as a class (or any factory callable) or as an import path
``"package.module:Name"``, resolved on first use: the built-in adapters are registered by
path, so building the registry imports no adapter module (start-up stays cheap; the SDKs
themselves are imported by the adapters on first use anyway). The registry is picklable
(paths, or module-level classes), so it travels to the worker process as it is.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from parley.core.providers.base import Provider, Timeouts

AdapterFactory = Callable[..., Provider]
"""Builds an adapter from the keyword arguments ``name``, ``label``, ``api_key``,
``base_url`` and ``timeouts`` (an adapter class is one)."""


@dataclass(frozen=True)
class AdapterSpec:
    """What is needed to build an adapter: here, and again in the stream worker process."""

    protocol: str
    name: str
    label: str
    base_url: str | None
    timeouts: Timeouts
    api_key: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class _Entry:
    adapter: AdapterFactory | str
    sdk: str | None


class ProviderRegistry:
    """Protocol name -> the adapter that speaks it (an instance; no global registry)."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    def register(
        self, protocol: str, adapter: AdapterFactory | str, *, sdk: str | None = None
    ) -> None:
        """Make ``adapter`` the one that speaks ``protocol``.

        Args:
            protocol: The name ``models.toml`` uses (``protocol = "..."``).
            adapter: The adapter class (or factory), or its import path ``"module:Name"``.
            sdk: The vendor SDK's module, imported ahead by the stream worker so that its
                first answer does not wait for the import.

        Raises:
            ValueError: ``protocol`` is taken already, or the path has no ``:``.
        """
        if protocol in self._entries:
            raise ValueError(f"protocol {protocol!r} is registered already")
        if isinstance(adapter, str) and ":" not in adapter:
            raise ValueError(f"adapter path {adapter!r} must look like 'package.module:Name'")
        self._entries[protocol] = _Entry(adapter, sdk)

    def protocols(self) -> tuple[str, ...]:
        """The protocols registered, in the order they were."""
        return tuple(self._entries)

    def sdk_modules(self) -> tuple[str, ...]:
        """The SDK modules the registered adapters use."""
        return tuple(dict.fromkeys(e.sdk for e in self._entries.values() if e.sdk))

    def adapter(self, protocol: str) -> AdapterFactory:
        """The adapter for ``protocol`` (an import path is imported now).

        Raises:
            ValueError: no adapter speaks ``protocol``.
        """
        entry = self._entries.get(protocol)
        if entry is None:
            raise ValueError(f"unknown protocol {protocol!r}")
        if not isinstance(entry.adapter, str):
            return entry.adapter
        module, _, name = entry.adapter.partition(":")
        return cast(AdapterFactory, getattr(importlib.import_module(module), name))

    def build(self, spec: AdapterSpec) -> Provider:
        """The adapter for ``spec`` (its module imports the SDK on first use).

        Raises:
            ValueError: no adapter speaks ``spec.protocol``.
        """
        adapter: Any = self.adapter(spec.protocol)
        return cast(
            Provider,
            adapter(
                name=spec.name,
                label=spec.label,
                api_key=spec.api_key,
                base_url=spec.base_url,
                timeouts=spec.timeouts,
            ),
        )


def builtin_registry() -> ProviderRegistry:
    """Parley's own adapters, registered the way a plugin registers its own."""
    registry = ProviderRegistry()
    registry.register("openai", "parley.core.providers.openai:OpenAIProvider", sdk="openai")
    registry.register(
        "anthropic", "parley.core.providers.anthropic:AnthropicProvider", sdk="anthropic"
    )
    return registry
