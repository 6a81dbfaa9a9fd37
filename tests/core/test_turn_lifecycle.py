"""Every turn ends, and one turn at a time per conversation (issue 11, items 3 and 9).

A turn's answer row starts as "streaming" and must end complete, partial, error or
cancelled whatever happens: a bug below the session, Stop while the row is being written,
Stop while the final write waits its turn. Turns on one conversation queue in the database,
so they are answered in order, in this process or across processes (the multi-process case
runs ``parley ask`` six times at once: tests/core/test_cli_hostile.py).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from parley.core.chat import (
    FLUSH_INTERVAL_S,
    ChatSession,
    TurnFinished,
    TurnOptions,
    TurnQueued,
    TurnStarted,
)
from parley.core.providers.base import ChatRequest, Finished, StreamEvent, TextDelta
from parley.core.store.conversations import (
    ConversationStore,
    StoredMessage,
    owner_alive,
    process_owner,
)
from tests.fakes.script import Text

OPTIONS = TurnOptions(provider="scripted", model="m")


class Scripted:
    """A provider at the edge: streams ``parts``, then raises ``then`` (if any)."""

    name = "scripted"

    def __init__(self, parts: list[str], then: BaseException | None = None) -> None:
        self.parts = parts
        self.then = then

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        for p in self.parts:
            await asyncio.sleep(0)
            yield TextDelta(p)
        if self.then is not None:
            raise self.then
        yield Finished("stop", "stop")

    async def list_models(self) -> list[Any]:
        return []

    async def aclose(self) -> None:
        pass


def session(
    store: ConversationStore, provider: Any, writer: ThreadPoolExecutor | None = None
) -> ChatSession:
    return ChatSession(
        store,
        provider_for=lambda _p, _m: provider,
        cost_for=lambda *_: None,
        writer=writer,
    )


@pytest.fixture
def store(parley_home: Path) -> Any:
    s = ConversationStore(parley_home / "chat.sqlite3")
    yield s
    s.close()


def statuses(store: ConversationStore) -> list[tuple[str, str]]:
    rows = store.conn.execute("SELECT role, status FROM messages ORDER BY id").fetchall()
    return [(r[0], r[1]) for r in rows]


# ---------------------------------------------------------------- every turn ends
async def test_a_bug_below_the_session_ends_the_turn_instead_of_leaving_it_streaming(
    store: ConversationStore,
) -> None:
    chat = session(store, Scripted(["half of ", "it"], then=RuntimeError("a bug")))
    with pytest.raises(RuntimeError, match="a bug"):  # still reported as the bug it is
        async for _ in chat.send("q", OPTIONS):
            pass
    await chat.aclose()
    answer = store.branch(store.list()[0].id)[-1]
    assert (answer.status, answer.content) == ("partial", "half of it")
    assert answer.error == "Internal error (RuntimeError); see the log."


async def test_a_bug_before_any_text_is_an_error_row(store: ConversationStore) -> None:
    chat = session(store, Scripted([], then=KeyError("x")))
    with pytest.raises(KeyError):
        async for _ in chat.send("q", OPTIONS):
            pass
    await chat.aclose()
    assert statuses(store) == [("user", "complete"), ("assistant", "error")]


class ReportsLate(ThreadPoolExecutor):
    """The one-thread writer, except that an answer row's write reports back when told.

    Stop lands while the write has happened but is not yet seen.
    """

    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self.row_written = threading.Event()
        self.release = threading.Event()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        def run() -> Any:
            result = fn(*args, **kwargs)
            if isinstance(result, StoredMessage) and result.role == "assistant":
                self.row_written.set()
                self.release.wait(10)
            return result

        return super().submit(run)


async def test_stop_while_the_answer_row_is_written_ends_it_cancelled(
    store: ConversationStore,
) -> None:
    writer = ReportsLate()
    chat = session(store, Scripted(["never shown"]), writer)

    async def ask() -> None:
        async for _ in chat.send("q", OPTIONS):
            pass

    task = asyncio.create_task(ask())
    while not writer.row_written.is_set():
        await asyncio.sleep(0.005)
    task.cancel()
    writer.release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    await chat.aclose()
    assert statuses(store) == [("user", "complete"), ("assistant", "cancelled")]


class HoldsNext(ThreadPoolExecutor):
    """The one-thread writer; once armed, the next job waits behind a blocker."""

    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self.armed = False
        self.queued = threading.Event()
        self.release = threading.Event()

    def arm(self) -> None:
        super().submit(self.release.wait, 10)
        self.armed = True

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future = super().submit(fn, *args, **kwargs)
        if self.armed:
            self.armed = False
            self.queued.set()
        return future


async def test_stop_while_the_final_write_waits_its_turn_still_saves_it(
    store: ConversationStore,
) -> None:
    writer = HoldsNext()
    chat = session(store, Scripted(["the whole ", "answer"]), writer)

    async def ask() -> None:
        async for ev in chat.send("q", OPTIONS):
            if isinstance(ev, Finished):
                writer.arm()  # the stream is over: the turn's last write waits in the queue

    task = asyncio.create_task(ask())
    while not writer.queued.is_set():
        await asyncio.sleep(0.002)
    task.cancel()
    await asyncio.sleep(0.05)
    writer.release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    await chat.aclose()
    answer = store.branch(store.list()[0].id)[-1]
    assert (answer.status, answer.content) == ("complete", "the whole answer")


class FlushesLate(ThreadPoolExecutor):
    """The one-thread writer; a streamed-text flush, once running, waits for the test."""

    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self.flushing = threading.Event()
        self.release = threading.Event()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        def run() -> Any:
            if getattr(fn, "__name__", "") == "_flush" and not self.flushing.is_set():
                self.flushing.set()
                self.release.wait(10)
            return fn(*args, **kwargs)

        return super().submit(run)


async def test_a_late_flush_does_not_undo_the_final_text(store: ConversationStore) -> None:
    writer = FlushesLate()
    parts = [f"part {i} " for i in range(8)]

    class Slow(Scripted):
        async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
            for p in self.parts:  # slower than the flush interval: every delta is flushed
                await asyncio.sleep(FLUSH_INTERVAL_S * 1.2)
                yield TextDelta(p)
            yield Finished("stop", "stop")

    chat = session(store, Slow(parts), writer)
    got: list[str] = []

    async def ask() -> None:
        async for ev in chat.send("q", OPTIONS):
            if isinstance(ev, TextDelta):
                got.append(ev.text)

    task = asyncio.create_task(ask())
    while not writer.flushing.is_set() or len(got) < 3:  # a flush of early text is running
        await asyncio.sleep(0.002)
    task.cancel()  # Stop: the turn saves everything that arrived, at once
    with pytest.raises(asyncio.CancelledError):
        await task
    writer.release.set()  # ...then the early flush gets its turn
    await chat.aclose()
    answer = store.branch(store.list()[0].id)[-1]
    assert answer.status == "cancelled" and answer.content == "".join(got)


# ---------------------------------------------------------------- one turn at a time
async def test_two_sessions_on_one_conversation_answer_one_after_the_other(
    store: ConversationStore, parley_home: Path, fake_llm: Any
) -> None:
    # Two sessions with their own connections (as two processes would have), one server.
    from parley.core.providers.openai import OpenAIProvider

    other_store = ConversationStore(store.db_file)
    provider = OpenAIProvider(api_key="sk-x", base_url=fake_llm.openai_base_url)
    fake_llm.default_reply = lambda r: Text(
        f"answer to {r.json['messages'][-1]['content']}", chunk_chars=2, delay=0.01
    )
    first, second = session(store, provider), session(other_store, provider)
    conv = store.create()
    seen: list[Any] = []

    async def ask(chat: ChatSession, q: str) -> None:
        async for ev in chat.send(q, OPTIONS, conversation_id=conv.id):
            seen.append((q, ev))

    one = asyncio.create_task(ask(first, "q1"))
    while not any(isinstance(ev, TurnStarted) for _, ev in seen):
        await asyncio.sleep(0.005)
    await asyncio.gather(one, ask(second, "q2"))
    await provider.aclose()
    await first.aclose()
    await second.aclose()
    other_store.close()
    # The second question was sent with the first answer in its history, not before it.
    sent = [m["content"] for m in fake_llm.requests[-1].json["messages"]]
    assert sent == ["q1", "answer to q1", "q2"]
    queued = [ev for q, ev in seen if isinstance(ev, TurnQueued)]
    assert [(q, ev.ahead) for q, ev in seen if isinstance(ev, TurnQueued)] == [("q2", 1)]
    assert queued[0].conversation_id == conv.id
    branch = [(m.role, m.content) for m in store.branch(conv.id)]
    assert branch == [
        ("user", "q1"),
        ("assistant", "answer to q1"),
        ("user", "q2"),
        ("assistant", "answer to q2"),
    ]
    finished = [q for q, ev in seen if isinstance(ev, TurnFinished)]
    assert finished == ["q1", "q2"]
    assert store.conn.execute("SELECT count(*) FROM turn_queue").fetchone()[0] == 0


def test_a_dead_process_does_not_hold_a_conversation(store: ConversationStore) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    import psutil

    dead_owner = f"{proc.pid}:{psutil.Process(proc.pid).create_time():.3f}"
    assert owner_alive(dead_owner)
    conv = store.create()
    stale = store.join_turn_queue(conv.id, dead_owner)  # kill -9 mid-turn leaves this
    mine = store.join_turn_queue(conv.id, process_owner())
    assert store.turns_ahead(conv.id, mine, owner_alive) == 1
    proc.kill()
    proc.wait()
    assert not owner_alive(dead_owner)
    assert store.turns_ahead(conv.id, mine, owner_alive) == 0
    remaining = [r[0] for r in store.conn.execute("SELECT id FROM turn_queue")]
    assert remaining == [mine] and stale not in remaining
    # a reused pid is not the same process: the start time is part of the owner
    assert not owner_alive(f"{os.getpid()}:1.000")
    assert owner_alive(process_owner())
