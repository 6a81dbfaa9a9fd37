"""A conversation out of Parley and back in: Markdown, JSON and HTML export, JSON import.

Used by ``parley export`` / ``parley import`` and by the window's File menu; no Qt here.

- **JSON** (:func:`to_json`) is the lossless form: the whole message tree (every version
  of an edited question or regenerated answer), which branch is current, usage and cost,
  tool calls. :func:`parse_import` reads it back and :func:`import_into` stores it as a new
  conversation (new ids; nothing of an existing conversation is touched).
- **Markdown** (:func:`to_markdown`) and **HTML** (:func:`to_html`) are for reading and
  sharing: the current branch only. The HTML page is self-contained and safe to open: its
  text is escaped (Markdown is rendered with raw HTML off and images off, so an answer cannot
  inject markup or make the page fetch anything), its style is inline, and a
  Content-Security-Policy forbids every remote resource and every script.

An import is untrusted input: sizes are capped (:data:`MAX_IMPORT_BYTES`,
:data:`MAX_MESSAGES`), every field is type-checked, parents must come before their children
(no cycles), and anything else is refused with one clear :class:`ImportRefused` message.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from parley import __version__
from parley.core.errors import ParleyError

if TYPE_CHECKING:
    from parley.core.store.conversations import Conversation, ConversationStore

ExportFormat = Literal["md", "json", "html"]

FORMAT = "parley.conversation"
"""The ``format`` field of an exported JSON file."""

VERSION = 1
"""The layout version of an exported JSON file (an import refuses newer ones)."""

MAX_IMPORT_BYTES = 64 * 1024 * 1024
"""Largest file :func:`parse_import` reads."""

MAX_MESSAGES = 100_000
"""Most messages one imported conversation may hold."""

ROLES = ("user", "assistant", "system")
STATUSES = ("complete", "partial", "error", "cancelled")
"""What an imported message may be (an import never brings a "streaming" one back)."""

SUFFIX = {"md": ".md", "json": ".json", "html": ".html"}
"""The file name suffix of each export format."""


class ImportRefused(ParleyError):
    """An import file was not a conversation Parley can read (the message says why)."""


@dataclass(frozen=True)
class ExportedToolCall:
    """One tool call of an answer."""

    call_id: str
    name: str
    arguments: str
    result: str | None = None
    is_error: bool = False
    ms: float | None = None


@dataclass(frozen=True)
class ExportedMessage:
    """One message, its parent named by the file's own ids."""

    id: int
    parent: int | None
    role: str
    content: str
    provider: str | None = None
    model: str | None = None
    status: str = "complete"
    error: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_input_tokens: int | None = None
    cache_write_tokens: int | None = None
    cost_usd: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0
    tool_calls: tuple[ExportedToolCall, ...] = ()


@dataclass(frozen=True)
class ExportedConversation:
    """A whole conversation as exported (or read from an import file)."""

    title: str
    created_at: float
    updated_at: float
    system_prompt: str | None
    options: dict[str, Any]
    messages: tuple[ExportedMessage, ...]
    """Parents before children."""
    current_leaf: int | None

    def branch(self) -> list[ExportedMessage]:
        """The current branch, root first (what Markdown and HTML show)."""
        by_id = {m.id: m for m in self.messages}
        out: list[ExportedMessage] = []
        node = by_id.get(self.current_leaf) if self.current_leaf is not None else None
        while node is not None and len(out) <= len(by_id):
            out.append(node)
            node = by_id.get(node.parent) if node.parent is not None else None
        return out[::-1]


