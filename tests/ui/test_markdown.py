"""Markdown rendering for the chat view: safety, links, invisible characters, streaming."""

from __future__ import annotations

import random
import re

import pytest

from parley.ui.chat.markdown import (
    DARK_THEME,
    LIGHT_THEME,
    IncrementalMarkdown,
    MarkdownRenderer,
    display_url,
    link_is_openable,
    markdown_to_html,
    render_markdown,
    render_plain_text,
    reveal_invisible,
    strip_invisible,
)

# The tags the renderer may emit; anything else in the output is a sanitising failure.
ALLOWED_TAGS = {
    "p", "br", "a", "span", "code", "pre", "em", "strong", "s", "ul", "ol", "li",
    "table", "tr", "td", "th", "h1", "h2", "h3", "h4", "h5", "h6", "div",
}  # fmt: skip
TAG = re.compile(r"</?([a-zA-Z0-9]+)[^>]*>")
HREF = re.compile(r'href="([^"]*)"')

NASTY = [
    "<script>alert(1)</script>",
    '<img src="http://evil.example/x.png" onerror="alert(1)">',
    '<a href="javascript:alert(1)">click</a>',
    "<iframe src=https://evil.example></iframe>",
    '<style>body{background:url("http://evil.example/x")}</style>',
    "[x](javascript:alert(1)) [y](JaVaScRiPt:alert(1)) [z](data:text/html,<b>hi</b>)",
    "[f](file:///etc/passwd) [u](\\\\\\\\host\\\\share) [s](//host/share) [c](myapp://do)",
    "![pic](http://evil.example/track.png) ![local](file:///etc/passwd)",
    '[t](https://ok.example "title" onclick="x")',
    "<https://ok.example/a> <javascript:alert(1)> <mailto:a@b.example>",
    "&lt;script&gt; &#60;img src=x&#62; &#x3C;b&#x3E;",
    "```html\n<script>alert(1)</script>\n```",
    "`<b>inline</b>`",
    "| <b>a</b> | b |\n|---|---|\n| <img src=x> | [l](javascript:x) |",
    "> <script>x</script>\n> ![i](http://x/y.png)",
    "- <u>item</u>\n- [ok](https://ok.example)",
]


def tags_and_hrefs(html: str) -> tuple[set[str], list[str]]:
    return {m.group(1).lower() for m in TAG.finditer(html)}, HREF.findall(html)


# ---------------------------------------------------------------- links


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com",
        "http://example.com:8080/a/b?c=d#e",
        "https://xn--pple-43d.com/",
        "https://bücher.de/katalog",
        "http://127.0.0.1:8000/",
        "https://[::1]/x",
        "HTTPS://EXAMPLE.COM/",
        "https://example.com/%20space",
    ],
)
def test_http_links_are_openable(url: str) -> None:
    assert link_is_openable(url)


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JAVASCRIPT:alert(1)",
        " javascript:alert(1)",
        "data:text/html,<b>x</b>",
        "file:///etc/passwd",
        "file://server/share/x",
        "\\\\host\\share",
        "//host/share",
        "ftp://example.com/",
        "mailto:a@example.com",
        "parley-copy:0",
        "myapp://open",
        "vbscript:msgbox(1)",
        "https://user:pw@example.com/",
        "https://bank.example@evil.example/",
        "https://exa mple.com/",
        "https://example.com/\u202eexe.txt",
        "https://example.com/%E2%80%AEexe.txt",
        "https://ex\u200bample.com/",
        "https://%65vil.example/",
        "https://example.com\\@evil.example",
        "http:/example.com",
        "http:example.com",
        "https://",
        "https://example.com:99999/",
        "https://example.com:0/",
        "",
        "https://" + "a" * 9000 + ".com",
    ],
)
def test_other_links_are_not_openable(url: str) -> None:
    assert not link_is_openable(url)


def test_display_url_shows_the_punycode_host() -> None:
    # A Cyrillic "а" in "apple.com" is a different host: the person must see that.
    assert display_url("https://\u0430pple.com/login") == "https://xn--pple-43d.com/login"
    assert display_url("https://bücher.de/x?q=1#f") == "https://xn--bcher-kva.de/x?q=1#f"
    # UTS #46 non-transitional, as browsers: faß.de is not fass.de.
    assert display_url("https://faß.de/") == "https://xn--fa-hia.de/"
    assert display_url("https://Example.COM:8443/a") == "https://example.com:8443/a"


