"""Grounded answers in the window: sources, clickable citations, the Sources panel.

The end-to-end test drops a real folder (Markdown, text and a PDF made with QPdfWriter) on the
real window, which indexes it in the background with the local MiniLM model; a grounded turn
then goes to the fake LLM server through the real SDK, and the scripted answer cites [1] and
[2]. Clicks go through the real chat view; the window's citation opener is replaced by a
recorder (the only fake: launching a program is the edge).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QPageSize, QPainter, QPdfWriter
from PySide6.QtTest import QTest

from parley.core.knowledge.grounding import Source
from parley.ui.chat.markdown import LIGHT_THEME, MarkdownRenderer
from parley.ui.chat.model import ChatItem, ChatRole, FooterItem, MessageStatus
from parley.ui.chat.view import ChatView
from parley.ui.knowledge.citations import (
    CitationRefused,
    OpenRequest,
    citation_footer,
    citation_label,
    editor_args,
    open_command,
    resolve_citation,
    sources_from_meta,
)
from parley.ui.knowledge.sources_panel import SourcesPanel
from tests.assets import need_minilm
from tests.fakes.script import Call, Text, ToolCalls
from tests.fakes.server import FakeLLMServer
from tests.ui.harness import WindowHarness, chat_requests, local_settings


def _source(n: int, path: Path, root: Path, **kw: Any) -> Source:
    base: dict[str, Any] = {
        "heading": "",
        "page": None,
        "line_start": None,
        "line_end": None,
        "text": f"passage {n}",
        "score": 0.03,
        "dense_score": 0.5,
        "keyword_score": 1.5,
    }
    base.update(kw)
    return Source(n=n, path=str(path), root=str(root), **base)


# ---------------------------------------------------------------- Markdown


def test_only_existing_numbers_outside_code_become_citation_links() -> None:
    plain = MarkdownRenderer(LIGHT_THEME)
    text = (
        "Sun [1] and water [2][3]. Code `[1]` stays, [link [2]](https://example.com) stays, "
        "[0] and [01] and [١] stay.\n\n```\nx = a[1]\n```\n\n| a | b |\n|---|---|\n| [2] | x |"
    )
    assert "parley-cite" not in plain.to_html(text)  # no sources: no links at all
    html = plain.with_citations([1, 2]).to_html(text)
    assert html.count('href="parley-cite:1"') == 1
    assert html.count('href="parley-cite:2"') == 2  # the prose and the table cell
    assert "parley-cite:3" not in html and "parley-cite:0" not in html
    assert "x = a[1]" in html and "<code" in html and ">[1]</code>" in html
    assert plain.with_citations([]) is plain
    again = plain.with_citations([1, 2])
    assert again.citations == frozenset({1, 2}) and again.theme is plain.theme


# ---------------------------------------------------------------- the chat view


def _click(view: ChatView, point: QPointF) -> None:
    QTest.mouseClick(view.canvas().viewport(), Qt.MouseButton.LeftButton, pos=point.toPoint())


def test_view_emits_citations_for_known_numbers_only(qtbot) -> None:
    view = ChatView()
    qtbot.addWidget(view)
    view.resize(700, 500)
    view.show()
    footer = (
        FooterItem("[1] notes/a.md · line 3", kind="citation", href="parley-cite:1"),
        FooterItem("[2] notes/b.pdf · page 2", kind="citation", href="parley-cite:2"),
    )
    view.set_messages(
        [
            ChatItem("u1", ChatRole.USER, "Question [1]?"),
            ChatItem("a1", ChatRole.ASSISTANT, "Fact two [2], no [9].", footer=footer),
        ]
    )
    view.flush()
    got: list[tuple[str, int]] = []
    focused: list[str] = []
    view.sig_citation_activated.connect(lambda m, n: got.append((m, n)))
    view.sig_message_focused.connect(focused.append)
    assert view.canvas().anchor_point("u1", "parley-cite:") is None  # questions: never
    assert view.canvas().anchor_point("a1", "parley-cite:9") is None
    p2 = view.canvas().anchor_point("a1", "parley-cite:2")
    assert p2 is not None
    _click(view, p2)
    assert got == [("a1", 2)] and focused[-1] == "a1"
    # the source lines under the answer link too ([1] is not in the text: this is the footer)
    footer_point = view.canvas().anchor_point("a1", "parley-cite:1")
    assert footer_point is not None and footer_point.y() > p2.y()
    _click(view, footer_point)
    assert got[-1] == ("a1", 1)


def test_sources_arriving_mid_stream_turn_markers_into_links(qtbot) -> None:
    view = ChatView()
    qtbot.addWidget(view)
    view.resize(700, 400)
    view.show()
    view.append(ChatItem("a1", ChatRole.ASSISTANT, "", status=MessageStatus.STREAMING))
    view.append_delta("a1", "Grounded [1] and ")
    view.flush()
    assert view.canvas().anchor_point("a1", "parley-cite:1") is None
    view.set_footer(
        "a1", [FooterItem("[1] notes/a.md · line 3", kind="citation", href="parley-cite:1")]
    )
    view.append_delta("a1", "more [1].")
    view.flush()
    view.end_stream("a1")
    assert view.item("a1").text == "Grounded [1] and more [1]."  # type: ignore[union-attr]
    assert view.canvas().anchor_point("a1", "parley-cite:1") is not None
    # the rendered text is unchanged apart from the links
    assert "Grounded [1] and more [1]." in view.canvas().rendered_text("a1")


# ---------------------------------------------------------------- resolving and opening


def test_resolve_checks_the_number_the_folder_and_symlinks(tmp_path) -> None:
    root = tmp_path / "notes"
    root.mkdir()
    inside = root / "a.md"
    inside.write_text("one\ntwo\nthree\n")
    secret = tmp_path / "secret.txt"
    secret.write_text("private")
    link = root / "link.txt"
    link.symlink_to(secret)
    sources = [
        _source(1, inside, root, line_start=2, line_end=3),
        _source(2, secret, tmp_path),
        _source(3, link, root, line_start=1),
        _source(4, root / "gone.md", root, line_start=1),
        _source(5, root / "doc.pdf", root, page=3),
    ]
    (root / "doc.pdf").write_bytes(b"%PDF-1.4\n")
    req = resolve_citation(sources, 1, [root])
    assert req == OpenRequest(path=inside.resolve(), page=None, line=2, n=1)
    assert req.where() == "line 2" and not req.is_pdf
    pdf = resolve_citation(sources, 5, [str(root)])
    assert pdf.page == 3 and pdf.line is None and pdf.is_pdf
    for n, message in (
        (9, "no source [9]"),
        (2, "not inside the folders you added"),
        (3, "not inside the folders you added"),  # a link inside pointing outside
        (4, "no longer exists"),
    ):
        with pytest.raises(CitationRefused, match=message.replace("[", r"\[").replace("]", r"\]")):
            resolve_citation(sources, n, [root])


def test_open_command_picks_a_viewer_or_editor_that_understands_pages_and_lines(tmp_path) -> None:
    pdf = OpenRequest(tmp_path / "x.pdf", page=3)
    text = OpenRequest(tmp_path / "x.py", line=42)

    def which(*names: str) -> Any:
        return lambda n: f"/usr/bin/{n}" if n in names else None

    assert open_command(pdf, environ={}, which=which("evince")) == (
        "/usr/bin/evince",
        ["-i", "3", str(pdf.path)],
    )
    assert open_command(pdf, environ={}, which=which("okular", "evince"))[1][:2] == ["-p", "3"]
    assert open_command(pdf, environ={}, which=which()) is None  # the system viewer
    assert open_command(OpenRequest(tmp_path / "x.pdf"), environ={}, which=which("evince")) is None
    env = {"VISUAL": "gvim -f", "EDITOR": "vim"}
    assert open_command(text, environ=env, which=which("gvim", "vim", "code")) == (
        "/usr/bin/gvim",
        ["-f", "+42", str(text.path)],
    )
    # a terminal editor is skipped (no terminal), VS Code on PATH is next
    assert open_command(text, environ={"EDITOR": "nano"}, which=which("nano", "code")) == (
        "/usr/bin/code",
        ["-g", f"{text.path}:42"],
    )
    assert open_command(text, environ={"EDITOR": "nano"}, which=which("nano")) is None
    assert editor_args("kate", [], "/f", 7) == ["-l", "7", "/f"]
    assert editor_args("/opt/subl", [], "/f", 7) == ["/f:7"]
    assert editor_args("emacsclient", ["-c"], "/f", 7) == ["-c", "-n", "+7", "/f"]
    assert editor_args("emacs", ["-nw"], "/f", 7) is None
    assert editor_args("unknown-editor", [], "/f", 7) is None


def test_labels_and_stored_sources(tmp_path) -> None:
    root = tmp_path / "notes"
    s1 = _source(1, root / "q3.md", root, line_start=10, line_end=24)
    s2 = _source(2, root / "sub" / "x.pdf", root, page=3)
    s3 = _source(3, root / "one.txt", root, line_start=7, line_end=7)
    assert citation_label(s1) == "[1] notes/q3.md · lines 10–24"
    assert citation_label(s2) == "[2] notes/sub/x.pdf · page 3"
    assert citation_label(s3) == "[3] notes/one.txt · line 7"
    items = citation_footer([s1, s2])
    assert [(i.kind, i.href) for i in items] == [
        ("citation", "parley-cite:1"),
        ("citation", "parley-cite:2"),
    ]
    assert sources_from_meta({}) is None
    assert sources_from_meta({"sources": []}) == []
    back = sources_from_meta({"sources": [s1.to_dict(), {"bad": 1}, "junk"]})
    assert back == [s1]


def test_sources_panel_shows_passages_and_scores(qtbot, tmp_path) -> None:
    panel = SourcesPanel()
    qtbot.addWidget(panel)
    panel.show()
    root = tmp_path / "notes"
    sources = [
        _source(
            1,
            root / "q3.md",
            root,
            line_start=3,
            line_end=5,
            heading="Q3 > Budget",
            text="The budget is 40,000 euros.",
            score=0.0328,
            dense_score=0.61,
            keyword_score=None,
        ),
        _source(2, root / "x.pdf", root, page=2, text="Hidden\u202etext", dense_score=None),
    ]
    asked: list[tuple[str, int]] = []
    panel.sig_open_requested.connect(lambda m, n: asked.append((m, n)))
    assert panel.title.text() == "Sources"
    panel.show_sources("7", None)
    assert panel.title.text() == "This answer did not use your documents"
    panel.show_sources("7", [])
    assert "nothing relevant was found" in panel.hint.text()
    panel.show_sources("7", sources)
    assert panel.title.text() == "2 passages sent with this answer"
    row = panel.table.topLevelItem(0)
    assert [row.text(c) for c in range(5)] == [
        "1",
        "notes/q3.md · lines 3–5",
        "0.0328",
        "0.610",
        "—",
    ]
    assert panel.text.toPlainText() == "The budget is 40,000 euros."
    assert "under “Q3 > Budget”" in panel.location.text()
    assert panel.select(2)
    assert panel.text.toPlainText() == "Hidden⟨U+202E⟩text"  # revealed, never obeyed
    assert panel.table.topLevelItem(1).text(3) == "—"
    QTest.mouseClick(panel.open_button, Qt.MouseButton.LeftButton)
    assert asked == [("7", 2)]
    assert not panel.select(9)


# ---------------------------------------------------------------- end to end in the window


def _write_pdf(path: Path, pages: list[str]) -> None:
    writer = QPdfWriter(str(path))
    writer.setPageSize(QPageSize(QPageSize.PageSizeId.A4))
    writer.setResolution(72)
    painter = QPainter(writer)
    for i, text in enumerate(pages):
        if i:
            writer.newPage()
        painter.drawText(QRectF(40, 40, 500, 700), Qt.TextFlag.TextWordWrap, text)
    painter.end()


def _folder(tmp_path: Path) -> Path:
    root = tmp_path / "notes"
    root.mkdir()
    (root / "q3.md").write_text(
        "# Q3 plan\n\nWe ship the garden planner in September.\n\n"
        "## Budget\n\nThe budget for the third quarter is 40,000 euros.\n"
    )
    (root / "tomatoes.txt").write_text(
        "Growing notes.\n\nTomatoes need full sun and deep watering twice a week.\n"
    )
    _write_pdf(
        root / "lighthouse.pdf",
        ["Cover page.", "Lighthouse keepers trimmed the wicks of the lamps every night."],
    )
    return root


async def _wait_sources(h: WindowHarness, mid: str) -> list[Source]:
    assert h.w.knowledge is not None
    return await h.until(lambda: h.w.knowledge.sources_for(mid), 30, "sources")  # type: ignore[union-attr]


@pytest.mark.slow
async def test_dropped_folder_grounds_an_answer_whose_citations_open_the_right_place(
    qtbot, tmp_path
) -> None:
    need_minilm()
    root = _folder(tmp_path)
    opened: list[OpenRequest] = []
    with FakeLLMServer() as srv:
        async with WindowHarness(qtbot, server=srv, settings=local_settings(srv)) as h:
            w = h.w
            w.set_citation_opener(opened.append)
            knowledge = w.knowledge
            assert knowledge is not None
            # Drag and drop: the folder is added and indexed in the background.
            h.drop([str(root)])
            assert h.s.settings.current.knowledge.folders == [str(root.resolve())]
            assert "indexing it now" in w.notice.text()
            await h.until(knowledge.is_busy, what="indexing to start")
            await h.until(lambda: not knowledge.is_busy(), timeout=120, what="indexing to end")
            await h.until(
                lambda: [r.status for r in knowledge.rows()] == ["indexed"],
                timeout=30,
                what="indexed row",
            )
            assert knowledge.rows()[0].files == 3

            # A grounded turn: "Use my documents" on, the scripted answer cites [1] and [2].
            QTest.mouseClick(w.composer.knowledge_switch, Qt.MouseButton.LeftButton)
            assert w.composer.options() == (False, True)
            srv.enqueue(Text("The budget is 40,000 euros [1]; tomatoes want sun [2]. Also [9]."))
            await h.send_and_wait("What is the Q3 budget, and what do tomatoes need?", timeout=30)
            system = chat_requests(srv)[-1].json["messages"][0]
            assert system["role"] == "system" and "<sources nonce=" in system["content"]
            answer = h.items()[-1]
            mid = answer.message_id
            sources = await _wait_sources(h, mid)
            assert len(sources) >= 3  # the whole small corpus fits the budget
            for s in sources:
                assert f'n="{s.n}"' in system["content"] and s.text[:30] in system["content"]
            # Under the answer: the passages it cited; the others fold into "N more sent".
            answer = await h.until(
                lambda: next(
                    (i for i in h.items() if i.message_id == mid and _more(i) is not None), None
                ),
                what="the cited passages listed",
            )
            cites = [f for f in answer.footer if f.kind == "citation"]
            cited = [s for s in sources if s.n in (1, 2)]
            assert [f.text for f in cites] == [citation_label(s) for s in cited]
            pairs = zip(cites, cited, strict=True)
            assert all(f.text.startswith(f"[{s.n}] notes/") for f, s in pairs)
            assert _more(answer) == f"{len(sources) - 2} more sent"
            more = w.view.canvas().anchor_point(mid, "parley-sources:")
            assert more is not None
            _click(w.view, more)
            assert w.docks is not None and w.docks.sources_panel is not None
            assert w.docks.sources_panel.message_id() == mid

            # Clicking [1] and [2] in the answer opens those files at their line or page.
            view = w.view
            assert view is not None
            assert view.canvas().anchor_point(mid, "parley-cite:9") is None  # no source 9
            for n in (1, 2):
                point = view.canvas().anchor_point(mid, f"parley-cite:{n}")
                assert point is not None, n
                _click(view, point)
                # Shown inside Parley: the preview pane, at the cited lines, highlighted.
                req = await h.until(lambda n=n: _previewed(w, n), what=f"citation {n} shown")
                _assert_right_place(req, sources[n - 1], root)
                _assert_highlighted(w, sources[n - 1])
            assert opened == []  # nothing started outside Parley
            # "Open in default app" is the secondary way out.
            assert w.docks is not None and w.docks.preview is not None
            w.docks.preview.open_button.click()
            assert opened == [req]
            # The PDF source (from the source list) shows its page, as text.
            pdf = next(s for s in sources if "Lighthouse" in s.text)
            assert pdf.page == 2 and citation_label(pdf).endswith("lighthouse.pdf · page 2")
            w.open_citation(mid, pdf.n)
            req = await h.until(lambda: _previewed(w, pdf.n), what="pdf shown")
            assert req == OpenRequest(Path(pdf.path).resolve(), page=2, n=pdf.n)
            assert "— page 2 —" in w.docks.preview.text.toPlainText()
            assert "Lighthouse keepers" in " ".join(w.docks.preview.highlighted_text().split())

            # The Sources panel: exactly the chunks sent, with their scores.
            panel = w.show_sources()
            assert panel is not None and panel.message_id() == mid
            assert [s.n for s in panel.sources()] == [s.n for s in sources]
            assert panel.table.topLevelItemCount() == len(sources)
            assert panel.text.toPlainText() == sources[0].text
            assert panel.table.topLevelItem(0).text(2) == f"{sources[0].score:.4f}"
            assert panel.search_query() is None and panel.query.isHidden()

            # A follow-up that leans on the turn before is searched as a standalone query,
            # written by the chat model, and the panel says what was searched.
            srv.enqueue(Text("how often to water tomatoes"), Text("Twice a week [1]."))
            await h.send_and_wait("And how often do they need it?", timeout=30)
            rewrite, grounded = chat_requests(srv)[-2:]
            assert "And how often do they need it?" in rewrite.json["messages"][-1]["content"]
            assert grounded.json["messages"][-1]["content"] == "And how often do they need it?"
            follow = h.items()[-1].message_id
            followed = await _wait_sources(h, follow)
            assert "Tomatoes need full sun" in followed[0].text
            panel = w.show_sources(follow)
            assert panel is not None and panel.search_query() == "how often to water tomatoes"
            assert not panel.query.isHidden() and "how often to water" in panel.query.text()
            w.show_sources(mid)  # the first answer searched its question as asked
            assert panel.search_query() is None and panel.query.isHidden()

            # Reopened from the database: the same sources, still clickable.
            w.docks.preview.text.setExtraSelections([])
            w.new_chat()
            await w.open_conversation(w.sidebar.ids()[0])
            again = next(i for i in h.items() if i.message_id == mid)
            assert [f.text for f in again.footer if f.kind == "citation"] == [f.text for f in cites]
            point = view.canvas().anchor_point(again.message_id, "parley-cite:2")
            assert point is not None
            _click(view, point)
            req = await h.until(lambda: _previewed(w, 2), what="citation shown after reload")
            _assert_right_place(req, sources[1], root)
            # ... and the follow-up's rewritten query comes back with its sources.
            reopened = w.show_sources(follow)
            assert reopened is not None
            assert reopened.search_query() == "how often to water tomatoes"

            # A folder removed from the documents: its files are not shown any more.
            w.docks.preview.text.setExtraSelections([])
            removed = await knowledge.remove_folder(root.resolve())
            assert removed >= 3 and h.s.settings.current.knowledge.folders == []
            w.open_citation(again.message_id, 1)
            assert "not inside the folders you added" in w.notice.text()
            assert _previewed(w, 1) is None


def _more(item) -> str | None:
    """The "N more sent" line under an answer, if any."""
    return next((f.text for f in item.footer if f.kind == "sources_more"), None)


def _previewed(w, n: int) -> OpenRequest | None:
    """The preview's request once citation ``n`` is shown with its passage highlighted."""
    preview = w.docks.preview if w.docks is not None else None
    if preview is None or preview.request() is None or preview.request().n != n:
        return None
    return preview.request() if preview.highlighted_text() else None


