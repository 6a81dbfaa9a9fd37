"""The main window: conversations on the left, the chat in the middle, the composer below.

Built in two steps so the first paint is fast (the SDKs, pydantic and the Markdown engine
import slowly, STACK-NOTES): ``MainWindow(...)`` creates a light shell that can be shown at
once; :meth:`MainWindow.bind` receives the core's collaborators after the first paint and
creates the chat view, the controllers and the onboarding panel.

The window connects the parts and decides which page shows; each job has its own module:

- the widgets and menus: :class:`~parley.ui.window_layout.WindowLayout`, ``build_menus``;
- the transcript (what the chat view shows, turn signals, the text handed to the view, tool
  cards, versions): :class:`~parley.ui.chat.transcript.Transcript`;
- the composer's requests (send, regenerate, retry, edit, stop) and the draft:
  :class:`~parley.ui.turns.TurnRequests`, which gives the
  :class:`~parley.ui.controllers.ChatController` each turn's options;
- the model list, warm-up and detail text: :class:`~parley.ui.model_picker.ModelChooser`;
- documents, citations and their docks: :class:`~parley.ui.knowledge.docks.KnowledgeDocks`;
- the conversation list and every write (rename, delete, undo, versions, options, a chat's
  prompt): :class:`~parley.ui.conversations.ConversationList` runs ``ChatSession``
  operations on the database's one writer thread, which report what changed
  (:class:`~parley.core.chat.OpChanges`); the window decides what to redraw.
  Conversations are read in worker threads: the GUI thread never touches the database.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, QTimer, QUrl, Signal
from PySide6.QtGui import (
    QCloseEvent,
    QDesktopServices,
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QPaintEvent,
)
from PySide6.QtWidgets import (
    QAbstractButton,
    QApplication,
    QDialog,
    QDockWidget,
    QFileDialog,
    QMainWindow,
    QMessageBox,
    QToolButton,
    QWidget,
)

from parley.ui.attachments import handle_drop
from parley.ui.conversations import ConversationList
from parley.ui.errors import ErrorPresenter
from parley.ui.model_picker import ModelChooser
from parley.ui.tasks import TaskSet
from parley.ui.theme import app_icon, apply_theme
from parley.ui.turns import TurnRequests
from parley.ui.window_layout import (
    PAGE_CHAT,
    PAGE_EMPTY,
    PAGE_FAILED,
    PAGE_ONBOARDING,
    WindowLayout,
    build_menus,
    restore_geometry,
    save_geometry,
)

if TYPE_CHECKING:
    from parley.core.chat import ChatSession, OpChanges, TurnOptions
    from parley.core.knowledge.feature import KnowledgeFeature
    from parley.core.paths import Paths
    from parley.core.providers.catalog import Catalog
    from parley.core.secrets import Secrets
    from parley.core.services import ProviderFactory
    from parley.core.settings import Settings, SettingsStore
    from parley.core.store.conversations import Conversation, ConversationStore
    from parley.core.tools.approval import Approval
    from parley.core.transfer import ExportFormat
    from parley.ui.chat.transcript import Transcript
    from parley.ui.chat.view import ChatView
    from parley.ui.controllers import ChatController, RunningTurn
    from parley.ui.costs.feature import MoneyFeature, MoneyHooks
    from parley.ui.costs.panel import CostPanel
    from parley.ui.file_actions import FileActions
    from parley.ui.knowledge.controller import KnowledgeController
    from parley.ui.knowledge.docks import KnowledgeDocks
    from parley.ui.knowledge.panel import KnowledgePanel
    from parley.ui.knowledge.sources_panel import SourcesPanel
    from parley.ui.message_actions import MessageActions
    from parley.ui.onboarding import OnboardingPanel
    from parley.ui.settings.dialog import SettingsDialog
    from parley.ui.side_panels import SidePanels
    from parley.ui.window_session import WindowSession

log = logging.getLogger(__name__)


class MainWindow(QMainWindow):
    """Parley's window.

    Args:
        tasks: Background tasks of this window (cancelled and awaited on quit).
        presenter: Shows unexpected errors (non-modal).
        probe_ports: Local server ports the onboarding panel probes (tests inject a fake's).
        geometry_file: Where the window geometry is remembered (QSettings, INI format).
        confirm_links: Ask before opening a link from an answer (tests may turn it off).
        poll_ms: How often the database is asked whether another process changed it (the
            sidebar then shows chats made by ``parley ask``); 0 turns that off; default
            :data:`~parley.ui.window_session.POLL_MS`.
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
        poll_ms: int | None = None,
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
        self._poll_ms = poll_ms
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
        self.controller: ChatController | None = None
        self.view: ChatView | None = None
        self.transcript: Transcript | None = None
        self.models: ModelChooser | None = None
        self.actions_hook: MessageActions | None = None
        self.onboarding: OnboardingPanel | None = None
        self.settings_dialog: SettingsDialog | None = None
        self.knowledge: KnowledgeController | None = None
        """Folders, indexing and citations (None when bound without the knowledge feature)."""
        self.docks: KnowledgeDocks | None = None
        """The Documents and Sources docks (with :attr:`knowledge`)."""
        self.conversation_list: ConversationList | None = None
        self.turns: TurnRequests | None = None
        """Turns started from the composer and the messages' actions."""
        self.session: WindowSession | None = None
        """Drafts, the open chat and its scroll position across starts; the poll."""
        self.files: FileActions | None = None
        """Attach (the paperclip), export and import."""
        self.help_dialog: QDialog | None = None
        """The shortcuts sheet or the About box while one is open."""
        self._paths: Paths | None = None
        self.money: MoneyFeature | None = None
        """The estimate, the ticking cost, the cost panel and budgets (issue 13)."""

        # state
        self._conversation: Conversation | None = None
        """The shown conversation's row as last read or changed (its own system prompt)."""
        self._startup: list[asyncio.Task[Any] | None] = []
        self._theme = "system"
        self._cost_generation = 0

        ui = WindowLayout(self)
        self.sidebar, self.picker, self.branch_bar = ui.sidebar, ui.picker, ui.branch_bar
        self.settings_button = ui.settings_button
        self.documents_button, self.sources_button = ui.documents_button, ui.sources_button
        self.stack, self.chat_holder = ui.stack, ui.chat_holder
        self.onboarding_holder, self.failed_label = ui.onboarding_holder, ui.failed_label
        self.notice, self.composer, self.status = ui.notice, ui.composer, ui.status
        self.splitter, self.empty_hint = ui.splitter, ui.empty_hint
        self.chat_pane = ui.chat_pane
        self._bottom, self._empty = ui.bottom, ui.empty
        self._build_actions()
        self.panels: SidePanels | None = None
        """Where panels go: docked on the right, or over the chat in a narrow window."""
        restore_geometry(self, self.splitter, geometry_file)

    @property
    def conversation_id(self) -> int | None:
        """The conversation shown (None: a new, empty chat)."""
        return self.transcript.conversation_id if self.transcript is not None else None

    # ------------------------------------------------------------------ shell
    def _build_actions(self) -> None:
        acts = build_menus(self)
        self.menu_actions = acts
        self.act_regenerate = acts.regenerate
        self.act_costs = acts.costs
        self._knowledge_actions = (acts.documents, acts.add_folder, acts.sources)
        self._bound_actions = (acts.attach, acts.import_chat)
        self._export_actions = (acts.export_md, acts.export_json, acts.export_html)
        for a in (*self._bound_actions, *self._export_actions):
            a.setEnabled(False)
        for act, slot in (
            (acts.new, self.new_chat),
            (acts.search, self.sidebar.focus_search),
            (acts.settings, self.open_settings),
            (acts.regenerate, self.regenerate),
            (acts.stop, self.stop),
            (acts.edit_last, self.edit_last_question),
            (acts.quit, self.sig_quit_requested.emit),
            (acts.documents, self.show_documents),
            (acts.add_folder, self.choose_folder),
            (acts.sources, self.show_sources),
            (acts.costs, self.show_costs),
            (acts.attach, self.choose_attachments),
            (acts.import_chat, self.choose_import),
            (acts.export_md, lambda: self.choose_export("md")),
            (acts.export_json, lambda: self.choose_export("json")),
            (acts.export_html, lambda: self.choose_export("html")),
            (acts.shortcuts, self.show_shortcuts),
            (acts.about, self.show_about),
        ):
            act.triggered.connect(lambda _c=False, f=slot: f())
        self.composer.sig_attach_requested.connect(self.choose_attachments)
        self.documents_button.clicked.connect(self.show_documents)
        self.sources_button.clicked.connect(self.show_sources)
        self.sidebar.sig_new_requested.connect(self.new_chat)
        self.settings_button.clicked.connect(self.open_settings)

    def addDockWidget(self, area: Qt.DockWidgetArea, dockwidget: QDockWidget, *args: Any) -> None:
        """Add a panel; :class:`~parley.ui.side_panels.SidePanels` docks or overlays it."""
        super().addDockWidget(area, dockwidget, *args)
        if self.panels is not None:
            self.panels.adopt(dockwidget)

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
        knowledge: KnowledgeFeature | None = None,
        money: MoneyHooks | None = None,
    ) -> None:
        """Connect the window to the core (after the first paint).

        ``conversations`` is only read (in worker threads); every write is a ``chat``
        operation. ``paths`` and ``knowledge`` (the core's documents feature,
        ``services.knowledge``) enable folders, indexing, grounded answers and citations.
        ``money`` (the ledger, budget and meter) enables the estimate, the ticking cost, the
        cost panel and budgets.
        """
        from parley.ui.chat.transcript import Transcript
        from parley.ui.chat.view import ChatView
        from parley.ui.controllers import ChatController
        from parley.ui.file_actions import FileActions
        from parley.ui.message_actions import MessageActions
        from parley.ui.side_panels import SidePanels
        from parley.ui.window_session import POLL_MS, WindowSession

        self.panels = SidePanels(self, chat_area=self.chat_pane, sidebar=self.sidebar)
        self._settings = settings
        self._secrets = secrets
        self._catalog = catalog
        self._conversations = conversations
        self._providers = providers
        self._chat = chat

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
            price_of=lambda provider, model: price_text(catalog, provider, model),
        )
        self.actions_hook = MessageActions(
            self.view, versions=self.transcript.versions, can_act=lambda: not self.is_busy()
        )

        if money is not None:
            from parley.ui.costs.feature import MoneyFeature

            self.money = MoneyFeature(
                self,
                money,
                chat=chat,
                catalog=catalog,
                settings=settings,
                composer=self.composer,
                picker=self.picker,
                controller=self.controller,
                transcript=self.transcript,
                status=self.status,
                notice=self.notice,
                tasks=self._tasks,
                turn_options=turn_options,
                is_local=self.models.is_local,
            )
            self.act_costs.setEnabled(True)
        self.turns = TurnRequests(
            composer=self.composer,
            picker=self.picker,
            controller=self.controller,
            transcript=self.transcript,
            notice=self.notice,
            chat=chat,
            run_op=self._run_op,
            turn_options=turn_options,
            before_turn=self._prepare_turn,
            reopen=self.open_conversation,
            gate=self.money.budget.gate if self.money is not None else None,
        )
        c = self.controller
        c.sig_busy_changed.connect(self._busy_changed)
        c.sig_turn_started.connect(self._turn_started)  # after the transcript's own slot
        self.conversation_list = ConversationList(
            self.sidebar,
            chat=chat,
            store=conversations,
            tasks=self._tasks,
            notice=self.notice,
            shown=lambda: self.conversation_id,
        )
        self.conversation_list.sig_operation_executed.connect(self._operation_executed)
        if self.money is not None:
            self.conversation_list.sig_operation_executed.connect(self.money.operation_executed)
            self.sig_conversation_opened.connect(self.money.conversation_opened)
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
        self.view.sig_message_action.connect(self._message_action)
        self.view.sig_footer_activated.connect(self._footer_link)

        self.composer.sig_options_changed.connect(self._switches_changed)
        self.picker.sig_model_chosen.connect(self._model_chosen)
        self.sidebar.sig_conversation_selected.connect(self.open_conversation)
        self.sidebar.sig_search_changed.connect(lambda _q: self.refresh_sidebar())
        self.sidebar.sig_rename_requested.connect(self.rename_conversation)
        self.sidebar.sig_delete_requested.connect(self.delete_conversation)

        self.session = WindowSession(
            composer=self.composer,
            chat=chat,
            store=conversations,
            tasks=self._tasks,
            shown=lambda: self.conversation_id,
            poll_ms=POLL_MS if self._poll_ms is None else self._poll_ms,
        )
        self.session.sig_database_changed.connect(self._database_changed)
        self.files = FileActions(
            self,
            store=conversations,
            chat=chat,
            run_op=self._run_op,
            tasks=self._tasks,
            notice=self.notice,
            status=self.status,
            shown=lambda: self.conversation_id,
            attach_paths=self.handle_dropped_paths,
            open_conversation=self.open_conversation,
        )
        for a in self._bound_actions:
            a.setEnabled(True)
        self.sig_conversation_opened.connect(self._conversation_shown)
        self._paths = paths

        if paths is not None and knowledge is not None:
            self._bind_knowledge(paths, settings, secrets, knowledge)

        settings.add_listener(self._settings_changed)
        app = QApplication.instance()
        self._theme = settings.current.theme
        if isinstance(app, QApplication):
            apply_theme(app, self._theme)

        self._set_tab_order()
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
        self._startup.append(self._tasks.spawn(self._restore(), name="restore"))
        self.session.start_polling()
        self.sig_ready.emit()

    def _set_tab_order(self) -> None:
        """Tab walks the window as it is laid out: sidebar, header, chat, composer."""
        sb, c = self.sidebar, self.composer
        chain = [
            sb.new_button,
            sb.search,
            sb.list,
            self.picker,
            *self.branch_bar.findChildren(QToolButton),
            self.sources_button,
            self.documents_button,
            self.settings_button,
            *([self.view.canvas()] if self.view is not None else []),
            self.notice.action_button,
            self.notice.close_button,
            c.attach_button,
            c.edit,
            c.send_button,
            c.stop_button,
            c.tools_switch,
            c.knowledge_switch,
            c.regenerate_button,
        ]
        for first, second in itertools.pairwise(chain):
            QWidget.setTabOrder(first, second)

    def _bind_knowledge(
        self,
        paths: Paths,
        settings: SettingsStore,
        secrets: Secrets,
        knowledge: KnowledgeFeature,
    ) -> None:
        from parley.ui.knowledge.controller import KnowledgeController
        from parley.ui.knowledge.docks import KnowledgeDocks

        assert self.transcript is not None
        self.knowledge = KnowledgeController(
            paths=paths,
            settings=settings,
            secrets=secrets,
            tasks=self._tasks,
            feature=knowledge,
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
        for a in self._knowledge_actions:
            a.setEnabled(True)
        self.documents_button.setEnabled(True)
        self.sources_button.setEnabled(True)

    async def _restore(self) -> None:
        """Reopen the chat that was open, scrolled where it was, with its draft."""
        assert self.session is not None
        restore = await self.session.load()
        if self._closing or self.stack.currentIndex() == PAGE_ONBOARDING:
            return
        if self.conversation_id is not None or self.transcript is None:
            return  # the person opened a chat meanwhile
        if self.transcript.loading_id is not None:
            return
        cid = restore.conversation_id
        if cid is None:
            self.session.arrived(None)  # the new chat's draft
            return
        task = self.open_conversation(cid)
        if task is not None:
            await task
        shown = self.transcript.conversation_id  # (a property mypy would keep narrowed)
        if shown == cid and restore.anchor is not None and self.view is not None:
            self.view.scroll_to_anchor(*restore.anchor)

    def _database_changed(self) -> None:
        # Another process (``parley ask``) wrote: its conversations belong in the list.
        self.refresh_sidebar()

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
        self.stack.setCurrentIndex(PAGE_FAILED)

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
        """Await a core operation (queued on the writer), then redraw what changed."""
        assert self.conversation_list is not None
        return self.conversation_list.run(op, then, name=name)

    def _operation_executed(self, changes: OpChanges) -> None:
        conv = changes.conversation
        if conv is not None and conv.id == self.conversation_id:
            self._conversation = conv  # the shown chat's row (its own system prompt)

    # ------------------------------------------------------------------ conversations
    def new_chat(self) -> None:
        """Ctrl+N: an empty chat (created in the store when the first question is sent)."""
        if not self._bound or self._closing:
            return
        assert self.transcript is not None and self.models is not None
        if self.stack.currentIndex() == PAGE_ONBOARDING and self.onboarding is not None:
            return
        if self.session is not None:
            self.session.leaving()
        self.transcript.clear()
        self._conversation = None
        self._cost_generation += 1
        self.composer.cancel_edit()
        self.composer.set_options(False, False)
        self.composer.set_can_regenerate(False)
        self.sidebar.select(None)
        self.status.clear_conversation()
        self.models.select_default()
        self.stack.setCurrentIndex(PAGE_EMPTY)
        if self.session is not None:
            self.session.arrived(None)
            self.session.opened(None)
        self.composer.edit.setFocus()
        self.sig_conversation_opened.emit(-1)

    def open_conversation(self, conversation_id: int) -> asyncio.Task[None] | None:
        """Show a stored conversation (its current branch), read off the GUI thread."""
        if not self._bound or self._closing:
            return None
        if self.session is not None:
            self.session.leaving()
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
        self.stack.setCurrentIndex(PAGE_CHAT if loaded.branch else PAGE_EMPTY)
        if self.session is not None:
            self.session.arrived(conversation_id)
            self.session.opened(conversation_id)
        self.sig_conversation_opened.emit(conversation_id)

    def _conversation_missing(self, _conversation_id: int) -> None:
        self.notice.show_notice("That conversation no longer exists.", kind="warning")
        self.refresh_sidebar()

    def refresh_sidebar(self, *, sync: bool = False) -> asyncio.Task[None] | None:
        """Reload the conversation list (search text applied) off the GUI thread.

        ``sync`` reads on the calling thread (tests that fill the store themselves).
        """
        if not self._bound or self.conversation_list is None:
            return None
        return self.conversation_list.refresh(sync=sync)

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
        assert self.conversation_list is not None
        return self.conversation_list.rename(conversation_id, title)

    def delete_conversation(self, conversation_id: int) -> asyncio.Task[None] | None:
        """Soft-delete with an Undo offer."""
        assert self.conversation_list is not None and self.transcript is not None
        if self.is_busy() and self.controller is not None and self.controller.turn is not None:
            if self.controller.turn.conversation_id == conversation_id:
                self.notice.show_notice(
                    "Stop the answer before deleting this chat.", kind="warning"
                )
                return None
        if conversation_id in (self.conversation_id, self.transcript.loading_id):
            self.new_chat()
        return self.conversation_list.delete(conversation_id, undo=self.undo_delete)

    def undo_delete(self, conversation_id: int) -> asyncio.Task[None] | None:
        """Bring a deleted conversation back and show it."""
        assert self.conversation_list is not None

        async def reopen(_changes: OpChanges) -> None:
            task = self.open_conversation(conversation_id)
            if task is not None:
                await task

        return self.conversation_list.undelete(conversation_id, then=reopen)

    # ------------------------------------------------------------------ turns
    def is_busy(self) -> bool:
        """Whether a turn is running."""
        return self.controller is not None and self.controller.is_busy()

    def stop(self) -> None:
        """Esc / Stop: cancel the running turn; else leave edit mode."""
        if self.turns is not None:
            self.turns.stop()

    def regenerate(self) -> None:
        """Answer the last question again (the old answer stays as another version)."""
        if self.turns is not None:
            self.turns.regenerate()

    def _footer_link(self, message_id: str, href: str) -> None:
        """A ``parley-…`` link under an answer: "N more sent" shows its Sources panel."""
        from parley.ui.knowledge.citations import SOURCES_HREF

        if href.startswith(SOURCES_HREF):
            self.show_sources(message_id)

    def _message_action(self, message_id: str, action: str) -> None:
        """An action clicked on a message in the chat view."""
        if action == "edit":
            self.begin_edit(message_id)
        elif action == "regenerate":
            self.retry_message(message_id)
        elif action == "delete":
            self.delete_answer(message_id)
        elif action in ("version-prev", "version-next") and self.transcript is not None:
            v = self.transcript.versions(message_id)
            target = None if v is None else v.current + (1 if action == "version-next" else -1)
            if v is not None and target is not None and 0 <= target < len(v.ids):
                self.show_version(v.ids[target])

    async def ask_folder_approval(self, folder: str) -> Approval:
        """Ask whether the tools may read ``folder`` (Allow once / Always / Deny)."""
        from parley.ui.folder_approval import ask_folder

        self.raise_()
        return await ask_folder(self, folder)

    def delete_answer(self, message_id: str) -> QMessageBox:
        """Ask, then delete an answer and what followed it (the box is window-modal)."""
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Delete answer",
            "Delete this answer and anything that followed it? This cannot be undone; its "
            "cost stays in the cost history.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            self,
        )
        box.setObjectName("delete-answer")
        box.button(QMessageBox.StandardButton.Yes).setText("Delete")
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        def answered(button: QAbstractButton) -> None:
            if box.standardButton(button) == QMessageBox.StandardButton.Yes and self.turns:
                self.turns.delete_answer(message_id)

        box.buttonClicked.connect(answered)
        box.open()
        return box

    def retry_message(self, message_id: str) -> asyncio.Task[None] | None:
        """Retry/regenerate a specific answer (a new version of it)."""
        return self.turns.retry(message_id) if self.turns is not None else None

    def show_version(self, message_id: str) -> asyncio.Task[None] | None:
        """Switch the conversation to the branch through ``message_id``."""
        return self.turns.show_version(message_id) if self.turns is not None else None

    def begin_edit(self, message_id: str) -> None:
        """Put an earlier question into the composer; sending makes a new version."""
        if self.turns is not None:
            self.turns.begin_edit(message_id)

    def edit_last_question(self) -> None:
        """Up in an empty composer: edit the newest question."""
        if self.turns is not None:
            self.turns.edit_last_question()

    async def _prepare_turn(self, options: TurnOptions) -> None:
        """Before a turn: the SDK client, and the documents when the turn may use them."""
        if self.models is not None:
            await self.models.sdk_ready()
        if self.docks is not None:
            await self.docks.prepare_turn(options)

    def _busy_changed(self, busy: bool) -> None:
        self.act_regenerate.setEnabled(not busy)
        if self.view is not None:
            self.view.set_actions_enabled(not busy)

    def _turn_started(self, turn: RunningTurn) -> None:
        # The transcript has shown the question and the empty answer (its slot runs first).
        if self.conversation_id == turn.conversation_id:
            self.stack.setCurrentIndex(PAGE_CHAT)
        if turn.options is not None and self.models is not None:
            self.models.remember(turn.options.provider, turn.options.model)
        self._conversation_shown()
        self.refresh_sidebar()

    def _turn_ended(self, conversation_id: int) -> None:
        if conversation_id == self.conversation_id:
            self._refresh_cost()
        self.refresh_sidebar()

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
            self.models.remember(provider, model)  # the next new chat starts with it
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
        if self.stack.currentIndex() == PAGE_ONBOARDING and self._has_any_provider():
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
            self.onboarding_holder.layout().addWidget(self.onboarding)  # type: ignore[union-attr]
            self.onboarding.sig_completed.connect(lambda _pid: self._leave_onboarding())
            self.onboarding.sig_skipped.connect(self._leave_onboarding)
            self.onboarding.sig_settings_requested.connect(self.open_settings)
        self.stack.setCurrentIndex(PAGE_ONBOARDING)
        self.composer.setEnabled(False)
        self._bottom.setVisible(False)  # nothing to type into yet: the page gets the room
        self.onboarding.key_edit.setFocus()
        self.onboarding.start_probe()
        return self.onboarding

    def _leave_onboarding(self) -> None:
        if self.onboarding is not None:
            self.onboarding.cancel_probe()
        self._bottom.setVisible(True)
        self.composer.setEnabled(True)
        self.stack.setCurrentIndex(PAGE_EMPTY)
        self.refresh_models()
        self.new_chat()

    # ------------------------------------------------------------------ files and help
    def choose_attachments(self) -> QFileDialog | None:
        """The paperclip (Ctrl+Shift+A): pick files to attach to the next question."""
        if self.files is None or not self.composer.isEnabled():
            return None
        return self.files.choose_attachments()

    def choose_export(self, fmt: ExportFormat) -> QFileDialog | None:
        """File › Export conversation: where to write the shown chat (md, json, html)."""
        return self.files.choose_export(fmt) if self.files is not None else None

    def choose_import(self) -> QFileDialog | None:
        """File › Import conversation: a JSON export becomes a new chat, shown."""
        return self.files.choose_import() if self.files is not None else None

    def show_shortcuts(self) -> QDialog:
        """Help › Keyboard shortcuts (Ctrl+/)."""
        from parley.ui.help import ShortcutsSheet

        return self._show_help(ShortcutsSheet(self.menu_actions.all(), self))

    def show_about(self) -> QDialog:
        """Help › About Parley: version, data folder, licences."""
        from parley.ui.help import AboutDialog

        paths = self._paths
        return self._show_help(
            AboutDialog(
                data_dir=paths.data_dir if paths is not None else None,
                config_dir=paths.config_dir if paths is not None else None,
                tasks=self._tasks,
                parent=self,
            )
        )

    def _conversation_shown(self, _conversation_id: int = -1) -> None:
        for a in self._export_actions:  # a new, empty chat has nothing to export
            a.setEnabled(self.conversation_id is not None)

    def _show_help(self, dialog: QDialog) -> QDialog:
        if self.help_dialog is not None:
            self.help_dialog.close()
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.destroyed.connect(
            lambda *_: setattr(self, "help_dialog", None) if self.help_dialog is dialog else None
        )
        self.help_dialog = dialog
        dialog.show()
        return dialog

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

    def show_costs(self) -> CostPanel | None:
        """Ctrl+Shift+C: the cost panel (a dock; again hides it)."""
        return self.money.toggle_panel() if self.money is not None else None

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
        """Attach files (read off the GUI thread) and add folders to the documents."""
        assert self._settings is not None
        return handle_drop(
            paths,
            composer=self.composer,
            notice=self.notice,
            tasks=self._tasks,
            add_folders=self.add_folders,
        )

    def add_folders(self, folders: Sequence[str]) -> list[str]:
        """Add folders to ``settings.knowledge.folders`` and index them; returns those new."""
        assert self._settings is not None
        if self.docks is not None:
            return self.docks.add_folders(folders)
        from parley.ui.knowledge.docks import add_folders_to_settings

        return add_folders_to_settings(self._settings, folders, self.notice)

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
        for part in (self.models, self.conversation_list):
            if part is not None:
                part.closing = True
        if self.money is not None:
            self.money.shutdown()
        if self.controller is not None:
            self.controller.stop()
            await self.controller.wait()
        if self.session is not None:
            showing_chat = self.stack.currentIndex() == PAGE_CHAT and self.view is not None
            anchor = self.view.scroll_anchor() if showing_chat and self.view else None
            await self.session.save_on_quit(anchor)
        if self.onboarding is not None:
            self.onboarding.cancel_probe()
        if self.knowledge is not None:
            await self.knowledge.shutdown()  # stops the indexing worker
        await self._tasks.cancel_all()
        if self._settings is not None:
            self._settings.remove_listener(self._settings_changed)
        save_geometry(self, self.splitter, self._geometry_file)

    def close_now(self) -> None:
        """Close the window without asking (after :meth:`shutdown`)."""
        self._closing = True
        if self.settings_dialog is not None:
            self.settings_dialog.close()
        self.close()


# ---------------------------------------------------------------- helpers
def _local_paths(urls: Sequence[QUrl]) -> list[str]:
    return [u.toLocalFile() for u in urls if u.isLocalFile() and u.toLocalFile()]


def price_text(catalog: Catalog, provider: str, model: str) -> str | None:
    """The catalog's price for a model as the usage tooltip says it (None: unknown)."""
    info = catalog.model(model, provider)
    if info is None or not info.has_prices:
        return None
    text = f"${info.price_input:g} in · ${info.price_output:g} out"
    if info.price_cached_input is not None:
        text += f" · ${info.price_cached_input:g} cached"
    return text + " per 1M tokens" + (f" (as of {info.as_of})" if info.as_of else "")
