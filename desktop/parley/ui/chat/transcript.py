"""The transcript: what the chat view shows of one conversation, kept in step with its turns.

A presenter between the :class:`~parley.ui.controllers.ChatController` (turn events as Qt
signals) and the :class:`~parley.ui.chat.view.ChatView`: it turns a stored branch into chat
items, appends the question and the streaming answer when a turn starts, hands streamed text
to the view (only for the answer on screen: switching chats mid-answer and back re-shows the
live stream from the controller's text), keeps tool cards and citation footers up to date, and
works out which messages have other versions (for the branch bar and the context menu).

Conversations are read in a worker thread (:func:`load_conversation`), never on the GUI
thread; the newest load wins. The transcript never writes: writes are ``ChatSession``
operations run by the window.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal

from parley.core.costs import format_usd
from parley.ui.chat.model import ChatItem, ChatRole, FooterItem, MessageStatus
from parley.ui.costs.format import FROM_CACHE
from parley.ui.knowledge.citations import (
    citation_footer,
    parse_sources,
    sources_from_meta,
    without_citations,
)
from parley.ui.message_actions import BranchBar, Versions

if TYPE_CHECKING:
    from parley.core.chat import TurnFinished
    from parley.core.store.conversations import (
        Conversation,
        ConversationStore,
        StoredMessage,
        StoredToolCall,
    )
    from parley.ui.chat.view import ChatView
    from parley.ui.controllers import ChatController, RunningTurn
    from parley.ui.notices import NoticeBar
    from parley.ui.status import StatusStrip
    from parley.ui.tasks import TaskSet

CACHE_FOOTER = FooterItem(FROM_CACHE, kind="cache")
"""Under an answer replayed from Parley's response cache (it cost nothing, issue 13)."""

TOOL_HREF = "parley-tool:"
"""Footer link of a tool card: a click shows or hides its arguments and result."""

CLIP_CHARS = 400
"""Longest argument or result text shown in an opened tool card."""

_RETRY_HINT = re.compile(
    r"[;,.]?\s*(?:please\s+)?(?:retry|try again) in [\d.]+\s*s(?:econds)?\.?\s*$", re.I
)


@dataclass(frozen=True)
class LoadedConversation:
    """One conversation as read in a worker thread: its row, branch, tool calls and cost."""

    conversation: Conversation
    branch: list[StoredMessage]
    tool_calls: dict[int, list[StoredToolCall]] = field(default_factory=dict)
    """Tool calls of each assistant message on the branch (by message id)."""
    cost: tuple[float, bool] = (0.0, False)
    """Known cost of the conversation, and whether some of it is unknown."""


def load_conversation(store: ConversationStore, conversation_id: int) -> LoadedConversation | None:
    """Read what showing a conversation needs (blocking: call it in a worker thread)."""
    conv = store.get(conversation_id)
    if conv is None:
        return None
    branch = store.branch(conversation_id)
    calls = store.tool_calls_of_conversation(conversation_id)  # one query, not one per answer
    return LoadedConversation(conv, branch, calls, store.conversation_cost(conversation_id))


@dataclass(frozen=True)
class ToolRun:
    """One tool call under an answer (live from the controller, or stored)."""

    call_id: str
    name: str
    arguments: str
    result: str | None = None
    is_error: bool = False
    ms: float | None = None
    offset: int | None = None
    """Characters of the answer's text written before the call (where its card goes)."""


