"""The ledger: one row per request Parley made to a model API, and the queries over it.

Each chat round, tool round and (when chosen) OpenAI embedding request is recorded when its
usage arrives, not at the end of the turn, so a crash mid-turn loses no row (issue 13).
A row keeps the provider-reported tokens (input, cached input, cache write, output), the
cost (NULL when a price is unknown: never a made-up $0), why the request was made
(``kind``: chat / tool_round / embedding), whether a fallback model answered, whether the
answer came from Parley's response cache (then ``saved_usd`` is what it would have cost),
and the pre-send estimate beside the reported input (which calibrates future estimates).

A trigger keeps ``ledger_days``, a roll-up per local day, provider, model and kind, in step
with every insert, so the cost panel and ``parley costs`` read a few hundred roll-up rows
instead of summing a year of requests.
"""

from __future__ import annotations

import csv
import datetime as dt
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from parley.core.store.db import BUSY_TIMEOUT_MS, Migration, connect, sql_migration, transaction
from parley.core.tokens import Calibration, calibrate

Purpose = Literal["chat", "tool_round", "embedding", "title"]
GroupBy = Literal["model", "day", "purpose"]

CALIBRATION_SAMPLES = 20
"""Recent requests of a model that calibrate its token estimates."""

MIGRATIONS: list[Migration] = [
    sql_migration(
        "002_ledger_money",
        """
        ALTER TABLE ledger ADD COLUMN day TEXT;
        ALTER TABLE ledger ADD COLUMN fallback INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE ledger ADD COLUMN cache_hit INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE ledger ADD COLUMN saved_usd REAL;
        ALTER TABLE ledger ADD COLUMN local INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE ledger ADD COLUMN est_input_tokens INTEGER;
        ALTER TABLE ledger ADD COLUMN est_exact INTEGER;
        ALTER TABLE ledger ADD COLUMN est_basis_tokens INTEGER;
        ALTER TABLE ledger ADD COLUMN est_method TEXT;
        UPDATE ledger SET day = date(ts, 'unixepoch', 'localtime') WHERE day IS NULL;
        CREATE INDEX ledger_by_message ON ledger(message_id);
        CREATE INDEX ledger_by_model ON ledger(provider, model, id);
        CREATE TABLE ledger_days (
            day TEXT NOT NULL,
            provider TEXT NOT NULL,
            model TEXT NOT NULL,
            kind TEXT NOT NULL,
            requests INTEGER NOT NULL DEFAULT 0,
            input_tokens INTEGER NOT NULL DEFAULT 0,
            output_tokens INTEGER NOT NULL DEFAULT 0,
            cached_input_tokens INTEGER NOT NULL DEFAULT 0,
            cache_write_tokens INTEGER NOT NULL DEFAULT 0,
            cost_usd REAL NOT NULL DEFAULT 0,
            unknown INTEGER NOT NULL DEFAULT 0,
            saved_usd REAL NOT NULL DEFAULT 0,
            cache_hits INTEGER NOT NULL DEFAULT 0,
            local INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (day, provider, model, kind)
        ) WITHOUT ROWID;
        INSERT INTO ledger_days
            SELECT day, provider, model, kind, count(*), coalesce(sum(input_tokens), 0),
                   coalesce(sum(output_tokens), 0), coalesce(sum(cached_input_tokens), 0),
                   coalesce(sum(cache_write_tokens), 0), coalesce(sum(cost_usd), 0),
                   sum(cost_usd IS NULL), coalesce(sum(saved_usd), 0), sum(cache_hit),
                   sum(local)
            FROM ledger GROUP BY day, provider, model, kind;
        CREATE TRIGGER ledger_days_add AFTER INSERT ON ledger BEGIN
            INSERT INTO ledger_days(day, provider, model, kind, requests, input_tokens,
                output_tokens, cached_input_tokens, cache_write_tokens, cost_usd, unknown,
                saved_usd, cache_hits, local)
            VALUES (coalesce(NEW.day, date(NEW.ts, 'unixepoch', 'localtime')), NEW.provider,
                NEW.model, NEW.kind, 1, coalesce(NEW.input_tokens, 0),
                coalesce(NEW.output_tokens, 0), coalesce(NEW.cached_input_tokens, 0),
                coalesce(NEW.cache_write_tokens, 0), coalesce(NEW.cost_usd, 0),
                NEW.cost_usd IS NULL, coalesce(NEW.saved_usd, 0), NEW.cache_hit, NEW.local)
            ON CONFLICT(day, provider, model, kind) DO UPDATE SET
                requests = requests + 1,
                input_tokens = input_tokens + excluded.input_tokens,
                output_tokens = output_tokens + excluded.output_tokens,
                cached_input_tokens = cached_input_tokens + excluded.cached_input_tokens,
                cache_write_tokens = cache_write_tokens + excluded.cache_write_tokens,
                cost_usd = cost_usd + excluded.cost_usd,
                unknown = unknown + excluded.unknown,
                saved_usd = saved_usd + excluded.saved_usd,
                cache_hits = cache_hits + excluded.cache_hits,
                local = local + excluded.local;
        END;
        CREATE TABLE budget_confirmations (
            day TEXT PRIMARY KEY,
            ts REAL NOT NULL,
            spent_usd REAL
        );
        """,
    ),
]


