"""Searching the chats: an FTS5 index of every message's text (issue 14, the sidebar search).

The sidebar's search used ``LIKE '%text%'`` over every message: a full scan, ~100 ms and
growing with the history. ``messages_fts`` is an FTS5 table with the **trigram** tokenizer,
which keeps exactly what the person knew (a case-insensitive substring match, inside words
and across punctuation, in any script, CJK included) while answering from an index:
``tests/bench/bench_ui.py`` measures it over 100,000 messages (``chat_search_100k_ms``).

A word that is everywhere is the index's worst case (thousands of matches to gather) and
the scan's best (``EXISTS`` stops at each chat's first match), so a query first asks the
index for up to :data:`FREQUENT` matches (about a millisecond): fewer, and the matches come
from the index; that many, and the scan answers (tens of milliseconds either way, over
100,000 messages, instead of ~100 ms for a rare word by scanning).

Triggers keep it in step with ``messages``. An answer is indexed once it stops streaming
(its text is rewritten several times a second while it streams; reindexing each flush would
cost the writer for nothing), so a search finds it from the moment it is complete. A query
shorter than three characters cannot use trigrams and falls back to a scan.
"""

from __future__ import annotations

from parley.core.store.db import Migration, sql_migration

MIN_INDEXED_QUERY = 3
"""Shortest query (in characters) the trigram index can answer."""

FREQUENT = 2000
"""A query matching at least this many messages is answered by the scan (see above)."""

PROBE_SQL = "SELECT count(*) FROM (SELECT 1 FROM messages_fts WHERE messages_fts MATCH ? LIMIT ?)"
"""How many messages (up to the limit) match a phrase."""

MIGRATIONS: list[Migration] = [
    sql_migration(
        "006_messages_fts",
        """
        CREATE VIRTUAL TABLE messages_fts USING fts5(content, tokenize = 'trigram');
        INSERT INTO messages_fts(rowid, content)
            SELECT id, content FROM messages WHERE status != 'streaming';
        CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages
        WHEN new.status != 'streaming'
        BEGIN
            INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
        END;
        CREATE TRIGGER messages_fts_update AFTER UPDATE OF content, status ON messages
        WHEN new.status != 'streaming'
        BEGIN
            DELETE FROM messages_fts WHERE rowid = old.id;
            INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
        END;
        CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages
        BEGIN
            DELETE FROM messages_fts WHERE rowid = old.id;
        END;
        """,
    ),
]


def match_phrase(query: str) -> str:
    """``query`` as one FTS5 phrase (quotes doubled): with trigrams, a substring match."""
    return '"' + query.replace('"', '""') + '"'


def uses_index(query: str) -> bool:
    """Whether the trigram index can answer ``query`` (three characters or more)."""
    return len(query) >= MIN_INDEXED_QUERY