class Transcript(QObject):
    """Keeps the chat view showing one conversation and its running turn.

    Args:
        view: The chat view.
        controller: The chat controller whose turn signals are shown.
        store: Read (in worker threads) to load conversations and versions.
        tasks: Where loads run.
        notice: The window's notice bar (retry countdowns).
        status: The window's status strip (tools, fallbacks, the last turn's usage).
        branch_bar: Shows the versions of the newest message that has several.
        is_local: Whether a provider id is a local server (free turns).
        price_of: The price used for a (provider, model), as text for the usage tooltip
            (None: unknown).
    """

    # ---- Signals
    sig_conversation_missing = Signal(int)
    """A conversation asked for no longer exists (its id)."""
    sig_sources_changed = Signal(str)
    """An answer on screen got (new) knowledge sources (its message id)."""
    sig_turn_ended = Signal(int)
    """A turn ended (finished or stopped) and is saved: its conversation id."""

    def __init__(
        self,
        *,
        view: ChatView,
        controller: ChatController,
        store: ConversationStore,
        tasks: TaskSet,
        notice: NoticeBar,
        status: StatusStrip,
        branch_bar: BranchBar,
        is_local: Callable[[str], bool],
        price_of: Callable[[str, str], str | None] | None = None,
    ) -> None:
        super().__init__(view)
        self.view = view
        self._controller = controller
        self._store = store
        self._tasks = tasks
        self._notice = notice
        self._status = status
        self._branch_bar = branch_bar
        self._is_local = is_local
        self._price_of = price_of
        self._remember: Callable[[str | int, Iterable[Any], str | None], list[Any]] | None = None
        self.conversation_id: int | None = None
        """The conversation shown (None: a new, empty chat)."""
        self.loading_id: int | None = None
        """The conversation being loaded, if any."""
        self._load_generation = 0
        self._versions_generation = 0
        self._versions: dict[str, Versions] = {}
        self._view_stream: str | None = None
        self._agent_notes: dict[int, str] = {}
        self._tool_runs: dict[tuple[str, str], ToolRun] = {}
        self._tools_open: set[tuple[str, str]] = set()
        self._outgoing: tuple[str, ...] = ()
        self._live_sources: dict[str, Any] = {}

        c = controller
        c.sig_turn_started.connect(self._turn_started)
        c.sig_text_arrived.connect(self._text_arrived)
        c.sig_retry_scheduled.connect(self._retry_scheduled)
        c.sig_attempt_started.connect(self._attempt_started)
        c.sig_fallback_used.connect(self._fallback_used)
        c.sig_tool_started.connect(self._tool_started)
        c.sig_tool_call_started.connect(self._tool_call_started)
        c.sig_tool_finished.connect(self._tool_finished)
        c.sig_sources_attached.connect(self._sources_attached)
        c.sig_agent_stopped.connect(self._agent_stopped)
        c.sig_turn_finished.connect(self._turn_finished)
        c.sig_turn_cancelled.connect(self._turn_cancelled)
        c.sig_turn_broken.connect(self._turn_broken)
        view.sig_footer_activated.connect(self._footer_activated)

    # ---- Public API
    def set_sources_memory(
        self, remember: Callable[[str | int, Iterable[Any], str | None], list[Any]] | None
    ) -> None:
        """Where answers' sources are remembered for citation clicks (the documents feature).

        ``remember(message id, sources, search query)``: the query is what was searched when a
        follow-up was rewritten into a standalone query (None: the question as asked).
        """
        self._remember = remember

    def set_outgoing_attachments(self, names: Sequence[str]) -> None:
        """Names of the files sent with the next question (shown under it when it starts)."""
        self._outgoing = tuple(names)

    def versions(self, message_id: str) -> Versions | None:
        """The other versions of a message on the shown branch (None: it has none)."""
        return self._versions.get(message_id)

    def clear(self) -> None:
        """Show a new, empty chat (a pending load is dropped)."""
        self._load_generation += 1
        self.loading_id = None
        self.conversation_id = None
        self._view_stream = None
        self._versions = {}
        self._branch_bar.set_versions(None)
        self.view.clear()

    async def load(self, conversation_id: int) -> LoadedConversation | None:
        """Read a conversation off the GUI thread and show it.

        Returns:
            What was shown; None when it no longer exists (``sig_conversation_missing``) or
            another load or :meth:`clear` came after this one.
        """
        self._load_generation += 1
        generation = self._load_generation
        self.loading_id = conversation_id
        loaded = await asyncio.to_thread(load_conversation, self._store, conversation_id)
        if generation != self._load_generation:
            return None
        self.loading_id = None
        if loaded is None:
            self.sig_conversation_missing.emit(conversation_id)
            return None
        self.show(loaded)
        return loaded

    def reload(self) -> asyncio.Task[Any] | None:
        """Load the shown conversation again (its branch changed)."""
        if self.conversation_id is None:
            return None
        return self._tasks.spawn(self.load(self.conversation_id), name="transcript-reload")

    def show(self, loaded: LoadedConversation) -> None:
        """Show a loaded conversation; a turn still streaming into it goes on streaming."""
        self.conversation_id = cid = loaded.conversation.id
        # Deltas batched in the controller are already in turn.parts: send them now (to
        # nobody) so the rebuilt item below is not followed by them a second time.
        self._view_stream = None
        self._controller.flush()
        turn = self._controller.turn
        live = None
        if turn is not None and not turn.done and turn.conversation_id == cid:
            live = turn.assistant_message_id
        items = [
            item
            for m in loaded.branch
            if (
                item := self._item_for(
                    m, loaded.tool_calls.get(m.id, ()), live_turn=turn if m.id == live else None
                )
            )
            is not None
        ]
        self.view.set_messages(items)
        if live is not None and any(m.id == live for m in loaded.branch):
            self._view_stream = str(live)
            self.view.begin_stream(str(live))
        self.view.scroll_to_bottom()
        self.refresh_versions([m.id for m in loaded.branch])

    def last_message(self, role: ChatRole) -> str | None:
        """Id of the newest shown message of ``role`` (None: there is none)."""
        model = self.view.model()
        for row in range(model.rowCount() - 1, -1, -1):
            item = model.item_at(row)
            if item.role == role:
                return item.message_id
        return None

    def refresh_versions(self, message_ids: Sequence[int] | None) -> asyncio.Task[None] | None:
        """Work out which messages on the branch have other versions (off the GUI thread)."""
        if self.conversation_id is None:
            self._branch_bar.set_versions(None)
            return None
        store = self._store
        cid = self.conversation_id
        self._versions_generation += 1
        generation = self._versions_generation

        def compute() -> tuple[dict[str, Versions], str]:
            ids = message_ids
            if ids is None:
                ids = [m.id for m in store.branch(cid)]
            found: dict[str, Versions] = {}
            last_kind = ""
            versions = store.versions_of(cid)  # one query for the whole chat
            for mid in ids:
                if (v := versions.get(mid)) is not None:
                    sib_ids = tuple(str(s) for s in v[0])
                    found[str(mid)] = Versions(sib_ids, sib_ids.index(str(mid)))
                    last_kind = "Answer" if v[1] == "assistant" else "Question"
            return found, last_kind

        async def run() -> None:
            found, _kind = await asyncio.to_thread(compute)
            if generation != self._versions_generation or self.conversation_id != cid:
                return
            shown_before = set(self._versions)
            self._versions.clear()
            self._versions.update(found)
            # The switcher is on the message it belongs to (issue 14), not in the top bar.
            self._branch_bar.set_versions(None)
            for mid in shown_before | set(found):
                v = found.get(mid)
                self.view.set_versions(mid, (v.current + 1, len(v.ids)) if v else None)

        return self._tasks.spawn(run(), name="versions")

    # ---- stored messages
    def _item_for(
        self,
        m: StoredMessage,
        tool_calls: Iterable[StoredToolCall],
        *,
        live_turn: RunningTurn | None = None,
    ) -> ChatItem | None:
        if m.role not in ("user", "assistant"):
            return None
        footer: list[FooterItem] = []
        if m.role == "user":
            for a in m.meta.get("attachments") or ():
                footer.append(FooterItem(f"📎 {a.get('name', 'attachment')}", kind="attachment"))
            return ChatItem(str(m.id), ChatRole.USER, m.content, footer=tuple(footer))
        footer.extend(self._citation_items(m.id, m.meta, None if live_turn else m.content))
        for t in tool_calls:
            run = ToolRun(t.call_id, t.name, t.arguments, t.result, t.is_error, t.ms, t.text_offset)
            self._tool_runs[(str(m.id), t.call_id)] = run
            footer.extend(self._tool_items(str(m.id), run))
        if m.meta.get("from_cache"):
            footer.append(CACHE_FOOTER)
        elif m.status != "streaming" and (
            m.input_tokens is not None or m.output_tokens is not None
        ):
            footer.append(
                self._usage_item(
                    m.provider or "",
                    m.model or "",
                    (m.input_tokens, m.cached_input_tokens, m.output_tokens),
                    m.cost_usd,
                )
            )
        if live_turn is not None:
            return ChatItem(
                str(m.id),
                ChatRole.ASSISTANT,
                live_turn.streamed_text(),
                status=MessageStatus.STREAMING,
                answered_by=live_turn.fallback_model,
                footer=tuple(footer),
                model=m.model,
            )
        status = m.status
        if status == "streaming":  # Parley was killed mid-answer: what was saved is partial
            status = "partial"
        error = m.error
        if status == "partial" and not error and not m.content:
            status = "error"
            error = "The answer was interrupted."
        return ChatItem(
            str(m.id),
            ChatRole.ASSISTANT,
            m.content,
            status=MessageStatus(status),
            error=error,
            retryable=bool(error),
            answered_by=m.model if m.meta.get("fallback") else None,
            footer=tuple(footer),
            model=m.model,
        )

    def _citation_items(
        self, message_id: int, meta: Mapping[str, Any], text: str | None
    ) -> list[FooterItem]:
        """Source lines for a stored answer (and its sources remembered for clicks)."""
        sources = sources_from_meta(meta)
        if sources is None:
            return []
        if self._remember is not None:
            query = meta.get("search_query")
            self._remember(message_id, sources, query if isinstance(query, str) else None)
        return list(citation_footer(sources, text))

    def _usage_item(
        self,
        provider: str,
        model: str,
        usage: tuple[int | None, int | None, int | None],
        cost: float | None,
    ) -> FooterItem:
        """The footer line ``1,234 tokens · $0.0021`` of an answer, details in its tooltip."""
        return usage_footer(
            usage,
            cost,
            local=bool(provider) and self._is_local(provider),
            price=self._price_of(provider, model) if self._price_of and model else None,
        )

    # ---- turn signals
    def _turn_started(self, turn: RunningTurn) -> None:
        cid = turn.conversation_id
        assert cid is not None and turn.user_message_id is not None
        aid = str(turn.assistant_message_id)
        sent, self._outgoing = self._outgoing, ()
        if turn.kind == "send" and (self.conversation_id in (None, cid)):
            if self.conversation_id is None:
                self.conversation_id = cid
                self.view.clear()
                self._versions = {}
                self._branch_bar.set_versions(None)
            footer = tuple(FooterItem(f"📎 {name}", kind="attachment") for name in sent)
            self.view.append(
                ChatItem(str(turn.user_message_id), ChatRole.USER, turn.text, footer=footer)
            )
            self.view.append(ChatItem(aid, ChatRole.ASSISTANT, "", status=MessageStatus.STREAMING))
            self._view_stream = aid
        elif self.conversation_id == cid:
            self.reload()

    def _text_arrived(self, message_id: int, text: str) -> None:
        mid = str(message_id)
        if mid == self._view_stream:
            self.view.append_delta(mid, text)
        if self._notice.tag == "retry":
            self._notice.dismiss("retry")

    def _retry_scheduled(self, _message_id: int, attempt: int, wait_s: float, message: str) -> None:
        # The reason may carry its own static "retry in 8 s": the live countdown replaces it.
        reason = _RETRY_HINT.sub("", message or "").strip().rstrip(".;,") or "The request failed"
        reason += "."
        self._notice.show_countdown(
            f"{_escape_braces(reason)} Retrying in {{s}} s… (attempt {attempt})", wait_s
        )

    def _attempt_started(self, _message_id: int, _attempt: int) -> None:
        self._notice.dismiss("retry")

    def _fallback_used(self, message_id: int, model: str, message: str) -> None:
        if str(message_id) == self._view_stream:
            self.view.set_answered_by(str(message_id), model)
        self._status.showMessage(message, 8000)

    def _agent_stopped(self, message_id: int, message: str) -> None:
        self._agent_notes[message_id] = message

    def _sources_attached(self, message_id: int, sources: Any, search_query: Any = None) -> None:
        mid = str(message_id)
        query = search_query if isinstance(search_query, str) else None
        parsed = self._remember(mid, sources, query) if self._remember else parse_sources(sources)
        self._live_sources[mid] = parsed
        if mid == self._view_stream:
            item = self.view.item(mid)
            if item is not None:
                footer = (*citation_footer(parsed), *without_citations(item.footer))
                self.view.set_footer(mid, footer)
        self.sig_sources_changed.emit(mid)

    def _turn_finished(self, ev: TurnFinished) -> None:
        self._notice.dismiss("retry")
        mid = str(ev.message_id)
        if ev.conversation_id == self.conversation_id:
            note = self._agent_notes.pop(ev.message_id, None)
            error = ev.error.user_message if ev.error is not None else note
            if self.view.item(mid) is None:
                self.reload()  # shown while it loaded: the load brings the saved answer
            else:
                self.view.end_stream(mid, ev.status, error, retryable=ev.error is not None)
                item = self.view.item(mid)
                if ev.cached and item is not None and CACHE_FOOTER not in item.footer:
                    self.view.set_footer(mid, (*item.footer, CACHE_FOOTER))
                elif not ev.cached:
                    u = ev.usage
                    usage = (u.input_tokens, u.cached_input_tokens, u.output_tokens)
                    known = any(n is not None for n in usage)
                    line = self._usage_item(ev.provider, ev.model, usage, ev.cost_usd)
                    self.view.set_usage(mid, ev.model or None, line if known else None)
            self._status.set_last_turn(
                ev.usage.input_tokens,
                ev.usage.output_tokens,
                ev.cost_usd,
                local=self._is_local(ev.provider),
            )
            self.refresh_versions(None)
            sent = self._live_sources.pop(mid, None)
            item = self.view.item(mid)
            if sent and item is not None:  # now the text is final: list what it cites
                footer = (*citation_footer(sent, item.text), *without_citations(item.footer))
                self.view.set_footer(mid, footer)
            if ev.sources:
                self.sig_sources_changed.emit(mid)
        if self._view_stream == mid:
            self._view_stream = None
        self.sig_turn_ended.emit(ev.conversation_id)

    def _turn_cancelled(self, conversation_id: int, message_id: int) -> None:
        self._notice.dismiss("retry")
        mid = str(message_id)
        if conversation_id == self.conversation_id:
            self.view.end_stream(mid, "cancelled")
        if self._view_stream == mid:
            self._view_stream = None
        self.sig_turn_ended.emit(conversation_id)

    def _turn_broken(self, conversation_id: int, message_id: int, summary: str) -> None:
        if conversation_id == self.conversation_id:
            self.view.end_stream(str(message_id), "error", summary, retryable=True)
        self._view_stream = None

    # ---- tool cards
    def _tool_started(self, _message_id: int, name: str) -> None:
        self._status.showMessage(f"Running tool {name}…", 5000)

    def _tool_call_started(self, message_id: int, call: Any) -> None:
        mid = str(message_id)
        turn = self._controller.turn
        offset = None
        if turn is not None and turn.assistant_message_id == message_id:
            offset = len(turn.streamed_text())  # the text so far: the card goes after it
        run = ToolRun(call.id, call.name, call.arguments, offset=offset)
        self._tool_runs[(mid, call.id)] = run
        self._update_tool_card(mid, run)

    def _tool_finished(self, message_id: int, ev: Any) -> None:
        mid = str(message_id)
        started = self._tool_runs.get((mid, ev.call.id))
        run = ToolRun(
            ev.call.id,
            ev.call.name,
            ev.call.arguments,
            ev.content,
            ev.is_error,
            ev.ms,
            started.offset if started is not None else None,
        )
        self._tool_runs[(mid, ev.call.id)] = run
        self._update_tool_card(mid, run)
        if not any(
            key[0] == mid and r.result is None and r.ms is None
            for key, r in self._tool_runs.items()
        ):
            self._status.clearMessage()  # "Running tool …" is over

    def _update_tool_card(self, mid: str, run: ToolRun) -> None:
        """Add or replace a tool card under a shown answer (running, then done/failed)."""
        if mid != self._view_stream:
            return
        item = self.view.item(mid)
        if item is None:
            return
        self.view.set_footer(mid, replace_tool(item.footer, run, self._tool_items(mid, run)))

    def _tool_items(self, mid: str, run: ToolRun) -> list[FooterItem]:
        """The footer lines of one tool call: the card, and its details when opened."""
        is_open = (mid, run.call_id) in self._tools_open
        summary = clip(tool_summary(run.arguments), 60)
        head = f"⚙ {run.name}" + (f" · {summary}" if summary else "")
        if run.result is None and run.ms is None:
            card = f"{head} · running…"
        else:
            took = f" · {run.ms:.0f} ms" if run.ms is not None else ""
            state = "failed" if run.is_error else "done"
            card = f"{head} · {state}{took}  {'▾ hide' if is_open else '▸ details'}"
        at = run.offset
        href = f"{TOOL_HREF}{run.call_id}"
        items = [FooterItem(card, kind="tool_call", href=href, offset=at)]
        if is_open:
            items.append(
                FooterItem(f"Arguments: {clip(run.arguments)}", kind="tool_detail", offset=at)
            )
            if run.result is not None:
                label = "Error" if run.is_error else "Result"
                items.append(
                    FooterItem(f"{label}: {clip(run.result)}", kind="tool_detail", offset=at)
                )
        return items

    def _footer_activated(self, message_id: str, href: str) -> None:
        if not href.startswith(TOOL_HREF):
            return
        key = (message_id, href[len(TOOL_HREF) :])
        run = self._tool_runs.get(key)
        item = self.view.item(message_id)
        if run is None or item is None:
            return
        if key in self._tools_open:
            self._tools_open.discard(key)
        else:
            self._tools_open.add(key)
        self.view.set_footer(
            message_id, replace_tool(item.footer, run, self._tool_items(message_id, run))
        )


