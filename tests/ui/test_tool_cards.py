"""Issue 14 item 8: tool cards stay where the call happened in the answer, after a reload too."""

from __future__ import annotations

from tests.fakes.script import Call, Text, ToolCalls
from tests.fakes.server import FakeLLMServer
from tests.ui.harness import WindowHarness


def _order(text: str, *needles: str) -> list[int]:
    return [text.index(n) for n in needles]


async def test_tool_card_sits_between_the_text_before_and_after_the_call(qtbot) -> None:
    with FakeLLMServer() as srv:
        srv.enqueue(
            ToolCalls([Call("calculator", '{"expression": "6 * 7"}')], text="Let me compute."),
            Text("The answer is 42."),
        )
        async with WindowHarness(qtbot, server=srv) as h:
            w = h.w
            w.composer.tools_switch.setChecked(True)
            await h.send_and_wait("what is 6 * 7?", timeout=15)
            mid = h.items()[-1].message_id
            canvas = w.view.canvas()
            shown = canvas.rendered_text(mid)
            before, card, after = _order(
                shown, "Let me compute.", "⚙ calculator · 6 * 7 · done", "The answer is 42."
            )
            assert before < card < after, shown
            stored = h.s.conversations.tool_calls(int(mid))
            assert stored[0].text_offset == len("Let me compute.")
            # Opened, the card shows its arguments and result, still in place.
            await h.click_anchor(mid, "parley-tool:")
            await h.until(lambda: "Result: 42" in canvas.rendered_text(mid), what="details")
            shown = canvas.rendered_text(mid)
            assert _order(shown, "Let me compute.", "Result: 42", "The answer is 42.") == sorted(
                _order(shown, "Let me compute.", "Result: 42", "The answer is 42.")
            )
            # After a reload: the same order.
            cid = w.conversation_id
            w.new_chat()
            await w.open_conversation(cid)
            await h.until(lambda: len(h.items()) == 2, what="reloaded")
            shown = canvas.rendered_text(h.items()[-1].message_id)
            before, card, after = _order(
                shown, "Let me compute.", "⚙ calculator", "The answer is 42."
            )
            assert before < card < after, shown
