"""Chunking: structure, locations, overlap, and sizes checked with MiniLM's real tokenizer."""

from __future__ import annotations

import itertools
import os
import random
import time
from pathlib import Path

import pytest

from parley.core.knowledge.chunking import (
    DEFAULT_MAX_TOKENS,
    Chunk,
    Chunker,
    default_tokenizer_path,
)
from parley.core.knowledge.loaders import Block, LoadedDocument, load_file

ASSETS = Path(os.environ["PARLEY_ASSETS"]) if os.environ.get("PARLEY_ASSETS") else None
TOKENIZER = default_tokenizer_path(ASSETS)
needs_tokenizer = pytest.mark.skipif(
    TOKENIZER is None, reason="MiniLM tokenizer.json not in PARLEY_ASSETS"
)

WORDS = (
    "the of and to in is you that it he was for on are as with his they at be this have from or "
    "one had by word but not what all were we when your can said there use an each which she do "
    "how their if will up other about out many then them these so some her would make like him "
    "into time has look two more write go see number no way could people my than first water been "
    "call who oil its now find long down day did get come made may part index embedding retrieval "
    "configuration installation internationalization asynchronous throughput tokenizer "
    "documentation environment kubernetes PostgreSQL JSON HTTP/2 v1.2.3 e.g. naïve café Zürich "
    "2024-05-01 x86_64 foo_bar() résumé coöperate façade"
).split()


def prose(rng: random.Random, words: int) -> str:
    out: list[str] = []
    while len(out) < words:
        sentence = [rng.choice(WORDS) for _ in range(rng.randint(4, 24))]
        sentence[0] = sentence[0].capitalize()
        out.extend(sentence[:-1])
        out.append(sentence[-1] + rng.choice([".", ".", ".", "?", "!", "…"]))
    return " ".join(out)


@pytest.fixture(scope="module")
def hf():
    if TOKENIZER is None:
        pytest.skip("MiniLM tokenizer.json not in PARLEY_ASSETS")
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(TOKENIZER))
    tok.no_truncation()
    tok.no_padding()
    return tok


@pytest.fixture(scope="module")
def chunker() -> Chunker:
    if TOKENIZER is None:
        pytest.skip("MiniLM tokenizer.json not in PARLEY_ASSETS")
    return Chunker(tokenizer_path=TOKENIZER)


def real_counts(hf, texts: list[str]) -> list[int]:
    return [len(e.ids) for e in hf.encode_batch(texts, add_special_tokens=False)]


def check_sizes(hf, chunks: list[Chunk], max_tokens: int) -> None:
    """Every chunk within max_tokens by the real tokenizer, and its count exact."""
    assert chunks
    real = real_counts(hf, [c.embed_text for c in chunks])
    assert max(real) <= max_tokens
    assert [c.token_count for c in chunks] == real
    assert [c.index for c in chunks] == list(range(len(chunks)))


def doc_of(blocks: list[Block], kind: str = "text") -> LoadedDocument:
    return LoadedDocument(Path("doc.txt"), kind, blocks, 0, "0" * 64)


# ---------------------------------------------------------------------------- tokenizer


def test_default_tokenizer_path(tmp_path: Path) -> None:
    assert default_tokenizer_path(None) is None
    assert default_tokenizer_path(tmp_path) is None
    target = tmp_path / "models" / "all-MiniLM-L6-v2" / "onnx" / "tokenizer.json"
    target.parent.mkdir(parents=True)
    target.write_text("{}")
    assert default_tokenizer_path(tmp_path) == target


