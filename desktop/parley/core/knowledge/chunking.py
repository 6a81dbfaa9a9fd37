"""Cut a :class:`LoadedDocument` into chunks sized for the embedding model.

Structure first: a chunk never mixes pages, sections are kept whole when they fit (small
sibling sections are packed together while the whole next one fits), a block (paragraph,
code block, table, list) is split only when it alone is too big; then at sentence ends (line
ends for code, tables, lists and data), then between words, and only as the last resort
inside a word (a 500,000-character word, a minified file). Splitting a block carries a
modest overlap (``overlap_tokens``, at a sentence or line start when one is near) into the
next chunk; whole chunks are never repeated.

Chunks are filled up to the embedding model's window (all-MiniLM-L6-v2 truncates at 256
word pieces including [CLS]/[SEP], so 254 by default): measured on the PostgreSQL manual, a
200-piece cap and packing only into half-empty chunks made 44 % more chunks than the naive
1,000-character recipe; filling the window along the same boundaries makes 18 % fewer.

Each chunk carries its document's title (HTML ``<title>``; the embedded prefix names it when
the heading path does not already start with it) and the share of its text that is link text
(a table of contents or an index page is nearly all links), both used by retrieval.

Sizes are counted in word pieces of the embedding model's own tokenizer, and counted
exactly: BERT's normalizer and pre-tokenizer always split at whitespace, so a text's count
is the sum of the counts of its whitespace-separated words, and a chunk cut at whitespace
has exactly the count of its words. Each distinct word is counted once and cached;
plain-ASCII words are counted by a WordPiece implementation here (the Rust tokenizer costs
~35 µs per call from Python, which would make chunking slower than 2,000 chunks/s),
everything else by ``tokenizers`` in batches. Without the tokenizer file a conservative
per-word estimate is used.
"""

from __future__ import annotations

import json
import logging
import math
import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import accumulate, pairwise
from pathlib import Path
from typing import Any

from parley.core.knowledge.loaders import Block, LoadedDocument

log = logging.getLogger(__name__)

MODEL_WINDOW = 256
"""all-MiniLM-L6-v2's input window in word pieces, [CLS] and [SEP] included."""

DEFAULT_MAX_TOKENS = MODEL_WINDOW - 2
"""A chunk's ``embed_text`` fills the window: nothing is truncated, nothing is wasted."""

MODEL_DIRS = (
    Path("models") / "all-MiniLM-L6-v2" / "onnx",
    Path("models") / "all-MiniLM-L6-v2-int8" / "onnx",
)
"""Where the embedding model (and its tokenizer.json) lives inside an assets folder: the fp32
model's, or the int8 one's (an assets folder may hold only that; the tokenizer is the same)."""

CHARS_PER_TOKEN_CAP = 8
"""A chunk is also capped at ``max_tokens * 8`` characters: a word longer than 100
characters is a single [UNK] piece, so long tokens-poor text needs a character limit too."""

_CACHE_MAX = 400_000
"""Distinct words whose counts are remembered (about 40 MB); the cache restarts beyond."""

# Whitespace as BERT's normalizer sees it (Unicode White_Space minus the control
# characters it deletes: \v \f \x85 are removed, not spaces).
_WS = " \t\n\r\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_CJK_STOPS = "。！？"
# A "word": a run of non-whitespace; CJK sentence ends also end a word (they are
# punctuation, which BERT always splits off, so counts stay additive).
_WORD = re.compile(f"[^{_WS}{_CJK_STOPS}]+[{_CJK_STOPS}]*|[{_CJK_STOPS}]+")
_PARA_GAP = re.compile(r"\n[^\S\n]*\n\s*")
_LINE_GAP = re.compile(r"\n\s*")
_SENTENCE_GAP = re.compile(r"(?:[.!?…][\"'”’»)\]]*(?=\s)|[。！？])\s*")
_ASCII_CONTROLS = {c: None for c in [*range(0, 9), 11, 12, *range(14, 32), 127]}
_ASCII_PIECE = re.compile(r"[a-z0-9]+|[^a-z0-9]")
_EST_PIECE = re.compile(r"[A-Za-z0-9]+|\S")
_LINEWISE_KINDS = frozenset({"code", "table", "list"})
_LINEWISE_DOCS = frozenset({"code", "data"})


