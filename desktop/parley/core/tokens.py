"""Token counts: of a text, and of a whole request as it will be sent (issue 13).

OpenAI-family models are counted with their own tiktoken encoding (``o200k_base`` or
``cl100k_base``) plus the chat format's fixed overhead per message; such counts are
*exact* (as exact as the published counting rules: the tool-schema rendering is OpenAI's
own). Claude and unknown models have no public tokenizer: their requests are counted with
``o200k_base`` as a *basis* and multiplied by a factor calibrated on the provider-reported
usage of that model's past requests (kept in the ledger, see :mod:`parley.core.store.ledger`);
such estimates are shown with "≈". Without the BPE files (offline, nothing bundled) the basis
is a character count: a labelled rough estimate, never a crash.

tiktoken downloads its BPE files on first use; offline (and in the packaged app) they come
from ``<assets>/tiktoken`` through ``TIKTOKEN_CACHE_DIR``, set before the first encoding loads.
An encoding that cannot be loaded is remembered for the session, so an offline machine does
not retry the download on every keystroke.

Counting is incremental: a :class:`TokenCounter` caches each message's count (a conversation
is counted once, then only what changed), and a :class:`DraftEstimate` recounts only the
message being typed, and of a long draft only the lines that changed.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the window imports this module before its first paint: keep it light
    from parley.core.providers.base import ChatRequest, Message, ToolSpec

_lock = threading.Lock()
_encodings: dict[str, Any] = {}
_unavailable: set[str] = set()

CHARS_PER_TOKEN_ESTIMATE = 3.6
"""Characters per token when no tokenizer file is available (English prose and code)."""

MESSAGE_OVERHEAD = 3
"""Tokens the chat format adds around every message (``<|start|>role ... <|end|>``)."""
NAME_OVERHEAD = 1
"""Extra token for a message that carries a ``name``."""
REPLY_PRIMING = 3
"""Tokens that open the model's reply (``<|start|>assistant<|message|>``)."""
TOOL_CALL_OVERHEAD = 4
"""Tokens around one tool call the model made (recipient and delimiters)."""
TOOLS_OVERHEAD = 12
"""Tokens of the tool section's frame (the namespace the schemas are rendered into)."""
TOOL_OVERHEAD = 7
"""Tokens around one tool definition."""
PROPERTY_OVERHEAD = 3
"""Tokens around one parameter of a tool."""

_SHAPE_KEYS = ("enum", "items", "properties", "anyOf", "oneOf", "const")
"""Schema keywords of a tool parameter that change how its type is rendered."""

CHUNKED_DRAFT_CHARS = 4000
"""Drafts longer than this are counted line by line, each line's count cached."""

_CACHE_LIMIT = 20_000
"""Cached per-message counts kept per counter before the cache starts over."""


def configure(assets_dir: Path | None) -> None:
    """Point tiktoken at the offline BPE files when Parley has an assets folder."""
    if assets_dir is not None and (assets_dir / "tiktoken").is_dir():
        os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(assets_dir / "tiktoken"))


def encoding(name: str) -> Any | None:
    """The tiktoken encoding ``name``, or None when it cannot be loaded (remembered)."""
    enc = _encodings.get(name)
    if enc is not None or name in _unavailable:
        return enc
    with _lock:
        if name in _encodings or name in _unavailable:
            return _encodings.get(name)
        try:
            import tiktoken

            enc = tiktoken.get_encoding(name)
        except Exception:  # no BPE file offline, a broken cache, no tiktoken: estimate instead
            _unavailable.add(name)
            return None
        _encodings[name] = enc
        return enc


def encoding_name_for(model: str) -> str | None:
    """Tiktoken encoding of an OpenAI model, None for others."""
    m = model.lower().rsplit("/", 1)[-1]  # "openai/gpt-4o-mini" (OpenRouter) counts as gpt-4o
    if m.startswith(("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt")):
        return "o200k_base"
    if m.startswith(("gpt-4", "gpt-3.5")):
        return "cl100k_base"
    return None


def _raw_count(enc: Any | None, text: str) -> int:
    if not text:
        return 0
    if enc is None:
        return max(1, round(len(text) / CHARS_PER_TOKEN_ESTIMATE))
    return len(enc.encode_ordinary(text))