def local_day(ts: float | None = None) -> str:
    """The local calendar day of ``ts`` (now by default) as ``YYYY-MM-DD``."""
    return time.strftime("%Y-%m-%d", time.localtime(time.time() if ts is None else ts))


@dataclass(frozen=True)
class LedgerEntry:
    """One request's row. Token counts are the provider's (None: not reported).

    ``input_tokens`` counts every prompt token, cached ones included (as
    :class:`~parley.core.providers.base.Usage` does).
    """

    provider: str
    model: str
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_input_tokens: int | None = None
    cache_write_tokens: int | None = None
    cost_usd: float | None = None
    purpose: str = "chat"
    conversation_id: int | None = None
    message_id: int | None = None
    fallback: bool = False
    cache_hit: bool = False
    saved_usd: float | None = None
    local: bool = False
    est_input_tokens: int | None = None
    est_exact: bool | None = None
    est_basis_tokens: int | None = None
    est_method: str | None = None
    ts: float = field(default_factory=time.time)


def insert(conn: sqlite3.Connection, e: LedgerEntry) -> int:
    """Add ``e`` (the caller holds a transaction); returns the row id."""
    cur = conn.execute(
        "INSERT INTO ledger(ts, day, conversation_id, message_id, provider, model, input_tokens,"
        " output_tokens, cached_input_tokens, cache_write_tokens, cost_usd, kind, fallback,"
        " cache_hit, saved_usd, local, est_input_tokens, est_exact, est_basis_tokens,"
        " est_method) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            e.ts,
            local_day(e.ts),
            e.conversation_id,
            e.message_id,
            e.provider,
            e.model,
            e.input_tokens,
            e.output_tokens,
            e.cached_input_tokens,
            e.cache_write_tokens,
            e.cost_usd,
            e.purpose,
            int(e.fallback),
            int(e.cache_hit),
            e.saved_usd,
            int(e.local),
            e.est_input_tokens,
            None if e.est_exact is None else int(e.est_exact),
            e.est_basis_tokens,
            e.est_method,
        ),
    )
    return int(cur.lastrowid or 0)


# ---------------------------------------------------------------- query results


@dataclass(frozen=True)
class Totals:
    """Sums over some requests.

    ``cost_usd`` is the known part; ``unknown`` counts requests whose price is unknown (then
    the true total is higher than ``cost_usd``).
    """

    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float = 0.0
    unknown: int = 0
    saved_usd: float = 0.0
    cache_hits: int = 0
    local: int = 0

    @property
    def cost_known(self) -> bool:
        """Whether every request's cost is known."""
        return self.unknown == 0

    @property
    def all_local(self) -> bool:
        """Whether every request went to a server on this machine (really $0)."""
        return self.requests > 0 and self.local == self.requests

    def to_json(self) -> dict[str, Any]:
        """JSON form: ``cost_usd`` is null when nothing of it is known."""
        d = asdict(self)
        everything_unknown = self.requests > 0 and self.unknown == self.requests
        d["cost_usd"] = None if everything_unknown else round(self.cost_usd, 8)
        d["saved_usd"] = round(self.saved_usd, 8)
        d["cost_complete"] = self.cost_known
        return d


@dataclass(frozen=True)
class Group:
    """Totals for one model, day or purpose."""

    key: str
    provider: str | None
    totals: Totals

    def to_json(self, by: str) -> dict[str, Any]:
        """JSON form: the key under its own name, then the totals."""
        out: dict[str, Any] = {by: self.key}
        if self.provider is not None:
            out["provider"] = self.provider
        out.update(self.totals.to_json())
        return out