@dataclass(frozen=True)
class Chunk:
    """A piece of a document to embed, show and cite."""

    index: int
    """0-based position within its document."""
    text: str
    """What is shown and cited: a contiguous excerpt (blocks joined by a blank line)."""
    embed_text: str
    """What is embedded: ``text``, prefixed with the heading path when there is one."""
    heading_path: tuple[str, ...]
    """Enclosing headings, outermost first (their common part when sections were packed)."""
    page: int | None
    """1-based PDF page."""
    line_start: int | None
    """1-based first line in the file, for line-based formats."""
    line_end: int | None
    """1-based last line, inclusive."""
    token_count: int
    """Word pieces of ``embed_text`` (MiniLM's tokenizer; an upper estimate without it)."""
    title: str = ""
    """The document's title (HTML ``<title>``, else its first top-level heading)."""
    link_share: float = 0.0
    """Share of ``text`` that is link text (0..1): near 1 for a table of contents."""


def default_tokenizer_path(assets_dir: Path | None) -> Path | None:
    """The MiniLM tokenizer file in an assets folder, or None when it is not there.

    Args:
        assets_dir: ``Paths.assets_dir`` (``PARLEY_ASSETS``, or the packaged app's folder).

    Returns:
        ``<assets>/models/all-MiniLM-L6-v2[-int8]/onnx/tokenizer.json``, the first that exists.
    """
    if assets_dir is None:
        return None
    for folder in MODEL_DIRS:
        path = Path(assets_dir) / folder / "tokenizer.json"
        if path.is_file():
            return path
    return None


# ---------------------------------------------------------------------------- counting


