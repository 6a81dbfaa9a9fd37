"""Export a conversation (Markdown, JSON, HTML) and import the JSON back (issue 14 item 9).

Real SQLite, the real ``parley`` command in a subprocess; the import file is untrusted input.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from parley.core.store.conversations import ConversationStore
from parley.core.transfer import (
    ImportRefused,
    export_text,
    import_into,
    parse_import,
    read_conversation,
    to_html,
)
from tests.core.test_cli import parley
from tests.fakes.script import Text


def _shape(store: ConversationStore, conversation_id: int) -> list[tuple]:  # type: ignore[type-arg]
    """What must survive a round trip: the tree (by position), texts, usage, tool calls."""
    msgs = store.messages_of(conversation_id)
    index = {m.id: i for i, m in enumerate(msgs)}
    calls = store.tool_calls_of_conversation(conversation_id)
    conv = store.get(conversation_id)
    assert conv is not None
    return [
        (
            index.get(m.parent_id) if m.parent_id is not None else None,
            m.role,
            m.content,
            m.model,
            m.status,
            m.input_tokens,
            m.output_tokens,
            m.cost_usd,
            m.meta,
            [(c.name, c.arguments, c.result, c.is_error) for c in calls.get(m.id, [])],
            m.id == conv.current_leaf_id,
        )
        for m in msgs
    ]


def _branched(store: ConversationStore) -> int:
    """A conversation with an edited question, a regenerated answer and a tool call."""
    c = store.create("Sorting <records> & more", system_prompt="Be brief.")
    store.set_options(c.id, provider="openai", model="gpt-4o-mini", use_tools=True)
    q1 = store.add_message(c.id, "user", "How do I sort?\n\n<script>alert(1)</script>")
    a1 = store.add_message(c.id, "assistant", "Use `sorted()`.", model="gpt-4o-mini")
    store.update_message(a1.id, usage=(12, 5, 0, 0), cost_usd=0.00042, meta={"fallback": None})
    store.add_tool_call(a1.id, "call_1", "calculator", '{"expression": "2+2"}', result="4")
    store.add_message(c.id, "assistant", "Regenerated: `sorted(key=...)`.", parent_id=q1.id)
    q2 = store.add_message(c.id, "user", "Edited question", parent_id=None)
    store.add_message(
        c.id,
        "assistant",
        "# Heading\n\n[click](javascript:alert(1)) ![x](https://evil.example/p.png) "
        '<img src="https://evil.example/i.png"> [docs](https://docs.python.org)',
        parent_id=q2.id,
        model="gpt-4o-mini",
    )
    return c.id


def test_json_round_trip_keeps_every_branch(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path / "a.sqlite3")
    cid = _branched(store)
    text = export_text(read_conversation(store, cid), "json")
    data = json.loads(text)
    assert data["format"] == "parley.conversation" and data["version"] == 1
    assert len(data["messages"]) == 5
    other = ConversationStore(tmp_path / "b.sqlite3")
    new = import_into(other, parse_import(text.encode()))
    assert new.title == "Sorting <records> & more"
    assert new.system_prompt == "Be brief."
    assert new.options["model"] == "gpt-4o-mini"
    assert _shape(other, new.id) == _shape(store, cid)
    assert [m.content for m in other.branch(new.id)] == [m.content for m in store.branch(cid)]
    store.close()
    other.close()


def test_markdown_and_html_show_the_current_branch_safely(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path / "a.sqlite3")
    cid = _branched(store)
    conv = read_conversation(store, cid)
    md = export_text(conv, "md")
    assert md.startswith("# Sorting <records> & more\n")
    assert "## You\n\n> Edited question" in md
    assert "## Assistant (gpt-4o-mini)\n\n# Heading" in md
    assert "How do I sort?" not in md  # another branch
    page = to_html(conv)
    assert page.startswith("<!DOCTYPE html>")
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert "<script" not in page.lower()
    assert not re.search(r"href=[\"']?\s*javascript:", page, re.I)  # shown as text only
    assert not re.search(r"<img\b", page, re.I)  # no image, raw or Markdown
    assert not re.search(r"<[^>]*\b(?:src|srcset|background)\s*=", page, re.I)  # no fetch
    assert "@import" not in page and "url(" not in page
    assert "Sorting &lt;records&gt; &amp; more" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" not in page  # that question is off-branch
    assert '<a rel="noopener noreferrer" href="https://docs.python.org">docs</a>' in page
    store.close()


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\xff\xfe not json", "not JSON"),
        (b'{"format": "something else"}', "not a conversation exported by Parley"),
        (b'{"format": "parley.conversation", "version": 99}', "newer Parley"),
        (
            b'{"format": "parley.conversation", "version": 1, "conversation": {},'
            b' "messages": [{"id": 1, "parent": 2, "role": "user", "content": "x"}]}',
            "parent that does not come before",
        ),
        (
            b'{"format": "parley.conversation", "version": 1, "conversation": {},'
            b' "messages": [{"id": 1, "role": "root", "content": "x"}]}',
            "unknown role",
        ),
        (
            b'{"format": "parley.conversation", "version": 1, "conversation": {},'
            b' "messages": [{"id": 1, "role": "user", "content": 5}]}',
            "must be text",
        ),
    ],
)
def test_a_bad_import_is_refused_with_one_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(ImportRefused) as err:
        parse_import(payload)
    assert reason in err.value.user_message


def test_cli_export_then_import_gives_the_same_messages(parley_home: Path, fake_llm) -> None:  # type: ignore[no-untyped-def]
    fake_llm.enqueue(Text("First answer."), Text("Second answer."))
    assert parley(parley_home, "ask", "First question", srv=fake_llm).returncode == 0
    p = parley(parley_home, "ask", "--conversation", "1", "Second question", srv=fake_llm)
    assert p.returncode == 0, p.stderr
    out = parley_home / "chat.json"
    p = parley(parley_home, "export", "1", "--format", "json", "-o", str(out))
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == f"Exported conversation 1 to {out}."
    p = parley(parley_home, "import", str(out), "--json")
    assert p.returncode == 0, p.stderr
    new_id = json.loads(p.stdout)["id"]
    assert new_id != 1 and json.loads(p.stdout)["messages"] == 4
    store = ConversationStore(parley_home / "data" / "parley.sqlite3")
    try:
        assert _shape(store, new_id) == _shape(store, 1)
    finally:
        store.close()
    for fmt, start in (("md", "# First question"), ("html", "<!DOCTYPE html>")):
        p = parley(parley_home, "export", "1", "--format", fmt)
        assert p.returncode == 0 and p.stdout.startswith(start), p.stderr
    p = parley(parley_home, "export", "99")
    assert p.returncode == 2 and "no conversation 99" in p.stderr
    bad = parley_home / "bad.json"
    bad.write_text('{"format": "nope"}')
    p = parley(parley_home, "import", str(bad))
    assert p.returncode == 2 and "not a conversation exported by Parley" in p.stderr
    assert "Traceback" not in p.stderr
