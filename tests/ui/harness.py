"""A real Parley window bound to real services that talk to a fake server on loopback.

Used by the window, settings, onboarding and drag-and-drop tests::

    async with WindowHarness(qtbot, server=srv) as h:
        h.type_and_send("hello")
        await h.until(lambda: not h.window.is_busy())

Nothing of Parley is faked: the SDK talks HTTP to :class:`tests.fakes.server.FakeLLMServer`,
SQLite and the settings file live under the test's ``PARLEY_HOME``. Keys live in a
:class:`~parley.core.secrets.MemorySecretStore` unless a test passes other ``secrets``.

Async tests on the qasync loop must not call ``qtbot.wait*`` (STACK-NOTES): :meth:`until`
polls with ``asyncio.sleep`` against a deadline instead.
"""

from __future__ import annotations

import asyncio
import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any

from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from parley.core.paths import default_paths
from parley.core.secrets import MemorySecretStore, Secrets
from parley.core.services import Services, build_services
from parley.core.settings import ProviderSettings, Settings
from parley.ui.app import bind_services
from parley.ui.errors import ErrorPresenter
from parley.ui.main_window import MainWindow
from parley.ui.tasks import TaskSet
from parley.ui.theme import apply_theme
from tests.fakes.server import FakeLLMServer


def local_settings(server: FakeLLMServer, **extra: Any) -> Settings:
    """Settings that use the fake server as the local OpenAI-compatible provider."""
    return Settings(
        default_provider="openai-compatible",
        providers={
            "openai-compatible": ProviderSettings(
                base_url=server.openai_base_url, default_model="fake-model"
            )
        },
        onboarded=True,
        **extra,
    )


def openai_settings(server: FakeLLMServer, model: str = "gpt-4o-mini", **extra: Any) -> Settings:
    """Settings that send OpenAI requests (a priced model) to the fake server."""
    return Settings(
        default_provider="openai",
        default_model=model,
        providers={"openai": ProviderSettings(base_url=server.openai_base_url)},
        onboarded=True,
        **extra,
    )


def drag_enter_event(pos: QPoint, mime: QMimeData) -> QDragEnterEvent:
    """A drag-enter event (PySide6 6.12 marks its only constructor deprecated; no other)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return QDragEnterEvent(
            pos,
            Qt.DropAction.CopyAction,
            mime,
            Qt.MouseButton.LeftButton,
            Qt.KeyboardModifier.NoModifier,
        )


def chat_requests(server: FakeLLMServer) -> list[Any]:
    """The chat requests the server received (model listings left out)."""
    return [r for r in server.requests if r.method == "POST" and "/chat/" in r.path]


async def until(cond: Callable[[], Any], timeout: float = 8.0, what: str = "") -> Any:
    """Poll ``cond`` on the running loop until it is truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or cond}")
        await asyncio.sleep(0.01)


