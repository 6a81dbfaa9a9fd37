"""The Chroma side of the knowledge store: the vector index, opened, checked and queried.

:class:`VectorIndex` is the base class of :class:`~parley.core.knowledge.store.KnowledgeStore`:
it opens the Chroma client (embedded ``PersistentClient``, or ``HttpClient`` for a team
server), reopens it when another process wrote (the store's generation number), probes a
local folder in a child process before loading it and sets a damaged one aside
(``vector_check``), turns a failing Chroma call into a rebuild instead of a crash
(:meth:`VectorIndex._vector_op`), writes vectors in batches and answers dense queries.

The store (``store.py``) stays the coordinator of the crash-safety protocol: the SQLite
manifest, the journal of chunk ids, the order of the writes and the recovery. The methods
here reach its SQLite state only through the helpers it defines (``_meta``, ``_txn``...),
declared below for the type checker.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from parley.core.display import path_text
from parley.core.errors import ParleyError, ProviderDown, StorageError
from parley.core.knowledge.embeddings import Embedder
from parley.core.paths import Paths

log = logging.getLogger(__name__)

COLLECTION_PREFIX = "parley_"
"""Collection names are this prefix plus a slug of the embedding model id."""


@dataclass(frozen=True)
class ChromaServer:
    """A Chroma server for a shared team knowledge base (``chroma run`` or hosted)."""

    host: str
    port: int
    ssl: bool = False
    token: str | None = None


def collection_name(model_id: str) -> str:
    """Chroma collection for ``model_id`` (3-512 chars of ``[a-zA-Z0-9._-]``)."""
    slug = re.sub(r"[^a-z0-9]+", "-", model_id.lower()).strip("-") or "model"
    return (COLLECTION_PREFIX + slug)[:200]


def _close_client(client: Any) -> None:
    """Close a Chroma client; for an HTTP client also its connection pool once unused."""
    from chromadb.api.shared_system_client import SharedSystemClient

    sessions = []
    for c in (client, getattr(client, "_admin_client", None)):
        # chromadb's close() stops the System but leaves the httpx pool open (unclosed
        # sockets at exit); close it only if no other client still shares that System.
        sess = getattr(getattr(c, "_server", None), "_session", None)
        ident = getattr(c, "_identifier", None)
        if sess is not None and ident is not None:
            sessions.append((ident, sess))
    try:
        client.close()
    except Exception:  # closing is best effort
        log.debug("closing the Chroma client failed", exc_info=True)
    for ident, sess in sessions:
        if ident not in SharedSystemClient._identifier_to_system:
            try:
                sess.close()
            except Exception:
                log.debug("closing the Chroma HTTP session failed", exc_info=True)


def _text_where(clause: Any) -> Any:
    """A Chroma ``where`` clause with every string in the form the metadata holds it."""
    if isinstance(clause, str):
        return path_text(clause)
    if isinstance(clause, dict):
        return {k: _text_where(v) for k, v in clause.items()}
    if isinstance(clause, list):
        return [_text_where(v) for v in clause]
    return clause


def _short(text: str, n: int = 300) -> str:
    one = " ".join(str(text).split())
    return one if len(one) <= n else one[: n - 1] + "…"


EF_SEARCH = 400
"""HNSW's search breadth (Chroma's default: 100). Retrieval asks for 80 neighbours (its pool)
and with 100 the search was so approximate that one query got other neighbours from one
process to the next (Chroma re-inserts its unsynced vectors with several threads when it
opens a collection, so the graph differs): a git question's answer moved between ranks 5
and 6 from run to run. With 400 the 80 neighbours were the same in every one of six
processes; the cost is about a millisecond per query at 100,000 chunks."""


def _widen_search(collection: Any) -> None:
    """Raise an existing collection's ``ef_search`` to :data:`EF_SEARCH` (a query setting)."""
    try:
        current = (collection.configuration or {}).get("hnsw") or {}
        if int(current.get("ef_search") or 0) >= EF_SEARCH:
            return
        collection.modify(configuration={"hnsw": {"ef_search": EF_SEARCH}})
    except Exception as exc:  # e.g. an older server: searches stay as they were (logged)
        log.warning("could not widen the vector search (ef_search): %r", exc)


