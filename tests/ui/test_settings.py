"""The settings dialog: keys through the real keyring API, Test connection, persistence.

The OS edge is an in-memory ``keyring`` backend set with ``keyring.set_keyring`` (and the
``fail`` backend for "no keyring"); Parley's own ``KeyringSecretStore`` talks to it through
the real keyring API. Nothing of Parley is patched.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from keyring.backends import fail
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QLineEdit

from parley.core.secrets import KeyringSecretStore, Secrets
from parley.core.settings import load_settings
from parley.ui.theme import is_dark
from tests.fakes.keyring_backend import MemoryKeyring, using_keyring
from tests.fakes.script import HTTPError
from tests.fakes.server import FakeLLMServer
from tests.ui.harness import (
    WindowHarness,
    chat_requests,
    local_settings,
    openai_settings,
)


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    """Install the in-memory keyring (the test's OS edge); restore the previous one after."""
    ring = MemoryKeyring()
    with using_keyring(ring):
        yield ring


@pytest.fixture
def no_keyring() -> Iterator[None]:
    """The headless-machine case: keyring's fail backend."""
    with using_keyring(fail.Keyring()):
        yield


def _files_containing(root: Path, secret: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


KEY = "sk-test-abcdef0123456789"


async def test_key_round_trip_through_the_keyring(qtbot, memory_keyring, parley_home) -> None:
    with FakeLLMServer() as srv:
        secrets = Secrets(KeyringSecretStore(), environ={})
        async with WindowHarness(
            qtbot, server=srv, settings=openai_settings(srv), secrets=secrets
        ) as h:
            w = h.w
            assert "OpenAI" not in w.picker.headers()  # no key yet
            dialog = w.open_settings("openai")
            assert dialog is not None and dialog.isVisible() and not dialog.isModal()
            page = dialog.pages["openai"]
            assert page.keyring_warning.isHidden()
            assert page.source_label.text().startswith("No key set.")
            assert page.key_edit.echoMode() == QLineEdit.EchoMode.Password
            QTest.keyClicks(page.key_edit, KEY)
            QTest.mouseClick(page.save_key_button, Qt.MouseButton.LeftButton)
            assert memory_keyring.data[("parley", "openai")] == KEY
            assert page.source_label.text().startswith("Stored in OS keyring")
            assert "sk-…6789" in page.source_label.text()
            page.reveal_button.click()
            assert page.key_edit.echoMode() == QLineEdit.EchoMode.Normal
            page.reveal_button.click()
            assert page.key_edit.echoMode() == QLineEdit.EchoMode.Password
            await h.until(lambda: "OpenAI" in w.picker.headers(), what="picker refreshed")
            dialog.reject()

            # reopened: the stored key is there, masked
            dialog = w.open_settings("openai")
            assert dialog is not None
            page = dialog.pages["openai"]
            assert page.key_text() == KEY
            assert page.key_edit.echoMode() == QLineEdit.EchoMode.Password
            dialog.reject()

            # the key reaches the provider (the real SDK sends it as a bearer token)
            w.picker.set_current("openai", "gpt-4o-mini")
            await h.send_and_wait("hello")
            assert chat_requests(srv)[-1].headers["authorization"] == f"Bearer {KEY}"

            # never written to a file
            assert _files_containing(parley_home, KEY) == []

            # removed again
            dialog = w.open_settings("openai")
            assert dialog is not None
            dialog.pages["openai"].clear_key_button.click()
            assert ("parley", "openai") not in memory_keyring.data
            assert dialog.pages["openai"].source_label.text().startswith("No key set.")
            dialog.reject()


async def test_no_keyring_offers_a_session_only_key(qtbot, no_keyring, parley_home) -> None:
    with FakeLLMServer() as srv:
        secrets = Secrets(KeyringSecretStore(), environ={})
        async with WindowHarness(
            qtbot, server=srv, settings=openai_settings(srv), secrets=secrets
        ) as h:
            dialog = h.w.open_settings("anthropic")
            assert dialog is not None
            page = dialog.pages["anthropic"]
            assert page.keyring_warning.isVisible()
            assert "No OS keyring is available" in page.keyring_warning.text()
            assert page.session_key_button.isVisible()
            QTest.keyClicks(page.key_edit, KEY)
            assert page.save_key(session_only=False) is False
            assert "was not stored" in page.keyring_warning.text()
            assert secrets.resolve("anthropic") is None
            QTest.mouseClick(page.session_key_button, Qt.MouseButton.LeftButton)
            resolved = secrets.resolve("anthropic")
            assert resolved is not None and resolved.source == "session"
            assert page.source_label.text().startswith("Kept for this session only")
            await h.until(lambda: "Anthropic" in h.w.picker.headers())
            dialog.reject()
            assert _files_containing(parley_home, KEY) == []


async def test_ok_keeps_the_dialog_open_when_a_key_cannot_be_saved(qtbot, no_keyring) -> None:
    with FakeLLMServer() as srv:
        secrets = Secrets(KeyringSecretStore(), environ={})
        async with WindowHarness(qtbot, server=srv, secrets=secrets) as h:
            dialog = h.w.open_settings()
            assert dialog is not None
            page = dialog.pages["openai"]
            QTest.keyClicks(page.key_edit, KEY)
            dialog.temperature.setValue(0.7)
            dialog.buttons.accepted.emit()  # OK
            assert dialog.isVisible()
            assert dialog.error_label.isVisible()
            assert "OpenAI key was not saved" in dialog.error_label.text()
            assert page.key_text() == KEY  # nothing typed is lost
            assert h.s.settings.current.temperature is None
            dialog.reject()


async def test_test_connection_lists_models_with_typed_values(qtbot) -> None:
    with FakeLLMServer() as srv:
        async with WindowHarness(qtbot, server=srv, settings=openai_settings(srv)) as h:
            dialog = h.w.open_settings("openai-compatible")
            assert dialog is not None
            page = dialog.pages["openai-compatible"]
            assert page.base_url_edit.text() == ""  # not configured in these settings
            page.base_url_edit.setText(srv.openai_base_url)
            QTest.mouseClick(page.test_button, Qt.MouseButton.LeftButton)
            await h.until(lambda: page.test_result.text() != "Testing…", what="test result")
            assert page.test_result.text() == (
                "Connected: 3 models available (fake-model, gpt-4o-mini, claude-haiku-4-5)."
            )
            assert page.test_result.objectName() == "okLine"
            # nothing was saved by testing
            assert h.s.providers.overrides == {}
            assert h.s.settings.current.provider("openai-compatible").base_url is None

            # a rejected key says so, on the page that was tested
            srv.models_error = HTTPError(401)
            openai_page = dialog.pages["openai"]
            QTest.keyClicks(openai_page.key_edit, "sk-wrong-key-123456")
            openai_page.start_test()
            await h.until(lambda: openai_page.test_result.text() != "Testing…")
            assert openai_page.test_result.objectName() == "errorLine"
            assert "key" in openai_page.test_result.text().lower()
            assert [r.headers["authorization"] for r in srv.requests if r.method == "GET"][-1] == (
                "Bearer sk-wrong-key-123456"
            )
            assert h.s.secrets.resolve("openai") is None
            dialog.reject()


async def test_apply_persists_and_takes_effect(qtbot) -> None:
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    with FakeLLMServer() as srv:
        async with WindowHarness(qtbot, server=srv, settings=local_settings(srv)) as h:
            await h.send_and_wait("first question")
            cid = h.w.conversation_id
            dialog = h.w.open_settings()
            assert dialog is not None
            dialog.temperature.setValue(0.3)
            dialog.top_p.setValue(0.9)
            dialog.max_tokens.setValue(512)
            dialog.system_prompt.setPlainText("Be brief.")
            dialog.chat_prompt.setPlainText("Answer like a pirate.")
            dialog.fallback_model.setCurrentText("backup-model")
            dialog.theme.setCurrentIndex(dialog.theme.findData("dark"))
            page = dialog.pages["openai-compatible"]
            page.model_combo.setCurrentText("fake-model-2")
            QTest.mouseClick(
                dialog.buttons.button(dialog.buttons.StandardButton.Apply),
                Qt.MouseButton.LeftButton,
            )
            assert not dialog.error_label.isVisible()
            saved = load_settings(h.s.paths.settings_file)
            assert saved.temperature == 0.3
            assert saved.top_p == 0.9
            assert saved.max_output_tokens == 512
            assert saved.system_prompt == "Be brief."
            assert saved.fallback_model == "backup-model"
            assert saved.theme == "dark"
            assert saved.provider("openai-compatible").default_model == "fake-model-2"
            assert saved.provider("openai-compatible").base_url == srv.openai_base_url
            await h.until(
                lambda: h.s.conversations.get(cid).system_prompt == "Answer like a pirate."
            )
            assert is_dark(app.palette())
            dialog.accept()

            await h.send_and_wait("second question")
            body = chat_requests(srv)[-1].json
            assert body["temperature"] == 0.3
            assert body["top_p"] == 0.9
            assert body["messages"][0] == {"role": "system", "content": "Answer like a pirate."}

            # back to following the system
            dialog = h.w.open_settings()
            assert dialog is not None
            dialog.theme.setCurrentIndex(dialog.theme.findData("system"))
            dialog.temperature.setValue(dialog.temperature.minimum())  # "Provider default"
            assert dialog.apply()
            assert load_settings(h.s.paths.settings_file).temperature is None
            assert not is_dark(app.palette())
            dialog.reject()


# ---- issue 14, item 2


async def test_test_connection_fills_the_default_model_list(qtbot) -> None:
    with FakeLLMServer() as srv:
        srv.models = ["qwen2.5:7b", "llama3.2:3b"]
        async with WindowHarness(qtbot, server=srv, settings=openai_settings(srv)) as h:
            dialog = h.w.open_settings("openai-compatible")
            assert dialog is not None
            page = dialog.pages["openai-compatible"]
            page.base_url_edit.setText(srv.openai_base_url)
            assert page.model_combo.findText("qwen2.5:7b") < 0
            QTest.mouseClick(page.test_button, Qt.MouseButton.LeftButton)
            await h.until(lambda: page.test_result.objectName() == "okLine", what="the test")
            listed = [page.model_combo.itemText(i) for i in range(page.model_combo.count())]
            assert listed == ["", "qwen2.5:7b", "llama3.2:3b"]  # the server's own list only
            assert page.model_combo.currentText() == "qwen2.5:7b"  # nothing typed: the first
            # the Answers tab offers them for new chats of that provider too
            dialog.default_provider.setCurrentIndex(
                dialog.default_provider.findData("openai-compatible")
            )
            assert dialog.default_model.findText("llama3.2:3b") >= 0
            assert dialog.apply()
            saved = load_settings(h.s.paths.settings_file)
            assert saved.provider("openai-compatible").default_model == "qwen2.5:7b"
            dialog.reject()


async def test_no_keyring_warning_for_a_provider_that_needs_no_key(qtbot, no_keyring) -> None:
    with FakeLLMServer() as srv:
        secrets = Secrets(KeyringSecretStore(), environ={})
        async with WindowHarness(qtbot, server=srv, secrets=secrets) as h:
            dialog = h.w.open_settings("openai-compatible")
            assert dialog is not None
            local = dialog.pages["openai-compatible"]
            assert local.keyring_warning.isHidden()
            assert local.session_key_button.isHidden()
            dialog.show_provider("openai")
            assert dialog.pages["openai"].keyring_warning.isVisible()
            dialog.reject()