_ROW_SUMS = (
    "count(*), coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0),"
    " coalesce(sum(cached_input_tokens), 0), coalesce(sum(cache_write_tokens), 0),"
    " coalesce(sum(cost_usd), 0), coalesce(sum(cost_usd IS NULL), 0),"
    " coalesce(sum(saved_usd), 0), coalesce(sum(cache_hit), 0), coalesce(sum(local), 0)"
)


def _totals(row: sqlite3.Row | tuple[Any, ...], offset: int = 0) -> Totals:
    v = tuple(row)[offset:]
    return Totals(
        requests=int(v[0]),
        input_tokens=int(v[1]),
        output_tokens=int(v[2]),
        cached_input_tokens=int(v[3]),
        cache_write_tokens=int(v[4]),
        cost_usd=float(v[5]),
        unknown=int(v[6]),
        saved_usd=float(v[7]),
        cache_hits=int(v[8]),
        local=int(v[9]),
    )


_ROLLUP = (
    "coalesce(sum(requests), 0), coalesce(sum(input_tokens), 0),"
    " coalesce(sum(output_tokens), 0), coalesce(sum(cached_input_tokens), 0),"
    " coalesce(sum(cache_write_tokens), 0), coalesce(sum(cost_usd), 0),"
    " coalesce(sum(unknown), 0), coalesce(sum(saved_usd), 0), coalesce(sum(cache_hits), 0),"
    " coalesce(sum(local), 0)"
)

CSV_COLUMNS = (
    "time",
    "provider",
    "model",
    "purpose",
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "output_tokens",
    "cost_usd",
    "saved_usd",
    "fallback",
    "cache_hit",
    "local",
    "estimated_input_tokens",
    "estimate_exact",
    "conversation_id",
    "message_id",
)


def _day_range(since: str | None, until: str | None) -> tuple[str, list[str]]:
    where, args = [], []
    if since:
        where.append("day >= ?")
        args.append(since)
    if until:
        where.append("day <= ?")
        args.append(until)
    return (" WHERE " + " AND ".join(where)) if where else "", args


