"""First start: the onboarding panel finds a (fake) local server, or takes a key.

The probe talks real HTTP to the fake server's real port; "nothing listening" is a port that
was just closed, and "not a model server" is a socket that answers garbage.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import keyring
import pytest
from keyring.backends import fail
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from parley.core.providers.local_servers import probe_local_servers
from parley.core.secrets import KeyringSecretStore, MemorySecretStore, Secrets
from parley.core.settings import Settings, load_settings
from parley.ui.main_window import MainWindow
from parley.ui.onboarding import needs_onboarding
from tests.fakes.server import FakeLLMServer
from tests.ui.harness import (
    WindowHarness,
    chat_requests,
)


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def garbage_server() -> Iterator[int]:
    """A TCP server that answers anything with non-HTTP bytes, then closes."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    srv.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            with conn:
                conn.sendall(b"\x00\x01not http at all\r\n\r\n")

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield srv.getsockname()[1]
    finally:
        stop.set()
        t.join(2)
        srv.close()


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A server that accepts and never answers (the probe must time out, not hang)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    try:
        yield srv.getsockname()[1]
    finally:
        srv.close()


def _silent_socket() -> socket.socket:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    return srv


async def test_probe_finds_the_server_and_skips_the_rest(garbage_server, silent_server) -> None:
    second_silent = _silent_socket()
    try:
        with FakeLLMServer() as srv:
            srv.models = ["llama3.2:3b", "qwen2.5:7b"]
            ports = {
                "Ollama": srv.port,
                "LM Studio": _closed_port(),
                "llama.cpp server": garbage_server,
                "vLLM": silent_server,
                "other": second_silent.getsockname()[1],
            }
            t0 = time.monotonic()
            found = await probe_local_servers(ports, timeout=1.0)
            took = time.monotonic() - t0
    finally:
        second_silent.close()
    assert [(s.name, s.base_url, s.models) for s in found] == [
        ("Ollama", f"http://127.0.0.1:{srv.port}/v1", ("llama3.2:3b", "qwen2.5:7b"))
    ]
    # Two servers never answer: one after the other would take 2 s; concurrently about 1 s.
    assert 0.9 < took < 1.8


async def test_first_start_finds_a_local_server_and_uses_it(qtbot, silent_server) -> None:
    with FakeLLMServer() as srv:
        srv.models = ["llama3.2:3b", "qwen2.5:7b"]
        ports = {"Ollama": srv.port, "LM Studio": _closed_port(), "vLLM": silent_server}
        async with WindowHarness(qtbot, server=srv, settings=Settings(), probe_ports=ports) as h:
            w = h.w
            panel = w.onboarding
            assert panel is not None and panel.isVisible()
            assert not w.composer.isEnabled()
            await h.until(lambda: panel.servers, what="probe result")
            assert panel.server_list.count() == 1
            assert panel.server_list.item(0).text() == (
                f"Ollama  ·  http://127.0.0.1:{srv.port}  ·  2 models"
            )
            assert "Found a model server" in panel.probe_status.text()
            panel.local_model_combo.setCurrentText("qwen2.5:7b")
            QTest.mouseClick(panel.use_server_button, Qt.MouseButton.LeftButton)
            assert not panel.isVisible()
            assert w.composer.isEnabled()
            saved = load_settings(h.s.paths.settings_file)
            assert saved.default_provider == "openai-compatible"
            assert saved.provider("openai-compatible").base_url == srv.openai_base_url
            assert saved.default_model == "qwen2.5:7b"
            assert saved.onboarded
            await h.until(lambda: w.picker.current() == ("openai-compatible", "qwen2.5:7b"))
            await h.send_and_wait("hello local model")
            assert chat_requests(srv)[-1].json["model"] == "qwen2.5:7b"
            assert h.texts()[-1] == ("assistant", "You said: hello local model")


async def test_nothing_found_says_so_and_scan_again_works(qtbot) -> None:
    closed = _closed_port()
    async with WindowHarness(qtbot, settings=Settings(), probe_ports={"Ollama": closed}) as h:
        panel = h.w.onboarding
        assert panel is not None
        await h.until(lambda: "No local model server answered" in panel.probe_status.text())
        assert panel.server_list.isHidden()
        assert not panel.use_server_button.isEnabled()
        with FakeLLMServer() as srv:
            panel.probe_ports = {"Ollama": srv.port}
            QTest.mouseClick(panel.rescan_button, Qt.MouseButton.LeftButton)
            await h.until(lambda: panel.servers, what="second scan")
            assert panel.use_server_button.isEnabled()