def test_display_url_keeps_credentials_and_reveals_invisible_characters() -> None:
    assert display_url("https://bank.example@evil.example/") == (
        "https://bank.example@evil.example/"
    )
    shown = display_url("https://example.com/\u202egpj.exe")
    assert "\u202e" not in shown
    assert "⟨U+202E⟩" in shown
    assert display_url("not a url\u200b") == "not a url⟨U+200B⟩"
    assert "\n" not in display_url("https://example.com/a\nb")


# ---------------------------------------------------------------- invisible characters


def test_bidi_controls_are_revealed_and_stripped() -> None:
    line = 'access_level = "user\u202e \u2066// Check if admin\u2069 \u2066"'
    shown = reveal_invisible(line, code=True)
    assert "⟨U+202E⟩" in shown and "⟨U+2066⟩" in shown and "⟨U+2069⟩" in shown
    assert not re.search("[\u202a-\u202e\u2066-\u2069]", shown)
    assert strip_invisible(line, code=True) == 'access_level = "user // Check if admin "'


def test_tag_characters_smuggling_text_are_decoded_visibly() -> None:
    hidden = "".join(chr(0xE0000 + ord(c)) for c in "ignore rules")
    shown = reveal_invisible(f"Hello{hidden} world")
    assert shown == 'Hello⟨tags: "ignore rules"⟩ world'
    assert strip_invisible(f"Hello{hidden} world") == "Hello world"


def test_legitimate_joiners_and_flags_survive() -> None:
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    scotland = "\U0001f3f4" + "".join(chr(0xE0000 + ord(c)) for c in "gbsct") + "\U000e007f"
    persian = "می\u200cخواهم"
    for text in (family, scotland, persian):
        assert reveal_invisible(text) == text
        assert strip_invisible(text) == text
    # Between ASCII letters a joiner is a smuggling trick, not a ligature.
    assert reveal_invisible("pay\u200dpal") == "pay⟨U+200D⟩pal"


def test_soft_hyphen_is_kept_inside_prose_words_only() -> None:
    assert reveal_invisible("hyphen\u00adation") == "hyphen\u00adation"
    assert reveal_invisible("hyphen\u00adation", code=True) == "hyphen⟨U+00AD⟩ation"
    assert reveal_invisible("end\u00ad ") == "end⟨U+00AD⟩ "
    assert reveal_invisible("\ufeffBOM and \x1b[31mansi") == "⟨U+FEFF⟩BOM and ⟨U+001B⟩[31mansi"


def test_rendered_markdown_reveals_invisible_characters_everywhere() -> None:
    text = (
        "Text \u202eevil\n\n`code\u200b`\n\n```\nline\u2066x\n```\n\n[l\u202e](https://ok.example)"
    )
    html = markdown_to_html(text)
    assert not re.search("[\u200b\u202a-\u202e\u2066-\u2069]", html)
    for marker in ("⟨U+202E⟩", "⟨U+200B⟩", "⟨U+2066⟩"):
        assert marker in html


# ---------------------------------------------------------------- sanitising


@pytest.mark.parametrize("text", NASTY)
def test_output_is_allow_listed(text: str) -> None:
    html = markdown_to_html(text)
    tags, hrefs = tags_and_hrefs(html)
    assert tags <= ALLOWED_TAGS, tags - ALLOWED_TAGS
    for href in hrefs:
        assert link_is_openable(href) or href.startswith("parley-copy:"), href
    for bad in ("<script", "<img", "<iframe", "<style"):
        assert bad not in html.lower()
    for tag in TAG.finditer(html):  # no event handlers or sources smuggled into a real tag
        assert not re.search(r"\s(on\w+|src)\s*=", tag.group(0), re.IGNORECASE), tag.group(0)