def count_tokens(text: str, model: str = "gpt-4o") -> tuple[int, bool]:
    """Tokens in ``text`` for ``model`` and whether the count is exact (not an estimate)."""
    name = encoding_name_for(model)
    enc = encoding(name) if name is not None else None
    if enc is not None:
        return _raw_count(enc, text), True
    return _raw_count(None, text), False


# ---------------------------------------------------------------- estimates


@dataclass(frozen=True, slots=True)
class Calibration:
    """How a model's reported input tokens compare with our basis count of the same requests.

    ``factor`` = reported / basis over the model's recent requests (``samples`` of them).
    """

    factor: float
    samples: int


@dataclass(frozen=True, slots=True)
class Estimate:
    """The token count of a request before it is sent.

    Attributes:
        input_tokens: The estimate shown to people (calibrated when not exact).
        exact: Counted with the model's own tokenizer.
        method: What counted it: an encoding name, or ``chars`` (no tokenizer files).
        basis_tokens: The count before calibration (kept in the ledger to calibrate).
        factor: The calibration factor applied (1.0: none).
        note: One line for a tooltip: how the number was made.
    """

    input_tokens: int
    exact: bool
    method: str
    basis_tokens: int
    factor: float = 1.0
    note: str = ""

    @property
    def label(self) -> str:
        """``"1,234"`` when exact, ``"≈ 1,234"`` otherwise."""
        return f"{self.input_tokens:,}" if self.exact else f"≈ {self.input_tokens:,}"


MIN_FACTOR, MAX_FACTOR = 0.5, 3.0
"""Calibration factors outside this range are taken as noise (a bad gateway, a bug)."""


class TokenCounter:
    """Counts requests for one model; per-message counts are cached.

    Thread-safe enough for one writer at a time per counter: the cache is a plain dict (a
    lost update costs one recount). Count in a worker thread for long conversations:
    tiktoken releases the GIL while it encodes.

    Args:
        model: The model id (decides the encoding).
        calibration: For models without a public tokenizer: the factor from past usage.
    """

    def __init__(self, model: str, *, calibration: Calibration | None = None) -> None:
        self.model = model
        name = encoding_name_for(model)
        own = encoding(name) if name is not None else None
        self.exact = own is not None
        if own is not None:
            assert name is not None
            self.method, self._enc = name, own
        else:
            basis = encoding("o200k_base")
            self.method, self._enc = ("o200k_base", basis) if basis is not None else ("chars", None)
        self.calibration = None if self.exact else calibration
        self._cache: dict[Any, int] = {}

    # ---- pieces
    def count(self, text: str) -> int:
        """Tokens of plain text (no chat overhead)."""
        return _raw_count(self._enc, text)

    def _cached(self, key: Any, fn: Any) -> int:
        n = self._cache.get(key)
        if n is None:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            n = self._cache[key] = fn()
        return n

    def message(self, m: Message) -> int:
        """Tokens one message adds to a request (content, tool calls, overhead); cached."""
        return self._cached(m, lambda: self._message(m))

    def _message(self, m: Message) -> int:
        n = MESSAGE_OVERHEAD + self.count(m.role) + self.count(m.content)
        if m.name:
            n += NAME_OVERHEAD + self.count(m.name)
        for call in m.tool_calls:
            n += TOOL_CALL_OVERHEAD + self.count(call.name) + self.count(call.arguments)
        return n

    def system(self, text: str | None) -> int:
        """Tokens of the system prompt as a message; cached."""
        if not text:
            return 0
        return self._cached(("system", text), lambda: MESSAGE_OVERHEAD + 1 + self.count(text))

    def tools(self, tools: Sequence[ToolSpec]) -> int:
        """Tokens the tool schemas add; cached."""
        if not tools:
            return 0
        key = json.dumps(
            [(t.name, t.description, t.parameters) for t in tools], sort_keys=True, default=str
        )  # ToolSpec holds a dict: not hashable itself
        return self._cached(("tools", key), lambda: self._tools(tools))

    def _tools(self, tools: Iterable[ToolSpec]) -> int:
        n = TOOLS_OVERHEAD
        for t in tools:
            n += TOOL_OVERHEAD + self.count(f"{t.name}:{t.description.rstrip('.')}")
            props = t.parameters.get("properties") or {}
            for key, prop in props.items():
                n += PROPERTY_OVERHEAD
                if not isinstance(prop, dict):
                    n += self.count(str(key))
                    continue
                desc = str(prop.get("description") or "").rstrip(".")
                n += self.count(f"{key}:{prop.get('type', 'any')}:{desc}")
                # Enums, nested objects, arrays and unions shape the rendered type; defaults
                # and bounds (minimum, format...) are not rendered.
                rest = {k: v for k, v in prop.items() if k in _SHAPE_KEYS}
                if rest:
                    n += self.count(json.dumps(rest, separators=(",", ":")))
        return n

    # ---- whole requests
    def basis(self, request: ChatRequest) -> int:
        """The uncalibrated token count of ``request``."""
        return (
            self.system(request.system)
            + self.tools(request.tools)
            + sum(self.message(m) for m in request.messages)
            + REPLY_PRIMING
        )

    def finish(self, basis: int) -> Estimate:
        """Turn a basis count into the :class:`Estimate` shown to people."""
        if self.exact:
            return Estimate(basis, True, self.method, basis, 1.0, f"counted with {self.method}")
        cal = self.calibration
        if cal is not None:
            factor = cal.factor
            note = (
                f"≈ estimate for {self.model}, calibrated on its last {cal.samples} "
                "reported request(s)"
            )
        else:
            factor = 1.0
            note = f"≈ estimate: {self.model} has no public tokenizer; not yet calibrated"
        if self.method == "chars":
            note += " (rough: the tokenizer files are missing)"
        return Estimate(round(basis * factor), False, self.method, basis, factor, note)

    def estimate(self, request: ChatRequest) -> Estimate:
        """The token estimate of ``request`` as it will be sent."""
        return self.finish(self.basis(request))

    def draft(self, base: ChatRequest) -> DraftEstimate:
        """An incremental estimate of ``base`` plus a user message being typed."""
        return DraftEstimate(self, base)


