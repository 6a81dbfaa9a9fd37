"""ChatSession: every turn is saved, streamed text is flushed, failures keep what arrived."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from parley.core.chat import OpChanges, TurnFinished, TurnStarted
from parley.core.errors import ConfigError
from parley.core.paths import default_paths
from parley.core.providers.base import TextDelta
from parley.core.secrets import MemorySecretStore, Secrets
from parley.core.services import Services, build_services
from parley.core.settings import ProviderSettings, Settings
from parley.core.store.conversations import ConversationStore
from tests.fakes.script import Drop, HTTPError, Text


@pytest.fixture
def services(fake_llm: Any) -> Any:
    settings = Settings(
        default_provider="openai-compatible",
        providers={
            "openai-compatible": ProviderSettings(
                base_url=fake_llm.openai_base_url, default_model="fake-model"
            )
        },
    )
    svc = build_services(default_paths(), settings, Secrets(MemorySecretStore()))
    yield svc
    svc.conversations.close()


async def turn(svc: Services, text: str, **kw: Any) -> tuple[TurnFinished, list[Any]]:
    events = [ev async for ev in svc.chat.send(text, svc.turn_options(), **kw)]
    assert isinstance(events[-1], TurnFinished)
    return events[-1], events


async def test_turn_is_saved_with_usage_and_free_local_cost(services: Services) -> None:
    fin, events = await turn(services, "hello")
    await services.providers.aclose()
    assert isinstance(events[0], TurnStarted)
    assert fin.status == "complete" and fin.text == "You said: hello"
    assert fin.cost_usd == 0.0  # a server on loopback costs nothing
    branch = services.conversations.branch(fin.conversation_id)
    assert [(m.role, m.content, m.status) for m in branch] == [
        ("user", "hello", "complete"),
        ("assistant", "You said: hello", "complete"),
    ]
    assert branch[1].output_tokens and branch[1].model == "fake-model"


async def test_empty_and_huge_questions_are_refused_before_saving(services: Services) -> None:
    for bad in ("", "   \n"):
        with pytest.raises(ConfigError, match="empty"):
            await turn(services, bad)
    with pytest.raises(ConfigError, match="too long"):
        await turn(services, "x" * 2_000_001)
    assert services.conversations.list() == []


async def test_one_megabyte_question_goes_through(services: Services, fake_llm: Any) -> None:
    fake_llm.enqueue(Text("got it"))
    fin, _ = await turn(services, "word " * 200_000)
    await services.providers.aclose()
    assert fin.status == "complete"
    assert len(fake_llm.requests[-1].json["messages"][-1]["content"]) == 1_000_000


async def test_streamed_text_is_flushed_while_streaming(services: Services, fake_llm: Any) -> None:
    fake_llm.enqueue(Text("abcdefghij" * 60, chunk_chars=10, delay=0.02))  # ~1.2 s
    reader = ConversationStore(
        services.paths.db_file
    )  # a second connection, like a kill -9 survivor
    seen: list[int] = []
    msg_id = None
    t_last = None
    async for ev in services.chat.send("go", services.turn_options()):
        if isinstance(ev, TurnStarted):
            msg_id = ev.assistant_message_id
        if isinstance(ev, TextDelta) and msg_id is not None:
            now = time.monotonic()
            if t_last is None or now - t_last > 0.1:
                t_last = now
                seen.append(len(reader.message(msg_id).content))  # type: ignore[union-attr]
    await services.providers.aclose()
    reader.close()
    # the stored text grew while the answer was still streaming
    assert any(0 < n < 600 for n in seen), seen


async def test_drop_keeps_partial_marked(services: Services, fake_llm: Any) -> None:
    fake_llm.enqueue(Drop("The beginning of"))
    fin, _ = await turn(services, "tell me")
    await services.providers.aclose()
    assert fin.status == "partial" and fin.text == "The beginning of"
    assert fin.error is not None and "dropped" in fin.error.user_message
    stored = services.conversations.message(fin.message_id)
    assert (
        stored is not None and stored.status == "partial" and stored.content == "The beginning of"
    )
    assert stored.error == fin.error.user_message


async def test_error_before_text_keeps_the_question(services: Services, fake_llm: Any) -> None:
    fake_llm.enqueue(HTTPError(401))
    fin, _ = await turn(services, "my precious question")
    await services.providers.aclose()
    assert fin.status == "error" and fin.attempts == 1
    branch = services.conversations.branch(fin.conversation_id)
    assert branch[0].content == "my precious question"
    assert branch[1].status == "error"


async def test_cancel_saves_partial_as_cancelled(services: Services, fake_llm: Any) -> None:
    fake_llm.enqueue(Text("word " * 400, chunk_chars=5, delay=0.01))
    got: list[str] = []
    started: list[TurnStarted] = []

    async def consume() -> None:
        async for ev in services.chat.send("long please", services.turn_options()):
            if isinstance(ev, TurnStarted):
                started.append(ev)
            if isinstance(ev, TextDelta):
                got.append(ev.text)

    task = asyncio.create_task(consume())
    while len(got) < 5:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await services.providers.aclose()
    stored = services.conversations.message(started[0].assistant_message_id)
    assert stored is not None and stored.status == "cancelled"
    assert stored.content and stored.content == "".join(got)[: len(stored.content)]


async def test_regenerate_and_edit_make_branches(services: Services, fake_llm: Any) -> None:
    fin, _ = await turn(services, "first question")
    cid = fin.conversation_id
    fake_llm.enqueue(Text("second answer"))
    regen = [ev async for ev in services.chat.regenerate(cid, services.turn_options())][-1]
    assert regen.text == "second answer"
    assert len(services.conversations.siblings(regen.message_id)) == 2
    user_id = services.conversations.branch(cid)[0].id
    edited = [
        ev async for ev in services.chat.edit(user_id, "edited question", services.turn_options())
    ][-1]
    await services.providers.aclose()
    assert edited.text == "You said: edited question"
    branch = services.conversations.branch(cid)
    assert [m.content for m in branch] == ["edited question", "You said: edited question"]
    assert len(services.conversations.siblings(branch[0].id)) == 2
    # the follow-up question carries the branch's history to the model
    fake_llm.enqueue(Text("ok"))
    await turn(services, "and then?", conversation_id=cid)
    await services.providers.aclose()
    sent = [m["content"] for m in fake_llm.requests[-1].json["messages"]]
    assert sent == ["edited question", "You said: edited question", "and then?"]


async def test_attachments_travel_with_the_question(services: Services, fake_llm: Any) -> None:
    fake_llm.enqueue(Text("read it"))
    await turn(services, "summarise", attachments=[{"name": "notes.txt", "text": "alpha beta"}])
    await services.providers.aclose()
    content = fake_llm.requests[-1].json["messages"][-1]["content"]
    assert content.startswith("summarise") and 'name="notes.txt"' in content
    assert "alpha beta" in content


def test_unknown_conversation_is_config_error(services: Services) -> None:
    async def go() -> None:
        await turn(services, "x", conversation_id=999)

    with pytest.raises(ConfigError, match="no conversation 999"):
        asyncio.run(go())


def test_paths_are_under_home(services: Services, parley_home: Path) -> None:
    assert services.paths.db_file.is_relative_to(parley_home)


async def test_closing_the_stream_saves_partial_as_cancelled(
    services: Services, fake_llm: Any
) -> None:
    fake_llm.enqueue(Text("word " * 400, chunk_chars=5, delay=0.005))
    gen = services.chat.send("long please", services.turn_options())
    started = None
    n = 0
    async for ev in gen:
        if isinstance(ev, TurnStarted):
            started = ev
        if isinstance(ev, TextDelta):
            n += 1
            if n == 5:
                break
    await gen.aclose()  # the caller walks away instead of cancelling
    await services.providers.aclose()
    assert started is not None
    stored = services.conversations.message(started.assistant_message_id)
    assert stored is not None and stored.status == "cancelled" and stored.content


async def test_edit_keeps_attachments_and_sibling_counts(services: Services, fake_llm: Any) -> None:
    fin, _ = await turn(services, "sum this", attachments=[{"name": "a.txt", "text": "1 2 3"}])
    user_id = services.conversations.branch(fin.conversation_id)[0].id
    fake_llm.enqueue(Text("six"))
    [ev async for ev in services.chat.edit(user_id, "add this", services.turn_options())]
    await services.providers.aclose()
    assert "1 2 3" in fake_llm.requests[-1].json["messages"][-1]["content"]
    counts = services.conversations.sibling_counts(fin.conversation_id)
    branch = services.conversations.branch(fin.conversation_id)
    assert counts[branch[0].id] == (2, 2) and counts[user_id] == (1, 2)
    assert counts[branch[1].id] == (1, 1)


# ---------------------------------------------------------------- conversation operations
async def test_a_turn_stores_the_options_it_ran_with(services: Services) -> None:
    """What ``parley ask`` and the window ask with is remembered by the conversation."""
    options = services.turn_options(use_tools=True)
    fin = [ev async for ev in services.chat.send("hi", options)][-1]
    await services.providers.aclose()
    stored = services.conversations.get(fin.conversation_id)
    assert stored is not None
    assert stored.options == {
        "provider": "openai-compatible",
        "model": "fake-model",
        "use_tools": True,
        "use_knowledge": False,
    }


async def test_operations_run_on_the_writer_and_say_what_changed(
    services: Services, fake_llm: Any
) -> None:
    import threading

    store = services.conversations
    writes: list[str] = []

    def trace(statement: str) -> None:
        if statement.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE")):
            writes.append(threading.current_thread().name)

    fin, _ = await turn(services, "first")
    cid = fin.conversation_id
    fake_llm.enqueue(Text("second"))
    regen = [ev async for ev in services.chat.regenerate(cid, services.turn_options())][-1]
    await services.providers.aclose()
    first_answer = store.siblings(regen.message_id)[0].id
    store.conn.set_trace_callback(trace)
    try:
        chat = services.chat
        renamed = await chat.rename(cid, "  Renamed  ")
        assert (renamed.conversation_id, renamed.listing) == (cid, True)
        assert renamed.conversation is not None and renamed.conversation.title == "Renamed"
        opts = await chat.set_options(cid, model="other-model")
        assert opts.options and opts.conversation is not None
        assert opts.conversation.options["model"] == "other-model"
        prompt = await chat.set_system_prompt(cid, "Be brief.")
        assert prompt.conversation is not None and prompt.conversation.system_prompt == "Be brief."
        # versions: back to the first answer, then rewind to its question
        switched = await chat.switch_version(first_answer)
        assert (switched.conversation_id, switched.branch) == (cid, True)
        assert store.branch(cid)[-1].id == first_answer
        rewound = await chat.rewind_to_question(first_answer)
        assert rewound.branch and store.branch(cid)[-1].role == "user"
        assert await chat.switch_version(10_000) == OpChanges()  # unknown message: no change
        deleted = await chat.delete(cid)
        assert deleted.conversation is not None and deleted.conversation.title == "Renamed"
        assert store.get(cid) is None
        assert (await chat.undelete(cid)).conversation is not None
        await chat.delete(cid)
        assert (await chat.purge_deleted()).count == 1
        assert store.get(cid, include_deleted=True) is None
    finally:
        store.conn.set_trace_callback(None)
    assert writes and set(writes) == {"parley-db_0"}  # one writer thread, nobody else
