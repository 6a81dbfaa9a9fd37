"""The main window: conversations on the left, the chat in the middle, the composer below.

Built in two steps so the first paint is fast (the SDKs, pydantic and the Markdown engine
import slowly, STACK-NOTES): ``MainWindow(...)`` creates a light shell that can be shown at
once; :meth:`MainWindow.bind` receives the core's collaborators after the first paint and
creates the chat view, the controllers and the onboarding panel.

The window lays out the parts and forwards intent; each job has its own module:

- the transcript (what the chat view shows, turn signals, tool cards, versions):
  :class:`~parley.ui.chat.transcript.Transcript`;
- turns: :class:`~parley.ui.controllers.ChatController`, given the turn's options;
- the model list, warm-up and detail text: :class:`~parley.ui.model_picker.ModelChooser`;
- documents, citations and their docks: :class:`~parley.ui.knowledge.docks.KnowledgeDocks`;
- conversation writes (rename, delete, versions, options): ``ChatSession`` operations on the
  database's one writer thread, which report what changed (:class:`~parley.core.chat.OpChanges`);
  the window decides what to redraw. Conversations are read in worker threads: the GUI thread
  never touches the database.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
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

from parley.core.errors import ParleyError
from parley.ui.attachments import (
    MAX_ATTACHMENTS,
    Attachment,
    AttachmentRefused,
    read_attachment,
)
from parley.ui.composer import Composer
from parley.ui.errors import ErrorPresenter
from parley.ui.message_actions import BranchBar
from parley.ui.model_picker import ModelChooser, ModelPicker
from parley.ui.notices import NoticeBar
from parley.ui.sidebar import ConversationRow, Sidebar
from parley.ui.status import StatusStrip
from parley.ui.tasks import TaskSet
from parley.ui.theme import app_icon, apply_theme, restyle, scale_font

if TYPE_CHECKING:
    from parley.core.chat import ChatSession, OpChanges, TurnOptions
    from parley.core.paths import Paths
    from parley.core.providers.catalog import Catalog
    from parley.core.secrets import Secrets
    from parley.core.services import ProviderFactory
    from parley.core.settings import Settings, SettingsStore
    from parley.core.store.conversations import Conversation, ConversationStore
    from parley.ui.chat.transcript import Transcript
    from parley.ui.chat.view import ChatView
    from parley.ui.controllers import ChatController, RunningTurn
    from parley.ui.knowledge.controller import KnowledgeController, KnowledgeHooks
    from parley.ui.knowledge.docks import KnowledgeDocks
    from parley.ui.knowledge.panel import KnowledgePanel
    from parley.ui.knowledge.sources_panel import SourcesPanel
    from parley.ui.message_actions import MessageActions
    from parley.ui.onboarding import OnboardingPanel
    from parley.ui.settings.dialog import SettingsDialog

log = logging.getLogger(__name__)

UNDO_SECONDS = 10.0
"""How long the Undo offer stays after deleting a chat."""

_PAGE_LOADING, _PAGE_EMPTY, _PAGE_CHAT, _PAGE_ONBOARDING, _PAGE_FAILED = range(5)


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
        self._chat: ChatSession | None = None
        self._turn_options: Callable[..., TurnOptions] | None = None
        self.controller: ChatController | None = None
        self.view: ChatView | None = None
        self.transcript: Transcript | None = None
        self.models: ModelChooser | None = None
        self.actions_hook: MessageActions | None = None
        self.onboarding: OnboardingPanel | None = None
        self.settings_dialog: SettingsDialog | None = None
        self.knowledge: KnowledgeController | None = None
        """Folders, indexing and citations (None when bound without the knowledge hooks)."""
        self.docks: KnowledgeDocks | None = None
        """The Documents and Sources docks (with :attr:`knowledge`)."""

        # state
        self._conversation: Conversation | None = None
        """The shown conversation's row as last read or changed (its own system prompt)."""
        self._draft: _Draft | None = None
        self._startup: list[asyncio.Task[Any] | None] = []
        self._theme = "system"
        self._search_generation = 0
        self._cost_generation = 0

        self._build_shell()
        self._build_actions()
        self._restore_geometry()
        self._apply_local_styles()

    @property
    def conversation_id(self) -> int | None:
        """The conversation shown (None: a new, empty chat)."""
        return self.transcript.conversation_id if self.transcript is not None else None

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

        ``conversations`` is only read (in worker threads); every write is a ``chat``
        operation. ``paths`` and ``knowledge``
        (``parley.ui.knowledge.controller.hooks_for(services)``) enable the documents
        feature: folders, indexing, grounded answers and citations.
        """
        from parley.ui.chat.transcript import Transcript
        from parley.ui.chat.view import ChatView
        from parley.ui.controllers import ChatController
        from parley.ui.message_actions import MessageActions

        self._settings = settings
        self._secrets = secrets
        self._catalog = catalog
        self._conversations = conversations
        self._providers = providers
        self._chat = chat
        self._turn_options = turn_options

        self.view = ChatView()
        self.chat_holder.layout().addWidget(self.view)  # type: ignore[union-attr]
        self.controller = ChatController(chat, self._tasks)
        self.models = ModelChooser(
            self.picker,
            self.status,
            catalog=catalog,
            providers=providers,
            settings=settings,
            tasks=self._tasks,
        )
        self.transcript = Transcript(
            view=self.view,
            controller=self.controller,
            store=conversations,
            tasks=self._tasks,
            notice=self.notice,
            status=self.status,
            branch_bar=self.branch_bar,
            is_local=self.models.is_local,
        )
        self.actions_hook = MessageActions(
            self.view, versions=self.transcript.versions, can_act=lambda: not self.is_busy()
        )

        c = self.controller
        c.sig_busy_changed.connect(self._busy_changed)
        c.sig_turn_started.connect(self._turn_started)  # after the transcript's own slot
        c.sig_turn_failed.connect(self._turn_failed)
        t = self.transcript
        t.sig_turn_ended.connect(self._turn_ended)
        t.sig_conversation_missing.connect(self._conversation_missing)

        self.view.sig_retry_requested.connect(self.retry_message)
        self.view.sig_link_activated.connect(self._link_activated)
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
            self._run_op(chat.purge_deleted(), name="purge-deleted"),
            self.refresh_models(),
            self.refresh_sidebar(),
        ]

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
        from parley.ui.knowledge.docks import KnowledgeDocks

        assert self.transcript is not None
        self.knowledge = KnowledgeController(
            paths=paths,
            settings=settings,
            secrets=secrets,
            tasks=self._tasks,
            hooks=hooks,
            opener=lambda request: self.docks.open_target(request) if self.docks else None,
        )
        self.docks = KnowledgeDocks(
            self,
            self.knowledge,
            transcript=self.transcript,
            notice=self.notice,
            status=self.status,
            tasks=self._tasks,
        )
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

    # ------------------------------------------------------------------ operations
    def _run_op(
        self,
        op: Awaitable[OpChanges],
        then: Callable[[OpChanges], Any] | None = None,
        *,
        name: str = "operation",
    ) -> asyncio.Task[None]:
        """Await a core operation (already queued on the writer), then redraw what changed."""

        async def run() -> None:
            try:
                changes = await op
            except ParleyError as exc:  # the database failed: say so, keep running
                self.notice.show_notice(exc.user_message, kind="error", timeout_s=12.0)
                return
            if self._closing:
                return
            if then is not None:  # first: undo shows the chat before the list selects it
                result = then(changes)
                if inspect.isawaitable(result):
                    await result
            self._operation_did_execute(changes)

        return self._tasks.spawn(run(), name=name)

    def _operation_did_execute(self, changes: OpChanges) -> None:
        """Redraw what an operation changed (Anki's ``operation_did_execute``)."""
        conv = changes.conversation
        if conv is not None and conv.id == self.conversation_id:
            self._conversation = conv
        if changes.listing:
            self.refresh_sidebar()

    # ------------------------------------------------------------------ conversations
    def new_chat(self) -> None:
        """Ctrl+N: an empty chat (created in the store when the first question is sent)."""
        if not self._bound or self._closing:
            return
        assert self.transcript is not None and self.models is not None
        if self.stack.currentIndex() == _PAGE_ONBOARDING and self.onboarding is not None:
            return
        self.transcript.clear()
        self._conversation = None
        self._cost_generation += 1
        self.composer.cancel_edit()
        self.composer.set_options(False, False)
        self.composer.set_can_regenerate(False)
        self.sidebar.select(None)
        self.status.clear_conversation()
        self.models.select_default()
        self.stack.setCurrentIndex(_PAGE_EMPTY)
        self.composer.edit.setFocus()
        self.sig_conversation_opened.emit(-1)

    def open_conversation(self, conversation_id: int) -> asyncio.Task[None] | None:
        """Show a stored conversation (its current branch), read off the GUI thread."""
        if not self._bound or self._closing:
            return None
        return self._tasks.spawn(self._open(conversation_id), name="open-conversation")

    async def _open(self, conversation_id: int) -> None:
        assert self.transcript is not None and self.models is not None
        loaded = await self.transcript.load(conversation_id)
        if loaded is None or self._closing:
            return  # gone (sig_conversation_missing said so) or another chat came after it
        self._conversation = conv = loaded.conversation
        self.composer.cancel_edit()
        opts = conv.options
        self.composer.set_options(bool(opts.get("use_tools")), bool(opts.get("use_knowledge")))
        provider, model = opts.get("provider"), opts.get("model")
        if provider and model:
            self.models.pick(str(provider), str(model))
        else:
            self.models.select_default()
        self.models.update_status()
        self._cost_generation += 1
        self.status.set_conversation_cost(*loaded.cost)
        self.composer.set_can_regenerate(any(m.role == "user" for m in loaded.branch))
        self.sidebar.select(conversation_id)
        self.stack.setCurrentIndex(_PAGE_CHAT if loaded.branch else _PAGE_EMPTY)
        self.sig_conversation_opened.emit(conversation_id)

    def _conversation_missing(self, _conversation_id: int) -> None:
        self.notice.show_notice("That conversation no longer exists.", kind="warning")
        self.refresh_sidebar()

    def refresh_sidebar(self, *, sync: bool = False) -> asyncio.Task[None] | None:
        """Reload the conversation list (search text applied) off the GUI thread.

        ``sync`` reads on the calling thread (tests that fill the store themselves).
        """
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

    def _refresh_cost(self) -> asyncio.Task[None] | None:
        """Show the shown conversation's cost (read off the GUI thread)."""
        if self._conversations is None or self.conversation_id is None:
            self.status.clear_conversation()
            return None
        store, cid = self._conversations, self.conversation_id
        self._cost_generation += 1
        generation = self._cost_generation

        async def run() -> None:
            total, unknown = await asyncio.to_thread(store.conversation_cost, cid)
            if generation == self._cost_generation and not self._closing:
                self.status.set_conversation_cost(total, unknown)

        return self._tasks.spawn(run(), name="conversation-cost")

    def rename_conversation(self, conversation_id: int, title: str) -> asyncio.Task[None] | None:
        """Set a conversation's title."""
        if not title.strip() or self._chat is None:
            return None
        return self._run_op(self._chat.rename(conversation_id, title), name="rename")

    def delete_conversation(self, conversation_id: int) -> asyncio.Task[None] | None:
        """Soft-delete with an Undo offer."""
        assert self._chat is not None and self.transcript is not None
        if self.is_busy() and self.controller is not None and self.controller.turn is not None:
            if self.controller.turn.conversation_id == conversation_id:
                self.notice.show_notice(
                    "Stop the answer before deleting this chat.", kind="warning"
                )
                return None
        if conversation_id in (self.conversation_id, self.transcript.loading_id):
            self.new_chat()

        def offer_undo(changes: OpChanges) -> None:
            if changes.conversation is None:
                return  # it was already gone
            title = changes.conversation.title or "New chat"
            self.notice.show_notice(
                f"Deleted “{_short(title, 40)}”.",
                action=("Undo", lambda: self.undo_delete(conversation_id)),
                timeout_s=UNDO_SECONDS,
                tag="undo",
            )

        return self._run_op(self._chat.delete(conversation_id), offer_undo, name="delete")

    def undo_delete(self, conversation_id: int) -> asyncio.Task[None] | None:
        """Bring a deleted conversation back and show it."""
        assert self._chat is not None

        async def reopen(_changes: OpChanges) -> None:
            task = self.open_conversation(conversation_id)
            if task is not None:
                await task

        # The list is refreshed (the operation changed it) after the chat is shown again.
        return self._run_op(self._chat.undelete(conversation_id), reopen, name="undelete")

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
        assert self.controller is not None and self.transcript is not None
        editing = self.composer.editing_id()
        kind = "edit" if editing is not None and self.conversation_id is not None else "send"
        chips = self.composer.attachments()
        attachments = [a.to_core() for a in chips]
        self._draft = _Draft(text, chips, editing)
        self.composer.clear()
        self.composer.clear_attachments()
        options = self._options_now(kind, text)
        if options is None:
            return
        ready = self._prepare_turn(options)
        if editing is not None and self.conversation_id is not None:
            self.controller.edit(
                self.conversation_id, editing, text, attachments, options=options, ready=ready
            )
            return
        self.transcript.set_outgoing_attachments([a.name for a in chips])
        self.controller.send(text, self.conversation_id, attachments, options=options, ready=ready)

    def _options_now(self, kind: str, text: str) -> TurnOptions | None:
        """The next turn's options from the picker and the switches (None: said why)."""
        assert self._turn_options is not None
        current = self.picker.current()
        provider, model = current if current is not None else (None, None)
        use_tools, use_knowledge = self.composer.options()
        try:
            return self._turn_options(
                provider=provider, model=model, use_tools=use_tools, use_knowledge=use_knowledge
            )
        except ParleyError as exc:  # no model configured...
            self._turn_failed(kind, text, exc.user_message)
            return None

    async def _prepare_turn(self, options: TurnOptions) -> None:
        """Before a turn: the SDK client, and the documents when the turn may use them."""
        if self.models is not None:
            await self.models.sdk_ready()
        if self.docks is not None:
            await self.docks.prepare_turn(options)

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
        options = self._options_now("regenerate", "")
        if options is not None:
            self.controller.regenerate(
                self.conversation_id, options=options, ready=self._prepare_turn(options)
            )

    def retry_message(self, message_id: str) -> asyncio.Task[None] | None:
        """Retry/regenerate a specific answer (a new version of it)."""
        if self.is_busy() or self.controller is None or self._chat is None:
            return None

        def answer_again(changes: OpChanges) -> None:
            cid = changes.conversation_id
            if cid is None or self.is_busy() or self.controller is None:
                return  # the message is gone, or another turn started meanwhile
            if self.transcript is not None:
                self.transcript.conversation_id = cid
            options = self._options_now("regenerate", "")
            if options is not None:
                self.controller.regenerate(cid, options=options, ready=self._prepare_turn(options))

        op = self._chat.rewind_to_question(int(message_id))
        return self._run_op(op, answer_again, name="retry")

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
        from parley.ui.chat.model import ChatRole

        if self.transcript is not None:
            last = self.transcript.last_message(ChatRole.USER)
            if last is not None:
                self.begin_edit(last)

    def show_version(self, message_id: str) -> asyncio.Task[None] | None:
        """Switch the conversation to the branch through ``message_id``."""
        if self.is_busy() or self._chat is None:
            return None

        def reopen(changes: OpChanges) -> asyncio.Task[None] | None:
            if changes.conversation_id is None:
                return None
            return self.open_conversation(changes.conversation_id)

        return self._run_op(self._chat.switch_version(int(message_id)), reopen, name="version")

    # ---- controller and transcript signals
    def _busy_changed(self, busy: bool) -> None:
        self.composer.set_busy(busy)
        self.act_regenerate.setEnabled(not busy)
        if not busy:
            self.composer.set_can_regenerate(
                self.view is not None and self.view.model().rowCount() > 0
            )

    def _turn_started(self, turn: RunningTurn) -> None:
        # The transcript has shown the question and the empty answer (its slot runs first).
        self._draft = None
        if self.conversation_id == turn.conversation_id:
            self.stack.setCurrentIndex(_PAGE_CHAT)
        self.refresh_sidebar()

    def _turn_ended(self, conversation_id: int) -> None:
        if conversation_id == self.conversation_id:
            self._refresh_cost()
        self.refresh_sidebar()

    def _turn_failed(self, kind: str, text: str, reason: str) -> None:
        self.notice.show_notice(reason, kind="error", timeout_s=12.0, tag="failed")
        if kind in ("send", "edit"):
            self._restore_draft()  # never lose what the person wrote
        self.composer.edit.setFocus()

    # ------------------------------------------------------------------ models
    def refresh_models(self) -> asyncio.Task[None] | None:
        """Rebuild the picker from the catalog and the keys; ask local servers for their list."""
        if not self._bound or self.models is None:
            return None
        return self.models.refresh()

    def _model_chosen(self, provider: str, model: str) -> None:
        # A new chat stores its model with its first turn (ChatSession does).
        if self.conversation_id is not None and self._chat is not None:
            op = self._chat.set_options(self.conversation_id, provider=provider, model=model)
            self._run_op(op, name="set-model")
        if self.models is not None:
            self.models.update_status()

    def _switches_changed(self, use_tools: bool, use_knowledge: bool) -> None:
        if use_knowledge and self.docks is not None:
            self.docks.warm_up()  # open the documents now, while the question is typed
        if self.conversation_id is not None and self._chat is not None:
            op = self._chat.set_options(
                self.conversation_id, use_tools=use_tools, use_knowledge=use_knowledge
            )
            self._run_op(op, name="set-switches")

    # ------------------------------------------------------------------ settings & onboarding
    def open_settings(self, provider_id: str | None = None) -> SettingsDialog | None:
        """Ctrl+,: the settings dialog (non-modal)."""
        if not self._bound:
            return None
        from parley.ui.settings.dialog import SettingsDialog

        assert self._settings is not None and self._secrets is not None
        assert self._catalog is not None and self._providers is not None
        assert self._chat is not None
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
            tasks=self._tasks,
            conversation_id=self.conversation_id,
            chat_prompt=self._chat_prompt(),
            save_chat_prompt=self._save_chat_prompt,
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

    def _chat_prompt(self) -> str | None:
        conv = self._conversation
        return conv.system_prompt if conv is not None and conv.id == self.conversation_id else None

    def _save_chat_prompt(self, conversation_id: int, prompt: str | None) -> None:
        assert self._chat is not None
        op = self._chat.set_system_prompt(conversation_id, prompt)
        self._run_op(op, name="set-chat-prompt")

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
        return self.models is not None and bool(self.models.available_providers())

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
        return self.docks.show_documents() if self.docks is not None else None

    def choose_folder(self) -> None:
        """Documents ▸ Add folder…: the folder picker (non-modal), then indexing."""
        panel = self.show_documents()
        if panel is not None:
            panel.choose_folder()

    def show_sources(self, message_id: str | None = None) -> SourcesPanel | None:
        """Ctrl+Shift+E: the Sources panel for an answer (default: the selected or last one)."""
        return self.docks.show_sources(message_id) if self.docks is not None else None

    def open_citation(self, message_id: str, n: int) -> None:
        """Open source ``n`` of an answer at its page or line (checked by the controller)."""
        if self.docks is not None:
            self.docks.open_citation(message_id, n)

    def set_citation_opener(self, opener: Callable[[Any], None] | None) -> None:
        """Replace how citations are opened (tests record instead of launching programs)."""
        if self.docks is not None:
            self.docks.set_citation_opener(opener)

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
        if self.docks is not None:
            return self.docks.add_folders(folders)
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


def _local_paths(urls: Sequence[QUrl]) -> list[str]:
    return [u.toLocalFile() for u in urls if u.isLocalFile() and u.toLocalFile()]


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