class Ledger:
    """Reads (and a few writes) over the ledger, on its own connection.

    Safe to call from several threads (one lock). The chat session writes request rows
    through :class:`~parley.core.store.conversations.ConversationStore` (one writer
    connection for a turn); this class serves the cost panel, ``parley costs``, budgets,
    estimate calibration and the embedding requests of the indexer.
    """

    def __init__(self, db_file: Path, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
        from parley.core.store.conversations import MIGRATIONS as ALL

        self.db_file = db_file
        self._lock = threading.RLock()
        self.conn = connect(db_file, ALL, busy_timeout_ms=busy_timeout_ms)

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self.conn.close()

    def _one(self, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> Any:
        with self._lock:
            return self.conn.execute(sql, args).fetchone()

    def _all(self, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> list[Any]:
        with self._lock:
            return self.conn.execute(sql, args).fetchall()

    # ---- writes
    def record(self, entry: LedgerEntry) -> int:
        """Add one request's row (its own short transaction)."""
        with self._lock, transaction(self.conn) as c:
            return insert(c, entry)

    # ---- totals
    def totals(self, since: str | None = None, until: str | None = None) -> Totals:
        """Totals over local days ``since``..``until`` (inclusive ``YYYY-MM-DD``; None: open)."""
        where, args = _day_range(since, until)
        return _totals(self._one(f"SELECT {_ROLLUP} FROM ledger_days{where}", args))

    def today(self, now: float | None = None) -> Totals:
        """Today's totals (local day)."""
        day = local_day(now)
        return self.totals(day, day)

    def month(self, now: float | None = None) -> Totals:
        """This calendar month's totals (local time)."""
        day = local_day(now)
        return self.totals(day[:8] + "01", day)

    def message(self, message_id: int) -> Totals:
        """Totals of the requests that produced one message (its tool rounds included)."""
        return _totals(
            self._one(f"SELECT {_ROW_SUMS} FROM ledger WHERE message_id=?", (message_id,))
        )

    def conversation(self, conversation_id: int) -> Totals:
        """Totals of one conversation."""
        return _totals(
            self._one(f"SELECT {_ROW_SUMS} FROM ledger WHERE conversation_id=?", (conversation_id,))
        )

    def breakdown(
        self, by: GroupBy, since: str | None = None, until: str | None = None
    ) -> list[Group]:
        """Totals per model (with its provider), per local day or per purpose.

        Models and purposes come most expensive first; days in calendar order.
        """
        where, args = _day_range(since, until)
        if by == "model":
            rows = self._all(
                f"SELECT model, provider, {_ROLLUP} FROM ledger_days{where}"
                " GROUP BY model, provider ORDER BY sum(cost_usd) DESC, model",
                args,
            )
            return [Group(r[0], r[1], _totals(r, 2)) for r in rows]
        col = "day" if by == "day" else "kind"
        order = "day" if by == "day" else "sum(cost_usd) DESC, kind"
        rows = self._all(
            f"SELECT {col}, {_ROLLUP} FROM ledger_days{where} GROUP BY {col} ORDER BY {order}",
            args,
        )
        return [Group(r[0], None, _totals(r, 1)) for r in rows]

    def daily(self, days: int = 30, now: float | None = None) -> list[tuple[str, float, int]]:
        """``(day, known cost, unknown requests)`` for each of the last ``days`` local days.

        Oldest first; days without requests are included (as 0).
        """
        end = dt.date.fromisoformat(local_day(now))
        start = end - dt.timedelta(days=days - 1)
        rows = self._all(
            "SELECT day, sum(cost_usd), sum(unknown) FROM ledger_days WHERE day >= ? AND day <= ?"
            " GROUP BY day",
            (start.isoformat(), end.isoformat()),
        )
        found = {r[0]: (float(r[1] or 0), int(r[2] or 0)) for r in rows}
        out = []
        for i in range(days):
            d = (start + dt.timedelta(days=i)).isoformat()
            cost, unknown = found.get(d, (0.0, 0))
            out.append((d, cost, unknown))
        return out

    # ---- rows and export
    def entries(
        self, since: str | None = None, until: str | None = None, *, limit: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """Request rows, oldest first, as dicts with the CSV columns."""
        where, args = _day_range(since, until)
        sql = (
            "SELECT ts, provider, model, kind, input_tokens, cached_input_tokens,"
            " cache_write_tokens, output_tokens, cost_usd, saved_usd, fallback, cache_hit,"
            f" local, est_input_tokens, est_exact, conversation_id, message_id FROM ledger{where}"
            " ORDER BY ts, id"
        )
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        for r in self._all(sql, args):
            d = dict(zip(CSV_COLUMNS, tuple(r), strict=True))
            d["time"] = dt.datetime.fromtimestamp(r[0]).astimezone().isoformat(timespec="seconds")
            for k in ("fallback", "cache_hit", "local"):
                d[k] = bool(d[k])
            if d["estimate_exact"] is not None:
                d["estimate_exact"] = bool(d["estimate_exact"])
            yield d

    def write_csv(self, fh: IO[str], since: str | None = None, until: str | None = None) -> int:
        """Export request rows as CSV (an empty cell is an unknown); returns the row count."""
        w = csv.writer(fh)
        w.writerow(CSV_COLUMNS)
        n = 0
        for d in self.entries(since, until):
            w.writerow(["" if d[c] is None else d[c] for c in CSV_COLUMNS])
            n += 1
        return n

    # ---- estimates
    def calibration(self, provider: str, model: str, method: str) -> Calibration | None:
        """How ``model``'s reported input compared with our ``method`` basis count, lately."""
        rows = self._all(
            "SELECT est_basis_tokens, input_tokens FROM ledger WHERE provider=? AND model=?"
            " AND est_method=? AND est_basis_tokens > 0 AND input_tokens > 0 AND cache_hit=0"
            " ORDER BY id DESC LIMIT ?",
            (provider, model, method, CALIBRATION_SAMPLES),
        )
        return calibrate((int(b), int(r)) for b, r in rows)

    # ---- budgets
    def budget_confirmed(self, day: str) -> bool:
        """Whether spending over the budget was confirmed on ``day``."""
        return self._one("SELECT 1 FROM budget_confirmations WHERE day=?", (day,)) is not None

    def confirm_budget(self, day: str, spent_usd: float | None = None) -> None:
        """Remember that the person chose to keep sending over the budget on ``day``."""
        with self._lock, transaction(self.conn) as c:
            c.execute(
                "INSERT OR REPLACE INTO budget_confirmations(day, ts, spent_usd) VALUES (?,?,?)",
                (day, time.time(), spent_usd),
            )
