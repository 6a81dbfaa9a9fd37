"""Watch the knowledge folders and re-index them, debounced, when files change.

watchdog reports every write, so a burst (a save, a ``git checkout``, an unzip) is collapsed:
the roots touched are collected and handed over once nothing has changed for ``debounce_s``.
Re-indexing a whole root is cheap when little changed (unchanged files are skipped by size and
mtime, ~2 s for 10,000 files), and it applies the same ignore rules as a full run, so
created, modified, deleted and renamed files are all handled by one code path.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from parley.core.errors import ParleyError

log = logging.getLogger(__name__)

DEFAULT_DEBOUNCE_S = 1.0
"""Quiet time after the last change before the roots are re-indexed."""

_IGNORED_PARTS = frozenset({".git", "__pycache__", "node_modules", ".venv", ".mypy_cache"})
"""Folders whose churn never matters (the walker skips them anyway)."""


class FolderWatcher:
    """Calls ``on_change(roots)`` on a background thread after changes settle.

    Use it as a context manager or call :meth:`start` / :meth:`stop`.
    """

    def __init__(
        self,
        roots: Sequence[Path],
        on_change: Callable[[set[Path]], None],
        *,
        debounce_s: float = DEFAULT_DEBOUNCE_S,
        ignore: Sequence[Path] = (),
    ) -> None:
        """Watch ``roots`` (folders or single files).

        Args:
            roots: What to watch; a single file is watched through its folder.
            on_change: Gets the set of roots with changes; runs on the watcher's thread, one
                call at a time (changes during a call are batched for the next one).
            debounce_s: Quiet time before calling.
            ignore: Paths whose changes are ignored (e.g. Parley's own data dir).
        """
        self.roots = [Path(r).expanduser().resolve() for r in roots]
        self.on_change = on_change
        self.debounce_s = debounce_s
        self.ignore = [Path(p).resolve() for p in ignore]
        self._dirty: set[Path] = set()
        self._last_event = 0.0
        self._cond = threading.Condition()
        self._stopping = False
        self._observer: Any = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle

    def start(self) -> None:
        """Start watching (idempotent)."""
        if self._observer is not None:
            return
        from watchdog.events import FileSystemEvent, FileSystemEventHandler
        from watchdog.observers import Observer

        watcher = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                if event.event_type in ("opened", "closed_no_write"):
                    return  # reads do not change the index
                paths = [event.src_path, getattr(event, "dest_path", "") or ""]
                for p in paths:
                    if p:
                        watcher._touched(Path(p if isinstance(p, str) else p.decode()))

        observer = Observer()
        handler = Handler()
        watched: set[Path] = set()
        for root in self.roots:
            folder = root if root.is_dir() else root.parent
            if folder in watched or not folder.exists():
                continue
            watched.add(folder)
            observer.schedule(handler, str(folder), recursive=root.is_dir())
        observer.daemon = True
        observer.start()
        self._observer = observer
        self._thread = threading.Thread(target=self._loop, name="parley-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching; waits for a running ``on_change`` call to return."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> FolderWatcher:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- events

    def _touched(self, path: Path) -> None:
        if _IGNORED_PARTS.intersection(path.parts):
            return
        if any(path == p or p in path.parents for p in self.ignore):
            return
        for root in self.roots:
            if path == root or root in path.parents:
                with self._cond:
                    self._dirty.add(root)
                    self._last_event = time.monotonic()
                    self._cond.notify_all()
                return

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._dirty and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                quiet = time.monotonic() - self._last_event
                if quiet < self.debounce_s:
                    self._cond.wait(self.debounce_s - quiet)
                    continue
                batch, self._dirty = self._dirty, set()
            try:
                self.on_change(batch)
            except ParleyError as exc:
                log.warning("re-indexing after a change failed: %s", exc.user_message)
            except Exception:  # the watcher must outlive one bad run
                log.exception("re-indexing after a change failed")


class IndexingWatcher(FolderWatcher):
    """A :class:`FolderWatcher` that re-indexes the changed roots with an ``Indexer``.

    ``on_report`` gets each run's ``IndexReport`` (on the watcher's thread).
    """

    def __init__(
        self,
        indexer: Any,
        roots: Sequence[Path],
        *,
        debounce_s: float = DEFAULT_DEBOUNCE_S,
        on_report: Callable[[Any], None] | None = None,
    ) -> None:
        """Watch ``roots`` and re-index them with ``indexer`` (an ``indexer.Indexer``)."""
        self.indexer = indexer
        self.on_report = on_report
        self.cancel = threading.Event()
        super().__init__(
            roots, self._reindex, debounce_s=debounce_s, ignore=[indexer.store.paths.data_dir]
        )

    def _reindex(self, roots: set[Path]) -> None:
        report = self.indexer.index(sorted(roots), cancel=self.cancel)
        if self.on_report is not None:
            self.on_report(report)

    def stop(self) -> None:
        """Stop watching and cancel a run in progress."""
        self.cancel.set()
        super().stop()
