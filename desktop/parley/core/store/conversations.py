"""Conversations, messages (a tree: edits and regenerations make branches), tool calls.

Every method is a short transaction, so the window and ``parley`` commands can share one
database (WAL). Messages form a tree through ``parent_id``; a conversation remembers its
current leaf, and the current branch is the path from that leaf to the root. Editing an
earlier message or regenerating an answer adds a sibling, so the old branch stays reachable.
"""

from __future__ import annotations

import builtins
import functools
import json
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from parley.core.store import ledger, search, window_state
from parley.core.store.db import (
    BUSY_TIMEOUT_MS,
    Migration,
    connect,
    sql_migration,
    transaction,
)

MessageStatus = Literal["complete", "streaming", "partial", "error", "cancelled"]

MIGRATIONS: list[Migration] = [
    sql_migration(
        "001_conversations",
        """
        CREATE TABLE conversations (
            id INTEGER PRIMARY KEY,
            title TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            current_leaf_id INTEGER,
            system_prompt TEXT,
            options TEXT NOT NULL DEFAULT '{}',
            deleted_at REAL
        );
        CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            parent_id INTEGER REFERENCES messages(id) ON DELETE CASCADE,
            role TEXT NOT NULL,
            content TEXT NOT NULL DEFAULT '',
            provider TEXT,
            model TEXT,
            status TEXT NOT NULL DEFAULT 'complete',
            error TEXT,
            input_tokens INTEGER,
            output_tokens INTEGER,
            cached_input_tokens INTEGER,
            cache_write_tokens INTEGER,
            cost_usd REAL,
            meta TEXT NOT NULL DEFAULT '{}',
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        );
        CREATE INDEX messages_by_conversation ON messages(conversation_id, id);
        CREATE INDEX messages_by_parent ON messages(parent_id);
        CREATE INDEX conversations_by_update ON conversations(updated_at);
        CREATE TABLE tool_calls (
            id INTEGER PRIMARY KEY,
            message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
            call_id TEXT NOT NULL,
            name TEXT NOT NULL,
            arguments TEXT NOT NULL,
            result TEXT,
            is_error INTEGER NOT NULL DEFAULT 0,
            ms REAL,
            created_at REAL NOT NULL
        );
        CREATE INDEX tool_calls_by_message ON tool_calls(message_id);
        CREATE TABLE ledger (
            id INTEGER PRIMARY KEY,
            ts REAL NOT NULL,
            conversation_id INTEGER,
            message_id INTEGER,
            provider TEXT NOT NULL,
            model TEXT NOT NULL,
            input_tokens INTEGER,
            output_tokens INTEGER,
            cached_input_tokens INTEGER,
            cache_write_tokens INTEGER,
            cost_usd REAL,
            kind TEXT NOT NULL DEFAULT 'chat'
        );
        CREATE INDEX ledger_by_ts ON ledger(ts);
        CREATE INDEX ledger_by_conversation ON ledger(conversation_id);
        """,
    ),
    *ledger.MIGRATIONS,
    sql_migration(
        # One row per turn waiting for or holding a conversation: the lowest id whose owner
        # is alive answers; the rest wait (issue 11: concurrent turns interleaved).
        "003_turn_queue",
        """
        CREATE TABLE turn_queue (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            owner TEXT NOT NULL,
            created_at REAL NOT NULL
        );
        CREATE INDEX turn_queue_by_conversation ON turn_queue(conversation_id, id);
        """,
    ),
    sql_migration(
        # Where in the answer's text each tool call happened, so its card is shown between
        # the text before and after it, after a reload too (issue 14).
        "004_tool_call_offset",
        "ALTER TABLE tool_calls ADD COLUMN text_offset INTEGER;",
    ),
    *window_state.MIGRATIONS,
    *search.MIGRATIONS,
]


@dataclass(frozen=True)
class Conversation:
    """A conversation's row."""

    id: int
    title: str
    created_at: float
    updated_at: float
    current_leaf_id: int | None
    system_prompt: str | None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StoredMessage:
    """A message's row."""

    id: int
    conversation_id: int
    parent_id: int | None
    role: str
    content: str
    provider: str | None
    model: str | None
    status: str
    error: str | None
    input_tokens: int | None
    output_tokens: int | None
    cached_input_tokens: int | None
    cache_write_tokens: int | None
    cost_usd: float | None
    meta: dict[str, Any]
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class StoredToolCall:
    """One tool call made while producing a message."""

    id: int
    message_id: int
    call_id: str
    name: str
    arguments: str
    result: str | None
    is_error: bool
    ms: float | None
    text_offset: int | None = None
    """Characters of the answer's text written before the call (None: not recorded)."""