# ---------------------------------------------------------------- reading from the store
def read_conversation(store: ConversationStore, conversation_id: int) -> ExportedConversation:
    """Everything :func:`to_json` writes, read from the store (blocking: call off-thread).

    Raises:
        ImportRefused: no such conversation (the CLI and the window say so).
    """
    conv = store.get(conversation_id)
    if conv is None:
        raise ImportRefused(f"There is no conversation {conversation_id}.")
    calls = {
        mid: [
            ExportedToolCall(c.call_id, c.name, c.arguments, c.result, c.is_error, c.ms)
            for c in rows
        ]
        for mid, rows in store.tool_calls_of_conversation(conversation_id).items()
    }
    messages = tuple(
        ExportedMessage(
            id=m.id,
            parent=m.parent_id,
            role=m.role,
            content=m.content,
            provider=m.provider,
            model=m.model,
            status=m.status,
            error=m.error,
            input_tokens=m.input_tokens,
            output_tokens=m.output_tokens,
            cached_input_tokens=m.cached_input_tokens,
            cache_write_tokens=m.cache_write_tokens,
            cost_usd=m.cost_usd,
            meta=m.meta,
            created_at=m.created_at,
            updated_at=m.updated_at,
            tool_calls=tuple(calls.get(m.id, ())),
        )
        for m in store.messages_of(conversation_id)
    )
    return _from_row(conv, messages)


def _from_row(conv: Conversation, messages: tuple[ExportedMessage, ...]) -> ExportedConversation:
    return ExportedConversation(
        title=conv.title,
        created_at=conv.created_at,
        updated_at=conv.updated_at,
        system_prompt=conv.system_prompt,
        options=dict(conv.options),
        messages=messages,
        current_leaf=conv.current_leaf_id,
    )


# ---------------------------------------------------------------- writing
def export_text(conversation: ExportedConversation, fmt: ExportFormat) -> str:
    """``conversation`` in ``fmt`` (``md``, ``json`` or ``html``)."""
    if fmt == "json":
        return to_json(conversation)
    if fmt == "md":
        return to_markdown(conversation)
    if fmt == "html":
        return to_html(conversation)
    raise ValueError(f"unknown export format {fmt!r}")


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds")


def _message_fields(m: ExportedMessage) -> dict[str, Any]:
    """A message's stored fields, as both the JSON export and the import write them."""
    return {
        "id": m.id,
        "parent": m.parent,
        "role": m.role,
        "content": m.content,
        "provider": m.provider,
        "model": m.model,
        "status": m.status,
        "error": m.error,
        "input_tokens": m.input_tokens,
        "output_tokens": m.output_tokens,
        "cached_input_tokens": m.cached_input_tokens,
        "cache_write_tokens": m.cache_write_tokens,
        "cost_usd": m.cost_usd,
        "meta": m.meta,
        "created_at": m.created_at,
        "updated_at": m.updated_at,
    }


def to_json(conversation: ExportedConversation) -> str:
    """The lossless export (every branch, usage, tool calls), as pretty UTF-8 JSON."""
    data = {
        "format": FORMAT,
        "version": VERSION,
        "exported_by": f"Parley {__version__}",
        "exported_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "conversation": {
            "title": conversation.title,
            "created_at": conversation.created_at,
            "updated_at": conversation.updated_at,
            "system_prompt": conversation.system_prompt,
            "options": conversation.options,
            "current_leaf": conversation.current_leaf,
        },
        "messages": [
            {
                **_message_fields(m),
                "tool_calls": [
                    {
                        "call_id": t.call_id,
                        "name": t.name,
                        "arguments": t.arguments,
                        "result": t.result,
                        "is_error": t.is_error,
                        "ms": t.ms,
                    }
                    for t in m.tool_calls
                ],
            }
            for m in conversation.messages
        ],
    }
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


def _speaker(m: ExportedMessage) -> str:
    if m.role == "user":
        return "You"
    if m.role == "system":
        return "System"
    return f"Assistant ({m.model})" if m.model else "Assistant"


def _fence(text: str) -> str:
    """A code fence longer than any backtick run in ``text``."""
    longest, run = 0, 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    return "`" * max(3, longest + 1)


