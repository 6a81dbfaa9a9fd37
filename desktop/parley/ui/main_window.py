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
- what is clicked on messages, the model and switches chosen, a turn's start and end:
  :class:`~parley.ui.window_turns.TurnEvents`;
- the model list, warm-up and detail text: :class:`~parley.ui.model_picker.ModelChooser`;
- which chat shows (new or reopened) and its cost: :class:`~parley.ui.shown_chat.ShownChat`;
- settings, theme and onboarding: :class:`~parley.ui.window_settings.SettingsAndOnboarding`;
- help, "Open link?", "Delete answer": :class:`~parley.ui.window_dialogs.WindowDialogs`;
- documents, citations and their docks: :class:`~parley.ui.knowledge.docks.KnowledgeDocks`;
- the conversation list and every write (rename, delete, undo, versions, options, a chat's
  prompt): :class:`~parley.ui.conversations.ConversationList` runs ``ChatSession``
  operations on the database's one writer thread, which report what changed
  (:class:`~parley.core.chat.OpChanges`); the window decides what to redraw.
  Conversations are read in worker threads: the GUI thread never touches the database.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDragMoveEvent, QDropEvent, QPaintEvent
from PySide6.QtWidgets import QDialog, QDockWidget, QFileDialog, QMainWindow, QMessageBox