def _assert_highlighted(w, source: Source) -> None:
    """The highlighted lines are the passage, and the pane is scrolled to them."""
    preview = w.docks.preview
    shown = preview.highlighted_text()
    cited = [line.lstrip("#").strip() for line in shown.splitlines() if line.strip()]
    assert cited and all(line in source.text for line in cited), (cited, source.text)
    assert source.line_start is not None
    first = preview.first_visible_line()
    assert first <= source.line_start <= first + 10


def _assert_right_place(req: OpenRequest, source: Source, root: Path) -> None:
    """The request names the cited file, and its page or first line holds the cited text."""
    path = Path(source.path)
    assert req.path == path.resolve() and root.resolve() in req.path.parents
    if path.suffix == ".pdf":
        assert req.page == source.page and req.line is None
        return
    assert req.line == source.line_start and req.page is None
    assert source.line_start is not None and source.line_end is not None
    lines = path.read_text().splitlines()[source.line_start - 1 : source.line_end]
    cited = [line.lstrip("#").strip() for line in lines if line.strip()]
    # The lines the citation points at are the passage that was sent (Markdown's heading
    # marks are not part of a passage's text).
    assert cited and all(line in source.text for line in cited), (cited, source.text)


# ---------------------------------------------------------------- tool cards under an answer


