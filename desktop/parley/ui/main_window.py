"""The main window: conversations on the left, the chat in the middle, the composer below.

Built in two steps so the first paint is fast (the SDKs, pydantic and the Markdown engine
import slowly, STACK-NOTES): ``MainWindow(...)`` creates a light shell that can be shown at
once; :meth:`MainWindow.bind` receives the core's collaborators after the first paint and
creates the chat view, the controllers and the onboarding panel.

The window renders state and forwards intent: conversation operations go to the
``ConversationStore``, turns to the :class:`~parley.ui.controllers.ChatController`, keys and
settings to ``core.secrets`` and ``SettingsStore``, folders, indexing and citation clicks to
the :class:`~parley.ui.knowledge.controller.KnowledgeController` (its panel and the Sources
panel are docks on the right, created the first time they are opened).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QByteArray, QEvent, QSettings, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QDesktopServices,
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QKeySequence,
    QPaintEvent,
)
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QSplitter,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from parley.ui.attachments import (
    MAX_ATTACHMENTS,
    Attachment,
    AttachmentRefused,
    read_attachment,
)
from parley.ui.composer import Composer
from parley.ui.errors import ErrorPresenter
from parley.ui.model_picker import ModelPicker, build_groups, describe_model
from parley.ui.notices import NoticeBar
from parley.ui.plain import shown
from parley.ui.sidebar import ConversationRow, Sidebar
from parley.ui.status import StatusStrip
from parley.ui.tasks import TaskSet
from parley.ui.theme import app_icon, apply_theme, restyle, scale_font

if TYPE_CHECKING:
    from parley.core.chat import ChatSession, TurnFinished, TurnOptions
    from parley.core.paths import Paths
    from parley.core.providers.catalog import Catalog
    from parley.core.secrets import Secrets
    from parley.core.services import ProviderFactory
    from parley.core.settings import Settings, SettingsStore
    from parley.core.store.conversations import ConversationStore, StoredMessage
    from parley.ui.chat.model import ChatItem
    from parley.ui.chat.view import ChatView
    from parley.ui.controllers import ChatController, RunningTurn
    from parley.ui.knowledge.controller import KnowledgeController, KnowledgeHooks
    from parley.ui.knowledge.panel import KnowledgePanel
    from parley.ui.knowledge.sources_panel import SourcesPanel
    from parley.ui.message_actions import MessageActions, Versions
    from parley.ui.onboarding import OnboardingPanel
    from parley.ui.settings.dialog import SettingsDialog

log = logging.getLogger(__name__)

REMOTE_LIST_TIMEOUT_S = 3.0
"""How long the model picker waits for a local server's model list."""

UNDO_SECONDS = 10.0
"""How long the Undo offer stays after deleting a chat."""

_PAGE_LOADING, _PAGE_EMPTY, _PAGE_CHAT, _PAGE_ONBOARDING, _PAGE_FAILED = range(5)