@needs_tokenizer
def test_counts_match_the_real_tokenizer_character_by_character(hf) -> None:
    """Every Latin character, controls and odd spaces, alone and inside words."""
    samples = []
    for cp in [*range(0x250), 0x2028, 0x2029, 0x200B, 0x3000, 0x202F, 0xFEFF, 0xFFFD, 0x1F680]:
        ch = chr(cp)
        samples += [ch, f"a{ch}b", f"word{ch}", f"{ch}{ch}x"]
    samples += [
        "東京タワーは高い。次の文！", "Привет, мир", "مرحبا بالعالم", "İstanbul ﬁle ½ ①",
        "e\u0301te\u0301", "https://example.com/a/b?c=d&e=f#frag", "x" * 150, "ab" * 60 + ".cd",
        "😀👍🏽", "tab\tsep\nnew\rline\x0bvt\x0cff\x85nel", "a\x00b\ufffdc", "  lead and trail  ",
    ]  # fmt: skip
    chunker = Chunker(tokenizer_path=TOKENIZER)  # a fresh cache
    ours = [chunker.count_tokens(s) for s in samples]
    assert ours == real_counts(hf, samples)
    assert chunker.count_tokens(" ".join(samples)) == real_counts(hf, [" ".join(samples)])[0]


MARKDOWN = """\
# Guide

Welcome to the guide.

## Install

Install it with pip.

### Linux

Run `apt install thing` first.

### macOS

Use Homebrew.

## Usage

```python
# a comment, not a heading
print("hi")
```
"""


@needs_tokenizer
def test_markdown_headings_and_embed_prefix(tmp_path: Path, chunker: Chunker, hf) -> None:
    p = tmp_path / "guide.md"
    p.write_text(MARKDOWN)
    chunks = chunker.chunk(load_file(p))
    check_sizes(hf, chunks, DEFAULT_MAX_TOKENS)
    # Small sections are packed together under their common headings.
    assert len(chunks) == 1
    (c,) = chunks
    assert c.heading_path == ("Guide",)
    assert c.text.startswith("Guide\n\nWelcome to the guide.\n\nInstall\n\nInstall it with pip.")
    assert '```python\n# a comment, not a heading\nprint("hi")\n```' in c.text
    assert c.embed_text == c.text  # it starts with its own heading: nothing to add
    assert (c.line_start, c.line_end) == (1, 22)


@needs_tokenizer
def test_sections_split_keep_paths_and_prefix(tmp_path: Path, hf) -> None:
    rng = random.Random(1)
    text = (
        f"# Guide\n\n{prose(rng, 30)}\n\n## Install\n\n{prose(rng, 60)}\n\n### Linux\n\n"
        f"{prose(rng, 120)}\n\n{prose(rng, 120)}\n\n### macOS\n\n{prose(rng, 20)}\n"
    )
    p = tmp_path / "guide.md"
    p.write_text(text)
    chunker = Chunker(max_tokens=100, overlap_tokens=12, tokenizer_path=TOKENIZER)
    chunks = chunker.chunk(load_file(p))
    check_sizes(hf, chunks, 100)
    paths = [c.heading_path for c in chunks]
    assert ("Guide", "Install", "Linux") in paths
    for c in chunks:
        if c.heading_path == ("Guide", "Install", "Linux"):
            if c.text.startswith("Linux\n"):
                assert c.embed_text == "Guide > Install: " + c.text
            else:  # a continuation chunk gets the whole path as context
                assert c.embed_text == "Guide > Install > Linux: " + c.text
        assert not c.text.startswith(("Guide >", " ", "\n"))
    lines = text.split("\n")
    for c in chunks:  # the line range holds the chunk's text
        span = "\n".join(lines[c.line_start - 1 : c.line_end])
        for para in c.text.split("\n\n"):
            assert para in span or para.lstrip("# ") in span