class _Counter:
    """Word-piece counts of whitespace-separated words, cached."""

    def __init__(self, tokenizer_path: Path | None) -> None:
        self.exact = False
        self._hf: Any = None
        self._vocab: set[str] = set()
        self._cont: set[str] = set()
        self._max_word = 100
        self._max_piece = 0
        self._ascii_fast = False
        self._cache: dict[str, int] = {}
        self._pieces: dict[str, int] = {}  # WordPiece counts of ASCII pre-tokens
        if tokenizer_path is not None:
            try:
                self._load(Path(tokenizer_path))
            except Exception as exc:  # a damaged file: estimate rather than fail indexing
                log.warning("Cannot load tokenizer %s (%s); estimating tokens", tokenizer_path, exc)
                self._hf = None
                self.exact = False

    def _load(self, path: Path) -> None:
        from tokenizers import Tokenizer

        raw = path.read_text(encoding="utf-8")
        hf = Tokenizer.from_str(raw)
        hf.no_truncation()
        hf.no_padding()
        self._hf = hf
        self.exact = True
        cfg = json.loads(raw)
        model, norm, pre = (
            cfg.get("model") or {},
            cfg.get("normalizer") or {},
            cfg.get("pre_tokenizer") or {},
        )
        # The pure-Python path reproduces exactly BERT-uncased WordPiece on ASCII words.
        if (
            model.get("type") == "WordPiece"
            and norm.get("type") == "BertNormalizer"
            and norm.get("lowercase") is True
            and norm.get("clean_text") is True
            and norm.get("strip_accents") in (None, True)
            and pre.get("type") == "BertPreTokenizer"
            and isinstance(model.get("vocab"), dict)
        ):
            prefix = model.get("continuing_subword_prefix") or "##"
            vocab = model["vocab"]
            self._vocab = set(vocab)
            self._cont = {k[len(prefix) :] for k in vocab if k.startswith(prefix)}
            self._max_word = int(model.get("max_input_chars_per_word") or 100)
            self._max_piece = max(map(len, self._vocab | self._cont))
            self._ascii_fast = True

    # ---- one word
    def _wordpiece(self, piece: str) -> int:
        """WordPiece count of one pre-token (lower-case ASCII, no punctuation inside)."""
        n = len(piece)
        if n > self._max_word:
            return 1  # [UNK]
        vocab = self._vocab
        if piece in vocab:  # most words are whole vocabulary entries
            return 1
        start = count = 0
        longest = self._max_piece
        while start < n:
            end = n if n - start < longest else start + longest
            while end > start and piece[start:end] not in vocab:
                end -= 1
            if end == start:
                return 1  # no piece matches: the whole word is one [UNK]
            count += 1
            start = end
            vocab = self._cont
        return count

    def _ascii(self, word: str) -> int:
        if not word.isprintable():
            word = word.translate(_ASCII_CONTROLS)
        pieces = self._pieces
        n = 0
        for p in _ASCII_PIECE.findall(word.lower()):
            c = pieces.get(p)
            if c is None:
                c = pieces[p] = self._wordpiece(p)
            n += c
        return n

    @staticmethod
    def _estimate(word: str) -> int:
        # Fitted on 160,000 distinct words of Markdown against MiniLM's WordPiece, erring
        # high: letters 1 piece per 2.5 characters, numbers 1 per 2, hashes and other
        # letter/digit mixes 4 per 5; anything else (punctuation, CJK, other scripts) 1 per
        # character.
        n = 0
        for p in _EST_PIECE.findall(word):
            if len(p) == 1 or not p.isascii():
                n += len(p)
            elif p.isalpha():
                n += math.ceil(len(p) / 2.5)
            elif p.isdigit():
                n += math.ceil(len(p) / 2)
            else:
                n += math.ceil(len(p) * 0.8)
        return n

    def count_new(self, words: Iterable[str]) -> dict[str, int]:
        """Counts of words (not read from, nor stored in, the cache)."""
        out: dict[str, int] = {}
        rest: list[str] = []
        for w in words:
            if self._ascii_fast and w.isascii():
                out[w] = self._ascii(w)
            elif self._hf is None:
                out[w] = self._estimate(w)
            else:
                rest.append(w)
        for i in range(0, len(rest), 2048):
            batch = rest[i : i + 2048]
            for w, enc in zip(
                batch, self._hf.encode_batch(batch, add_special_tokens=False), strict=True
            ):
                out[w] = len(enc.ids)
        return out

    # ---- many words
    def counts(self, words: list[str], giant: int | None = None) -> list[int]:
        """Per-word counts, in order.

        Args:
            words: Whitespace-separated words.
            giant: Words longer than this many characters get a sampled estimate instead
                (never cached): the chunker cuts them anyway and counts the pieces, and the
                Rust tokenizer needs seconds for a megabyte-long word of emoji.
        """
        get = self._cache.get
        out = [get(w, -1) for w in words]
        if -1 in out:
            missing = {w for w, c in zip(words, out, strict=True) if c < 0}
            big = {w for w in missing if len(w) > giant} if giant is not None else set()
            found = self.count_new(missing - big)
            if len(self._cache) + len(found) > _CACHE_MAX:
                self._cache = {}
                self._pieces = {}
            self._cache.update(found)
            for w in big:
                head = w[:4096]
                found[w] = max(1, math.ceil(self.count_new([head])[head] * len(w) / len(head)))
            out = [c if c >= 0 else found[w] for w, c in zip(words, out, strict=True)]
        return out

    def total(self, words: list[str], giant: int | None = None) -> int:
        """Sum of the words' counts (``giant``: see :meth:`counts`)."""
        try:
            return sum(map(self._cache.__getitem__, words))
        except KeyError:
            return sum(self.counts(words, giant))

    def text(self, text: str) -> int:
        """Word pieces of a whole text (exact, however long its words)."""
        return self.total(_WORD.findall(text))


# ---------------------------------------------------------------------------- internals


@dataclass
class _Unit:
    """A block about to be chunked."""

    text: str
    tokens: int
    linewise: bool
    heading: bool
    line_start: int | None
    line_end: int | None
    link_chars: int = 0


@dataclass
class _Part:
    """A whole unit, or a range of one, placed in a chunk."""

    text: str
    tokens: int
    heading: bool
    line_start: int | None
    line_end: int | None
    link_chars: int = 0