from parley.ui.attachments import drag_entered, drag_moved, dropped, handle_drop
from parley.ui.conversations import ConversationList
from parley.ui.errors import ErrorPresenter
from parley.ui.model_picker import ModelChooser, price_text
from parley.ui.tasks import TaskSet
from parley.ui.theme import app_icon
from parley.ui.turns import TurnRequests
from parley.ui.window_dialogs import WindowDialogs
from parley.ui.window_layout import (
    PAGE_CHAT,
    PAGE_FAILED,
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
    from parley.core.settings import SettingsStore
    from parley.core.store.conversations import ConversationStore
    from parley.core.tools.approval import Approval
    from parley.core.transfer import ExportFormat
    from parley.ui.chat.transcript import Transcript
    from parley.ui.chat.view import ChatView
    from parley.ui.controllers import ChatController
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
    from parley.ui.shown_chat import ShownChat
    from parley.ui.side_panels import SidePanels
    from parley.ui.window_session import WindowSession
    from parley.ui.window_settings import SettingsAndOnboarding
    from parley.ui.window_turns import TurnEvents

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
        self._poll_ms = poll_ms
        self._painted = False
        self._closing = False
        self._bound = False

        # collaborators (set in bind)
        self._settings: SettingsStore | None = None
        self.controller: ChatController | None = None
        self.view: ChatView | None = None
        self.transcript: Transcript | None = None
        self.models: ModelChooser | None = None
        self.actions_hook: MessageActions | None = None
        self.prefs: SettingsAndOnboarding | None = None
        """The settings dialog, the theme and the onboarding page (set in bind)."""
        self.knowledge: KnowledgeController | None = None
        """Folders, indexing and citations (None when bound without the knowledge feature)."""
        self.docks: KnowledgeDocks | None = None
        """The Documents and Sources docks (with :attr:`knowledge`)."""
        self.conversation_list: ConversationList | None = None
        self.turns: TurnRequests | None = None
        """Turns started from the composer and the messages' actions."""
        self.turn_events: TurnEvents | None = None
        """Message actions, footer links, the model and switches, the turn's signals."""
        self.session: WindowSession | None = None
        """Drafts, the open chat and its scroll position across starts; the poll."""
        self.files: FileActions | None = None
        """Attach (the paperclip), export and import."""
        self._paths: Paths | None = None
        self.money: MoneyFeature | None = None
        """The estimate, the ticking cost, the cost panel and budgets (issue 13)."""

        self.shown: ShownChat | None = None
        """Which chat shows (new or stored), its row and its cost."""
        self._startup: list[asyncio.Task[Any] | None] = []

        self._layout = ui = WindowLayout(self)
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
        self.dialogs = WindowDialogs(
            self,
            tasks=tasks,
            menu_actions=self.menu_actions,
            confirm_links=confirm_links,
            paths=lambda: self._paths,
            turns=lambda: self.turns,
        )
        self.panels: SidePanels | None = None
        """Where panels go: docked on the right, or over the chat in a narrow window."""
        restore_geometry(self, self.splitter, geometry_file)

    @property
    def conversation_id(self) -> int | None:
        """The conversation shown (None: a new, empty chat)."""
        return self.transcript.conversation_id if self.transcript is not None else None

    @property
    def onboarding(self) -> OnboardingPanel | None:
        """The first-run panel once shown."""
        return self.prefs.onboarding if self.prefs is not None else None

    @property
    def settings_dialog(self) -> SettingsDialog | None:
        """The settings dialog while it is open."""
        return self.prefs.settings_dialog if self.prefs is not None else None

    @property
    def help_dialog(self) -> QDialog | None:
        """The shortcuts sheet or the About box while one is open."""
        return self.dialogs.help_dialog

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
        from parley.ui.shown_chat import ShownChat
        from parley.ui.side_panels import SidePanels
        from parley.ui.window_session import POLL_MS, WindowSession
        from parley.ui.window_settings import SettingsAndOnboarding
        from parley.ui.window_turns import TurnEvents

        self.panels = SidePanels(self, chat_area=self.chat_pane, sidebar=self.sidebar)
        self._settings = settings

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
        self.turn_events = events = TurnEvents(
            view=self.view,
            transcript=self.transcript,
            models=self.models,
            stack=self.stack,
            status=self.status,
            act_regenerate=self.act_regenerate,
            chat=chat,
            run_op=self._run_op,
            shown=lambda: self.conversation_id,
            docks=lambda: self.docks,
            refresh_sidebar=self.refresh_sidebar,
            refresh_cost=lambda: self.shown.refresh_cost() if self.shown else None,
            conversation_shown=self._conversation_shown,
            begin_edit=self.begin_edit,
            retry=self.retry_message,
            delete_answer=self.delete_answer,
            show_version=self.show_version,
            show_sources=self.show_sources,
        )
        self.turns = TurnRequests(
            composer=self.composer,
            picker=self.picker,
            controller=self.controller,
            transcript=self.transcript,
            notice=self.notice,
            chat=chat,
            run_op=self._run_op,
            turn_options=turn_options,
            before_turn=events.prepare_turn,
            reopen=self.open_conversation,
            gate=self.money.budget.gate if self.money is not None else None,
        )
        events.connect(
            controller=self.controller,
            actions_hook=self.actions_hook,
            branch_bar=self.branch_bar,
            composer=self.composer,
            picker=self.picker,
        )
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
        self.transcript.sig_conversation_missing.connect(self._conversation_missing)
        self.view.sig_link_activated.connect(self.dialogs.open_link)
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
        self.shown = ShownChat(
            transcript=self.transcript,
            models=self.models,
            composer=self.composer,
            sidebar=self.sidebar,
            status=self.status,
            stack=self.stack,
            view=self.view,
            store=conversations,
            session=self.session,
            tasks=self._tasks,
            closing=lambda: self._closing,
            onboarding_shown=lambda: self.onboarding is not None,
            opened=self.sig_conversation_opened.emit,
        )
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
            from parley.ui.knowledge.docks import bind_knowledge

            self.docks = bind_knowledge(
                self,
                paths=paths,
                settings=settings,
                secrets=secrets,
                feature=knowledge,
                transcript=self.transcript,
                notice=self.notice,
                status=self.status,
                tasks=self._tasks,
            )
            self.knowledge = self.docks.knowledge
            for part in (*self._knowledge_actions, self.documents_button, self.sources_button):
                part.setEnabled(True)

        self.prefs = SettingsAndOnboarding(
            self,
            settings=settings,
            secrets=secrets,
            catalog=catalog,
            providers=providers,
            chat=chat,
            tasks=self._tasks,
            models=self.models,
            stack=self.stack,
            composer=self.composer,
            bottom=self._bottom,
            onboarding_holder=self.onboarding_holder,
            probe_ports=self._probe_ports,
            shown=lambda: self.conversation_id,
            conversation=lambda: self.shown.conversation if self.shown else None,
            run_op=self._run_op,
            refresh_models=self.refresh_models,
            new_chat=self.new_chat,
        )
        self.prefs.start()

        self._layout.set_tab_order(self.view.canvas() if self.view is not None else None)
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
        self._startup.append(self._tasks.spawn(self.shown.restore(), name="restore"))
        self.session.start_polling()
        self.sig_ready.emit()

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
            if self.shown is not None:  # the shown chat's row (its own system prompt)
                self.shown.conversation = conv

    # ------------------------------------------------------------------ conversations
    def new_chat(self) -> None:
        """Ctrl+N: an empty chat (created in the store when the first question is sent)."""
        if not self._bound or self._closing or self.shown is None:
            return
        self.shown.new_chat()

    def open_conversation(self, conversation_id: int) -> asyncio.Task[None] | None:
        """Show a stored conversation (its current branch), read off the GUI thread."""
        if not self._bound or self._closing or self.shown is None:
            return None
        return self.shown.open_conversation(conversation_id)

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

    async def ask_folder_approval(self, folder: str) -> Approval:
        """Ask whether the tools may read ``folder`` (Allow once / Always / Deny)."""
        return await self.dialogs.ask_folder_approval(folder)

    def delete_answer(self, message_id: str) -> QMessageBox:
        """Ask, then delete an answer and what followed it (the box is window-modal)."""
        return self.dialogs.delete_answer(message_id)

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

    # ------------------------------------------------------------------ models
    def refresh_models(self) -> asyncio.Task[None] | None:
        """Rebuild the picker from the catalog and the keys; ask local servers for their list."""
        if not self._bound or self.models is None:
            return None
        return self.models.refresh()

    # ------------------------------------------------------------------ settings & onboarding
    def open_settings(self, provider_id: str | None = None) -> SettingsDialog | None:
        """Ctrl+,: the settings dialog (non-modal)."""
        if not self._bound or self.prefs is None:
            return None
        return self.prefs.open_settings(provider_id)

    def show_onboarding(self) -> OnboardingPanel:
        """Show the first-run panel and start probing for local servers."""
        assert self.prefs is not None
        return self.prefs.show_onboarding()

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
        return self.dialogs.show_shortcuts()

    def show_about(self) -> QDialog:
        """Help › About Parley: version, data folder, licences."""
        return self.dialogs.show_about()

    def _conversation_shown(self, _conversation_id: int = -1) -> None:
        for a in self._export_actions:  # a new, empty chat has nothing to export
            a.setEnabled(self.conversation_id is not None)

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
        drag_entered(event, self._bound)

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        """Keep accepting while the drag moves over the window."""
        drag_moved(event, self._bound)

    def dropEvent(self, event: QDropEvent) -> None:
        """Files attach to the next message; folders are added to the documents."""
        if paths := dropped(event, self._bound):
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
        if self.prefs is not None:
            self.prefs.stop()
        save_geometry(self, self.splitter, self._geometry_file)

    def close_now(self) -> None:
        """Close the window without asking (after :meth:`shutdown`)."""
        self._closing = True
        if self.settings_dialog is not None:
            self.settings_dialog.close()
        self.close()