class WindowHarness:
    """Build, show and bind a :class:`MainWindow`; shut it down cleanly on exit.

    Args:
        qtbot: pytest-qt's fixture (widgets are registered for cleanup).
        server: The fake server (used for the default settings).
        settings: Settings to start with (default: the fake server as local provider).
        secrets: Key storage (default: memory, empty).
        probe_ports: Ports onboarding probes (default: none, so no real port is touched).
        presenter: Error presenter, installed as the loop's exception handler (default: one
            that logs and records, no dialogs, and is not installed, so an exception escaping
            into the loop fails the test: ``tests/ui/conftest.py``).
        confirm_links: Ask before opening links (tests that enable it must never accept).
    """

    def __init__(
        self,
        qtbot: Any,
        *,
        server: FakeLLMServer | None = None,
        settings: Settings | None = None,
        secrets: Secrets | None = None,
        probe_ports: Mapping[str, int] | None = None,
        presenter: ErrorPresenter | None = None,
        confirm_links: bool = False,
    ) -> None:
        self.qtbot = qtbot
        self.confirm_links = confirm_links
        self.server = server
        if settings is None:
            settings = local_settings(server) if server is not None else Settings(onboarded=True)
        self.settings = settings
        self.secrets = secrets or Secrets(MemorySecretStore(), environ={})
        self.probe_ports = dict(probe_ports or {})
        self._install_presenter = presenter is not None
        self.presenter = presenter or ErrorPresenter(show_dialogs=False)
        self.tasks = TaskSet()
        self.services: Services | None = None
        self.window: MainWindow | None = None

    async def __aenter__(self) -> WindowHarness:
        paths = default_paths()
        self.services = build_services(
            paths, self.settings, self.secrets, environ={}, stream_worker=True
        )
        if self._install_presenter:
            self.presenter.install(asyncio.get_running_loop())
        self.window = MainWindow(
            tasks=self.tasks,
            presenter=self.presenter,
            probe_ports=self.probe_ports,
            confirm_links=self.confirm_links,
        )
        self.presenter.set_window(self.window)
        self.qtbot.addWidget(self.window)
        self.window.show()
        bind_services(self.window, self.services)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.window is not None and self.services is not None
        try:
            await self.window.shutdown()
            await self.services.aclose()
        finally:
            self.window.close_now()
            if self._install_presenter:
                self.presenter.uninstall()
            app = QApplication.instance()
            if isinstance(app, QApplication):
                apply_theme(app, "system")

    # ---- conveniences
    @property
    def w(self) -> MainWindow:
        """The window."""
        assert self.window is not None
        return self.window

    @property
    def s(self) -> Services:
        """The services."""
        assert self.services is not None
        return self.services

    async def until(self, cond: Callable[[], Any], timeout: float = 8.0, what: str = "") -> Any:
        """See :func:`until`."""
        return await until(cond, timeout, what)

    def type_and_send(self, text: str) -> None:
        """Type into the composer and press Enter, as a person would."""
        edit = self.w.composer.edit
        edit.setFocus()
        QTest.keyClicks(edit, text)
        QTest.keyClick(edit, Qt.Key.Key_Return)

    async def send_and_wait(self, text: str, timeout: float = 10.0) -> None:
        """Send ``text`` and wait until the turn has ended."""
        self.type_and_send(text)
        await self.until(lambda: self.w.is_busy(), timeout, "the turn to start")
        await self.until(lambda: not self.w.is_busy(), timeout, "the turn to end")

    def items(self) -> list[Any]:
        """The chat view's items (pending streamed text included)."""
        assert self.w.view is not None
        return self.w.view.model().items()

    def texts(self) -> list[tuple[str, str]]:
        """(role, text) of every message shown."""
        return [(str(i.role.value), i.text) for i in self.items()]

    async def click_anchor(self, message_id: str, href_prefix: str) -> None:
        """Click the first link of a message whose href starts with ``href_prefix``."""
        assert self.w.view is not None
        canvas = self.w.view.canvas()
        self.w.view.flush()
        point = await self.until(
            lambda: canvas.anchor_point(message_id, href_prefix), what=f"link {href_prefix}"
        )
        QTest.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=point.toPoint())

    def versions_of(self, role: str = "assistant") -> tuple[int, int] | None:
        """The version switcher ``(shown, count)`` on the newest message of ``role``."""
        item = next(i for i in reversed(self.items()) if i.role.value == role)
        return item.versions

    def drop(self, paths: list[str]) -> None:
        """Drag ``paths`` over the window and drop them (real Qt drag-and-drop events)."""
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(p) for p in paths])
        pos = QPointF(self.w.width() / 2, self.w.height() / 2)
        action = Qt.DropAction.CopyAction
        enter = drag_enter_event(pos.toPoint(), mime)
        QApplication.sendEvent(self.w, enter)
        assert enter.isAccepted(), "the window refused the drag"
        drop = QDropEvent(
            pos, action, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
        )
        QApplication.sendEvent(self.w, drop)
        assert drop.isAccepted(), "the window refused the drop"
