"""The context-window policy (issue 13).

Oldest turns go first, tool pairs stay together, the newest turn alone either fits or is refused
before sending; providers' own context-length errors read the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from parley.core.chat import TurnFinished
from parley.core.context import fit, from_provider_message, too_long, turns
from parley.core.errors import ContextTooLong
from parley.core.paths import default_paths
from parley.core.providers.anthropic import AnthropicProvider
from parley.core.providers.base import ChatRequest, Message, ToolCall
from parley.core.providers.openai import OpenAIProvider
from parley.core.secrets import MemorySecretStore, Secrets
from parley.core.services import Services, build_services
from parley.core.settings import ProviderSettings, Settings
from parley.core.tokens import TokenCounter
from tests.core.providers.streams import drain, req
from tests.fakes.script import HTTPError


def words(n: int, tag: str = "w") -> str:
    return " ".join(f"{tag}{i % 50}" for i in range(n))


def tool_history(n_turns: int) -> tuple[Message, ...]:
    """Turns that each call a tool (call + result) before answering."""
    out: list[Message] = []
    for i in range(n_turns):
        out.append(Message("user", f"q{i} " + words(200)))
        call = ToolCall(f"call_{i}", "read_file", '{"path": "notes.txt"}')
        out.append(Message("assistant", "Let me look.", tool_calls=(call,)))
        out.append(Message("tool", words(300, "r"), tool_call_id=f"call_{i}", name="read_file"))
        out.append(Message("assistant", f"a{i} " + words(100)))
    return tuple(out)


def assert_pairs_whole(messages: tuple[Message, ...]) -> None:
    calls = {c.id for m in messages for c in m.tool_calls}
    results = {m.tool_call_id for m in messages if m.role == "tool"}
    assert calls == results, (calls, results)


def test_turns_start_at_user_messages() -> None:
    ms = tool_history(2)
    assert turns(ms) == [(0, 4), (4, 8)]
    greeting = (Message("assistant", "Hello!"), *ms)
    assert turns(greeting) == [(0, 1), (1, 5), (5, 9)]


def test_a_request_that_fits_is_sent_as_it_is() -> None:
    c = TokenCounter("gpt-4o")
    r = ChatRequest("gpt-4o", tool_history(2), system="sys")
    f = fit(r, c, window=128_000, reserved=8192)
    assert f.request is r and f.note is None and f.dropped_messages == 0
    assert fit(r, c, window=None, reserved=0).request is r  # unknown window: as it is


@pytest.mark.parametrize("window", [3000, 5000, 9000])
def test_trimming_drops_oldest_turns_and_never_splits_a_tool_pair(window: int) -> None:
    c = TokenCounter("gpt-4o")
    history = (*tool_history(12), Message("user", "newest question " + words(50)))
    r = ChatRequest("gpt-4o", history, system="You are careful.")
    reserved = 1000
    f = fit(r, c, window=window, reserved=reserved)
    kept = f.request.messages
    assert f.estimate.input_tokens <= window - reserved
    assert c.estimate(f.request).input_tokens == f.estimate.input_tokens
    assert kept[-1] == history[-1] and f.request.system == "You are careful."
    assert kept == history[-len(kept) :]  # a suffix: the oldest went first
    assert kept[0].role == "user"  # whole turns
    assert_pairs_whole(kept)
    assert f.dropped_messages == len(history) - len(kept) > 0
    assert f.note is not None and f"{f.dropped_messages} earliest messages" in f.note
    assert f"{window:,}-token context window" in f.note


def test_the_pinned_first_message_stays() -> None:
    c = TokenCounter("gpt-4o")
    brief = Message("user", "PINNED BRIEF " + words(100))
    history = (brief, Message("assistant", "ok " + words(100)), *tool_history(10))
    history = (*history, Message("user", "newest"))
    f = fit(ChatRequest("gpt-4o", history), c, window=4000, reserved=500, pin_first=True)
    kept = f.request.messages
    assert kept[0] == brief and kept[-1] == history[-1]
    assert history[1] not in kept  # the pinned message's answer may go
    assert_pairs_whole(kept)
    assert f.estimate.input_tokens <= 3500 and "pinned" in (f.note or "")


def test_newest_turn_alone_too_long_is_refused_with_numbers() -> None:
    c = TokenCounter("gpt-4o")
    history = (*tool_history(3), Message("user", words(5000)))
    r = ChatRequest("gpt-4o", history)
    with pytest.raises(ContextTooLong) as info:
        fit(r, c, window=4000, reserved=1000)
    msg = info.value.user_message
    needed = c.estimate(ChatRequest("gpt-4o", history[-1:])).input_tokens
    assert f"needs {needed:,} tokens and 3,000 are available" in msg
    assert "4,000 in the window, 1,000 kept for the answer" in msg


def test_provider_messages_read_like_ours() -> None:
    openai_text = (
        "This model's maximum context length is 128000 tokens. However, your messages "
        "resulted in 130412 tokens. Please reduce the length of the messages."
    )
    ours = too_long("gpt-4o", 130_412, 128_000).user_message
    assert from_provider_message("gpt-4o", openai_text).user_message == ours
    anthropic_text = "prompt is too long: 208310 tokens > 200000 maximum"
    assert (
        from_provider_message("claude-x", anthropic_text).user_message
        == too_long("claude-x", 208_310, 200_000).user_message
    )
    assert "too long for m's context window" in from_provider_message("m", "huh").user_message


@pytest.mark.parametrize(
    ("kind", "error", "needed", "window"),
    [
        ("openai", HTTPError(400, code="context_length_exceeded"), 130_412, 128_000),
        (
            "anthropic",
            HTTPError(400, "prompt is too long: 208310 tokens > 200000 maximum"),
            208_310,
            200_000,
        ),
    ],
)
async def test_provider_context_errors_become_context_too_long(
    kind: str, error: HTTPError, needed: int, window: int, fake_llm: Any
) -> None:
    fake_llm.enqueue(error)
    if kind == "openai":
        p: Any = OpenAIProvider(api_key="k", base_url=fake_llm.openai_base_url)
    else:
        p = AnthropicProvider(api_key="k", base_url=fake_llm.anthropic_base_url)
    with pytest.raises(ContextTooLong) as info:
        await drain(p, req(model="m"))
    await p.aclose()
    assert info.value.user_message == too_long("m", needed, window).user_message
    assert len(fake_llm.requests) == 1  # not retried


# ---------------------------------------------------------------- through a real turn


@pytest.fixture
def small_window(fake_llm: Any, parley_home: Path) -> Any:
    """gpt-4o served by the fake, with a 3,000-token window from the user's models.toml."""
    config = parley_home / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "models.toml").write_text(
        '[models."gpt-4o"]\ncontext_window = 3000\nmax_output = 500\n'
    )
    settings = Settings(
        default_provider="openai",
        default_model="gpt-4o",
        providers={"openai": ProviderSettings(base_url=fake_llm.openai_base_url)},
    )
    secrets = Secrets(MemorySecretStore())
    secrets.save("openai", "sk-test")
    svc = build_services(default_paths(), settings, secrets)
    yield svc
    svc.conversations.close()


