"""The versions of every message of a conversation, in one query (the window's switchers)."""

from __future__ import annotations

from pathlib import Path

from parley.core.store.conversations import ConversationStore


def test_versions_of_a_conversation_are_what_siblings_says(tmp_path: Path) -> None:
    s = ConversationStore(tmp_path / "p.sqlite3")
    c, other = s.create(), s.create()
    u1 = s.add_message(c.id, "user", "What is 2+2?")
    a1 = s.add_message(c.id, "assistant", "4")
    a2 = s.add_message(c.id, "assistant", "Four.", parent_id=u1.id)  # regenerated
    u2 = s.add_message(c.id, "user", "What is 3+3?", parent_id=None)  # edited
    a3 = s.add_message(c.id, "assistant", "6", parent_id=u2.id)  # only one version
    s.add_message(other.id, "user", "Elsewhere")  # another chat's root is not a version
    versions = s.versions_of(c.id)
    assert set(versions) == {u1.id, u2.id, a1.id, a2.id}
    for m in (u1, u2, a1, a2, a3):
        sibs = s.siblings(m.id)
        expected = (tuple(x.id for x in sibs), sibs[0].role) if len(sibs) > 1 else None
        assert versions.get(m.id) == expected
    s.close()