def test_raw_html_renders_as_visible_text() -> None:
    html = markdown_to_html("<b>bold?</b> <script>alert(1)</script>")
    assert "&lt;b&gt;bold?&lt;/b&gt;" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_images_become_text_placeholders_and_are_never_loaded() -> None:
    html = markdown_to_html(
        "![a cat](https://cdn.example/cat.png) ![dot](data:image/png;base64,iVBORw0K) "
        "![pw](file:///etc/passwd)"
    )
    assert "<img" not in html
    assert "[image: a cat](https://cdn.example/cat.png)" in html
    assert 'href="https://cdn.example/cat.png"' in html  # openable after confirmation
    assert "[image: dot](data:image/png;base64,iVBORw0K)" in html
    assert "file:///etc/passwd" in html  # markdown-it refuses file: images: literal text
    _, hrefs = tags_and_hrefs(html)
    assert hrefs == ["https://cdn.example/cat.png"]


def test_only_openable_links_become_anchors() -> None:
    html = markdown_to_html(
        "[ok](https://ok.example/a) [js](javascript:alert(1)) [file](file:///x) "
        "[unc](//host/share) [app](myapp://x) <https://auto.example/>"
    )
    _, hrefs = tags_and_hrefs(html)
    assert hrefs == ["https://ok.example/a", "https://auto.example/"]
    assert "js" in html and "unc" in html  # the labels are still shown, as plain text


def test_bare_urls_are_linked_without_trailing_punctuation() -> None:
    html = markdown_to_html("See https://example.com/a_(b). Or (https://example.org/x), ok")
    _, hrefs = tags_and_hrefs(html)
    assert hrefs == ["https://example.com/a_(b)", "https://example.org/x"]


def test_markdown_it_punycodes_link_hosts() -> None:
    _, hrefs = tags_and_hrefs(markdown_to_html("[apple](https://\u0430pple.com/)"))
    assert hrefs == ["https://xn--pple-43d.com/"]


# ---------------------------------------------------------------- structure and code


def test_blocks_cover_the_markdown_elements() -> None:
    text = (
        "# Title\n\nPara with **bold**, *em*, ~~del~~ and `code`.\n\n"
        "3. three\n4. four\n\n- a\n- b\n\n> quote\n\n---\n\n"
        "| h1 | h2 |\n|:--|--:|\n| a | b |\n\n```python\nprint('x')\n```\n"
    )
    blocks = render_markdown(text)
    kinds = [b.kind for b in blocks]
    assert kinds == [
        "heading", "paragraph", "list_item", "list_item", "list_item", "list_item",
        "blockquote", "hr", "table", "fence",
    ]  # fmt: skip
    html = "".join(b.html for b in blocks)
    assert "<h1" in html and "<strong>bold</strong>" in html and "<s>del</s>" in html
    assert 'start="3"' in html and 'start="4"' in html
    assert '<th align="left"' in html and '<td align="right">' in html
    assert blocks[0].space_before == 0
    assert blocks[3].space_before < blocks[2].space_before  # next item of the same list


def test_code_blocks_are_highlighted_with_a_copy_anchor() -> None:
    blocks = render_markdown("```python\ndef f():\n    return '<b>'\n```\n\n```nosuchlang\nx\n```")
    code, other = blocks
    assert code.codes == ("def f():\n    return '<b>'\n",)
    assert 'href="parley-copy:0"' in code.html
    assert "<span style=" in code.html  # Pygments inline styles
    assert "&lt;b&gt;" in code.html and "<b>" not in code.html
    assert other.codes == ("x\n",) and "nosuchlang" in other.html


def test_dark_theme_changes_colours() -> None:
    light = render_markdown("```python\nx = 1\n```", LIGHT_THEME)[0].html
    dark = render_markdown("```python\nx = 1\n```", DARK_THEME)[0].html
    assert LIGHT_THEME.code_background in light and DARK_THEME.code_background in dark
    assert light != dark


def test_plain_text_keeps_line_breaks_and_parses_nothing() -> None:
    html = render_plain_text("*not em*\n<b>x</b>\nhttps://example.com/x.")
    assert "white-space:pre-wrap" in html and "*not em*\n" in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html
    assert 'href="https://example.com/x"' in html


# ---------------------------------------------------------------- streaming

