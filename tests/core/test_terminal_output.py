r"""No escape sequence from a file name, a document or the model reaches a terminal (issue 11).

``parley search`` and ``parley ask`` run under a pseudo-terminal (``pty``), as a person runs
them; output post-processing (ONLCR) is switched off so any CR seen came from Parley. Control
characters must arrive as visible escapes (``\x1b``), while ``--json`` stays exact.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.assets import need_minilm

pty = pytest.importorskip("pty")
termios = pytest.importorskip("termios")

REPO = Path(__file__).resolve().parents[2]
FILE_NAME = "evil\x1b]0;pwned\x07\u202etxt.md"
DOC = "# Head\x1b[2J\n\nThe quartz\x1b[8m hidden\x1b[0m clock\r\x07 ticks \u202eloudly.\n"
ANSWER = "Sure\r\x1b]0;owned\x07 text \x1b[31mred\u202e\u0085 end\r\n"
# Split where it hurts: a CR at the end of a chunk, an ESC alone, CR and LF apart.
CHUNKS = ["Sure\r", "\x1b]0;owned\x07 te", "xt \x1b", "[31mred\u202e\u0085 end\r", "\n"]

RAW = {
    b"\x1b": "ESC",
    b"\x07": "BEL",
    b"\r": "CR",
    "\u202e".encode(): "RLO",
    "\u0085".encode(): "NEL (C1)",
}


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_BASE_URL"))}
    env.update(PARLEY_HOME=str(home), PYTHONPATH=str(REPO / "desktop"), **extra)
    return env


def run_in_pty(args: list[str], env: dict[str, str], timeout: float = 120.0) -> tuple[int, bytes]:
    """Run ``parley ARGS`` with stdout and stderr on a pseudo-terminal; all it wrote."""
    master, slave = pty.openpty()
    attrs = termios.tcgetattr(slave)
    attrs[1] &= ~termios.ONLCR  # no "\n" -> "\r\n": every CR seen is Parley's own
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    proc = subprocess.Popen(
        [sys.executable, "-m", "parley", *args],
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
        env=env,
    )
    os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed its side
                break
            if not chunk:
                break
            out += chunk
        return proc.wait(timeout=30), out
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()


def _raw_controls(out: bytes) -> dict[str, int]:
    return {name: out.count(seq) for seq, name in RAW.items() if seq in out}


@pytest.fixture
def indexed(parley_home: Path, tmp_path: Path) -> Path:
    need_minilm()
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / FILE_NAME).write_text(DOC)
    subprocess.run(
        [sys.executable, "-m", "parley", "index", str(docs)],
        env=_env(parley_home),
        capture_output=True,
        check=True,
        timeout=180,
    )
    return docs


def test_search_on_a_terminal_shows_controls_instead_of_obeying_them(
    indexed: Path, parley_home: Path
) -> None:
    code, out = run_in_pty(["search", "quartz clock"], _env(parley_home))
    assert code == 0, out
    assert _raw_controls(out) == {}, out
    text = out.decode()
    assert "evil\\x1b]0;pwned\\x07\\u202etxt.md" in text  # visible, not executed
    assert "quartz\\x1b[8m hidden" in text and "clock \\x07 ticks \\u202eloudly" in text


def test_search_json_on_a_terminal_is_exact(indexed: Path, parley_home: Path) -> None:
    code, out = run_in_pty(["search", "quartz clock", "--json"], _env(parley_home))
    assert code == 0, out
    assert _raw_controls(out) == {}, out  # JSON escapes them, bidi and C1 included
    hit = json.loads(out.decode())["results"][0]
    assert hit["path"] == str(indexed / FILE_NAME)  # exactly the real name
    assert hit["heading"] == "Head\x1b[2J"


def test_streamed_answer_on_a_terminal(parley_home: Path, fake_llm: Any) -> None:
    from tests.fakes.script import Text

    fake_llm.enqueue(Text(ANSWER, chunks=CHUNKS))
    env = _env(parley_home, OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=fake_llm.openai_base_url)
    code, out = run_in_pty(["ask", "hi"], env)
    assert code == 0, out
    assert _raw_controls(out) == {}, out
    # The CR LF split across two chunks is a line end; the other CR is shown.
    assert out.decode() == "Sure\\r\\x1b]0;owned\\x07 text \\x1b[31mred\\u202e\\x85 end\n\n"

    # Redirected to a file or a pipe, the answer stays exactly what the model said.
    fake_llm.enqueue(Text(ANSWER, chunks=CHUNKS))
    p = subprocess.run(
        [sys.executable, "-m", "parley", "ask", "hi"], env=env, capture_output=True, timeout=120
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.decode() == ANSWER + "\n"


def test_streamed_answer_json_on_a_terminal_is_exact(parley_home: Path, fake_llm: Any) -> None:
    from tests.fakes.script import Text

    fake_llm.enqueue(Text(ANSWER, chunks=CHUNKS))
    env = _env(parley_home, OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=fake_llm.openai_base_url)
    code, out = run_in_pty(["ask", "--json", "hi"], env)
    assert code == 0, out
    assert _raw_controls(out) == {}, out
    assert json.loads(out.decode())["text"] == ANSWER
