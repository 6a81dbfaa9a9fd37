"""The isolated runner: risky formats parsed in reused worker processes with time and memory caps.

The worker is started with ``forkserver`` (``spawn`` where that is missing), never ``fork``:
the parent may be a Qt app with threads.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parley.core.knowledge.loaders.base import (
    DEFAULT_MAX_BYTES,
    RISKY_KINDS,
    FileSkipped,
    LoadedDocument,
    _OutOfMemory,
    _short,
    kind_for,
    stat_document,
)
from parley.core.knowledge.loaders.dispatch import load_file, unsupported_reason

IN_PROCESS_LIMIT = 4 * 2**20
"""Plain-text files up to this size are parsed in the caller's process by IsolatedLoader."""


# ---------------------------------------------------------------------------- isolation


def _limit_resources(memory_mb: int) -> None:
    """Cap the worker's address space (POSIX); no core dumps from a crashing parser."""
    try:
        import resource
    except ImportError:  # Windows: no rlimits; the time limit still applies
        return
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    limit = memory_mb * 2**20
    with contextlib.suppress(ValueError, OSError):  # macOS does not enforce RLIMIT_AS
        _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _worker_main(conn: Any, memory_mb: int) -> None:
    """Entry point of a loader worker: load paths sent over ``conn`` until told to stop."""
    import logging
    import warnings

    _limit_resources(memory_mb)
    # Parsers of damaged files are chatty; the skip reason carries what matters.
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    conn.send(("ready", os.getpid()))
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        path, max_bytes = job
        reply: tuple[str, Any]
        try:
            reply = ("ok", load_file(Path(path), max_bytes=max_bytes))
        except (MemoryError, _OutOfMemory):
            reply = ("skip", f"needs more than {memory_mb} MB of memory to parse")
        except FileSkipped as exc:
            reply = ("skip", exc.reason)
        except RecursionError:
            reply = ("skip", "damaged file: nested too deeply")
        except Exception as exc:  # any parser bug becomes a skip, never a dead indexer
            reply = ("skip", f"could not be parsed ({type(exc).__name__}: {_short(exc)})")
        try:
            conn.send(reply)
        except MemoryError:
            conn.send(("skip", f"needs more than {memory_mb} MB of memory to parse"))


@dataclass(eq=False)
class _Worker:
    """One worker process and our end of its pipe."""

    process: Any
    conn: Any
    ready: bool = False
    jobs: int = field(default=0)

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self.process.kill()
        with contextlib.suppress(Exception):
            self.process.join(5)
        with contextlib.suppress(Exception):
            self.conn.close()


