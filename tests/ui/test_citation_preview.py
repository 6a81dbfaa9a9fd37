"""Issue 14 item 6: the citation preview pane and the Sources panel's words."""

from __future__ import annotations

from pytestqt.qtbot import QtBot

from parley.ui.knowledge.citations import OpenRequest
from parley.ui.knowledge.preview import CitationPreview
from parley.ui.knowledge.sources_panel import SourcesPanel


def _preview(qtbot: QtBot) -> CitationPreview:
    preview = CitationPreview()
    qtbot.addWidget(preview)
    preview.resize(500, 300)
    preview.show()
    return preview


async def test_preview_highlights_the_cited_lines_and_scrolls_to_them(qtbot, tmp_path) -> None:
    code = tmp_path / "tool.py"
    code.write_text("".join(f"line {i}\n" for i in range(1, 301)))
    preview = _preview(qtbot)
    request = OpenRequest(code, line=200, n=3)
    assert await preview.show_citation(request, None)
    assert preview.highlighted_text() == "line 200"
    assert preview.first_visible_line() <= 200 <= preview.first_visible_line() + 10
    assert preview.title.text() == "[3] tool.py · line 200"
    assert preview.open_button.isEnabled()
    got = []
    preview.sig_open_external.connect(got.append)
    preview.open_button.click()
    assert got == [request]


async def test_preview_reads_the_file_as_it_was_indexed(qtbot, tmp_path) -> None:
    # Issue 15: the one decoder. A UTF-16 file read as UTF-8 showed NULs and no line 2.
    notes = tmp_path / "notes.txt"
    notes.write_bytes("Grüße\nà côté du théâtre\nfin\n".encode("utf-16"))
    preview = _preview(qtbot)
    assert await preview.show_citation(OpenRequest(notes, line=2, n=1), None)
    assert preview.highlighted_text() == "à côté du théâtre"


async def test_preview_says_when_the_file_cannot_be_read(qtbot, tmp_path) -> None:
    preview = _preview(qtbot)
    ok = await preview.show_citation(OpenRequest(tmp_path / "gone.md", line=1, n=1), None)
    assert not ok
    assert preview.status.text().startswith("Could not read gone.md")
    assert preview.text.toPlainText() == ""


def test_sources_panel_names_the_searches_in_plain_words(qtbot) -> None:
    panel = SourcesPanel()
    qtbot.addWidget(panel)
    header = panel.table.headerItem()
    assert [header.text(i) for i in range(2, 5)] == ["combined", "meaning match", "keyword match"]
    assert "meaning" in header.toolTip(3).lower()


def test_only_cited_passages_are_listed_the_rest_fold() -> None:
    from parley.core.knowledge.grounding import Source
    from parley.ui.knowledge.citations import citation_footer, without_citations

    sources = [
        Source(n, f"/docs/f{n}.md", "/docs", "", None, n, n + 2, f"text {n}", 0.5, 0.5, None)
        for n in (1, 2, 3, 4)
    ]
    streaming = citation_footer(sources)  # the text is not final: all listed
    assert [f.href for f in streaming] == [f"parley-cite:{n}" for n in (1, 2, 3, 4)]
    final = citation_footer(sources, "As [3] says, and [1]; [7] is no source.")
    assert [f.href for f in final[:-1]] == ["parley-cite:1", "parley-cite:3"]
    assert final[-1].text == "2 more sent" and final[-1].href == "parley-sources:"
    assert without_citations(final) == ()
    assert citation_footer(sources, "No citation.")[-1].text == "4 sources sent, none cited"
