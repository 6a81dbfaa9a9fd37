"""SQLite connections: WAL, busy timeout, named migrations recorded in a table.

The window and ``parley`` commands may use one data dir at the same time: WAL lets readers
run beside a writer, ``busy_timeout`` makes a second writer wait instead of failing, and
every write is a short transaction.

Migrations are named, ordered, and recorded in ``_parley_migrations`` (the pattern of
simonw/llm ``llm/migrations.py``); each runs once, in its own transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from parley.core.errors import StorageError

BUSY_TIMEOUT_MS = 10_000
"""How long a writer waits for another process's write lock before giving up."""


@dataclass(frozen=True)
class Migration:
    """One schema step: ``name`` is recorded once applied; ``apply`` runs in a transaction."""

    name: str
    apply: Callable[[sqlite3.Connection], None]


def sql_migration(name: str, script: str) -> Migration:
    """A migration made of plain SQL statements (separated by ``;``)."""

    def apply(conn: sqlite3.Connection) -> None:
        for stmt in _split_sql(script):
            conn.execute(stmt)

    return Migration(name, apply)


def _split_sql(script: str) -> list[str]:
    out: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out


def _writable(folder: Path) -> bool:
    """Whether a file can really be created in ``folder`` (root ignores mode bits)."""
    import tempfile

    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def _describe(exc: BaseException, path: Path) -> StorageError:
    text = str(exc).lower()
    if "unable to open" in text and path.parent.is_dir() and not _writable(path.parent):
        text = "readonly"
    if "readonly" in text or "read-only" in text or "permission" in text:
        msg = f"Parley's data folder is read-only: {path.parent}"
    elif "locked" in text or "busy" in text:
        msg = f"Parley's database is locked by another program: {path}"
    elif "not a database" in text or "malformed" in text or "corrupt" in text:
        msg = f"Parley's database file is damaged: {path} (move it aside to start fresh)"
    elif "unable to open" in text:
        msg = f"Parley's database cannot be opened: {path}"
    else:
        msg = f"Parley's database failed: {exc}"
    return StorageError(msg, detail=repr(exc))


def connect(
    path: Path,
    migrations: Sequence[Migration] = (),
    *,
    readonly: bool = False,
    busy_timeout_ms: int = BUSY_TIMEOUT_MS,
) -> sqlite3.Connection:
    """Open ``path`` (creating it), set WAL and the busy timeout, apply pending migrations.

    Raises:
        StorageError: The file is corrupt, locked, or the folder is not writable.
    """
    try:
        if readonly:
            conn = sqlite3.connect(
                f"file:{path}?mode=ro",
                uri=True,
                timeout=busy_timeout_ms / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                path,
                timeout=busy_timeout_ms / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        if not readonly:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise sqlite3.OperationalError(f"cannot enable WAL (journal_mode={mode})")
            conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        if migrations and not readonly:
            migrate(conn, migrations)
        else:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # detects corruption
        return conn
    except sqlite3.Error as exc:
        raise _describe(exc, path) from exc
    except OSError as exc:
        raise _describe(exc, path) from exc


def migrate(conn: sqlite3.Connection, migrations: Sequence[Migration]) -> list[str]:
    """Apply the migrations not yet recorded; return the names applied."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS _parley_migrations "
        "(name TEXT PRIMARY KEY, applied_at TEXT NOT NULL DEFAULT (datetime('now')))"
    )
    done = {r[0] for r in conn.execute("SELECT name FROM _parley_migrations")}
    applied: list[str] = []
    for m in migrations:
        if m.name in done:
            continue
        with transaction(conn):
            # Another process may have applied it while we waited for the write lock.
            if conn.execute("SELECT 1 FROM _parley_migrations WHERE name=?", (m.name,)).fetchone():
                continue
            m.apply(conn)
            conn.execute("INSERT INTO _parley_migrations(name) VALUES (?)", (m.name,))
        applied.append(m.name)
    return applied


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A short write transaction (BEGIN IMMEDIATE: take the write lock up front).

    Raises:
        StorageError: the database cannot be written.
    """
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        raise _describe(exc, Path(_db_path(conn))) from exc
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    else:
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            conn.execute("ROLLBACK")
            raise _describe(exc, Path(_db_path(conn))) from exc


def _db_path(conn: sqlite3.Connection) -> str:
    row = conn.execute("PRAGMA database_list").fetchone()
    return str(row[2]) if row else "?"
