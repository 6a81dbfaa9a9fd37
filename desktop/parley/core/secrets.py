"""API keys: only in the OS keyring (service ``parley``), never in a file, setting or log.

Lookup order (llm's ``get_key``): an explicit value, then the keyring, then the provider's
environment variable. With no usable keyring, saving a key fails with a clear error naming
what to install; a person may opt in to a session-only key kept in memory. There is never
a silent plaintext fallback (keyrings.alt's file backend is refused).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from parley.core.errors import KeyringUnavailable

SERVICE = "parley"
"""Keyring service name; one entry per provider, the provider id as user name."""

log = logging.getLogger(__name__)

KeySource = Literal["explicit", "keyring", "session", "environment"]


class SecretStore(Protocol):
    """Where keys are kept."""

    def get(self, name: str) -> str | None:
        """The secret ``name``, or None."""
        ...

    def set(self, name: str, value: str) -> None:
        """Store ``value`` as ``name``."""
        ...

    def delete(self, name: str) -> bool:
        """Remove ``name``; return whether something was removed."""
        ...

    def describe(self) -> str:
        """Where secrets go, for people (e.g. "Secret Service keyring")."""
        ...


class MemorySecretStore:
    """Keys held in this process only: tests, and the opt-in session-only key."""

    def __init__(self) -> None:
        self._data: dict[str, str] = {}

    def get(self, name: str) -> str | None:
        """The secret ``name``, or None."""
        return self._data.get(name)

    def set(self, name: str, value: str) -> None:
        """Keep ``value`` until the process ends."""
        self._data[name] = value

    def delete(self, name: str) -> bool:
        """Forget ``name``."""
        return self._data.pop(name, None) is not None

    def describe(self) -> str:
        """Human description."""
        return "this session only (memory)"


_INSECURE_BACKENDS = ("keyrings.alt", "fail.Keyring", "null.Keyring", "chainer.ChainerBackend")


class KeyringSecretStore:
    """The OS keyring through the ``keyring`` package."""

    def __init__(self, service: str = SERVICE) -> None:
        self.service = service

    def _backend(self):  # type: ignore[no-untyped-def]
        import keyring
        from keyring.backends import chainer

        backend = keyring.get_keyring()
        # The chainer wraps the real backends; judge what it would actually use.
        backends = (
            list(backend.backends) if isinstance(backend, chainer.ChainerBackend) else [backend]
        )
        usable = [
            b
            for b in backends
            if not any(
                f"{type(b).__module__}.{type(b).__name__}".find(bad) >= 0
                for bad in _INSECURE_BACKENDS
            )
        ]
        if not usable or getattr(backend, "priority", 1) <= 0:
            raise KeyringUnavailable()
        return backend

    def available(self) -> bool:
        """Whether a secure keyring backend is usable."""
        try:
            self._backend()
        except KeyringUnavailable:
            return False
        return True

    def get(self, name: str) -> str | None:
        """The key for ``name``; None if absent or no keyring."""
        import keyring.errors

        try:
            return self._backend().get_password(self.service, name)  # type: ignore[no-any-return]
        except KeyringUnavailable:
            return None
        except keyring.errors.KeyringError as exc:
            log.warning("keyring lookup failed: %s", type(exc).__name__)
            return None

    def set(self, name: str, value: str) -> None:
        """Store a key.

        Raises:
            KeyringUnavailable: no usable keyring (nothing is written anywhere).
        """
        import keyring.errors

        backend = self._backend()
        try:
            backend.set_password(self.service, name, value)
        except keyring.errors.KeyringError as exc:
            # Never include the exception text: some backends echo the value.
            raise KeyringUnavailable(
                f"The OS keyring refused to store the key ({type(exc).__name__}). "
                "Is it locked? Unlock it and try again."
            ) from None

    def delete(self, name: str) -> bool:
        """Remove a key."""
        import keyring.errors

        backend = self._backend()
        try:
            backend.delete_password(self.service, name)
        except keyring.errors.PasswordDeleteError:
            return False
        return True

    def describe(self) -> str:
        """Name of the backend in use."""
        try:
            b = self._backend()
        except KeyringUnavailable:
            return "no keyring available"
        return f"OS keyring ({getattr(b, 'name', type(b).__name__)})"


@dataclass(frozen=True)
class ResolvedKey:
    """A key and where it came from (the key itself is never printed or logged)."""

    value: str
    source: KeySource

    def __repr__(self) -> str:
        return f"ResolvedKey(source={self.source!r}, value=<hidden>)"


class Secrets:
    """Key lookup across the stores, in the documented order."""

    def __init__(
        self,
        store: SecretStore,
        *,
        session: MemorySecretStore | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.store = store
        self.session = session or MemorySecretStore()
        self._environ = environ

    @property
    def environ(self) -> Mapping[str, str]:
        """Environment used for ``*_API_KEY`` lookups."""
        return os.environ if self._environ is None else self._environ

    def resolve(
        self, provider: str, *, explicit: str | None = None, env_var: str | None = None
    ) -> ResolvedKey | None:
        """Find the key for ``provider``: explicit > keyring > session > environment."""
        if explicit:
            return ResolvedKey(explicit, "explicit")
        value = self.store.get(provider)
        if value:
            return ResolvedKey(value, "keyring")
        value = self.session.get(provider)
        if value:
            return ResolvedKey(value, "session")
        if env_var:
            value = self.environ.get(env_var)
            if value:
                return ResolvedKey(value, "environment")
        return None

    def save(self, provider: str, value: str, *, session_only: bool = False) -> KeySource:
        """Store a key in the keyring (or, when the person opted in, for this session only).

        Raises:
            KeyringUnavailable: no keyring and no opt-in.
        """
        value = value.strip()
        if not value:
            raise ValueError("empty key")
        if session_only:
            self.session.set(provider, value)
            return "session"
        self.store.set(provider, value)
        return "keyring"

    def clear(self, provider: str) -> bool:
        """Remove the key from the keyring and the session store."""
        removed = self.session.delete(provider)
        try:
            removed = self.store.delete(provider) or removed
        except KeyringUnavailable:
            pass
        return removed