class BranchBar(QWidget):
    """``Version ‹ 2/3 ›`` for the newest message on this branch that has other versions."""

    # ---- Signals
    sig_version_requested = Signal(str)
    """Switch to this sibling message (its id)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = QLabel()
        self.prev_button = QToolButton()
        self.prev_button.setText("‹")
        self.prev_button.setToolTip("Previous version")
        self.prev_button.setAutoRaise(True)
        self.next_button = QToolButton()
        self.next_button.setText("›")
        self.next_button.setToolTip("Next version")
        self.next_button.setAutoRaise(True)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.label)
        layout.addWidget(self.prev_button)
        layout.addWidget(self.next_button)
        self._versions: Versions | None = None
        self.prev_button.clicked.connect(lambda: self._step(-1))
        self.next_button.clicked.connect(lambda: self._step(+1))
        self.setVisible(False)

    def set_versions(self, versions: Versions | None, what: str = "") -> None:
        """Show ``versions`` (hide the bar for None or a single version)."""
        self._versions = versions
        if versions is None or len(versions.ids) < 2:
            self.setVisible(False)
            return
        self.label.setText(f"{what} version {versions.label}".strip())
        self.prev_button.setEnabled(versions.current > 0)
        self.next_button.setEnabled(versions.current < len(versions.ids) - 1)
        self.setVisible(True)

    def text(self) -> str:
        """The label (for tests)."""
        return self.label.text() if self.isVisible() else ""

    def _step(self, delta: int) -> None:
        v = self._versions
        if v is None:
            return
        target = v.current + delta
        if 0 <= target < len(v.ids):
            self.sig_version_requested.emit(v.ids[target])


class MainWindow(QMainWindow):
    """Parley's window.

    Args:
        tasks: Background tasks of this window (cancelled and awaited on quit).
        presenter: Shows unexpected errors (non-modal).
        probe_ports: Local server ports the onboarding panel probes (tests inject a fake's).
        geometry_file: Where the window geometry is remembered (QSettings, INI format).
        confirm_links: Ask before opening a link from an answer (tests may turn it off).
    """

    # ---- Signals
    sig_quit_requested = Signal()
    """The person closed the window or chose Quit."""
    sig_first_paint = Signal()
    """The window painted for the first time."""
    sig_ready = Signal()
    """The core is bound: the window is fully usable."""
    sig_conversation_opened = Signal(int)
    """A conversation is shown (-1: a new, empty chat)."""

    def __init__(
        self,
        *,
        tasks: TaskSet,
        presenter: ErrorPresenter | None = None,
        probe_ports: Mapping[str, int] | None = None,
        geometry_file: Path | None = None,
        confirm_links: bool = True,
    ) -> None:
        super().__init__()
        self.setWindowTitle("Parley")
        self.setWindowIcon(app_icon())
        self.setAcceptDrops(True)
        self._tasks = tasks
        self._presenter = presenter
        self._probe_ports = probe_ports
        self._geometry_file = geometry_file
        self._confirm_links = confirm_links
        self._painted = False
        self._closing = False
        self._bound = False

        # collaborators (set in bind)
        self._settings: SettingsStore | None = None
        self._secrets: Secrets | None = None
        self._catalog: Catalog | None = None
        self._conversations: ConversationStore | None = None
        self._providers: ProviderFactory | None = None
        self._turn_options: Callable[..., TurnOptions] | None = None
        self.controller: ChatController | None = None
        self.view: ChatView | None = None
        self.actions_hook: MessageActions | None = None
        self.onboarding: OnboardingPanel | None = None
        self.settings_dialog: SettingsDialog | None = None
        self.knowledge: KnowledgeController | None = None
        """Folders, indexing and citations (None when bound without the knowledge hooks)."""
        self.knowledge_panel: KnowledgePanel | None = None
        self.sources_panel: SourcesPanel | None = None
        self.knowledge_dock: QDockWidget | None = None
        self.sources_dock: QDockWidget | None = None
        self._citation_opener: Callable[[Any], None] | None = None

        # state
        self.conversation_id: int | None = None
        self._pending_options: dict[str, Any] = {}
        self._draft: _Draft | None = None
        self._warming: set[asyncio.Task[Any]] = set()
        self._startup: list[asyncio.Task[Any] | None] = []
        self._theme = "system"
        self._versions: dict[str, Versions] = {}
        self._view_stream: str | None = None
        self._agent_notes: dict[int, str] = {}
        self._tool_runs: dict[tuple[str, str], _ToolRun] = {}
        self._tools_open: set[tuple[str, str]] = set()
        self._focused_answer: str | None = None
        self._remote_models: dict[str, list[str]] = {}
        self._search_generation = 0
        self._versions_generation = 0

        self._build_shell()
        self._build_actions()
        self._restore_geometry()
        self._apply_local_styles()

    # ------------------------------------------------------------------ shell
    def _build_shell(self) -> None:
        self.sidebar = Sidebar()
        self.picker = ModelPicker()
        self.picker.setEnabled(False)
        self.branch_bar = BranchBar()
        self.settings_button = QToolButton()
        self.settings_button.setText("⚙")
        self.settings_button.setToolTip("Settings (Ctrl+,)")
        self.settings_button.setAutoRaise(True)
        self.documents_button = QToolButton()
        self.documents_button.setText("Documents")
        self.documents_button.setToolTip(
            "Your documents: folders, indexing, skipped files (Ctrl+Shift+D)"
        )
        self.documents_button.setAutoRaise(True)
        self.documents_button.setEnabled(False)
        self.sources_button = QToolButton()
        self.sources_button.setText("Sources")
        self.sources_button.setToolTip(
            "The passages sent with the selected answer, with their scores (Ctrl+Shift+E)"
        )
        self.sources_button.setAutoRaise(True)
        self.sources_button.setEnabled(False)
        header = QWidget()
        hl = QHBoxLayout(header)
        em = self.fontMetrics().height()
        hl.setContentsMargins(em // 2, em // 3, em // 2, em // 3)
        hl.addWidget(self.picker)
        hl.addStretch(1)
        hl.addWidget(self.branch_bar)
        hl.addWidget(self.sources_button)
        hl.addWidget(self.documents_button)
        hl.addWidget(self.settings_button)

        self.stack = QStackedWidget()
        loading = QLabel("Starting Parley…")
        loading.setAlignment(Qt.AlignmentFlag.AlignCenter)
        loading.setEnabled(False)
        self.stack.addWidget(loading)  # _PAGE_LOADING
        self.stack.addWidget(self._empty_page())  # _PAGE_EMPTY
        self.chat_holder = QWidget()  # _PAGE_CHAT: the view arrives in bind()
        QVBoxLayout(self.chat_holder).setContentsMargins(0, 0, 0, 0)
        self.stack.addWidget(self.chat_holder)
        self.onboarding_holder = QWidget()  # _PAGE_ONBOARDING
        QVBoxLayout(self.onboarding_holder).setContentsMargins(0, 0, 0, 0)
        self.stack.addWidget(self.onboarding_holder)
        self.failed_label = QLabel()
        self.failed_label.setWordWrap(True)
        self.failed_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.stack.addWidget(self.failed_label)  # _PAGE_FAILED

        self.notice = NoticeBar()
        self.composer = Composer()
        self.composer.setEnabled(False)

        bottom = QWidget()
        self._bottom = bottom
        bl = QVBoxLayout(bottom)
        bl.setContentsMargins(em, em // 3, em, em // 2)
        bl.addWidget(self.notice)
        bl.addWidget(self.composer)

        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.setSpacing(0)
        rl.addWidget(header)
        rl.addWidget(self.stack, 1)
        rl.addWidget(bottom)

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.sidebar)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setChildrenCollapsible(False)
        self.setCentralWidget(self.splitter)
        self.status = StatusStrip()
        self.setStatusBar(self.status)
        cw = self.fontMetrics().averageCharWidth()
        self.splitter.setSizes([cw * 32, cw * 100])
        self.resize(cw * 135, self.fontMetrics().lineSpacing() * 42)

    def _empty_page(self) -> QWidget:
        page = QWidget()
        self._empty = page
        title = QLabel("What can I help with?")
        title.setObjectName("emptyTitle")
        scale_font(title, 1.5)
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        hint = QLabel(
            "Type below and press Enter. Drop files on the window to attach them, "
            "or a folder to add it to your documents."
        )
        hint.setWordWrap(True)
        hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        hint.setEnabled(False)
        self.empty_hint = hint
        layout = QVBoxLayout(page)
        layout.addStretch(2)
        layout.addWidget(title)
        layout.addWidget(hint)
        layout.addStretch(3)
        return page

    def _build_actions(self) -> None:
        def action(
            text: str, shortcut: QKeySequence | str | None, slot: Callable[[], Any]
        ) -> QAction:
            a = QAction(text, self)
            if shortcut is not None:
                a.setShortcut(QKeySequence(shortcut))
            a.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            a.triggered.connect(lambda _c=False: slot())
            self.addAction(a)
            return a

        self.act_new = action("New chat", "Ctrl+N", self.new_chat)
        self.act_search = action("Search chats", "Ctrl+K", self.sidebar.focus_search)
        self.act_settings = action("Settings…", "Ctrl+,", self.open_settings)
        self.act_regenerate = action("Regenerate answer", "Ctrl+R", self.regenerate)
        self.act_stop = action("Stop answer", None, self.stop)
        self.act_edit_last = action("Edit last question", None, self.edit_last_question)
        self.act_quit = action("Quit", QKeySequence.StandardKey.Quit, self.sig_quit_requested.emit)
        self.act_documents = action("Your documents…", "Ctrl+Shift+D", self.show_documents)
        self.act_add_folder = action("Add folder…", None, self.choose_folder)
        self.act_sources = action(
            "Sources of the selected answer", "Ctrl+Shift+E", self.show_sources
        )
        for a in (self.act_documents, self.act_add_folder, self.act_sources):
            a.setEnabled(False)
        menu = self.menuBar()
        file_menu = menu.addMenu("&File")
        file_menu.addAction(self.act_new)
        file_menu.addAction(self.act_settings)
        file_menu.addSeparator()
        file_menu.addAction(self.act_quit)
        chat_menu = menu.addMenu("&Chat")
        chat_menu.addAction(self.act_search)
        chat_menu.addAction(self.act_regenerate)
        chat_menu.addAction(self.act_edit_last)
        chat_menu.addAction(self.act_stop)
        self.act_stop.setShortcut(QKeySequence(Qt.Key.Key_Escape))
        docs_menu = menu.addMenu("&Documents")
        docs_menu.addAction(self.act_documents)
        docs_menu.addAction(self.act_add_folder)
        docs_menu.addSeparator()
        docs_menu.addAction(self.act_sources)
        self.documents_button.clicked.connect(self.show_documents)
        self.sources_button.clicked.connect(self.show_sources)

        self.sidebar.sig_new_requested.connect(self.new_chat)
        self.settings_button.clicked.connect(self.open_settings)

    def _apply_local_styles(self) -> None:
        # Not the chat view's subtree: a style sheet there would stop palette changes.
        restyle(self.sidebar, self._bottom, self._empty, self.onboarding_holder)

    def changeEvent(self, event: QEvent) -> None:
        """A new palette (theme switch): re-resolve the style sheets' palette colours."""
        if event.type() in (
            QEvent.Type.PaletteChange,
            QEvent.Type.ApplicationPaletteChange,
        ):
            self._apply_local_styles()
        super().changeEvent(event)

    # ------------------------------------------------------------------ first paint
    def paintEvent(self, event: QPaintEvent) -> None:
        """Announce the first paint once (the app builds the core right after it)."""
        super().paintEvent(event)
        if not self._painted:
            self._painted = True
            QTimer.singleShot(0, self.sig_first_paint.emit)

    def has_painted(self) -> bool:
        """Whether the window has painted at least once."""
        return self._painted

    # ------------------------------------------------------------------ binding
    def bind(
        self,
        *,
        settings: SettingsStore,
        secrets: Secrets,
        catalog: Catalog,
        conversations: ConversationStore,
        providers: ProviderFactory,
        chat: ChatSession,
        turn_options: Callable[..., TurnOptions],
        paths: Paths | None = None,
        knowledge: KnowledgeHooks | None = None,
    ) -> None:
        """Connect the window to the core (after the first paint).

        ``paths`` and ``knowledge`` (``parley.ui.knowledge.controller.hooks_for(services)``)
        enable the documents feature: folders, indexing, grounded answers and citations.
        """
        from parley.ui.chat.view import ChatView
        from parley.ui.controllers import ChatController
        from parley.ui.message_actions import MessageActions

        self._settings = settings
        self._secrets = secrets
        self._catalog = catalog
        self._conversations = conversations
        self._providers = providers
        self._turn_options = turn_options

        self.view = ChatView()
        self.chat_holder.layout().addWidget(self.view)
        self.actions_hook = MessageActions(
            self.view, versions=self._versions.get, can_act=lambda: not self.is_busy()
        )
        self.controller = ChatController(
            chat, self._tasks, self._options_for, prepare=self._prepare_turn
        )

        c = self.controller
        c.sig_busy_changed.connect(self._busy_changed)
        c.sig_turn_started.connect(self._turn_started)
        c.sig_text_arrived.connect(self._text_arrived)
        c.sig_retry_scheduled.connect(self._retry_scheduled)
        c.sig_attempt_started.connect(self._attempt_started)
        c.sig_fallback_used.connect(self._fallback_used)
        c.sig_tool_started.connect(self._tool_started)
        c.sig_tool_call_started.connect(self._tool_call_started)
        c.sig_tool_finished.connect(self._tool_finished)
        c.sig_sources_attached.connect(self._sources_attached)
        c.sig_agent_stopped.connect(lambda mid, msg: self._agent_notes.__setitem__(mid, msg))
        c.sig_turn_finished.connect(self._turn_finished)
        c.sig_turn_cancelled.connect(self._turn_cancelled)
        c.sig_turn_failed.connect(self._turn_failed)
        c.sig_turn_broken.connect(self._turn_broken)

        self.view.sig_retry_requested.connect(self.retry_message)
        self.view.sig_link_activated.connect(self._link_activated)
        self.view.sig_citation_activated.connect(self.open_citation)
        self.view.sig_message_focused.connect(self._message_focused)
        self.view.sig_footer_activated.connect(self._footer_activated)
        self.view.sig_copy_done.connect(
            lambda what: self.status.showMessage(f"Copied {what}.", 2500)
        )
        self.actions_hook.sig_edit_requested.connect(self.begin_edit)
        self.actions_hook.sig_regenerate_requested.connect(self.retry_message)
        self.actions_hook.sig_version_requested.connect(self.show_version)
        self.branch_bar.sig_version_requested.connect(self.show_version)

        self.composer.sig_send_requested.connect(self.send)
        self.composer.sig_stop_requested.connect(self.stop)
        self.composer.sig_regenerate_requested.connect(self.regenerate)
        self.composer.sig_edit_last_requested.connect(self.edit_last_question)
        self.composer.sig_options_changed.connect(self._switches_changed)
        self.picker.sig_model_chosen.connect(self._model_chosen)
        self.sidebar.sig_conversation_selected.connect(self.open_conversation)
        self.sidebar.sig_search_changed.connect(lambda _q: self.refresh_sidebar())
        self.sidebar.sig_rename_requested.connect(self.rename_conversation)
        self.sidebar.sig_delete_requested.connect(self.delete_conversation)

        if paths is not None and knowledge is not None:
            self._bind_knowledge(paths, settings, secrets, knowledge)

        settings.add_listener(self._settings_changed)
        app = QApplication.instance()
        self._theme = settings.current.theme
        if isinstance(app, QApplication):
            apply_theme(app, self._theme)

        self._bound = True
        self.picker.setEnabled(True)
        self.composer.setEnabled(True)
        self._startup = [
            self._tasks.spawn(asyncio.to_thread(conversations.purge_deleted), name="purge-deleted"),
            self.refresh_models(),
        ]
        self.refresh_sidebar(sync=True)

        from parley.ui.onboarding import needs_onboarding

        key_envs = {pid: info.key_env for pid, info in catalog.providers.items()}
        if needs_onboarding(secrets, settings, key_envs):
            self.show_onboarding()
        else:
            self.new_chat()
        self.sig_ready.emit()

    def _bind_knowledge(
        self, paths: Paths, settings: SettingsStore, secrets: Secrets, hooks: KnowledgeHooks
    ) -> None:
        from parley.ui.knowledge.controller import KnowledgeController

        self.knowledge = KnowledgeController(
            paths=paths,
            settings=settings,
            secrets=secrets,
            tasks=self._tasks,
            hooks=hooks,
            opener=self._open_citation_target,
        )
        k = self.knowledge
        k.sig_notice.connect(self._knowledge_notice)
        k.sig_loading_changed.connect(self._knowledge_loading)
        k.sig_index_progress.connect(self._index_progress)
        k.sig_index_finished.connect(self._index_finished)
        k.sig_needs_reindex_changed.connect(self._needs_reindex_changed)
        for a in (self.act_documents, self.act_add_folder, self.act_sources):
            a.setEnabled(True)
        self.documents_button.setEnabled(True)
        self.sources_button.setEnabled(True)

    async def wait_startup(self, timeout: float = 15.0) -> None:
        """Until the start-up work (SDK warm-up, model lists, purge) is done or timed out."""
        pending = [t for t in self._startup if t is not None and not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=timeout)

    def fail(self, message: str) -> None:
        """The core could not start: say so in the window (it stays open)."""
        self.failed_label.setText(
            f"Parley could not start:\n{message}\n\nFix the problem and start Parley again."
        )
        self.stack.setCurrentIndex(_PAGE_FAILED)

    def is_bound(self) -> bool:
        """Whether :meth:`bind` has run."""
        return self._bound

    # ------------------------------------------------------------------ conversations
    def new_chat(self) -> None:
        """Ctrl+N: an empty chat (created in the store when the first question is sent)."""
        if not self._bound or self._closing:
            return
        assert self.view is not None
        if self.stack.currentIndex() == _PAGE_ONBOARDING and self.onboarding is not None:
            return
        self.conversation_id = None
        self._pending_options = {}
        self._view_stream = None
        self._versions = {}
        self.branch_bar.set_versions(None)
        self.view.clear()
        self.composer.cancel_edit()
        self.composer.set_options(False, False)
        self.composer.set_can_regenerate(False)
        self.sidebar.select(None)
        self.status.clear_conversation()
        self._select_default_model()
        self.stack.setCurrentIndex(_PAGE_EMPTY)
        self.composer.edit.setFocus()
        self.sig_conversation_opened.emit(-1)

    def open_conversation(self, conversation_id: int) -> None:
        """Show a stored conversation (its current branch)."""
        if not self._bound or self._closing:
            return
        assert self._conversations is not None and self.view is not None
        conv = self._conversations.get(conversation_id)
        if conv is None:
            self.notice.show_notice("That conversation no longer exists.", kind="warning")
            self.refresh_sidebar()
            return
        self.conversation_id = conversation_id
        self.composer.cancel_edit()
        self._load_view()
        opts = conv.options
        self.composer.set_options(bool(opts.get("use_tools")), bool(opts.get("use_knowledge")))
        provider, model = opts.get("provider"), opts.get("model")
        if provider and model:
            self._pick(str(provider), str(model))
        else:
            self._select_default_model()
        self._update_model_status()
        self._update_cost()
        self.sidebar.select(conversation_id)
        self.stack.setCurrentIndex(_PAGE_CHAT if self.view.model().rowCount() else _PAGE_EMPTY)
        self.sig_conversation_opened.emit(conversation_id)

    def _load_view(self) -> None:
        assert self._conversations is not None and self.view is not None
        cid = self.conversation_id
        if cid is None:
            return
        branch = self._conversations.branch(cid)
        if self.controller is not None:
            # Deltas batched in the controller are already in turn.parts: send them now
            # (to nobody) so the rebuilt item below is not followed by them a second time.
            self._view_stream = None
            self.controller.flush()
        turn = self.controller.turn if self.controller is not None else None
        live = turn.assistant_message_id if turn and turn.conversation_id == cid else None
        items = [self._item_for(m, live_turn=turn if m.id == live else None) for m in branch]
        items = [i for i in items if i is not None]
        self.view.set_messages(items)
        self._view_stream = None
        if live is not None and any(m.id == live for m in branch):
            self._view_stream = str(live)
            self.view.begin_stream(str(live))
        self.view.scroll_to_bottom()
        self.composer.set_can_regenerate(any(m.role == "user" for m in branch))
        self._refresh_versions([m.id for m in branch])

    def _item_for(
        self, m: StoredMessage, *, live_turn: RunningTurn | None = None
    ) -> ChatItem | None:
        from parley.ui.chat.model import ChatItem, ChatRole, FooterItem, MessageStatus

        assert self._conversations is not None
        if m.role not in ("user", "assistant"):
            return None
        footer: list[FooterItem] = []
        if m.role == "user":
            for a in m.meta.get("attachments") or ():
                footer.append(FooterItem(f"📎 {a.get('name', 'attachment')}", kind="attachment"))
            return ChatItem(str(m.id), ChatRole.USER, m.content, footer=tuple(footer))
        footer.extend(self._citation_items(m.id, m.meta))
        for t in self._conversations.tool_calls(m.id):
            run = _ToolRun(t.call_id, t.name, t.arguments, t.result, t.is_error, t.ms)
            self._tool_runs[(str(m.id), t.call_id)] = run
            footer.extend(self._tool_items(str(m.id), run))
        if live_turn is not None:
            return ChatItem(
                str(m.id),
                ChatRole.ASSISTANT,
                live_turn.streamed_text(),
                status=MessageStatus.STREAMING,
                answered_by=live_turn.fallback_model,
                footer=tuple(footer),
            )
        status = m.status
        if status == "streaming":  # Parley was killed mid-answer: what was saved is partial
            status = "partial"
        error = m.error
        if status == "partial" and not error and not m.content:
            status = "error"
            error = "The answer was interrupted."
        return ChatItem(
            str(m.id),
            ChatRole.ASSISTANT,
            m.content,
            status=MessageStatus(status),
            error=error,
            retryable=bool(error),
            answered_by=m.model if m.meta.get("fallback") else None,
            footer=tuple(footer),
        )

    def refresh_sidebar(self, *, sync: bool = False) -> asyncio.Task[None] | None:
        """Reload the conversation list (search text applied) off the GUI thread."""
        if not self._bound:
            return None
        assert self._conversations is not None
        store = self._conversations
        query = self.sidebar.query() or None
        self._search_generation += 1
        generation = self._search_generation

        def show(rows: list[ConversationRow]) -> None:
            if generation == self._search_generation and not self._closing:
                self.sidebar.set_conversations(rows, current_id=self.conversation_id)

        def load() -> list[ConversationRow]:
            return [ConversationRow(c.id, c.title, c.updated_at) for c in store.list(query=query)]

        if sync:
            show(load())
            return None

        async def run() -> None:
            show(await asyncio.to_thread(load))

        return self._tasks.spawn(run(), name="sidebar-refresh")

    def rename_conversation(self, conversation_id: int, title: str) -> None:
        """Set a conversation's title."""
        assert self._conversations is not None
        if not title.strip():
            return
        self._conversations.rename(conversation_id, title)
        self.refresh_sidebar()

    def delete_conversation(self, conversation_id: int) -> None:
        """Soft-delete with an Undo offer."""
        assert self._conversations is not None
        if self.is_busy() and self.controller is not None and self.controller.turn is not None:
            if self.controller.turn.conversation_id == conversation_id:
                self.notice.show_notice(
                    "Stop the answer before deleting this chat.", kind="warning"
                )
                return
        conv = self._conversations.get(conversation_id)
        if conv is None:
            return
        self._conversations.delete(conversation_id)
        if self.conversation_id == conversation_id:
            self.new_chat()
        self.refresh_sidebar()
        title = conv.title or "New chat"
        self.notice.show_notice(
            f"Deleted “{_short(title, 40)}”.",
            action=("Undo", lambda: self.undo_delete(conversation_id)),
            timeout_s=UNDO_SECONDS,
            tag="undo",
        )

    def undo_delete(self, conversation_id: int) -> None:
        """Bring a deleted conversation back and show it."""
        assert self._conversations is not None
        self._conversations.undelete(conversation_id)
        self.refresh_sidebar(sync=True)
        self.open_conversation(conversation_id)

    # ------------------------------------------------------------------ turns
    def is_busy(self) -> bool:
        """Whether a turn is running."""
        return self.controller is not None and self.controller.is_busy()

    def send(self, text: str) -> None:
        """Send the composer's text (or the edited question in edit mode).

        The composer empties at once; if the turn fails before the question is saved, the
        draft (text, attachments, edit mode) goes back into it.
        """
        if not self._bound or self.is_busy() or not text.strip():
            return
        assert self.controller is not None and self._conversations is not None
        editing = self.composer.editing_id()
        chips = self.composer.attachments()
        attachments = [a.to_core() for a in chips]
        self._draft = _Draft(text, chips, editing)
        self.composer.clear()
        self.composer.clear_attachments()
        if editing is not None and self.conversation_id is not None:
            original = self._conversations.message(editing)
            if original is None or original.role != "user":
                self._restore_draft()
                self.composer.cancel_edit_mode()
                return
            kept = list(original.meta.get("attachments") or [])
            self.controller.edit(self.conversation_id, original.parent_id, text, kept + attachments)
            return
        self.controller.send(text, self.conversation_id, attachments)

    def _restore_draft(self) -> None:
        draft, self._draft = self._draft, None
        if draft is None:
            return
        current = self.composer.text()
        if draft.editing_id is not None and not current:
            self.composer.begin_edit(draft.editing_id, draft.text)
        else:
            self.composer.set_text(draft.text + ("\n" + current if current else ""))
        for a in draft.attachments:
            self.composer.add_attachment(a)

    def stop(self) -> None:
        """Esc / Stop: cancel the running turn; else leave edit mode."""
        if self.controller is not None and self.controller.stop():
            return
        if self.composer.editing_id() is not None:
            self.composer.cancel_edit()

    def regenerate(self) -> None:
        """Answer the last question again (the old answer stays as another version)."""
        if self.is_busy() or self.conversation_id is None or self.controller is None:
            return
        self.controller.regenerate(self.conversation_id)

    def retry_message(self, message_id: str) -> None:
        """Retry/regenerate a specific answer (a new version of it)."""
        if self.is_busy() or self.controller is None or self._conversations is None:
            return
        msg = self._conversations.message(int(message_id))
        if msg is None:
            return
        if msg.role == "user":
            self._conversations.set_leaf(msg.conversation_id, msg.id)
        elif msg.parent_id is not None:
            self._conversations.set_leaf(msg.conversation_id, msg.parent_id)
        self.conversation_id = msg.conversation_id
        self.controller.regenerate(msg.conversation_id)

    def begin_edit(self, message_id: str) -> None:
        """Put an earlier question into the composer; sending makes a new version."""
        if self.is_busy() or self.view is None:
            return
        item = self.view.item(message_id)
        if item is None:
            return
        self.composer.begin_edit(int(message_id), item.text)

    def edit_last_question(self) -> None:
        """Up in an empty composer: edit the newest question."""
        if self.view is None:
            return
        model = self.view.model()
        from parley.ui.chat.model import ChatRole

        for row in range(model.rowCount() - 1, -1, -1):
            item = model.item_at(row)
            if item.role == ChatRole.USER:
                self.begin_edit(item.message_id)
                return

    def show_version(self, message_id: str) -> None:
        """Switch the conversation to the branch through ``message_id``."""
        if self.is_busy() or self._conversations is None:
            return
        msg = self._conversations.message(int(message_id))
        if msg is None:
            return
        leaf = self._conversations.latest_leaf(msg.id)
        self._conversations.set_leaf(msg.conversation_id, leaf)
        self.open_conversation(msg.conversation_id)

    def _options_for(self, _conversation_id: int | None) -> TurnOptions:
        assert self._turn_options is not None
        current = self.picker.current()
        provider, model = current if current is not None else (None, None)
        use_tools, use_knowledge = self.composer.options()
        return self._turn_options(
            provider=provider, model=model, use_tools=use_tools, use_knowledge=use_knowledge
        )

    # ---- controller signals
    def _busy_changed(self, busy: bool) -> None:
        self.composer.set_busy(busy)
        self.act_regenerate.setEnabled(not busy)
        if not busy:
            self.composer.set_can_regenerate(
                self.view is not None and self.view.model().rowCount() > 0
            )

    def _turn_started(self, turn: RunningTurn) -> None:
        from parley.ui.chat.model import ChatItem, ChatRole, FooterItem, MessageStatus

        assert self.view is not None and self._conversations is not None
        cid = turn.conversation_id
        assert cid is not None and turn.user_message_id is not None
        aid = str(turn.assistant_message_id)
        draft, self._draft = self._draft, None
        if turn.options is not None:
            self._conversations.set_options(
                cid,
                provider=turn.options.provider,
                model=turn.options.model,
                use_tools=turn.options.use_tools,
                use_knowledge=turn.options.use_knowledge,
            )
        if turn.kind == "send" and (self.conversation_id in (None, cid)):
            if self.conversation_id is None:
                self.conversation_id = cid
                self.view.clear()
                self._versions = {}
                self.branch_bar.set_versions(None)
            sent = draft.attachments if draft is not None else []
            footer = tuple(FooterItem(f"📎 {a.name}", kind="attachment") for a in sent)
            self.view.append(
                ChatItem(str(turn.user_message_id), ChatRole.USER, turn.text, footer=footer)
            )
            self.view.append(ChatItem(aid, ChatRole.ASSISTANT, "", status=MessageStatus.STREAMING))
            self._view_stream = aid
        elif self.conversation_id == cid:
            self._load_view()
        self.stack.setCurrentIndex(
            _PAGE_CHAT if self.conversation_id == cid else self.stack.currentIndex()
        )
        self.refresh_sidebar()

    def _text_arrived(self, message_id: int, text: str) -> None:
        mid = str(message_id)
        if mid == self._view_stream:
            assert self.view is not None
            self.view.append_delta(mid, text)
        if self.notice.tag == "retry":
            self.notice.dismiss("retry")

    def _retry_scheduled(self, message_id: int, attempt: int, wait_s: float, message: str) -> None:
        # The reason may carry its own static "retry in 8 s": the live countdown replaces it.
        reason = _RETRY_HINT.sub("", message or "").strip().rstrip(".;,") or "The request failed"
        reason += "."
        self.notice.show_countdown(
            f"{_escape_braces(reason)} Retrying in {{s}} s… (attempt {attempt})", wait_s
        )

    def _attempt_started(self, _message_id: int, _attempt: int) -> None:
        self.notice.dismiss("retry")

    def _fallback_used(self, message_id: int, model: str, message: str) -> None:
        if str(message_id) == self._view_stream and self.view is not None:
            self.view.set_answered_by(str(message_id), model)
        self.status.showMessage(message, 8000)

    def _tool_started(self, _message_id: int, name: str) -> None:
        self.status.showMessage(f"Running tool {name}…", 5000)

    def _tool_call_started(self, message_id: int, call: Any) -> None:
        mid = str(message_id)
        run = _ToolRun(call.id, call.name, call.arguments)
        self._tool_runs[(mid, call.id)] = run
        self._update_tool_card(mid, run)

    def _tool_finished(self, message_id: int, ev: Any) -> None:
        mid = str(message_id)
        run = _ToolRun(ev.call.id, ev.call.name, ev.call.arguments, ev.content, ev.is_error, ev.ms)
        self._tool_runs[(mid, ev.call.id)] = run
        self._update_tool_card(mid, run)
        if not any(
            key[0] == mid and r.result is None and r.ms is None
            for key, r in self._tool_runs.items()
        ):
            self.status.clearMessage()  # "Running tool …" is over

    def _update_tool_card(self, mid: str, run: _ToolRun) -> None:
        """Add or replace a tool card under a shown answer (running, then done/failed)."""
        if self.view is None or mid != self._view_stream:
            return
        item = self.view.item(mid)
        if item is None:
            return
        self.view.set_footer(mid, _replace_tool(item.footer, run, self._tool_items(mid, run)))

    def _tool_items(self, mid: str, run: _ToolRun) -> list[Any]:
        """The footer lines of one tool call: the card, and its details when opened."""
        from parley.ui.chat.model import FooterItem

        is_open = (mid, run.call_id) in self._tools_open
        if run.result is None and run.ms is None:
            card = f"⚙ {run.name} · running…"
        else:
            took = f" · {run.ms:.0f} ms" if run.ms is not None else ""
            state = "failed" if run.is_error else "done"
            card = f"⚙ {run.name} · {state}{took}  {'▾ hide' if is_open else '▸ details'}"
        items = [FooterItem(card, kind="tool_call", href=f"{_TOOL_HREF}{run.call_id}")]
        if is_open:
            items.append(FooterItem(f"Arguments: {_clip(run.arguments)}", kind="tool_detail"))
            if run.result is not None:
                label = "Error" if run.is_error else "Result"
                items.append(FooterItem(f"{label}: {_clip(run.result)}", kind="tool_detail"))
        return items

    def _footer_activated(self, message_id: str, href: str) -> None:
        if not href.startswith(_TOOL_HREF) or self.view is None:
            return
        key = (message_id, href[len(_TOOL_HREF) :])
        run = self._tool_runs.get(key)
        item = self.view.item(message_id)
        if run is None or item is None:
            return
        if key in self._tools_open:
            self._tools_open.discard(key)
        else:
            self._tools_open.add(key)
        self.view.set_footer(
            message_id, _replace_tool(item.footer, run, self._tool_items(message_id, run))
        )

    def _turn_finished(self, ev: TurnFinished) -> None:
        assert self._providers is not None
        self.notice.dismiss("retry")
        mid = str(ev.message_id)
        if ev.conversation_id == self.conversation_id and self.view is not None:
            note = self._agent_notes.pop(ev.message_id, None)
            error = ev.error.user_message if ev.error is not None else note
            if self.view.item(mid) is None:
                self._load_view()
            self.view.end_stream(mid, ev.status, error, retryable=ev.error is not None)
            local = _safe(lambda: self._providers.is_local(ev.provider), False)  # type: ignore[union-attr]
            self.status.set_last_turn(
                ev.usage.input_tokens, ev.usage.output_tokens, ev.cost_usd, local=local
            )
            self._update_cost()
            self._refresh_versions(None)
            if self._sources_visible() and ev.sources:
                self._show_sources_for(mid)
        if self._view_stream == mid:
            self._view_stream = None
        self.refresh_sidebar()

    def _turn_cancelled(self, conversation_id: int, message_id: int) -> None:
        self.notice.dismiss("retry")
        mid = str(message_id)
        if conversation_id == self.conversation_id and self.view is not None:
            self.view.end_stream(mid, "cancelled")
            self._update_cost()
        if self._view_stream == mid:
            self._view_stream = None
        self.refresh_sidebar()

    def _turn_failed(self, kind: str, text: str, reason: str) -> None:
        self.notice.show_notice(reason, kind="error", timeout_s=12.0, tag="failed")
        if kind in ("send", "edit"):
            self._restore_draft()  # never lose what the person wrote
        self.composer.edit.setFocus()

    def _turn_broken(self, conversation_id: int, message_id: int, summary: str) -> None:
        if conversation_id == self.conversation_id and self.view is not None:
            self.view.end_stream(str(message_id), "error", summary, retryable=True)
        self._view_stream = None

    # ------------------------------------------------------------------ versions
    def _refresh_versions(self, message_ids: Sequence[int] | None) -> asyncio.Task[None] | None:
        """Work out which messages on the branch have other versions (off the GUI thread)."""
        if self._conversations is None or self.conversation_id is None:
            self.branch_bar.set_versions(None)
            return None
        store = self._conversations
        cid = self.conversation_id
        self._versions_generation += 1
        generation = self._versions_generation

        from parley.ui.message_actions import Versions

        def compute() -> tuple[dict[str, Versions], str]:
            ids = message_ids
            if ids is None:
                ids = [m.id for m in store.branch(cid)]
            found: dict[str, Versions] = {}
            last_kind = ""
            for mid in ids:
                sibs = store.siblings(mid)
                if len(sibs) > 1:
                    sib_ids = tuple(str(s.id) for s in sibs)
                    found[str(mid)] = Versions(sib_ids, sib_ids.index(str(mid)))
                    last_kind = "Answer" if sibs[0].role == "assistant" else "Question"
            return found, last_kind

        async def run() -> None:
            found, kind = await asyncio.to_thread(compute)
            if generation != self._versions_generation or self.conversation_id != cid:
                return
            self._versions.clear()
            self._versions.update(found)
            last = next(reversed(found.values()), None) if found else None
            self.branch_bar.set_versions(last, kind)

        return self._tasks.spawn(run(), name="versions")

    # ------------------------------------------------------------------ models
    def refresh_models(self) -> asyncio.Task[None] | None:
        """Rebuild the picker from the catalog and the keys; ask local servers for their list."""
        if not self._bound:
            return None
        self._rebuild_picker()
        return self._tasks.spawn(self._list_remote_models(), name="remote-models")

    def _available_providers(self) -> list[str]:
        assert self._catalog is not None and self._providers is not None
        assert self._settings is not None
        out = []
        for pid, info in self._catalog.providers.items():
            if info.key_optional:
                if self._settings.current.provider(pid).base_url or self._remote_models.get(pid):
                    out.append(pid)
            elif self._providers.key(pid) is not None:
                out.append(pid)
        return out

    def _rebuild_picker(self) -> None:
        assert self._catalog is not None and self._providers is not None
        providers = self._providers
        groups = build_groups(
            self._catalog,
            self._available_providers(),
            is_local=lambda pid: _safe(lambda: providers.is_local(pid), False),
            remote=self._remote_models,
        )
        self.picker.set_groups(groups)
        if self.picker.current() is None:
            self._select_default_model()
        self._update_model_status()

    async def _list_remote_models(self) -> None:
        assert self._catalog is not None and self._providers is not None
        assert self._settings is not None
        current = self.picker.current()
        await self._warm_sdk(current[0] if current else self._settings.current.default_provider)
        found: dict[str, list[str]] = {}
        for pid, info in self._catalog.providers.items():
            if not info.key_optional or not self._settings.current.provider(pid).base_url:
                continue
            try:
                provider = self._providers.raw(pid)
                await self._warm_sdk(pid)
                async with asyncio.timeout(REMOTE_LIST_TIMEOUT_S):
                    models = await provider.list_models()
            except Exception as exc:  # an unreachable server is normal (ParleyError, timeout)
                log.info("could not list models of %s: %s", pid, getattr(exc, "user_message", exc))
                continue
            found[pid] = [m.id for m in models]
        if found and not self._closing:
            self._remote_models.update(found)
            self._rebuild_picker()

    async def _warm_sdk(self, provider_id: str) -> None:
        """Create the provider's SDK client in a worker thread.

        The core imports an SDK lazily, on first use (~0.4-1 s here, STACK-NOTES); doing it
        on the GUI thread at the first Send would freeze the window. The adapter's ``client``
        property is what triggers it, so it is touched once, off the GUI thread.
        """
        from parley.core.errors import ParleyError

        assert self._providers is not None
        try:
            provider = self._providers.raw(provider_id)
        except ParleyError:
            return
        if getattr(type(provider), "client", None) is None:
            return
        task = self._tasks.spawn(
            asyncio.to_thread(lambda: provider.client),  # type: ignore[attr-defined]
            name=f"warm-{provider_id}",
        )
        self._warming.add(task)
        task.add_done_callback(self._warming.discard)
        await asyncio.wait([task])

    async def _sdk_ready(self) -> None:
        """A turn waits for a client being created off-thread (never two clients)."""
        pending = [t for t in self._warming if not t.done()]
        if pending:
            await asyncio.wait(pending)

    def _select_default_model(self) -> None:
        assert self._settings is not None and self._providers is not None
        s = self._settings.current
        pid = s.default_provider
        model = _safe(lambda: self._providers.default_model(pid), None)  # type: ignore[union-attr]
        if model is None and pid in self._remote_models and self._remote_models[pid]:
            model = self._remote_models[pid][0]
        if model is not None and pid in self._available_providers():
            self._pick(pid, model)
        elif self.picker.entries():
            p, m, _ = self.picker.entries()[0]
            self.picker.set_current(p, m)
        self._update_model_status()

    def _pick(self, provider: str, model: str) -> None:
        """Select a model in the picker (described even before a server lists it)."""
        assert self._catalog is not None and self._providers is not None
        providers = self._providers
        local = _safe(lambda: providers.is_local(provider), False)
        info = self._catalog.model(model, provider)
        detail = describe_model(info, local=local)
        if info is None and not local:
            detail = "not in the catalog · " + detail
        self.picker.set_current(provider, model, detail=detail)

    def _model_chosen(self, provider: str, model: str) -> None:
        if self.conversation_id is not None and self._conversations is not None:
            self._conversations.set_options(self.conversation_id, provider=provider, model=model)
        else:
            self._pending_options.update(provider=provider, model=model)
        self._update_model_status()

    def _update_model_status(self) -> None:
        cur = self.picker.current()
        if cur is None:
            self.status.set_model_detail("No model: add a key in Settings (Ctrl+,)")
            return
        self.status.set_model_detail(f"{cur[1]} · {self.picker.current_detail()}")

    def _switches_changed(self, use_tools: bool, use_knowledge: bool) -> None:
        if use_knowledge and self.knowledge is not None and not self.knowledge.is_attached():
            # Open the documents now, while the question is being typed.
            self._tasks.spawn(self.knowledge.ensure_attached(), name="knowledge-warm")
        if self.conversation_id is not None and self._conversations is not None:
            self._conversations.set_options(
                self.conversation_id, use_tools=use_tools, use_knowledge=use_knowledge
            )
        else:
            self._pending_options.update(use_tools=use_tools, use_knowledge=use_knowledge)

    def _update_cost(self) -> None:
        if self._conversations is None or self.conversation_id is None:
            self.status.clear_conversation()
            return
        total, unknown = self._conversations.conversation_cost(self.conversation_id)
        self.status.set_conversation_cost(total, unknown)

    # ------------------------------------------------------------------ settings & onboarding
    def open_settings(self, provider_id: str | None = None) -> SettingsDialog | None:
        """Ctrl+,: the settings dialog (non-modal)."""
        if not self._bound:
            return None
        from parley.ui.settings.dialog import SettingsDialog

        assert self._settings is not None and self._secrets is not None
        assert self._catalog is not None and self._providers is not None
        assert self._conversations is not None
        if self.settings_dialog is not None and self.settings_dialog.isVisible():
            self.settings_dialog.raise_()
            self.settings_dialog.activateWindow()
            if provider_id:
                self.settings_dialog.show_provider(provider_id)
            return self.settings_dialog
        dialog = SettingsDialog(
            settings=self._settings,
            secrets=self._secrets,
            catalog=self._catalog,
            providers=self._providers,
            conversations=self._conversations,
            tasks=self._tasks,
            conversation_id=self.conversation_id,
            parent=self,
        )
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.sig_applied.connect(self._settings_applied)
        dialog.sig_keys_changed.connect(self.refresh_models)
        dialog.destroyed.connect(lambda *_: setattr(self, "settings_dialog", None))
        if provider_id:
            dialog.show_provider(provider_id)
        self.settings_dialog = dialog
        dialog.show()
        return dialog

    def _settings_applied(self) -> None:
        self.refresh_models()
        if self.stack.currentIndex() == _PAGE_ONBOARDING and self._has_any_provider():
            self._leave_onboarding()

    def _settings_changed(self, settings: Settings) -> None:
        # Re-theming re-renders every visible message: only when the theme really changed.
        app = QApplication.instance()
        if isinstance(app, QApplication) and settings.theme != self._theme:
            self._theme = settings.theme
            apply_theme(app, settings.theme)

    def _has_any_provider(self) -> bool:
        return bool(self._available_providers())

    def show_onboarding(self) -> OnboardingPanel:
        """Show the first-run panel and start probing for local servers."""
        from parley.ui.onboarding import DEFAULT_PROBE_PORTS, OnboardingPanel

        assert self._secrets is not None and self._settings is not None
        if self.onboarding is None:
            self.onboarding = OnboardingPanel(
                secrets=self._secrets,
                settings=self._settings,
                tasks=self._tasks,
                probe_ports=self._probe_ports
                if self._probe_ports is not None
                else DEFAULT_PROBE_PORTS,
            )
            self.onboarding_holder.layout().addWidget(self.onboarding)
            self.onboarding.sig_completed.connect(lambda _pid: self._leave_onboarding())
            self.onboarding.sig_skipped.connect(self._leave_onboarding)
            self.onboarding.sig_settings_requested.connect(self.open_settings)
        self.stack.setCurrentIndex(_PAGE_ONBOARDING)
        self.composer.setEnabled(False)
        self.onboarding.start_probe()
        return self.onboarding

    def _leave_onboarding(self) -> None:
        if self.onboarding is not None:
            self.onboarding.cancel_probe()
        self.composer.setEnabled(True)
        self.stack.setCurrentIndex(_PAGE_EMPTY)
        self.refresh_models()
        self.new_chat()

    # ------------------------------------------------------------------ links
    def _link_activated(self, url: str) -> None:
        from parley.ui.chat.markdown import display_url, link_is_openable

        if not link_is_openable(url):
            return
        if not self._confirm_links:
            QDesktopServices.openUrl(QUrl(url))
            return
        box = QMessageBox(self)
        box.setIcon(QMessageBox.Icon.Question)
        box.setWindowTitle("Open link?")
        box.setText("Open this link in your browser?")
        box.setInformativeText(display_url(url))
        box.setStandardButtons(QMessageBox.StandardButton.Open | QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.accepted.connect(lambda: QDesktopServices.openUrl(QUrl(url)))
        box.open()

    # ------------------------------------------------------------------ documents
    def show_documents(self) -> KnowledgePanel | None:
        """Ctrl+Shift+D: the Knowledge panel (a dock on the right; its states refresh)."""
        if self.knowledge is None:
            return None
        if self.knowledge_panel is None:
            from parley.ui.knowledge.panel import KnowledgePanel

            panel = KnowledgePanel()
            self.knowledge.bind_panel(panel)
            self.knowledge_panel = panel
            self.knowledge_dock = self._dock(panel, "Documents", "documentsDock")
        assert self.knowledge_dock is not None
        self.knowledge_dock.show()
        self.knowledge_dock.raise_()
        self.knowledge.refresh()
        return self.knowledge_panel

    def choose_folder(self) -> None:
        """Documents ▸ Add folder…: the folder picker (non-modal), then indexing."""
        panel = self.show_documents()
        if panel is not None:
            panel.choose_folder()

    def show_sources(self, message_id: str | None = None) -> SourcesPanel | None:
        """Ctrl+Shift+E: the Sources panel for an answer (default: the selected or last one)."""
        if self.knowledge is None:
            return None
        if self.sources_panel is None:
            from parley.ui.knowledge.sources_panel import SourcesPanel

            panel = SourcesPanel()
            panel.sig_open_requested.connect(self.open_citation)
            self.sources_panel = panel
            self.sources_dock = self._dock(panel, "Sources", "sourcesDock")
        assert self.sources_dock is not None
        self.sources_dock.show()
        self.sources_dock.raise_()
        self._show_sources_for(message_id or self._focused_answer or self._last_answer())
        return self.sources_panel

    def _dock(self, widget: QWidget, title: str, name: str) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        dock.setAllowedAreas(
            Qt.DockWidgetArea.RightDockWidgetArea | Qt.DockWidgetArea.LeftDockWidgetArea
        )
        others = [
            d for d in (self.knowledge_dock, self.sources_dock) if d is not None and d is not dock
        ]
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
        if others:
            self.tabifyDockWidget(others[0], dock)
        else:
            cw = self.fontMetrics().averageCharWidth()
            self.resizeDocks([dock], [cw * 70], Qt.Orientation.Horizontal)
        return dock

    def _last_answer(self) -> str | None:
        if self.view is None:
            return None
        from parley.ui.chat.model import ChatRole

        model = self.view.model()
        for row in range(model.rowCount() - 1, -1, -1):
            item = model.item_at(row)
            if item.role == ChatRole.ASSISTANT:
                return item.message_id
        return None

    def _show_sources_for(self, message_id: str | None, select: int | None = None) -> None:
        if self.sources_panel is None or self.knowledge is None:
            return
        if message_id is None or self.view is None or self.view.item(message_id) is None:
            self.sources_panel.show_sources(None, None)
            return
        sources = self.knowledge.sources_for(message_id)
        self.sources_panel.show_sources(message_id, sources, select=select)

    def _sources_visible(self) -> bool:
        return self.sources_dock is not None and self.sources_dock.isVisible()

    def _message_focused(self, message_id: str) -> None:
        from parley.ui.chat.model import ChatRole

        item = self.view.item(message_id) if self.view is not None else None
        if item is None or item.role != ChatRole.ASSISTANT:
            return
        self._focused_answer = message_id
        if self._sources_visible() and self.sources_panel is not None:
            if self.sources_panel.message_id() != message_id:
                self._show_sources_for(message_id)

    def _citation_items(self, message_id: int, meta: Mapping[str, Any]) -> list[Any]:
        """Source lines for a stored answer (and its sources remembered for clicks)."""
        from parley.ui.knowledge.citations import citation_footer, sources_from_meta

        sources = sources_from_meta(meta)
        if sources is None:
            return []
        if self.knowledge is not None:
            self.knowledge.remember_sources(message_id, sources)
        return list(citation_footer(sources))

    def _sources_attached(self, message_id: int, sources: Any) -> None:
        from parley.ui.knowledge.citations import (
            citation_footer,
            parse_sources,
            without_citations,
        )

        mid = str(message_id)
        if self.knowledge is not None:
            parsed = self.knowledge.remember_sources(mid, sources)
        else:
            parsed = parse_sources(sources)
        if self.view is not None and mid == self._view_stream:
            item = self.view.item(mid)
            if item is not None:
                footer = (*citation_footer(parsed), *without_citations(item.footer))
                self.view.set_footer(mid, footer)
        if self._sources_visible():
            self._show_sources_for(mid)

    def open_citation(self, message_id: str, n: int) -> None:
        """Open source ``n`` of an answer at its page or line (checked by the controller)."""
        if self.knowledge is None:
            return
        request = self.knowledge.open_citation(message_id, n)
        if request is None:
            return
        where = request.where()
        self.status.showMessage(
            f"Opened {request.path.name}" + (f" at {where}" if where else "") + ".", 5000
        )
        if self._sources_visible() and self.sources_panel is not None:
            if self.sources_panel.message_id() != message_id:
                self._show_sources_for(message_id, select=n)
            else:
                self.sources_panel.select(n)

    def set_citation_opener(self, opener: Callable[[Any], None] | None) -> None:
        """Replace how citations are opened (tests record instead of launching programs)."""
        self._citation_opener = opener

    def _open_citation_target(self, request: Any) -> None:
        if self._citation_opener is not None:
            self._citation_opener(request)
            return
        from parley.ui.knowledge.citations import system_open

        system_open(request)

    def _knowledge_notice(self, message: str, kind: str) -> None:
        self.notice.show_notice(
            message, kind=kind, timeout_s=12.0 if kind != "info" else 8.0, tag="knowledge"
        )

    def _knowledge_loading(self, loading: bool) -> None:
        if loading:
            self.status.showMessage("Loading your documents…")
        elif self.status.currentMessage() == "Loading your documents…":
            self.status.clearMessage()

    def _index_progress(self, p: Any) -> None:
        if self.knowledge_dock is not None and self.knowledge_dock.isVisible():
            return
        if p.phase == "indexing" and p.files_total:
            self.status.showMessage(
                f"Indexing your documents: {p.files_done:,} of {p.files_total:,} files…", 4000
            )
        elif p.phase == "rebuilding":
            why = getattr(p, "reason", None)
            self.status.showMessage(
                shown("Rebuilding the document index" + (f" because {why}" if why else "") + "…"),
                4000,
            )

    def _index_finished(self, _report: Any, summary: str) -> None:
        if summary and not (self.knowledge_dock is not None and self.knowledge_dock.isVisible()):
            self.status.showMessage(f"Documents: {summary}", 8000)

    def _needs_reindex_changed(self, needed: bool) -> None:
        if needed and not (self.knowledge_dock is not None and self.knowledge_dock.isVisible()):
            self.notice.show_notice(
                "Your documents must be indexed again for the new embedding model.",
                kind="warning",
                action=("Re-index now", self._reindex_all),
                tag="knowledge",
            )

    def _reindex_all(self) -> None:
        if self.knowledge is not None:
            self.knowledge.reindex_all()
            self.show_documents()

    async def _prepare_turn(self) -> None:
        """Before a turn: the SDK client, and the documents when the turn may use them
        ("Use my documents", or "Use tools" with folders added: knowledge_search)."""
        await self._sdk_ready()
        turn = self.controller.turn if self.controller is not None else None
        if self.knowledge is None or turn is None or turn.options is None:
            return
        has_folders = bool(self.knowledge.folders())
        if turn.options.use_knowledge:
            if not has_folders:
                self.notice.show_notice(
                    "You have not added any documents yet: drop a folder on the window or use "
                    "Documents ▸ Add folder…",
                    tag="knowledge",
                )
        elif not (turn.options.use_tools and has_folders):
            return
        # Opens chromadb and the embedding model (1-2 s, in a worker thread) the first time;
        # if it fails the notice says why and the answer comes without documents.
        await self.knowledge.ensure_attached()

    # ------------------------------------------------------------------ drag and drop
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        """Accept local files and folders."""
        if self._bound and _local_paths(
            event.mimeData().urls() if event.mimeData().hasUrls() else []
        ):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        """Keep accepting while the drag moves over the window."""
        if self._bound and event.mimeData().hasUrls():
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        """Files attach to the next message; folders are added to the documents."""
        paths = _local_paths(event.mimeData().urls() if event.mimeData().hasUrls() else [])
        if not self._bound or not paths:
            event.ignore()
            return
        event.acceptProposedAction()
        self.handle_dropped_paths(paths)

    def handle_dropped_paths(self, paths: Sequence[str]) -> asyncio.Task[None] | None:
        """Attach files (read off the GUI thread) and remember folders."""
        folders = [p for p in paths if Path(p).is_dir()]
        files = [p for p in paths if not Path(p).is_dir()]
        if folders:
            self.add_folders(folders)
        if files:
            return self._tasks.spawn(self._attach(files), name="attach-files")
        return None

    def add_folders(self, folders: Sequence[str]) -> list[str]:
        """Add folders to ``settings.knowledge.folders`` and index them; returns those new."""
        assert self._settings is not None
        if self.knowledge is not None:
            added = self.knowledge.add_folders(folders)
            if added:
                names = ", ".join(f"“{Path(a).name or a}”" for a in added)
                one = len(added) == 1
                self.notice.show_notice(
                    f"Added {names} to your documents; indexing {'it' if one else 'them'} now. "
                    f"Turn on “Use my documents” to answer from {'it' if one else 'them'}.",
                    tag="folder",
                    action=("Show", self.show_documents),
                )
            elif folders:
                names = ", ".join(f"“{Path(f).name or f}”" for f in folders)
                self.notice.show_notice(
                    f"{names} {'is' if len(folders) == 1 else 'are'} already in your documents. "
                    "Checking for changes…",
                    tag="folder",
                    action=("Show", self.show_documents),
                )
            return added
        s = self._settings.current
        known = list(s.knowledge.folders)
        added: list[str] = []
        for f in folders:
            resolved = str(Path(f).expanduser().resolve())
            if resolved not in known:
                known.append(resolved)
                added.append(resolved)
        if added:
            knowledge = s.knowledge.model_copy(update={"folders": known})
            self._settings.update(s.model_copy(update={"knowledge": knowledge}))
            names = ", ".join(f"“{Path(a).name or a}”" for a in added)
            self.notice.show_notice(
                f"Added {names} to your documents. Turn on “Use my documents” to answer from "
                f"{'it' if len(added) == 1 else 'them'}.",
                tag="folder",
            )
        else:
            names = ", ".join(f"“{Path(f).name or f}”" for f in folders)
            self.notice.show_notice(
                f"{names} {'is' if len(folders) == 1 else 'are'} already in your documents.",
                tag="folder",
            )
        return added

    async def _attach(self, files: Sequence[str]) -> None:
        refused: list[str] = []
        room = MAX_ATTACHMENTS - len(self.composer.attachments())
        for path in files:
            if room <= 0:
                name = Path(path).name
                refused.append(f"{name} was not attached: at most {MAX_ATTACHMENTS} per message.")
                continue
            try:
                attachment = await asyncio.to_thread(read_attachment, path)
            except AttachmentRefused as exc:
                refused.append(exc.user_message)
                continue
            if self.composer.add_attachment(attachment):
                room -= 1
        if refused:
            self.notice.show_notice(" ".join(refused), kind="warning", timeout_s=12.0, tag="attach")

    # ------------------------------------------------------------------ closing
    def closeEvent(self, event: QCloseEvent) -> None:
        """Closing asks the app to quit gracefully (streams are stopped and saved first)."""
        if self._closing:
            event.accept()
            return
        event.ignore()
        self.sig_quit_requested.emit()

    async def shutdown(self) -> None:
        """Stop the running turn (its partial answer is saved), cancel background work."""
        self._closing = True
        if self.controller is not None:
            self.controller.stop()
            await self.controller.wait()
        if self.onboarding is not None:
            self.onboarding.cancel_probe()
        if self.knowledge is not None:
            await self.knowledge.shutdown()  # stops the indexing worker
        await self._tasks.cancel_all()
        if self._settings is not None:
            self._settings.remove_listener(self._settings_changed)
        self._save_geometry()

    def close_now(self) -> None:
        """Close the window without asking (after :meth:`shutdown`)."""
        self._closing = True
        if self.settings_dialog is not None:
            self.settings_dialog.close()
        self.close()

    # ---- geometry (QSettings holds window geometry only, STYLE.md §6)
    def _qsettings(self) -> QSettings | None:
        if self._geometry_file is None:
            return None
        return QSettings(str(self._geometry_file), QSettings.Format.IniFormat)

    def _restore_geometry(self) -> None:
        qs = self._qsettings()
        if qs is None:
            return
        geometry = qs.value("window/geometry")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        splitter = qs.value("window/splitter")
        if isinstance(splitter, QByteArray):
            self.splitter.restoreState(splitter)

    def _save_geometry(self) -> None:
        qs = self._qsettings()
        if qs is None:
            return
        qs.setValue("window/geometry", self.saveGeometry())
        qs.setValue("window/splitter", self.splitter.saveState())
        qs.sync()


# ---------------------------------------------------------------- helpers
@dataclass(frozen=True)
class _Draft:
    """What was in the composer when it was sent (restored if the turn fails early)."""

    text: str
    attachments: list[Attachment]
    editing_id: int | None


_RETRY_HINT = re.compile(
    r"[;,.]?\s*(?:please\s+)?(?:retry|try again) in [\d.]+\s*s(?:econds)?\.?\s*$", re.I
)


def _local_paths(urls: Sequence[QUrl]) -> list[str]:
    return [u.toLocalFile() for u in urls if u.isLocalFile() and u.toLocalFile()]


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _escape_braces(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def _safe(fn: Callable[[], Any], default: Any) -> Any:
    from parley.core.errors import ParleyError

    try:
        return fn()
    except ParleyError:
        return default


_TOOL_HREF = "parley-tool:"
"""Footer link of a tool card: a click shows or hides its arguments and result."""

_CLIP_CHARS = 400
"""Longest argument or result text shown in an opened tool card."""


@dataclass(frozen=True)
class _ToolRun:
    """One tool call under an answer (live from the controller, or stored)."""

    call_id: str
    name: str
    arguments: str
    result: str | None = None
    is_error: bool = False
    ms: float | None = None


def _replace_tool(footer: Sequence[Any], run: _ToolRun, items: Sequence[Any]) -> tuple[Any, ...]:
    """``footer`` with the card of ``run`` (and its detail lines) replaced by ``items``."""
    href = f"{_TOOL_HREF}{run.call_id}"
    out: list[Any] = []
    placed = False
    skipping = False
    for f in footer:
        if f.href == href and f.kind == "tool_call":
            out.extend(items)
            placed = skipping = True
            continue
        if skipping and f.kind == "tool_detail":
            continue
        skipping = False
        out.append(f)
    if not placed:
        out.extend(items)
    return tuple(out)


def _clip(text: str, n: int = _CLIP_CHARS) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= n else flat[: n - 1] + "…"