@needs_tokenizer
@pytest.mark.parametrize("max_tokens", [200, 64])
def test_no_chunk_exceeds_max_tokens(tmp_path: Path, hf, max_tokens: int) -> None:
    rng = random.Random(max_tokens)
    parts = []
    for i in range(40):
        parts.append(f"{'#' * rng.randint(1, 4)} Section {i} {prose(rng, rng.randint(1, 30))}")
        for _ in range(rng.randint(0, 4)):
            kind = rng.random()
            if kind < 0.5:
                parts.append(prose(rng, rng.randint(5, 400)))
            elif kind < 0.6:
                parts.append(
                    "\n".join(
                        f"- {prose(rng, rng.randint(3, 40))}" for _ in range(rng.randint(2, 30))
                    )
                )
            elif kind < 0.7:
                parts.append(
                    "\n".join(f"| {i} | {prose(rng, 8)} |" for i in range(rng.randint(2, 60)))
                )
            elif kind < 0.8:
                code = "\n".join(
                    f"    x_{j} = call(arg_{j}, 'value {j}')  # note"
                    for j in range(rng.randint(5, 120))
                )
                parts.append(f"```python\n{code}\n```")
            elif kind < 0.85:
                parts.append("東京の天気は晴れです。" * rng.randint(5, 200))
            elif kind < 0.9:
                parts.append("https://example.com/" + "/".join(prose(rng, 200).split()))
            else:
                parts.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(50, 900))))
    p = tmp_path / "big.md"
    p.write_text("\n\n".join(parts))
    chunks = Chunker(
        max_tokens=max_tokens, overlap_tokens=max_tokens // 10, tokenizer_path=TOKENIZER
    ).chunk(load_file(p))
    check_sizes(hf, chunks, max_tokens)
    assert all(len(c.text) <= max_tokens * 8 for c in chunks)


@needs_tokenizer
def test_long_paragraph_splits_at_sentences_with_modest_overlap(chunker: Chunker, hf) -> None:
    rng = random.Random(7)
    para = prose(rng, 1500)
    chunks = chunker.chunk(doc_of([Block(para, "paragraph", line_start=1, line_end=1)]))
    check_sizes(hf, chunks, DEFAULT_MAX_TOKENS)
    assert len(chunks) >= 6
    texts = [c.text for c in chunks]
    pos = 0
    for i, t in enumerate(texts):
        start = para.find(t, max(0, pos - 400))
        assert start >= 0, "each chunk is an excerpt of the paragraph"
        if i:
            overlap = para[start:pos]
            assert overlap, "split text carries some overlap"
            assert chunker.count_tokens(overlap) <= chunker.overlap_tokens
            assert t != texts[i - 1] and not texts[i - 1].endswith(t)
        else:
            assert start == 0
        if i < len(texts) - 1:  # split at sentence ends, not mid-sentence
            assert t[-1] in ".?!…"
        pos = start + len(t)
    assert pos == len(para)


@needs_tokenizer
def test_code_chunks_keep_lines_and_indentation(tmp_path: Path, chunker: Chunker, hf) -> None:
    body = "\n".join(
        f"        value_{i} = compute(value_{i - 1}, factor={i})  # step {i}" for i in range(1, 400)
    )
    source = f"class Thing:\n    def run(self):\n{body}\n        return value_399\n"
    p = tmp_path / "thing.py"
    p.write_text(source)
    chunks = chunker.chunk(load_file(p))
    check_sizes(hf, chunks, DEFAULT_MAX_TOKENS)
    assert len(chunks) > 5
    lines = source.split("\n")
    for c in chunks:
        assert c.text.split("\n") == lines[c.line_start - 1 : c.line_end]  # whole lines, exact
    assert chunks[0].line_start == 1 and chunks[-1].line_end == 402
    for a, b in itertools.pairwise(chunks):
        assert a.line_start < b.line_start <= a.line_end + 1  # in order, overlapping a little


@needs_tokenizer
def test_pdf_chunks_never_mix_pages(chunker: Chunker, hf) -> None:
    rng = random.Random(3)
    blocks = [Block("Chapter", "heading", level=1, page=1)]
    for page in range(1, 6):
        blocks += [Block(prose(rng, rng.randint(10, 300)), "text", page=page) for _ in range(2)]
    chunks = chunker.chunk(doc_of(blocks, "pdf"))
    check_sizes(hf, chunks, DEFAULT_MAX_TOKENS)
    for c in chunks:
        assert c.line_start is None and c.page is not None
        assert c.heading_path == ("Chapter",)
        for piece in c.text.split("\n\n"):
            owners = {b.page for b in blocks if piece in b.text or piece == b.text}
            assert c.page in owners
    assert sorted({c.page for c in chunks}) == [1, 2, 3, 4, 5]


