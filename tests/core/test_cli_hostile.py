"""Hostile servers through ``parley ask`` (issue 11).

What a person is told, the exit code, and what is saved. A real subprocess each time, the real SDKs,
the fake's hostile modes, both wire formats.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.core.test_cli import env_for, parley, stored
from tests.fakes.script import (
    NOT_A_COMPLETION_JSON,
    BadUTF8,
    Cut,
    NotAStream,
    Redirect,
    Reply,
    StreamError,
    Text,
)
from tests.fakes.server import FakeLLMServer, last_user_text

MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5"}
PROVIDERS = list(MODELS)


@dataclass(frozen=True)
class Case:
    replies: tuple[Reply, ...]
    exit: int
    status: str
    text: str
    says: str | None  # in the one-line error (stderr and the stored row); None: no error
    requests: int = 1


CASES = {
    "cut-close-delimited": Case(
        (Cut("The first half", framing="close"),),
        2,
        "partial",
        "The first half",
        "dropped mid-answer; the answer was cut off.",
    ),
    "cut-chunked": Case(
        (Cut("The first half", framing="chunked"),),
        2,
        "partial",
        "The first half",
        "dropped mid-answer; the answer was cut off.",
    ),
    "cut-before-any-text-is-retried": Case(
        (Cut(""), Text("The answer, second time.")),
        0,
        "complete",
        "The answer, second time.",
        None,
        requests=2,
    ),
    "html-page": Case(
        (NotAStream(),),
        2,
        "error",
        "",
        "answered with an HTML page, not a model stream: check the base URL",
    ),
    "json-not-a-completion": Case(
        (NotAStream("application/json", NOT_A_COMPLETION_JSON),),
        2,
        "error",
        "",
        "answered with JSON that is not a completion, not a model stream: check the base URL.",
    ),
    "invalid-utf8": Case(
        (BadUTF8("Caf", b"\xe9\x80", " au lait."),),
        0,
        "complete",
        "Caf\ufffd au lait.",
        None,
    ),
    "not-json": Case(
        (StreamError("Kept so far", raw="{not json"),),
        2,
        "partial",
        "Kept so far",
        "sent a malformed",
    ),
}


def ask(home: Path, srv: Any, provider: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return parley(
        home, "ask", "--provider", provider, "--model", MODELS[provider], *extra, "hi", srv=srv
    )


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("name", list(CASES))
def test_hostile_server_through_the_cli(
    parley_home: Path, fake_llm: Any, provider: str, name: str
) -> None:
    case = CASES[name]
    fake_llm.enqueue(*case.replies)
    p = ask(parley_home, fake_llm, provider, "--json")
    assert p.returncode == case.exit, (p.returncode, p.stderr)
    assert "Traceback" not in p.stderr and "internal error" not in p.stderr
    out = json.loads(p.stdout)
    assert (out["status"], out["text"]) == (case.status, case.text)
    answer = stored(parley_home)[-1]
    assert (answer.role, answer.status, answer.content) == ("assistant", case.status, case.text)
    if case.says is None:
        assert answer.error is None and "error" not in out
    else:
        assert case.says in out["error"] and answer.error == out["error"]
        assert p.stderr.splitlines()[-1] == f"parley: {out['error']}"
        # "the answer was cut off" only where there was an answer to cut
        assert ("cut off" in out["error"]) == bool(case.text)
    assert len([r for r in fake_llm.requests if r.method == "POST"]) == case.requests


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_redirect_to_another_server_is_refused(parley_home: Path, provider: str) -> None:
    with FakeLLMServer() as origin, FakeLLMServer() as elsewhere:
        path = "/v1/chat/completions" if provider == "openai" else "/v1/messages"
        origin.enqueue(Redirect(elsewhere.base_url + path))
        p = ask(parley_home, origin, provider)
    assert elsewhere.requests == []  # the conversation never reached the other server
    assert p.returncode == 2, p.stderr
    line = p.stderr.strip()
    assert line.startswith("parley: ") and "\n" not in line
    assert f"redirected the request to {elsewhere.base_url}{path} (HTTP 307)" in line
    assert stored(parley_home)[-1].status == "error"


def test_six_asks_on_one_conversation_at_once_are_answered_in_turn(
    parley_home: Path, fake_llm: Any
) -> None:
    # Six real processes ask on conversation 1 at the same moment: each question must be
    # placed after the previous answer, and each answer after its own question.
    fake_llm.default_reply = lambda r: Text(
        f"answer to [{last_user_text(r.json)}]", chunk_chars=2, delay=0.05
    )  # ~0.6 s each: six started together overlap
    assert parley(parley_home, "ask", "--provider", "openai", "first", srv=fake_llm).returncode == 0
    env = env_for(parley_home, fake_llm)
    base = [sys.executable, "-m", "parley", "ask", "--provider", "openai", "--conversation", "1"]
    procs = [
        subprocess.Popen(
            [*base, f"question {i}"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for i in range(6)
    ]
    results = [(p.wait(120), p.stdout.read(), p.stderr.read()) for p in procs]  # type: ignore[union-attr]
    for p in procs:
        p.stdout.close()  # type: ignore[union-attr]
        p.stderr.close()  # type: ignore[union-attr]
    assert [code for code, _, _ in results] == [0] * 6, [err for _, _, err in results]
    db = sqlite3.connect(parley_home / "data" / "parley.sqlite3")
    rows = db.execute(
        "SELECT id, parent_id, role, status, content FROM messages ORDER BY id"
    ).fetchall()
    leaf = db.execute("SELECT current_leaf_id FROM conversations WHERE id=1").fetchone()[0]
    db.close()
    by_id = {r[0]: r for r in rows}
    chain = []
    while leaf is not None:
        chain.append(by_id[leaf])
        leaf = by_id[leaf][1]
    chain.reverse()
    assert len(chain) == len(rows) == 14  # one branch, nothing off it
    for i, (_, _, role, status, content) in enumerate(chain):
        assert role == ("user" if i % 2 == 0 else "assistant") and status == "complete"
        if role == "assistant":
            assert content == f"answer to [{chain[i - 1][4]}]"
    # each request carried the whole conversation so far, in order
    chats = [r for r in fake_llm.requests if r.method == "POST"]
    for n, request in enumerate(chats):
        sent = [m["content"] for m in request.json["messages"]]
        assert sent == [r[4] for r in chain[: 2 * n + 1]]
    # They did run at the same time: some were told they wait their turn.
    assert any(b"waiting:" in err for _, _, err in results)