def calibrate(pairs: Iterable[tuple[int, int]]) -> Calibration | None:
    """A calibration from (basis, reported) token pairs of past requests; None without any.

    The factor is the ratio of sums (long requests weigh more, as they should: they cost
    more), kept within :data:`MIN_FACTOR`..:data:`MAX_FACTOR`.
    """
    basis = reported = samples = 0
    for b, r in pairs:
        if b > 0 and r > 0:
            basis += b
            reported += r
            samples += 1
    if not samples:
        return None
    return Calibration(min(MAX_FACTOR, max(MIN_FACTOR, reported / basis)), samples)


def _line_chunks(text: str) -> list[str]:
    """``text`` cut after a newline that is followed by a non-space character.

    tiktoken's pre-tokenizers (o200k_base, cl100k_base) never join text across such a
    point, so the counts of the pieces add up to the count of the whole, exactly.
    """
    out: list[str] = []
    start = 0
    pos = text.find("\n")
    while pos != -1:
        nxt = pos + 1
        if nxt < len(text) and not text[nxt].isspace():
            out.append(text[start:nxt])
            start = nxt
        pos = text.find("\n", nxt)
    out.append(text[start:])
    return out


class DraftEstimate:
    """The estimate of a request while its last user message is being typed.

    The fixed part (system prompt, history, tools, attachments already added) is counted
    once; :meth:`update` counts only the draft, and of a long draft only the lines that
    changed since the last call.
    """

    def __init__(self, counter: TokenCounter, base: ChatRequest) -> None:
        self.counter = counter
        self.base_tokens = counter.basis(base)
        self._lines: dict[str, int] = {}

    def update(self, draft: str) -> Estimate:
        """The estimate with ``draft`` as the new user message."""
        c = self.counter
        if len(draft) <= CHUNKED_DRAFT_CHARS:
            body = c.count(draft)
        else:
            seen: dict[str, int] = {}
            body = 0
            for piece in _line_chunks(draft):
                n = self._lines.get(piece)
                if n is None:
                    n = c.count(piece)
                seen[piece] = n
                body += n
            self._lines = seen  # keep only the current draft's lines
        n = self.base_tokens + MESSAGE_OVERHEAD + c.count("user") + body
        return c.finish(n)