def _conv(row: sqlite3.Row) -> Conversation:
    return Conversation(
        id=row["id"],
        title=row["title"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        current_leaf_id=row["current_leaf_id"],
        system_prompt=row["system_prompt"],
        options=json.loads(row["options"] or "{}"),
    )


def _tool_call(r: sqlite3.Row) -> StoredToolCall:
    return StoredToolCall(
        r["id"],
        r["message_id"],
        r["call_id"],
        r["name"],
        r["arguments"],
        r["result"],
        bool(r["is_error"]),
        r["ms"],
        r["text_offset"],
    )


_MESSAGE_COLUMNS = (
    "id, conversation_id, parent_id, role, content, provider, model, status, error,"
    " input_tokens, output_tokens, cached_input_tokens, cache_write_tokens, cost_usd, meta,"
    " created_at, updated_at"
)
"""The columns of a message, in :class:`StoredMessage`'s field order."""


def _meta(text: str | None) -> dict[str, Any]:
    return {} if not text or text == "{}" else json.loads(text)  # most rows: no JSON parse


def _msg_tuple(r: tuple[Any, ...]) -> StoredMessage:
    """A message from a plain row of :data:`_MESSAGE_COLUMNS` (the fast path for branches)."""
    return StoredMessage(
        r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13],
        _meta(r[14]), r[15], r[16],
    )  # fmt: skip


