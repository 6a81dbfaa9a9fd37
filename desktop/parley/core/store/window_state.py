"""What the window leaves behind for its next start: unsent drafts and where it was.

Two small tables in Parley's database (issue 14 item 7):

- ``drafts``: the text typed and not sent, per conversation (``conversation_id`` 0 is the
  new, not yet saved chat). A trigger removes a conversation's draft when the conversation is
  purged. Writes come from the window through ``ChatSession`` operations (the one writer).
- ``window_state``: named JSON values (the conversation that was open and where it was
  scrolled), read once when the window starts.

:func:`data_version` is SQLite's ``PRAGMA data_version``: it changes when *another*
connection (``parley ask`` in a terminal, another process) commits, never for this
connection's own writes; the window polls it in a worker thread to notice conversations made
elsewhere (measured in ``tests/bench/bench_ui.py``: ``poll_*``).
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

from parley.core.store.db import Migration, sql_migration, transaction

NEW_CHAT = 0
"""The ``conversation_id`` of the draft of a chat that has no row yet."""

MAX_DRAFT_CHARS = 2_000_000
"""Longer drafts are cut (the same limit as a question)."""

MIGRATIONS: list[Migration] = [
    sql_migration(
        "005_window_state",
        """
        CREATE TABLE drafts (
            conversation_id INTEGER PRIMARY KEY,
            text TEXT NOT NULL,
            updated_at REAL NOT NULL
        );
        CREATE TRIGGER drafts_follow_conversations AFTER DELETE ON conversations
        BEGIN
            DELETE FROM drafts WHERE conversation_id = old.id;
        END;
        CREATE TABLE window_state (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
        """,
    ),
]


def save_draft(conn: sqlite3.Connection, conversation_id: int | None, text: str) -> None:
    """Keep ``text`` as the draft of a conversation (None or 0: the new chat); "" removes it."""
    cid = conversation_id or NEW_CHAT
    with transaction(conn) as c:
        if text.strip():
            c.execute(
                "INSERT INTO drafts(conversation_id, text, updated_at) VALUES (?,?,?)"
                " ON CONFLICT(conversation_id) DO UPDATE SET text=excluded.text,"
                " updated_at=excluded.updated_at",
                (cid, text[:MAX_DRAFT_CHARS], time.time()),
            )
        else:
            c.execute("DELETE FROM drafts WHERE conversation_id=?", (cid,))


def drafts(conn: sqlite3.Connection) -> dict[int, str]:
    """Every kept draft, by conversation id (0: the new chat)."""
    return {int(r[0]): str(r[1]) for r in conn.execute("SELECT conversation_id, text FROM drafts")}


def set_value(conn: sqlite3.Connection, key: str, value: Any) -> None:
    """Store a JSON value under ``key`` (None removes it)."""
    with transaction(conn) as c:
        if value is None:
            c.execute("DELETE FROM window_state WHERE key=?", (key,))
        else:
            c.execute(
                "INSERT INTO window_state(key, value) VALUES (?,?)"
                " ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (key, json.dumps(value)),
            )


def get_value(conn: sqlite3.Connection, key: str) -> Any:
    """The JSON value under ``key``, or None (also for a value that is not valid JSON)."""
    row = conn.execute("SELECT value FROM window_state WHERE key=?", (key,)).fetchone()
    if row is None:
        return None
    try:
        return json.loads(row[0])
    except ValueError:
        return None


def data_version(conn: sqlite3.Connection) -> int:
    """SQLite's ``PRAGMA data_version``: it moves when another connection commits."""
    return int(conn.execute("PRAGMA data_version").fetchone()[0])
