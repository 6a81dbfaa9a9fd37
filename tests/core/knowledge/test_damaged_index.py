"""A damaged vector index never crashes Parley nor breaks knowledge search for good (issue 11).

Each Chroma file kind is overwritten (same size, garbage) and truncated (0 bytes). The CLI runs
in a subprocess, so a native crash (SIGSEGV, exit 139) fails the test instead of killing the
suite. Expected every time: exit 0, one warning line, keyword results meanwhile, the damaged
folder set aside, and a rebuilt index that answers by meaning again.

The corpus is small (40 notes). Chroma writes its HNSW files only every ``sync_threshold``
vectors (1,000 by default); the template's collection is created with a threshold of 10 so
that every file exists with real content, as in a larger index.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from parley.core.knowledge.embeddings import LocalEmbedder
from parley.core.knowledge.indexer import Indexer
from parley.core.knowledge.retrieval import Retriever
from parley.core.knowledge.store import KnowledgeStore
from parley.core.knowledge.vectors import collection_name
from parley.core.paths import Paths, default_paths
from tests.assets import default_embedder, need_minilm

REPO = Path(__file__).resolve().parents[3]

FILES = (
    "data_level0.bin",
    "link_lists.bin",
    "header.bin",
    "length.bin",
    "index_metadata.pickle",
    "chroma.sqlite3",
)
NOTES = 40
QUERY = "who trimmed the lamp wicks at the lighthouse"


@dataclass(frozen=True)
class Template:
    home: Path
    docs: Path


def _paths(home: Path) -> Paths:
    return default_paths({"PARLEY_HOME": str(home), "PARLEY_ASSETS": os.environ["PARLEY_ASSETS"]})


@pytest.fixture(scope="module")
def embedder() -> LocalEmbedder:
    emb = default_embedder(need_minilm(_paths(Path("/nonexistent"))))
    assert isinstance(emb, LocalEmbedder)
    return emb


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, embedder: LocalEmbedder) -> Template:
    """An indexed folder whose HNSW files are all on disk (built once, copied per test)."""
    import chromadb
    from chromadb.config import Settings

    base = tmp_path_factory.mktemp("damaged-template")
    docs = base / "docs"
    docs.mkdir()
    for i in range(NOTES):
        (docs / f"note{i:02d}.md").write_text(
            f"# Note {i}\n\nLog entry {i}: the weather on day {i} was mild and dry.\n"
        )
    (docs / "keeper.md").write_text(
        "# The keeper\n\nEvery night the lighthouse keeper trimmed the lamp wicks.\n"
    )
    paths = _paths(base / "home")
    paths.ensure()
    client: Any = chromadb.PersistentClient(
        path=str(paths.chroma_dir), settings=Settings(anonymized_telemetry=False)
    )
    client.get_or_create_collection(
        collection_name(embedder.model_id),
        metadata={"parley_model": embedder.model_id, "parley_schema": 1},
        configuration={"hnsw": {"space": "cosine", "sync_threshold": 10, "batch_size": 10}},
        embedding_function=None,
    )
    with KnowledgeStore(paths, embedder) as store:
        report = Indexer(store).index([docs])
        assert report.files_indexed == NOTES + 1
    segment = next(p for p in paths.chroma_dir.iterdir() if p.is_dir())
    assert {f: (segment / f).stat().st_size > 0 for f in FILES[:-1]} == dict.fromkeys(
        FILES[:-1], True
    ), "every HNSW file must exist with content"
    return Template(base / "home", docs)


def _home_copy(template: Template, tmp_path: Path) -> Path:
    home = tmp_path / "home"
    shutil.copytree(template.home, home)
    return home


def _damage(home: Path, name: str, how: str) -> Path:
    target = next((home / "data" / "chroma").rglob(name))
    if how == "truncate":
        target.write_bytes(b"")
    else:
        size = max(64, target.stat().st_size)
        target.write_bytes(random.Random(name).randbytes(size))
    return target


def parley(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_BASE_URL"))}
    full.update(PARLEY_HOME=str(home), PYTHONPATH=str(REPO / "desktop"), **env)
    r = subprocess.run(
        [sys.executable, "-m", "parley", *args],
        capture_output=True,
        env=full,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    return subprocess.CompletedProcess(r.args, r.returncode, r.stdout.decode(), r.stderr.decode())


def _no_crash(p: subprocess.CompletedProcess[str]) -> None:
    assert p.returncode == 0, f"exit {p.returncode} (139 = segfault): {p.stderr[-2000:]}"
    assert "Traceback" not in p.stderr and "internal error" not in p.stderr, p.stderr


def _warning(p: subprocess.CompletedProcess[str]) -> str:
    lines = [ln for ln in p.stderr.splitlines() if "vector index was damaged" in ln]
    assert len(lines) == 1, p.stderr
    return lines[0]


def _set_aside(home: Path) -> list[Path]:
    return sorted((home / "data").glob("chroma.damaged-*"))


@pytest.mark.parametrize("how", ["overwrite", "truncate"])
@pytest.mark.parametrize("name", FILES)
def test_damaged_file_is_set_aside_and_rebuilt(
    template: Template, embedder: LocalEmbedder, tmp_path: Path, name: str, how: str
) -> None:
    home = _home_copy(template, tmp_path)
    damaged = _damage(home, name, how)
    relative = damaged.relative_to(home / "data" / "chroma")

    p = parley(home, "search", QUERY, "--json")
    _no_crash(p)
    warning = _warning(p)
    assert "searches use keywords" in warning
    results = json.loads(p.stdout)["results"]
    assert results and results[0]["path"].endswith("keeper.md")  # keywords still answer
    aside = _set_aside(home)
    assert len(aside) == 1 and (aside[0] / relative).exists()  # kept for a post-mortem

    # Nothing damaged is left for this process to load: rebuild and search by meaning here.
    with KnowledgeStore(_paths(home), embedder) as store:
        assert store.needs_reindex
        assert store.reindex_reason is not None
        assert store.reindex_reason.startswith("it was damaged")
        seen: list[Any] = []
        report = Indexer(store).index([template.docs], progress=seen.append)
        assert not report.cancelled and report.files_indexed == 0  # nothing re-parsed
        reasons = {e.reason for e in seen if e.phase == "rebuilding"}
        assert len(reasons) == 1 and reasons.pop().startswith("it was damaged: ")
        assert not store.needs_reindex and store.vector_count() == NOTES + 1
        hits = Retriever(store).search(QUERY, k=1, mode="dense")
        assert hits[0].path.name == "keeper.md" and hits[0].dense_score is not None


@pytest.mark.parametrize("name", ["data_level0.bin", "header.bin"])
def test_index_repairs_what_used_to_crash_it(
    template: Template, embedder: LocalEmbedder, tmp_path: Path, name: str
) -> None:
    # `parley index` first (not search): it used to die with SIGSEGV on data_level0.bin, and
    # fail with "Error loading hnsw index" forever on a bad header.bin.
    home = _home_copy(template, tmp_path)
    _damage(home, name, "overwrite")
    p = parley(home, "index", str(template.docs))
    _no_crash(p)
    _warning(p)
    assert "rebuilding the vector index because it was damaged" in p.stderr
    assert "new model" not in p.stderr  # the model did not change
    assert f"Nothing changed: {NOTES + 1} files up to date" in p.stderr
    with KnowledgeStore(_paths(home), embedder) as store:
        assert not store.needs_reindex and store.vector_count() == NOTES + 1


def test_ask_with_knowledge_answers_from_keywords(
    template: Template, tmp_path: Path, fake_llm: Any
) -> None:
    from tests.fakes.script import Text

    home = _home_copy(template, tmp_path)
    _damage(home, "data_level0.bin", "overwrite")
    fake_llm.enqueue(Text("The keeper did [1]."))
    p = parley(
        home,
        "ask",
        "--knowledge",
        "--json",
        QUERY,
        OPENAI_API_KEY="sk-test",
        OPENAI_BASE_URL=fake_llm.openai_base_url,
    )
    _no_crash(p)
    _warning(p)
    out = json.loads(p.stdout)
    assert out["status"] == "complete"
    assert out["sources"] and out["sources"][0]["path"].endswith("keeper.md")


def test_a_clean_run_records_the_good_state(template: Template, tmp_path: Path) -> None:
    # The check runs in a child process only when the files differ from the last good state;
    # a run that closes cleanly records that state (even though loading a small collection
    # rewrites its HNSW files), so the next run opens without checking.
    import sqlite3

    from parley.core.knowledge import vector_check

    home = _home_copy(template, tmp_path)
    paths = _paths(home)
    p = parley(home, "search", QUERY, "--mode", "dense", "--json")
    _no_crash(p)
    assert json.loads(p.stdout)["results"][0]["path"].endswith("keeper.md")
    db = sqlite3.connect(paths.data_dir / "knowledge.sqlite3")
    try:
        row = db.execute("SELECT value FROM meta WHERE key = 'vector_files'").fetchone()
    finally:
        db.close()
    assert row is not None and row[0] == vector_check.fingerprint(paths.chroma_dir)


def test_file_checks_pass_a_healthy_index(template: Template) -> None:
    from parley.core.knowledge.vector_check import check_segment

    folder = template.home / "data" / "chroma"
    assert [check_segment(p) for p in folder.iterdir() if p.is_dir()] == [None]


@pytest.mark.parametrize("lost", ["folder", "database"])
def test_a_deleted_index_is_said_not_silent(
    template: Template, embedder: LocalEmbedder, tmp_path: Path, lost: str
) -> None:
    # Deleted, not damaged: Chroma would quietly start an empty index and dense search would
    # find nothing, without a word.
    home = _home_copy(template, tmp_path)
    chroma = home / "data" / "chroma"
    if lost == "folder":
        shutil.rmtree(chroma)
    else:
        (chroma / "chroma.sqlite3").unlink()
    p = parley(home, "search", QUERY, "--json")
    _no_crash(p)
    assert p.stderr.count("WARNING") == 1, p.stderr
    assert json.loads(p.stdout)["results"][0]["path"].endswith("keeper.md")  # keywords
    with KnowledgeStore(_paths(home), embedder) as store:
        assert store.needs_reindex and store.reindex_reason is not None
        Indexer(store).index([template.docs])
        assert store.vector_count() == NOTES + 1


def test_damage_only_chroma_notices_is_caught_by_opening_it_in_the_child(
    template: Template, embedder: LocalEmbedder, tmp_path: Path
) -> None:
    # A well-formed pickle that is not Chroma's id map passes the file checks; opening the
    # folder in the child process is what finds it (Chroma's own error, not a crash).
    import pickle

    home = _home_copy(template, tmp_path)
    target = next((home / "data" / "chroma").rglob("index_metadata.pickle"))
    target.write_bytes(pickle.dumps({"not": "an id map"}, protocol=3))
    p = parley(home, "search", QUERY, "--json")
    _no_crash(p)
    assert "Error" in _warning(p)  # Chroma's words, from the child
    assert len(_set_aside(home)) == 1


def test_a_child_that_dies_is_a_damaged_index_and_a_hung_one_is_not(
    template: Template, tmp_path: Path
) -> None:
    import multiprocessing
    import signal
    import threading
    import time

    from parley.core.knowledge.vector_check import probe

    home = _home_copy(template, tmp_path)
    chroma = home / "data" / "chroma"
    # Killed with SIGSEGV from outside (what a native crash looks like to the parent).
    result: list[Any] = []
    worker = threading.Thread(target=lambda: result.append(probe(chroma)))
    worker.start()
    deadline = time.monotonic() + 60
    child = None
    while child is None and time.monotonic() < deadline:
        child = next(
            (c for c in multiprocessing.active_children() if c.name == "parley-vector-probe"),
            None,
        )
        time.sleep(0.01)
    assert child is not None and child.pid is not None
    os.kill(child.pid, signal.SIGSEGV)
    worker.join(60)
    assert result and result[0].problem == "opening it crashed the process (SIGSEGV)"

    # A child that never answers (a read that blocks, as on a hung network drive: here a
    # FIFO in place of header.bin) is inconclusive: slowness is not damage.
    header = next(chroma.rglob("header.bin"))
    header.unlink()
    os.mkfifo(header)
    started = time.monotonic()
    hung = probe(chroma, timeout_s=3)
    assert hung.inconclusive and hung.problem is None
    assert time.monotonic() - started < 30


def test_damage_while_open_falls_back_to_keywords_then_is_set_aside(
    template: Template, embedder: LocalEmbedder, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Damage after the check (while a window has the index open): Chroma's error is caught
    # where the call is made, the search answers from keywords, the next open sets it aside.
    # (chroma.sqlite3: SQLite reports damage as errors, so this runs in-process safely.)
    home = _home_copy(template, tmp_path)
    paths = _paths(home)
    store = KnowledgeStore(paths, embedder)
    try:
        assert Retriever(store).search(QUERY, k=1, mode="dense")[0].dense_score is not None
        _damage(home, "chroma.sqlite3", "overwrite")
        with caplog.at_level("WARNING", logger="parley.core.knowledge.store"):
            hits = Retriever(store).search(QUERY, k=1)
            again = Retriever(store).search(QUERY, k=1)
        assert hits[0].path.name == "keeper.md" and hits[0].dense_score is None
        assert again[0].path.name == "keeper.md"
        failed = [r for r in caplog.records if "vector index failed" in r.getMessage()]
        assert len(failed) == 1  # said once, not per query
        assert store.needs_reindex
        assert store.reindex_reason is not None
        assert store.reindex_reason.startswith("it failed: searching vectors failed")
    finally:
        store.close()
    with KnowledgeStore(paths, embedder) as reopened:
        assert len(_set_aside(home)) == 1
        Indexer(reopened).index([template.docs])
        assert not reopened.needs_reindex and reopened.vector_count() == NOTES + 1


def test_damage_while_open_is_repaired_by_the_next_run_in_the_same_process(
    template: Template, embedder: LocalEmbedder, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    home = _home_copy(template, tmp_path)
    with KnowledgeStore(_paths(home), embedder) as store:
        _damage(home, "chroma.sqlite3", "overwrite")
        with caplog.at_level("WARNING", logger="parley.core.knowledge.store"):
            report = Indexer(store).index([template.docs])
        assert not report.cancelled
        said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert len(said) == 1 and "vector index was damaged" in said[0], said
        assert not store.needs_reindex and store.vector_count() == NOTES + 1
    assert len(_set_aside(home)) == 1
