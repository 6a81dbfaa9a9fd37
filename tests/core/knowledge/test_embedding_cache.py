"""The content-addressed embedding cache (issue 12): real MiniLM, SQLite and Chroma."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from parley.core.knowledge.embeddings import (
    LocalEmbedder,
    OpenAIEmbedder,
    embedding_cache_key,
    normalise_for_cache,
)
from parley.core.knowledge.indexer import Indexer
from parley.core.knowledge.retrieval import Retriever
from parley.core.knowledge.store import KnowledgeStore
from parley.core.paths import Paths

from .conftest import FakeOpenAI

pytest.importorskip("parley.core.knowledge.chunking", reason="chunking.py not written yet")

TOPICS = [
    "glaciers",
    "volcanoes",
    "tides",
    "deserts",
    "monsoons",
    "coral reefs",
    "tundra",
    "estuaries",
]


def _section(topic: str, n: int) -> str:
    body = " ".join(
        f"Fact {i} about {topic}: it differs from place {i} in a measurable way." for i in range(n)
    )
    return f"## {topic.title()}\n\n{body}\n"


def _document(topics: list[str], n: int = 14) -> str:
    return "# Earth\n\n" + "\n".join(_section(t, n) for t in topics)


def _embedded(embedder: LocalEmbedder) -> int:
    return embedder.stats().texts


def _consistent(store: KnowledgeStore) -> None:
    chroma = set(store._collection.get(include=[])["ids"])
    sql = {r[0] for r in store._read().execute("SELECT id FROM chunks")}
    assert chroma == sql


def test_normalised_key_depends_on_text_and_model() -> None:
    assert normalise_for_cache("  A\tb\n\nc  ") == "A b c"
    key = embedding_cache_key("all-MiniLM-L6-v2", "A b")
    assert key == embedding_cache_key("all-MiniLM-L6-v2", "A\n   b ")
    assert key != embedding_cache_key("all-MiniLM-L6-v2", "A c")
    assert key != embedding_cache_key("openai:text-embedding-3-small", "A b")
    # NFC: a precomposed and a decomposed "é" are one text.
    assert embedding_cache_key("m", "caf\u00e9") == embedding_cache_key("m", "cafe\u0301")


def test_hit_and_miss(store: KnowledgeStore, embedder: LocalEmbedder) -> None:
    texts = ["Tides follow the moon.", "Tides   follow\nthe moon.", "Deserts get little rain."]
    before = _embedded(embedder)
    vecs, embedded, hits = store.embed_cached(texts)
    assert (embedded, hits) == (2, 0)  # the two spellings of one text are embedded once
    assert _embedded(embedder) - before == 2
    assert vecs[0] == vecs[1]
    fresh = embedder.embed(texts[2:])[0]
    assert max(abs(a - b) for a, b in zip(vecs[2], fresh, strict=True)) < 1e-6
    before = _embedded(embedder)
    again, embedded, hits = store.embed_cached(texts[::-1])
    assert (embedded, hits) == (0, 2) and _embedded(embedder) == before
    assert again == vecs[::-1]
    assert store.embedding_cache_size() == 2


def test_edit_re_embeds_only_changed_chunks(
    store: KnowledgeStore, embedder: LocalEmbedder, tmp_path: Path
) -> None:
    root = tmp_path / "docs"
    root.mkdir()
    doc = root / "earth.md"
    doc.write_text(_document(TOPICS))
    first = Indexer(store).index([root])
    n = first.chunks
    assert n >= 8 and first.embedded == n
    ids_before = {r[0] for r in store._read().execute("SELECT id FROM chunks")}

    # One paragraph edited.
    doc.write_text(_document(TOPICS).replace("Fact 3 about tides", "Fact 3 about rip currents"))
    before = _embedded(embedder)
    edit = Indexer(store).index([root])
    assert edit.files_indexed == 1
    assert 1 <= edit.embedded <= 2 < n, edit
    assert _embedded(embedder) - before == edit.embedded
    assert edit.timings["chunks_kept"] >= n - 2
    _consistent(store)
    hits = Retriever(store).search("rip currents", k=1, mode="keyword")
    assert hits and hits[0].path == doc

    # A section inserted at the top moves every later chunk: they keep their ids and vectors.
    edited = _document(["sandbars", *TOPICS]).replace(
        "Fact 3 about tides", "Fact 3 about rip currents"
    )
    doc.write_text(edited)
    before = _embedded(embedder)
    moved = Indexer(store).index([root])
    assert moved.embedded <= 3, moved
    assert moved.timings["chunks_moved"] >= n - 3
    assert _embedded(embedder) - before == moved.embedded
    _consistent(store)
    assert store.vector_count() == store.chunk_count() == moved.chunks
    assert len(ids_before & {r[0] for r in store._read().execute("SELECT id FROM chunks")}) >= n - 3
    top = Retriever(store).search("sandbars", k=1, mode="keyword")[0]
    assert top.path == doc and "sandbars" in top.text.lower()


def test_repeated_text_is_embedded_once(store: KnowledgeStore, tmp_path: Path) -> None:
    root = tmp_path / "copies"
    root.mkdir()
    for name in ("a.md", "b.md", "c.md"):  # the same boilerplate in three files
        (root / name).write_text(_document(TOPICS[:3]))
    report = Indexer(store).index([root])
    assert report.files_indexed == 3
    assert report.chunks == 3 * report.embedded  # each distinct text embedded once
    assert store.vector_count() == report.chunks  # and stored once per file


def test_model_switch_re_embeds_and_switching_back_uses_the_cache(
    paths: Paths,
    store: KnowledgeStore,
    embedder: LocalEmbedder,
    fake_openai: FakeOpenAI,
    tmp_path: Path,
) -> None:
    root = tmp_path / "docs"
    root.mkdir()
    (root / "earth.md").write_text(_document(TOPICS[:4]))
    n = Indexer(store).index([root]).chunks
    store.close()

    other = KnowledgeStore(paths, OpenAIEmbedder("k", base_url=fake_openai.url))
    try:
        assert other.needs_reindex
        report = Indexer(other).index([root])
        assert not report.cancelled and not other.needs_reindex
        # Every chunk went to the new model: nothing of the local model's cache was served.
        sent = [t for r in fake_openai.requests for t in r["input"]]
        assert len(sent) == n
        assert other.vector_count() == n
    finally:
        other.close()

    back = KnowledgeStore(paths, embedder)
    try:
        assert back.needs_reindex  # the collection is bound to the model that made it
        before = _embedded(embedder)
        Indexer(back).index([root])
        assert not back.needs_reindex and back.vector_count() == n
        assert _embedded(embedder) == before  # its own vectors were still cached
        hits = Retriever(back).search("glaciers facts", k=1)
        assert hits and hits[0].dense_score is not None
    finally:
        back.close()


def test_lost_vector_index_is_rebuilt_from_the_cache(
    paths: Paths, store: KnowledgeStore, embedder: LocalEmbedder, tmp_path: Path
) -> None:
    root = tmp_path / "docs"
    root.mkdir()
    (root / "earth.md").write_text(_document(TOPICS[:4]))
    n = Indexer(store).index([root]).chunks
    store.close()
    shutil.rmtree(paths.chroma_dir)
    s = KnowledgeStore(paths, embedder)
    try:
        before = _embedded(embedder)
        Indexer(s).index([root])
        assert s.vector_count() == n and _embedded(embedder) == before
    finally:
        s.close()


def test_cache_is_bounded_and_keeps_what_stored_chunks_need(
    paths: Paths, store: KnowledgeStore, embedder: LocalEmbedder, tmp_path: Path
) -> None:
    root = tmp_path / "docs"
    root.mkdir()
    (root / "earth.md").write_text(_document(TOPICS[:4]))
    n = Indexer(store).index([root]).chunks
    store.embed_cached([f"Unrelated note number {i}." for i in range(30)])
    assert store.embedding_cache_size() == n + 30
    with store.writer():
        assert store.prune_embedding_cache(slack=20) == 0  # under twice the slack: kept
        assert store.prune_embedding_cache(slack=5) == 25
    assert store.embedding_cache_size() == n + 5
    # What the stored chunks need survived: a rebuild embeds nothing.
    before = _embedded(embedder)
    with store.writer():
        assert store.rebuild_vectors()
    assert _embedded(embedder) == before and store.vector_count() == n
