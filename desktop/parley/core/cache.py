"""The response cache: an identical request at temperature 0 is answered from disk (issue 13).

The key is a hash of the canonical request: provider, base URL, model, system prompt,
messages, tools and the sampling parameters. Only requests sent at temperature 0 are
looked up or stored (the caller decides, with the setting), and Regenerate never looks up:
a person who asks again wants a new answer. A hit is replayed as a fast stream, costs $0
and its ledger row records the money saved.

Entries live in their own SQLite file in Parley's data folder (a cache can be deleted at
any time without touching conversations). Entries older than :data:`MAX_AGE_S` or beyond
:data:`MAX_BYTES` in all (least recently used first) are evicted when an entry is added.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from parley.core.providers.base import Finished, ToolCall, Usage
from parley.core.store.db import connect, sql_migration, transaction

if TYPE_CHECKING:
    from parley.core.providers.base import ChatRequest

MAX_AGE_S = 30 * 86400
"""Entries older than this are never served and are evicted."""
MAX_BYTES = 200 * 1024 * 1024
"""Total size of stored answers (compressed) beyond which the least recently used go."""

KEY_VERSION = 1
"""Part of every key: bump it when the canonical form changes."""

_MIGRATIONS = [
    sql_migration(
        "001_response_cache",
        """
        CREATE TABLE responses (
            key TEXT PRIMARY KEY,
            provider TEXT NOT NULL,
            model TEXT NOT NULL,
            created REAL NOT NULL,
            last_used REAL NOT NULL,
            size INTEGER NOT NULL,
            cost_usd REAL,
            payload BLOB NOT NULL
        );
        CREATE INDEX responses_by_created ON responses(created);
        CREATE INDEX responses_by_use ON responses(last_used);
        """,
    )
]


@dataclass(frozen=True)
class CachedResponse:
    """A stored answer: its text, tool calls, reported usage, how it ended, what it cost."""

    provider: str
    model: str
    text: str
    tool_calls: tuple[ToolCall, ...]
    usage: Usage
    finish: Finished
    cost_usd: float | None
    created: float = 0.0

    def _payload(self) -> bytes:
        data = {
            "text": self.text,
            "tool_calls": [asdict(c) for c in self.tool_calls],
            "usage": asdict(self.usage),
            "finish": asdict(self.finish),
        }
        return zlib.compress(json.dumps(data, ensure_ascii=False).encode("utf-8"))

    @classmethod
    def _from_row(cls, row: sqlite3.Row) -> CachedResponse:
        data = json.loads(zlib.decompress(row["payload"]).decode("utf-8"))
        return cls(
            provider=row["provider"],
            model=row["model"],
            text=data["text"],
            tool_calls=tuple(ToolCall(**c) for c in data["tool_calls"]),
            usage=Usage(**data["usage"]),
            finish=Finished(**data["finish"]),
            cost_usd=row["cost_usd"],
            created=row["created"],
        )


def request_key(provider: str, base_url: str | None, request: ChatRequest) -> str:
    """The cache key of ``request`` sent to ``provider`` at ``base_url``.

    ``cache_prefix`` is left out: prompt-caching marks change the bill, not the answer.
    """
    canonical = {
        "v": KEY_VERSION,
        "provider": provider,
        "base_url": (base_url or "").rstrip("/"),
        "model": request.model,
        "system": request.system,
        "messages": [asdict(m) for m in request.messages],
        "tools": [asdict(t) for t in request.tools],
        "temperature": request.temperature,
        "top_p": request.top_p,
        "max_output_tokens": request.max_output_tokens,
    }
    text = json.dumps(canonical, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class ResponseCache:
    """Stored answers keyed by :func:`request_key`; safe to use from several threads.

    Args:
        db_file: The cache's SQLite file.
        max_age_s: Oldest entry served.
        max_bytes: Most bytes of stored answers kept.
    """

    def __init__(
        self, db_file: Path, *, max_age_s: float = MAX_AGE_S, max_bytes: int = MAX_BYTES
    ) -> None:
        self.db_file = db_file
        self.max_age_s = max_age_s
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    @property
    def conn(self) -> sqlite3.Connection:
        """The connection, opened on first use (the window starts without touching it)."""
        if self._conn is None:
            self._conn = connect(self.db_file, _MIGRATIONS)
        return self._conn

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def get(self, key: str, now: float | None = None) -> CachedResponse | None:
        """The stored answer for ``key`` if there is a fresh one."""
        now = time.time() if now is None else now
        with self._lock:
            row = self.conn.execute(
                "SELECT * FROM responses WHERE key=? AND created>=?", (key, now - self.max_age_s)
            ).fetchone()
            if row is None:
                return None
            with transaction(self.conn) as c:
                c.execute("UPDATE responses SET last_used=? WHERE key=?", (now, key))
        return CachedResponse._from_row(row)

    def put(self, key: str, response: CachedResponse, now: float | None = None) -> None:
        """Store (or replace) the answer for ``key``, then evict what is too old or too much."""
        now = time.time() if now is None else now
        payload = response._payload()
        with self._lock:
            with transaction(self.conn) as c:
                c.execute(
                    "INSERT OR REPLACE INTO responses(key, provider, model, created, last_used,"
                    " size, cost_usd, payload) VALUES (?,?,?,?,?,?,?,?)",
                    (
                        key,
                        response.provider,
                        response.model,
                        now,
                        now,
                        len(payload),
                        response.cost_usd,
                        payload,
                    ),
                )
            self._evict(now)

    def evict(self, now: float | None = None) -> int:
        """Remove old entries, then the least recently used ones beyond the size limit.

        Returns:
            How many entries went.
        """
        with self._lock:
            return self._evict(time.time() if now is None else now)

    def _evict(self, now: float) -> int:
        with transaction(self.conn) as c:
            gone = c.execute(
                "DELETE FROM responses WHERE created < ?", (now - self.max_age_s,)
            ).rowcount
            total = int(c.execute("SELECT coalesce(sum(size), 0) FROM responses").fetchone()[0])
            if total > self.max_bytes:
                excess = total - self.max_bytes
                rows = c.execute("SELECT key, size FROM responses ORDER BY last_used, created")
                doomed: list[str] = []
                for key, size in rows:
                    if excess <= 0:
                        break
                    doomed.append(key)
                    excess -= int(size)
                c.executemany("DELETE FROM responses WHERE key=?", [(k,) for k in doomed])
                gone += len(doomed)
        return int(gone)

    def stats(self) -> dict[str, Any]:
        """Entries and bytes stored (for Settings and tests)."""
        with self._lock:
            n, size = self.conn.execute(
                "SELECT count(*), coalesce(sum(size), 0) FROM responses"
            ).fetchone()
        return {"entries": int(n), "bytes": int(size)}