async def test_onboarding_key_path(qtbot) -> None:
    with FakeLLMServer() as srv:
        secrets = Secrets(MemorySecretStore(), environ={})
        async with WindowHarness(
            qtbot, server=srv, settings=Settings(), secrets=secrets, probe_ports={}
        ) as h:
            panel = h.w.onboarding
            assert panel is not None
            panel.provider_combo.setCurrentIndex(panel.provider_combo.findData("anthropic"))
            QTest.mouseClick(panel.save_key_button, Qt.MouseButton.LeftButton)
            assert "Paste a key first" in panel.key_status.text()
            QTest.keyClicks(panel.key_edit, "sk-ant-test-0123456789")
            QTest.keyClick(panel.key_edit, Qt.Key.Key_Return)
            assert secrets.resolve("anthropic").value == "sk-ant-test-0123456789"
            assert not panel.isVisible()
            assert h.s.settings.current.default_provider == "anthropic"
            assert h.s.settings.current.onboarded
            await h.until(lambda: "Anthropic" in h.w.picker.headers())
            assert h.w.picker.current() == ("anthropic", "claude-sonnet-4-6")


async def test_onboarding_without_keyring_offers_session_only(qtbot) -> None:
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        secrets = Secrets(KeyringSecretStore(), environ={})
        async with WindowHarness(qtbot, settings=Settings(), secrets=secrets) as h:
            panel = h.w.onboarding
            assert panel is not None
            QTest.keyClicks(panel.key_edit, "sk-test-0123456789")
            QTest.mouseClick(panel.save_key_button, Qt.MouseButton.LeftButton)
            assert "No OS keyring is available" in panel.key_status.text()
            assert panel.session_key_button.isVisible()
            assert panel.isVisible()
            assert panel.key_edit.text() == "sk-test-0123456789"  # not lost
            QTest.mouseClick(panel.session_key_button, Qt.MouseButton.LeftButton)
            assert secrets.resolve("openai").source == "session"
            assert not panel.isVisible()
    finally:
        keyring.set_keyring(previous)


async def test_skip_is_remembered(qtbot) -> None:
    async with WindowHarness(qtbot, settings=Settings()) as h:
        panel = h.w.onboarding
        assert panel is not None
        QTest.mouseClick(panel.skip_button, Qt.MouseButton.LeftButton)
        assert not panel.isVisible()
        assert h.s.settings.current.onboarded
        assert load_settings(h.s.paths.settings_file).onboarded
        assert "No model" in h.w.status.model_label.text()


def test_needs_onboarding_rules(tmp_path) -> None:
    from parley.core.settings import ProviderSettings, SettingsStore

    envs = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
    fresh = SettingsStore(tmp_path / "s.toml", Settings())
    assert needs_onboarding(Secrets(MemorySecretStore(), environ={}), fresh, envs)
    with_env = Secrets(MemorySecretStore(), environ={"ANTHROPIC_API_KEY": "sk-ant"})
    assert not needs_onboarding(with_env, fresh, envs)
    local = SettingsStore(
        tmp_path / "l.toml",
        Settings(
            providers={"openai-compatible": ProviderSettings(base_url="http://127.0.0.1:1/v1")}
        ),
    )
    assert not needs_onboarding(Secrets(MemorySecretStore(), environ={}), local, envs)
    done = SettingsStore(tmp_path / "d.toml", Settings(onboarded=True))
    assert not needs_onboarding(Secrets(MemorySecretStore(), environ={}), done, envs)


async def test_configured_user_sees_no_onboarding(qtbot) -> None:
    with FakeLLMServer() as srv:
        async with WindowHarness(qtbot, server=srv) as h:
            assert h.w.onboarding is None
            assert isinstance(h.w, MainWindow) and h.w.composer.isEnabled()


# ---- issue 14, item 2: local servers in two clicks


def test_the_scan_covers_the_usual_servers() -> None:
    from parley.core.providers.local_servers import DEFAULT_PROBE_PORTS

    assert DEFAULT_PROBE_PORTS == {
        "Ollama": 11434,
        "LM Studio": 1234,
        "llama.cpp server": 8080,
        "vLLM": 8000,
        "Jan": 1337,
    }