class IsolatedLoader:
    """Loads files with risky parsers in reused worker processes.

    PDF, DOCX and HTML, and any file above a few MB, are parsed in a worker with a time
    limit (the worker is killed and replaced when it runs over) and an address-space cap.
    Small plain-text files take the in-process fast path: the size cap bounds them.

    Thread-safe: each call borrows one idle worker (``workers`` of them at most), so several
    threads may call :meth:`load` at once. Use as a context manager or call :meth:`close`.

    Args:
        timeout_s: Longest time one parse may take.
        memory_mb: Address-space cap of each worker (POSIX only).
        max_bytes: Size cap; larger files are skipped without being read.
        workers: How many worker processes may run at once.
        in_process_limit: Plain-text files up to this size are parsed in-process.
    """

    def __init__(
        self,
        *,
        timeout_s: float = 30.0,
        memory_mb: int = 1024,
        max_bytes: int = DEFAULT_MAX_BYTES,
        workers: int = 1,
        in_process_limit: int = IN_PROCESS_LIMIT,
    ) -> None:
        if timeout_s <= 0 or memory_mb <= 0 or max_bytes <= 0 or workers < 1:
            raise ValueError("timeout_s, memory_mb, max_bytes and workers must be positive")
        self._timeout = timeout_s
        self._memory_mb = memory_mb
        self._max_bytes = max_bytes
        self._in_process_limit = in_process_limit
        self._idle: queue.Queue[_Worker | None] = queue.Queue()
        for _ in range(workers):
            self._idle.put(None)  # a slot whose process starts on first use
        self._lock = threading.Lock()
        self._live: set[_Worker] = set()
        self._closed = False
        import multiprocessing as mp

        method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
        self._ctx: Any = mp.get_context(method)

    # ---- Public API
    def __enter__(self) -> IsolatedLoader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def load(self, path: Path) -> LoadedDocument:
        """Parse one file, in a worker unless it is small plain text.

        Args:
            path: The file.

        Returns:
            The parsed document.

        Raises:
            FileSkipped: For every reason :func:`load_file` gives, plus ``"took longer than
                30 s to parse"``, ``"needs more than 1024 MB of memory to parse"`` and
                ``"the parser crashed"``.
        """
        path = Path(path)
        kind = kind_for(path)
        if kind is None:
            raise FileSkipped(unsupported_reason(path))
        st = stat_document(path, self._max_bytes)
        if kind not in RISKY_KINDS and st.st_size <= self._in_process_limit:
            return load_file(path, max_bytes=self._max_bytes)
        return self._in_worker(path)

    def close(self) -> None:
        """Stop every worker (a parse in progress ends with ``FileSkipped``)."""
        with self._lock:
            self._closed = True
            live = list(self._live)
            self._live.clear()
        for w in live:
            with contextlib.suppress(Exception):
                w.conn.send(None)
            w.process.join(0.5)
            w.kill()

    # ---- Internals
    def _start(self) -> _Worker:
        parent, child = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(
            target=_worker_main, args=(child, self._memory_mb), name="parley-loader", daemon=True
        )
        proc.start()
        child.close()
        worker = _Worker(proc, parent)
        with self._lock:
            if self._closed:
                worker.kill()
                raise FileSkipped("the loader was closed")
            self._live.add(worker)
        # Start-up (interpreter + imports) does not count against the parse time limit.
        if not parent.poll(max(60.0, self._timeout)):
            self._discard(worker)
            raise FileSkipped("the parser process did not start")
        try:
            parent.recv()
        except (EOFError, OSError):
            self._discard(worker)
            raise FileSkipped("the parser process did not start") from None
        worker.ready = True
        return worker

    def _discard(self, worker: _Worker) -> None:
        with self._lock:
            self._live.discard(worker)
        worker.kill()

    def _in_worker(self, path: Path) -> LoadedDocument:
        if self._closed:
            raise FileSkipped("the loader was closed")
        slot = self._idle.get()
        worker: _Worker | None = slot
        try:
            if worker is None or not worker.process.is_alive():
                if worker is not None:
                    self._discard(worker)
                worker = None
                worker = self._start()
            try:
                worker.conn.send((str(path), self._max_bytes))
                arrived = worker.conn.poll(self._timeout)
            except (OSError, EOFError, ValueError):
                arrived = False
                if self._closed:
                    raise FileSkipped("the loader was closed") from None
            if not arrived:
                self._discard(worker)
                worker = None
                if self._closed:
                    raise FileSkipped("the loader was closed")
                raise FileSkipped(f"took longer than {self._timeout:g} s to parse")
            try:
                status, payload = worker.conn.recv()
            except (EOFError, OSError, ValueError):
                worker.process.join(2)
                code = worker.process.exitcode
                self._discard(worker)
                worker = None
                if self._closed:
                    raise FileSkipped("the loader was closed") from None
                detail = f" (exit code {code})" if code is not None else ""
                raise FileSkipped(f"the parser crashed on this file{detail}") from None
            worker.jobs += 1
            if status == "ok":
                doc: LoadedDocument = payload
                return doc
            raise FileSkipped(str(payload))
        finally:
            self._idle.put(worker if worker is not None and not self._closed else None)