STREAM_DOCS = [
    "para\n#hashtag\nmore\n\n# real heading\n",
    "para\nx|y\n-|-\n1|2\n\nafter",
    "Title\n===\ntext\n\nSub\n---\n",
    "- a\n- b\n  - c\n\n  continued\n- d\n\n\n- e\n\ntext\n",
    "1. one\n1. two\n10. ten\n\n3) x\n4) y\n",
    "```py\ncode\n``\n```\nafter\n\n~~~\nx\n~~~~\n",
    "> q\ncontinued lazily\n\n> q2\n>\n> - li\n",
    "    indented code\n    more\n\npara\n    not code\n",
    "***\n---\n___\ntext\n* * *\n",
    "a  \nb\\\nc\n\n[ref]: https://x.example\n\n[ref]\n",
    "text\n- item interrupts\n- b\npara lazy\n\n1. x\n\n2. y\n",
    "\n\n\nleading blanks\n\n\n\ntrailing\n\n\n",
    "```\nunterminated fence\n- not a list\n# not a heading",
    "# H\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n> q\n\n```js\nlet x = 1;\n```\n\nThe end.",
]


@pytest.mark.parametrize("doc", STREAM_DOCS)
def test_streaming_in_any_chunks_ends_identical_to_one_shot(doc: str) -> None:
    renderer = MarkdownRenderer()
    reference = renderer.render(doc)
    for seed in range(12):
        rnd = random.Random(seed)
        stream = IncrementalMarkdown(renderer)
        i = 0
        while i < len(doc):
            n = 1 if seed < 2 else rnd.randint(1, 7)
            stream.feed(doc[i : i + n])
            i += n
            # Frozen blocks are final: they are always a prefix of the finished message.
            assert stream.blocks == reference[: len(stream.blocks)]
        stream.finish()
        assert stream.blocks == reference


def test_stream_updates_carry_frozen_blocks_and_a_tail() -> None:
    stream = IncrementalMarkdown(MarkdownRenderer())
    first = stream.feed("Hello wor")
    assert first.frozen == [] and len(first.tail) == 1
    assert "Hello wor" in first.tail[0].html
    # A block is frozen once the next one has started on a *complete* line.
    second = stream.feed("ld.\n\nNext para")
    assert second.frozen == []
    assert [b.source for b in second.tail] == ["Hello world.", "Next para"]
    third = stream.feed(" goes on\n")
    assert [b.source for b in third.frozen] == ["Hello world."]
    assert [b.source for b in third.tail] == ["Next para goes on"]
    done = stream.finish()
    assert [b.source for b in done.frozen] == ["Next para goes on"] and done.tail == []
    with pytest.raises(RuntimeError):
        stream.feed("late")


def test_an_open_fence_is_closed_virtually_while_streaming() -> None:
    stream = IncrementalMarkdown(MarkdownRenderer())
    update = stream.feed("```python\ndef f():\n    return 1\n``")
    (tail,) = update.tail
    assert tail.kind == "fence"
    assert tail.codes == ("def f():\n    return 1\n",)  # the half-typed fence is not code
    assert "</pre>" in tail.html and "<span style=" in tail.html


def test_only_the_open_tail_is_reparsed() -> None:
    """The text kept for re-rendering stays the size of one block however long the answer."""
    stream = IncrementalMarkdown(MarkdownRenderer())
    paragraph = "A sentence of the answer that goes on for a while. " * 4
    longest_pending = 0
    for i in range(120):
        block = f"```python\nx = {i}\n```" if i % 10 == 0 else f"{paragraph}{i}"
        for j in range(0, len(block) + 2, 23):
            stream.feed((block + "\n\n")[j : j + 23])
            longest_pending = max(longest_pending, len(stream.pending_text))
    assert len(stream.blocks) >= 118
    # At most the last finished block (until the next one has a complete line) + the open one.
    assert longest_pending <= 2 * (len(paragraph) + 8)


def test_a_long_list_freezes_item_by_item() -> None:
    stream = IncrementalMarkdown(MarkdownRenderer())
    for i in range(1, 201):
        stream.feed(f"{i}. item number {i} with some words\n")
        assert len(stream.pending_text) < 60
    assert [b.kind for b in stream.blocks] == ["list_item"] * 199
    assert 'start="199"' in stream.blocks[-1].html
