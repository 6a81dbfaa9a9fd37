"""Hostile servers through the window's turn path (issue 11).

The composer, the ChatController, the ChatSession and the stream worker process, against the fake's
hostile modes, for both wire formats. What the chat shows and what is saved must agree with what
``parley ask`` says (tests/core/test_cli_hostile.py).
"""

from __future__ import annotations

from typing import Any

import pytest

from parley.core.secrets import MemorySecretStore, Secrets
from parley.core.settings import ProviderSettings, Settings
from parley.ui.chat.model import MessageStatus
from tests.core.test_cli_hostile import CASES, Case
from tests.fakes.script import Redirect
from tests.fakes.server import FakeLLMServer
from tests.ui.harness import WindowHarness


def settings_for(provider: str, srv: FakeLLMServer) -> Settings:
    if provider == "openai":
        model, url = "gpt-4o-mini", srv.openai_base_url
    else:
        model, url = "claude-haiku-4-5", srv.anthropic_base_url
    return Settings(
        default_provider=provider,
        default_model=model,
        providers={provider: ProviderSettings(base_url=url)},
        onboarded=True,
    )


def secrets_for(provider: str) -> Secrets:
    store = MemorySecretStore()
    store.set(provider, "sk-test-window")
    return Secrets(store, environ={})


async def ask_and_check(h: WindowHarness, srv: FakeLLMServer, name: str, case: Case) -> None:
    before = len([r for r in srv.requests if r.method == "POST"])
    srv.enqueue(*case.replies)
    await h.send_and_wait(f"question for {name}", timeout=30)
    item = h.items()[-1]
    assert (item.status, item.text) == (MessageStatus(case.status), case.text), name
    stored = h.s.conversations.branch(h.w.conversation_id)[-1]
    assert (stored.status, stored.content) == (case.status, case.text), name
    if case.says is None:
        assert not item.error and stored.error is None, name
    else:
        assert item.error and case.says in item.error and stored.error == item.error, name
        assert ("cut off" in item.error) == bool(case.text), name
    posts = len([r for r in srv.requests if r.method == "POST"]) - before
    assert posts == case.requests, name


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_hostile_servers_through_the_window_and_its_stream_worker(
    qtbot: Any, provider: str
) -> None:
    with FakeLLMServer() as srv, FakeLLMServer() as elsewhere:
        async with WindowHarness(
            qtbot, server=srv, settings=settings_for(provider, srv), secrets=secrets_for(provider)
        ) as h:
            worker = h.s.providers.stream_worker
            assert worker is not None and await worker.start()  # as after the first paint
            for name, case in CASES.items():
                await ask_and_check(h, srv, name, case)
            path = "/v1/chat/completions" if provider == "openai" else "/v1/messages"
            srv.enqueue(Redirect(elsewhere.base_url + path))
            await h.send_and_wait("and now elsewhere?", timeout=30)
            item = h.items()[-1]
            assert item.status == MessageStatus.ERROR and item.error
            assert f"redirected the request to {elsewhere.base_url}{path}" in item.error
            assert elsewhere.requests == []
            # Every request went through the worker process, none fell back in-process.
            assert worker.ready and worker.streams == len(CASES) + 2  # one case retried
            rows = h.s.conversations.conn.execute("SELECT status FROM messages").fetchall()
            assert "streaming" not in {r[0] for r in rows}
