"""The knowledge controller: folders, background indexing, grounding and citations for the window.

It turns what the person does (add a folder, re-index, remove, cancel, click a citation) into
core calls, and core state into Qt signals the :class:`~parley.ui.knowledge.panel.KnowledgePanel`
and the main window show. Rules it keeps:

- Nothing heavy at import time: the knowledge store, the indexer and the embedder pull in
  chromadb and onnxruntime, so they are imported inside functions, after the first paint.
- Nothing blocking on the GUI thread: opening the store (the core's
  :class:`~parley.core.knowledge.feature.KnowledgeFeature` ``attach``, ~1-2 s: chromadb and
  the ONNX model), reading folder states and skipped lists (a SQLite scan of up to 100k rows) and
  removing a folder run under ``asyncio.to_thread``. Indexing itself runs in a worker *process*
  (``index_in_background``): measured, it disturbs the window's event loop far less than a
  thread would (the GIL and both cores go to tokenising and ONNX otherwise).
- One indexing run at a time (the core enforces one writer per index): folders asked for while
  a run is going wait in a queue and go in the next run. Cancel stops the run (the worker
  finishes the file it is on; what is done stays indexed and the folder shows "Incomplete").
- The folders added to Parley live in ``settings.knowledge.folders`` (they also confine the
  file tools and the grounded search): adding or removing a folder here updates that list.
- Citations open only files named by the answer's stored sources and inside an added folder
  (:func:`~parley.ui.knowledge.citations.resolve_citation`); the opener is injectable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal

from parley.core.errors import ParleyError
from parley.ui.knowledge.citations import (
    CitationRefused,
    Opener,
    OpenRequest,
    parse_sources,
    resolve_citation,
    system_open,
)
from parley.ui.knowledge.panel import FolderRow, KnowledgePanel, skipped_rows
from parley.ui.tasks import TaskSet

if TYPE_CHECKING:
    from parley.core.knowledge.feature import KnowledgeFeature, TurnSwitches
    from parley.core.knowledge.grounding import KnowledgeGrounder, Source
    from parley.core.knowledge.store import KnowledgeStore
    from parley.core.paths import Paths
    from parley.core.secrets import Secrets
    from parley.core.settings import Settings, SettingsStore

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 5.0
"""How long a cancelled indexing worker may take to finish its file before it is killed."""

ROWS_REFRESH_S = 2.0
"""While indexing, the folders' counts are re-read at most this often."""

MAX_REMEMBERED_ANSWERS = 500
"""Answers whose sources are kept in memory for citation clicks (least recently used go)."""

IndexEvents = Callable[[Sequence[Path]], AsyncIterator[Any]]
"""Starts an indexing run over folders and yields ``IndexProgress`` events, then an
``IndexReport`` (``index_in_background`` configured from the settings, by default)."""


