"""The documents feature in the window: the Documents and Sources docks, citations, notices.

:class:`KnowledgeDocks` sits between the window and the
:class:`~parley.ui.knowledge.controller.KnowledgeController`: it creates the Knowledge panel
and the Sources panel as docks on the right the first time they are opened, keeps the Sources
panel on the answer in focus, opens citations (checked by the controller), turns indexing
progress into status-strip messages while the Documents dock is closed, adds dropped folders,
and opens the documents before a turn that may use them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import QDockWidget, QMainWindow, QWidget

from parley.ui.chat.model import ChatRole
from parley.ui.plain import shown

if TYPE_CHECKING:
    from parley.core.chat import TurnOptions
    from parley.core.knowledge.feature import KnowledgeFeature
    from parley.core.paths import Paths
    from parley.core.secrets import Secrets
    from parley.core.settings import SettingsStore
    from parley.ui.chat.transcript import Transcript
    from parley.ui.knowledge.controller import KnowledgeController
    from parley.ui.knowledge.panel import KnowledgePanel
    from parley.ui.knowledge.preview import CitationPreview
    from parley.ui.knowledge.sources_panel import SourcesPanel
    from parley.ui.notices import NoticeBar
    from parley.ui.status import StatusStrip
    from parley.ui.tasks import TaskSet


class KnowledgeDocks(QObject):
    """The window's side of the documents feature.

    Args:
        window: Where the docks go.
        knowledge: Folders, indexing, sources and citation checks.
        transcript: The answers shown (the Sources panel follows them).
        notice: The window's notice bar.
        status: The window's status strip.
        tasks: Where opening the documents runs.
    """

    def __init__(
        self,
        window: QMainWindow,
        knowledge: KnowledgeController,
        *,
        transcript: Transcript,
        notice: NoticeBar,
        status: StatusStrip,
        tasks: TaskSet,
    ) -> None:
        super().__init__(window)
        self._window = window
        self.knowledge = knowledge
        self._transcript = transcript
        self._notice = notice
        self._status = status
        self._tasks = tasks
        self.knowledge_panel: KnowledgePanel | None = None
        self.sources_panel: SourcesPanel | None = None
        self.knowledge_dock: QDockWidget | None = None
        self.sources_dock: QDockWidget | None = None
        self._focused_answer: str | None = None
        self._citation_opener: Callable[[Any], None] | None = None
        self.preview: CitationPreview | None = None
        self.preview_dock: QDockWidget | None = None
        self._preview_source: Any = None

        k = knowledge
        k.sig_notice.connect(self._knowledge_notice)
        k.sig_loading_changed.connect(self._knowledge_loading)
        k.sig_index_progress.connect(self._index_progress)
        k.sig_index_finished.connect(self._index_finished)
        k.sig_needs_reindex_changed.connect(self._needs_reindex_changed)
        transcript.set_sources_memory(k.remember_sources)
        transcript.sig_sources_changed.connect(self._sources_changed)
        view = transcript.view
        view.sig_citation_activated.connect(self.open_citation)
        view.sig_message_focused.connect(self._message_focused)

    # ---- Public API
    def show_documents(self) -> KnowledgePanel:
        """The Knowledge panel (a dock on the right; its states refresh)."""
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

    def show_sources(self, message_id: str | None = None) -> SourcesPanel:
        """The Sources panel for an answer (default: the selected or last one)."""
        if self.sources_panel is None:
            from parley.ui.knowledge.sources_panel import SourcesPanel

            panel = SourcesPanel()
            panel.sig_open_requested.connect(self.open_citation)
            self.sources_panel = panel
            self.sources_dock = self._dock(panel, "Sources", "sourcesDock")
        assert self.sources_dock is not None
        self.sources_dock.show()
        self.sources_dock.raise_()
        self._show_sources_for(
            message_id or self._focused_answer or self._transcript.last_message(ChatRole.ASSISTANT)
        )
        return self.sources_panel

    def open_citation(self, message_id: str, n: int) -> None:
        """Show source ``n`` of an answer in the preview pane (checked by the controller)."""
        sources = self.knowledge.sources_for(message_id) or []
        self._preview_source = next((s for s in sources if s.n == n), None)
        request = self.knowledge.open_citation(message_id, n)
        if request is None:
            return
        where = request.where()
        self._status.showMessage(
            f"Showing {request.path.name}" + (f" at {where}" if where else "") + ".", 5000
        )
        if self._sources_visible() and self.sources_panel is not None:
            if self.sources_panel.message_id() != message_id:
                self._show_sources_for(message_id, select=n)
            else:
                self.sources_panel.select(n)

    def set_citation_opener(self, opener: Callable[[Any], None] | None) -> None:
        """Replace how citations are opened (tests record instead of launching programs)."""
        self._citation_opener = opener

    def open_target(self, request: Any) -> None:
        """Show a checked citation target in the preview pane (the controller's ``opener``)."""
        preview = self.show_preview()
        source, self._preview_source = self._preview_source, None
        self._tasks.spawn(preview.show_citation(request, source), name="citation-preview")

    def show_preview(self) -> CitationPreview:
        """The citation preview pane (a dock), shown."""
        if self.preview is None:
            from parley.ui.knowledge.preview import CitationPreview

            self.preview = CitationPreview(self.knowledge.load_document)
            self.preview.sig_open_external.connect(self.open_external)
            self.preview_dock = self._dock(self.preview, "Preview", "previewDock")
        assert self.preview_dock is not None
        self.preview_dock.show()
        self.preview_dock.raise_()
        return self.preview

    def open_external(self, request: Any) -> bool:
        """The "Open in default app" button: start the program; say so when it fails."""
        if self._citation_opener is not None:
            self._citation_opener(request)
            return True
        from parley.ui.knowledge.citations import system_open

        ok = system_open(request)
        text = (
            f"Opened {request.path.name} in the default app."
            if ok
            else f"Could not open {request.path.name}: no application could be started."
        )
        if self.preview is not None:
            self.preview.say(text)
        if not ok:
            self._notice.show_notice(text, kind="error", timeout_s=10.0, tag="open")
        return ok

    def add_folders(self, folders: Sequence[str]) -> list[str]:
        """Add folders to the documents and index them; returns those new."""
        added = self.knowledge.add_folders(folders)
        if added:
            names = ", ".join(f"“{Path(a).name or a}”" for a in added)
            one = len(added) == 1
            self._notice.show_notice(
                f"Added {names} to your documents; indexing {'it' if one else 'them'} now. "
                f"Turn on “Use my documents” to answer from {'it' if one else 'them'}.",
                tag="folder",
                action=("Show", self.show_documents),
            )
        elif folders:
            names = ", ".join(f"“{Path(f).name or f}”" for f in folders)
            self._notice.show_notice(
                f"{names} {'is' if len(folders) == 1 else 'are'} already in your documents. "
                "Checking for changes…",
                tag="folder",
                action=("Show", self.show_documents),
            )
        return added

    def warm_up(self) -> None:
        """Open the documents now ("Use my documents" was switched on while typing)."""
        if not self.knowledge.is_attached():
            self._tasks.spawn(self.knowledge.ensure_attached(), name="knowledge-warm")

    async def prepare_turn(self, options: TurnOptions) -> None:
        """Open the documents when the turn may use them (the core's rule).

        That is "Use my documents", or "Use tools" with folders added (knowledge_search).
        """
        if options.use_knowledge and not self.knowledge.folders():
            self._notice.show_notice(
                "You have not added any documents yet: drop a folder on the window or use "
                "Documents ▸ Add folder…",
                tag="knowledge",
            )
        if not self.knowledge.needed_for(options):
            return
        # Opens chromadb and the embedding model (1-2 s, in a worker thread) the first time;
        # if it fails the notice says why and the answer comes without documents.
        await self.knowledge.ensure_attached()

    # ---- docks
    def _dock(self, widget: QWidget, title: str, name: str) -> QDockWidget:
        dock = QDockWidget(title, self._window)
        dock.setObjectName(name)
        dock.setWidget(widget)
        dock.setAllowedAreas(
            Qt.DockWidgetArea.RightDockWidgetArea | Qt.DockWidgetArea.LeftDockWidgetArea
        )
        # The window places it (ui/side_panels.py): docked beside the others as tabs, or
        # over the chat when the window is too narrow to dock it.
        self._window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
        return dock

    def _show_sources_for(self, message_id: str | None, select: int | None = None) -> None:
        if self.sources_panel is None:
            return
        view = self._transcript.view
        if message_id is None or view.item(message_id) is None:
            self.sources_panel.show_sources(None, None)
            return
        sources = self.knowledge.sources_for(message_id)
        self.sources_panel.show_sources(
            message_id,
            sources,
            select=select,
            search_query=self.knowledge.search_query_for(message_id),
        )

    def _sources_visible(self) -> bool:
        return self.sources_dock is not None and self.sources_dock.isVisible()

    def _documents_visible(self) -> bool:
        return self.knowledge_dock is not None and self.knowledge_dock.isVisible()

    def _sources_changed(self, message_id: str) -> None:
        if self._sources_visible():
            self._show_sources_for(message_id)

    def _message_focused(self, message_id: str) -> None:
        item = self._transcript.view.item(message_id)
        if item is None or item.role != ChatRole.ASSISTANT:
            return
        self._focused_answer = message_id
        if self._sources_visible() and self.sources_panel is not None:
            if self.sources_panel.message_id() != message_id:
                self._show_sources_for(message_id)

    # ---- knowledge controller signals
    def _knowledge_notice(self, message: str, kind: str) -> None:
        self._notice.show_notice(
            message,
            kind=kind,  # type: ignore[arg-type]  # the controller sends info/warning/error
            timeout_s=12.0 if kind != "info" else 8.0,
            tag="knowledge",
        )

    def _knowledge_loading(self, loading: bool) -> None:
        if loading:
            self._status.showMessage("Loading your documents…")
        elif self._status.currentMessage() == "Loading your documents…":
            self._status.clearMessage()

    def _index_progress(self, p: Any) -> None:
        if self._documents_visible():
            return
        if p.phase == "indexing" and p.files_total:
            self._status.showMessage(
                f"Indexing your documents: {p.files_done:,} of {p.files_total:,} files…", 4000
            )
        elif p.phase == "rebuilding":
            why = getattr(p, "reason", None)
            self._status.showMessage(
                shown("Rebuilding the document index" + (f" because {why}" if why else "") + "…"),
                4000,
            )

    def _index_finished(self, _report: Any, summary: str) -> None:
        if summary and not self._documents_visible():
            self._status.showMessage(f"Documents: {summary}", 8000)

    def _needs_reindex_changed(self, needed: bool) -> None:
        if needed and not self._documents_visible():
            self._notice.show_notice(
                "Your documents must be indexed again for the new embedding model.",
                kind="warning",
                action=("Re-index now", self._reindex_all),
                tag="knowledge",
            )

    def _reindex_all(self) -> None:
        self.knowledge.reindex_all()
        self.show_documents()


def add_folders_to_settings(
    settings: SettingsStore, folders: Sequence[str], notice: NoticeBar
) -> list[str]:
    """Add folders to ``settings.knowledge.folders`` (no indexing); returns those new.

    What the window does when the documents feature is not bound (no knowledge feature).
    """
    s = settings.current
    known = list(s.knowledge.folders)
    added: list[str] = []
    for f in folders:
        resolved = str(Path(f).expanduser().resolve())
        if resolved not in known:
            known.append(resolved)
            added.append(resolved)
    if added:
        knowledge = s.knowledge.model_copy(update={"folders": known})
        settings.update(s.model_copy(update={"knowledge": knowledge}))
        names = ", ".join(f"“{Path(a).name or a}”" for a in added)
        notice.show_notice(
            f"Added {names} to your documents. Turn on “Use my documents” to answer from "
            f"{'it' if len(added) == 1 else 'them'}.",
            tag="folder",
        )
    else:
        names = ", ".join(f"“{Path(f).name or f}”" for f in folders)
        notice.show_notice(
            f"{names} {'is' if len(folders) == 1 else 'are'} already in your documents.",
            tag="folder",
        )
    return added


def bind_knowledge(
    window: QMainWindow,
    *,
    paths: Paths,
    settings: SettingsStore,
    secrets: Secrets,
    feature: KnowledgeFeature,
    transcript: Transcript,
    notice: NoticeBar,
    status: StatusStrip,
    tasks: TaskSet,
) -> KnowledgeDocks:
    """The window's documents feature: its controller (``.knowledge``) and its docks."""
    from parley.ui.knowledge.controller import KnowledgeController

    docks: KnowledgeDocks | None = None
    knowledge = KnowledgeController(
        paths=paths,
        settings=settings,
        secrets=secrets,
        tasks=tasks,
        feature=feature,
        opener=lambda request: docks.open_target(request) if docks else None,
    )
    docks = KnowledgeDocks(
        window,
        knowledge,
        transcript=transcript,
        notice=notice,
        status=status,
        tasks=tasks,
    )
    return docks
