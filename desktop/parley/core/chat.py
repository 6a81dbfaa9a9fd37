"""One chat turn end to end: persist the question, stream the answer, persist the result.

:class:`ChatSession` is what the window and the CLI call. It never raises a
:class:`~parley.core.errors.ParleyError` at its caller: the turn ends with a
:class:`TurnFinished` whose ``status`` says how (complete / partial / error) and which
carries the error. Cancellation (Stop, Esc, Ctrl+C) propagates as ``CancelledError`` after
the partial answer has been saved with status ``cancelled``.

Streamed text is flushed to SQLite at least every ``FLUSH_INTERVAL_S`` (so a kill -9 loses
at most that much); writes go through one single-thread executor, off the event loop.

The window's own writes (rename, delete and undo, branch switches, a conversation's options
and prompt) are :class:`ChatSession` operations too, on the same writer, so the database has
one writer and the GUI thread never writes. Each returns an :class:`OpChanges` saying what
changed; the caller decides what to redraw (Anki's ``CollectionOp``/``OpChanges``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, Protocol

from parley.core.agent import (
    ESTIMATE_NONCE,
    Agent,
    AgentEvent,
    AgentStopped,
    ToolRunFinished,
    ToolRunStarted,
)
from parley.core.errors import ConfigError, ParleyError, StorageError
from parley.core.knowledge.grounding import Grounding, Source
from parley.core.providers.base import (
    AttemptStarted,
    CacheReplay,
    ChatRequest,
    ContextTrimmed,
    Estimated,
    FallbackUsed,
    Message,
    Metered,
    Provider,
    TextDelta,
    Usage,
)
from parley.core.store.conversations import (
    Conversation,
    ConversationStore,
    StoredMessage,
    owner_alive,
    process_owner,
)
from parley.core.store.ledger import LedgerEntry

if TYPE_CHECKING:
    from parley.core.budget import Budget, BudgetStatus
    from parley.core.metering import Meter
    from parley.core.tokens import DraftEstimate
    from parley.core.transfer import ExportedConversation

log = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 0.25
"""Streamed text reaches the database at least this often (the issue allows 500 ms)."""

MAX_QUESTION_CHARS = 2_000_000
"""Questions longer than this are refused before anything is sent."""

REWRITE_TIMEOUT_S = 30.0
"""Longest wait for a follow-up's standalone search query before searching it as written."""

QUEUE_POLL_S = 0.05
"""How often a turn waiting for its conversation looks whether it is its turn."""

TurnStatus = Literal["complete", "partial", "error", "cancelled"]


@dataclass(frozen=True, slots=True)
class TurnStarted:
    """The question is saved; the answer (``assistant_message_id``) is on its way."""

    conversation_id: int
    user_message_id: int
    assistant_message_id: int
    provider: str
    model: str


@dataclass(frozen=True, slots=True)
class TurnQueued:
    """Another turn on this conversation is running (here or in another process).

    This one waits its turn, so every question is placed and answered after the one before.
    """

    conversation_id: int
    ahead: int
    """Turns ahead of this one."""


@dataclass(frozen=True, slots=True)
class SourcesAttached:
    """Knowledge sources put into the prompt (grounded answers)."""

    sources: tuple[Source, ...]
    search_query: str | None = None
    """What was searched when it was not the question as asked (a rewritten follow-up)."""


@dataclass(frozen=True, slots=True)
class TurnFinished:
    """The turn is over and saved."""

    conversation_id: int
    message_id: int
    status: TurnStatus
    text: str
    provider: str
    model: str
    usage: Usage
    cost_usd: float | None
    attempts: int
    error: ParleyError | None = None
    tool_calls: tuple[ToolRunFinished, ...] = ()
    sources: tuple[Source, ...] = ()
    estimate: Estimated | None = None
    """The first request's pre-send estimate (issue 13)."""
    cached: bool = False
    """The answer came from Parley's response cache."""
    local: bool = False
    """Answered by a server on this machine (the cost is really $0)."""
    notes: tuple[str, ...] = ()
    """What the person should know about the request (e.g. turns left out to fit)."""
    search_query: str | None = None
    """The documents were searched for this rewrite of a follow-up question."""


TurnEvent = AgentEvent | TurnStarted | TurnFinished | SourcesAttached | TurnQueued