class KnowledgeController(QObject):
    """Folders, indexing runs, grounding and citation clicks, reported as signals.

    Args:
        paths: Parley's folders (the worker process opens the same index).
        settings: The settings (``knowledge.folders`` is kept in step).
        secrets: Keys for OpenAI embeddings and a Chroma server token (team mode).
        tasks: Where background work is started (cancelled and awaited on quit).
        feature: The core's documents feature (opens and closes the index; its rule says
            which turns need it).
        opener: Opens a checked citation (default: the right program, or the system viewer).
        index_events: Starts an indexing run (default: ``index_in_background`` from settings).
    """

    # ---- Signals
    sig_folders_changed = Signal(object)
    """The folders and their states: ``list[FolderRow]``."""
    sig_needs_reindex_changed = Signal(bool)
    """Whether the index must be rebuilt (the embedding model changed, or it was lost)."""
    sig_busy_changed = Signal(bool)
    """An indexing run started (True) or ended (False)."""
    sig_index_started = Signal(object)
    """A run started over these folders: ``list[str]``."""
    sig_index_progress = Signal(object)
    """Where the run is: ``IndexProgress``."""
    sig_index_finished = Signal(object, str)
    """A run ended: (``IndexReport`` or None when it failed or was cancelled, a summary)."""
    sig_skipped_loaded = Signal(str, object)
    """The skipped files of a folder: (folder, ``list[tuple[Path, str]]``)."""
    sig_error = Signal(str)
    """Something failed: a one-line message for the panel ("" clears it)."""
    sig_loading_changed = Signal(bool)
    """Opening the documents (chromadb and the embedding model) started or ended."""
    sig_notice = Signal(str, str)
    """Something for the window's notice bar: (message, kind ``info``/``warning``/``error``)."""
    sig_citation_opened = Signal(object)
    """A citation was opened: the :class:`~parley.ui.knowledge.citations.OpenRequest`."""

    def __init__(
        self,
        *,
        paths: Paths,
        settings: SettingsStore,
        secrets: Secrets | None,
        tasks: TaskSet,
        feature: KnowledgeFeature,
        opener: Opener = system_open,
        index_events: IndexEvents | None = None,
    ) -> None:
        super().__init__()
        self._paths = paths
        self._settings = settings
        self._secrets = secrets
        self._tasks = tasks
        self._feature = feature
        self._opener = opener
        self._index_events = index_events or self._default_index_events
        self._grounder: KnowledgeGrounder | None = None
        self._attach_task: asyncio.Task[Any] | None = None
        self._run_task: asyncio.Task[None] | None = None
        self._refresh_task: asyncio.Task[None] | None = None
        self._refresh_again = False
        self._queue: list[str] = []
        self._running: list[str] = []
        self._rows: list[FolderRow] = []
        self._base_rows: list[FolderRow] = []
        self._roots: list[str] = []
        self._needs_reindex = False
        self._answers: OrderedDict[str, list[Source]] = OrderedDict()
        self._queries: dict[str, str] = {}  # answers whose search was a rewritten follow-up
        self._knowledge_key = _knowledge_key(settings.current)
        self._closing = False
        settings.add_listener(self._settings_changed)

    # ------------------------------------------------------------------ state
    @property
    def grounder(self) -> KnowledgeGrounder | None:
        """The attached grounder, once :meth:`ensure_attached` succeeded."""
        return self._grounder

    @property
    def store(self) -> KnowledgeStore | None:
        """The open knowledge store (None until attached)."""
        return self._grounder.retriever.store if self._grounder is not None else None

    def is_busy(self) -> bool:
        """Whether an indexing run is going."""
        return self._run_task is not None and not self._run_task.done()

    def is_attached(self) -> bool:
        """Whether the documents are open (retrieval plugged into the chat)."""
        return self._grounder is not None

    def folders(self) -> list[str]:
        """The folders added to Parley (``settings.knowledge.folders``)."""
        return list(self._settings.current.knowledge.folders)

    def needed_for(self, switches: TurnSwitches) -> bool:
        """Whether a turn with these switches reads the documents (the core's rule)."""
        return self._feature.needed_for(switches)

    def rows(self) -> list[FolderRow]:
        """The folder states last reported."""
        return list(self._rows)

    def running(self) -> list[str]:
        """Folders in the current indexing run."""
        return list(self._running)

    def queued(self) -> list[str]:
        """Folders waiting for the next run."""
        return list(self._queue)

    def bind_panel(self, panel: KnowledgePanel) -> None:
        """Connect a panel: its requests to this controller, this controller's news to it."""
        panel.sig_add_requested.connect(self._panel_add)
        panel.sig_reindex_requested.connect(self._panel_reindex)
        panel.sig_reindex_all_requested.connect(self.reindex_all)
        panel.sig_remove_requested.connect(self.remove_folder)
        panel.sig_cancel_requested.connect(self.cancel)
        panel.sig_skipped_requested.connect(self.load_skipped)
        self.sig_folders_changed.connect(panel.set_folders)
        self.sig_needs_reindex_changed.connect(panel.set_needs_reindex)
        self.sig_busy_changed.connect(panel.set_busy)
        self.sig_index_started.connect(panel.set_starting)
        self.sig_index_progress.connect(panel.set_progress)
        self.sig_index_finished.connect(panel.show_finished)
        self.sig_skipped_loaded.connect(panel.set_skipped)
        self.sig_error.connect(panel.set_error)
        self.sig_loading_changed.connect(panel.set_loading)
        panel.set_busy(self.is_busy())
        panel.set_needs_reindex(self._needs_reindex)
        if self._rows:
            panel.set_folders(self._rows)

    def _panel_add(self, path: str) -> None:
        self.add_folders([path])

    def _panel_reindex(self, path: str) -> None:
        self.index([path])

    # ------------------------------------------------------------------ attach
    async def ensure_attached(self) -> KnowledgeGrounder | None:
        """Open the documents (once; concurrent callers share the work).

        Returns:
            The grounder, or None when the store cannot be opened (the reason goes to
            ``sig_error`` and ``sig_notice``).
        """
        if self._grounder is not None:
            return self._grounder
        task = self._attach_task
        if task is None or task.done():
            task = self._attach_task = self._tasks.spawn(self._attach(), name="knowledge-attach")
        # Shielded: a turn stopped while it waits here must not abandon the store half-open.
        return await asyncio.shield(task)

    async def _attach(self) -> KnowledgeGrounder | None:
        # A ParleyError is an expected outcome (no model files, server down): reported here,
        # not raised, so the task set does not treat it as a bug.
        self.sig_loading_changed.emit(True)
        try:
            # warm: the ONNX session loads now, in this worker thread, not at the first question
            grounder = await asyncio.to_thread(self._feature.attach, warm=True)
        except ParleyError as exc:
            self.sig_error.emit(exc.user_message)
            self.sig_notice.emit(f"Your documents could not be opened: {exc.user_message}", "error")
            return None
        finally:
            self.sig_loading_changed.emit(False)
        self._grounder = grounder
        return grounder

    # ------------------------------------------------------------------ folder states
    def refresh(self) -> asyncio.Task[None]:
        """Re-read the folders' states off the GUI thread, then emit them."""
        if self._refresh_task is not None and not self._refresh_task.done():
            self._refresh_again = True
            return self._refresh_task
        self._refresh_task = self._tasks.spawn(self._refresh(), name="knowledge-refresh")
        return self._refresh_task

    async def _refresh(self) -> None:
        while True:
            self._refresh_again = False
            store = self.store if await self.ensure_attached() is not None else None
            folders = self.folders()
            if store is None:
                rows = [_row_without_store(Path(f)) for f in folders]
                roots: list[str] = []
                needs = False
            else:
                try:
                    rows, roots, needs = await asyncio.to_thread(_snapshot, store, folders)
                except ParleyError as exc:
                    self.sig_error.emit(exc.user_message)
                    return
            if self._closing:
                return
            self._roots = roots
            self._publish(rows, needs)
            if not self._refresh_again:
                return

    def _publish(self, rows: list[FolderRow] | None = None, needs: bool | None = None) -> None:
        if rows is not None:
            self._base_rows = rows
        base = self._base_rows
        running = {str(Path(r)) for r in self._running}
        queued = {str(Path(r)) for r in self._queue}
        shown: list[FolderRow] = []
        for row in base:
            key = str(row.path)
            status = row.status
            if status != "missing":
                if key in running or _covers_any(row.path, running):
                    status = "indexing"
                elif key in queued or _covers_any(row.path, queued):
                    status = "queued"
            shown.append(_replace_status(row, status))
        self._rows = shown
        self.sig_folders_changed.emit(shown)
        if needs is not None and needs != self._needs_reindex:
            self._needs_reindex = needs
            self.sig_needs_reindex_changed.emit(needs)

    def needs_reindex(self) -> bool:
        """Whether the last refresh found that the index must be rebuilt."""
        return self._needs_reindex

    def load_skipped(self, folder: str) -> asyncio.Task[None]:
        """Read a folder's skipped files off the GUI thread; emits ``sig_skipped_loaded``."""

        async def run() -> None:
            store = self.store if await self.ensure_attached() is not None else None
            if store is None:
                self.sig_skipped_loaded.emit(folder, [])
                return
            items = await asyncio.to_thread(_skipped_rows, store, Path(folder))
            if not self._closing:
                self.sig_skipped_loaded.emit(folder, items)

        return self._tasks.spawn(run(), name="knowledge-skipped")

    # ------------------------------------------------------------------ add / remove
    def add_folders(self, paths: Iterable[str | Path], *, index: bool = True) -> list[str]:
        """Add folders to ``settings.knowledge.folders`` and queue them for indexing.

        Folders already added are queued again (a dropped folder is re-indexed, cheaply:
        unchanged files are skipped by size and time).

        Args:
            paths: Folder paths (files and missing paths are refused with a notice).
            index: Start indexing them (the default).

        Returns:
            The folders that were newly added (resolved paths).
        """
        s = self._settings.current
        known = list(s.knowledge.folders)
        added: list[str] = []
        wanted: list[str] = []
        refused: list[str] = []
        for p in paths:
            folder = Path(p).expanduser()
            try:
                resolved = folder.resolve()
            except (OSError, RuntimeError):
                refused.append(str(p))
                continue
            if not resolved.is_dir():
                refused.append(str(p))
                continue
            key = str(resolved)
            wanted.append(key)
            if key not in known:
                known.append(key)
                added.append(key)
        if added:
            knowledge = s.knowledge.model_copy(update={"folders": known})
            self._settings.update(s.model_copy(update={"knowledge": knowledge}))
        if refused:
            names = ", ".join(f"“{Path(r).name or r}”" for r in refused)
            self.sig_notice.emit(f"{names}: not a folder that Parley can read.", "warning")
        if index and wanted:
            self.index(wanted)
        self.refresh()  # the new rows show at once (as "Indexing…")
        return added

    def remove_folder(self, folder: str | Path) -> asyncio.Task[int]:
        """Forget a folder: stop indexing it, delete its chunks, drop it from the settings.

        Returns:
            The task (its result: chunks removed).
        """
        return self._tasks.spawn(self._remove(str(folder)), name="knowledge-remove")

    async def _remove(self, folder: str) -> int:
        key = str(Path(folder))
        self._queue = [q for q in self._queue if q != key]
        if self.is_busy() and (key in self._running or _covers_any(Path(key), set(self._running))):
            # The worker holds the index's write lock: stop it first, then delete.
            await self.cancel_and_wait()
        removed = 0
        store = self.store if await self.ensure_attached() is not None else None
        if store is not None:
            try:
                removed = await asyncio.to_thread(_remove_root, store, Path(key))
            except ParleyError as exc:
                self.sig_error.emit(exc.user_message)
                return 0
        s = self._settings.current
        kept = [f for f in s.knowledge.folders if str(Path(f)) != key]
        if len(kept) != len(s.knowledge.folders):
            knowledge = s.knowledge.model_copy(update={"folders": kept})
            self._settings.update(s.model_copy(update={"knowledge": knowledge}))
        self.sig_notice.emit(
            f"Removed “{Path(key).name or key}” from your documents"
            + (f" ({removed:,} passages deleted from the index)." if removed else "."),
            "info",
        )
        await self.refresh()
        return removed

    # ------------------------------------------------------------------ indexing
    def index(self, folders: Iterable[str | Path]) -> None:
        """Queue folders for indexing and start a run if none is going."""
        for f in folders:
            key = str(Path(f).expanduser())
            if key not in self._queue and not (self.is_busy() and key in self._running):
                self._queue.append(key)
        self._publish()
        if not self.is_busy() and self._queue:
            self._run_task = self._tasks.spawn(self._run_queue(), name="knowledge-index")
            self.sig_busy_changed.emit(True)
            # Feedback now: the worker process takes a few seconds to start.
            self.sig_index_started.emit(list(self._queue))

    def reindex_all(self) -> None:
        """Index every added folder (rebuilds the vectors first when the model changed)."""
        folders = [f for f in self.folders() if Path(f).exists()]
        # Folders indexed from the command line count too (a rebuild covers every chunk).
        self.index(folders or [r for r in self._roots if Path(r).exists()])

    def cancel(self) -> bool:
        """Stop the indexing run (and forget the queue); False when none was going."""
        self._queue.clear()
        if not self.is_busy():
            return False
        assert self._run_task is not None
        self._run_task.cancel()
        return True

    async def cancel_and_wait(self) -> None:
        """Cancel the run and wait until the worker has stopped."""
        task = self._run_task
        self.cancel()
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)

    async def wait_idle(self) -> None:
        """Until no indexing run is going or queued."""
        while self._run_task is not None and not self._run_task.done():
            await asyncio.gather(self._run_task, return_exceptions=True)

    async def _run_queue(self) -> None:
        try:
            while self._queue and not self._closing:
                batch, self._queue = self._queue, []
                self._running = batch
                await self._run_one(batch)
                self._running = []
        finally:
            self._running = []
            self._run_task = None
            self.sig_busy_changed.emit(False)
            if not self._closing:
                self.refresh()

    async def _run_one(self, batch: list[str]) -> None:
        from parley.core.knowledge.indexer import IndexReport

        self.sig_error.emit("")
        self.sig_index_started.emit(list(batch))
        self._publish()
        report: IndexReport | None = None
        last_refresh = time.monotonic()
        try:
            events = self._index_events([Path(b) for b in batch])
            try:
                async for ev in events:
                    if isinstance(ev, IndexReport):
                        report = ev
                    else:
                        self.sig_index_progress.emit(ev)
                        now = time.monotonic()
                        if now - last_refresh >= ROWS_REFRESH_S:
                            # Counts grow while the run goes (a cheap SQLite aggregate).
                            last_refresh = now
                            self.refresh()
            finally:
                aclose = getattr(events, "aclose", None)
                if aclose is not None:
                    with contextlib.suppress(Exception):
                        await aclose()
        except asyncio.CancelledError:
            self.sig_index_finished.emit(None, "Indexing stopped; what was done stays indexed.")
            raise
        except ParleyError as exc:
            self.sig_error.emit(exc.user_message)
            self.sig_index_finished.emit(None, "")
            return
        summary = summarize(report) if report is not None else ""
        self.sig_index_finished.emit(report, summary)
        if report is not None and report.cancelled:
            return
        # Grounded answers read through this process's store: let it see the new vectors.
        self.refresh()

    def _default_index_events(self, roots: Sequence[Path]) -> AsyncIterator[Any]:
        from parley.core.knowledge.feature import store_config
        from parley.core.knowledge.indexer import index_in_background

        ks = self._settings.current.knowledge
        embedder, server = store_config(self._settings.current, self._secrets)
        return index_in_background(
            self._paths,
            roots,
            embedder=embedder,
            server=server,
            loader_timeout_s=ks.parse_timeout_s,
            max_file_bytes=ks.max_file_mb * 2**20,
            max_chunks_per_file=ks.max_chunks_per_file,
            # Cancel and quit wait this long for the file in progress, then kill the worker
            # (the index stays consistent either way, see core/knowledge/store.py).
            stop_timeout_s=STOP_TIMEOUT_S,
        )

    # ------------------------------------------------------------------ sources and citations
    def remember_sources(
        self, message_id: str | int, sources: Iterable[Any], search_query: str | None = None
    ) -> list[Source]:
        """Keep an answer's sources (live ``Source`` objects or stored dicts) for clicks.

        ``search_query``: what the documents were searched for when it was not the question
        as asked (a follow-up rewritten into a standalone query).
        """
        parsed = parse_sources(sources)
        key = str(message_id)
        self._answers[key] = parsed
        self._answers.move_to_end(key)
        if search_query:
            self._queries[key] = search_query
        else:
            self._queries.pop(key, None)
        while len(self._answers) > MAX_REMEMBERED_ANSWERS:
            gone, _ = self._answers.popitem(last=False)
            self._queries.pop(gone, None)
        return parsed

    def search_query_for(self, message_id: str | int) -> str | None:
        """The rewritten search query of an answer (None: its question was searched as asked)."""
        return self._queries.get(str(message_id))

    def load_document(self, path: Path) -> Any:
        """Parse a PDF/DOCX/HTML file as text in the isolated loader (blocking: a thread)."""
        return self._feature.load_document(path)

    def sources_for(self, message_id: str | int) -> list[Source] | None:
        """The sources remembered for an answer (None: not grounded or not seen)."""
        return self._answers.get(str(message_id))

    def allowed_roots(self) -> list[str]:
        """Folders whose files a citation may open: those added (settings and index)."""
        return list(dict.fromkeys([*self.folders(), *self._roots]))

    def open_citation(self, message_id: str | int, n: int) -> OpenRequest | None:
        """Open source ``n`` of an answer at its page or line (if it may be opened).

        Returns:
            What was opened, or None (unknown source, missing file, outside the folders:
            a notice says why, except for an unknown number, which does nothing).
        """
        sources = self.sources_for(message_id)
        if not sources or not any(s.n == n for s in sources):
            log.info("ignored citation [%s] of message %s: no such source", n, message_id)
            return None
        try:
            request = resolve_citation(sources, n, self.allowed_roots())
        except CitationRefused as exc:
            self.sig_notice.emit(exc.message, "warning")
            return None
        try:
            self._opener(request)
        except Exception as exc:  # a missing program must not break the window
            log.warning("opening %s failed", request.path, exc_info=True)
            self.sig_notice.emit(f"Could not open {request.path.name}: {exc}", "error")
            return None
        self.sig_citation_opened.emit(request)
        return request

    # ------------------------------------------------------------------ settings and quit
    def _settings_changed(self, settings: Settings) -> None:
        key = _knowledge_key(settings)
        if key == self._knowledge_key:
            return
        self._knowledge_key = key
        if self._grounder is None and (self._attach_task is None or self._attach_task.done()):
            return
        # The embedding model or the server changed: retrieval must use the new one. The
        # old grounder is closed and the documents re-opened (the panel then shows whether
        # the index needs rebuilding for the new model).
        self._tasks.spawn(self._reattach(), name="knowledge-reattach")

    async def _reattach(self) -> None:
        # Let readers of the old store finish before it is closed under them.
        busy = [
            t
            for t in (self._attach_task, self._refresh_task)
            if t is not None and not t.done() and t is not asyncio.current_task()
        ]
        if busy:
            await asyncio.gather(*busy, return_exceptions=True)
        self._grounder = None
        self._attach_task = None
        await asyncio.to_thread(self._feature.detach)
        await self.refresh()

    async def shutdown(self) -> None:
        """Stop indexing (the worker is asked to stop, then waited for) and stop listening."""
        self._closing = True
        self._settings.remove_listener(self._settings_changed)
        await self.cancel_and_wait()


