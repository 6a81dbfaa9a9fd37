"""Hybrid retrieval over a real store: RRF, safe FTS5 queries, filters, de-duplication."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from parley.core.errors import ConfigError
from parley.core.knowledge.chunking import Chunk
from parley.core.knowledge.retrieval import RankingConfig, Retriever, fts_query
from parley.core.knowledge.store import FileWrite, KnowledgeStore

from .conftest import make_chunks


def _put(
    store: KnowledgeStore, root: Path, rel: str, chunks: list[Chunk], kind: str = "text"
) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("x")
    vecs = store.embedder.embed([c.embed_text for c in chunks])
    with store.writer():
        store.write_files([FileWrite(path, root, 1, 1, "h" + rel, kind, chunks, vecs)])
    return path


@pytest.fixture
def corpus(store: KnowledgeStore, tmp_path: Path) -> Path:
    root = tmp_path / "kb"
    root.mkdir()
    store.add_root(root)
    _put(
        store,
        root,
        "guide/install.md",
        make_chunks(
            [
                "Setting up the application: create a virtual environment and pip install it.",
                "Updating to a newer release works the same way with the upgrade flag.",
            ],
            ("Guide", "Install"),
        ),
        kind="markdown",
    )
    _put(
        store,
        root,
        "guide/keys.md",
        make_chunks(
            [
                "Secrets such as API keys live in the operating system keyring.",
            ],
            ("Guide", "Keys"),
        ),
        kind="markdown",
    )
    _put(
        store,
        root,
        "notes/errors.txt",
        make_chunks(
            [
                "Error code XK-4471 means the quota of the account is used up.",
                "Fruit facts: bananas contain potassium, apples contain fibre.",
            ]
        ),
    )
    return root


def test_hybrid_finds_by_meaning_and_by_rare_keyword(store: KnowledgeStore, corpus: Path) -> None:
    r = Retriever(store)
    hit = r.search("how do I get the app onto my computer?", k=1)[0]
    assert hit.path == corpus / "guide/install.md"
    assert hit.heading == "Guide > Install"
    assert (hit.line_start, hit.line_end) == (1, 10)
    assert hit.dense_score is not None and hit.root == corpus
    code = r.search("what is XK-4471", k=3)
    assert code[0].path == corpus / "notes/errors.txt" and code[0].keyword_score is not None


def test_rrf_puts_agreement_first(store: KnowledgeStore, corpus: Path) -> None:
    cfg = RankingConfig(fusion="rrf", file_evidence=1)
    hits = Retriever(store, config=cfg).search("keyring api keys", k=3)
    top = hits[0]
    assert top.path.name == "keys.md"
    assert top.dense_score is not None and top.keyword_score is not None
    # First in both lists: the sum of both weights over (rrf_k + 1).
    assert top.score == pytest.approx((cfg.dense_weight + cfg.keyword_weight) / (cfg.rrf_k + 1))
    assert all(h.score <= top.score for h in hits)


def test_modes(store: KnowledgeStore, corpus: Path) -> None:
    r = Retriever(store)
    dense = r.search("fruit with potassium", k=2, mode="dense")
    assert all(h.keyword_score is None and h.dense_score is not None for h in dense)
    kw = r.search("fruit with potassium", k=2, mode="keyword")
    assert all(h.dense_score is None and h.keyword_score is not None for h in kw)
    assert kw[0].text.startswith("Fruit facts")
    with pytest.raises(ConfigError):
        r.search("x", mode="fuzzy")
    with pytest.raises(ConfigError):
        r.search("x", k=0)
    assert r.search("   ") == []


@pytest.mark.parametrize(
    "query",
    [
        '"',
        '""',
        "*",
        "bananas*",
        "NEAR(bananas apples)",
        "text:bananas",
        "heading:Guide",
        "AND OR NOT",
        "-bananas",
        "^bananas",
        "(bananas",
        "bananas)",
        "'; DROP TABLE chunks; --",
        'col:x AND "unterminated',
        "{bananas}",
        "bananas + apples",
        "\x00\x01",
        "ünïcödé",
        "a" * 5000,
        " ".join(["bananas"] * 500),
    ],
)
def test_hostile_queries_never_break_fts(store: KnowledgeStore, corpus: Path, query: str) -> None:
    hits = Retriever(store).search(query, k=3, mode="keyword")
    if "bananas" in query:
        assert hits and "bananas" in hits[0].text
    # The raw sanitised expression is accepted by FTS5 itself.
    match = fts_query(query)
    if match is not None:
        db = sqlite3.connect(":memory:")
        db.execute("CREATE VIRTUAL TABLE t USING fts5(a)")
        db.execute("SELECT * FROM t WHERE t MATCH ?", (match,)).fetchall()
        db.close()


def test_fts_query_shape() -> None:
    assert fts_query('say "NEAR" col:x*') == '"say" OR "near" OR "col" OR "x"'
    assert fts_query("what is the") == '"what" OR "is" OR "the"'  # only stopwords: kept
    assert fts_query("how do I install it") == '"install"'
    assert fts_query("?!*") is None
    assert fts_query("snake_case_name") == '"snake case name"'


def test_filters_by_folder_and_kind(store: KnowledgeStore, corpus: Path) -> None:
    r = Retriever(store)
    hits = r.search("keys", k=5, folders=[corpus / "notes"])
    assert hits and all(h.path.parent == corpus / "notes" for h in hits)
    hits = r.search("install", k=5, kinds=["markdown"])
    assert hits and all(h.kind == "markdown" for h in hits)
    assert r.search("install", k=5, kinds=["pdf"]) == []
    assert r.search("install", k=5, folders=[corpus.parent / "elsewhere"]) == []


def test_identical_texts_are_returned_once(store: KnowledgeStore, corpus: Path) -> None:
    same = make_chunks(
        ["Secrets such as API keys live in the operating system keyring."], ("Guide", "Keys")
    )
    _put(store, corpus, "copy/keys.md", same, kind="markdown")
    hits = Retriever(store).search("where are api keys stored", k=3)
    texts = [h.text for h in hits]
    assert len(texts) == len(set(texts))


def test_adjacent_overlapping_chunks_are_merged(store: KnowledgeStore, corpus: Path) -> None:
    a = "The telescope mirror is ground from borosilicate glass. It is polished for weeks."
    b = "It is polished for weeks. Then an aluminium coating is vapour deposited on it."
    chunks = [
        Chunk(0, a, a, ("Mirror",), None, 1, 5, 10),
        Chunk(1, b, b, ("Mirror",), None, 4, 9, 10),
    ]
    path = _put(store, corpus, "astro/mirror.txt", chunks)
    hits = Retriever(store).search("telescope mirror glass polished aluminium coating", k=3)
    mine = [h for h in hits if h.path == path]
    assert len(mine) == 1
    assert mine[0].text == a + " Then an aluminium coating is vapour deposited on it."
    assert (mine[0].line_start, mine[0].line_end) == (1, 9)


def test_adjacent_chunks_without_overlap_stay_separate(store: KnowledgeStore, corpus: Path) -> None:
    hits = Retriever(store).search("install release upgrade virtual environment", k=3)
    install = [h for h in hits if h.path.name == "install.md"]
    assert len(install) == 2


# ---------------------------------------------------------------- ranking behaviour (issue 12)

_TOPICS = (
    "backup restore archive snapshot replica failover standby recovery checkpoint journal "
    "index btree hash scan planner statistics vacuum analyze lock deadlock transaction "
    "isolation commit rollback savepoint trigger function procedure cursor sequence "
    "schema role grant privilege password certificate tunnel socket port listener"
).split()


def _random_corpus(store: KnowledgeStore, root: Path, files: int, per_file: int) -> None:
    import random

    rng = random.Random(12)
    for f in range(files):
        texts = []
        for c in range(per_file):
            words = [rng.choice(_TOPICS) for _ in range(rng.randint(8, 30))]
            texts.append(f"Note {f}.{c}: " + " ".join(words) + ".")
        _put(store, root, f"notes/n{f:02d}.txt", make_chunks(texts, (f"Notes {f}",)))


@pytest.mark.parametrize("mode", ["hybrid", "dense", "keyword"])
def test_top_results_do_not_depend_on_k(store: KnowledgeStore, tmp_path: Path, mode: str) -> None:
    # The candidate pool used to grow with k (max(20, 4k)), so k=5 fused fewer candidates
    # than k=20 and the first five could differ.
    root = tmp_path / "kb"
    root.mkdir()
    store.add_root(root)
    _random_corpus(store, root, files=40, per_file=4)
    r = Retriever(store)
    for query in (
        "restore a backup onto a standby replica",
        "deadlock between two transactions",
        "grant a role privilege on a schema",
        "planner statistics after vacuum analyze",
        "certificate for the socket listener port",
        "savepoint rollback inside a procedure",
    ):
        five = [(h.path, h.chunk_index, h.text) for h in r.search(query, 5, mode=mode)]
        twenty = [(h.path, h.chunk_index, h.text) for h in r.search(query, 20, mode=mode)]
        assert len(five) == 5
        assert five == twenty[:5], query


def test_at_most_two_passages_per_file(store: KnowledgeStore, tmp_path: Path) -> None:
    root = tmp_path / "kb"
    root.mkdir()
    store.add_root(root)
    zebra = [
        "Zebra migration crosses the Mara river every year in July.",
        "The great zebra migration follows the rains across the Serengeti.",
        "Zebra herds migrate with wildebeest, following fresh grass.",
        "During the migration, zebras cross rivers full of crocodiles.",
    ]
    # Not adjacent (indices 0, 2, 4, 6): each is its own passage.
    chunks = [
        Chunk(2 * i, t, t, ("Zebras",), None, 20 * i + 1, 20 * i + 5, 12)
        for i, t in enumerate(zebra)
    ]
    many = _put(store, root, "zebras.txt", chunks)
    other = _put(
        store,
        root,
        "savanna.txt",
        make_chunks(["Animals of the savanna move between grazing grounds with the seasons."]),
    )
    hits = Retriever(store).search("zebra migration", k=4)
    assert [h.path for h in hits].count(many) == 2
    assert other in [h.path for h in hits]
    # Confined to that one file, every passage of it may come back.
    mine = Retriever(store).search("zebra migration", k=4, folders=[many])
    assert [h.path for h in mine] == [many] * 4
    # The cap is a setting.
    uncapped = Retriever(store, config=RankingConfig(per_file=0)).search("zebra migration", k=4)
    assert [h.path for h in uncapped].count(many) >= 3


def test_title_names_the_thing_beats_a_page_that_mentions_it(
    store: KnowledgeStore, tmp_path: Path
) -> None:
    root = tmp_path / "kb"
    root.mkdir()
    store.add_root(root)
    news = "Version 4.2: frobnicate is faster; frobnicate accepts --dry-run; frobnicate logs."
    ref = "Runs the checks over every file, then rewrites the ones that fail them."
    _put(store, root, "news.txt", [Chunk(0, news, news, ("Changes",), None, 1, 3, 20)])
    _put(
        store,
        root,
        "tool.txt",
        [Chunk(0, ref, ref, ("Usage",), None, 1, 3, 20, title="The frobnicate command")],
    )
    # The title is searched: the page is found by a word that only its title has.
    found = Retriever(store).search("frobnicate", k=2, mode="keyword")
    assert {h.path.name for h in found} == {"news.txt", "tool.txt"}
    # So is the file name.
    assert Retriever(store).search("tool", k=1, mode="keyword")[0].path.name == "tool.txt"
    # Weighted up, the title beats a page that repeats the word.
    titled = RankingConfig(bm25_weights=(1.0, 0.4, 4.0))
    hits = Retriever(store, config=titled).search("frobnicate", k=2, mode="keyword")
    assert hits[0].path.name == "tool.txt"
    flat = RankingConfig(bm25_weights=(1.0, 0.0, 0.0))
    assert Retriever(store, config=flat).search("frobnicate", 2, mode="keyword")[0].path.name == (
        "news.txt"
    )


def test_link_lists_are_demoted(store: KnowledgeStore, tmp_path: Path) -> None:
    root = tmp_path / "kb"
    root.mkdir()
    store.add_root(root)
    toc = "Vacuum tuning | Vacuum cost delay | Vacuum freeze age | Autovacuum workers | Vacuum"
    prose = "Run vacuum regularly: it reclaims the space dead rows leave behind after updates."
    _put(store, root, "toc.txt", [Chunk(0, toc, toc, ("Contents",), None, 1, 2, 20, "", 1.0)])
    _put(store, root, "vacuum.txt", [Chunk(0, prose, prose, ("Vacuum",), None, 1, 2, 20)])
    plain = RankingConfig(link_penalty=0.0)
    assert Retriever(store, config=plain).search("vacuum", 2, mode="keyword")[0].path.name == (
        "toc.txt"
    )
    demoting = RankingConfig(link_penalty=0.6)
    assert Retriever(store, config=demoting).search("vacuum", 2, mode="keyword")[0].path.name == (
        "vacuum.txt"
    )


def test_changelogs_are_demoted_unless_the_question_asks_about_changes(
    store: KnowledgeStore, tmp_path: Path
) -> None:
    from parley.core.knowledge.retrieval import asks_about_changes, is_changelog

    assert is_changelog("What\u2019s New In Python 3.2 \u2014 Python 3.11.2 documentation")
    assert is_changelog("E.18. Release 15.1") and is_changelog("Release Notes")
    assert is_changelog("Changelog") and is_changelog("1.2 What's new")
    assert not is_changelog("git-whatchanged(1)") and not is_changelog("CREATE TABLE")
    assert not is_changelog("Releasing a package") and not is_changelog("")
    assert asks_about_changes("What's new in asyncio?") and asks_about_changes("changes in 3.11")
    assert not asks_about_changes("Copy a folder but leave out the cache files")

    root = tmp_path / "kb"
    root.mkdir()
    store.add_root(root)
    news = "copytree can now leave out files: copy a folder, leave out files, copy folder trees."
    ref = "copytree copies a folder; its ignore argument leaves out the files you name."
    _put(
        store,
        root,
        "whatsnew32.txt",
        [Chunk(0, news, news, ("Improved modules",), None, 1, 3, 20, "What's New In 3.2")],
    )
    _put(store, root, "shutil.txt", [Chunk(0, ref, ref, ("copytree",), None, 1, 3, 20, "shutil")])
    question = "copy a folder but leave out some files"
    plain = RankingConfig(changelog_penalty=0.0)
    assert Retriever(store, config=plain).search(question, 2, mode="keyword")[0].path.name == (
        "whatsnew32.txt"
    )
    # The default demotes the changelog below the reference page that explains the thing...
    assert Retriever(store).search(question, 2, mode="keyword")[0].path.name == "shutil.txt"
    # ...unless the question asks what changed.
    changed = "what's new in 3.2 to copy a folder but leave out some files"
    assert Retriever(store).search(changed, 2, mode="keyword")[0].path.name == "whatsnew32.txt"


_CATS = (
    # Closest in meaning to the question below, yet sharing none of its words...
    "Kittens like to sharpen their claws on rugs and curtains.",
    "Cover the couch with a throw so pets cannot reach the fabric.",
    "Keep a kitten from clawing furniture: trim its claws and give it a post.",
    "Double-sided tape on armrests puts kittens off clawing them.",
    "Feline behaviour: why pets claw at things and how to redirect it.",
    "A dog that chews the couch may be bored or anxious.",
    "Leather armchairs show every mark a pet leaves on them.",
    "Pet hair on upholstery comes off with a damp rubber glove.",
    # ...while this one shares a word ("sofa") and little else: 9th in meaning.
    "Invoice 2291: one sofa, three cushions, delivery on Tuesday.",
    "Puppies nibble cushions while their teeth come through.",
    "The train to the coast leaves every hour from platform two.",
    "Tomatoes need full sun and regular watering in summer.",
)
_CAT_QUESTION = "stop my cat scratching the sofa"


def _cats(store: KnowledgeStore, tmp_path: Path) -> Path:
    root = tmp_path / "kb"
    root.mkdir()
    store.add_root(root)
    for i, text in enumerate(_CATS):
        _put(
            store, root, "invoice.txt" if "Invoice" in text else f"pets{i}.txt", make_chunks([text])
        )
    return root


def test_complete_fusion_keeps_the_gap_rank_fusion_throws_away(
    store: KnowledgeStore, tmp_path: Path
) -> None:
    # Rank fusion: 9th in meaning plus 1st in keywords beats 1st in meaning alone, however
    # far ahead in meaning the first is.
    _cats(store, tmp_path)
    rrf = Retriever(store, config=RankingConfig(fusion="rrf", file_evidence=1))
    assert rrf.search(_CAT_QUESTION, k=3)[0].path.name == "invoice.txt"
    hits = Retriever(store).search(_CAT_QUESTION, k=3)
    assert "invoice.txt" not in [h.path.name for h in hits]
    assert hits[0].text.startswith("Kittens like to sharpen")


def test_every_candidate_gets_both_scores(store: KnowledgeStore, tmp_path: Path) -> None:
    # With k=4 and a pool of one, each search gives 8 candidates: the invoice (9th in
    # meaning) is only a keyword candidate, yet it is scored by its cosine too.
    _cats(store, tmp_path)
    config = RankingConfig(pool=1, keyword_share=0.4)
    hits = Retriever(store, config=config).search(_CAT_QUESTION, k=4)
    invoice = next(h for h in hits if h.path.name == "invoice.txt")
    assert invoice.keyword_score is not None and invoice.dense_score is not None
    dense = Retriever(store).search(_CAT_QUESTION, k=len(_CATS), mode="dense")
    assert [h.path.name for h in dense].index("invoice.txt") == 8
    same = next(h for h in dense if h.path.name == "invoice.txt")
    assert same.dense_score is not None
    assert invoice.dense_score == pytest.approx(same.dense_score, abs=1e-4)


def test_a_page_that_answers_in_several_places_beats_one_close_line(
    store: KnowledgeStore, tmp_path: Path
) -> None:
    root = tmp_path / "kb"
    root.mkdir()
    store.add_root(root)
    zebra = [
        "The zebra migration crosses the Mara river every year in July.",
        "Herds follow the rains across the Serengeti in a great loop.",
        "Crocodiles wait at the crossings where the herds swim.",
    ]
    # Not adjacent (indices 0, 2, 4), so each is its own passage.
    chunks = [
        Chunk(2 * i, t, "Zebras: " + t, ("Zebras",), None, 20 * i + 1, 20 * i + 5, 12)
        for i, t in enumerate(zebra)
    ]
    _put(store, root, "zebras.txt", chunks)
    _put(store, root, "savanna.txt", make_chunks(["Zebra migration."], ("Savanna",)))
    _put(store, root, "garden.txt", make_chunks(["Tomatoes need full sun and water."]))
    # The one-line page is the closest single chunk...
    alone = Retriever(store, config=RankingConfig(file_evidence=1)).search("zebra migration", 2)
    assert alone[0].path.name == "savanna.txt"
    # ...but the page about the migration wins on its evidence as a whole.
    hits = Retriever(store).search("zebra migration", k=3)
    assert [h.path.name for h in hits][:2] == ["zebras.txt", "savanna.txt"]
    dense = Retriever(store).search("zebra migration", 1, mode="dense")
    assert dense[0].path.name == "zebras.txt"


def test_stored_vectors_are_read_back(store: KnowledgeStore, corpus: Path) -> None:
    rows = sqlite3.connect(store.db_path).execute("SELECT id FROM chunks").fetchall()
    ids = [r[0] for r in rows]
    got = store.vectors([*ids, "no-such-chunk"])
    assert set(got) == set(ids)
    assert all(len(v) == 384 for v in got.values())
    assert store.vectors([]) == {}


def test_bm25_ceiling_is_what_fts5_bm25_tends_to(tmp_path: Path) -> None:
    """The ceiling follows SQLite's own bm25: a chunk full of the terms nears it from below."""
    from parley.core.knowledge.retrieval import bm25_ceiling

    conn = sqlite3.connect(tmp_path / "fts.db")
    conn.execute("CREATE VIRTUAL TABLE t USING fts5(x, tokenize='porter unicode61')")
    rows = [f"filler words number {i} about nothing much" for i in range(200)]
    rows += [f"alpha appears here {i}" for i in range(9)]  # alpha: 11 rows, beta: 2
    rows += ["alpha beta " * 200, "alpha beta and some ordinary words of a sentence"]
    conn.executemany("INSERT INTO t(x) VALUES (?)", [(r,) for r in rows])
    ceiling = bm25_ceiling([11, 2], len(rows))
    got = dict(conn.execute('SELECT rowid, -bm25(t) FROM t WHERE t MATCH \'"alpha" OR "beta"\''))
    full, once = got[len(rows) - 1], got[len(rows)]
    assert 0.75 * ceiling < full < ceiling  # bm25 normalises by length: 400 words here
    assert 0.3 * ceiling < once < 0.8 * ceiling
    assert bm25_ceiling([11], len(rows)) < ceiling  # a rarer term adds more
    assert bm25_ceiling([300], len(rows)) == pytest.approx(2.2e-6)  # idf floor, as FTS5's
    assert bm25_ceiling([11, 2, 0], len(rows)) == ceiling  # a term in no chunk: no match
    assert bm25_ceiling([11, 2], 0) == 0.0


def test_a_best_keyword_match_of_common_words_adds_less_than_the_full_share() -> None:
    from parley.core.knowledge.retrieval import fuse_complete

    cosines = {"close": 0.50, "wordy": 0.42}
    weak = {"wordy": 2.0}  # the best keyword match, but a tenth of what every term would give
    plain = fuse_complete(cosines, weak, list(cosines), RankingConfig(keyword_anchor=0.0))
    assert plain["wordy"] == pytest.approx(0.62) and plain["wordy"] > plain["close"]
    anchored = fuse_complete(cosines, weak, list(cosines), RankingConfig(keyword_anchor=0.3), 20.0)
    assert anchored["wordy"] == pytest.approx(0.42 + 0.2 * 2.0 / 6.0)
    assert anchored["close"] > anchored["wordy"]
    # A strong match (above the anchor) still adds the full share.
    strong = fuse_complete(cosines, {"wordy": 9.0}, list(cosines), RankingConfig(), 20.0)
    assert strong["wordy"] == pytest.approx(0.62)