def to_markdown(conversation: ExportedConversation) -> str:
    """The current branch as Markdown: a heading per message, answers as they were written."""
    title = conversation.title or "Conversation"
    lines = [f"# {_one_line(title)}", ""]
    lines.append(f"_Exported from Parley on {_iso(conversation.updated_at)[:10]}._")
    lines.append("")
    if conversation.system_prompt:
        fence = _fence(conversation.system_prompt)
        lines += ["**System prompt**", "", fence, conversation.system_prompt, fence, ""]
    for m in conversation.branch():
        lines += [f"## {_speaker(m)}", ""]
        if m.role == "user":
            # The person's text is shown as written: quoted, so Markdown in it stays literal.
            lines += [("> " + line) if line else ">" for line in m.content.split("\n")]
        else:
            lines.append(m.content)
        for t in m.tool_calls:
            state = "failed" if t.is_error else "done"
            lines += ["", f"- Tool `{_one_line(t.name)}` ({state})"]
        if m.error:
            lines += ["", f"_Error: {_one_line(m.error)}_"]
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def _one_line(text: str) -> str:
    return " ".join(text.split())


_CSS = """
:root { color-scheme: light dark; --bg:#ffffff; --fg:#1d1d20; --muted:#6b6b75;
  --q:#f1f0fd; --qb:#d6d3f8; --a:#ffffff; --ab:#e4e4e9; --code:#f5f5f7; --accent:#4f46e5; }
@media (prefers-color-scheme: dark) { :root { --bg:#212124; --fg:#ececf1; --muted:#9a9aa6;
  --q:#2c2b45; --qb:#43418a; --a:#252528; --ab:#37373d; --code:#2b2b30; --accent:#a5b4fc; } }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg);
  font: 16px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
main { max-width: 46rem; margin: 0 auto; padding: 2rem 1rem 4rem; }
h1 { font-size: 1.6rem; margin: 0 0 .25rem; }
.meta { color: var(--muted); font-size: .85rem; margin-bottom: 2rem; }
.msg { border: 1px solid var(--ab); background: var(--a); border-radius: 12px;
  padding: .75rem 1rem; margin: 0 0 1rem; overflow-wrap: anywhere; }
.msg.user { background: var(--q); border-color: var(--qb); }
.who { font-weight: 600; font-size: .85rem; color: var(--muted); margin-bottom: .25rem; }
.user .text { white-space: pre-wrap; }
pre { background: var(--code); padding: .75rem; border-radius: 8px; overflow-x: auto; }
code { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace;
  font-size: .9em; background: var(--code); padding: .1em .3em; border-radius: 4px; }
pre code { padding: 0; background: none; }
table { border-collapse: collapse; } th, td { border: 1px solid var(--ab); padding: .3rem .6rem; }
blockquote { margin: 0; padding-left: 1rem; border-left: 3px solid var(--ab); color: var(--muted); }
a { color: var(--accent); }
.note { color: var(--muted); font-size: .85rem; margin-top: .5rem; }
"""

_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "base-uri 'none'; form-action 'none'"
)
"""No script, no remote image, font, style or frame: the page cannot fetch anything."""