class Grounder(Protocol):
    """Retrieves knowledge for a question (the knowledge feature implements it)."""

    async def ground(self, question: str, *, folders: Sequence[str] = ()) -> Grounding | None:
        """Sources for ``question`` (None: the documents are not open; answer without)."""
        ...


@dataclass(frozen=True)
class OpChanges:
    """What a conversation operation changed; the caller decides what to redraw."""

    conversation_id: int | None = None
    """The conversation the operation touched (None: several or none)."""
    conversation: Conversation | None = None
    """Its row as the operation found it (before a delete, after any other change)."""
    listing: bool = False
    """The conversation list changed: a title, the order, or which conversations exist."""
    branch: bool = False
    """Which messages are on the conversation's current branch changed."""
    options: bool = False
    """The conversation's options (model, switches) or its own system prompt changed."""
    count: int = 0
    """How many rows the operation removed (purging)."""


@dataclass
class TurnOptions:
    """Per-turn choices (the caller resolves defaults from settings and the conversation)."""

    provider: str
    model: str
    system: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_output_tokens: int | None = None
    use_tools: bool = False
    use_knowledge: bool = False
    folders: Sequence[str] = field(default_factory=tuple)
    approved_folders: Sequence[str] = field(default_factory=tuple)
    """Folders the tools may read in this turn without asking (the CLI's ``--folder``)."""
    over_budget: bool = False
    """Send even when a budget is reached (the person confirmed, or ``--over-budget``)."""


