"""The knowledge store: a SQLite manifest (the source of truth) and a Chroma vector index.

SQLite (``knowledge.sqlite3``) holds the folders added (roots), every file seen (size, mtime,
sha256, status, reason), every chunk (text, heading path, location) and an FTS5 index over the
chunk text for keyword search. Chroma holds one vector per chunk, in a collection bound to the
embedding model (its name and metadata carry the model id), so the vectors can always be
rebuilt from SQLite (:meth:`KnowledgeStore.rebuild_vectors`).

The Chroma side (opening the client, probing and setting aside a damaged local index,
writing vectors, the dense query) is :class:`~parley.core.knowledge.vectors.VectorIndex`,
this store's base class; the store coordinates the protocol below.

Crash safety (a process may be killed at any instruction): a file goes ``pending`` and its new
chunk ids are written to a journal *before* Chroma is touched; Chroma is upserted; then one
SQLite transaction writes the chunks and, once a file's last chunk is in, sets ``indexed`` and
journals the ids its previous version had and this one has not; then those are deleted from
Chroma. :meth:`KnowledgeStore.recover` deletes from Chroma every journalled id that SQLite
does not hold, and the indexer redoes ``pending`` files. A big file is written in several such
batches (:meth:`KnowledgeStore.write_batch`), each committed, so stopping keeps what was done.

Chunk ids are content addresses: sha256 of the path, the embedded text and how many earlier
chunks of the file had the same text. Editing one paragraph therefore leaves every other
chunk's id as it was, even when chunks after it move: a chunk whose id is already stored is
not embedded nor re-upserted (only its row is rewritten if its position changed).

Embedding cache (issue 12): ``embed_cache`` maps sha256(model id + normalised text) to the
vector (float32). Every vector the indexer needs is looked up there first; misses are
embedded once per distinct text (repeated boilerplate costs one embedding) and kept. A
rebuild of a damaged vector index re-embeds nothing; a model switch misses (the key holds the
model id) and re-embeds cleanly. The cache is bounded: beyond the stored chunks plus
:data:`CACHE_SLACK_MIN` (or a quarter of the chunks) entries, the least recently used entries
that no stored chunk needs are evicted, other models' first.

Embedded Chroma is not safe with two writers: writes happen only under an OS file lock
(:meth:`KnowledgeStore.writer`). A process that only reads keeps working while another writes,
but Chroma keeps its HNSW graph in memory and never sees another process's writes, so every
write bumps a generation number in SQLite and a reader reopens its client when it changes.

A damaged local index (issue 11) must never crash the process nor break search for good:
before this process loads the Chroma folder, ``vector_check.probe`` validates its files and
opens it in a child process, whenever the folder differs from the last state known to be good
(recorded after a good check, after each write session and at each clean close). A folder
that fails, or that lost vectors, or a Chroma call that fails later, is set aside
(``chroma.damaged-<time>``) with one warning; searches use keywords meanwhile and the next
indexing run re-embeds every chunk from SQLite. Paths that are not UTF-8 are stored as the
BLOB of their bytes (:func:`_db_path`), and as ``display.path_text`` in Chroma metadata.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from parley.core.display import escape_surrogates, path_text
from parley.core.errors import ConfigError, IndexBusy, StorageError
from parley.core.knowledge.embeddings import Embedder, embedding_cache_key
from parley.core.knowledge.vectors import (
    ChromaServer,
    VectorIndex,
    _close_client,
)
from parley.core.paths import Paths
from parley.core.store.db import Migration, connect, sql_migration, transaction

if TYPE_CHECKING:  # the indexer's worker imports chunking; searches need not
    from parley.core.knowledge.chunking import Chunk

log = logging.getLogger(__name__)

DB_NAME = "knowledge.sqlite3"
"""The manifest database, in ``paths.data_dir``."""


HEADING_SEP = " > "
"""How a heading path is shown and stored: ``"Guide > Install > Linux"``."""

CACHE_SLACK_MIN = 20_000
"""Embedding-cache entries kept beyond those the stored chunks need (~30 MB at 384-d)."""

MIGRATIONS: tuple[Migration, ...] = (
    sql_migration(
        "knowledge-0001-manifest",
        """
        CREATE TABLE roots (
            id INTEGER PRIMARY KEY,
            path TEXT NOT NULL UNIQUE,
            added_at REAL NOT NULL,
            last_indexed REAL,
            state TEXT NOT NULL DEFAULT 'new'
        );
        CREATE TABLE files (
            id INTEGER PRIMARY KEY,
            root_id INTEGER NOT NULL REFERENCES roots(id) ON DELETE CASCADE,
            path TEXT NOT NULL UNIQUE,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            sha256 TEXT,
            kind TEXT,
            status TEXT NOT NULL CHECK (status IN ('pending', 'indexed', 'skipped', 'error')),
            reason TEXT,
            chunk_count INTEGER NOT NULL DEFAULT 0,
            indexed_at REAL
        );
        CREATE INDEX files_root ON files(root_id);
        CREATE TABLE chunks (
            seq INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
            idx INTEGER NOT NULL,
            text TEXT NOT NULL,
            embed_text TEXT,
            heading TEXT NOT NULL DEFAULT '',
            page INTEGER,
            line_start INTEGER,
            line_end INTEGER,
            token_count INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX chunks_file ON chunks(file_id, idx);
        CREATE VIRTUAL TABLE chunks_fts USING fts5(
            text, heading, content='chunks', content_rowid='seq',
            tokenize='porter unicode61 remove_diacritics 2'
        );
        CREATE TRIGGER chunks_ai AFTER INSERT ON chunks BEGIN
            INSERT INTO chunks_fts(rowid, text, heading) VALUES (new.seq, new.text, new.heading);
        END;
        CREATE TRIGGER chunks_ad AFTER DELETE ON chunks BEGIN
            INSERT INTO chunks_fts(chunks_fts, rowid, text, heading)
            VALUES ('delete', old.seq, old.text, old.heading);
        END;
        CREATE TABLE vector_journal (chunk_id TEXT PRIMARY KEY) WITHOUT ROWID;
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
        """,
    ),
    sql_migration(
        "knowledge-0002-fts-vocab",
        # Document frequency per (stemmed) term: lets retrieval drop terms so common that
        # scoring them costs more than they say (see retrieval.py).
        "CREATE VIRTUAL TABLE chunks_vocab USING fts5vocab(chunks_fts, 'row');",
    ),
    sql_migration(
        "knowledge-0003-fts-title",
        # Structure as a ranking signal: each chunk carries its document's title (and file
        # name), matched by keyword search as a column of its own so it can be weighted, and
        # the share of its text that is link text (tables of contents, index pages).
        # Chunks indexed before this keep an empty title until their file changes.
        """
        ALTER TABLE chunks ADD COLUMN title TEXT NOT NULL DEFAULT '';
        ALTER TABLE chunks ADD COLUMN link_share REAL NOT NULL DEFAULT 0;
        DROP TRIGGER chunks_ai;
        DROP TRIGGER chunks_ad;
        DROP TABLE chunks_vocab;
        DROP TABLE chunks_fts;
        CREATE VIRTUAL TABLE chunks_fts USING fts5(
            text, heading, title, content='chunks', content_rowid='seq',
            tokenize='porter unicode61 remove_diacritics 2'
        );
        CREATE TRIGGER chunks_ai AFTER INSERT ON chunks BEGIN
            INSERT INTO chunks_fts(rowid, text, heading, title)
            VALUES (new.seq, new.text, new.heading, new.title);
        END;
        CREATE TRIGGER chunks_ad AFTER DELETE ON chunks BEGIN
            INSERT INTO chunks_fts(chunks_fts, rowid, text, heading, title)
            VALUES ('delete', old.seq, old.text, old.heading, old.title);
        END;
        INSERT INTO chunks_fts(chunks_fts) VALUES ('rebuild');
        CREATE VIRTUAL TABLE chunks_vocab USING fts5vocab(chunks_fts, 'row');
        """,
    ),
    sql_migration(
        "knowledge-0004-embedding-cache",
        # Content-addressed vectors (issue 12): key = sha256(model id, normalised text)[:16].
        """
        CREATE TABLE embed_cache (
            key BLOB PRIMARY KEY,
            model TEXT NOT NULL,
            vector BLOB NOT NULL,
            used REAL NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX embed_cache_used ON embed_cache(used);
        """,
    ),
)
"""Named migrations of ``knowledge.sqlite3`` (append new ones; never edit applied ones)."""


@dataclass(frozen=True)
class RootStatus:
    """One folder (or single file) the person added, as the Knowledge panel shows it."""

    path: Path
    files: int
    """Files indexed (with at least zero chunks)."""
    chunks: int
    skipped: int
    """Files skipped or failed (see :meth:`KnowledgeStore.skipped` for the reasons)."""
    status: str
    """``new`` (never indexed), ``indexed``, ``incomplete`` (cancelled or interrupted),
    ``needs-reindex`` (the embedding model changed) or ``missing`` (the folder is gone)."""
    last_indexed: datetime | None
    pending: int = 0
    """Files whose indexing was interrupted (redone by the next run)."""


@dataclass(frozen=True)
class FileRecord:
    """A file as the manifest knows it."""

    id: int
    path: Path
    root: Path
    size: int
    mtime_ns: int
    sha256: str | None
    kind: str | None
    status: str
    reason: str | None
    chunk_count: int


@dataclass
class FileWrite:
    """A file's new content for :meth:`KnowledgeStore.write_files`."""

    path: Path
    root: Path
    size: int
    mtime_ns: int
    sha256: str
    kind: str
    chunks: Sequence[Chunk]
    vectors: Sequence[Sequence[float]]
    ids: list[str] = field(default_factory=list)


@dataclass
class ChunkBatch:
    """Some chunks of one file, for :meth:`KnowledgeStore.write_batch`.

    A file may span several batches (a big file is committed as it goes): the batch with
    ``first`` marks it pending, the one with ``last`` makes it ``indexed`` and removes the
    chunks its previous version had and this one has not.
    """

    path: Path
    root: Path
    size: int
    mtime_ns: int
    kind: str
    chunks: Sequence[Chunk]
    ids: Sequence[str]
    """:class:`ChunkIds` of ``chunks``."""
    first: bool = True
    last: bool = True
    sha256: str | None = None
    """The file's content hash (needed with ``last``)."""
    file_ids: set[str] | None = None
    """With ``last``: the ids of every chunk of the file (earlier batches included)."""
    reason: str | None = None
    """With ``last``: a note kept with the indexed file (e.g. why it was cut short)."""
    vectors: Sequence[Sequence[float]] | None = None
    """Vectors of ``chunks`` if the caller has them; otherwise the store's embedding cache
    and embedder supply those it needs."""


@dataclass
class BatchResult:
    """What :meth:`KnowledgeStore.write_batch` did, and where its time went."""

    chunks_new: int = 0
    """Chunks whose id was not stored: they needed a vector (cached or embedded)."""
    chunks_moved: int = 0
    """Stored chunks whose position changed: row rewritten, vector kept."""
    chunks_kept: int = 0
    """Stored chunks written again unchanged: nothing done."""
    embedded: int = 0
    """Texts the embedder ran on (cache misses, each distinct text once)."""
    cache_hits: int = 0
    embed_s: float = 0.0
    chroma_s: float = 0.0
    sqlite_s: float = 0.0
    """SQLite work: manifest, chunk rows and their FTS5 index, the cache, the journal."""

    def add(self, other: BatchResult) -> None:
        """Accumulate ``other`` into this one."""
        for k, v in vars(other).items():
            setattr(self, k, getattr(self, k) + v)


@dataclass(frozen=True)
class ChunkRow:
    """A stored chunk with its file's facts (what retrieval returns)."""

    id: str
    path: Path
    root: Path
    kind: str | None
    index: int
    text: str
    heading: str
    page: int | None
    line_start: int | None
    line_end: int | None
    link_share: float = 0.0
    """Share of the text that is link text (see :attr:`Chunk.link_share`)."""
    title: str = ""
    """The document's title and file name as words (:func:`title_text`)."""


def title_text(title: str, path: Path) -> str:
    """What keyword search matches as a chunk's title.

    The document's title and its file name as words (``sql-createtable.html`` ->
    ``sql createtable``).
    """
    name = path.name[:-8] if path.name.lower().endswith(".rst.txt") else path.stem
    words = " ".join(w for w in re.split(r"[\W_]+", name) if w)
    return f"{title} {words}".strip()


def chunk_id(path: Path, embed_text: str, text: str, occurrence: int = 0) -> str:
    """Content address of a chunk: its file, what is embedded and shown, and which copy.

    Args:
        path: The file.
        embed_text: The text embedded (its vector depends on nothing else).
        text: The text shown.
        occurrence: How many earlier chunks of the file had the same texts (0 for most).
    """
    content = hashlib.sha256(f"{embed_text}\x00{text}".encode("utf-8", "surrogatepass")).hexdigest()
    key = f"{path}\x00{content}\x00{occurrence}".encode("utf-8", "surrogatepass")
    return hashlib.sha256(key).hexdigest()[:32]


class ChunkIds:
    """Ids of one file's chunks in order (:func:`chunk_id`), fed a batch at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: dict[tuple[str, str], int] = {}

    def of(self, chunks: Sequence[Chunk]) -> list[str]:
        """Ids of the next ``chunks`` of the file."""
        out = []
        for c in chunks:
            k = (c.embed_text, c.text)
            n = self._seen.get(k, 0)
            self._seen[k] = n + 1
            out.append(chunk_id(self.path, c.embed_text, c.text, n))
        return out


def _now() -> float:
    return time.time()


class KnowledgeStore(VectorIndex):
    """SQLite manifest + Chroma vectors for the folders a person added.

    Reads (search, status) work from any thread at any time; writes need
    :meth:`writer` (one process at a time, enforced with a lock file).
    """

    def __init__(
        self, paths: Paths, embedder: Embedder, *, server: ChromaServer | None = None
    ) -> None:
        """Open (creating) the manifest and the vector collection for ``embedder``.

        Raises:
            StorageError: The database or the Chroma folder cannot be used.
            ProviderDown: ``server`` was given and cannot be reached.
        """
        self.paths = paths
        self.embedder = embedder
        self.server = server
        self.db_path = paths.data_dir / DB_NAME
        self._wconn = connect(self.db_path, MIGRATIONS)
        self._wlock = threading.RLock()
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = [self._wconn]
        self._conns_lock = threading.Lock()
        self._chroma_lock = threading.RLock()
        self._client: Any = None
        self._collection: Any = None
        self._seen_generation = -1
        self._writing = 0
        self._writer_thread = 0
        self._file_lock: Any = None
        self._closed = False
        self._chroma_wrote = False
        self._failure_logged = False
        self._verified = False
        """The local index was checked (or known good) when opened: a clean close records
        its files as good."""
        fresh = False
        if server is None:
            fresh = self._check_local_index()  # may set a damaged index aside (then it's open)
        if self._client is None:
            try:
                self._open_chroma()
            except StorageError as exc:
                if server is not None:
                    raise
                self._set_damaged_index_aside(f"it cannot be opened: {exc.detail or exc}")
        if fresh:
            self._record_if_idle()  # a new index: another process opening it need not check
        if self._meta("vector_model") is None and self.chunk_count() == 0:
            # A new manifest: this model's collection is the one that mirrors it from now on.
            with self._txn() as conn:
                conn.execute(
                    "INSERT OR IGNORE INTO meta(key, value) VALUES ('vector_model', ?)",
                    (embedder.model_id,),
                )

    # ---- Chroma: opening it, a damaged local index (issue 11), writing vectors and the
    # dense query are in VectorIndex (vectors.py), this class's base

    # ---- SQLite helpers

    def _read(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.db_path)
            self._local.conn = conn
            with self._conns_lock:
                self._conns.append(conn)
        return conn

    def _generation(self) -> int:
        row = self._read().execute("SELECT value FROM meta WHERE key='generation'").fetchone()
        return int(row[0]) if row else 0

    def _meta(self, key: str) -> str | None:
        row = self._read().execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return str(row[0]) if row else None

    @staticmethod
    def _set_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
        conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    @staticmethod
    def _bump(conn: sqlite3.Connection) -> None:
        conn.execute(
            "INSERT INTO meta(key, value) VALUES ('generation', '1') ON CONFLICT(key) "
            "DO UPDATE SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)"
        )

    @contextmanager
    def _txn(self) -> Iterator[sqlite3.Connection]:
        with self._wlock, transaction(self._wconn) as conn:
            yield conn

    def _after_own_write(self) -> None:
        self._seen_generation = self._generation()

    # ---- the writer lock

    @contextmanager
    def writer(self, *, wait: bool = True, timeout_s: float | None = None) -> Iterator[None]:
        """Hold the index write lock (one writing process at a time).

        Args:
            wait: Wait for another writer to finish instead of raising.
            timeout_s: Longest wait when ``wait`` (None: forever).

        Raises:
            IndexBusy: Another process holds the lock (and ``wait`` is false or timed out).
        """
        import filelock

        mine = self._writing > 0 and self._writer_thread == threading.get_ident()
        if not self._wlock.acquire(blocking=wait or mine):
            raise IndexBusy()
        try:
            if mine:
                self._writing += 1
                try:
                    yield
                finally:
                    self._writing -= 1
                return
            self.paths.data_dir.mkdir(parents=True, exist_ok=True)
            lock = filelock.FileLock(str(self.paths.index_lock_file), thread_local=False)
            try:
                lock.acquire(timeout=(timeout_s if timeout_s is not None else -1) if wait else 0)
            except filelock.Timeout as exc:
                raise IndexBusy() from exc
            self._file_lock = lock
            try:
                # Another process may have written since we opened Chroma; a stale in-memory
                # index must never write (it would persist its stale graph).
                if self.server is None and self._generation() != self._seen_generation:
                    self._reopen_chroma()
                self._writing = 1
                self._writer_thread = threading.get_ident()
                self._chroma_wrote = False
                yield
                if self._chroma_wrote and self.server is None and not self._closed:
                    # What this session wrote is the new good state of the files.
                    self._record_files()
            finally:
                self._writing = 0
                self._writer_thread = 0
                self._file_lock = None
                lock.release()
        finally:
            self._wlock.release()

    def _require_writer(self) -> None:
        if not self._writing or self._writer_thread != threading.get_ident():
            raise RuntimeError("KnowledgeStore writes need `with store.writer():`")

    # ---- roots

    def add_root(self, root: Path) -> Path:
        """Add a folder (or a single file) to the knowledge base; nothing is indexed yet.

        A path inside an existing root adds nothing (it is already covered); a folder that
        contains existing roots takes over their files.

        Returns:
            The root that covers ``root`` (``root`` itself unless it was already covered).

        Raises:
            ConfigError: The path does not exist.
        """
        root = _norm(root)
        if not root.exists():
            raise ConfigError(f"No such folder or file: {root}")
        covering = self.root_for(root)
        if covering is not None:
            return covering
        with self._txn() as conn:
            cur = conn.execute(
                "INSERT INTO roots(path, added_at) VALUES (?, ?)", (_db_path(root), _now())
            )
            new_id = cur.lastrowid
            children = [
                (int(r["id"]), _path(r["path"]))
                for r in conn.execute("SELECT id, path FROM roots WHERE id != ?", (new_id,))
                if _is_under(_path(r["path"]), root)
            ]
            moved: list[str] = []
            for child_id, _ in children:
                moved += [
                    r[0]
                    for r in conn.execute(
                        "SELECT c.id FROM chunks c JOIN files f ON f.id = c.file_id "
                        "WHERE f.root_id = ?",
                        (child_id,),
                    )
                ]
                conn.execute("UPDATE files SET root_id = ? WHERE root_id = ?", (new_id, child_id))
                conn.execute("DELETE FROM roots WHERE id = ?", (child_id,))
            if children:
                self._bump(conn)
        if moved:
            # Chroma metadata names the root (used by server-side filters): keep it true.
            with self.writer(), self._vector_op("updating vectors"):
                self._chroma_wrote = True
                col = self._collection
                for batch in _batched(moved, self.max_batch):
                    col.update(ids=batch, metadatas=[{"root": path_text(root)}] * len(batch))
                self._after_own_write()
        return root

    def root_for(self, path: Path) -> Path | None:
        """The root that covers ``path`` (itself or an ancestor), if any."""
        path = _norm(path)
        for r in self._read().execute("SELECT path FROM roots"):
            rp = _path(r[0])
            if _is_under(path, rp):
                return rp
        return None

    def remove_root(self, root: Path) -> int:
        """Forget a root: its files and chunks leave SQLite and Chroma.

        Returns:
            The number of chunks removed.

        Raises:
            ConfigError: ``root`` is not a root.
        """
        root = _norm(root)
        row = (
            self._read()
            .execute("SELECT id FROM roots WHERE path = ?", (_db_path(root),))
            .fetchone()
        )
        if row is None:
            raise ConfigError(f"Not in the knowledge base: {path_text(root)}")
        with self.writer():
            paths = [
                _path(r[0])
                for r in self._read().execute(
                    "SELECT path FROM files WHERE root_id = ?", (int(row[0]),)
                )
            ]
            removed = self.delete_files(paths)
            with self._txn() as conn:
                conn.execute("DELETE FROM roots WHERE id = ?", (int(row[0]),))
                self._bump(conn)
            self._after_own_write()
        return removed

    def roots(self) -> list[RootStatus]:
        """Every root with its counts and state."""
        needs = self.needs_reindex
        out: list[RootStatus] = []
        rows = (
            self._read()
            .execute(
                """
            SELECT r.id, r.path, r.state, r.last_indexed,
                   COALESCE(SUM(f.status = 'indexed'), 0) AS files,
                   COALESCE(SUM(CASE WHEN f.status = 'indexed' THEN f.chunk_count END), 0)
                       AS chunks,
                   COALESCE(SUM(f.status IN ('skipped', 'error')), 0) AS skipped,
                   COALESCE(SUM(f.status = 'pending'), 0) AS pending
            FROM roots r LEFT JOIN files f ON f.root_id = r.id
            GROUP BY r.id ORDER BY r.path
            """
            )
            .fetchall()
        )
        for r in rows:
            path = _path(r["path"])
            state = str(r["state"])
            if not path.exists():
                status = "missing"
            elif needs and r["chunks"]:
                status = "needs-reindex"
            elif state == "new":
                status = "new"
            elif r["pending"] or state == "incomplete":
                status = "incomplete"
            else:
                status = "indexed"
            last = r["last_indexed"]
            out.append(
                RootStatus(
                    path=path,
                    files=int(r["files"]),
                    chunks=int(r["chunks"]),
                    skipped=int(r["skipped"]),
                    status=status,
                    last_indexed=datetime.fromtimestamp(last, UTC) if last else None,
                    pending=int(r["pending"]),
                )
            )
        return out

    def set_root_state(self, root: Path, state: str) -> None:
        """Record the outcome of an indexing run over ``root`` (``indexed``/``incomplete``)."""
        with self._txn() as conn:
            conn.execute(
                "UPDATE roots SET state = ?, last_indexed = ? WHERE path = ?",
                (state, _now(), _db_path(_norm(root))),
            )

    def skipped(self, root: Path | None = None) -> list[tuple[Path, str]]:
        """Files skipped, failed or cut short, with the reason, optionally for one root."""
        sql = "SELECT f.path, f.status, f.reason FROM files f"
        args: tuple[Any, ...] = ()
        if root is not None:
            sql += " JOIN roots r ON r.id = f.root_id WHERE r.path = ? AND"
            args = (_db_path(_norm(root)),)
        else:
            sql += " WHERE"
        # Indexed files with a reason were cut short (the per-file chunk cap): listed too.
        sql += (
            " (f.status IN ('skipped', 'error') OR (f.status = 'indexed' AND f.reason IS NOT NULL))"
            " ORDER BY f.path"
        )
        return [
            (_path(r["path"]), str(r["reason"] or r["status"]))
            for r in self._read().execute(sql, args)
        ]

    # ---- files (manifest)

    def files(self, under: Path | None = None) -> dict[Path, FileRecord]:
        """Manifest rows, optionally only those at or below ``under``."""
        sql = (
            "SELECT f.id, f.path, r.path AS root, f.size, f.mtime_ns, f.sha256, f.kind, "
            "f.status, f.reason, f.chunk_count FROM files f JOIN roots r ON r.id = f.root_id"
        )
        out: dict[Path, FileRecord] = {}
        prefix = below = None
        if under is not None:
            prefix = str(_norm(under))
            below = prefix.rstrip(os.sep) + os.sep
        roots: dict[str, Path] = {}
        # A re-index of an unchanged 10,000-file tree reads every row: string tests and one
        # Path per root keep this to milliseconds (Path() costs ~20 µs each in 3.11).
        for r in self._read().execute(sql):
            # Paths that are not UTF-8 are stored as bytes (_db_path): compared as text.
            ps = r["path"] if isinstance(r["path"], str) else os.fsdecode(r["path"])
            if prefix is not None and ps != prefix and not ps.startswith(below):  # type: ignore[arg-type]
                continue
            p = Path(ps)
            root = roots.get(r["root"])
            if root is None:
                root = roots[r["root"]] = _path(r["root"])
            out[p] = FileRecord(
                id=int(r["id"]),
                path=p,
                root=root,
                size=int(r["size"]),
                mtime_ns=int(r["mtime_ns"]),
                sha256=r["sha256"],
                kind=r["kind"],
                status=str(r["status"]),
                reason=r["reason"],
                chunk_count=int(r["chunk_count"]),
            )
        return out

    def _root_id(self, conn: sqlite3.Connection, root: Path) -> int:
        row = conn.execute("SELECT id FROM roots WHERE path = ?", (_db_path(root),)).fetchone()
        if row is None:
            raise ConfigError(f"Not in the knowledge base: {path_text(root)}")
        return int(row[0])

    def touch_files(self, stats: Iterable[tuple[Path, int, int]]) -> None:
        """Record a new size/mtime for files whose content hash did not change."""
        self._require_writer()
        with self._txn() as conn:
            conn.executemany(
                "UPDATE files SET size = ?, mtime_ns = ? WHERE path = ?",
                [(size, mtime, _db_path(p)) for p, size, mtime in stats],
            )

    def mark_files(
        self,
        entries: Sequence[tuple[Path, Path, int, int, str | None, str | None, str, str | None]],
    ) -> None:
        """Record files that produce no chunks: skipped or failed (or empty but indexed).

        Each entry is ``(path, root, size, mtime_ns, sha256, kind, status, reason)``; any
        chunks the file had before are removed from both stores.
        """
        self._require_writer()
        if not entries:
            return
        paths = [e[0] for e in entries]
        self.delete_files(paths, keep_rows=True)
        with self._txn() as conn:
            for path, root, size, mtime, sha, kind, status, reason in entries:
                self._upsert_file(conn, path, root, size, mtime, sha, kind, status, reason, 0)
            self._bump(conn)
        self._after_own_write()

    def _upsert_file(
        self,
        conn: sqlite3.Connection,
        path: Path,
        root: Path,
        size: int,
        mtime: int,
        sha: str | None,
        kind: str | None,
        status: str,
        reason: str | None,
        count: int,
    ) -> int:
        root_id = self._root_id(conn, root)
        conn.execute(
            """
            INSERT INTO files(root_id, path, size, mtime_ns, sha256, kind, status, reason,
                              chunk_count, indexed_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT(path) DO UPDATE SET root_id = excluded.root_id, size = excluded.size,
                mtime_ns = excluded.mtime_ns, sha256 = excluded.sha256, kind = excluded.kind,
                status = excluded.status, reason = excluded.reason,
                chunk_count = excluded.chunk_count, indexed_at = excluded.indexed_at
            """,
            (
                root_id,
                _db_path(path),
                size,
                mtime,
                sha,
                kind,
                status,
                escape_surrogates(reason) if reason is not None else None,
                count,
                _now(),
            ),
        )
        row = conn.execute("SELECT id FROM files WHERE path = ?", (_db_path(path),)).fetchone()
        return int(row[0])

    def write_files(self, writes: Sequence[FileWrite]) -> None:
        """Replace the chunks of ``writes`` in both stores, crash-safely (module docstring)."""
        self._require_writer()
        if not writes:
            return
        batches = []
        for w in writes:
            if len(w.vectors) != len(w.chunks):
                raise ValueError(f"{len(w.chunks)} chunks but {len(w.vectors)} vectors: {w.path}")
            w.ids = ChunkIds(w.path).of(w.chunks)
            batches.append(
                ChunkBatch(
                    path=w.path,
                    root=w.root,
                    size=w.size,
                    mtime_ns=w.mtime_ns,
                    kind=w.kind,
                    chunks=w.chunks,
                    ids=w.ids,
                    sha256=w.sha256,
                    file_ids=set(w.ids),
                    vectors=w.vectors,
                )
            )
        self.write_batch(batches)

    def write_batch(self, batches: Sequence[ChunkBatch]) -> BatchResult:
        """Write chunks of one or more files in both stores, crash-safely (module docstring).

        Chunks whose id is stored already are neither embedded nor upserted again; new ones
        get their vector from the caller, the embedding cache or the embedder, in that order.

        Returns:
            Counts and where the time went.
        """
        self._require_writer()
        res = BatchResult()
        if not batches:
            return res
        t = time.perf_counter()
        stored = self._stored_signatures([i for b in batches for i in b.ids])
        new: list[tuple[ChunkBatch, Chunk, str, int]] = []  # batch, chunk, id, position
        moved: list[tuple[ChunkBatch, Chunk, str]] = []
        for b in batches:
            if b.vectors is not None and len(b.vectors) != len(b.chunks):
                raise ValueError(f"{len(b.chunks)} chunks but {len(b.vectors)} vectors: {b.path}")
            for pos, (c, cid) in enumerate(zip(b.chunks, b.ids, strict=True)):
                row = stored.get(cid)
                if row is None:
                    new.append((b, c, cid, pos))
                elif row != _signature(c):
                    moved.append((b, c, cid))
                else:
                    res.chunks_kept += 1
        res.chunks_new, res.chunks_moved = len(new), len(moved)
        res.sqlite_s += time.perf_counter() - t
        # Vectors for the new chunks: the caller's, else cache, else the embedder.
        vectors: list[Sequence[float] | None] = [
            b.vectors[pos] if b.vectors is not None else None for b, _c, _i, pos in new
        ]
        need = [k for k, v in enumerate(vectors) if v is None]
        if need:
            t = time.perf_counter()
            got, res.embedded, res.cache_hits = self.embed_cached(
                [new[k][1].embed_text for k in need]
            )
            for k, v in zip(need, got, strict=True):
                vectors[k] = v
            res.embed_s += time.perf_counter() - t
        new_ids = [cid for _b, _c, cid, _p in new]
        # 1. files pending + new ids journalled (the old chunks stay searchable meanwhile).
        t = time.perf_counter()
        with self._txn() as conn:
            for b in batches:
                if b.first:
                    old = conn.execute(
                        "SELECT chunk_count FROM files WHERE path = ?", (_db_path(b.path),)
                    ).fetchone()
                    self._upsert_file(
                        conn,
                        b.path,
                        b.root,
                        b.size,
                        b.mtime_ns,
                        None,
                        b.kind,
                        "pending",
                        None,
                        int(old[0]) if old else 0,
                    )
            conn.executemany(
                "INSERT OR IGNORE INTO vector_journal(chunk_id) VALUES (?)",
                [(i,) for i in new_ids],
            )
        res.sqlite_s += time.perf_counter() - t
        # 2. vectors (and the metadata of chunks that moved: Chroma filters and a shared
        # server's readers see it).
        t = time.perf_counter()
        self._upsert_vectors(
            new_ids,
            [v for v in vectors if v is not None],
            [_chunk_meta(b.path, b.root, b.kind, c) for b, c, _i, _p in new],
            [c.text for _b, c, _i, _p in new],
        )
        if moved:
            with self._chroma_lock:
                for s in range(0, len(moved), self.max_batch):
                    part = moved[s : s + self.max_batch]
                    self._collection.update(
                        ids=[cid for _b, _c, cid in part],
                        metadatas=[_chunk_meta(b.path, b.root, b.kind, c) for b, c, _i in part],
                    )
        res.chroma_s += time.perf_counter() - t
        # 3. one transaction: chunk rows written; finished files indexed, with the ids their
        # previous version had and this one has not journalled and removed.
        t = time.perf_counter()
        stale: list[str] = []
        with self._txn() as conn:
            file_ids: dict[Path, int] = {}
            for b in batches:
                if b.path not in file_ids:
                    row = conn.execute(
                        "SELECT id FROM files WHERE path = ?", (_db_path(b.path),)
                    ).fetchone()
                    file_ids[b.path] = int(row[0])
            if moved:
                conn.executemany(
                    "DELETE FROM chunks WHERE id = ?", [(cid,) for _b, _c, cid in moved]
                )
            self._insert_chunks(
                conn,
                [(file_ids[b.path], b.path, cid, c) for b, c, cid, _p in new]
                + [(file_ids[b.path], b.path, cid, c) for b, c, cid in moved],
            )
            for b in batches:
                if not b.last:
                    continue
                keep = b.file_ids if b.file_ids is not None else set(b.ids)
                fid = file_ids[b.path]
                gone = [
                    r[0]
                    for r in conn.execute("SELECT id FROM chunks WHERE file_id = ?", (fid,))
                    if r[0] not in keep
                ]
                if gone:
                    conn.executemany(
                        "INSERT OR IGNORE INTO vector_journal(chunk_id) VALUES (?)",
                        [(i,) for i in gone],
                    )
                    conn.executemany("DELETE FROM chunks WHERE id = ?", [(i,) for i in gone])
                    stale += gone
                self._upsert_file(
                    conn,
                    b.path,
                    b.root,
                    b.size,
                    b.mtime_ns,
                    b.sha256,
                    b.kind,
                    "indexed",
                    b.reason,
                    len(keep),
                )
            conn.executemany(
                "DELETE FROM vector_journal WHERE chunk_id = ?", [(i,) for i in new_ids]
            )
            self._bump(conn)
        res.sqlite_s += time.perf_counter() - t
        # 4. stale vectors.
        t = time.perf_counter()
        self._delete_vectors(stale)
        res.chroma_s += time.perf_counter() - t
        self._after_own_write()
        return res

    @staticmethod
    def _insert_chunks(
        conn: sqlite3.Connection, rows: Sequence[tuple[int, Path, str, Chunk]]
    ) -> None:
        """Insert chunk rows ``(file_id, path, chunk id, chunk)``; FTS5 follows by trigger."""
        conn.executemany(
            "INSERT INTO chunks(id, file_id, idx, text, embed_text, heading, page, "
            "line_start, line_end, token_count, title, link_share) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            [
                (
                    cid,
                    file_id,
                    c.index,
                    c.text,
                    c.embed_text if c.embed_text != c.text else None,
                    HEADING_SEP.join(c.heading_path),
                    c.page,
                    c.line_start,
                    c.line_end,
                    c.token_count,
                    title_text(c.title, path),
                    float(c.link_share),
                )
                for file_id, path, cid, c in rows
            ],
        )

    def _stored_signatures(self, ids: Sequence[str]) -> dict[str, tuple[Any, ...]]:
        """For each stored id among ``ids``: what :func:`_signature` was when it was written."""
        out: dict[str, tuple[Any, ...]] = {}
        conn = self._read()
        for batch in _batched(list(ids), 500):
            marks = ",".join("?" * len(batch))
            for r in conn.execute(
                "SELECT id, idx, heading, page, line_start, line_end, token_count "
                f"FROM chunks WHERE id IN ({marks})",
                batch,
            ):
                out[r[0]] = tuple(r)[1:]
        return out

    # ---- the embedding cache

    def embed_cached(self, texts: Sequence[str]) -> tuple[list[list[float]], int, int]:
        """Vectors of ``texts`` through the embedding cache (module docstring).

        Each distinct text (after :func:`~parley.core.knowledge.embeddings.normalise_for_cache`)
        is embedded at most once and remembered. Vectors come back as float32 values, whether
        cached or fresh, so a cached vector equals the one first computed.

        Returns:
            The vectors in order, how many texts were embedded, how many were found cached.
        """
        import numpy as np

        if not texts:
            return [], 0, 0
        model = self.embedder.model_id
        keys = [embedding_cache_key(model, t) for t in texts]
        unique = list(dict.fromkeys(keys))
        found: dict[bytes, bytes] = {}
        conn = self._read()
        for batch in _batched(unique, 500):  # type: ignore[arg-type]
            marks = ",".join("?" * len(batch))
            for k, v in conn.execute(
                f"SELECT key, vector FROM embed_cache WHERE key IN ({marks})", batch
            ):
                found[bytes(k)] = bytes(v)
        hits = [k for k in unique if k in found]
        missing = [k for k in unique if k not in found]
        now = _now()
        if missing:
            text_of: dict[bytes, str] = {}
            for k, t in zip(keys, texts, strict=True):
                text_of.setdefault(k, t)
            fresh = self.embedder.embed([text_of[k] for k in missing])
            blobs = [np.asarray(v, dtype="<f4").tobytes() for v in fresh]
            found.update(zip(missing, blobs, strict=True))
        with self._txn() as wconn:
            if missing:
                wconn.executemany(
                    "INSERT OR REPLACE INTO embed_cache(key, model, vector, used) "
                    "VALUES (?, ?, ?, ?)",
                    [(k, model, found[k], now) for k in missing],
                )
            if hits:
                wconn.executemany(
                    "UPDATE embed_cache SET used = ? WHERE key = ?", [(now, k) for k in hits]
                )
        vectors = [np.frombuffer(found[k], dtype="<f4").tolist() for k in keys]
        return vectors, len(missing), len(hits)

    def embedding_cache_size(self) -> int:
        """Entries in the embedding cache (all models)."""
        return int(self._read().execute("SELECT count(*) FROM embed_cache").fetchone()[0])

    def prune_embedding_cache(self, *, slack: int | None = None) -> int:
        """Bound the embedding cache (call under :meth:`writer`; cheap unless it is over).

        Entries the stored chunks need are kept; beyond them ``slack`` (default the larger of
        :data:`CACHE_SLACK_MIN` and a quarter of the chunks) are allowed. Only when twice
        that is exceeded are the least recently used others evicted (other models' first),
        down to the allowance, so the cost of finding the needed entries is paid rarely.

        Returns:
            Entries evicted.
        """
        self._require_writer()
        conn = self._read()
        total = self.embedding_cache_size()
        live = self.chunk_count()
        allowed = max(CACHE_SLACK_MIN, live // 4) if slack is None else max(0, slack)
        if total <= live + 2 * allowed:
            return 0
        model = self.embedder.model_id
        needed = {
            embedding_cache_key(model, r[0])
            for r in conn.execute("SELECT COALESCE(embed_text, text) FROM chunks")
        }
        excess = total - (len(needed) + allowed)
        doomed: list[bytes] = []
        if excess > 0:
            for (k,) in conn.execute(
                "SELECT key FROM embed_cache ORDER BY model = ?, used", (model,)
            ):
                if bytes(k) not in needed:
                    doomed.append(bytes(k))
                    if len(doomed) >= excess:
                        break
        if doomed:
            with self._txn() as wconn:
                wconn.executemany("DELETE FROM embed_cache WHERE key = ?", [(k,) for k in doomed])
            log.info("embedding cache: evicted %d entries", len(doomed))
        return len(doomed)

    def delete_files(self, paths: Sequence[Path], *, keep_rows: bool = False) -> int:
        """Remove files' chunks from both stores (and their rows unless ``keep_rows``).

        Returns:
            Chunks removed.
        """
        self._require_writer()
        if not paths:
            return 0
        ids: list[str] = []
        with self._txn() as conn:
            for p in paths:
                row = conn.execute("SELECT id FROM files WHERE path = ?", (_db_path(p),)).fetchone()
                if row is None:
                    continue
                fid = int(row[0])
                ids += [r[0] for r in conn.execute("SELECT id FROM chunks WHERE file_id=?", (fid,))]
                conn.execute("DELETE FROM chunks WHERE file_id = ?", (fid,))
                if keep_rows:
                    conn.execute("UPDATE files SET chunk_count = 0 WHERE id = ?", (fid,))
                else:
                    conn.execute("DELETE FROM files WHERE id = ?", (fid,))
            conn.executemany(
                "INSERT OR IGNORE INTO vector_journal(chunk_id) VALUES (?)", [(i,) for i in ids]
            )
            self._bump(conn)
        self._delete_vectors(ids)
        self._after_own_write()
        return len(ids)

    def _delete_vectors(self, ids: list[str]) -> None:
        if not ids:
            return
        with self._chroma_lock, self._vector_op("deleting vectors"):
            self._chroma_wrote = True
            for batch in _batched(ids, self.max_batch):
                self._collection.delete(ids=batch)
        with self._txn() as conn:
            conn.executemany("DELETE FROM vector_journal WHERE chunk_id = ?", [(i,) for i in ids])

    # ---- recovery and rebuild

    def recover(self) -> int:
        """Undo what an interrupted write left in Chroma (call under :meth:`writer`).

        Returns:
            The number of journalled ids that had to be deleted from Chroma.
        """
        self._require_writer()
        rows = (
            self._read()
            .execute(
                "SELECT j.chunk_id, c.id IS NOT NULL FROM vector_journal j "
                "LEFT JOIN chunks c ON c.id = j.chunk_id"
            )
            .fetchall()
        )
        orphans = [r[0] for r in rows if not r[1]]
        kept = [r[0] for r in rows if r[1]]
        if orphans:
            self._delete_vectors(orphans)
        if kept:
            with self._txn() as conn:
                conn.executemany(
                    "DELETE FROM vector_journal WHERE chunk_id = ?", [(i,) for i in kept]
                )
        if orphans:
            log.info("removed %d vectors left by an interrupted index run", len(orphans))
        return len(orphans)

    def chunk_count(self) -> int:
        """Chunks in SQLite."""
        return int(self._read().execute("SELECT count(*) FROM chunks").fetchone()[0])

    def cached_chunk_count(self) -> int:
        """:meth:`chunk_count`, recounted only after a write (counting 100k rows costs ms)."""
        gen = self._generation()
        cached = getattr(self, "_count_cache", None)
        if cached is None or cached[0] != gen:
            cached = (gen, self.chunk_count())
            self._count_cache = cached
        return int(cached[1])

    @property
    def needs_reindex(self) -> bool:
        """Whether the vectors do not match SQLite's chunks for this embedding model.

        The model changed, or the vector index was lost: :meth:`rebuild_vectors` fixes it.
        """
        if self._meta("vector_model") == self.embedder.model_id:
            return False
        return self.chunk_count() > 0

    def verify_vectors(self) -> bool:
        """Compare vector and chunk counts (local mode); mark for rebuild when they differ.

        Call under :meth:`writer` (no writes in flight). Returns whether they matched.
        """
        self._require_writer()
        if self.server is not None:
            return True
        if self._meta("vector_model") != self.embedder.model_id:
            if self.chunk_count() == 0:
                self._adopt_empty_collection()
                return True
            return False
        try:
            with self._vector_op("counting vectors", say=False):  # said when set aside
                vectors = int(self._collection.count())
        except StorageError:
            if self.server is not None:
                raise
            # Chroma failed on the count: we hold the write lock, so set it aside now and
            # let this run rebuild it (instead of failing until the next one).
            self._set_damaged_index_aside(str(self._meta("vector_damage")), locked=True)
            return False
        chunks = self.chunk_count()
        if vectors == chunks:
            return True
        log.warning("vector index out of step with the manifest: it will be rebuilt")
        with self._txn() as conn:
            self._set_meta(conn, "vector_model", "")
            self._set_meta(
                conn,
                "vector_reason",
                f"it was out of step: {vectors} vectors for {chunks} passages",
            )
        return False

    def _adopt_empty_collection(self) -> None:
        with self._chroma_lock, self._vector_op("emptying the collection"):
            if self.server is None and self._collection.count():
                self._chroma_wrote = True
                self._client.delete_collection(self.collection_name)
                self._open_chroma()
        with self._txn() as conn:
            self._set_meta(conn, "vector_model", self.embedder.model_id)
            self._bump(conn)
        self._after_own_write()

    def rebuild_vectors(
        self,
        *,
        progress: Callable[[int, int], None] | None = None,
        cancel: threading.Event | None = None,
        batch: int = 256,
    ) -> bool:
        """Re-embed every chunk in SQLite into this model's collection (call under writer).

        Used when the embedding model changed or the vector index was damaged. Locally the
        collection is emptied first; on a shared server other people's vectors are kept.

        Returns:
            True when finished, False when cancelled (the store still needs a rebuild).
        """
        self._require_writer()
        total = self.chunk_count()
        if self.server is None and self._meta("vector_damage"):
            # A Chroma call failed in this process: start from a fresh folder, not that one.
            self._set_damaged_index_aside(str(self._meta("vector_damage")), locked=True)
        reason = self.reindex_reason
        with self._txn() as conn:
            if reason and not self._meta("vector_reason"):
                self._set_meta(conn, "vector_reason", reason)  # survives a cancelled run
            self._set_meta(conn, "vector_model", "")
        if self.server is None:
            with self._chroma_lock:
                self._chroma_wrote = True
                try:
                    self._client.delete_collection(self.collection_name)
                except Exception:  # not there: nothing to empty
                    log.debug("no collection to delete", exc_info=True)
                self._open_chroma()
        done = 0
        last = 0
        while True:
            if cancel is not None and cancel.is_set():
                return False
            rows = (
                self._read()
                .execute(
                    "SELECT c.seq, c.id, c.idx, c.text, COALESCE(c.embed_text, c.text) AS et, "
                    "c.heading, c.page, c.line_start, c.line_end, f.path, f.kind, r.path AS root "
                    "FROM chunks c JOIN files f ON f.id = c.file_id "
                    "JOIN roots r ON r.id = f.root_id WHERE c.seq > ? ORDER BY c.seq LIMIT ?",
                    (last, batch),
                )
                .fetchall()
            )
            if not rows:
                break
            # After a damaged index every vector is cached; after a model switch none is.
            vectors, _embedded, _hits = self.embed_cached([r["et"] for r in rows])
            metas = [
                _meta_dict(
                    _path(r["path"]),
                    _path(r["root"]),
                    r["kind"],
                    int(r["idx"]),
                    r["heading"],
                    r["page"],
                    r["line_start"],
                    r["line_end"],
                )
                for r in rows
            ]
            self._upsert_vectors([r["id"] for r in rows], vectors, metas, [r["text"] for r in rows])
            last = int(rows[-1]["seq"])
            done += len(rows)
            if progress is not None:
                progress(done, total)
        with self._txn() as conn:
            self._set_meta(conn, "vector_model", self.embedder.model_id)
            conn.execute("DELETE FROM meta WHERE key = 'vector_reason'")
            self._bump(conn)
        self._after_own_write()
        return True

    # ---- queries (used by retrieval)

    def keyword_query(
        self, match: str, n: int, weights: Sequence[float] = (1.0, 0.4, 0.4)
    ) -> list[tuple[str, float]]:
        """FTS5 ``match`` (already sanitised): ``(id, bm25 score)`` best first, higher better.

        Args:
            match: The MATCH expression.
            n: Most results.
            weights: bm25 weights of the text, heading-path and title columns.
        """
        w = [float(x) for x in weights][:3]
        w += [1.0] * (3 - len(w))
        rows = (
            self._read()
            .execute(
                "SELECT c.id, -m.s FROM (SELECT rowid AS r, bm25(chunks_fts, ?, ?, ?) AS s "
                "FROM chunks_fts WHERE chunks_fts MATCH ? ORDER BY s LIMIT ?) m "
                "JOIN chunks c ON c.seq = m.r ORDER BY m.s",
                (*w, match, n),
            )
            .fetchall()
        )
        return [(str(r[0]), float(r[1])) for r in rows]

    def term_frequencies(self, words: Sequence[str]) -> list[int]:
        """For each word, how many chunks contain it (after FTS5's own stemming).

        A word that tokenizes into several terms (``snake_case``) gets the largest count.
        """
        if not words:
            return []
        conn = self._read()
        if not getattr(self._local, "qtok", False):
            # A per-connection scratch table tokenizes words exactly as chunks_fts does.
            conn.execute(
                "CREATE VIRTUAL TABLE IF NOT EXISTS temp.parley_qtok USING fts5(t, "
                "tokenize='porter unicode61 remove_diacritics 2')"
            )
            conn.execute(
                "CREATE VIRTUAL TABLE IF NOT EXISTS temp.parley_qvocab "
                "USING fts5vocab(temp, parley_qtok, instance)"
            )
            self._local.qtok = True
        conn.execute("DELETE FROM temp.parley_qtok")
        conn.executemany(
            "INSERT INTO temp.parley_qtok(rowid, t) VALUES (?, ?)", list(enumerate(words))
        )
        stems: dict[int, set[str]] = {}
        for term, doc in conn.execute("SELECT term, doc FROM temp.parley_qvocab"):
            stems.setdefault(int(doc), set()).add(str(term))
        every = sorted({t for ts in stems.values() for t in ts})
        df: dict[str, int] = {}
        if every:
            marks = ",".join("?" * len(every))
            for term, doc in conn.execute(
                f"SELECT term, doc FROM chunks_vocab WHERE term IN ({marks})", every
            ):
                df[str(term)] = int(doc)
        return [max((df.get(t, 0) for t in stems.get(i, ())), default=0) for i in range(len(words))]

    def chunks_by_id(self, ids: Sequence[str]) -> dict[str, ChunkRow]:
        """Stored chunks (with file facts) for ``ids``; unknown ids are left out."""
        out: dict[str, ChunkRow] = {}
        conn = self._read()
        for batch in _batched(list(ids), 500):
            marks = ",".join("?" * len(batch))
            for r in conn.execute(
                "SELECT c.id, c.idx, c.text, c.heading, c.page, c.line_start, c.line_end, "
                "c.link_share, c.title, f.path, f.kind, r.path AS root "
                "FROM chunks c JOIN files f ON f.id = c.file_id "
                f"JOIN roots r ON r.id = f.root_id WHERE c.id IN ({marks})",
                batch,
            ):
                out[r["id"]] = ChunkRow(
                    id=r["id"],
                    path=_path(r["path"]),
                    root=_path(r["root"]),
                    kind=r["kind"],
                    index=int(r["idx"]),
                    text=r["text"],
                    heading=r["heading"],
                    page=r["page"],
                    line_start=r["line_start"],
                    line_end=r["line_end"],
                    link_share=float(r["link_share"] or 0.0),
                    title=r["title"] or "",
                )
        return out

    def close(self) -> None:
        """Close the databases and the Chroma client (idempotent)."""
        if self._closed:
            return
        with self._chroma_lock:
            client, self._client, self._collection = self._client, None, None
            if client is not None:
                _close_client(client)
        if self._verified and self.server is None:
            self._record_if_idle()
        self._closed = True
        with self._conns_lock:
            for conn in self._conns:
                try:
                    conn.close()
                except sqlite3.Error:
                    pass
            self._conns.clear()

    def _record_if_idle(self) -> None:
        """Remember the files as this process leaves them (see :meth:`_check_local_index`).

        Chroma rewrites a small collection's HNSW files whenever it loads them (the vectors
        still live in its write-ahead log), so a reader changes their mtimes too: recording
        on a clean close keeps the next start from checking again. A process that dies
        records nothing, and the next start checks. Skipped while another process writes.
        """
        import filelock

        if self._meta("vector_damage"):
            return
        lock = filelock.FileLock(str(self.paths.index_lock_file), thread_local=False)
        mine = self._writing > 0
        try:
            if not mine:
                lock.acquire(timeout=0)
        except (filelock.Timeout, OSError):
            return
        try:
            self._record_files()
        except (sqlite3.Error, OSError):  # a read-only data folder: check again next time
            log.debug("could not record the vector index's state", exc_info=True)
        finally:
            if not mine:
                lock.release()

    def __enter__(self) -> KnowledgeStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _signature(c: Chunk) -> tuple[Any, ...]:
    """The facts of a chunk row besides its content (which its id already fixes)."""
    return (
        c.index,
        HEADING_SEP.join(c.heading_path),
        c.page,
        c.line_start,
        c.line_end,
        c.token_count,
    )


def _chunk_meta(path: Path, root: Path, kind: str, c: Chunk) -> dict[str, Any]:
    return _meta_dict(
        path,
        root,
        kind,
        c.index,
        HEADING_SEP.join(c.heading_path),
        c.page,
        c.line_start,
        c.line_end,
    )


def _meta_dict(
    path: Path,
    root: Path,
    kind: str | None,
    index: int,
    heading: str,
    page: int | None,
    line_start: int | None,
    line_end: int | None,
) -> dict[str, Any]:
    # Chroma keeps metadata as UTF-8: a name with undecodable bytes goes in its text form.
    meta: dict[str, Any] = {"path": path_text(path), "root": path_text(root), "idx": index}
    # Chroma metadata values may not be None: leave absent facts out.
    for key, value in (
        ("kind", kind),
        ("heading", heading or None),
        ("page", page),
        ("line_start", line_start),
        ("line_end", line_end),
    ):
        if value is not None:
            meta[key] = value
    return meta


def _db_path(p: Path | str) -> str | bytes:
    """A path as SQLite stores it: TEXT when it is valid Unicode, else the BLOB of its bytes.

    A POSIX file name need not be UTF-8; Python holds its bad bytes as lone surrogates, which
    SQLite refuses. Each path has exactly one stored form, so ``path = ?`` lookups and the
    UNIQUE constraint keep working, and rows written before this are unchanged.
    """
    text = str(p)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(text)
    return text


@functools.lru_cache(maxsize=8192)
def _path(value: str | bytes) -> Path:
    """The inverse of :func:`_db_path`.

    Cached: a search turns a few hundred rows into paths, mostly of the same files, and
    building a ``Path`` costs ~40 us (~10 ms a query at 100k chunks, profiled); paths are
    immutable, so sharing them is safe.
    """
    return Path(os.fsdecode(value) if isinstance(value, bytes) else value)


def _norm(p: Path) -> Path:
    return Path(p).expanduser().resolve()


def _is_under(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _batched(items: list[str], n: int) -> Iterator[list[str]]:
    for s in range(0, len(items), n):
        yield items[s : s + n]
