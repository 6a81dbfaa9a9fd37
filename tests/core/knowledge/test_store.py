"""KnowledgeStore: manifest, chunks, FTS, vectors, lock, recovery, rebuild (real SQLite+Chroma)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from parley.core.errors import ConfigError, IndexBusy
from parley.core.knowledge.embeddings import LocalEmbedder, OpenAIEmbedder
from parley.core.knowledge.retrieval import Retriever
from parley.core.knowledge.store import DB_NAME, FileWrite, KnowledgeStore, chunk_id
from parley.core.knowledge.vectors import collection_name
from parley.core.paths import Paths

from .conftest import FakeOpenAI, index_lock_held_elsewhere, make_chunks

TEXTS = [
    "To install Parley, run pip install parley inside a virtual environment.",
    "API keys are stored in the operating system keyring, never in settings.",
    "Bananas are rich in potassium and make a quick breakfast.",
]


def _write(store: KnowledgeStore, root: Path, name: str, texts: list[str]) -> Path:
    path = root / name
    path.write_text("\n".join(texts))
    chunks = make_chunks(texts)
    vecs = store.embedder.embed([c.embed_text for c in chunks])
    with store.writer():
        store.write_files(
            [
                FileWrite(
                    path,
                    root,
                    path.stat().st_size,
                    path.stat().st_mtime_ns,
                    "sha-" + name,
                    "text",
                    chunks,
                    vecs,
                )
            ]
        )
    return path


def _store_with_a_file(paths: Paths, embedder: LocalEmbedder, tmp_path: Path) -> KnowledgeStore:
    """A fresh store (the caller closes it) with one folder holding a.txt."""
    root = tmp_path / "docs"
    root.mkdir()
    store = KnowledgeStore(paths, embedder)
    store.add_root(root)
    _write(store, root, "a.txt", TEXTS)
    return store


@pytest.fixture
def root(tmp_path: Path, store: KnowledgeStore) -> Path:
    r = tmp_path / "docs"
    r.mkdir()
    store.add_root(r)
    return r


def _chroma_ids(store: KnowledgeStore) -> set[str]:
    return set(store._collection.get(include=[])["ids"])


def _sql_ids(store: KnowledgeStore) -> set[str]:
    return {r[0] for r in store._read().execute("SELECT id FROM chunks")}


def test_collection_is_bound_to_the_model(store: KnowledgeStore) -> None:
    assert store.collection_name == "parley_all-minilm-l6-v2"
    assert store._collection.metadata["parley_model"] == "all-MiniLM-L6-v2"
    assert collection_name("all-MiniLM-L6-v2-int8") == "parley_all-minilm-l6-v2-int8"
    assert store._collection.configuration["hnsw"]["space"] == "cosine"
    assert collection_name("openai:text-embedding-3-small") == (
        "parley_openai-text-embedding-3-small"
    )


def test_write_read_and_converge(store: KnowledgeStore, root: Path) -> None:
    path = _write(store, root, "a.txt", TEXTS)
    assert store.chunk_count() == 3 and store.vector_count() == 3
    assert _chroma_ids(store) == _sql_ids(store)
    assert chunk_id(path, "Doc: " + TEXTS[0], TEXTS[0]) in _sql_ids(store)
    # Writing the same content again (a redo after a crash) converges: same ids, no growth.
    _write(store, root, "a.txt", TEXTS)
    assert store.chunk_count() == 3 and store.vector_count() == 3
    # Fewer chunks: the stale ones leave both stores.
    _write(store, root, "a.txt", TEXTS[:1])
    assert store.chunk_count() == 1 and _chroma_ids(store) == _sql_ids(store)
    rec = store.files()[path]
    assert (rec.status, rec.chunk_count, rec.sha256) == ("indexed", 1, "sha-a.txt")
    [status] = store.roots()
    assert (status.path, status.files, status.chunks) == (root, 1, 1)


def test_fts_follows_chunk_changes(store: KnowledgeStore, root: Path) -> None:
    _write(store, root, "a.txt", TEXTS)
    assert [i for i, _ in store.keyword_query('"potassium"', 5)]
    _write(store, root, "a.txt", TEXTS[:1])
    assert store.keyword_query('"potassium"', 5) == []
    # Porter stemming: "installing" finds "install".
    assert store.keyword_query('"installing"', 5)


def test_writes_need_the_writer_lock(store: KnowledgeStore, root: Path) -> None:
    with pytest.raises(RuntimeError):
        store.write_files([])


def test_second_writer_waits_or_raises_while_searches_work(
    store: KnowledgeStore, root: Path, paths: Paths
) -> None:
    _write(store, root, "a.txt", TEXTS)
    with index_lock_held_elsewhere(paths):
        with pytest.raises(IndexBusy):
            with store.writer(wait=False):
                pass
        with pytest.raises(IndexBusy):
            with store.writer(wait=True, timeout_s=0.2):
                pass
        hits = Retriever(store).search("where are api keys kept", k=1)
        assert hits and "keyring" in hits[0].text
    with store.writer(wait=False):
        pass


def test_recover_removes_vectors_of_an_interrupted_write(store: KnowledgeStore, root: Path) -> None:
    _write(store, root, "a.txt", TEXTS)
    # The state a kill between "Chroma upsert" and "SQLite commit" leaves: a journalled id
    # in Chroma that SQLite does not hold.
    vec = store.embedder.embed(["orphan"])[0]
    store._collection.upsert(ids=["orphan-id"], embeddings=[vec], metadatas=[{"path": "x"}])
    db = sqlite3.connect(store.db_path)
    db.execute("INSERT INTO vector_journal(chunk_id) VALUES ('orphan-id')")
    db.commit()
    db.close()
    with store.writer():
        assert store.recover() == 1
        assert store.recover() == 0
    assert _chroma_ids(store) == _sql_ids(store)


def test_remove_root_removes_everything(store: KnowledgeStore, root: Path) -> None:
    _write(store, root, "a.txt", TEXTS)
    _write(store, root, "b.txt", TEXTS[:2])
    assert store.remove_root(root) == 5
    assert store.chunk_count() == 0 and store.vector_count() == 0
    assert store.roots() == []
    assert store.keyword_query('"keyring"', 5) == []
    with pytest.raises(ConfigError):
        store.remove_root(root)


def test_nested_roots(store: KnowledgeStore, root: Path) -> None:
    sub = root / "sub"
    sub.mkdir()
    assert store.add_root(sub) == root  # already covered
    assert [r.path for r in store.roots()] == [root]
    other = root.parent / "other"
    (other / "inner").mkdir(parents=True)
    store.add_root(other / "inner")
    _write(store, other / "inner", "c.txt", TEXTS[:1])
    assert store.add_root(other) == other  # takes over the inner root and its files
    assert [r.path for r in store.roots()] == [root, other]
    [(_path, rec)] = [(p, r) for p, r in store.files().items() if p.name == "c.txt"]
    assert rec.root == other
    meta = store._collection.get(include=["metadatas"])["metadatas"]
    assert {m["root"] for m in meta} == {str(other)}
    with pytest.raises(ConfigError):
        store.add_root(root / "does-not-exist")


def test_model_switch_needs_reindex_then_rebuilds(
    paths: Paths, embedder: LocalEmbedder, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    local = _store_with_a_file(paths, embedder, tmp_path)
    with local.writer():
        assert local.verify_vectors()
    local.close()

    other = KnowledgeStore(paths, OpenAIEmbedder("k", base_url=fake_openai.url))
    try:
        assert other.collection_name == "parley_openai-text-embedding-3-small"
        assert other.needs_reindex
        # Said as it is (a damaged index says "it was damaged: ..." instead; issue 11).
        assert other.reindex_reason == (
            "the embedding model changed from all-MiniLM-L6-v2 to openai:text-embedding-3-small"
        )
        assert [r.status for r in other.roots()] == ["needs-reindex"]
        # Keyword search still answers meanwhile (dense is skipped).
        assert Retriever(other).search("potassium", k=1)[0].dense_score is None
        seen: list[tuple[int, int]] = []
        with other.writer():
            assert other.rebuild_vectors(progress=lambda d, t: seen.append((d, t)))
        assert seen[-1] == (3, 3)
        assert not other.needs_reindex and other.reindex_reason is None
        assert other.vector_count() == 3
        embedded = {tuple(r["input"]) for r in fake_openai.requests}
        assert any("Doc: " + TEXTS[0] in inputs for inputs in embedded)  # embed_text is used
    finally:
        other.close()
    # Back to the local model: its collection is stale only if chunks changed; they did not,
    # but the manifest records the last model that was rebuilt, so it asks again.
    back = KnowledgeStore(paths, embedder)
    try:
        assert back.needs_reindex
    finally:
        back.close()


def test_damaged_vector_index_is_detected_and_rebuilt(
    paths: Paths, embedder: LocalEmbedder, tmp_path: Path
) -> None:
    import shutil

    s = _store_with_a_file(paths, embedder, tmp_path)
    with s.writer():
        assert s.verify_vectors()
    s.close()
    shutil.rmtree(paths.chroma_dir)  # lost (or moved aside after damage)
    s = KnowledgeStore(paths, embedder)
    try:
        with s.writer():
            assert not s.verify_vectors()
            assert s.needs_reindex
            assert s.rebuild_vectors()
            assert s.verify_vectors()
        assert s.vector_count() == 3
        assert Retriever(s).search("keyring for api keys", k=1)[0].dense_score is not None
    finally:
        s.close()


def test_reader_process_sees_another_processes_writes(
    store: KnowledgeStore, root: Path, paths: Paths
) -> None:
    _write(store, root, "a.txt", TEXTS[:1])
    r = Retriever(store)
    assert len(r.search("bananas potassium", k=5, mode="dense")) == 1
    script = textwrap.dedent(f"""
        import os, sys
        from pathlib import Path
        sys.path.insert(0, {str(Path(__file__).parents[3])!r})
        from tests.core.knowledge.conftest import make_chunks
        from parley.core.paths import default_paths
        from parley.core.knowledge.store import KnowledgeStore, FileWrite
        from tests.assets import default_embedder
        p = default_paths()
        s = KnowledgeStore(p, default_embedder(p))
        root = Path({str(root)!r})
        chunks = make_chunks({TEXTS[1:]!r})
        with s.writer():
            s.write_files([FileWrite(root / "b.txt", root, 1, 1, "h", "text", chunks,
                                     s.embedder.embed([c.embed_text for c in chunks]))])
        s.close()
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    hits = r.search("bananas potassium", k=5, mode="dense")
    assert len(hits) == 3
    assert hits[0].path == root / "b.txt"


