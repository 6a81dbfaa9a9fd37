"""The indexer end to end: real walker, loaders, chunker, MiniLM, SQLite and Chroma."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from parley.core.errors import IndexBusy
from parley.core.knowledge.indexer import (
    Indexer,
    IndexProgress,
    IndexReport,
    index_in_background,
)
from parley.core.knowledge.retrieval import Retriever
from parley.core.knowledge.store import KnowledgeStore
from parley.core.paths import Paths

from .conftest import index_lock_held_elsewhere

REPO = Path(__file__).resolve().parents[3]


def _doc(topic: str, paragraphs: int = 2) -> str:
    body = "\n\n".join(
        f"Paragraph {i} about {topic}. " + " ".join(f"{topic}{j}" for j in range(30))
        for i in range(paragraphs)
    )
    return f"# {topic.title()}\n\n{body}\n"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "notes"
    (root / "sub").mkdir(parents=True)
    (root / "gardening.md").write_text(_doc("tomatoes"))
    (root / "sub" / "cooking.md").write_text(_doc("risotto"))
    (root / "travel.txt").write_text("Pack a passport and a rain jacket for the trip to Norway.\n")
    (root / "broken.txt").write_bytes(b"\x00\x01\x02binary\x00" * 200)
    return root


def _consistent(store: KnowledgeStore) -> None:
    chroma = set(store._collection.get(include=[])["ids"])
    sql = {r[0] for r in store._read().execute("SELECT id FROM chunks")}
    assert chroma == sql
    assert store._read().execute("SELECT count(*) FROM vector_journal").fetchone()[0] == 0
    assert not [p for p, r in store.files().items() if r.status == "pending"]


def test_incremental_runs(store: KnowledgeStore, folder: Path) -> None:
    ix = Indexer(store)
    events: list[IndexProgress] = []
    first = ix.index([folder], progress=events.append)
    assert first.files_indexed == 3 and first.chunks >= 3
    assert [p.name for p, _ in first.files_skipped] == ["broken.txt"]
    assert events[-1].files_done == events[-1].files_total == 4
    assert any(e.current and e.current.endswith(".md") for e in events)
    _consistent(store)
    [root] = store.roots()
    assert (root.status, root.files, root.skipped) == ("indexed", 3, 1)
    assert [p.name for p, _ in store.skipped(folder)] == ["broken.txt"]

    again = ix.index([folder])
    assert (again.files_indexed, again.chunks, again.files_unchanged) == (0, 0, 4)

    # Touched but unchanged: the hash says so, nothing is re-embedded.
    g = folder / "gardening.md"
    os.utime(g, ns=(time.time_ns(), time.time_ns() + 10**9))
    touched = ix.index([folder])
    assert (touched.files_indexed, touched.chunks) == (0, 0)
    assert store.files()[g].mtime_ns == g.stat().st_mtime_ns

    # Changed, removed, renamed.
    g.write_text(_doc("cucumbers"))
    (folder / "travel.txt").unlink()
    (folder / "sub" / "cooking.md").rename(folder / "sub" / "recipes.md")
    changed = ix.index([folder])
    assert changed.files_indexed == 2 and changed.files_removed == 2
    _consistent(store)
    hits = Retriever(store).search("cucumbers", k=3, mode="keyword")
    assert hits and hits[0].path == g
    assert not Retriever(store).search("passport Norway", k=3, mode="keyword")


def test_single_file_and_subfolder(store: KnowledgeStore, folder: Path) -> None:
    ix = Indexer(store)
    one = ix.index([folder / "travel.txt"])
    assert one.files_indexed == 1
    assert [r.path for r in store.roots()] == [folder / "travel.txt"]
    ix.index([folder])  # the folder takes over the file root
    assert [r.path for r in store.roots()] == [folder]
    sub = ix.index([folder / "sub"])  # a subfolder of a root: only that part is looked at
    assert sub.files_unchanged == 1 and sub.files_removed == 0
    assert len(store.files()) == 4


def test_cancel_then_resume(store: KnowledgeStore, folder: Path) -> None:
    for i in range(6):
        (folder / f"extra{i}.md").write_text(_doc(f"topic{i}"))
    import threading

    cancel = threading.Event()

    def progress(p: IndexProgress) -> None:
        if p.files_done >= 1:
            cancel.set()

    report = Indexer(store).index([folder], progress=progress, cancel=cancel)
    assert report.cancelled
    assert store.roots()[0].status == "incomplete"
    _consistent(store)
    rest = Indexer(store).index([folder])
    assert not rest.cancelled
    assert rest.files_indexed + report.files_indexed == 9
    _consistent(store)
    assert store.roots()[0].status == "indexed"


def test_busy_lock(store: KnowledgeStore, folder: Path, paths: Paths) -> None:
    with index_lock_held_elsewhere(paths):
        with pytest.raises(IndexBusy):
            Indexer(store).index([folder], wait_for_lock=False)
    assert Indexer(store).index([folder], wait_for_lock=False).files_indexed == 3


def test_remove_root(store: KnowledgeStore, folder: Path) -> None:
    ix = Indexer(store)
    report = ix.index([folder])
    assert ix.remove(folder) == report.chunks
    assert store.roots() == [] and store.chunk_count() == 0 and store.vector_count() == 0


_WORKER = """
import sys
from pathlib import Path
from parley.core.paths import default_paths
from parley.core.knowledge.embeddings import local_embedder
from parley.core.knowledge.store import KnowledgeStore
from parley.core.knowledge.indexer import Indexer
p = default_paths()
store = KnowledgeStore(p, local_embedder(p, threads=1))
def progress(ev):
    print(ev.files_done, flush=True)
