"""The folder watcher: debounced re-indexing of created, changed, deleted and renamed files."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from parley.core.knowledge.indexer import Indexer, IndexReport
from parley.core.knowledge.store import KnowledgeStore
from parley.core.knowledge.watcher import FolderWatcher, IndexingWatcher


def _wait_for(pred, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        time.sleep(0.02)


def test_burst_of_changes_is_one_call(tmp_path: Path) -> None:
    root = tmp_path / "w"
    root.mkdir()
    calls: list[set[Path]] = []
    done = threading.Event()

    def on_change(roots: set[Path]) -> None:
        calls.append(roots)
        done.set()

    with FolderWatcher([root], on_change, debounce_s=0.3):
        for i in range(20):
            (root / f"f{i}.txt").write_text(str(i))
        assert done.wait(10)
        time.sleep(0.5)  # quiet period: asserting that no second call arrives
    assert calls == [{root.resolve()}]


def test_ignored_paths_do_not_trigger(tmp_path: Path) -> None:
    root = tmp_path / "w"
    (root / ".git").mkdir(parents=True)
    calls: list[set[Path]] = []
    with FolderWatcher([root], calls.append, debounce_s=0.1):
        (root / ".git" / "index").write_text("x")
        time.sleep(0.5)  # asserting the absence of a call
    assert calls == []


def test_reindexes_changes(store: KnowledgeStore, tmp_path: Path) -> None:
    root = tmp_path / "kb"
    root.mkdir()
    (root / "a.md").write_text("# Alpha\n\nThe first note mentions zeppelins.\n")
    ix = Indexer(store)
    ix.index([root])
    reports: list[IndexReport] = []
    with IndexingWatcher(ix, [root], debounce_s=0.2, on_report=reports.append):
        (root / "b.md").write_text("# Beta\n\nA new note about lighthouses.\n")
        _wait_for(lambda: any(r.files_indexed for r in reports))
        (root / "a.md").rename(root / "c.md")
        _wait_for(lambda: any(r.files_removed for r in reports))
    names = sorted(p.name for p in store.files())
    assert names == ["b.md", "c.md"]
    assert store.keyword_query('"lighthouses"', 3)