async def test_the_scan_lists_every_server_that_answered(qtbot) -> None:
    with FakeLLMServer() as ollama, FakeLLMServer() as jan:
        ollama.models = ["llama3.2:3b"]
        jan.models = ["mistral-7b", "phi-3"]
        ports = {"Ollama": ollama.port, "LM Studio": _closed_port(), "Jan": jan.port}
        async with WindowHarness(qtbot, settings=Settings(), probe_ports=ports) as h:
            panel = h.w.onboarding
            assert panel is not None
            await h.until(lambda: len(panel.servers) == 2, what="both servers")
            assert [panel.server_list.item(i).text() for i in range(2)] == [
                f"Ollama  ·  http://127.0.0.1:{ollama.port}  ·  1 model",
                f"Jan  ·  http://127.0.0.1:{jan.port}  ·  2 models",
            ]
            assert "Found 2 model servers" in panel.probe_status.text()
            # the first server and its first model are chosen: one click to use it
            assert panel.local_model_combo.currentText() == "llama3.2:3b"
            assert panel.use_server_button.isEnabled()


async def test_a_typed_address_is_asked_for_its_models_and_used(qtbot) -> None:
    closed = _closed_port()
    with FakeLLMServer() as srv:
        srv.models = ["qwen2.5:7b", "llama3.2:3b"]
        async with WindowHarness(qtbot, server=srv, settings=Settings(), probe_ports={}) as h:
            panel = h.w.onboarding
            assert panel is not None
            # a bad address and a silent one say why, in one line
            panel.address_edit.setText("ftp://example.org")
            QTest.mouseClick(panel.connect_button, Qt.MouseButton.LeftButton)
            assert "Only http:// and https://" in panel.probe_status.text()
            assert panel.probe_status.objectName() == "errorLine"
            panel.address_edit.setText(f"127.0.0.1:{closed}")
            QTest.mouseClick(panel.connect_button, Qt.MouseButton.LeftButton)
            await h.until(lambda: "No model server answered" in panel.probe_status.text())
            assert not panel.servers

            # the fake server's address, typed as a person would (no scheme, no /v1)
            panel.address_edit.setText(f"localhost:{srv.port}")
            QTest.keyClick(panel.address_edit, Qt.Key.Key_Return)
            await h.until(lambda: panel.servers, what="the typed server")
            assert panel.probe_status.objectName() == "okLine"
            assert [panel.local_model_combo.itemText(i) for i in range(2)] == [
                "qwen2.5:7b",
                "llama3.2:3b",
            ]
            QTest.mouseClick(panel.use_server_button, Qt.MouseButton.LeftButton)
            saved = load_settings(h.s.paths.settings_file)
            assert saved.provider("openai-compatible").base_url == (
                f"http://localhost:{srv.port}/v1"
            )
            assert saved.default_model == "qwen2.5:7b"
            await h.send_and_wait("hello typed server")
            assert chat_requests(srv)[-1].json["model"] == "qwen2.5:7b"


async def test_a_server_found_comes_first_with_its_button_in_view_at_800_px(qtbot) -> None:
    """Two clicks at 800×600 too: a found server's card moves up, "Use this server" in view."""
    with FakeLLMServer() as srv:
        srv.models = ["llama3.2:3b"]
        async with WindowHarness(
            qtbot, server=srv, settings=Settings(), probe_ports={"Ollama": srv.port}
        ) as h:
            w = h.w
            w.resize(800, 600)
            await h.until(lambda: w.width() == 800)
            panel = w.onboarding
            assert panel is not None
            await h.until(lambda: panel.servers, what="probe result")
            await h.until(lambda: panel.use_server_button.isEnabled())
            for _ in range(5):
                await asyncio.sleep(0.02)
            button = panel.use_server_button
            seen = button.visibleRegion().boundingRect()
            assert seen.size() == button.size(), "Use this server is scrolled out of view"
            assert panel.local_card.y() < panel.key_card.y()
            # the list is as tall as its one row: no empty box under it
            row = panel.server_list.sizeHintForRow(0)
            assert row <= panel.server_list.viewport().height() < 2 * row
            QTest.mouseClick(button, Qt.MouseButton.LeftButton)
            assert not panel.isVisible()
            await h.until(lambda: w.picker.current() == ("openai-compatible", "llama3.2:3b"))
