"""Test set-up shared by every test.

- ``PARLEY_HOME`` points at a fresh temporary folder for each test (STYLE.md §8), so no test
  touches a real profile; ``PARLEY_ASSETS`` defaults to ``../shared/assets`` when present
  (seen through ``.cache/test-assets/`` with the int8 model added when it lacks one).
- Network guard: sockets may only connect to loopback (fake servers, ``chroma run``).
- Qt runs offscreen (tests/ui/conftest.py runs async UI tests on a qasync loop).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

pytest_plugins = ("pytester",)  # tests of the test set-up itself (tests/ui/test_conftest.py)

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QT_API", "pyside6")
# Chroma phones home unless told not to; the network is closed here anyway.
os.environ["ANONYMIZED_TELEMETRY"] = "False"

_REPO = Path(__file__).resolve().parents[1]
_SHARED_ASSETS = _REPO.parent / "shared" / "assets"
if "PARLEY_ASSETS" not in os.environ and _SHARED_ASSETS.is_dir():
    os.environ["PARLEY_ASSETS"] = str(_SHARED_ASSETS)
if os.environ.get("PARLEY_ASSETS"):
    # The int8 model is Parley's default; an assets folder without it (the shared one is
    # read-only) gets it the way `parley assets download` makes it, once per checkout.
    from tests.assets import with_int8_model

    os.environ["PARLEY_ASSETS"] = str(with_int8_model(Path(os.environ["PARLEY_ASSETS"]), _REPO))
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(Path(os.environ["PARLEY_ASSETS"]) / "tiktoken"))

# Keys from the developer's shell must never leak into tests.
for _var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_BASE_URL"):
    os.environ.pop(_var, None)


@pytest.fixture(autouse=True)
def parley_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own data and config folders."""
    home = tmp_path / "parley-home"
    home.mkdir()
    monkeypatch.setenv("PARLEY_HOME", str(home))
    return home


_real_connect = socket.socket.connect


def _guarded_connect(self: socket.socket, address: object) -> object:
    host = address[0] if isinstance(address, tuple) else None
    if host is not None and host not in ("127.0.0.1", "::1", "localhost", "0.0.0.0"):
        raise ConnectionRefusedError(f"tests may not reach the network ({host})")
    return _real_connect(self, address)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse connections that leave loopback (fixture-scoped, not a global flag)."""
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)


@pytest.fixture
def fake_llm():  # type: ignore[no-untyped-def]
    """A fake OpenAI + Anthropic server on 127.0.0.1 (the real SDKs talk to it)."""
    from tests.fakes.server import FakeLLMServer

    with FakeLLMServer() as srv:
        yield srv
