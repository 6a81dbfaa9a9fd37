"""What the person asks for, turned into turns: send, regenerate, retry, edit, stop.

:class:`TurnRequests` reads the composer (text, attachments, edit mode, switches) and the
model picker, builds the turn's :class:`~parley.core.chat.TurnOptions` and hands the
:class:`~parley.ui.controllers.ChatController` everything the turn needs, including what to
await first (the SDK client, the documents). It keeps the draft: the composer empties at
once, and if the turn fails before the question is saved, the text, attachments and edit
mode go back into it. Retry and version switches are ``ChatSession`` operations first (the
branch moves on the writer), then a turn or a reload.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject

from parley.core.errors import ParleyError
from parley.ui.attachments import Attachment
from parley.ui.chat.model import ChatRole

if TYPE_CHECKING:
    from parley.core.chat import ChatSession, OpChanges, TurnOptions
    from parley.ui.chat.transcript import Transcript
    from parley.ui.composer import Composer
    from parley.ui.controllers import ChatController, RunningTurn
    from parley.ui.model_picker import ModelPicker
    from parley.ui.notices import NoticeBar

RunOp = Callable[..., "asyncio.Task[None]"]
"""Runs a core operation and redraws what changed (``ConversationList.run``)."""

Gate = Callable[[Callable[[], object]], bool]
"""Asked before a turn starts: False to go ahead; True when it holds the turn back and may
call the given function later to start it (the budget's confirmation, issue 13)."""


@dataclass(frozen=True)
class _Draft:
    """What was in the composer when it was sent (restored if the turn fails early)."""

    text: str
    attachments: list[Attachment]
    editing_id: int | None


class TurnRequests(QObject):
    """Starts turns from the composer and the transcript's actions.

    Args:
        composer: The question, its attachments, edit mode and switches.
        picker: The chosen provider and model.
        controller: Runs the turns.
        transcript: The conversation shown (its id, its messages).
        notice: Says why a turn could not start.
        chat: The core session (retry and versions move the branch first).
        run_op: Awaits a core operation and redraws what changed.
        turn_options: Builds a turn's options from settings (may raise ``ParleyError``).
        before_turn: Awaited by each turn before it talks to the core.
        reopen: Shows a conversation again (after a version switch).
        gate: Asked before each turn (None: turns start at once).
    """

    def __init__(
        self,
        *,
        composer: Composer,
        picker: ModelPicker,
        controller: ChatController,
        transcript: Transcript,
        notice: NoticeBar,
        chat: ChatSession,
        run_op: RunOp,
        turn_options: Callable[..., TurnOptions],
        before_turn: Callable[[TurnOptions], Awaitable[None]],
        reopen: Callable[[int], asyncio.Task[None] | None],
        gate: Gate | None = None,
    ) -> None:
        super().__init__(composer)
        self._composer = composer
        self._picker = picker
        self._controller = controller
        self._transcript = transcript
        self._notice = notice
        self._chat = chat
        self._run_op = run_op
        self._turn_options = turn_options
        self._before_turn = before_turn
        self._reopen = reopen
        self._gate = gate
        self._draft: _Draft | None = None

        controller.sig_busy_changed.connect(self._busy_changed)
        controller.sig_turn_started.connect(self._turn_started)
        controller.sig_turn_failed.connect(self.turn_failed)
        composer.sig_send_requested.connect(self.send)
        composer.sig_stop_requested.connect(self.stop)
        composer.sig_regenerate_requested.connect(self.regenerate)
        composer.sig_edit_last_requested.connect(self.edit_last_question)

    # ---- Public API
    def send(self, text: str) -> None:
        """Send the composer's text (or the edited question in edit mode)."""
        if self._controller.is_busy() or not text.strip():
            return
        if self._gate is not None and self._gate(lambda: self._send(self._composer.text())):
            return  # held back; sent later with what the composer holds then, or not at all
        self._send(text)

    def _send(self, text: str) -> None:
        if self._controller.is_busy() or not text.strip():
            return
        cid = self._transcript.conversation_id
        editing = self._composer.editing_id()
        kind = "edit" if editing is not None and cid is not None else "send"
        chips = self._composer.attachments()
        attachments = [a.to_core() for a in chips]
        self._draft = _Draft(text, chips, editing)
        self._composer.clear()
        self._composer.clear_attachments()
        options = self._options_now(kind, text)
        if options is None:
            return
        ready = self._before_turn(options)
        if editing is not None and cid is not None:
            self._controller.edit(cid, editing, text, attachments, options=options, ready=ready)
            return
        self._transcript.set_outgoing_attachments([a.name for a in chips])
        self._controller.send(text, cid, attachments, options=options, ready=ready)

    def stop(self) -> None:
        """Esc / Stop: cancel the running turn; else leave edit mode."""
        if self._controller.stop():
            return
        if self._composer.editing_id() is not None:
            self._composer.cancel_edit()

    def regenerate(self) -> None:
        """Answer the last question again (the old answer stays as another version)."""
        cid = self._transcript.conversation_id
        if self._controller.is_busy() or cid is None:
            return
        if self._gate is not None and self._gate(lambda: self._regenerate(cid)):
            return
        self._regenerate(cid)

    def retry(self, message_id: str) -> asyncio.Task[None] | None:
        """Retry/regenerate a specific answer (a new version of it)."""
        if self._controller.is_busy():
            return None
        if self._gate is not None and self._gate(lambda: self._retry(message_id)):
            return None
        return self._retry(message_id)

    def _retry(self, message_id: str) -> asyncio.Task[None] | None:
        if self._controller.is_busy():
            return None

        def answer_again(changes: OpChanges) -> None:
            cid = changes.conversation_id
            if cid is None or self._controller.is_busy():
                return  # the message is gone, or another turn started meanwhile
            self._transcript.conversation_id = cid
            self._regenerate(cid)

        op = self._chat.rewind_to_question(int(message_id))
        return self._run_op(op, answer_again, name="retry")

    def show_version(self, message_id: str) -> asyncio.Task[None] | None:
        """Switch the conversation to the branch through ``message_id``."""
        if self._controller.is_busy():
            return None

        op = self._chat.switch_version(int(message_id))
        return self._run_op(op, self._reopen_changed, name="version")

    def delete_answer(self, message_id: str) -> asyncio.Task[None] | None:
        """Delete an answer (and what followed it); the conversation shows what remains."""
        if self._controller.is_busy():
            return None

        op = self._chat.delete_answer(int(message_id))
        return self._run_op(op, self._reopen_changed, name="delete")

    def _reopen_changed(self, changes: OpChanges) -> asyncio.Task[None] | None:
        """After an operation on the shown conversation: show it as it is now."""
        if changes.conversation_id is None:
            return None
        return self._reopen(changes.conversation_id)

    def begin_edit(self, message_id: str) -> None:
        """Put an earlier question into the composer; sending makes a new version."""
        if self._controller.is_busy():
            return
        item = self._transcript.view.item(message_id)
        if item is not None:
            self._composer.begin_edit(int(message_id), item.text)

    def edit_last_question(self) -> None:
        """Up in an empty composer: edit the newest question."""
        last = self._transcript.last_message(ChatRole.USER)
        if last is not None:
            self.begin_edit(last)

    def turn_failed(self, kind: str, text: str, reason: str) -> None:
        """A turn could not start: say why and put the draft back."""
        self._notice.show_notice(reason, kind="error", timeout_s=12.0, tag="failed")
        if kind in ("send", "edit"):
            self._restore_draft()  # never lose what the person wrote
        self._composer.edit.setFocus()

    # ---- internals
    def _regenerate(self, conversation_id: int) -> None:
        options = self._options_now("regenerate", "")
        if options is not None:
            ready = self._before_turn(options)
            self._controller.regenerate(conversation_id, options=options, ready=ready)

    def _options_now(self, kind: str, text: str) -> TurnOptions | None:
        """The next turn's options from the picker and the switches (None: said why)."""
        current = self._picker.current()
        provider, model = current if current is not None else (None, None)
        use_tools, use_knowledge = self._composer.options()
        try:
            return self._turn_options(
                provider=provider, model=model, use_tools=use_tools, use_knowledge=use_knowledge
            )
        except ParleyError as exc:  # no model configured...
            self.turn_failed(kind, text, exc.user_message)
            return None

    def _restore_draft(self) -> None:
        draft, self._draft = self._draft, None
        if draft is None:
            return
        current = self._composer.text()
        if draft.editing_id is not None and not current:
            self._composer.begin_edit(draft.editing_id, draft.text)
        else:
            self._composer.set_text(draft.text + ("\n" + current if current else ""))
        for a in draft.attachments:
            self._composer.add_attachment(a)

    def _busy_changed(self, busy: bool) -> None:
        self._composer.set_busy(busy)
        if not busy:
            self._composer.set_can_regenerate(self._transcript.view.model().rowCount() > 0)

    def _turn_started(self, _turn: RunningTurn) -> None:
        self._draft = None  # the question is saved: nothing to give back any more