def usage_footer(
    usage: tuple[int | None, int | None, int | None],
    cost: float | None,
    *,
    local: bool = False,
    price: str | None = None,
) -> FooterItem:
    """An answer's tokens and cost line; the tooltip says input, cached, output, price used.

    Args:
        usage: (input tokens, of which cached, output tokens) as the provider reported them.
        cost: What the answer cost (None: unknown, never shown as $0).
        local: Served on this machine: free.
        price: The price used, as text (e.g. ``$0.15 in · $0.60 out per 1M tokens``).
    """
    tokens_in, cached, tokens_out = (n or 0 for n in usage)
    money = "free (local)" if local else format_usd(cost) if cost is not None else "cost unknown"
    text = f"{tokens_in + tokens_out:,} tokens · {money}"
    tip = [
        f"Input: {tokens_in:,} tokens",
        f"Cached input: {cached:,} tokens",
        f"Output: {tokens_out:,} tokens",
    ]
    if local:
        tip.append("Price used: none (a server on this machine)")
    else:
        tip.append(f"Price used: {price or 'unknown (not in the model catalog)'}")
    return FooterItem(text, kind="usage", tooltip="\n".join(tip))


def replace_tool(
    footer: Sequence[FooterItem], run: ToolRun, items: Sequence[FooterItem]
) -> tuple[FooterItem, ...]:
    """``footer`` with the card of ``run`` (and its detail lines) replaced by ``items``."""
    href = f"{TOOL_HREF}{run.call_id}"
    out: list[FooterItem] = []
    placed = False
    skipping = False
    for f in footer:
        if f.href == href and f.kind == "tool_call":
            out.extend(items)
            placed = skipping = True
            continue
        if skipping and f.kind == "tool_detail":
            continue
        skipping = False
        out.append(f)
    if not placed:
        out.extend(items)
    return tuple(out)


def tool_summary(arguments: str) -> str:
    """A one-line summary of a call's arguments: its first argument's value."""
    try:
        args = json.loads(arguments)
    except ValueError:
        return arguments
    if isinstance(args, dict) and args:
        return str(next(iter(args.values())))
    return ""


def clip(text: str, n: int = CLIP_CHARS) -> str:
    """``text`` on one line, cut to ``n`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= n else flat[: n - 1] + "…"


def _escape_braces(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")
