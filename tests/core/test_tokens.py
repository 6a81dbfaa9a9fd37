"""Token estimates of whole requests (issue 13).

Exact for OpenAI models, calibrated "≈" for Claude, labelled rough estimates offline, incremental
while a person types.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import tiktoken

from parley.core.providers.base import ChatRequest, Message, ToolCall, ToolSpec
from parley.core.tokens import (
    CHUNKED_DRAFT_CHARS,
    Calibration,
    TokenCounter,
    _line_chunks,
    calibrate,
    count_tokens,
    encoding_name_for,
)

REPO = Path(__file__).resolve().parents[2]

SAMPLES = [
    "Hello, world!\n\nA second paragraph.\n  indented line\n\tTabbed\n",
    "def f(x):\n    return x + 1\n\n\nclass A:\n    pass\n",
    "numbers 1234567 and 3.14159\nend.\n\n\n   \n trailing\n",
    "CJK 漢字かな交じり文\nEmoji 👩‍💻 done\n'quoted' text's end\n",
    "punctuation!!!\n???\n...\n--- rule ---\n* item\n- item\n1. item\n",
    "line\r\nwindows\r\nline endings\r\n",
]


def test_encodings_per_model() -> None:
    assert encoding_name_for("gpt-4o-mini") == "o200k_base"
    assert encoding_name_for("gpt-5.5") == "o200k_base"
    assert encoding_name_for("o3") == "o200k_base"
    assert encoding_name_for("gpt-4-turbo") == "cl100k_base"
    assert encoding_name_for("openai/gpt-4o-mini") == "o200k_base"  # OpenRouter's naming
    assert encoding_name_for("claude-sonnet-4-6") is None
    assert count_tokens("hello world", "gpt-4o") == (2, True)
    n, exact = count_tokens("hello world", "claude-haiku-4-5")
    assert n > 0 and not exact


@pytest.mark.parametrize("name", ["o200k_base", "cl100k_base"])
def test_line_chunks_add_up_to_the_whole_exactly(name: str) -> None:
    enc = tiktoken.get_encoding(name)
    for text in [*SAMPLES, "".join(SAMPLES) * 3]:
        pieces = _line_chunks(text)
        assert "".join(pieces) == text
        whole = len(enc.encode_ordinary(text))
        assert sum(len(enc.encode_ordinary(p)) for p in pieces) == whole, text


def chat(n_turns: int, *, words: int = 40) -> tuple[Message, ...]:
    out: list[Message] = []
    for i in range(n_turns):
        out.append(Message("user", f"Question {i}: " + "alpha beta gamma " * words))
        out.append(Message("assistant", f"Answer {i}. " + "delta epsilon " * words))
    return tuple(out)


def test_exact_request_count_follows_the_chat_format() -> None:
    enc = tiktoken.get_encoding("o200k_base")
    req = ChatRequest("gpt-4o", (Message("user", "Hi there"),), system="Be brief.")
    est = TokenCounter("gpt-4o").estimate(req)
    expected = (3 + 1 + len(enc.encode("Be brief."))) + (3 + 1 + len(enc.encode("Hi there"))) + 3
    assert est.exact and est.input_tokens == expected and est.label == f"{expected:,}"
    assert est.method == "o200k_base" and "o200k_base" in est.note


def test_tools_and_tool_calls_are_counted() -> None:
    tool = ToolSpec(
        "read_file",
        "Read a file.",
        {
            "type": "object",
            "properties": {
                "path": {"type": "string", "description": "Relative path."},
                "mode": {"type": "string", "enum": ["text", "bytes"]},
            },
        },
    )
    c = TokenCounter("gpt-4o")
    plain = ChatRequest("gpt-4o", (Message("user", "go"),))
    with_tools = ChatRequest("gpt-4o", plain.messages, tools=(tool,))
    assert c.estimate(with_tools).input_tokens > c.estimate(plain).input_tokens + 10
    call = Message("assistant", "", tool_calls=(ToolCall("c1", "read_file", '{"path":"a"}'),))
    result = Message("tool", "contents", tool_call_id="c1", name="read_file")
    longer = ChatRequest("gpt-4o", (*plain.messages, call, result))
    assert c.estimate(longer).input_tokens > c.estimate(plain).input_tokens


def test_claude_is_an_estimate_calibrated_on_past_usage() -> None:
    req = ChatRequest("claude-haiku-4-5", chat(3))
    raw = TokenCounter("claude-haiku-4-5").estimate(req)
    assert not raw.exact and raw.label.startswith("≈ ")
    assert "not yet calibrated" in raw.note and raw.factor == 1.0
    cal = calibrate([(1000, 1200), (2000, 2400), (0, 50)])  # a zero basis is skipped
    assert cal == Calibration(pytest.approx(1.2), 2)  # type: ignore[arg-type]
    calibrated = TokenCounter("claude-haiku-4-5", calibration=cal).estimate(req)
    assert calibrated.input_tokens == round(raw.basis_tokens * 1.2)
    assert calibrated.basis_tokens == raw.basis_tokens
    assert "calibrated on its last 2" in calibrated.note
    # nonsense ratios (a broken gateway) are clamped
    assert calibrate([(100, 100_000)]).factor == 3.0  # type: ignore[union-attr]
    assert calibrate([]) is None
    # an exact model ignores calibration
    assert TokenCounter("gpt-4o", calibration=cal).estimate(req).factor == 1.0


def test_counts_are_cached_per_message() -> None:
    c = TokenCounter("gpt-4o")
    history = chat(50)
    first = c.estimate(ChatRequest("gpt-4o", history))
    assert len(c._cache) >= len(history)
    # a rebuilt history (new objects, same text) hits the cache and gives the same count
    rebuilt = tuple(Message(m.role, str(m.content)) for m in history)
    before = dict(c._cache)
    assert c.estimate(ChatRequest("gpt-4o", rebuilt)) == first
    assert c._cache == before


@pytest.mark.parametrize("model", ["gpt-4o", "claude-sonnet-4-6"])
@pytest.mark.parametrize("size", [30, CHUNKED_DRAFT_CHARS * 3])
def test_draft_updates_match_a_full_count(model: str, size: int) -> None:
    counter = TokenCounter(model)
    base = ChatRequest(model, chat(20), system="You are helpful.")
    draft = counter.draft(base)
    text = ("Some draft text, line after line.\n" * (size // 34 + 1))[:size]
    for edit in (text, text + "x", "Inserted!\n" + text, text[: size // 2]):
        full = counter.estimate(
            ChatRequest(model, (*base.messages, Message("user", edit)), base.system)
        )
        assert draft.update(edit) == full


def run_offline(code: str, tmp_path: Path) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter with no tokenizer files and no network."""
    empty = tmp_path / "no-tiktoken"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PARLEY_ASSETS", "TIKTOKEN"))}
    env.update(
        TIKTOKEN_CACHE_DIR=str(empty),
        HTTPS_PROXY="http://127.0.0.1:9",  # refused at once: the download fails, fast
        HTTP_PROXY="http://127.0.0.1:9",
        PYTHONPATH=str(REPO),
    )
    p = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert p.returncode == 0, p.stderr
    return dict(json.loads(p.stdout.strip().splitlines()[-1]))


def test_offline_without_bpe_files_is_a_labelled_estimate(tmp_path: Path) -> None:
    out = run_offline(
        "import json, time\n"
        "from parley.core.providers.base import ChatRequest, Message\n"
        "from parley.core.tokens import TokenCounter, count_tokens\n"
        "c = TokenCounter('gpt-4o')\n"
        "e = c.estimate(ChatRequest('gpt-4o', (Message('user', 'x' * 3600),)))\n"
        "t = time.perf_counter(); n = count_tokens('hello world', 'gpt-4o')\n"
        "again_ms = (time.perf_counter() - t) * 1000\n"
        "print(json.dumps({'n': e.input_tokens, 'exact': e.exact, 'method': e.method,\n"
        "  'label': e.label, 'note': e.note, 'count': n, 'again_ms': again_ms}))\n",
        tmp_path,
    )
    assert out["exact"] is False and out["method"] == "chars"
    assert out["label"].startswith("≈") and "tokenizer files are missing" in out["note"]
    assert 1000 <= out["n"] <= 1020  # 3,600 characters at 3.6 per token, plus the overhead
    assert out["count"] == [3, False]
    assert out["again_ms"] < 50  # the failed load is remembered, not retried per call
