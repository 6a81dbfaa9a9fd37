"""Incremental, resumable, cancellable indexing of folders into a :class:`KnowledgeStore`.

One run, under the store's write lock:

1. ``recover()``: vectors left by a run that was killed are deleted; ``pending`` files redo.
2. The vector index is checked against SQLite (model changed, index lost or damaged):
   if needed every chunk is re-embedded from SQLite (no re-parsing).
3. Each folder is walked (``sources.walk_folder``). A file whose size and mtime match the
   manifest is unchanged; if they differ but its sha256 does not, only the stat is recorded;
   otherwise it is loaded (``loaders.IsolatedLoader``: risky formats in a killable worker),
   chunked and embedded. Files no longer found are deleted from both stores.
4. Loading and chunking run on a producer thread, ahead of embedding, so the ONNX session
   (which releases the GIL and uses every core) is rarely idle waiting for a parser.
5. Chunks are embedded and committed :data:`EMBED_BATCH` at a time, across files and within
   one: a big document is chunked a window (:data:`WINDOW_CHARS`) at a time and streamed into
   the batches, so memory stays bounded, progress is reported inside the file, and a stop
   keeps every committed batch (issue 11, item 7). One file gives at most
   ``max_chunks_per_file`` chunks (:data:`MAX_CHUNKS_PER_FILE`); the rest of a file that long
   is left out with a reason the person sees.
6. Vectors come through the store's embedding cache (``store.py``): a chunk already stored
   is not embedded again, a text already embedded (boilerplate, an earlier version of the
   file, a run that was stopped) is taken from the cache.

Killing the process at any point leaves a consistent index (see ``store.py``); the next run
continues where it stopped, re-embedding at most one batch.

Off the GUI thread: :func:`index_in_background` runs the indexer in a worker *process* at a
lower OS priority (nice +10) and yields progress events to an asyncio loop. Measured with
``tests/bench/bench_index.py`` on two cores (a 5 ms asyncio heartbeat while indexing the
Python tutorial, 484 chunks; other jobs loading the machine): a worker thread in the same
process stalled the loop p99 6.6 ms / max 77 ms, the niced process p99 4.5 ms / max 17 ms
(idle baseline p99 2.5 ms / max 4.4 ms). The thread competes for the GIL (tokenizing,
chunking, Chroma's bindings) and at equal priority for the cores. The process costs ~2 s of
start-up (spawn + imports) and runs slower while the window is busy, which is the point.
:func:`index_in_thread` is the in-process alternative.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import multiprocessing
import os
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from parley.core.errors import ConfigError, ParleyError, StorageError
from parley.core.knowledge.store import (
    BatchResult,
    ChunkBatch,
    ChunkIds,
    FileRecord,
    KnowledgeStore,
)
from parley.core.knowledge.vectors import ChromaServer
from parley.core.paths import Paths

if TYPE_CHECKING:  # imported where chunking runs (see _chunker_obj)
    from parley.core.knowledge.chunking import Chunk
    from parley.core.knowledge.loaders import Block, LoadedDocument

log = logging.getLogger(__name__)

EMBED_BATCH = 64
"""Chunks embedded and committed together (one Chroma upsert, three short transactions).
The embedder sorts them by length before its ONNX runs of four (``embeddings.BATCH_SIZE``):
3 % of the model's work is padding (runs of 16 wasted 11 %, and growing the call to 256 texts
to pad less would quadruple how long a Cancel waits for the batch in flight). A big file
commits every second or two on two cores."""

WINDOW_CHARS = 256 * 1024
"""A document with more text than four of these is chunked one window at a time (cut at a
blank line, line end or space near the window's end; the open headings carried over), so a
49 MB file never has more than a window's chunks in memory."""

MAX_CHUNKS_PER_FILE = 10_000
"""Most chunks one file gives. 10,000 chunks are ~7 MB of prose and take ~5-8 minutes to
embed on two cores; a text file bigger than that is almost always a log, a dump or a data
export whose start is worth searching but whose whole would crowd out every other file (and
cost half an hour). The file is indexed up to the cap, with a reason saying so."""

PREFETCH_FILES = 16
"""Files loaded and chunked ahead of the embedder."""

WORKER_NICE = 10
"""How much lower the worker process's OS priority is (os.nice increment)."""


class _Cancel(Protocol):
    def is_set(self) -> bool: ...


@dataclass(frozen=True)
class IndexProgress:
    """Where an indexing run is; emitted after every file (and during a vector rebuild)."""

    files_done: int
    files_total: int
    chunks: int
    """Chunks written so far in this run."""
    current: str | None
    """The file being processed, if any."""
    eta_s: float | None
    """Estimated seconds left (None until there is a rate to go by)."""
    phase: str = "indexing"
    """``scanning``, ``rebuilding`` (re-embedding every stored chunk) or ``indexing``."""
    file_chunks_done: int = 0
    """Chunks of ``current`` committed so far (big files report progress inside the file)."""
    file_chunks_total: int = 0
    """Estimated chunks of ``current`` (0 when it is not being streamed)."""
    reason: str | None = None
    """While ``rebuilding``: why, for people (``KnowledgeStore.reindex_reason``: "the
    embedding model changed from A to B", "it was damaged: ...", "it was missing")."""


@dataclass
class IndexReport:
    """What an indexing run did."""

    files_indexed: int = 0
    files_unchanged: int = 0
    files_removed: int = 0
    files_skipped: list[tuple[Path, str]] = field(default_factory=list)
    """Files skipped or failed in this run, with a reason a person can read."""
    chunks: int = 0
    """Chunks written in this run."""
    seconds: float = 0.0
    cancelled: bool = False
    embed_seconds: float = 0.0
    """Time spent getting vectors (embedding cache and embedder)."""
    files_capped: list[tuple[Path, str]] = field(default_factory=list)
    """Files indexed only up to the per-file chunk cap, with the reason shown."""
    embedded: int = 0
    """Texts the embedder ran on (the rest came from the cache or were stored already)."""
    timings: dict[str, float] = field(default_factory=dict)
    """Where the time went: ``load_parse_s``, ``chunk_s`` (producer thread, overlapping the
    rest), ``tokenize_s``, ``onnx_s``, ``embed_s`` (all of getting vectors, cache included),
    ``chroma_s``, ``sqlite_s`` (manifest, chunks, FTS5, cache), and counts: ``cache_hits``,
    ``chunks_new``, ``chunks_moved``, ``chunks_kept``."""


@dataclass
class _Prepared:
    """A file ready to embed, or a file that produced no chunks (skip/error/empty)."""

    path: Path
    root: Path
    size: int
    mtime_ns: int
    sha256: str | None = None
    kind: str | None = None
    doc: LoadedDocument | None = None
    """The loaded document (its chunks follow as :class:`_Part` items, then :class:`_End`)."""
    status: str = "indexed"
    reason: str | None = None
    unchanged: bool = False
    est_chunks: int = 0
    """Estimated chunks (updated as windows are chunked)."""
    streamed: bool = False
    """Its chunks follow as :class:`_Part` items and an :class:`_End`."""


@dataclass
class _Part:
    """Chunks of the file last announced by a :class:`_Prepared` with a ``doc``."""

    item: _Prepared
    chunks: list[Chunk]
    fraction: float
    """How much of the file's text is chunked up to and including these."""


@dataclass
class _End:
    """The file's chunks are all sent; ``reason`` says why it stopped early, if it did."""

    item: _Prepared
    reason: str | None = None


@dataclass
class _Open:
    """A file whose chunks are being committed (consumer side)."""

    item: _Prepared
    ids: ChunkIds
    file_ids: set[str] = field(default_factory=set)
    done: int = 0
    """Chunks committed."""
    sent: bool = False
    """A batch with ``first`` has been queued."""
    fraction: float = 0.0


@dataclass
class _Plan:
    root: Path
    target: Path
    todo: list[tuple[Path, int, int, FileRecord | None]]
    unchanged: int
    removed: list[Path]
    skipped: list[tuple[Path, str]]
    skipped_new: list[tuple[Path, int, int, str]]


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes (streamed)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class Indexer:
    """Brings a store up to date with folders on disk."""

    def __init__(
        self,
        store: KnowledgeStore,
        *,
        loader_timeout_s: float = 30.0,
        max_file_bytes: int = 50 * 2**20,
        extra_ignores: Sequence[str] = (),
        embed_batch: int = EMBED_BATCH,
        max_chunks_per_file: int = MAX_CHUNKS_PER_FILE,
    ) -> None:
        """Index into ``store``.

        Args:
            store: Where chunks and vectors go.
            loader_timeout_s: Longest parse of one risky file (pdf, docx, html, big files).
            max_file_bytes: Larger files are skipped with a reason.
            extra_ignores: More gitignore-style patterns to skip.
            embed_batch: Chunks embedded and committed together.
            max_chunks_per_file: A file is indexed up to this many chunks (with a reason).
        """
        self.store = store
        self.loader_timeout_s = loader_timeout_s
        self.max_file_bytes = max_file_bytes
        self.extra_ignores = tuple(extra_ignores)
        self.embed_batch = max(1, embed_batch)
        self.max_chunks_per_file = max(1, max_chunks_per_file)
        self._chunker: Any = None

    # ---- public API

    def index(
        self,
        roots: Sequence[Path],
        *,
        progress: Callable[[IndexProgress], None] | None = None,
        cancel: _Cancel | None = None,
        wait_for_lock: bool = True,
    ) -> IndexReport:
        """Add ``roots`` (folders or single files) if new, and bring them up to date.

        A path inside an existing root re-indexes that part of it. A root that no longer
        exists is left alone (a drive may be unplugged): remove it with ``remove_root``.

        Args:
            roots: Folders or files.
            progress: Called on this thread after each file.
            cancel: Set to stop soon; finished files stay indexed, the report says cancelled.
            wait_for_lock: Wait for another indexing process instead of raising IndexBusy.

        Raises:
            IndexBusy: Another process is indexing and ``wait_for_lock`` is false.
            ConfigError: A path does not exist and was never added.
        """
        t0 = time.monotonic()
        report = IndexReport()
        emit = progress or (lambda _p: None)
        with self.store.writer(wait=wait_for_lock):
            self.store.recover()
            if not self.store.verify_vectors() or self.store.needs_reindex:
                if not self._rebuild(emit, cancel):
                    report.cancelled = True
                    report.seconds = time.monotonic() - t0
                    return report
            emit(IndexProgress(0, 0, 0, None, None, phase="scanning"))
            plans = [p for p in (self._plan(Path(r)) for r in roots) if p is not None]
            for plan in plans:
                report.files_unchanged += plan.unchanged
                report.files_skipped += plan.skipped
                if plan.removed:
                    self.store.delete_files(plan.removed)
                    report.files_removed += len(plan.removed)
                if plan.skipped_new:
                    self.store.mark_files(
                        [
                            (p, plan.root, size, mtime, None, None, "skipped", reason)
                            for p, size, mtime, reason in plan.skipped_new
                        ]
                    )
            self._run(plans, report, emit, cancel, t0)
            for plan in plans:
                self.store.set_root_state(
                    plan.root, "incomplete" if report.cancelled else "indexed"
                )
            self.store.prune_embedding_cache()
        report.seconds = time.monotonic() - t0
        return report

    def remove(self, root: Path) -> int:
        """Forget a root (files and chunks leave both stores); returns chunks removed."""
        return self.store.remove_root(root)

    # ---- planning

    def _plan(self, target: Path) -> _Plan | None:
        from parley.core.knowledge.loaders import kind_for
        from parley.core.knowledge.sources import SourceFile, walk_folder

        target = target.expanduser().resolve()
        covering = self.store.root_for(target)
        if not target.exists():
            if covering is None:
                raise ConfigError(f"No such folder or file: {target}")
            if covering == target:
                log.warning("root %s is missing; left as it was", target)
                return None
            # A subfolder or file that went away: whatever we held below it is removed.
            known = self.store.files(under=target)
            return _Plan(covering, target, [], 0, list(known), [], [])
        root = self.store.add_root(target)
        known = self.store.files(under=target)
        entries: Iterator[Any]
        if target.is_file():
            st = target.stat()
            if kind_for(target) is None:
                entries = iter([_SkippedEntry(target, "unsupported file type")])
            else:
                entries = iter([SourceFile(target, root, st.st_size, st.st_mtime_ns)])
        else:
            entries = walk_folder(target, extra_ignores=self.extra_ignores)
        plan = _Plan(root, target, [], 0, [], [], [])
        seen: set[Path] = set()
        for e in entries:
            path = e.path if isinstance(e.path, Path) else Path(e.path)
            seen.add(path)
            rec = known.get(path)
            if not isinstance(e, SourceFile):
                reason = str(e.reason)
                plan.skipped.append((path, reason))
                if rec is None or rec.status != "skipped" or rec.reason != reason:
                    try:
                        st = path.lstat()
                        size, mtime = st.st_size, st.st_mtime_ns
                    except OSError:
                        size, mtime = 0, 0
                    plan.skipped_new.append((path, size, mtime, reason))
                continue
            if (
                rec is not None
                # Failures ("error") are retried every run; they may have been transient.
                and rec.status in ("indexed", "skipped")
                and rec.size == e.size
                and rec.mtime_ns == e.mtime_ns
            ):
                plan.unchanged += 1
                if rec.status != "indexed":
                    plan.skipped.append((path, rec.reason or rec.status))
                continue
            plan.todo.append((path, e.size, e.mtime_ns, rec))
        plan.removed = [p for p in known if p not in seen]
        return plan

    # ---- the pipeline

    def _chunker_obj(self) -> Any:
        if self._chunker is None:
            from parley.core.knowledge.chunking import Chunker, default_tokenizer_path
            from parley.core.knowledge.embeddings import local_model_dir

            tok = default_tokenizer_path(self.store.paths.assets_dir)
            if tok is None:  # a model downloaded into the data dir has the same tokenizer
                downloaded = local_model_dir(self.store.paths) / "onnx" / "tokenizer.json"
                tok = downloaded if downloaded.is_file() else None
            self._chunker = Chunker(tokenizer_path=tok)
        return self._chunker

    def _prepare_one(
        self, loader: Any, path: Path, root: Path, size: int, mtime: int, rec: FileRecord | None
    ) -> _Prepared:
        from parley.core.knowledge.loaders import FileSkipped

        item = _Prepared(path=path, root=root, size=size, mtime_ns=mtime)
        try:
            if rec is not None and rec.sha256 and rec.status == "indexed":
                # Touched but maybe not changed (a checkout, a copy): hashing is far cheaper
                # than parsing and embedding again.
                if file_sha256(path) == rec.sha256:
                    item.unchanged = True
                    return item
            doc = loader.load(path)
            item.sha256 = doc.sha256
            item.kind = doc.kind
            if rec is not None and rec.status == "indexed" and rec.sha256 == doc.sha256:
                item.unchanged = True
                return item
            item.doc = doc
        except FileSkipped as exc:
            item.status, item.reason = "skipped", str(getattr(exc, "reason", exc))
        except FileNotFoundError:
            item.status, item.reason = "skipped", "file vanished while reading"
        except PermissionError:
            item.status, item.reason = "skipped", "permission denied"
        except Exception as exc:  # one bad file must never stop the run
            log.warning("indexing %s failed", path, exc_info=True)
            item.status, item.reason = "error", f"failed: {type(exc).__name__}: {exc}"[:300]
        return item

    def _chunk_stream(self, item: _Prepared, timing: dict[str, float]) -> Iterator[_Part | _End]:
        """The file's chunks, a window at a time, up to the per-file cap; then its end."""
        from parley.core.display import format_size
        from parley.core.knowledge.chunking import document_title
        from parley.core.knowledge.loaders import LoadedDocument

        doc = item.doc
        assert doc is not None
        chunker = self._chunker_obj()
        cap = self.max_chunks_per_file
        total_chars = sum(len(b.text) for b in doc.blocks) or 1
        title = document_title(doc)  # the whole document's: a window would find a chapter's
        sent = 0
        try:
            for blocks, chars_done, open_headings in _windows(doc.blocks, total_chars):
                t = time.perf_counter()
                part = LoadedDocument(
                    path=doc.path, kind=doc.kind, blocks=blocks, size=doc.size, sha256=doc.sha256
                )
                chunks = chunker.chunk(part, title=title, headings=open_headings)
                timing["chunk_s"] += time.perf_counter() - t
                if sent:  # renumber: the chunker counts from 0 in every window
                    chunks = [dataclasses.replace(c, index=sent + i) for i, c in enumerate(chunks)]
                cut = len(chunks) > cap - sent
                chunks = chunks[: cap - sent]
                sent += len(chunks)
                fraction = chars_done / total_chars
                item.est_chunks = min(cap, max(sent, round(sent / max(fraction, 1e-9))))
                if chunks:
                    yield _Part(item, chunks, fraction)
                if cut or (sent >= cap and chars_done < total_chars):
                    done_bytes = round(doc.size * min(1.0, fraction))
                    yield _End(
                        item,
                        f"cut at {cap:,} passages (about the first {format_size(done_bytes)} "
                        f"of {format_size(doc.size)}); the rest is not searchable",
                    )
                    return
        finally:
            item.doc = None  # the text goes as soon as its chunks are out
        yield _End(item)

    def _producer(
        self,
        todo: list[tuple[Path, Path, int, int, FileRecord | None]],
        out: queue.Queue[_Prepared | _Part | _End | BaseException | None],
        stop: threading.Event,
        timing: dict[str, float],
    ) -> None:
        from parley.core.knowledge.loaders import IsolatedLoader

        def put(obj: _Prepared | _Part | _End) -> bool:
            while not stop.is_set():
                try:
                    out.put(obj, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        try:
            with IsolatedLoader(
                timeout_s=self.loader_timeout_s, max_bytes=self.max_file_bytes
            ) as loader:
                for path, root, size, mtime, rec in todo:
                    if stop.is_set():
                        break
                    t = time.perf_counter()
                    item = self._prepare_one(loader, path, root, size, mtime, rec)
                    timing["load_parse_s"] += time.perf_counter() - t
                    item.streamed = item.doc is not None
                    if not put(item):
                        break
                    if item.doc is None:
                        continue
                    try:
                        for piece in self._chunk_stream(item, timing):
                            if not put(piece):
                                break
                    except Exception as exc:  # a chunker bug fails the file, not the run
                        log.warning("chunking %s failed", path, exc_info=True)
                        item.status = "error"
                        put(_End(item, f"failed: {type(exc).__name__}: {exc}"[:300]))
        except BaseException as exc:  # surfaced on the consumer thread
            out.put(exc)
        finally:
            out.put(None)

    def _run(
        self,
        plans: list[_Plan],
        report: IndexReport,
        emit: Callable[[IndexProgress], None],
        cancel: _Cancel | None,
        t0: float,
    ) -> None:
        todo = [(p, plan.root, s, m, r) for plan in plans for p, s, m, r in plan.todo]
        total = len(todo)
        bytes_total = sum(t[2] for t in todo) or 1
        if not todo:
            emit(IndexProgress(0, 0, 0, None, 0.0))
            return
        q: queue.Queue[_Prepared | _Part | _End | BaseException | None] = queue.Queue(
            maxsize=PREFETCH_FILES
        )
        stop = threading.Event()
        timing = {"load_parse_s": 0.0, "chunk_s": 0.0}
        producer = threading.Thread(
            target=self._producer,
            args=(todo, q, stop, timing),
            name="parley-index-load",
            daemon=True,
        )
        stats0 = _embed_stats(self.store.embedder)
        producer.start()
        done = 0
        bytes_done = 0
        pending: list[ChunkBatch] = []
        pending_chunks = 0
        written = BatchResult()
        opened: dict[Path, _Open] = {}
        start = time.monotonic()

        def progress(current: _Open | None, path: Path | None) -> None:
            elapsed = time.monotonic() - start
            partial = 0.0
            if current is not None:  # how far into the file, by chunks (the cap counts)
                est = max(current.item.est_chunks, 1)
                partial = current.item.size * min(1.0, current.done / est)
            seen = bytes_done + partial
            eta = elapsed * (bytes_total - seen) / seen if seen else None
            emit(
                IndexProgress(
                    done,
                    total,
                    report.chunks + pending_chunks,
                    str(path) if path is not None else None,
                    eta,
                    file_chunks_done=current.done if current is not None else 0,
                    file_chunks_total=current.item.est_chunks if current is not None else 0,
                )
            )

        def flush() -> None:
            nonlocal pending, pending_chunks
            if not pending:
                return
            result = self.store.write_batch(pending)
            written.add(result)
            report.embed_seconds += result.embed_s
            report.embedded += result.embedded
            for b in pending:
                st = opened.get(b.path)
                if st is not None:
                    st.done += len(b.chunks)
                if b.last:
                    opened.pop(b.path, None)
            report.chunks += pending_chunks
            pending, pending_chunks = [], 0

        def finish(item: _Prepared) -> None:
            nonlocal done, bytes_done
            done += 1
            bytes_done += item.size

        try:
            while True:
                if cancel is not None and cancel.is_set():
                    report.cancelled = True
                    break
                try:
                    got = q.get(timeout=0.1)
                except queue.Empty:
                    continue
                if got is None:
                    break
                if isinstance(got, BaseException):
                    raise got
                if isinstance(got, _Part):
                    st = opened[got.item.path]
                    st.fraction = got.fraction
                    for s in range(0, len(got.chunks), self.embed_batch):
                        chunks = got.chunks[s : s + self.embed_batch]
                        ids = st.ids.of(chunks)
                        st.file_ids.update(ids)
                        pending.append(_batch(got.item, chunks, ids, first=not st.sent))
                        st.sent = True
                        pending_chunks += len(chunks)
                        if pending_chunks >= self.embed_batch:
                            flush()
                            if st.item.est_chunks > self.embed_batch:
                                progress(st, st.item.path)
                    continue
                if isinstance(got, _End):
                    item = got.item
                    st = opened[item.path]
                    finish(item)
                    if not st.sent or item.status == "error":
                        # No chunks (or the chunker failed): nothing to embed.
                        opened.pop(item.path, None)
                        self._mark(item, report, got.reason)
                    else:
                        mine = [b for b in pending if b.path == item.path]
                        if mine:
                            last = mine[-1]
                        else:  # every chunk is committed: an empty batch finishes the file
                            last = _batch(item, [], [], first=False)
                            pending.append(last)
                        last.last = True
                        last.sha256 = item.sha256 or ""
                        last.file_ids = st.file_ids
                        last.reason = got.reason
                        report.files_indexed += 1
                        if got.reason:
                            report.files_capped.append((item.path, got.reason))
                    progress(None, item.path)
                    continue
                item = got
                if item.streamed:
                    opened[item.path] = _Open(item, ChunkIds(item.path))
                    continue
                finish(item)
                if item.unchanged:
                    self.store.touch_files([(item.path, item.size, item.mtime_ns)])
                    report.files_unchanged += 1
                else:
                    self._mark(item, report, item.reason)
                progress(None, item.path)
            if not report.cancelled:
                flush()
        finally:
            stop.set()
            # Unblock a producer waiting on a full queue, then let it close its loader.
            with contextlib.suppress(queue.Empty):
                while True:
                    q.get_nowait()
            producer.join(timeout=max(5.0, self.loader_timeout_s + 5))
            stats1 = _embed_stats(self.store.embedder)
            report.timings = {
                "load_parse_s": round(timing["load_parse_s"], 3),
                "chunk_s": round(timing["chunk_s"], 3),
                "tokenize_s": round(stats1[0] - stats0[0], 3),
                "onnx_s": round(stats1[1] - stats0[1], 3),
                "embed_s": round(written.embed_s, 3),
                "chroma_s": round(written.chroma_s, 3),
                "sqlite_s": round(written.sqlite_s, 3),
                "cache_hits": written.cache_hits,
                "chunks_new": written.chunks_new,
                "chunks_moved": written.chunks_moved,
                "chunks_kept": written.chunks_kept,
            }
        if report.cancelled:
            emit(IndexProgress(done, total, report.chunks, None, None))

    def _mark(self, item: _Prepared, report: IndexReport, reason: str | None) -> None:
        """Record a file that gives no chunks: skipped, failed, or indexed but empty."""
        if item.status != "indexed":
            report.files_skipped.append((item.path, reason or item.status))
        else:
            report.files_indexed += 1
        self.store.mark_files(
            [
                (
                    item.path,
                    item.root,
                    item.size,
                    item.mtime_ns,
                    item.sha256,
                    item.kind,
                    item.status,
                    reason,
                )
            ]
        )

    def _rebuild(self, emit: Callable[[IndexProgress], None], cancel: _Cancel | None) -> bool:
        total = self.store.chunk_count()
        started = time.monotonic()
        why = self.store.reindex_reason

        def on(done: int, tot: int) -> None:
            el = time.monotonic() - started
            eta = el * (tot - done) / done if done else None
            emit(IndexProgress(0, 0, done, None, eta, phase="rebuilding", reason=why))

        emit(IndexProgress(0, 0, 0, None, None, phase="rebuilding", reason=why))
        log.info("re-embedding %d chunks for %s (%s)", total, self.store.embedder.model_id, why)
        return self.store.rebuild_vectors(progress=on, cancel=cancel)  # type: ignore[arg-type]


@dataclass(frozen=True)
class _SkippedEntry:
    path: Path
    reason: str


def _batch(item: _Prepared, chunks: list[Chunk], ids: list[str], *, first: bool) -> ChunkBatch:
    return ChunkBatch(
        path=item.path,
        root=item.root,
        size=item.size,
        mtime_ns=item.mtime_ns,
        kind=item.kind or "text",
        chunks=chunks,
        ids=ids,
        first=first,
        last=False,
    )


def _embed_stats(embedder: Any) -> tuple[float, float]:
    """(tokenize s, ONNX s) so far, for embedders that count them (the local one)."""
    stats = getattr(embedder, "stats", None)
    if not callable(stats):
        return 0.0, 0.0
    st = stats()
    return float(st.tokenize_s), float(st.onnx_s)


def _windows(
    blocks: list[Block], total_chars: int
) -> Iterator[tuple[list[Block], int, tuple[tuple[int, str], ...]]]:
    """A document's blocks in windows of about :data:`WINDOW_CHARS` characters.

    Yields ``(blocks, characters up to the end of this window, open headings)``. A short
    document is one window; otherwise a block longer than a window is cut (:func:`_cut_block`)
    and every window after the first comes with the ``(level, title)`` of the headings still
    open where it begins, outermost first: the chunker puts its first chunks under them
    without repeating them as text (they carry no line range of this window).
    """
    if total_chars <= 4 * WINDOW_CHARS:
        yield blocks, total_chars, ()
        return
    open_heads: list[tuple[int, str]] = []
    carried: tuple[tuple[int, str], ...] = ()
    cur: list[Block] = []
    size = done = 0
    for block in blocks:
        pieces = _cut_block(block) if len(block.text) > WINDOW_CHARS else (block,)
        for piece in pieces:
            cur.append(piece)
            size += len(piece.text)
            if piece.kind == "heading" and piece.text.strip():
                level = piece.level if piece.level > 0 else 1
                open_heads = [h for h in open_heads if h[0] < level] + [(level, piece.text)]
            if size >= WINDOW_CHARS:
                done += size
                yield cur, done, carried
                carried = tuple(open_heads)
                cur, size = [], 0
    if cur:
        yield cur, total_chars, carried


def _cut_block(block: Block) -> Iterator[Block]:
    """Pieces of one block longer than a window.

    Cut at a blank line, line end or space in the window's last eighth when there is one; line
    ranges follow the cuts.
    """
    text = block.text
    pos, line = 0, block.line_start
    n = len(text)
    while pos < n:
        end = min(n, pos + WINDOW_CHARS)
        if end < n:
            lo = end - WINDOW_CHARS // 8
            for sep in ("\n\n", "\n", " "):
                cut = text.rfind(sep, lo, end)
                if cut > pos:
                    end = cut + len(sep)
                    break
        piece = text[pos:end]
        lines = piece.count("\n") if line is not None else 0
        yield dataclasses.replace(
            block,
            text=piece,
            line_start=line,
            line_end=(line + lines) if line is not None else None,
        )
        if line is not None:
            line += lines
        pos = end


# ---------------------------------------------------------------- off-thread runner


@dataclass(frozen=True)
class EmbedderConfig:
    """How a worker process builds its embedder (picklable; the key is never written out)."""

    kind: str = "local"
    """``local`` (all-MiniLM-L6-v2, fp32 or int8) or ``openai``."""
    threads: int | None = None
    quantized: bool = False
    """The local model's int8 variant (``all-MiniLM-L6-v2-int8``); False: fp32, the default."""
    openai_api_key: str | None = None
    openai_model: str = "text-embedding-3-small"
    openai_base_url: str | None = None

    @classmethod
    def from_setting(
        cls, model: str, api_key: str | None = None, *, base_url: str | None = None
    ) -> EmbedderConfig:
        """Parse the ``knowledge.embedding_model`` setting.

        Args:
            model: ``all-MiniLM-L6-v2`` (the default; also ``local`` or empty),
                ``all-MiniLM-L6-v2-int8`` or ``openai:<model name>``.
            api_key: The OpenAI key, for ``openai:`` models.
            base_url: Another OpenAI-compatible endpoint.

        Raises:
            ConfigError: An unknown model.
        """
        from parley.core.knowledge.embeddings import LOCAL_INT8_MODEL_ID, LOCAL_MODEL_ID

        name = model.strip()
        if name.lower() in (LOCAL_MODEL_ID.lower(), "local", ""):
            return cls(kind="local", quantized=False)
        if name.lower() == LOCAL_INT8_MODEL_ID.lower():
            return cls(kind="local", quantized=True)
        if name.lower().startswith("openai:") and name[7:].strip():
            return cls(
                kind="openai",
                openai_api_key=api_key,
                openai_model=name[7:].strip(),
                openai_base_url=base_url,
            )
        raise ConfigError(
            f"Unknown embedding model {model!r} (use {LOCAL_MODEL_ID}, {LOCAL_INT8_MODEL_ID} "
            "or openai:<model>)."
        )


def make_embedder(paths: Paths, config: EmbedderConfig) -> Any:
    """Build the embedder ``config`` describes."""
    from parley.core.knowledge.embeddings import OpenAIEmbedder, local_embedder

    if config.kind == "local":
        return local_embedder(paths, threads=config.threads, quantized=config.quantized)
    if config.kind == "openai":
        if not config.openai_api_key:
            raise ConfigError("OpenAI embeddings need an API key.")
        from parley.core.metering import embedding_recorder

        return OpenAIEmbedder(
            config.openai_api_key,
            model=config.openai_model,
            base_url=config.openai_base_url,
            on_usage=embedding_recorder(paths.db_file, paths.user_models_file),
        )
    raise ConfigError(f"Unknown embedder {config.kind!r}.")


@dataclass(frozen=True)
class _Job:
    paths: Paths
    roots: tuple[Path, ...]
    embedder: EmbedderConfig
    server: ChromaServer | None
    wait_for_lock: bool
    nice: int
    loader_timeout_s: float
    max_file_bytes: int
    max_chunks_per_file: int = MAX_CHUNKS_PER_FILE


def _worker_main(conn: Any, job: _Job, cancel: Any) -> None:
    """Entry point of the indexing process: run the job, send events down ``conn``."""
    if job.nice and hasattr(os, "nice"):
        with contextlib.suppress(OSError):
            os.nice(job.nice)
    store = None
    stop = _ParentWatch(cancel)
    try:
        store = KnowledgeStore(job.paths, make_embedder(job.paths, job.embedder), server=job.server)
        indexer = Indexer(
            store,
            loader_timeout_s=job.loader_timeout_s,
            max_file_bytes=job.max_file_bytes,
            max_chunks_per_file=job.max_chunks_per_file,
        )
        last = [0.0]

        def progress(p: IndexProgress) -> None:
            now = time.monotonic()
            # At most ~20 events a second: the GUI repaints a progress bar, not a log.
            if now - last[0] >= 0.05 or p.files_done == p.files_total or p.file_chunks_total:
                last[0] = now
                conn.send(("progress", p))

        report = indexer.index(
            list(job.roots), progress=progress, cancel=stop, wait_for_lock=job.wait_for_lock
        )
        conn.send(("report", report))
    except ParleyError as exc:
        conn.send(("error", (type(exc).__name__, exc.user_message)))
    except BaseException as exc:
        log.exception("indexing worker failed")
        conn.send(("error", ("StorageError", f"Indexing failed: {type(exc).__name__}: {exc}")))
    finally:
        if store is not None:
            store.close()
        conn.close()


class _ParentWatch:
    """Cancel flag of the worker: set by the parent, or by the parent's death."""

    def __init__(self, cancel: Any) -> None:
        self._cancel = cancel
        self._parent = multiprocessing.parent_process()
        self._checked = 0.0
        self._orphaned = False

    def is_set(self) -> bool:
        if self._cancel.is_set() or self._orphaned:
            return True
        now = time.monotonic()
        if self._parent is not None and now - self._checked > 1.0:
            self._checked = now
            self._orphaned = not self._parent.is_alive()
        return self._orphaned


def _error_from(name: str, message: str) -> ParleyError:
    import parley.core.errors as errors

    cls = getattr(errors, name, None)
    if isinstance(cls, type) and issubclass(cls, ParleyError):
        try:
            return cls(message)
        except TypeError:
            pass
    return StorageError(message)


async def index_in_background(
    paths: Paths,
    roots: Sequence[Path],
    *,
    embedder: EmbedderConfig | None = None,
    server: ChromaServer | None = None,
    wait_for_lock: bool = True,
    nice: int = WORKER_NICE,
    loader_timeout_s: float = 30.0,
    max_file_bytes: int = 50 * 2**20,
    max_chunks_per_file: int = MAX_CHUNKS_PER_FILE,
    stop_timeout_s: float = 10.0,
) -> AsyncIterator[IndexProgress | IndexReport]:
    """Index in a worker process at a lower OS priority; yield its progress, then its report.

    Cancelling the consuming task (or closing the generator) asks the worker to stop after
    the file it is on, waits up to ``stop_timeout_s``, then kills it (the index stays
    consistent either way: see ``store.py``).

    Raises:
        ParleyError: What the worker raised (IndexBusy, StorageError, ...).
    """
    job = _Job(
        paths=paths,
        roots=tuple(Path(r).expanduser().resolve() for r in roots),
        embedder=embedder or EmbedderConfig(),
        server=server,
        wait_for_lock=wait_for_lock,
        nice=nice,
        loader_timeout_s=loader_timeout_s,
        max_file_bytes=max_file_bytes,
        max_chunks_per_file=max_chunks_per_file,
    )
    # spawn, not fork: the parent may be a Qt application with threads.
    ctx = multiprocessing.get_context("spawn")
    recv_conn, send_conn = ctx.Pipe(duplex=False)
    cancel = ctx.Event()
    # Not a daemon: daemonic processes may not start children, and the loader's parser
    # workers are children. The worker stops by itself when this process goes away.
    proc = ctx.Process(target=_worker_main, args=(send_conn, job, cancel), name="parley-indexer")
    # Starting a process (fork/exec, pickling the job) takes tens of ms: not on the loop.
    await asyncio.to_thread(proc.start)
    send_conn.close()
    finished = False
    try:
        while True:
            msg = await asyncio.to_thread(_poll_recv, recv_conn, 0.2)
            if msg is _EOF or (msg is None and not proc.is_alive()):
                # The worker died (killed, out of memory, crashed) without a report: the
                # pipe is at EOF. The index stays consistent; the next run resumes it.
                await asyncio.to_thread(proc.join, 1.0)
                raise StorageError(
                    f"The indexing process stopped unexpectedly (exit code {proc.exitcode}); "
                    "what was indexed is kept, index again to finish."
                )
            if msg is None:
                continue
            kind, payload = msg
            if kind == "progress":
                yield payload
            elif kind == "report":
                finished = True
                yield payload
                return
            elif kind == "error":
                finished = True
                raise _error_from(*payload)
    finally:
        if not finished and proc.is_alive():
            cancel.set()
            await asyncio.to_thread(proc.join, stop_timeout_s)
            if proc.is_alive():
                proc.kill()
        await asyncio.to_thread(proc.join, stop_timeout_s)
        recv_conn.close()


_EOF = object()
"""What :func:`_poll_recv` returns once the worker's end of the pipe is closed."""


def _poll_recv(conn: Any, timeout: float) -> Any:
    """The next message, None on timeout, or ``_EOF`` when the worker is gone."""
    try:
        if conn.poll(timeout):
            return conn.recv()
    except (EOFError, OSError):
        return _EOF
    return None


async def index_in_thread(
    store: KnowledgeStore,
    roots: Sequence[Path],
    *,
    wait_for_lock: bool = True,
) -> AsyncIterator[IndexProgress | IndexReport]:
    """The in-process alternative to :func:`index_in_background` (a worker thread).

    Kept for measurement and for callers that already hold a store; the window uses the
    process runner (see the module docstring).
    """
    loop = asyncio.get_running_loop()
    events: asyncio.Queue[IndexProgress | IndexReport | BaseException] = asyncio.Queue()
    cancel = threading.Event()

    def progress(p: IndexProgress) -> None:
        loop.call_soon_threadsafe(events.put_nowait, p)

    def run() -> None:
        try:
            rep = Indexer(store).index(
                roots, progress=progress, cancel=cancel, wait_for_lock=wait_for_lock
            )
            loop.call_soon_threadsafe(events.put_nowait, rep)
        except BaseException as exc:
            loop.call_soon_threadsafe(events.put_nowait, exc)

    worker = threading.Thread(target=run, name="parley-indexer", daemon=True)
    worker.start()
    try:
        while True:
            ev = await events.get()
            if isinstance(ev, BaseException):
                raise ev
            yield ev
            if isinstance(ev, IndexReport):
                return
    finally:
        cancel.set()
        await asyncio.to_thread(worker.join)


__all__ = [
    "EmbedderConfig",
    "IndexProgress",
    "IndexReport",
    "Indexer",
    "index_in_background",
    "index_in_thread",
    "make_embedder",
]