def test_database_file_location(store: KnowledgeStore, paths: Paths) -> None:
    assert store.db_path == paths.data_dir / DB_NAME and store.db_path.exists()
    db = sqlite3.connect(store.db_path)
    names = {r[0] for r in db.execute("SELECT name FROM _parley_migrations")}
    db.close()
    assert "knowledge-0001-manifest" in names


def test_unreadable_vector_index_is_set_aside_and_rebuilt(
    paths: Paths, embedder: LocalEmbedder, tmp_path: Path
) -> None:
    s = _store_with_a_file(paths, embedder, tmp_path)
    s.close()
    (paths.chroma_dir / "chroma.sqlite3").write_bytes(b"this is not a database" * 100)
    s = KnowledgeStore(paths, embedder)
    try:
        assert s.needs_reindex
        assert [p.name.startswith("chroma.damaged-") for p in paths.data_dir.iterdir()].count(
            True
        ) == 1
        assert s.chunk_count() == 3  # SQLite, the source of truth, is untouched
        with s.writer():
            assert s.rebuild_vectors()
        assert s.vector_count() == 3 and not s.needs_reindex
    finally:
        s.close()


def test_vector_search_is_wide_enough_to_repeat_itself(store: KnowledgeStore) -> None:
    """New collections search with ef_search 400; an existing one is raised to it on open."""
    import chromadb
    from chromadb.config import Settings

    from parley.core.knowledge.vectors import EF_SEARCH, _widen_search

    assert store._fresh_collection().configuration["hnsw"]["ef_search"] == EF_SEARCH
    client = chromadb.EphemeralClient(settings=Settings(anonymized_telemetry=False))
    old = client.create_collection("old", configuration={"hnsw": {"space": "cosine"}})
    assert old.configuration["hnsw"]["ef_search"] < EF_SEARCH  # Chroma's default, 100
    _widen_search(old)
    again = client.get_collection("old")
    assert again.configuration["hnsw"]["ef_search"] == EF_SEARCH
    assert again.configuration["hnsw"]["space"] == "cosine"