class _Draft:
    __slots__ = ("chars", "headings", "page", "parts", "path", "tokens")

    def __init__(self, path: tuple[str, ...], page: int | None) -> None:
        self.path = path
        self.page = page
        self.parts: list[_Part] = []
        self.tokens = 0
        self.chars = 0
        self.headings: set[str] = set()  # titles of the headings this chunk's text shows

    def add(self, part: _Part) -> None:
        self.chars += len(part.text) + (2 if self.parts else 0)
        self.tokens += part.tokens
        self.parts.append(part)
        if part.heading:
            self.headings.add(" ".join(part.text.split()))


class _Budget:
    """Token and character room: the first range of a split fills what the chunk has left."""

    __slots__ = ("chars", "first", "now_chars", "now_tokens", "tokens")

    def __init__(self, first_tokens: int, first_chars: int, tokens: int, chars: int) -> None:
        self.now_tokens, self.now_chars = first_tokens, first_chars
        self.tokens, self.chars = tokens, chars
        self.first = True

    def now(self) -> tuple[int, int]:
        return self.now_tokens, self.now_chars

    def used_first(self) -> None:
        self.now_tokens, self.now_chars = self.tokens, self.chars
        self.first = False


def _common(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return a[:n]


# ---------------------------------------------------------------------------- the chunker


class Chunker:
    """Structure-aware chunking sized in the embedding model's word pieces.

    Thread-safe: one instance may chunk documents from several threads (the word-count
    cache is a plain dict, and a lost update only costs a recount).

    Args:
        max_tokens: Largest chunk, in word pieces of ``embed_text``.
        overlap_tokens: Tail of a split block repeated at the start of the next chunk.
        tokenizer_path: MiniLM's ``tokenizer.json`` (see :func:`default_tokenizer_path`);
            None or unreadable: a conservative estimate is used.
    """

    def __init__(
        self,
        *,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        overlap_tokens: int = 24,
        tokenizer_path: Path | None = None,
    ) -> None:
        if max_tokens < 16:
            raise ValueError("max_tokens must be at least 16")
        if not 0 <= overlap_tokens <= max_tokens // 4:
            raise ValueError("overlap_tokens must be between 0 and max_tokens / 4")
        self.max_tokens = max_tokens
        self.overlap_tokens = overlap_tokens
        self.max_chars = max_tokens * CHARS_PER_TOKEN_CAP
        self._counter = _Counter(tokenizer_path)

    @property
    def exact(self) -> bool:
        """True when counting with the real tokenizer, False when estimating."""
        return self._counter.exact

    def count_tokens(self, text: str) -> int:
        """Word pieces in ``text`` (no [CLS]/[SEP]); the same count chunks are sized by."""
        return self._counter.text(text)

    # ---- Public API
    def chunk(
        self,
        doc: LoadedDocument,
        *,
        title: str | None = None,
        headings: Sequence[tuple[int, str]] = (),
    ) -> list[Chunk]:
        """Chunks of one document, in reading order.

        Args:
            doc: A loaded document, or one window of a big one.
            title: The document's title (see :func:`document_title`); None: taken from
                ``doc``. A window of a big document passes its whole document's.
            headings: ``(level, title)`` of the headings open where ``doc.blocks`` begin,
                outermost first (a window of a big document): the heading path its first
                chunks belong under, without repeating the headings as text.

        Returns:
            Chunks with heading path, page or line range, and token count; empty when the
            document has no text.
        """
        linewise_doc = doc.kind in _LINEWISE_DOCS
        prefixes: dict[tuple[str, ...], tuple[str, int]] = {}
        drafts: list[_Draft] = []
        cur: _Draft | None = None
        title = document_title(doc) if title is None else title
        lead = (title,) if title else ()

        def full(path: tuple[str, ...]) -> tuple[str, ...]:
            # The title leads the embedded prefix unless the headings already start with it
            # (an HTML page's <h1> usually is its title).
            return path if not lead or (path and _same_title(path[0], title)) else lead + path

        def raw(path: tuple[str, ...]) -> tuple[str, int]:
            got = prefixes.get(path)
            if got is None:
                got = prefixes[path] = self._prefix(path)
            return got

        def prefix(path: tuple[str, ...]) -> tuple[str, int]:
            return raw(full(path))

        for path, page, units in self._segments(doc.blocks, linewise_doc, headings):
            seg_tokens = sum(u.tokens for u in units)
            seg_chars = sum(len(u.text) + 2 for u in units)
            # A section joins the open chunk (under their common headings) when it fits whole,
            # so a page of small sections is not a pile of small chunks; but the common path
            # may only drop headings the chunk shows as text. A chunk never loses the context
            # of text it holds (the tail of a section that began in an earlier chunk keeps its
            # path), and packing stops where such a section ends: an edit's effect on chunk
            # boundaries ends there too.
            if cur is not None and cur.page == page:
                common = _common(cur.path, path)
                if (
                    cur.headings.issuperset(cur.path[len(common) :])
                    and cur.tokens + seg_tokens + prefix(common)[1] <= self.max_tokens
                    and cur.chars + seg_chars <= self.max_chars
                ):
                    cur.path = common
                    for u in units:
                        cur.add(self._whole(u))
                    continue
            if cur is not None:
                drafts.append(cur)
            cur = _Draft(path, page)
            budget = self.max_tokens - prefix(path)[1]
            for u in units:
                cur = self._place(u, cur, budget, drafts)
        if cur is not None and cur.parts:
            drafts.append(cur)
        return self._finish(drafts, full, raw, title)

    # ---- Internals
    def _segments(
        self, blocks: list[Block], linewise_doc: bool, headings: Sequence[tuple[int, str]] = ()
    ) -> Iterable[tuple[tuple[str, ...], int | None, list[_Unit]]]:
        """Sections (headings and what follows them), cut further at page changes.

        A heading with no text of its own before the next heading (a chapter's title right
        above its first section's) opens the next section rather than being one: it never
        ends a chunk apart from the text it introduces, nor makes a chunk of its own.
        """
        stack: list[tuple[int, str]] = [(max(1, lv), " ".join(t.split())) for lv, t in headings]
        path: tuple[str, ...] = tuple(t for _, t in stack)
        page: int | None = None
        units: list[_Unit] = []
        only_headings = False
        counter = self._counter
        for b in blocks:
            text = b.text.strip("\n").rstrip()
            if not text.strip():
                continue
            is_heading = b.kind == "heading"
            if units and (b.page != page or (is_heading and not only_headings)):
                yield path, page, units
                units = []
            page = b.page
            if is_heading:
                level = b.level if b.level > 0 else 1
                while stack and stack[-1][0] >= level:
                    stack.pop()
                stack.append((level, " ".join(text.split())))
                path = tuple(t for _, t in stack)
            only_headings = is_heading and (only_headings or not units)
            units.append(
                _Unit(
                    text=text,
                    tokens=counter.total(_WORD.findall(text), self.max_chars),
                    linewise=linewise_doc or b.kind in _LINEWISE_KINDS,
                    heading=is_heading,
                    line_start=b.line_start,
                    line_end=b.line_end,
                    link_chars=b.link_chars,
                )
            )
        if units:
            yield path, page, units

    def _prefix(self, path: tuple[str, ...]) -> tuple[str, int]:
        """``"A > B: "`` for a heading path, at most a quarter of a chunk's tokens."""
        limit = self.max_tokens // 4
        titles = [t if len(t) <= 80 else t[:80].rsplit(" ", 1)[0] + "…" for t in path]
        while titles:
            text = " > ".join(titles) + ": "
            n = self._counter.text(text)
            if n <= limit:
                return text, n
            if len(titles) > 1:
                titles = titles[1:]  # keep the innermost headings
            elif len(titles[0]) > 8:
                titles = [titles[0][: len(titles[0]) // 2] + "…"]
            else:
                break
        return "", 0

    def _whole(self, u: _Unit) -> _Part:
        return _Part(u.text, u.tokens, u.heading, u.line_start, u.line_end, u.link_chars)

    def _place(self, u: _Unit, cur: _Draft, budget: int, drafts: list[_Draft]) -> _Draft:
        """Add one unit of an oversized section; returns the open draft."""
        max_chars = self.max_chars
        if cur.tokens + u.tokens <= budget and cur.chars + len(u.text) + 2 <= max_chars:
            cur.add(self._whole(u))
            return cur
        if u.tokens <= budget and len(u.text) <= max_chars:
            # Starts a new chunk; a short last block of the previous one (a lead-in such as
            # "For example:") comes along as overlap.
            carry = self._carry(cur)
            drafts.append(cur)
            cur = _Draft(cur.path, cur.page)
            if carry is not None and carry.tokens + u.tokens <= budget and carry.tokens:
                cur.add(carry)
            cur.add(self._whole(u))
            return cur
        # Too big on its own: split it. The first range fills the open chunk when it has
        # useful room (always after a lone heading, which must not end up alone).
        room = budget - cur.tokens
        lone_heading = bool(cur.parts) and all(p.heading for p in cur.parts)
        if cur.parts and room < budget // 4 and not lone_heading:
            drafts.append(cur)
            cur = _Draft(cur.path, cur.page)
            room = budget
        first_chars = max_chars - cur.chars - (2 if cur.parts else 0)
        # Later ranges leave room for the overlap they get (tokens and characters).
        later = _Budget(room, first_chars, budget - self.overlap_tokens, max_chars - max_chars // 8)
        ranges, fresh = self._split(u, later)
        for i, part in enumerate(ranges):
            if i or (fresh and cur.parts):
                drafts.append(cur)
                cur = _Draft(cur.path, cur.page)
            cur.add(part)
        return cur

    def _carry(self, cur: _Draft) -> _Part | None:
        if len(cur.parts) < 2 or not self.overlap_tokens:
            return None
        last = cur.parts[-1]
        return last if not last.heading and last.tokens <= self.overlap_tokens else None

    def _split(self, u: _Unit, budget: _Budget) -> tuple[list[_Part], bool]:
        """Ranges of one oversized unit, each within budget, with overlap after the first.

        Returns:
            The ranges, and True when not even one word fitted the open chunk's room (the
            first range then starts a new chunk).
        """
        text = u.text
        counter = self._counter
        spans = [m.span() for m in _WORD.finditer(text)]
        starts = [a for a, _ in spans]
        ends = [b for _, b in spans]
        del spans
        counts = counter.counts(_WORD.findall(text), self.max_chars)
        # Words that alone exceed a chunk are cut into pieces (the last resort); pieces of
        # one word must never share a chunk (their counts would not add up), so the cut
        # points between them are hard boundaries.
        hard: list[int] = []
        limit_t, limit_c = max(1, budget.tokens), budget.chars
        if any(c > limit_t for c in counts) or any(
            e - s > limit_c for s, e in zip(starts, ends, strict=True)
        ):
            starts, ends, counts, hard = self._cut_giants(
                text, starts, ends, counts, limit_t, limit_c
            )
        n = len(starts)
        cum = [0, *accumulate(counts)]
        # Boundary candidates by strength, as word indices: paragraph, line, sentence.
        levels: list[list[int]] = []
        gaps = (
            (_PARA_GAP, _LINE_GAP, _SENTENCE_GAP)
            if u.linewise
            else (_PARA_GAP, _SENTENCE_GAP, _LINE_GAP)
        )
        for rx in gaps:
            idx = sorted({bisect_left(starts, m.end()) for m in rx.finditer(text)})
            levels.append([k for k in idx if 0 < k < n])
        out: list[tuple[int, int]] = []
        fresh = False

        def fits(s: int, e: int) -> bool:
            tok, ch = budget.now()
            return cum[e] - cum[s] <= tok and ends[e - 1] - starts[s] <= ch

        def emit(s: int, e: int) -> None:
            out.append((s, e))
            budget.used_first()

        def pack(i: int, j: int, level: int) -> None:
            if fits(i, j):
                emit(i, j)
                return
            nonlocal fresh
            if level >= len(levels):  # word level: as many words as fit
                s = i
                while s < j:
                    tok, ch = budget.now()
                    e = bisect_right(cum, cum[s] + tok, s + 1, j + 1) - 1
                    e = min(e, bisect_right(ends, starts[s] + ch, s, j))
                    if e <= s and budget.first:
                        fresh = True  # the open chunk has no room for even one word
                        budget.used_first()
                        continue
                    emit(s, max(e, s + 1))
                    s = max(e, s + 1)
                return
            lv = levels[level]
            cand = lv[bisect_right(lv, i) : bisect_left(lv, j)]
            if not cand:
                pack(i, j, level + 1)
                return
            cand.append(j)
            s = i
            k = 0
            while s < j:
                tok, ch = budget.now()
                # The furthest candidate boundary that still fits (counts only grow).
                hi = k
                while (
                    hi < len(cand)
                    and cum[cand[hi]] - cum[s] <= tok
                    and ends[cand[hi] - 1] - starts[s] <= ch
                ):
                    hi += 1
                if hi == k:  # the next segment alone is too big: go finer
                    pack(s, cand[k], level + 1)
                    s = cand[k]
                    k += 1
                else:
                    emit(s, cand[hi - 1])
                    s = cand[hi - 1]
                    k = hi

        bounds = [0, *hard, n]
        for a, b in pairwise(bounds):
            if a < b:
                pack(a, b, 0)
        # Overlap: start each later range a little earlier, at a sentence/line start when
        # one is near, never reaching back over the previous range's start or a hard cut.
        soft = sorted(set(levels[0]) | set(levels[1]) | set(levels[2]))
        newlines = [m.start() for m in re.finditer("\n", text)] if u.line_start is not None else []
        parts: list[_Part] = []
        prev_start = -1
        for s, e in out:
            o = s
            if self.overlap_tokens and prev_start >= 0:
                lo = bisect_left(cum, cum[s] - self.overlap_tokens, prev_start + 1, s + 1)
                lo = max(
                    lo,
                    prev_start + 1,
                    hard[bisect_right(hard, s) - 1] if hard and hard[0] <= s else 0,
                )
                while lo < s and starts[s] - starts[lo] > self.max_chars // 8:
                    lo += 1
                nice = soft[bisect_left(soft, lo) : bisect_left(soft, s)]
                o = nice[0] if nice else lo
            prev_start = s
            parts.append(self._range_part(u, text, starts, ends, newlines, o, e, cum[e] - cum[o]))
        return parts, fresh

    def _cut_giants(
        self,
        text: str,
        starts: list[int],
        ends: list[int],
        counts: list[int],
        limit_t: int,
        limit_c: int,
    ) -> tuple[list[int], list[int], list[int], list[int]]:
        """Replace words over the limits by pieces; also return the piece boundaries."""
        ns: list[int] = []
        ne: list[int] = []
        nc: list[int] = []
        hard: list[int] = []
        for s, e, c in zip(starts, ends, counts, strict=True):
            if c <= limit_t and e - s <= limit_c:
                ns.append(s)
                ne.append(e)
                nc.append(c)
                continue
            for i, (a, b, got) in enumerate(self._cut_word(text, s, e, c, limit_t, limit_c)):
                if i:
                    hard.append(len(ns))
                ns.append(a)
                ne.append(b)
                nc.append(got)
        return ns, ne, nc, hard

    def _cut_word(
        self, text: str, s: int, e: int, count: int, limit_t: int, limit_c: int
    ) -> list[tuple[int, int, int]]:
        """Pieces (start, end, count) of one giant word, each within the limits."""
        # Cut at the word's own average density, count all pieces in one batch (repeated
        # pieces, as in a line of one emoji, are counted once), and re-cut the few pieces
        # denser than average.
        guess = max(1, min(limit_c, limit_t * (e - s) // max(count, 1)))
        spans = [(a, min(a + guess, e)) for a in range(s, e, guess)]
        found = self._counter.count_new({text[a:b] for a, b in spans})
        out: list[tuple[int, int, int]] = []
        for a, b in spans:
            got = found[text[a:b]]
            if got <= limit_t:
                out.append((a, b, got))
                continue
            pos = a
            while pos < b:
                size = b - pos
                while True:
                    piece = text[pos : pos + size]
                    got = self._counter.count_new([piece])[piece]
                    if got <= limit_t or size == 1:
                        break
                    size = max(1, min(size - 1, size * limit_t // max(got, 1)))
                out.append((pos, pos + size, got))
                pos += size
        return out

    @staticmethod
    def _range_part(
        u: _Unit,
        text: str,
        starts: list[int],
        ends: list[int],
        newlines: list[int],
        s: int,
        e: int,
        tokens: int,
    ) -> _Part:
        a = starts[s]
        line_begin = text.rfind("\n", ends[s - 1] if s else 0, a) + 1
        if line_begin > 0 or (s == 0 and not text[:a].strip()):
            a = line_begin if line_begin > 0 else 0  # keep the first line's indentation
        b = ends[e - 1]
        line_start = line_end = None
        if u.line_start is not None:
            line_start = u.line_start + bisect_left(newlines, starts[s])
            line_end = u.line_start + bisect_left(newlines, b)
        share = u.link_chars / len(text) if text else 0.0
        return _Part(text[a:b], tokens, False, line_start, line_end, round(share * (b - a)))

    def _finish(
        self,
        drafts: list[_Draft],
        full: Callable[[tuple[str, ...]], tuple[str, ...]],
        prefix: Callable[[tuple[str, ...]], tuple[str, int]],
        title: str = "",
    ) -> list[Chunk]:
        chunks: list[Chunk] = []
        for d in drafts:
            if not d.parts:
                continue
            text = "\n\n".join(p.text for p in d.parts)
            # The headings a chunk starts with are already in its text: the prefix then
            # names only the headings around them.
            path = full(d.path)
            leading = set()
            for p in d.parts:
                if not p.heading:
                    break
                leading.add(" ".join(p.text.split()))
            shown = tuple(h for h in path if h not in leading) if leading else path
            pre, pre_tokens = prefix(shown) if shown else ("", 0)
            if pre_tokens > prefix(path)[1]:  # shortening from the front kept more titles
                pre, pre_tokens = prefix(path)
            firsts = [p.line_start for p in d.parts if p.line_start is not None]
            lasts = [p.line_end or p.line_start for p in d.parts if p.line_start is not None]
            chunks.append(
                Chunk(
                    index=len(chunks),
                    text=text,
                    embed_text=pre + text,
                    heading_path=d.path,
                    page=d.page,
                    line_start=min(firsts) if firsts else None,
                    line_end=max(x for x in lasts if x is not None) if firsts else None,
                    token_count=pre_tokens + d.tokens,
                    title=title,
                    link_share=round(
                        min(1.0, sum(p.link_chars for p in d.parts) / max(1, len(text))), 3
                    ),
                )
            )
        return chunks


def _norm_title(text: str) -> str:
    return " ".join(text.split()).casefold()


def _same_title(heading: str, title: str) -> bool:
    """Whether a heading already names the document (the title may add a site suffix)."""
    h, t = _norm_title(heading), _norm_title(title)
    return bool(h) and (t.startswith(h) or h.startswith(t))


def document_title(doc: LoadedDocument) -> str:
    """The document's title, shortened to 120 characters.

    The format's own (HTML ``<title>``), else a top-level heading among its first blocks
    when it is the document's only one (several are chapters, none of which names the
    whole document).

    Args:
        doc: A whole loaded document (a window of one would find a chapter's heading).

    Returns:
        The title, or an empty string.
    """
    title = " ".join((getattr(doc, "title", "") or "").split())
    if not title:
        tops = [b for b in doc.blocks if b.kind == "heading" and b.level <= 1]
        if len(tops) == 1 and any(b is tops[0] for b in doc.blocks[:3]):
            title = " ".join(tops[0].text.split())
    if len(title) > 120:
        title = title[:120].rsplit(" ", 1)[0] + "…"
    return title