# Small batches: many commit points to be killed between.
Indexer(store, embed_batch=8).index([Path(sys.argv[1])], progress=progress)
print("done", flush=True)
"""


@pytest.mark.slow
def test_sigkill_mid_index_then_resume(store: KnowledgeStore, tmp_path: Path) -> None:
    root = tmp_path / "big"
    root.mkdir()
    for i in range(18):
        (root / f"doc{i:02d}.md").write_text(_doc(f"subject{i}", paragraphs=3))
    env = dict(os.environ, PYTHONPATH=str(REPO / "desktop"))
    killed = 0
    for kill_after in (2, 7):  # two kills at different points, then a clean finish
        with subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(root)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        ) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                if line.strip() == "done":
                    break
                if int(line) >= kill_after:
                    proc.send_signal(signal.SIGKILL)
                    killed += 1
                    break
            proc.wait(60)
    assert killed == 2
    report = Indexer(store).index([root])
    assert not report.cancelled
    _consistent(store)
    files = store.files()
    assert len(files) == 18 and all(r.status == "indexed" for r in files.values())
    # Same chunks as a clean index would give: deterministic ids, nothing duplicated.
    assert store.chunk_count() == sum(r.chunk_count for r in files.values())
    assert Retriever(store).search("subject17", k=1, mode="keyword")[0].path.name == "doc17.md"


async def test_background_process_runner(paths: Paths, store: KnowledgeStore, folder: Path) -> None:
    # HTML is parsed in the loader's own worker process: the indexing process must be
    # allowed to start children (it is not a daemon).
    (folder / "page.html").write_text(
        "<html><body><nav>menu</nav><h1>Lighthouses</h1><p>Keepers trimmed the wicks "
        "of the lamps every night.</p></body></html>"
    )
    events: list[IndexProgress | IndexReport] = []
    async for ev in index_in_background(paths, [folder]):
        events.append(ev)
    report = events[-1]
    assert isinstance(report, IndexReport) and report.files_indexed == 4, report
    assert all(isinstance(e, IndexProgress) for e in events[:-1])
    # This process's store sees what the worker process wrote.
    hits = Retriever(store).search("pack a passport for Norway", k=1)
    assert hits and hits[0].path == folder / "travel.txt" and hits[0].dense_score is not None


async def test_background_runner_cancel_stops_the_process(paths: Paths, folder: Path) -> None:
    for i in range(20):
        (folder / f"more{i}.md").write_text(_doc(f"thing{i}", paragraphs=4))
    import multiprocessing

    gen = index_in_background(paths, [folder])
    first = await anext(gen)
    assert isinstance(first, IndexProgress)
    await gen.aclose()  # what cancelling the consuming task does
    assert not [p for p in multiprocessing.active_children() if p.name == "parley-indexer"]


async def test_background_runner_reports_a_dead_worker(paths: Paths, folder: Path) -> None:
    """A worker killed mid-run (OOM killer, crash) ends the run with a clear error, promptly."""
    import multiprocessing

    from parley.core.errors import StorageError

    for i in range(20):
        (folder / f"more{i}.md").write_text(_doc(f"thing{i}", paragraphs=4))
    gen = index_in_background(paths, [folder])
    assert isinstance(await anext(gen), IndexProgress)
    [worker] = [p for p in multiprocessing.active_children() if p.name == "parley-indexer"]
    os.kill(worker.pid, signal.SIGKILL)  # type: ignore[arg-type]
    t0 = time.monotonic()
    with pytest.raises(StorageError, match="stopped unexpectedly"):
        async for _ in gen:
            pass
    assert time.monotonic() - t0 < 10
