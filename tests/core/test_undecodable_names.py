r"""A file whose name is not valid UTF-8 is indexed, searched and read like any other (issue 11).

Linux file names are bytes. Python hands such a name over with lone surrogates, which SQLite,
JSON and HTTP refuse: one such file used to abort ``parley index`` for its whole folder and
kill a tool turn that listed it (the answer left ``streaming``, the tool result NULL). Now the
manifest keeps the exact bytes and every text form shows each bad byte as ``\xNN``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.assets import need_minilm

pytestmark = pytest.mark.skipif(os.name != "posix", reason="only POSIX names hold raw bytes")

REPO = Path(__file__).resolve().parents[2]
BAD = b"caf\xe9 notes.txt"
"""Latin-1 "café notes.txt": the é is byte 0xE9, not UTF-8."""
SHOWN = "caf\\xe9 notes.txt"


def parley(home: Path, *args: str, srv: Any = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_BASE_URL"))}
    env.update(PARLEY_HOME=str(home), PYTHONPATH=str(REPO / "desktop"))
    if srv is not None:
        env.update(OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=srv.openai_base_url)
    r = subprocess.run(
        [sys.executable, "-m", "parley", *args],
        capture_output=True,
        env=env,
        timeout=180,
        stdin=subprocess.DEVNULL,
    )
    return subprocess.CompletedProcess(r.args, r.returncode, r.stdout.decode(), r.stderr.decode())


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    raw = os.fsencode(docs)
    with open(raw + b"/" + BAD, "wb") as f:
        f.write("The café serves lapsang souchong from seven.\n".encode())
    os.mkdir(raw + b"/arch\xffive")  # a folder with a bad name: its files are not hidden
    with open(raw + b"/arch\xffive/old.md", "wb") as f:
        f.write(b"# Minutes\n\nThe committee approved the quince budget.\n")
    (docs / "ok.txt").write_text("Oolong grows on the hills of Taiwan.\n")
    return docs


def test_index_and_search_through_the_cli(folder: Path, parley_home: Path, tmp_path: Path) -> None:
    need_minilm()
    p = parley(parley_home, "index", str(folder), "--json")
    assert p.returncode == 0, p.stderr
    assert "internal error" not in p.stderr
    report = json.loads(p.stdout)
    assert report["files_indexed"] == 3 and report["files_skipped"] == []

    p = parley(parley_home, "search", "lapsang souchong", "--json")
    assert p.returncode == 0, p.stderr
    hit = json.loads(p.stdout)["results"][0]
    assert hit["path"] == f"{folder}/{SHOWN}"  # visible, lossless escape of the bad byte
    assert "lapsang" in hit["snippet"]
    p = parley(parley_home, "search", "quince budget")
    assert p.returncode == 0, p.stderr
    assert "arch\\xffive/old.md" in p.stdout

    # The manifest holds the exact bytes: a second run finds every file unchanged.
    p = parley(parley_home, "index", str(folder))
    assert p.returncode == 0, p.stderr
    assert "Nothing changed: 3 files up to date" in p.stderr
    assert "0/0 files" not in p.stderr
    db = sqlite3.connect(parley_home / "data" / "knowledge.sqlite3")
    try:
        rows = dict(db.execute("SELECT path, typeof(path) FROM files").fetchall())
    finally:
        db.close()
    assert rows[os.fsencode(folder) + b"/" + BAD] == "blob"
    assert rows[str(folder / "ok.txt")] == "text"  # ordinary names are stored as before


def test_store_keeps_the_bytes(folder: Path) -> None:
    from parley.core.knowledge.embeddings import local_embedder
    from parley.core.knowledge.indexer import Indexer
    from parley.core.knowledge.retrieval import Retriever
    from parley.core.knowledge.store import KnowledgeStore
    from parley.core.paths import default_paths

    paths = need_minilm(default_paths())
    paths.ensure()
    with KnowledgeStore(paths, local_embedder(paths)) as store:
        assert Indexer(store).index([folder]).files_indexed == 3
        names = {os.fsencode(p)[len(os.fsencode(folder)) :] for p in store.files()}
        assert names == {b"/" + BAD, b"/arch\xffive/old.md", b"/ok.txt"}
        hit = Retriever(store).search("lapsang souchong", k=1)[0]
        assert os.fsencode(hit.path) == os.fsencode(folder) + b"/" + BAD
        assert hit.path.read_text().startswith("The café")  # a real, openable path
        assert store.remove_root(folder) > 0 and store.files() == {}


def test_tool_turn_lists_and_reads_such_a_file(
    folder: Path, parley_home: Path, fake_llm: Any
) -> None:
    from parley.core.store.conversations import ConversationStore
    from tests.fakes.script import Call, Text, ToolCalls

    fake_llm.enqueue(
        ToolCalls(
            [
                Call("file_search", '{"query": "lapsang"}'),
                Call("file_search", '{"query": "", "content": false}'),
                # The model passes back the name exactly as the listing showed it.
                Call("read_file", json.dumps({"path": SHOWN})),
            ]
        ),
        Text("It opens at seven."),
    )
    p = parley(
        parley_home, "ask", "--tools", "--folder", str(folder), "--json", "when?", srv=fake_llm
    )
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["status"] == "complete" and out["text"] == "It opens at seven."
    search, listing, read = out["tool_calls"]
    assert search["error"] is None and f"{SHOWN}:1: The café serves" in search["result"]
    assert listing["error"] is None and "arch\\xffive/old.md" in listing["result"]
    assert read["error"] is None and "lapsang souchong" in read["result"]
    assert read["result"].startswith(SHOWN)

    store = ConversationStore(parley_home / "data" / "parley.sqlite3")
    try:
        answer = store.branch(store.list()[0].id)[-1]
        assert answer.status == "complete"  # not left "streaming"
        calls = store.tool_calls(answer.id)
    finally:
        store.close()
    assert len(calls) == 3 and all(c.result is not None for c in calls), calls
    # What the model got back is valid JSON text carrying the visible escape.
    sent = fake_llm.requests[-1].body.decode("utf-8")
    assert "caf\\\\xe9 notes.txt" in sent


def test_a_folder_whose_own_name_is_not_utf8(parley_home: Path, tmp_path: Path) -> None:
    need_minilm()
    raw = os.fsencode(tmp_path) + b"/r\xe9pertoire"
    os.mkdir(raw)
    with open(raw + b"/a.txt", "wb") as f:
        f.write(b"Quinces ripen in October.\n")
    folder = os.fsdecode(raw)
    p = parley(parley_home, "index", folder)
    assert p.returncode == 0, p.stderr  # indexed; settings.toml (UTF-8) cannot name it
    assert "r\\xe9pertoire is indexed, but its name is not valid UTF-8" in p.stderr
    p = parley(parley_home, "search", "quinces", "--json")
    assert json.loads(p.stdout)["results"][0]["path"] == f"{tmp_path}/r\\xe9pertoire/a.txt"
    p = parley(parley_home, "index", "--status", "--json")
    assert json.loads(p.stdout)["roots"][0]["path"] == f"{tmp_path}/r\\xe9pertoire"