async def test_tool_calls_show_as_cards_that_open_to_arguments_and_result(qtbot) -> None:
    with FakeLLMServer() as srv:
        async with WindowHarness(qtbot, server=srv) as h:
            w = h.w
            QTest.mouseClick(w.composer.tools_switch, Qt.MouseButton.LeftButton)
            assert w.composer.options() == (True, False)
            srv.enqueue(
                ToolCalls([Call("calculator", '{"expression": "6 * 7"}')]),
                Text("Six times seven is 42."),
            )
            await h.send_and_wait("What is 6 * 7?")
            answer = h.items()[-1]
            assert answer.text == "Six times seven is 42."
            cards = [f for f in answer.footer if f.kind == "tool_call"]
            assert len(cards) == 1 and cards[0].text.startswith("⚙ calculator · 6 * 7 · done · ")
            assert cards[0].text.endswith("▸ details") and cards[0].href
            view = w.view
            assert view is not None
            point = view.canvas().anchor_point(answer.message_id, "parley-tool:")
            assert point is not None
            _click(view, point)
            item = view.item(answer.message_id)
            assert item is not None
            details = [f.text for f in item.footer if f.kind == "tool_detail"]
            assert details == ['Arguments: {"expression": "6 * 7"}', "Result: 42"]
            assert item.footer[0].text.endswith("▾ hide")
            _click(view, point)  # and closed again
            item = view.item(answer.message_id)
            assert item is not None and not [f for f in item.footer if f.kind == "tool_detail"]

            # After reopening, the card comes from the stored tool calls and still opens.
            w.new_chat()
            await w.open_conversation(w.sidebar.ids()[0])
            again = h.items()[-1]
            assert [f.text for f in again.footer if f.kind == "tool_call"] == [cards[0].text]
            point = view.canvas().anchor_point(again.message_id, "parley-tool:")
            assert point is not None
            _click(view, point)
            item = view.item(again.message_id)
            assert item is not None
            assert [f.text for f in item.footer if f.kind == "tool_detail"] == details


async def test_with_tools_on_and_folders_added_knowledge_search_is_offered(qtbot, tmp_path) -> None:
    """With "Use tools" alone, knowledge_search is one of the tools once folders are added."""
    need_minilm()
    root = tmp_path / "notes"
    root.mkdir()
    with FakeLLMServer() as srv:
        settings = local_settings(srv)
        settings.knowledge.folders = [str(root)]
        async with WindowHarness(qtbot, server=srv, settings=settings) as h:
            w = h.w
            QTest.mouseClick(w.composer.tools_switch, Qt.MouseButton.LeftButton)
            assert w.composer.options() == (True, False)
            srv.enqueue(
                ToolCalls([Call("knowledge_search", '{"query": "budget"}')]),
                Text("Nothing about a budget in your notes."),
            )
            await h.send_and_wait("What is in my notes about the budget?", timeout=60)
            offered = {t["function"]["name"] for t in chat_requests(srv)[0].json["tools"]}
            assert "knowledge_search" in offered
            cards = [f for f in h.items()[-1].footer if f.kind == "tool_call"]
            assert len(cards) == 1
            assert cards[0].text.startswith("⚙ knowledge_search · budget · done")
