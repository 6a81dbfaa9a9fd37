"""Render the chat view's issue-14 states to PNG (light and dark, 800x600 and 1600x1000).

Run: ``.venv/bin/python tests/bench/screenshots_chat.py [OUT]`` (default
``/tmp/parley-chat-shots``).

States: a question and an answer with the version switcher, the model name, the actions
shown on hover, cited passages with "N more sent" and the usage line (``chat-top``,
``chat-bottom``); tool cards inside an answer (``tools``); the citation preview pane
(``preview``); the folder approval prompt (``folder-prompt``).
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main(out: Path) -> None:
    """Render every state into ``out``."""
    from PySide6.QtCore import QEvent, QPointF, Qt
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

    app = QApplication.instance() or QApplication([])
    assert isinstance(app, QApplication)
    from tests.bench.screenshots import ANSWER

    from parley.ui.chat.model import ChatItem, ChatRole, FooterItem
    from parley.ui.chat.transcript import usage_footer
    from parley.ui.chat.view import ChatView
    from parley.ui.folder_approval import ask_folder
    from parley.ui.knowledge.citations import OpenRequest
    from parley.ui.knowledge.preview import CitationPreview
    from parley.ui.theme import apply_theme

    out.mkdir(parents=True, exist_ok=True)
    price = "$0.15 in · $0.60 out per 1M tokens"
    chat = [
        ChatItem("1", ChatRole.USER, "How do I sort records by two fields?", versions=(2, 2)),
        ChatItem(
            "2",
            ChatRole.ASSISTANT,
            ANSWER + "\n\nAs the notes say [1].",
            model="gpt-4o-mini",
            versions=(2, 3),
            footer=(
                FooterItem("[1] notes/sorting.md · lines 3–9", "citation", "parley-cite:1"),
                FooterItem("3 more sent", "sources_more", "parley-sources:"),
                usage_footer((1234, 200, 456), 0.00042, price=price),
            ),
        ),
    ]
    before = "Let me look at the project's notes first."
    tools_text = before + "\n\nThe budget is **40,000 euros** for Q3, and 6 × 7 = 42."
    at = len(before)
    tools = [
        ChatItem("1", ChatRole.USER, "What is the Q3 budget? And 6 × 7?"),
        ChatItem(
            "2",
            ChatRole.ASSISTANT,
            tools_text,
            model="gpt-4o-mini",
            footer=(
                FooterItem(
                    "⚙ read_file · notes/budget.md · done · 12 ms  ▾ hide",
                    "tool_call",
                    "parley-tool:a",
                    offset=at,
                ),
                FooterItem('Arguments: {"path": "notes/budget.md"}', "tool_detail", offset=at),
                FooterItem(
                    "Result: 2 The budget for Q3 is 40,000 euros.", "tool_detail", offset=at
                ),
                FooterItem(
                    "⚙ calculator · 6 * 7 · done · 1 ms  ▸ details",
                    "tool_call",
                    "parley-tool:b",
                    offset=at,
                ),
                usage_footer((900, 0, 120), 0.0002, price=price),
            ),
        ),
    ]
    sample = out / "sample.md"
    sample.write_text("".join(f"Line {i}: notes about sorting records.\n" for i in range(1, 80)))

    async def prompt(theme: str) -> None:
        host = QWidget()
        host.resize(800, 600)
        host.show()
        task = asyncio.ensure_future(ask_folder(host, "/home/ada/projects/parley"))
        await asyncio.sleep(0.05)
        app.processEvents()
        box = host.findChild(QMessageBox)
        assert box is not None
        box.grab().save(str(out / f"folder-prompt-{theme}.png"))
        box.reject()
        await task

    for theme in ("light", "dark"):
        apply_theme(app, theme)
        for w, h in ((800, 600), (1600, 1000)):
            for name, items in (("chat", chat), ("tools", tools)):
                view = ChatView()
                view.resize(w, h)
                view.show()
                view.set_messages(items)
                app.processEvents()
                canvas = view.canvas()
                canvas.verticalScrollBar().setValue(0)
                app.processEvents()
                rect = canvas.message_rect("2")
                assert rect is not None
                pos = QPointF(rect.center().x(), rect.top() + 10)  # hover: actions show
                move = QMouseEvent(
                    QEvent.Type.MouseMove,
                    pos,
                    pos,
                    Qt.MouseButton.NoButton,
                    Qt.MouseButton.NoButton,
                    Qt.KeyboardModifier.NoModifier,
                )
                app.sendEvent(canvas.viewport(), move)
                app.processEvents()
                view.grab().save(str(out / f"{name}-top-{theme}-{w}.png"))
                bar = canvas.verticalScrollBar()
                bar.setValue(bar.maximum())
                app.processEvents()
                view.grab().save(str(out / f"{name}-bottom-{theme}-{w}.png"))
                view.close()
        preview = CitationPreview()
        preview.resize(520, 600)
        preview.show()
        asyncio.run(preview.show_citation(OpenRequest(sample, line=40, n=1), None))
        app.processEvents()
        preview.grab().save(str(out / f"preview-{theme}.png"))
        preview.close()
        asyncio.run(prompt(theme))
    print(out)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/parley-chat-shots"))