# ---------------------------------------------------------------- helpers (worker threads)


def _knowledge_key(settings: Settings) -> tuple[Any, ...]:
    ks = settings.knowledge
    server = ks.chroma_server.model_dump() if ks.chroma_server is not None else None
    return (ks.embedding_model, repr(server))


def _snapshot(
    store: KnowledgeStore, folders: Sequence[str]
) -> tuple[list[FolderRow], list[str], bool]:
    """Folder rows: the index's roots plus added folders it does not cover yet."""
    roots = store.roots()
    rows = [
        FolderRow(
            path=r.path,
            files=r.files,
            chunks=r.chunks,
            skipped=r.skipped,
            status=r.status,
            last_indexed=r.last_indexed,
        )
        for r in roots
    ]
    for f in folders:
        path = Path(f)
        if store.root_for(path) is None:
            rows.append(_row_without_store(path))
    rows.sort(key=lambda r: str(r.path).casefold())
    return rows, [str(r.path) for r in roots], store.needs_reindex


def _skipped_rows(store: KnowledgeStore, folder: Path) -> list[tuple[str, str]]:
    return skipped_rows(folder, store.skipped(folder))


def _row_without_store(path: Path) -> FolderRow:
    return FolderRow(path=path, status="new" if path.exists() else "missing")


