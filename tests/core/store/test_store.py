"""SQLite store: WAL, migrations, branches, concurrent processes, damaged or read-only files."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from parley.core.errors import StorageError
from parley.core.store.conversations import MIGRATIONS, ConversationStore
from parley.core.store.db import connect


def test_wal_and_migrations_recorded_once(tmp_path: Path) -> None:
    db = tmp_path / "p.sqlite3"
    store = ConversationStore(db)
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()
    conn = connect(db, MIGRATIONS)  # second open applies nothing new
    names = [r[0] for r in conn.execute("SELECT name FROM _parley_migrations")]
    assert names == [m.name for m in MIGRATIONS]
    conn.close()


def test_branches_from_edit_and_regenerate(tmp_path: Path) -> None:
    s = ConversationStore(tmp_path / "p.sqlite3")
    c = s.create()
    u1 = s.add_message(c.id, "user", "What is 2+2?")
    a1 = s.add_message(c.id, "assistant", "4")
    # regenerate: a second answer under the same question
    a2 = s.add_message(c.id, "assistant", "Four.", parent_id=u1.id)
    assert [m.content for m in s.branch(c.id)] == ["What is 2+2?", "Four."]
    assert [m.id for m in s.siblings(a2.id)] == [a1.id, a2.id]
    # edit: a new question beside the first one; the old branch stays reachable
    u2 = s.add_message(c.id, "user", "What is 3+3?", parent_id=None)
    assert [m.content for m in s.branch(c.id)] == ["What is 3+3?"]
    assert [m.id for m in s.siblings(u2.id)] == [u1.id, u2.id]
    s.set_leaf(c.id, s.latest_leaf(u1.id))
    assert [m.content for m in s.branch(c.id)] == ["What is 2+2?", "Four."]
    assert s.get(c.id).title == "What is 2+2?"  # type: ignore[union-attr]
    s.close()


def test_delete_answer_moves_the_branch_to_what_remains(tmp_path: Path) -> None:
    s = ConversationStore(tmp_path / "p.sqlite3")
    c = s.create()
    u1 = s.add_message(c.id, "user", "Q")
    a1 = s.add_message(c.id, "assistant", "A1")
    a2 = s.add_message(c.id, "assistant", "A2", parent_id=u1.id)
    s.add_message(c.id, "user", "follow-up")  # under A2
    s.add_message(c.id, "assistant", "A3")
    assert s.delete_answer(u1.id) is None  # questions are not deleted this way
    assert s.delete_answer(a2.id) == a1.id  # A2 and what followed it go; A1 shows
    assert [m.content for m in s.branch(c.id)] == ["Q", "A1"]
    assert s.delete_answer(a1.id) == u1.id  # the last version: the question remains
    assert [m.content for m in s.branch(c.id)] == ["Q"]
    assert s.count_messages(c.id) == 1
    s.close()


def test_search_delete_undo(tmp_path: Path) -> None:
    s = ConversationStore(tmp_path / "p.sqlite3")
    a, b = s.create("Budget"), s.create("Holidays")
    s.add_message(b.id, "user", "the Q3 budget_plan 100%")
    assert {c.id for c in s.list(query="budget")} == {a.id, b.id}
    assert [c.id for c in s.list(query="100%")] == [b.id]  # LIKE wildcards are literal
    assert s.list(query="_plan x") == []
    s.delete(a.id)
    assert [c.id for c in s.list()] == [b.id]
    s.undelete(a.id)
    assert {c.id for c in s.list()} == {a.id, b.id}
    s.close()


_WRITER = """
import sys
from pathlib import Path
from parley.core.store.conversations import ConversationStore
s = ConversationStore(Path(sys.argv[1]))
c = s.create("other process")
for i in range(200):
    s.add_message(c.id, "user", f"line {i}")
s.close()
"""


def test_two_processes_write_one_database(tmp_path: Path) -> None:
    db = tmp_path / "p.sqlite3"
    mine = ConversationStore(db)
    conv = mine.create("this process")
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(db)])
    for i in range(200):
        mine.add_message(conv.id, "user", f"mine {i}")
    assert proc.wait(timeout=60) == 0
    assert mine.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert mine.conn.execute("SELECT count(*) FROM messages").fetchone()[0] == 400
    mine.close()


def test_corrupt_database_is_a_clear_error(tmp_path: Path) -> None:
    db = tmp_path / "p.sqlite3"
    db.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StorageError, match="damaged") as info:
        ConversationStore(db)
    assert "\n" not in info.value.user_message


def test_locked_database_is_a_clear_error(tmp_path: Path) -> None:
    db = tmp_path / "p.sqlite3"
    ConversationStore(db).close()
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another program holds the write lock
    try:
        with pytest.raises(StorageError, match="locked"):
            ConversationStore(db, busy_timeout_ms=200).create("x")
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_read_only_data_dir_is_a_clear_error(tmp_path: Path) -> None:
    d = tmp_path / "ro"
    d.mkdir()
    if os.geteuid() != 0:
        d.chmod(0o500)
        undo = ["chmod", "700", str(d)]
    else:  # root ignores mode bits; an immutable folder stops even root
        if subprocess.run(["chattr", "+i", str(d)], capture_output=True).returncode != 0:
            pytest.skip("cannot make a read-only folder here")
        undo = ["chattr", "-i", str(d)]
    try:
        with pytest.raises(StorageError, match=r"read-only"):
            ConversationStore(d / "p.sqlite3")
    finally:
        subprocess.run(undo, check=True)