def _msg(row: sqlite3.Row) -> StoredMessage:
    return StoredMessage(
        id=row["id"],
        conversation_id=row["conversation_id"],
        parent_id=row["parent_id"],
        role=row["role"],
        content=row["content"],
        provider=row["provider"],
        model=row["model"],
        status=row["status"],
        error=row["error"],
        input_tokens=row["input_tokens"],
        output_tokens=row["output_tokens"],
        cached_input_tokens=row["cached_input_tokens"],
        cache_write_tokens=row["cache_write_tokens"],
        cost_usd=row["cost_usd"],
        meta=_meta(row["meta"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _locked(cls: type) -> type:
    """Serialise every public method on the instance lock.

    One connection is shared by the event-loop thread (reads) and the writer thread; the
    lock keeps one thread's transaction from interleaving with another's statements.
    """
    for name, fn in list(vars(cls).items()):
        if name.startswith("_") or not callable(fn):
            continue

        def wrap(f: Callable[..., object]) -> Callable[..., object]:
            @functools.wraps(f)
            def inner(self: ConversationStore, *a: object, **k: object) -> object:
                with self._lock:
                    return f(self, *a, **k)

            return inner

        setattr(cls, name, wrap(fn))
    return cls


@_locked
class ConversationStore:
    """SQLite-backed conversations, safe to call from several threads."""

    def __init__(self, db_file: Path, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
        self.db_file = db_file
        self._lock = threading.RLock()
        self.conn = connect(db_file, MIGRATIONS, busy_timeout_ms=busy_timeout_ms)

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    # ---- conversations
    def create(
        self,
        title: str = "",
        *,
        system_prompt: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> Conversation:
        """A new, empty conversation."""
        now = time.time()
        with transaction(self.conn) as c:
            cur = c.execute(
                "INSERT INTO conversations(title, created_at, updated_at, system_prompt, options)"
                " VALUES (?,?,?,?,?)",
                (title, now, now, system_prompt, json.dumps(options or {})),
            )
            cid = int(cur.lastrowid or 0)
        return self.get(cid)  # type: ignore[return-value]

    def get(self, conversation_id: int, *, include_deleted: bool = False) -> Conversation | None:
        """A conversation by id, or None."""
        row = self.conn.execute(
            "SELECT * FROM conversations WHERE id=?"
            + ("" if include_deleted else " AND deleted_at IS NULL"),
            (conversation_id,),
        ).fetchone()
        return _conv(row) if row else None

    def list(self, *, query: str | None = None, limit: int = 1000) -> builtins.list[Conversation]:
        """Conversations, most recently updated first; ``query`` matches titles and text."""
        if query and search.uses_index(query) and not self._frequent(query):
            # Message text through the trigram index (search.py); titles are few: LIKE.
            like = f"%{_escape_like(query)}%"
            rows = self.conn.execute(
                "SELECT * FROM conversations c WHERE deleted_at IS NULL AND ("
                " title LIKE ? ESCAPE '\\' OR id IN (SELECT m.conversation_id"
                " FROM messages_fts f JOIN messages m ON m.id = f.rowid"
                " WHERE messages_fts MATCH ?))"
                " ORDER BY updated_at DESC LIMIT ?",
                (like, search.match_phrase(query), limit),
            ).fetchall()
        elif query:
            like = f"%{_escape_like(query)}%"
            rows = self.conn.execute(
                "SELECT * FROM conversations c WHERE deleted_at IS NULL AND ("
                " title LIKE ? ESCAPE '\\' OR EXISTS (SELECT 1 FROM messages m"
                " WHERE m.conversation_id=c.id AND m.content LIKE ? ESCAPE '\\'))"
                " ORDER BY updated_at DESC LIMIT ?",
                (like, like, limit),
            ).fetchall()
        else:
            rows = self.conn.execute(
                "SELECT * FROM conversations WHERE deleted_at IS NULL"
                " ORDER BY updated_at DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [_conv(r) for r in rows]

    def _frequent(self, query: str) -> bool:
        """Whether ``query`` is in so many messages that the scan finds chats faster."""
        args = (search.match_phrase(query), search.FREQUENT)
        return int(self.conn.execute(search.PROBE_SQL, args).fetchone()[0]) >= search.FREQUENT

    def rename(self, conversation_id: int, title: str) -> None:
        """Set the title."""
        with transaction(self.conn) as c:
            c.execute(
                "UPDATE conversations SET title=? WHERE id=?",
                (title.strip()[:200], conversation_id),
            )

    def set_options(self, conversation_id: int, **options: Any) -> Conversation:
        """Merge per-conversation options (tools on/off, knowledge on/off, model...)."""
        with transaction(self.conn) as c:
            row = c.execute(
                "SELECT options FROM conversations WHERE id=?", (conversation_id,)
            ).fetchone()
            merged = {**json.loads(row["options"] or "{}"), **options} if row else options
            c.execute(
                "UPDATE conversations SET options=? WHERE id=?",
                (json.dumps(merged), conversation_id),
            )
        return self.get(conversation_id)  # type: ignore[return-value]

    def set_system_prompt(self, conversation_id: int, prompt: str | None) -> None:
        """Per-conversation system prompt (None: use the global one)."""
        with transaction(self.conn) as c:
            c.execute(
                "UPDATE conversations SET system_prompt=? WHERE id=?", (prompt, conversation_id)
            )

    def delete(self, conversation_id: int) -> None:
        """Soft-delete (the window offers Undo); :meth:`purge_deleted` removes for good."""
        with transaction(self.conn) as c:
            c.execute(
                "UPDATE conversations SET deleted_at=? WHERE id=?", (time.time(), conversation_id)
            )

    def undelete(self, conversation_id: int) -> None:
        """Undo a delete."""
        with transaction(self.conn) as c:
            c.execute("UPDATE conversations SET deleted_at=NULL WHERE id=?", (conversation_id,))

    def purge_deleted(self, older_than_s: float = 0.0) -> int:
        """Remove soft-deleted conversations for good."""
        with transaction(self.conn) as c:
            cur = c.execute(
                "DELETE FROM conversations WHERE deleted_at IS NOT NULL AND deleted_at <= ?",
                (time.time() - older_than_s,),
            )
            return cur.rowcount

    # ---- messages
    def add_message(
        self,
        conversation_id: int,
        role: str,
        content: str,
        *,
        parent_id: int | Literal["leaf"] | None = "leaf",
        provider: str | None = None,
        model: str | None = None,
        status: MessageStatus = "complete",
        meta: dict[str, Any] | None = None,
    ) -> StoredMessage:
        """Append a message (by default under the current leaf) and make it the new leaf."""
        now = time.time()
        with transaction(self.conn) as c:
            if parent_id == "leaf":
                row = c.execute(
                    "SELECT current_leaf_id FROM conversations WHERE id=?", (conversation_id,)
                ).fetchone()
                if row is None:
                    raise KeyError(conversation_id)
                parent_id = row[0]
            cur = c.execute(
                "INSERT INTO messages(conversation_id, parent_id, role, content, provider, model,"
                " status, meta, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    conversation_id,
                    parent_id,
                    role,
                    content,
                    provider,
                    model,
                    status,
                    json.dumps(meta or {}),
                    now,
                    now,
                ),
            )
            mid = int(cur.lastrowid or 0)
            c.execute(
                "UPDATE conversations SET current_leaf_id=?, updated_at=? WHERE id=?",
                (mid, now, conversation_id),
            )
            if role == "user":
                c.execute(
                    "UPDATE conversations SET title=? WHERE id=? AND title=''",
                    (_title_from(content), conversation_id),
                )
        return self.message(mid)  # type: ignore[return-value]

    def update_message(
        self,
        message_id: int,
        *,
        content: str | None = None,
        status: MessageStatus | None = None,
        error: str | None = None,
        provider: str | None = None,
        model: str | None = None,
        usage: tuple[int | None, int | None, int | None, int | None] | None = None,
        cost_usd: float | None = None,
        meta: dict[str, Any] | None = None,
        if_streaming: bool = False,
    ) -> None:
        """Update fields of a message (streamed text is flushed through here).

        ``if_streaming``: only while its status is still "streaming" (a late flush must not
        overwrite the final text of an answer that has ended).
        """
        sets: list[str] = ["updated_at=?"]
        args: list[Any] = [time.time()]
        for col, val in (
            ("content", content),
            ("status", status),
            ("error", error),
            ("provider", provider),
            ("model", model),
            ("cost_usd", cost_usd),
        ):
            if val is not None:
                sets.append(f"{col}=?")
                args.append(val)
        if usage is not None:
            sets.append(
                "input_tokens=?, output_tokens=?, cached_input_tokens=?, cache_write_tokens=?"
            )
            args.extend(usage)
        with transaction(self.conn) as c:
            if meta is not None:
                row = c.execute("SELECT meta FROM messages WHERE id=?", (message_id,)).fetchone()
                merged = {**json.loads(row["meta"] or "{}"), **meta} if row else meta
                sets.append("meta=?")
                args.append(json.dumps(merged))
            where = "id=? AND status='streaming'" if if_streaming else "id=?"
            c.execute(f"UPDATE messages SET {', '.join(sets)} WHERE {where}", (*args, message_id))

    def message(self, message_id: int) -> StoredMessage | None:
        """One message by id."""
        row = self.conn.execute("SELECT * FROM messages WHERE id=?", (message_id,)).fetchone()
        return _msg(row) if row else None

    def branch(
        self, conversation_id: int, leaf_id: int | None = None
    ) -> builtins.list[StoredMessage]:
        """The messages from the root to ``leaf_id`` (default: the current leaf), in order."""
        if leaf_id is None:
            conv = self.get(conversation_id, include_deleted=True)
            if conv is None or conv.current_leaf_id is None:
                return []
            leaf_id = conv.current_leaf_id
        # Plain tuples, not sqlite3.Row: a branch of 10,000 messages is read when a long
        # chat opens (tests/bench/bench_ui.py, open_10000_ms).
        cursor = self.conn.cursor()
        cursor.row_factory = None
        columns = ", ".join(f"messages.{c.strip()}" for c in _MESSAGE_COLUMNS.split(","))
        rows = cursor.execute(
            "WITH RECURSIVE up(id, parent_id, depth) AS ("
            " SELECT id, parent_id, 0 FROM messages WHERE id=? AND conversation_id=?"
            " UNION ALL SELECT m.id, m.parent_id, up.depth+1 FROM messages m"
            " JOIN up ON m.id=up.parent_id)"
            f" SELECT {columns} FROM messages JOIN up ON messages.id=up.id"
            " ORDER BY up.depth DESC",
            (leaf_id, conversation_id),
        ).fetchall()
        return [_msg_tuple(r) for r in rows]

    def siblings(self, message_id: int) -> builtins.list[StoredMessage]:
        """Messages sharing ``message_id``'s parent (its alternatives), oldest first."""
        m = self.message(message_id)
        if m is None:
            return []
        if m.parent_id is None:
            rows = self.conn.execute(
                "SELECT * FROM messages WHERE conversation_id=? AND parent_id IS NULL ORDER BY id",
                (m.conversation_id,),
            ).fetchall()
        else:
            rows = self.conn.execute(
                "SELECT * FROM messages WHERE parent_id=? ORDER BY id", (m.parent_id,)
            ).fetchall()
        return [_msg(r) for r in rows]

    def versions_of(self, conversation_id: int) -> dict[int, tuple[tuple[int, ...], str]]:
        """Messages that have other versions -> (all the versions' ids oldest first, role).

        What :meth:`siblings` gives for each such message, for a whole conversation in one
        query (opening a chat of 10,000 messages asked twice per message before).
        """
        rows = self.conn.execute(
            "SELECT id, parent_id, role FROM messages WHERE conversation_id=? ORDER BY id",
            (conversation_id,),
        ).fetchall()
        groups: dict[int | None, builtins.list[int]] = {}
        roles: dict[int | None, str] = {}
        for mid, parent, role in rows:
            groups.setdefault(parent, []).append(mid)
            roles.setdefault(parent, role)
        return {
            mid: (tuple(ids), roles[parent])
            for parent, ids in groups.items()
            if len(ids) > 1
            for mid in ids
        }

    def sibling_counts(self, conversation_id: int) -> dict[int, tuple[int, int]]:
        """For every message: (its 1-based position among its siblings, how many there are).

        One query for a whole conversation (the window's "‹ 2/3 ›" switchers).
        """
        rows = self.conn.execute(
            "SELECT id, parent_id FROM messages WHERE conversation_id=? ORDER BY id",
            (conversation_id,),
        ).fetchall()
        groups: dict[int | None, builtins.list[int]] = {}
        for r in rows:
            groups.setdefault(r["parent_id"], []).append(r["id"])
        return {mid: (i + 1, len(ids)) for ids in groups.values() for i, mid in enumerate(ids)}

    def latest_leaf(self, message_id: int) -> int:
        """The newest leaf below ``message_id`` (to switch to another branch)."""
        current = message_id
        while True:
            row = self.conn.execute(
                "SELECT id FROM messages WHERE parent_id=? ORDER BY id DESC LIMIT 1", (current,)
            ).fetchone()
            if row is None:
                return current
            current = row[0]

    def delete_answer(self, message_id: int) -> int | None:
        """Delete an answer and what followed it on its branches; the ledger keeps its cost.

        The current branch moves to the newest leaf of a remaining version of the answer,
        else to its question.

        Returns:
            The conversation's new current leaf (None: no such answer, nothing deleted).
        """
        m = self.message(message_id)
        if m is None or m.role != "assistant":
            return None
        others = [s.id for s in self.siblings(message_id) if s.id != message_id]
        older = [i for i in others if i < message_id]
        if others:
            leaf: int | None = self.latest_leaf(older[-1] if older else others[0])
        else:
            leaf = m.parent_id
        with transaction(self.conn) as c:
            c.execute(
                "UPDATE conversations SET current_leaf_id=?, updated_at=? WHERE id=?",
                (leaf, time.time(), m.conversation_id),
            )
            c.execute("DELETE FROM messages WHERE id=?", (message_id,))  # children cascade
        return leaf

    def set_leaf(self, conversation_id: int, leaf_id: int | None) -> None:
        """Make ``leaf_id`` the current branch's end."""
        with transaction(self.conn) as c:
            c.execute(
                "UPDATE conversations SET current_leaf_id=? WHERE id=?", (leaf_id, conversation_id)
            )

    def messages_of(self, conversation_id: int) -> builtins.list[StoredMessage]:
        """Every message of a conversation, all branches, oldest first (parents first)."""
        rows = self.conn.execute(
            "SELECT * FROM messages WHERE conversation_id=? ORDER BY id", (conversation_id,)
        ).fetchall()
        return [_msg(r) for r in rows]

    def insert_conversation(
        self,
        *,
        title: str,
        created_at: float,
        updated_at: float,
        system_prompt: str | None,
        options: dict[str, Any],
        messages: builtins.list[dict[str, Any]],
        current_leaf: int | None,
    ) -> Conversation:
        """Store a whole conversation at once (an import), in one transaction.

        ``messages`` come parents first; their ``id``/``parent`` are the caller's own
        numbers, mapped to new rows here. ``tool_calls`` are ``(call_id, name, arguments,
        result, is_error, ms)`` tuples.
        """
        with transaction(self.conn) as c:
            cur = c.execute(
                "INSERT INTO conversations(title, created_at, updated_at, system_prompt, options)"
                " VALUES (?,?,?,?,?)",
                (title.strip()[:200], created_at, updated_at, system_prompt, json.dumps(options)),
            )
            cid = int(cur.lastrowid or 0)
            new_id: dict[int, int] = {}
            for m in messages:
                parent = new_id.get(m["parent"]) if m["parent"] is not None else None
                cur = c.execute(
                    "INSERT INTO messages(conversation_id, parent_id, role, content, provider,"
                    " model, status, error, input_tokens, output_tokens, cached_input_tokens,"
                    " cache_write_tokens, cost_usd, meta, created_at, updated_at)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        cid,
                        parent,
                        m["role"],
                        m["content"],
                        m["provider"],
                        m["model"],
                        m["status"],
                        m["error"],
                        m["input_tokens"],
                        m["output_tokens"],
                        m["cached_input_tokens"],
                        m["cache_write_tokens"],
                        m["cost_usd"],
                        json.dumps(m["meta"]),
                        m["created_at"],
                        m["updated_at"],
                    ),
                )
                mid = int(cur.lastrowid or 0)
                new_id[m["id"]] = mid
                c.executemany(
                    "INSERT INTO tool_calls(message_id, call_id, name, arguments, result,"
                    " is_error, ms, created_at) VALUES (?,?,?,?,?,?,?,?)",
                    [
                        (mid, *t[:4], int(bool(t[4])), t[5], m["created_at"])
                        for t in m["tool_calls"]
                    ],
                )
            leaf = new_id.get(current_leaf) if current_leaf is not None else None
            c.execute("UPDATE conversations SET current_leaf_id=? WHERE id=?", (leaf, cid))
        return self.get(cid)  # type: ignore[return-value]

    # ---- what the window leaves behind (window_state.py)
    def save_draft(self, conversation_id: int | None, text: str) -> None:
        """Keep the unsent text of a conversation (None: the new chat; "": none)."""
        window_state.save_draft(self.conn, conversation_id, text)

    def drafts(self) -> dict[int, str]:
        """Every kept draft by conversation id (0: the new chat)."""
        return window_state.drafts(self.conn)

    def set_window_value(self, key: str, value: Any) -> None:
        """Remember a JSON value for the window's next start (None forgets it)."""
        window_state.set_value(self.conn, key, value)

    def window_value(self, key: str) -> Any:
        """A value remembered with :meth:`set_window_value`, or None."""
        return window_state.get_value(self.conn, key)

    def data_version(self) -> int:
        """Moves when another connection or process commits (``PRAGMA data_version``)."""
        return window_state.data_version(self.conn)

    def count_messages(self, conversation_id: int) -> int:
        """Number of messages in all branches."""
        row = self.conn.execute(
            "SELECT count(*) FROM messages WHERE conversation_id=?", (conversation_id,)
        ).fetchone()
        return int(row[0])

    # ---- tool calls
    def add_tool_call(
        self,
        message_id: int,
        call_id: str,
        name: str,
        arguments: str,
        *,
        result: str | None = None,
        is_error: bool = False,
        ms: float | None = None,
        text_offset: int | None = None,
    ) -> int:
        """Record one tool call under the assistant message that made it.

        ``text_offset``: how many characters of the answer's text came before the call.
        """
        with transaction(self.conn) as c:
            cur = c.execute(
                "INSERT INTO tool_calls(message_id, call_id, name, arguments, result, is_error,"
                " ms, created_at, text_offset) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    message_id,
                    call_id,
                    name,
                    arguments,
                    result,
                    int(is_error),
                    ms,
                    time.time(),
                    text_offset,
                ),
            )
            return int(cur.lastrowid or 0)

    def finish_tool_call(
        self, row_id: int, *, result: str | None, is_error: bool, ms: float | None = None
    ) -> None:
        """Record the outcome of a call stored when it started."""
        with transaction(self.conn) as c:
            c.execute(
                "UPDATE tool_calls SET result=?, is_error=?, ms=? WHERE id=?",
                (result, int(is_error), ms, row_id),
            )

    def tool_calls(self, message_id: int) -> builtins.list[StoredToolCall]:
        """Tool calls of a message, in order."""
        rows = self.conn.execute(
            "SELECT * FROM tool_calls WHERE message_id=? ORDER BY id", (message_id,)
        ).fetchall()
        return [_tool_call(r) for r in rows]

    def tool_calls_of_conversation(
        self, conversation_id: int
    ) -> dict[int, builtins.list[StoredToolCall]]:
        """Tool calls of every message of a conversation, by message id (one query)."""
        out: dict[int, builtins.list[StoredToolCall]] = {}
        for r in self.conn.execute(
            "SELECT t.* FROM tool_calls t JOIN messages m ON m.id = t.message_id"
            " WHERE m.conversation_id=? ORDER BY t.id",
            (conversation_id,),
        ):
            out.setdefault(r["message_id"], []).append(_tool_call(r))
        return out

    # ---- turn queue (one turn at a time per conversation, across processes)
    def join_turn_queue(self, conversation_id: int, owner: str) -> int:
        """Queue a turn on ``conversation_id`` for ``owner``; its ticket (FIFO order)."""
        with transaction(self.conn) as c:
            cur = c.execute(
                "INSERT INTO turn_queue(conversation_id, owner, created_at) VALUES (?,?,?)",
                (conversation_id, owner, time.time()),
            )
            return int(cur.lastrowid or 0)

    def turns_ahead(self, conversation_id: int, ticket: int, alive: Callable[[str], bool]) -> int:
        """How many live turns are ahead of ``ticket``; tickets of dead owners are removed.

        ``alive(owner)`` says whether an owner (a process) still exists: a turn whose process
        was killed must not block the conversation for good.
        """
        rows = self.conn.execute(
            "SELECT id, owner FROM turn_queue WHERE conversation_id=? AND id<? ORDER BY id",
            (conversation_id, ticket),
        ).fetchall()
        dead = [r["id"] for r in rows if not alive(r["owner"])]
        if dead:
            with transaction(self.conn) as c:
                c.executemany("DELETE FROM turn_queue WHERE id=?", [(d,) for d in dead])
        return len(rows) - len(dead)

    def leave_turn_queue(self, ticket: int) -> None:
        """The turn holding or waiting with ``ticket`` is over."""
        with transaction(self.conn) as c:
            c.execute("DELETE FROM turn_queue WHERE id=?", (ticket,))

    # ---- ledger
    def record_usage(
        self,
        *,
        provider: str,
        model: str,
        usage: tuple[int | None, int | None, int | None, int | None],
        cost_usd: float | None,
        conversation_id: int | None = None,
        message_id: int | None = None,
        kind: str = "chat",
    ) -> None:
        """Add provider-reported usage to the ledger."""
        self.record_request(
            ledger.LedgerEntry(
                provider,
                model,
                *usage,
                cost_usd=cost_usd,
                purpose=kind,
                conversation_id=conversation_id,
                message_id=message_id,
            )
        )

    def record_request(self, entry: ledger.LedgerEntry) -> int:
        """Add one request's row to the ledger (see :mod:`parley.core.store.ledger`)."""
        with transaction(self.conn) as c:
            return ledger.insert(c, entry)

    def conversation_cost(self, conversation_id: int) -> tuple[float, bool]:
        """Total known cost of a conversation and whether some of it is unknown."""
        row = self.conn.execute(
            "SELECT coalesce(sum(cost_usd), 0), sum(CASE WHEN cost_usd IS NULL THEN 1 ELSE 0 END)"
            " FROM ledger WHERE conversation_id=?",
            (conversation_id,),
        ).fetchone()
        return float(row[0]), bool(row[1])


# ---------------------------------------------------------------- turn queue owners
@functools.cache
def process_owner() -> str:
    """This process as a turn-queue owner: ``pid:start time`` (a reused pid is not us)."""
    import psutil

    me = psutil.Process()
    return f"{me.pid}:{me.create_time():.3f}"


def owner_alive(owner: str) -> bool:
    """Whether the process ``owner`` names (see :func:`process_owner`) still runs."""
    import psutil

    pid_text, _, started = owner.partition(":")
    try:
        proc = psutil.Process(int(pid_text))
        same = abs(proc.create_time() - float(started)) < 0.01
        return same and proc.status() != psutil.STATUS_ZOMBIE  # killed, not yet reaped
    except (ValueError, psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:  # someone else's process: it exists
        return True


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _title_from(text: str) -> str:
    line = " ".join(text.split())
    return (line[:60] + "…") if len(line) > 60 else line