@needs_tokenizer
def test_500k_character_word(chunker: Chunker, hf) -> None:
    text = "intro words here " + "x" * 500_000 + " outro words"
    chunks = chunker.chunk(doc_of([Block(text, "paragraph", line_start=1, line_end=1)]))
    check_sizes(hf, chunks, DEFAULT_MAX_TOKENS)
    assert all(len(c.text) <= chunker.max_chars for c in chunks)
    assert sum(c.text.count("x") for c in chunks) == 500_000  # pieces of a word never overlap
    assert chunks[0].text.startswith("intro words here x")
    assert chunks[-1].text.endswith("outro words")


@needs_tokenizer
def test_5_mb_single_line_is_chunked_quickly(chunker: Chunker, hf) -> None:
    rng = random.Random(5)
    block = prose(rng, 30_000) + " "  # ~200 KB, repeated: generating 5 MB word by word is slow
    text = (block * (5 * 2**20 // len(block) + 1))[: 5 * 2**20].rsplit(" ", 1)[0]
    t0 = time.process_time()
    chunks = chunker.chunk(doc_of([Block(text, "text", line_start=1, line_end=1)]))
    cpu = time.process_time() - t0
    assert cpu < 20, f"{cpu:.1f} s of CPU for 5 MB"  # ~2 s here; a loose guard, not a benchmark
    assert all(c.line_start == 1 == c.line_end for c in chunks)
    check_sizes(hf, chunks[:500], DEFAULT_MAX_TOKENS)
    pos = 0
    for c in chunks:
        start = text.find(c.text, max(0, pos - 400), pos + len(c.text))
        assert 0 <= start <= pos
        pos = start + len(c.text)
    assert pos == len(text)


def test_empty_and_blank_documents() -> None:
    chunker = Chunker()
    assert chunker.chunk(doc_of([])) == []
    assert chunker.chunk(doc_of([Block("   \n\t", "paragraph"), Block("\n", "text")])) == []


@needs_tokenizer
def test_heading_only_document(chunker: Chunker) -> None:
    chunks = chunker.chunk(doc_of([Block("Lonely", "heading", level=1)], "markdown"))
    assert [(c.text, c.heading_path, c.embed_text) for c in chunks] == [
        ("Lonely", ("Lonely",), "Lonely")
    ]


@needs_tokenizer
def test_huge_heading_path_is_bounded(chunker: Chunker, hf) -> None:
    rng = random.Random(11)
    blocks = [Block(prose(rng, 60), "heading", level=i) for i in range(1, 5)]
    blocks.append(Block(prose(rng, 600), "paragraph"))
    chunks = chunker.chunk(doc_of(blocks, "docx"))
    check_sizes(hf, chunks, DEFAULT_MAX_TOKENS)
    for c in chunks:
        prefix = c.embed_text[: len(c.embed_text) - len(c.text)]
        assert len(prefix) < 400
        assert chunker.count_tokens(prefix) <= chunker.max_tokens // 4


@needs_tokenizer
def test_fenced_code_is_kept_whole_when_it_fits(tmp_path: Path, chunker: Chunker) -> None:
    rng = random.Random(2)
    code = "\n".join(f"line_{i} = {i}" for i in range(30))
    p = tmp_path / "c.md"
    p.write_text(f"# T\n\n{prose(rng, 150)}\n\n```\n{code}\n```\n\n{prose(rng, 100)}\n")
    chunks = chunker.chunk(load_file(p))
    holders = [c for c in chunks if "line_0 = 0" in c.text]
    assert len(holders) == 1 and f"```\n{code}\n```" in holders[0].text


def test_estimate_without_tokenizer_stays_under_the_limit(hf) -> None:
    rng = random.Random(9)
    blocks = [Block(prose(rng, rng.randint(10, 800)), "paragraph") for _ in range(40)]
    chunker = Chunker()
    assert not chunker.exact
    chunks = chunker.chunk(doc_of(blocks))
    real = real_counts(hf, [c.embed_text for c in chunks])
    assert max(real) <= DEFAULT_MAX_TOKENS
    assert all(c.token_count >= r for c, r in zip(chunks, real, strict=True))  # errs high


def test_damaged_tokenizer_file_falls_back_to_estimating(tmp_path: Path) -> None:
    bad = tmp_path / "tokenizer.json"
    bad.write_text("{not json")
    chunker = Chunker(tokenizer_path=bad)
    assert not chunker.exact
    assert chunker.chunk(doc_of([Block("Some text.", "paragraph")]))[0].text == "Some text."


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError):
        Chunker(max_tokens=8)
    with pytest.raises(ValueError):
        Chunker(max_tokens=100, overlap_tokens=60)


# ---------------------------------------------------------------------------- filling, structure


@needs_tokenizer
def test_small_sections_fill_the_window() -> None:
    # Sections of ~30 pieces in a 100-piece window: three fit whole in each chunk (the old
    # rule stopped packing once a chunk was half full, making chunks of two).
    chunker = Chunker(max_tokens=100, overlap_tokens=10, tokenizer_path=TOKENIZER)
    blocks: list[Block] = []
    for i in range(9):
        blocks.append(Block(f"Part {i}", "heading", level=2))
        blocks.append(Block(" ".join(["apple"] * 26) + ".", "paragraph"))
    section = chunker.count_tokens(f"Part 0 {' '.join(['apple'] * 26)}.")
    assert 3 * section <= 100 < 4 * section
    chunks = chunker.chunk(doc_of(blocks, "markdown"))
    assert [c.text.count("Part ") for c in chunks] == [3, 3, 3]
    assert all(c.token_count <= 100 for c in chunks)


def test_default_chunks_fill_the_model_window() -> None:
    assert Chunker().max_tokens == 254  # all-MiniLM-L6-v2: 256 with [CLS] and [SEP]


@needs_tokenizer
def test_title_is_carried_and_embedded_when_headings_do_not_name_it(tmp_path: Path) -> None:
    page = tmp_path / "frob.html"
    page.write_text(
        "<html><head><title>Frobnicator reference</title></head><body>"
        "<h2>Options</h2><p>The --fast option skips the checks.</p></body></html>"
    )
    (c,) = Chunker(tokenizer_path=TOKENIZER).chunk(load_file(page))
    assert c.title == "Frobnicator reference"
    assert c.embed_text == "Frobnicator reference: " + c.text
    assert c.text.startswith("Options\n\nThe --fast option")
    # A page whose first heading is its title gets no second copy of it.
    page.write_text(
        "<html><head><title>Frobnicator - Docs</title></head><body><h1>Frobnicator</h1>"
        "<p>It frobnicates.</p></body></html>"
    )
    (c,) = Chunker(tokenizer_path=TOKENIZER).chunk(load_file(page))
    assert c.title == "Frobnicator - Docs" and c.embed_text == c.text


def test_link_share_tells_a_table_of_contents_from_prose(tmp_path: Path) -> None:
    toc = tmp_path / "toc.html"
    toc.write_text(
        "<h1>Contents</h1><ul>"
        + "".join(f'<li><a href="p{i}.html">Chapter {i} about things</a></li>' for i in range(30))
        + "</ul>"
    )
    prose_page = tmp_path / "page.html"
    prose_page.write_text(
        "<h1>Guide</h1><p>"
        + "Plain words about the subject. " * 30
        + 'See <a href="x.html">the reference</a>.</p>'
    )
    chunker = Chunker(tokenizer_path=TOKENIZER)
    assert min(c.link_share for c in chunker.chunk(load_file(toc))) > 0.8
    assert max(c.link_share for c in chunker.chunk(load_file(prose_page))) < 0.05