class ChatSession:
    """Runs turns against providers and keeps the conversation store in step.

    Args:
        conversations: The store.
        provider_for: Builds the (resilient) provider for a provider id and model.
        cost_for: Prices a usage for a provider id and model (None: unknown).
        agent_for: Builds the agent for a turn (tools on or off, allowed folders).
        grounder: Knowledge retrieval (the knowledge feature), for "Use my documents" turns.
        writer: Executor for database writes (one thread: writes stay ordered).
        meter: Fits, estimates, caches and meters every request (issue 13); without it
            the turn's summed usage is recorded at its end.
        budget: Spending limits checked before a question is sent.
    """

    def __init__(
        self,
        conversations: ConversationStore,
        *,
        provider_for: Callable[[str, str], Provider],
        cost_for: Callable[[str, str, Usage], float | None],
        agent_for: Callable[[TurnOptions], Agent] | None = None,
        grounder: Grounder | None = None,
        writer: Executor | None = None,
        meter: Meter | None = None,
        budget: Budget | None = None,
    ) -> None:
        self.conversations = conversations
        self.meter = meter
        self.budget = budget
        self._provider_for = provider_for
        self._cost_for = cost_for
        self._agent_for = agent_for or (lambda _opts: Agent(None))
        self._grounder = grounder
        self._writer = writer or ThreadPoolExecutor(max_workers=1, thread_name_prefix="parley-db")

    async def _db(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._writer, lambda: fn(*args, **kwargs))

    async def _db_surely(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Like :meth:`_db`, but the write happens even if the caller is cancelled meanwhile.

        A queued executor job would otherwise be dropped with the cancelled await.
        """
        loop = asyncio.get_running_loop()
        return await asyncio.shield(loop.run_in_executor(self._writer, lambda: fn(*args, **kwargs)))

    @contextlib.asynccontextmanager
    async def _conversation_turn(self, conversation_id: int) -> AsyncIterator[int]:
        """Hold ``conversation_id`` for one turn, waiting (FIFO) behind the turns before it.

        Another turn, in this or another process, may be placing or answering a question
        there. The database is the lock, so ``parley ask --conversation N`` run six times at
        once answers one after the other.

        Yields how many turns were ahead when this one queued (0: it did not wait).
        """
        store = self.conversations
        tickets: list[int] = []

        def join() -> int:
            tickets.append(store.join_turn_queue(conversation_id, process_owner()))
            return tickets[-1]

        def leave() -> None:
            try:
                for ticket in tickets:
                    store.leave_turn_queue(ticket)
            except StorageError as exc:  # the owner's exit frees it for the others
                log.warning("could not leave the turn queue: %s", exc.user_message)

        try:
            ticket = await asyncio.shield(
                asyncio.get_running_loop().run_in_executor(self._writer, join)
            )
            ahead = first = await self._db(store.turns_ahead, conversation_id, ticket, owner_alive)
            while ahead:
                await asyncio.sleep(QUEUE_POLL_S)
                ahead = await self._db(store.turns_ahead, conversation_id, ticket, owner_alive)
            yield first
        finally:
            # Queued behind the turn's last write (and behind join, if Stop came first); not
            # awaited, so it also happens while this task is cancelled or torn down.
            self._writer.submit(leave)

    # ---- Public API
    async def send(
        self,
        text: str,
        options: TurnOptions,
        *,
        conversation_id: int | None = None,
        parent_id: int | Literal["leaf"] | None = "leaf",
        attachments: Sequence[dict[str, str]] = (),
    ) -> AsyncGenerator[TurnEvent, None]:
        """Ask ``text`` in a conversation (a new one when ``conversation_id`` is None).

        ``attachments`` are ``{"name", "text"}`` dicts (dropped files), sent with the
        question and kept with it.

        ``parent_id`` places the question: under the current leaf (default), or under an
        earlier message (edit and resend: the old branch stays).

        Raises:
            ConfigError: empty or oversized question, unknown conversation (before anything
                is saved or sent).
            OverBudget: a budget is reached and ``options.over_budget`` is not set (nothing
                is saved or sent).
            StorageError: the question could not be saved.
        """
        if not text or not text.strip():
            raise ConfigError("The question is empty.")
        if len(text) > MAX_QUESTION_CHARS:
            raise ConfigError(
                f"The question is too long ({len(text):,} characters; "
                f"the limit is {MAX_QUESTION_CHARS:,})."
            )
        await self._check_budget(options)
        if conversation_id is None:
            conv = await self._db(self.conversations.create)
            conversation_id = conv.id
        elif await self._db(self.conversations.get, conversation_id) is None:
            raise ConfigError(f"There is no conversation {conversation_id}.")
        async with self._conversation_turn(conversation_id) as ahead:
            if ahead:
                yield TurnQueued(conversation_id, ahead)
            user = await self._db(
                self.conversations.add_message,
                conversation_id,
                "user",
                text,
                parent_id=parent_id,
                meta={"attachments": list(attachments)} if attachments else None,
            )
            async with contextlib.aclosing(self._answer(conversation_id, user, options)) as turn:
                async for ev in turn:
                    yield ev

    async def regenerate(
        self, conversation_id: int, options: TurnOptions
    ) -> AsyncGenerator[TurnEvent, None]:
        """Answer the current branch's last question again (the old answer stays reachable).

        Regenerate always asks the model: the response cache is not consulted.

        Raises:
            ConfigError: the conversation has no question to answer.
            OverBudget: a budget is reached and ``options.over_budget`` is not set.
        """
        async with self._conversation_turn(conversation_id) as ahead:
            if ahead:
                yield TurnQueued(conversation_id, ahead)
            branch = await self._db(self.conversations.branch, conversation_id)
            users = [m for m in branch if m.role == "user"]
            if not users:
                raise ConfigError("There is no question to answer again.")
            await self._check_budget(options)
            answer = self._answer(conversation_id, users[-1], options, regenerate=True)
            async with contextlib.aclosing(answer) as t:
                async for ev in t:
                    yield ev

    async def _check_budget(self, options: TurnOptions) -> None:
        if self.budget is None or options.over_budget:
            return
        status = await self._db(self.budget.status)
        if status.must_confirm:
            raise status.error("Confirm to send anyway.")

    async def edit(
        self,
        message_id: int,
        new_text: str,
        options: TurnOptions,
        *,
        attachments: Sequence[dict[str, str]] | None = None,
    ) -> AsyncGenerator[TurnEvent, None]:
        """Replace an earlier question with ``new_text`` as a new branch and answer it.

        ``attachments`` replace the original question's; None keeps them.
        """
        msg = await self._db(self.conversations.message, message_id)
        if msg is None or msg.role != "user":
            raise ConfigError("Only your own messages can be edited.")
        if attachments is None:
            attachments = msg.meta.get("attachments") or ()
        sent = self.send(
            new_text,
            options,
            conversation_id=msg.conversation_id,
            parent_id=msg.parent_id,
            attachments=attachments,
        )
        async with contextlib.aclosing(sent) as turn:
            async for ev in turn:
                yield ev

    def history(self, conversation_id: int, upto: StoredMessage) -> tuple[Message, ...]:
        """The branch ending at ``upto`` as provider messages (finished text only)."""
        return _as_messages(self.conversations.branch(conversation_id, upto.id))

    def draft_estimate(
        self, conversation_id: int | None, options: TurnOptions
    ) -> DraftEstimate | None:
        """An incremental token estimate of the next question (issue 13), for the composer.

        Counts the request a question would extend (system prompt, the current branch, the
        tool schemas when tools are on); ``update(text)`` on the result then counts only the
        draft (pass the text with its attachments, :func:`with_attachments`). Passages that
        knowledge retrieval adds are not known before sending. Blocking (the database, and
        a long conversation's first count): call it off the GUI thread. None without a meter.
        """
        if self.meter is None:
            return None
        history: tuple[Message, ...] = ()
        system = options.system
        if conversation_id is not None:
            conv = self.conversations.get(conversation_id)
            if conv is not None and conv.system_prompt:
                system = conv.system_prompt
            history = _as_messages(self.conversations.branch(conversation_id))
        request = ChatRequest(
            model=options.model,
            messages=history,
            system=system or None,
            temperature=options.temperature,
            top_p=options.top_p,
            max_output_tokens=options.max_output_tokens,
        )
        request = self._agent_for(options).with_tools(request, ESTIMATE_NONCE)
        return self.meter.draft(options.provider, request)

    # ---- the turn
    async def _answer(
        self,
        conversation_id: int,
        user: StoredMessage,
        options: TurnOptions,
        *,
        regenerate: bool = False,
    ) -> AsyncGenerator[TurnEvent, None]:
        # The conversation remembers what it was last asked with (the window reopens it with
        # that model and those switches; ``parley ask --conversation`` records them too).
        conv = await self._db(
            self.conversations.set_options,
            conversation_id,
            provider=options.provider,
            model=options.model,
            use_tools=options.use_tools,
            use_knowledge=options.use_knowledge,
        )
        history = await self._db(self.history, conversation_id, user)
        system = options.system
        if conv is not None and conv.system_prompt:
            system = conv.system_prompt
        assistant = await self._start_answer_row(conversation_id, user, options)
        state = _TurnState(provider=options.provider, model=options.model)
        pending_flush: asyncio.Future[Any] | None = None
        events: AsyncIterator[Any] | None = None
        # Every way out of this block ends the row: a normal end or a ParleyError set
        # ``outcome`` and are saved below; anything else (Stop, a closed generator, a bug
        # below us) is saved on the way out. No turn stays "streaming" (issue 11).
        outcome: tuple[TurnStatus, ParleyError | None] | None = None
        try:
            yield TurnStarted(
                conversation_id, user.id, assistant.id, options.provider, options.model
            )
            grounding = None
            query = user.content
            if options.use_knowledge and self._grounder is not None:
                query = await self._search_query(
                    conversation_id, assistant.id, history, user.content, options, state
                )
                grounding = await self._grounder.ground(query, folders=options.folders)
            if grounding is not None:
                state.sources = grounding.sources
                state.search_query = query if query != user.content else None
                if grounding.system_addendum:
                    system = (
                        f"{system}\n\n{grounding.system_addendum}"
                        if system
                        else (grounding.system_addendum)
                    )
                meta: dict[str, Any] = {"sources": [s.to_dict() for s in grounding.sources]}
                if state.search_query is not None:
                    meta["search_query"] = state.search_query
                await self._db(self.conversations.update_message, assistant.id, meta=meta)
                yield SourcesAttached(grounding.sources, state.search_query)

            provider = self._provider_for(options.provider, options.model)
            if self.meter is not None:
                pin_first = bool(conv is not None and conv.options.get("pin_first"))
                provider = self.meter.wrap(
                    provider, options.provider, pin_first=pin_first, bypass_cache=regenerate
                )
            request = ChatRequest(
                model=options.model,
                messages=history,
                system=system or None,
                temperature=options.temperature,
                top_p=options.top_p,
                max_output_tokens=options.max_output_tokens,
            )
            agent = self._agent_for(options)
            last_flush = time.monotonic()
            events = agent.run(provider, request)
            async for ev in events:
                if isinstance(ev, TextDelta):
                    state.parts.append(ev.text)
                    now = time.monotonic()
                    if now - last_flush >= FLUSH_INTERVAL_S:
                        last_flush = now
                        pending_flush = asyncio.get_running_loop().run_in_executor(
                            self._writer,
                            self._flush,
                            assistant.id,
                            "".join(state.parts),
                        )
                elif isinstance(ev, Usage):
                    state.usage = state.usage + ev
                elif isinstance(ev, AttemptStarted):
                    state.attempts += 1
                elif isinstance(ev, FallbackUsed):
                    state.provider, state.model = ev.provider, ev.model
                    state.fallback_note = ev.message
                elif isinstance(ev, ToolRunStarted):
                    # Stored when it starts, so the calls keep the model's order (calls of a
                    # round finish in any order) and a stop mid-tool still shows the call.
                    row = await self._db(
                        self.conversations.add_tool_call,
                        assistant.id,
                        ev.call.id,
                        ev.call.name,
                        ev.call.arguments,
                        text_offset=len(state.text()),
                    )
                    state.tool_rows[id(ev.call)] = (ev.call, row)
                elif isinstance(ev, ToolRunFinished):
                    state.tools.append(ev)
                    await self._db(
                        self.conversations.finish_tool_call,
                        state.tool_row(ev),
                        result=ev.content,
                        is_error=ev.is_error,
                        ms=ev.ms,
                    )
                elif isinstance(ev, AgentStopped):
                    state.stopped = ev
                elif isinstance(ev, Metered):
                    # The request's ledger row, written as soon as its usage is known: a crash
                    # later in the turn loses nothing (issue 13).
                    state.meter(ev)
                    await self._db(
                        self.conversations.record_request,
                        _ledger_entry(ev, conversation_id, assistant.id),
                    )
                elif isinstance(ev, Estimated):
                    state.estimate = state.estimate or ev
                elif isinstance(ev, CacheReplay):
                    state.cached = True
                elif isinstance(ev, ContextTrimmed):
                    state.notes.append(ev.note)
                yield ev
            # A loop, step cap or budget stop keeps what was said, marked incomplete.
            outcome = ("partial" if state.stopped is not None else "complete", None)
        except ParleyError as exc:
            outcome = ("partial" if state.text() else "error", exc)
        except BaseException as exc:
            # Stop (task cancelled), the caller closing this generator, or a bug below us:
            # save what arrived, synchronously (the task is being torn down; this is one
            # short write), and close the provider stream so its connection is released.
            if pending_flush is not None:
                pending_flush.cancel()
            if isinstance(exc, asyncio.CancelledError | GeneratorExit | KeyboardInterrupt):
                status: TurnStatus = "cancelled"
                error: ParleyError | None = None
            else:
                status = "partial" if state.text() else "error"
                error = ParleyError(f"Internal error ({type(exc).__name__}); see the log.")
            self._finish_sync(conversation_id, assistant.id, state, status, error)
            if events is not None:
                with contextlib.suppress(Exception):
                    await events.aclose()  # type: ignore[attr-defined]
            raise
        assert outcome is not None  # every other way out raised above
        yield await self._finish(conversation_id, assistant.id, state, *outcome)

    async def _search_query(
        self,
        conversation_id: int,
        message_id: int,
        history: Sequence[Message],
        question: str,
        options: TurnOptions,
        state: _TurnState,
    ) -> str:
        """What to search the documents for: the question, or a follow-up made standalone.

        Only a question that looks like it leans on earlier turns (``needs_rewrite``) costs a
        request: the turn's own model rewrites it (metered, in the ledger as
        ``query_rewrite``). Any failure searches the question as asked, with a note.
        """
        from parley.core.knowledge.followup import clean_rewrite, needs_rewrite, rewrite_request

        earlier = history[:-1] if history and history[-1].role == "user" else history
        if not needs_rewrite(question, earlier):
            return question
        provider: Provider = self._provider_for(options.provider, options.model)
        if self.meter is not None:
            provider = self.meter.wrap(provider, options.provider)
        request = rewrite_request(options.model, earlier, question)
        parts: list[str] = []
        try:
            async with asyncio.timeout(REWRITE_TIMEOUT_S):
                stream = provider.stream(request)
                async with contextlib.aclosing(stream):  # type: ignore[type-var]
                    async for ev in stream:
                        if isinstance(ev, TextDelta):
                            parts.append(ev.text)
                        elif isinstance(ev, Usage) and self.meter is None:
                            state.usage = state.usage + ev
                        elif isinstance(ev, Metered):
                            ev = replace(ev, purpose="query_rewrite")
                            state.usage = state.usage + ev.usage
                            state.meter(ev)
                            await self._db(
                                self.conversations.record_request,
                                _ledger_entry(ev, conversation_id, message_id),
                            )
        except (ParleyError, TimeoutError) as exc:
            reason = exc.user_message if isinstance(exc, ParleyError) else "it took too long"
            log.info("follow-up rewrite failed: %s", reason)
            state.notes.append(
                "Your documents were searched for the question as written: it could not be "
                f"made standalone ({reason})."
            )
            return question
        return clean_rewrite("".join(parts)) or question

    async def _start_answer_row(
        self, conversation_id: int, user: StoredMessage, options: TurnOptions
    ) -> StoredMessage:
        """The answer's row, status "streaming", under ``user``.

        If Stop lands while the row is being written, the write still completes (it may
        already be running) and a second write, queued behind it on the same one-thread
        writer, ends the row as cancelled: no row stays "streaming".
        """
        created: list[StoredMessage] = []

        def create() -> StoredMessage:
            row = self.conversations.add_message(
                conversation_id,
                "assistant",
                "",
                parent_id=user.id,
                provider=options.provider,
                model=options.model,
                status="streaming",
            )
            created.append(row)
            return row

        def cancel_created() -> None:
            for row in created:
                self.conversations.update_message(row.id, status="cancelled", if_streaming=True)

        job = asyncio.get_running_loop().run_in_executor(self._writer, create)
        try:
            return await asyncio.shield(job)
        except asyncio.CancelledError:
            self._writer.submit(cancel_created)
            raise

    async def aclose(self) -> None:
        """Wait for the writes already queued (a stopped turn's last ones included)."""
        await asyncio.get_running_loop().run_in_executor(self._writer, lambda: None)

    def _flush(self, message_id: int, text: str) -> None:
        try:
            # A flush already running when the turn ended must not undo its final text.
            self.conversations.update_message(message_id, content=text, if_streaming=True)
        except StorageError as exc:  # keep streaming; the final write reports it
            log.warning("could not save streamed text: %s", exc.user_message)

    async def _finish(
        self,
        conversation_id: int,
        message_id: int,
        state: _TurnState,
        status: TurnStatus,
        error: ParleyError | None,
    ) -> TurnFinished:
        return await self._db_surely(
            self._finish_sync, conversation_id, message_id, state, status, error
        )

    def _finish_sync(
        self,
        conversation_id: int,
        message_id: int,
        state: _TurnState,
        status: TurnStatus,
        error: ParleyError | None,
    ) -> TurnFinished:
        text = state.text()
        usage = state.usage
        reported = usage.input_tokens is not None or usage.output_tokens is not None
        if state.metered:
            cost = state.cost  # the sum of the turn's ledger rows
        else:
            cost = self._cost_for(state.provider, state.model, usage) if reported else None
        err_text = (
            error.user_message if error else (state.stopped.message if state.stopped else None)
        )
        meta: dict[str, Any] = {"attempts": state.attempts}
        if state.fallback_note:
            meta["fallback"] = state.fallback_note
        if state.cached:
            meta["from_cache"] = True
        if state.notes:
            meta["context_notes"] = list(state.notes)
        if state.estimate is not None:
            meta["estimate"] = {
                "input_tokens": state.estimate.input_tokens,
                "exact": state.estimate.exact,
                "cost_usd": state.estimate.cost_usd,
            }
        usage_tuple = (
            usage.input_tokens,
            usage.output_tokens,
            usage.cached_input_tokens,
            usage.cache_write_tokens,
        )
        try:
            done = {state.tool_row(t) for t in state.tools}
            for _call, row in state.tool_rows.values():
                if row not in done:  # stopped while the tool ran
                    self.conversations.finish_tool_call(
                        row, result="Stopped before it finished.", is_error=True
                    )
            self.conversations.update_message(
                message_id,
                content=text,
                status=status,
                error=err_text,
                provider=state.provider,
                model=state.model,
                usage=usage_tuple if reported else None,
                cost_usd=cost,
                meta=meta,
            )
            if reported and not state.metered:
                self.conversations.record_usage(
                    provider=state.provider,
                    model=state.model,
                    usage=usage_tuple,
                    cost_usd=cost,
                    conversation_id=conversation_id,
                    message_id=message_id,
                )
        except StorageError as exc:
            log.error("could not save the answer: %s", exc.user_message)
            if error is None:
                error = exc
                status = "error" if not text else "partial"
        return TurnFinished(
            conversation_id=conversation_id,
            message_id=message_id,
            status=status,
            text=text,
            provider=state.provider,
            model=state.model,
            usage=usage,
            cost_usd=cost,
            attempts=state.attempts,
            error=error,
            tool_calls=tuple(sorted(state.tools, key=state.tool_row)),  # rows are in start order
            sources=state.sources,
            estimate=state.estimate,
            cached=state.cached,
            local=state.local,
            notes=tuple(state.notes),
            search_query=state.search_query,
        )

    # ---- Conversation operations (on the writer, in the order they are called)
    def rename(self, conversation_id: int, title: str) -> asyncio.Future[OpChanges]:
        """Set a conversation's title."""

        def op() -> OpChanges:
            self.conversations.rename(conversation_id, title)
            conv = self.conversations.get(conversation_id)
            return OpChanges(conversation_id, conv, listing=True)

        return self._op(op)

    def delete(self, conversation_id: int) -> asyncio.Future[OpChanges]:
        """Soft-delete a conversation (``conversation``: its row before, None if unknown)."""

        def op() -> OpChanges:
            conv = self.conversations.get(conversation_id)
            if conv is None:
                return OpChanges(conversation_id)
            self.conversations.delete(conversation_id)
            return OpChanges(conversation_id, conv, listing=True)

        return self._op(op)

    def undelete(self, conversation_id: int) -> asyncio.Future[OpChanges]:
        """Bring a soft-deleted conversation back."""

        def op() -> OpChanges:
            self.conversations.undelete(conversation_id)
            conv = self.conversations.get(conversation_id)
            return OpChanges(conversation_id, conv, listing=True)

        return self._op(op)

    def purge_deleted(self, older_than_s: float = 0.0) -> asyncio.Future[OpChanges]:
        """Remove soft-deleted conversations for good (``count``: how many)."""
        return self._op(
            lambda: OpChanges(count=self.conversations.purge_deleted(older_than_s), listing=True)
        )

    def set_options(self, conversation_id: int, **options: Any) -> asyncio.Future[OpChanges]:
        """Merge per-conversation options (model, provider, use_tools, use_knowledge)."""
        return self._op(
            lambda: OpChanges(
                conversation_id,
                self.conversations.set_options(conversation_id, **options),
                options=True,
            )
        )

    def set_system_prompt(
        self, conversation_id: int, prompt: str | None
    ) -> asyncio.Future[OpChanges]:
        """A conversation's own system prompt (None: the global one)."""

        def op() -> OpChanges:
            self.conversations.set_system_prompt(conversation_id, prompt)
            conv = self.conversations.get(conversation_id)
            return OpChanges(conversation_id, conv, options=True)

        return self._op(op)

    def switch_version(self, message_id: int) -> asyncio.Future[OpChanges]:
        """Make the branch through ``message_id`` (to its newest leaf) the current one."""

        def op() -> OpChanges:
            msg = self.conversations.message(message_id)
            if msg is None:
                return OpChanges()
            self.conversations.set_leaf(msg.conversation_id, self.conversations.latest_leaf(msg.id))
            return OpChanges(msg.conversation_id, branch=True)

        return self._op(op)

    def delete_answer(self, message_id: int) -> asyncio.Future[OpChanges]:
        """Delete an answer (and what followed it); another version or its question shows."""

        def op() -> OpChanges:
            msg = self.conversations.message(message_id)
            if msg is None or self.conversations.delete_answer(message_id) is None:
                return OpChanges()
            return OpChanges(msg.conversation_id, branch=True)

        return self._op(op)

    def rewind_to_question(self, message_id: int) -> asyncio.Future[OpChanges]:
        """End the current branch at the question of ``message_id`` (itself or its parent).

        :meth:`regenerate` then answers that question again, as a new version of the answer.
        """

        def op() -> OpChanges:
            msg = self.conversations.message(message_id)
            if msg is None:
                return OpChanges()
            if msg.role == "user":
                self.conversations.set_leaf(msg.conversation_id, msg.id)
            elif msg.parent_id is not None:
                self.conversations.set_leaf(msg.conversation_id, msg.parent_id)
            return OpChanges(msg.conversation_id, branch=True)

        return self._op(op)

    def save_draft(self, conversation_id: int | None, text: str) -> asyncio.Future[OpChanges]:
        """Keep the unsent text of a conversation (None: the new chat) for the next start."""

        def op() -> OpChanges:
            self.conversations.save_draft(conversation_id, text)
            return OpChanges(conversation_id)

        return self._op(op)

    def save_window_value(self, key: str, value: Any) -> asyncio.Future[OpChanges]:
        """Remember a JSON value for the window's next start (None forgets it)."""

        def op() -> OpChanges:
            self.conversations.set_window_value(key, value)
            return OpChanges()

        return self._op(op)

    def import_conversation(self, conversation: ExportedConversation) -> asyncio.Future[OpChanges]:
        """Store an imported conversation as a new one (``conversation``: its row)."""

        def op() -> OpChanges:
            from parley.core.transfer import import_into

            conv = import_into(self.conversations, conversation)
            return OpChanges(conv.id, conv, listing=True)

        return self._op(op)

    def confirm_budget(self) -> asyncio.Future[BudgetStatus | None]:
        """The person chose to keep sending over a budget today: do not ask again today.

        Stored on the writer (the window never writes); returns the status after it (None
        without budgets).
        """
        budget = self.budget

        def op() -> BudgetStatus | None:
            if budget is None:
                return None
            budget.confirm()
            return budget.status()

        return asyncio.get_running_loop().run_in_executor(self._writer, op)

    def _op(self, fn: Callable[[], OpChanges]) -> asyncio.Future[OpChanges]:
        # Submitted now (not when a caller's task first runs), so operations reach the
        # writer in the order they were asked for, between a turn's own writes.
        return asyncio.get_running_loop().run_in_executor(self._writer, fn)


@dataclass
class _TurnState:
    provider: str
    model: str
    parts: list[str] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    attempts: int = 0
    fallback_note: str | None = None
    tools: list[ToolRunFinished] = field(default_factory=list)
    tool_rows: dict[int, tuple[Any, int]] = field(default_factory=dict)
    """id(call) -> (the call, kept alive so its id stays unique; its tool_calls row)."""
    stopped: AgentStopped | None = None
    sources: tuple[Source, ...] = ()
    search_query: str | None = None
    # ---- metering (issue 13)
    metered: bool = False
    cost: float | None = 0.0
    local: bool = False
    cached: bool = False
    estimate: Estimated | None = None
    notes: list[str] = field(default_factory=list)

    def text(self) -> str:
        return "".join(self.parts)

    def meter(self, ev: Metered) -> None:
        """Add one request's cost (an unknown one makes the turn's cost unknown)."""
        self.metered = True
        self.local = self.local or ev.local
        self.cost = None if self.cost is None or ev.cost_usd is None else self.cost + ev.cost_usd

    def tool_row(self, run: ToolRunFinished) -> int:
        """The stored row of a finished call (rows are numbered in start order)."""
        return self.tool_rows[id(run.call)][1]


def _ledger_entry(ev: Metered, conversation_id: int, message_id: int) -> LedgerEntry:
    u, e = ev.usage, ev.estimate
    return LedgerEntry(
        ev.provider,
        ev.model,
        u.input_tokens,
        u.output_tokens,
        u.cached_input_tokens,
        u.cache_write_tokens,
        cost_usd=ev.cost_usd,
        purpose=ev.purpose,
        conversation_id=conversation_id,
        message_id=message_id,
        fallback=ev.fallback,
        cache_hit=ev.cache_hit,
        saved_usd=ev.saved_usd,
        local=ev.local,
        est_input_tokens=e.input_tokens if e else None,
        est_exact=e.exact if e else None,
        est_basis_tokens=e.basis_tokens if e else None,
        est_method=e.method if e else None,
    )


def _as_messages(branch: Sequence[StoredMessage]) -> tuple[Message, ...]:
    """Stored messages as provider messages (finished text only, attachments inlined)."""
    out: list[Message] = []
    for m in branch:
        if m.role not in ("user", "assistant"):
            continue
        if m.role == "assistant" and not m.content:
            continue  # a failed answer with no text: leave it out of the context
        content = m.content
        attachments = m.meta.get("attachments") if m.role == "user" else None
        if attachments:
            content = with_attachments(content, attachments)
        out.append(Message(m.role, content))  # type: ignore[arg-type]
    return tuple(out)


def with_attachments(text: str, attachments: Sequence[dict[str, Any]]) -> str:
    """A question with its attachments, as the model receives it."""
    parts = [text]
    for a in attachments:
        name = a.get("name", "attachment")
        parts.append(f'\n\n<attachment name="{name}">\n{a.get("text", "")}\n</attachment>')
    return "".join(parts)