async def ask(svc: Services, text: str, cid: int | None = None) -> TurnFinished:
    events = [e async for e in svc.chat.send(text, svc.turn_options(), conversation_id=cid)]
    assert isinstance(events[-1], TurnFinished)
    return events[-1]


async def test_a_long_chat_is_trimmed_not_failed(small_window: Services, fake_llm: Any) -> None:
    svc = small_window
    first = await ask(svc, "first " + words(300))
    cid = first.conversation_id
    for i in range(8):
        fin = await ask(svc, f"turn {i} " + words(300), cid)
        assert fin.status == "complete", fin.error
    await svc.providers.aclose()
    sent = fake_llm.requests[-1].json
    # the fake counts the prompt with tiktoken as OpenAI does: it fits the window
    reported = svc.conversations.branch(cid)[-1].input_tokens
    assert reported is not None and reported <= 3000 - 500
    assert fin.notes and "earliest messages" in fin.notes[0]
    assert sent["messages"][-1]["content"].startswith("turn 7 ")
    assert all(not m["content"].startswith("first ") for m in sent["messages"])
    stored = svc.conversations.message(fin.message_id)
    assert stored is not None and stored.meta["context_notes"] == list(fin.notes)


async def test_a_message_too_long_for_the_window_is_refused_before_sending(
    small_window: Services, fake_llm: Any
) -> None:
    fin = await ask(small_window, words(4000))
    await small_window.providers.aclose()
    assert fin.status == "error" and isinstance(fin.error, ContextTooLong)
    assert "needs" in fin.error.user_message and "2,500 are available" in fin.error.user_message
    assert fake_llm.requests == []  # nothing was sent
    assert small_window.conversations.branch(fin.conversation_id)[0].content == words(4000)