def _markdown_html(text: str) -> str:
    """Answer Markdown as HTML: raw HTML and images off, only http(s)/mailto links."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")
    md.disable("image")
    md.validateLink = _safe_link  # type: ignore[method-assign]
    return md.render(text).replace("<a href=", '<a rel="noopener noreferrer" href=')


def _safe_link(url: str) -> bool:
    lowered = url.strip().lower()
    return lowered.startswith(("http://", "https://", "mailto:", "#"))


def to_html(conversation: ExportedConversation) -> str:
    """The current branch as one self-contained, safe HTML page (see the module docstring)."""
    esc = html.escape
    title = conversation.title or "Conversation"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="referrer" content="no-referrer">',
        f"<title>{esc(_one_line(title))}</title>",
        f"<style>{_CSS}</style></head><body><main>",
        f"<h1>{esc(_one_line(title))}</h1>",
        f'<div class="meta">Exported from Parley on {esc(_iso(conversation.updated_at)[:10])}'
        "</div>",
    ]
    if conversation.system_prompt:
        parts.append(
            '<section class="msg system"><div class="who">System prompt</div>'
            f'<div class="text user-text"><pre>{esc(conversation.system_prompt)}</pre></div>'
            "</section>"
        )
    for m in conversation.branch():
        role = m.role if m.role in ROLES else "assistant"
        body = (
            f'<div class="text">{esc(m.content)}</div>'
            if role == "user"
            else f'<div class="text">{_markdown_html(m.content)}</div>'
        )
        notes = "".join(
            f'<div class="note">Tool {esc(_one_line(t.name))}: '
            f"{'failed' if t.is_error else 'done'}</div>"
            for t in m.tool_calls
        )
        if m.error:
            notes += f'<div class="note">Error: {esc(_one_line(m.error))}</div>'
        parts.append(
            f'<section class="msg {role}"><div class="who">{esc(_speaker(m))}</div>'
            f"{body}{notes}</section>"
        )
    parts.append("</main></body></html>")
    return "\n".join(parts) + "\n"


# ---------------------------------------------------------------- reading an import file
def parse_import(data: bytes | str) -> ExportedConversation:
    """Read and check a JSON export (untrusted).

    Raises:
        ImportRefused: with a one-line reason (too large, not JSON, not Parley's format,
            a newer version, a bad field, a parent that does not come first).
    """
    size = len(data.encode("utf-8") if isinstance(data, str) else data)
    if size > MAX_IMPORT_BYTES:
        raise ImportRefused(
            f"The file is too large to import ({size / 1e6:.0f} MB; at most "
            f"{MAX_IMPORT_BYTES // (1024 * 1024)} MB)."
        )
    try:
        text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
        raw = json.loads(text)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ImportRefused(f"The file is not JSON ({_short(str(exc))}).") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise ImportRefused("The file is not a conversation exported by Parley (JSON format).")
    version = raw.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ImportRefused("The file has no valid version number.")
    if version > VERSION:
        raise ImportRefused(
            f"The file was exported by a newer Parley (format {version}); update Parley."
        )
    conv = _obj(raw.get("conversation"), "conversation")
    items = raw.get("messages")
    if not isinstance(items, list):
        raise ImportRefused("The file has no list of messages.")
    if len(items) > MAX_MESSAGES:
        raise ImportRefused(f"The file holds too many messages (at most {MAX_MESSAGES:,}).")
    seen: set[int] = set()
    messages: list[ExportedMessage] = []
    for n, item in enumerate(items, 1):
        m = _message(_obj(item, f"message {n}"), n)
        if m.id in seen:
            raise ImportRefused(f"Message {n} repeats the id {m.id}.")
        if m.parent is not None and m.parent not in seen:
            raise ImportRefused(f"Message {n} names a parent that does not come before it.")
        seen.add(m.id)
        messages.append(m)
    leaf = _int(conv.get("current_leaf"), "conversation.current_leaf", optional=True)
    if leaf is not None and leaf not in seen:
        raise ImportRefused("The file's current message is not among its messages.")
    options = conv.get("options") or {}
    if not isinstance(options, dict):
        raise ImportRefused("conversation.options must be an object.")
    now = dt.datetime.now(dt.UTC).timestamp()
    return ExportedConversation(
        title=_str(conv.get("title"), "conversation.title", optional=True, limit=1000) or "",
        created_at=_time(conv.get("created_at"), now),
        updated_at=_time(conv.get("updated_at"), now),
        system_prompt=_str(conv.get("system_prompt"), "conversation.system_prompt", optional=True),
        options={k: v for k, v in options.items() if isinstance(k, str)},
        messages=tuple(messages),
        current_leaf=leaf if leaf is not None else (messages[-1].id if messages else None),
    )


def _short(text: str, n: int = 80) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _obj(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ImportRefused(f"{where} must be an object.")
    return value


def _str(value: Any, where: str, *, optional: bool = False, limit: int = 20_000_000) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise ImportRefused(f"{where} must be text.")
    if len(value) > limit:
        raise ImportRefused(f"{where} is too long.")
    return value


def _int(value: Any, where: str, *, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or abs(value) > 2**62:
        raise ImportRefused(f"{where} must be a whole number.")
    return value


def _num(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ImportRefused(f"{where} must be a number.")
    return float(value)


def _time(value: Any, default: float) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        if 0 <= value < 1e11:
            return float(value)
    return default


def _count(value: Any, where: str) -> int | None:
    n = _int(value, where, optional=True)
    if n is not None and n < 0:
        raise ImportRefused(f"{where} must not be negative.")
    return n


def _message(item: Mapping[str, Any], n: int) -> ExportedMessage:
    where = f"message {n}"
    role = item.get("role")
    if role not in ROLES:
        raise ImportRefused(f"{where} has an unknown role ({_short(repr(role), 30)}).")
    status = item.get("status") or "complete"
    if status not in STATUSES:
        status = "partial" if status == "streaming" else "complete"
    meta = item.get("meta") or {}
    if not isinstance(meta, dict):
        raise ImportRefused(f"{where}.meta must be an object.")
    raw_calls = item.get("tool_calls") or []
    if not isinstance(raw_calls, list):
        raise ImportRefused(f"{where}.tool_calls must be a list.")
    calls = []
    for k, c in enumerate(raw_calls, 1):
        call = _obj(c, f"{where}, tool call {k}")
        cw = f"{where}, tool call {k}"
        calls.append(
            ExportedToolCall(
                call_id=_str(call.get("call_id"), f"{cw}.call_id", limit=500) or "",
                name=_str(call.get("name"), f"{cw}.name", limit=500) or "",
                arguments=_str(call.get("arguments"), f"{cw}.arguments") or "",
                result=_str(call.get("result"), f"{cw}.result", optional=True),
                is_error=bool(call.get("is_error")),
                ms=_num(call.get("ms"), f"{cw}.ms"),
            )
        )
    now = dt.datetime.now(dt.UTC).timestamp()
    created = _time(item.get("created_at"), now)
    return ExportedMessage(
        id=_int(item.get("id"), f"{where}.id") or 0,
        parent=_int(item.get("parent"), f"{where}.parent", optional=True),
        role=str(role),
        content=_str(item.get("content"), f"{where}.content") or "",
        provider=_str(item.get("provider"), f"{where}.provider", optional=True, limit=200),
        model=_str(item.get("model"), f"{where}.model", optional=True, limit=500),
        status=str(status),
        error=_str(item.get("error"), f"{where}.error", optional=True, limit=10_000),
        input_tokens=_count(item.get("input_tokens"), f"{where}.input_tokens"),
        output_tokens=_count(item.get("output_tokens"), f"{where}.output_tokens"),
        cached_input_tokens=_count(item.get("cached_input_tokens"), f"{where}.cached_input_tokens"),
        cache_write_tokens=_count(item.get("cache_write_tokens"), f"{where}.cache_write_tokens"),
        cost_usd=_num(item.get("cost_usd"), f"{where}.cost_usd"),
        meta=meta,
        created_at=created,
        updated_at=_time(item.get("updated_at"), created),
        tool_calls=tuple(calls),
    )


# ---------------------------------------------------------------- storing an import
def import_into(store: ConversationStore, conversation: ExportedConversation) -> Conversation:
    """Store ``conversation`` as a new one (new ids, one transaction); its row.

    Blocking: call it on the database's writer thread (``ChatSession.import_conversation``)
    or from the command line.
    """
    return store.insert_conversation(
        title=conversation.title,
        created_at=conversation.created_at,
        updated_at=conversation.updated_at,
        system_prompt=conversation.system_prompt,
        options=conversation.options,
        messages=[
            {
                **_message_fields(m),
                "tool_calls": [
                    (t.call_id, t.name, t.arguments, t.result, t.is_error, t.ms)
                    for t in m.tool_calls
                ],
            }
            for m in conversation.messages
        ],
        current_leaf=conversation.current_leaf,
    )