class VectorIndex:
    """The Chroma half of a :class:`~parley.core.knowledge.store.KnowledgeStore` (its base).

    Not used on its own: the store's constructor sets the attributes and defines the SQLite
    helpers declared here.
    """

    if TYPE_CHECKING:  # set or defined by KnowledgeStore
        paths: Paths
        embedder: Embedder
        server: ChromaServer | None
        _chroma_lock: Any
        _client: Any
        _collection: Any
        _seen_generation: int
        _writing: int
        _chroma_wrote: bool
        _failure_logged: bool
        _verified: bool

        @property
        def needs_reindex(self) -> bool:
            """See :attr:`KnowledgeStore.needs_reindex`."""

        def chunk_count(self) -> int:
            """See :meth:`KnowledgeStore.chunk_count`."""

        def _read(self) -> sqlite3.Connection: ...
        def _generation(self) -> int: ...
        def _meta(self, key: str) -> str | None: ...
        @staticmethod
        def _set_meta(conn: sqlite3.Connection, key: str, value: str) -> None: ...
        @staticmethod
        def _bump(conn: sqlite3.Connection) -> None: ...
        def _txn(self) -> AbstractContextManager[sqlite3.Connection]: ...
        def _after_own_write(self) -> None: ...

    # ---- Chroma

    @property
    def collection_name(self) -> str:
        """The Chroma collection bound to this store's embedding model."""
        return collection_name(self.embedder.model_id)

    def _open_chroma(self) -> None:
        import chromadb
        from chromadb.config import Settings

        settings = Settings(anonymized_telemetry=False)
        generation = self._generation()
        try:
            if self.server is None:
                self.paths.chroma_dir.mkdir(parents=True, exist_ok=True)
                client = chromadb.PersistentClient(
                    path=str(self.paths.chroma_dir), settings=settings
                )
            else:
                headers = {}
                if self.server.token:
                    headers["Authorization"] = f"Bearer {self.server.token}"
                client = chromadb.HttpClient(
                    host=self.server.host,
                    port=self.server.port,
                    ssl=self.server.ssl,
                    headers=headers,
                    settings=settings,
                )
            collection = client.get_or_create_collection(
                self.collection_name,
                metadata={"parley_model": self.embedder.model_id, "parley_schema": 1},
                configuration={"hnsw": {"space": "cosine", "ef_search": EF_SEARCH}},
                embedding_function=None,
            )
            _widen_search(collection)
        except Exception as exc:
            if self.server is not None:
                raise ProviderDown(
                    f"The Chroma server at {self.server.host}:{self.server.port} "
                    "could not be used.",
                    detail=repr(exc),
                ) from exc
            raise StorageError(
                f"The vector index in {self.paths.chroma_dir} cannot be opened "
                "(move the folder aside; Parley rebuilds it from its database).",
                detail=repr(exc),
            ) from exc
        self._client, self._collection = client, collection
        self._seen_generation = generation

    # ---- a damaged local index (issue 11): probed before use, set aside, rebuilt

    def _check_local_index(self) -> bool:
        """Make sure the local vector index is safe to open before this process opens it.

        A damaged HNSW file can crash the process natively (SIGSEGV) the moment Chroma loads
        it, so the folder is checked in a child process first (``vector_check.probe``). The
        check costs about a second (a process start and chromadb's import), so it runs only
        when the folder's files differ from the last state known to be good: recorded after
        every good check and after every write this process made (``vector_files`` in
        ``meta``). A folder that fails is set aside and rebuilt from SQLite. While another
        process holds the write lock the folder is in flux and that process vouches for it:
        nothing is checked or recorded then.

        Returns:
            True when there was no index yet (the one Chroma creates now is new).
        """
        import filelock

        from parley.core.knowledge import vector_check

        folder = self.paths.chroma_dir
        if not folder.is_dir() or not any(folder.iterdir()):
            self._verified = True  # nothing there yet: what Chroma creates now is good
            if self._meta("vector_model") == self.embedder.model_id and self.chunk_count():
                # The manifest says vectors were there: the folder was deleted, not new.
                log.warning(
                    "the vector index is missing (%s); searches use keywords until it is "
                    "rebuilt from Parley's database (`parley index` or the Knowledge panel)",
                    folder,
                )
                with self._txn() as conn:
                    self._set_meta(conn, "vector_model", "")
                    self._set_meta(conn, "vector_reason", "it was missing")
                    self._bump(conn)
            return True
        lock = filelock.FileLock(str(self.paths.index_lock_file), thread_local=False)
        try:
            lock.acquire(timeout=0)
        except filelock.Timeout:
            return False
        try:
            failure = self._meta("vector_damage")
            if failure:
                self._set_damaged_index_aside(failure, locked=True)
                return False
            known = self._meta("vector_files")
            if known == vector_check.fingerprint(self.paths.chroma_dir):
                self._verified = True
                return False
            result = vector_check.probe(self.paths.chroma_dir)
            problem = result.problem or self._count_problem(result.counts)
            if problem is not None:
                self._set_damaged_index_aside(problem, locked=True)
            elif not result.inconclusive:
                self._verified = True
                self._record_files()
        finally:
            lock.release()
        return False

    def _count_problem(self, counts: dict[str, int]) -> str | None:
        """Whether this model's collection lost vectors SQLite says it holds."""
        if self._meta("vector_model") != self.embedder.model_id:
            return None  # it is rebuilt anyway
        chunks = self.chunk_count()
        vectors = counts.get(self.collection_name, 0)
        # An interrupted write may leave journalled extra vectors; never fewer than chunks.
        journal = int(self._read().execute("SELECT count(*) FROM vector_journal").fetchone()[0])
        if chunks <= vectors <= chunks + journal:
            return None
        return f"it holds {vectors} vectors for {chunks} stored passages"

    def _record_files(self) -> None:
        """Remember the local index's files as a good state (see :meth:`_check_local_index`)."""
        from parley.core.knowledge import vector_check

        with self._txn() as conn:
            self._set_meta(conn, "vector_files", vector_check.fingerprint(self.paths.chroma_dir))

    def _set_damaged_index_aside(self, reason: str, *, locked: bool = False) -> None:
        """Move a damaged local vector index aside, start an empty one, say so once.

        SQLite holds every chunk, so nothing is lost: the store reports ``needs_reindex``
        (searches use keywords meanwhile) and the next indexing run re-embeds everything.
        Done only under the write lock, so a folder another process is writing is never
        moved (``locked``: the caller holds it).

        Raises:
            StorageError: The index cannot be used and another process is writing it.
        """
        import filelock

        lock = filelock.FileLock(str(self.paths.index_lock_file), thread_local=False)
        if not locked:
            try:
                lock.acquire(timeout=0)
            except filelock.Timeout as exc:
                raise StorageError(
                    f"The vector index in {self.paths.chroma_dir} cannot be opened while "
                    "another Parley process is indexing; try again when it finishes."
                ) from exc
        try:
            with self._chroma_lock:
                old = self._client
                self._client = self._collection = None
                if old is not None:
                    _close_client(old)
            stamp = time.strftime("%Y%m%d-%H%M%S")
            aside = self.paths.chroma_dir.with_name(f"{self.paths.chroma_dir.name}.damaged-{stamp}")
            n = 1
            while aside.exists():
                n += 1
                aside = aside.with_name(f"{self.paths.chroma_dir.name}.damaged-{stamp}-{n}")
            log.warning(
                "the vector index was damaged (%s): moved to %s; searches use keywords until "
                "it is rebuilt from Parley's database (`parley index` or the Knowledge panel)",
                _short(reason),
                aside,
            )
            self.paths.chroma_dir.rename(aside)
            # chromadb caches a System per folder even when starting it failed: drop it, or
            # the new client would get the broken one back.
            from chromadb.api.shared_system_client import SharedSystemClient

            SharedSystemClient._identifier_to_system.pop(str(self.paths.chroma_dir), None)
            SharedSystemClient._identifier_to_refcount.pop(str(self.paths.chroma_dir), None)
            self._open_chroma()
            with self._txn() as conn:
                self._set_meta(conn, "vector_model", "")
                self._set_meta(conn, "vector_reason", f"it was damaged: {_short(reason, 160)}")
                conn.execute("DELETE FROM meta WHERE key = 'vector_damage'")
                self._bump(conn)
            self._record_files()
            self._verified = True
            self._seen_generation = self._generation()
        finally:
            if not locked:
                lock.release()

    @contextmanager
    def _vector_op(self, what: str, *, say: bool = True) -> Iterator[None]:
        """Run a local Chroma call; a failure marks the index damaged instead of escaping raw.

        The vectors are marked for a rebuild (searches fall back to keywords at once) and
        ``vector_damage`` makes the next store opened here set the folder aside first.

        Args:
            what: What the call does, for the message ("searching vectors").
            say: Log the failure (once per store); False when the caller deals with it at
                once (and says so itself).

        Raises:
            StorageError: The call failed (one line, the rebuild is explained).
        """
        try:
            yield
        except ParleyError:
            raise
        except Exception as exc:
            if self.server is not None:
                raise
            detail = f"{what} failed: {type(exc).__name__}: {_short(str(exc))}"
            with self._txn() as conn:
                self._set_meta(conn, "vector_damage", detail)
                self._set_meta(conn, "vector_model", "")
                self._set_meta(conn, "vector_reason", f"it failed: {detail}")
                self._bump(conn)
            self._after_own_write()
            if say and not self._failure_logged:
                self._failure_logged = True
                log.warning(
                    "the vector index failed (%s); searches use keywords until it is rebuilt "
                    "(`parley index` or the Knowledge panel)",
                    detail,
                )
            raise StorageError(
                "The vector index failed; Parley will set it aside and rebuild it from its "
                "database on the next indexing run.",
                detail=detail,
            ) from exc

    @property
    def reindex_reason(self) -> str | None:
        """Why :attr:`needs_reindex` is true, for people.

        "the embedding model changed from A to B", "it was damaged: ...", "it was out of
        step: ...", "it failed: ..." (it = the vector index).
        """
        if not self.needs_reindex:
            return None
        stored = self._meta("vector_reason")
        if stored:
            return stored
        old = self._meta("vector_model")
        if old:
            return f"the embedding model changed from {old} to {self.embedder.model_id}"
        return None

    def _reopen_chroma(self) -> None:
        with self._chroma_lock:
            old = self._client
            self._client = self._collection = None
            if old is not None:
                _close_client(old)
            self._open_chroma()

    def _fresh_collection(self) -> Any:
        """The collection, reopened first if another process wrote since we opened it."""
        if self.server is None and not self._writing:
            if self._generation() != self._seen_generation:
                self._reopen_chroma()
        return self._collection

    @property
    def max_batch(self) -> int:
        """Largest Chroma write this client accepts."""
        try:
            return max(1, int(self._client.get_max_batch_size()))
        except Exception:  # older servers lack the endpoint
            return 1000

    def vector_count(self) -> int:
        """Vectors in the collection."""
        with self._vector_op("counting vectors"):
            return int(self._fresh_collection().count())

    def _upsert_vectors(
        self,
        ids: list[str],
        vectors: Sequence[Sequence[float]],
        metas: list[dict[str, Any]],
        docs: list[str],
    ) -> None:
        step = self.max_batch
        with self._chroma_lock, self._vector_op("writing vectors"):
            self._chroma_wrote = True
            for s in range(0, len(ids), step):
                kwargs: dict[str, Any] = {
                    "ids": ids[s : s + step],
                    "embeddings": [list(v) for v in vectors[s : s + step]],
                    "metadatas": metas[s : s + step],
                }
                if self.server is not None:
                    # Teammates have no copy of our SQLite: the text must live on the server.
                    kwargs["documents"] = docs[s : s + step]
                self._collection.upsert(**kwargs)

    # ---- queries (used by retrieval)

    def dense_query(
        self, vector: Sequence[float], n: int, where: dict[str, Any] | None = None
    ) -> list[tuple[str, float, dict[str, Any] | None, str | None]]:
        """Nearest chunks: ``(id, cosine similarity, metadata, document)`` best first.

        Locally only ids and distances are fetched (the rest comes from SQLite, faster); from
        a server the metadata and text come along (teammates' chunks are not in our SQLite).
        """
        if self.server is None and self._meta("vector_damage"):
            return []  # it failed before in this process: keywords only until the rebuild
        with self._chroma_lock:
            col = self._fresh_collection()
        count = col.count() if self.server is not None else None
        if count == 0:
            return []
        include = ["distances"]
        if where is not None:
            where = _text_where(where)  # metadata holds paths in their text form
        if self.server is not None:
            include += ["metadatas", "documents"]
        try:
            with self._vector_op("searching vectors"):
                res = col.query(
                    query_embeddings=[list(vector)],
                    n_results=max(1, n),
                    where=where,
                    include=include,
                )
        except StorageError:
            return []  # said once (log); the keyword half of the search still answers
        ids = res["ids"][0]
        dists = res["distances"][0]
        metas = (res.get("metadatas") or [None])[0] or [None] * len(ids)
        docs = (res.get("documents") or [None])[0] or [None] * len(ids)
        return [
            (i, 1.0 - float(d), m, doc)
            for i, d, m, doc in zip(ids, dists, metas, docs, strict=True)
        ]

    def vectors(self, ids: Sequence[str]) -> dict[str, Sequence[float]]:
        """The stored vectors of these chunks (ids without one are left out).

        Retrieval scores keyword candidates the dense search did not rank by their cosine
        (complete fusion); a few dozen vectors cost a few milliseconds.
        """
        if not ids or (self.server is None and self._meta("vector_damage")):
            return {}
        with self._chroma_lock:
            col = self._fresh_collection()
        try:
            with self._vector_op("reading vectors"):
                got = col.get(ids=list(ids), include=["embeddings"])
        except StorageError:
            return {}  # said once (log); those candidates count as the weakest
        except Exception as exc:  # a server that fails: the same, without marking damage
            log.debug("reading vectors from the Chroma server failed: %r", exc)
            return {}
        embeddings = got.get("embeddings")
        if embeddings is None:
            return {}
        return dict(zip(got["ids"], embeddings, strict=True))