def _remove_root(store: KnowledgeStore, root: Path) -> int:
    from parley.core.errors import ConfigError

    target = store.root_for(root)
    if target is None or target != root.expanduser().resolve():
        # Not a root of its own (never indexed, or inside another folder): nothing to delete.
        return 0
    try:
        return store.remove_root(target)
    except ConfigError:
        return 0


def _covers_any(path: Path, others: set[str]) -> bool:
    return any(Path(o) == path or path in Path(o).parents for o in others)


def _replace_status(row: FolderRow, status: str) -> FolderRow:
    if status == row.status:
        return row
    from dataclasses import replace

    return replace(row, status=status)


def summarize(report: Any) -> str:
    """One line about an ``IndexReport``: what changed, what was skipped, how long it took."""
    if report.cancelled:
        return (
            f"Stopped after {report.files_indexed:,} file(s); what was done stays indexed. "
            "Re-index to finish."
        )
    bits: list[str] = []
    if report.files_indexed:
        bits.append(f"indexed {report.files_indexed:,} file(s) ({report.chunks:,} passages)")
    if report.files_removed:
        bits.append(f"removed {report.files_removed:,} deleted file(s)")
    if report.files_skipped:
        bits.append(f"skipped {len(report.files_skipped):,}")
    if not bits:
        return "Up to date: nothing changed."
    text = ", ".join(bits)
    return f"{text[0].upper()}{text[1:]} in {report.seconds:.0f} s."


__all__ = [
    "IndexEvents",
    "KnowledgeController",
    "summarize",
]
