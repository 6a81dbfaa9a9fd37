"""The ``parley`` command-line contract, run as a real subprocess against the fake servers.

Every failure must be one line on stderr (no traceback), exit code 2; Ctrl+C exits 130;
nothing the person typed or received is lost.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from parley.core.store.conversations import ConversationStore
from tests.fakes.script import Drop, HTTPError, Stall, Text

REPO = Path(__file__).resolve().parents[2]


def env_for(home: Path, srv: Any | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_BASE_URL"))}
    env["PARLEY_HOME"] = str(home)
    env["PYTHONPATH"] = str(REPO)
    if srv is not None:
        env["OPENAI_API_KEY"] = "sk-test-openai"
        env["OPENAI_BASE_URL"] = srv.openai_base_url
        env["ANTHROPIC_API_KEY"] = "sk-ant-test"
        env["ANTHROPIC_BASE_URL"] = srv.anthropic_base_url
    env.update(extra)
    return env


def parley(
    home: Path, *args: str, srv: Any | None = None, stdin: bytes | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "parley", *args],
        input=stdin,
        capture_output=True,
        env=env_for(home, srv, **env),
        timeout=60,
    )
    return subprocess.CompletedProcess(
        proc.args, proc.returncode, proc.stdout.decode(), proc.stderr.decode()
    )


def assert_one_line_error(p: subprocess.CompletedProcess[str], pattern: str) -> None:
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert "Traceback" not in p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert any(pattern.lower() in ln.lower() for ln in lines), p.stderr
    assert all(ln.startswith("parley: ") for ln in lines), p.stderr


def stored(home: Path) -> list[Any]:
    s = ConversationStore(home / "data" / "parley.sqlite3")
    try:
        convs = s.list()
        return [m for c in convs for m in s.branch(c.id)]
    finally:
        s.close()


def test_version_and_help(parley_home: Path) -> None:
    p = parley(parley_home, "--version")
    assert p.returncode == 0 and p.stdout.startswith("parley ")
    p = parley(parley_home, "ask", "--help")
    assert p.returncode == 0 and "--json" in p.stdout


def test_ask_streams_and_stores(parley_home: Path, fake_llm: Any) -> None:
    fake_llm.enqueue(Text("Streaming **works**."))
    p = parley(parley_home, "ask", "Does it stream?", srv=fake_llm)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "Streaming **works**.\n"
    msgs = stored(parley_home)
    assert [(m.role, m.content) for m in msgs] == [
        ("user", "Does it stream?"),
        ("assistant", "Streaming **works**."),
    ]


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_ask_json_contract(parley_home: Path, fake_llm: Any, provider: str) -> None:
    fake_llm.enqueue(Text("Forty-two.", input_tokens=100, output_tokens=4, cached_input_tokens=40))
    model = "gpt-4o" if provider == "openai" else "claude-haiku-4-5"
    p = parley(
        parley_home,
        "ask",
        "--provider",
        provider,
        "--model",
        model,
        "--system",
        "Be terse.",
        "--json",
        "Meaning of life?",
        srv=fake_llm,
    )
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert set(out) >= {
        "text",
        "provider",
        "model",
        "status",
        "usage",
        "cost_usd",
        "conversation_id",
        "attempts",
    }
    assert out["text"] == "Forty-two." and out["status"] == "complete"
    assert out["provider"] == provider and out["model"] == model and out["attempts"] == 1
    assert out["usage"] == {
        "input_tokens": 100,
        "output_tokens": 4,
        "cached_input_tokens": 40,
        "cache_write_tokens": 0,
    }
    assert out["cost_usd"] > 0
    # continue the conversation: the history is sent again
    fake_llm.enqueue(Text("Sure."))
    p2 = parley(
        parley_home,
        "ask",
        "--provider",
        provider,
        "--model",
        model,
        "--conversation",
        str(out["conversation_id"]),
        "--json",
        "Why?",
        srv=fake_llm,
    )
    assert json.loads(p2.stdout)["conversation_id"] == out["conversation_id"]
    assert len(fake_llm.requests[-1].json["messages"]) >= 3


def test_openai_compatible_local_server(parley_home: Path, fake_llm: Any) -> None:
    fake_llm.enqueue(Text("local answer"))
    p = parley(
        parley_home,
        "ask",
        "--provider",
        "openai-compatible",
        "--base-url",
        fake_llm.openai_base_url,
        "--model",
        "fake-model",
        "--json",
        "hi",
    )
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["text"] == "local answer" and out["cost_usd"] == 0.0
    p = parley(parley_home, "models", "--remote", "--base-url", fake_llm.openai_base_url, "--json")
    assert [m["id"] for m in json.loads(p.stdout)] == list(fake_llm.models)


def test_models_json(parley_home: Path) -> None:
    p = parley(parley_home, "models", "--json")
    rows = json.loads(p.stdout)
    by_id = {r["id"]: r for r in rows}
    assert {
        "id",
        "provider",
        "context_window",
        "price_input_per_mtok",
        "price_output_per_mtok",
        "price_cached_input_per_mtok",
    } <= set(rows[0])
    assert by_id["claude-haiku-4-5"]["provider"] == "anthropic"
    assert by_id["mistral-medium-latest"]["price_cached_input_per_mtok"] is None


def test_empty_question(parley_home: Path, fake_llm: Any) -> None:
    assert_one_line_error(parley(parley_home, "ask", "", srv=fake_llm), "empty")
    assert_one_line_error(parley(parley_home, "ask", "-", srv=fake_llm, stdin=b"  \n"), "empty")
    assert fake_llm.requests == []


def test_one_megabyte_question_on_stdin(parley_home: Path, fake_llm: Any) -> None:
    fake_llm.enqueue(Text("long read"))
    question = ("lorem ipsum " * 90_000).encode()
    p = parley(parley_home, "ask", "--json", srv=fake_llm, stdin=question)
    assert p.returncode == 0, p.stderr
    assert stored(parley_home)[0].content == question.decode()


def test_invalid_utf8_on_stdin(parley_home: Path, fake_llm: Any) -> None:
    p = parley(parley_home, "ask", srv=fake_llm, stdin=b"caf\xe9 \xff\xfe")
    assert_one_line_error(p, "not valid UTF-8")
    assert fake_llm.requests == []


def test_unknown_provider(parley_home: Path, fake_llm: Any) -> None:
    assert_one_line_error(
        parley(parley_home, "ask", "--provider", "nope", "x", srv=fake_llm),
        "Unknown provider 'nope'",
    )


def test_unknown_model(parley_home: Path, fake_llm: Any) -> None:
    fake_llm.enqueue(HTTPError(404))
    p = parley(parley_home, "ask", "--model", "gpt-9-imaginary", "hi", srv=fake_llm)
    assert_one_line_error(p, "does not know the model 'gpt-9-imaginary'")


def test_wrong_key(parley_home: Path, fake_llm: Any) -> None:
    fake_llm.enqueue(HTTPError(401, message="Incorrect API key provided: sk-test-openai"))
    p = parley(parley_home, "ask", "hi", srv=fake_llm)
    assert_one_line_error(p, "rejected the API key")
    assert "sk-test-openai" not in p.stderr + p.stdout


def test_no_key_at_all(parley_home: Path, fake_llm: Any) -> None:
    p = parley(parley_home, "ask", "hi", OPENAI_BASE_URL=fake_llm.openai_base_url)
    assert_one_line_error(p, "No API key for OpenAI")


def test_429_retry_after_then_success(parley_home: Path, fake_llm: Any) -> None:
    fake_llm.enqueue(HTTPError(429, retry_after=1), Text("after the wait"))
    t0 = time.monotonic()
    p = parley(parley_home, "ask", "--json", "hi", srv=fake_llm)
    assert p.returncode == 0, p.stderr
    assert time.monotonic() - t0 >= 1.0
    out = json.loads(p.stdout)
    assert out["text"] == "after the wait" and out["attempts"] == 2
    assert len([r for r in fake_llm.requests if r.method == "POST"]) == 2
    assert "Retrying in 1.0 s" in p.stderr


def test_persistent_503(parley_home: Path, fake_llm: Any) -> None:
    fake_llm.enqueue(*[HTTPError(503)] * 4)
    p = parley(parley_home, "ask", "hi", srv=fake_llm)
    assert_one_line_error(p, "server error (HTTP 503)")
    assert len(fake_llm.requests) == 3


def test_529_overloaded_anthropic(parley_home: Path, fake_llm: Any) -> None:
    fake_llm.enqueue(*[HTTPError(529)] * 3)
    p = parley(parley_home, "ask", "--provider", "anthropic", "hi", srv=fake_llm)
    assert_one_line_error(p, "overloaded")
    assert len(fake_llm.requests) == 3


def test_drop_after_some_text(parley_home: Path, fake_llm: Any) -> None:
    fake_llm.enqueue(Drop("Half of the answer"))
    p = parley(parley_home, "ask", "--json", "hi", srv=fake_llm)
    assert p.returncode == 2
    assert "Traceback" not in p.stderr
    out = json.loads(p.stdout)
    assert out["status"] == "partial" and out["text"] == "Half of the answer"
    assert stored(parley_home)[-1].status == "partial"


def test_ctrl_c_mid_stream_keeps_partial(parley_home: Path, fake_llm: Any) -> None:
    fake_llm.enqueue(Stall("Partial words before the stall", seconds=30))
    proc = subprocess.Popen(
        [sys.executable, "-m", "parley", "ask", "Tell me everything"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env_for(parley_home, fake_llm),
    )
    assert proc.stdout is not None
    got = b""
    while b"stall" not in got:
        got += os.read(proc.stdout.fileno(), 1024)
    time.sleep(0.3)  # let the turn reach its next await; the signal is the test's input
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert b"Traceback" not in err
    last = stored(parley_home)[-1]
    assert last.status == "cancelled" and last.content == "Partial words before the stall"


def test_reader_closing_the_pipe_stops_quietly_and_keeps_the_partial(
    parley_home: Path, fake_llm: Any
) -> None:
    # ``parley ask ... | head -1``: the reader goes away mid-answer.
    fake_llm.enqueue(Text("First line.\n" + "More words. " * 3000, chunk_chars=8, delay=0.002))
    proc = subprocess.Popen(
        [sys.executable, "-m", "parley", "ask", "Tell me everything"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env_for(parley_home, fake_llm),
    )
    assert proc.stdout is not None and proc.stderr is not None
    got = b""
    while b"\n" not in got:
        got += os.read(proc.stdout.fileno(), 64)
    proc.stdout.close()  # as head does after its first line
    with proc.stderr:
        err = proc.stderr.read()
    assert proc.wait(timeout=20) == 0, err
    assert err == b"", err.decode()  # no traceback, no "Exception ignored"
    last = stored(parley_home)[-1]
    assert last.role == "assistant" and last.status == "cancelled"
    assert last.content.startswith("First line.\nMore words.")


def test_corrupt_database(parley_home: Path, fake_llm: Any) -> None:
    (parley_home / "data").mkdir(parents=True)
    (parley_home / "data" / "parley.sqlite3").write_bytes(b"garbage" * 1000)
    p = parley(parley_home, "ask", "hi", srv=fake_llm)
    assert_one_line_error(p, "damaged")
    p = parley(parley_home, "conversations")
    assert_one_line_error(p, "damaged")


@pytest.mark.slow
def test_locked_database(parley_home: Path, fake_llm: Any) -> None:
    parley(parley_home, "conversations")  # creates the database
    holder = sqlite3.connect(parley_home / "data" / "parley.sqlite3", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        fake_llm.enqueue(Text("x"))
        t0 = time.monotonic()
        p = parley(parley_home, "ask", "hi", srv=fake_llm)
        # it waited for the lock (the busy timeout), then gave up with a clear line
        assert 9 < time.monotonic() - t0 < 30
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert_one_line_error(p, "locked")


@contextmanager
def immutable(path: Path) -> Iterator[None]:
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not available")
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
        pytest.skip("this file system cannot make a folder immutable")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_read_only_data_dir(parley_home: Path, fake_llm: Any) -> None:
    data = parley_home / "data"
    data.mkdir(parents=True)
    if os.geteuid() != 0:
        data.chmod(0o500)
        p = parley(parley_home, "ask", "hi", srv=fake_llm)
        data.chmod(0o700)
    else:
        with immutable(data):  # even root cannot write into it
            p = parley(parley_home, "ask", "hi", srv=fake_llm)
    assert_one_line_error(p, "read-only")
    assert fake_llm.requests == []


def test_ask_tools_json_and_stderr(parley_home: Path, fake_llm: Any, tmp_path: Path) -> None:
    from tests.fakes.script import Call, ToolCalls

    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "q3.txt").write_text("Q3 budget: 1.2M\n")
    fake_llm.enqueue(
        ToolCalls(
            [
                Call("calculator", '{"expression": "2.1/8.9"}'),
                Call("read_file", '{"path": "q3.txt"}'),
                Call("read_file", '{"path": "/etc/passwd"}'),
            ]
        ),
        Text("Done."),
    )
    p = parley(parley_home, "ask", "--tools", "--folder", str(folder), "--json", "go", srv=fake_llm)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    calls = out["tool_calls"]
    assert [c["name"] for c in calls] == ["calculator", "read_file", "read_file"]
    assert set(calls[0]) == {"name", "arguments", "result", "error", "ms"}
    assert calls[0]["arguments"] == {"expression": "2.1/8.9"}
    assert calls[0]["result"].startswith("0.2359") and calls[0]["error"] is None
    assert calls[1]["error"] is None and "1.2M" in calls[1]["result"], calls[1]
    assert calls[2]["result"] is None and "outside the folders" in calls[2]["error"]
    assert "tool calculator" in p.stderr and "Traceback" not in p.stderr
