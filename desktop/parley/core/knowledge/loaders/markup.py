"""Markdown and reStructuredText: headings, fences, lists and tables as blocks with line ranges."""

from __future__ import annotations

import re

from parley.core.knowledge.loaders.base import Block
from parley.core.knowledge.loaders.text import _paragraphs

# ---------------------------------------------------------------------------- Markdown

_ATX = re.compile(r" {0,3}(#{1,6})(?=[ \t]|$)")  # the opening only: see _atx_title
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE_OPEN = re.compile(r"^[ \t]*(`{3,}|~{3,})(.*)$")
_LIST_ITEM = re.compile(r"^[ \t]*(?:[-*+]|\d{1,9}[.)])(?:[ \t]|$)")
_TABLE_ROW = re.compile(r"^ {0,3}\|")
_THEMATIC = re.compile(r"^ {0,3}(?:(?:-[ \t]*){3,}|(?:\*[ \t]*){3,}|(?:_[ \t]*){3,})$")


def _atx_title(line: str) -> tuple[int, str] | None:
    """(level, title) of an ATX heading line, else None.

    Done by hand rather than with one regex: ``(.*?)`` followed by an optional closing
    sequence backtracks quadratically on a long line of spaces (untrusted input).
    """
    m = _ATX.match(line)
    if m is None:
        return None
    title = line[m.end() :].strip(" \t")
    stripped = title.rstrip("#")
    if not stripped or stripped[-1] in " \t":  # a closing run of #s, or only #s
        title = stripped.rstrip(" \t")
    return len(m.group(1)), title


def _markdown_blocks(text: str) -> list[Block]:
    """Headings (ATX and setext), fenced code kept whole, lists, tables, paragraphs."""
    lines = text.split("\n")
    blocks: list[Block] = []
    para: list[str] = []
    para_kind = "paragraph"
    para_start = 0

    def flush() -> None:
        nonlocal para
        if para and any(s.strip() for s in para):
            body = "\n".join(para).strip("\n").rstrip()
            blocks.append(
                Block(body, para_kind, line_start=para_start, line_end=para_start + len(para) - 1)
            )
        para = []

    i = 0
    n = len(lines)
    # YAML front matter: kept whole as one block, never read as a setext heading.
    if n > 1 and lines[0].strip() == "---":
        for j in range(1, min(n, 500)):
            if lines[j].strip() in ("---", "..."):
                blocks.append(
                    Block("\n".join(lines[: j + 1]), "code", line_start=1, line_end=j + 1)
                )
                i = j + 1
                break
    while i < n:
        line = lines[i]
        lineno = i + 1
        fence = _FENCE_OPEN.match(line)
        if fence and not (fence.group(1)[0] == "`" and "`" in fence.group(2)):
            flush()
            marker = fence.group(1)
            closing = re.compile(
                r"^[ \t]*" + re.escape(marker[0]) + "{" + str(len(marker)) + r",}[ \t]*$"
            )
            j = i + 1
            while j < n and not closing.match(lines[j]):
                j += 1
            end = min(j, n - 1)  # an unclosed fence runs to the end of the file
            while end > i and not lines[end].strip():
                end -= 1
            blocks.append(
                Block("\n".join(lines[i : end + 1]), "code", line_start=lineno, line_end=end + 1)
            )
            i = end + 1
            continue
        if not line.strip():
            flush()
            i += 1
            continue
        atx = _atx_title(line)
        if atx:
            flush()
            level, title = atx
            if title:
                blocks.append(
                    Block(title, "heading", level=level, line_start=lineno, line_end=lineno)
                )
            i += 1
            continue
        setext = _SETEXT.match(line)
        if setext and para and para_kind == "paragraph":
            title = " ".join(s.strip() for s in para)
            level = 1 if setext.group(1)[0] == "=" else 2
            blocks.append(
                Block(title, "heading", level=level, line_start=para_start, line_end=lineno)
            )
            para = []
            i += 1
            continue
        if _THEMATIC.match(line):
            flush()
            i += 1
            continue
        if not para:
            para_start = lineno
            if _LIST_ITEM.match(line):
                para_kind = "list"
            elif _TABLE_ROW.match(line):
                para_kind = "table"
            else:
                para_kind = "paragraph"
        para.append(line)
        i += 1
    flush()
    return blocks


# ---------------------------------------------------------------------------- reStructuredText

_RST_ADORN = re.compile(r"^([!-/:-@\[-`{-~])\1{2,}[ \t]*$")


def _rst_blocks(text: str) -> list[Block]:
    """Section titles (underlined, optionally overlined; levels in order of first use)."""
    lines = text.split("\n")
    n = len(lines)
    styles: list[tuple[str, bool]] = []
    blocks: list[Block] = []
    body_start = 0  # first line (0-based) not yet emitted

    def emit_body(upto: int) -> None:
        if upto > body_start:
            chunk = "\n".join(lines[body_start:upto])
            blocks.extend(_paragraphs(chunk, "paragraph", first_line=body_start + 1))

    def level_of(style: tuple[str, bool]) -> int:
        if style not in styles:
            styles.append(style)
        return min(styles.index(style) + 1, 6)

    i = 0
    while i < n:
        line = lines[i]
        prev_blank = i == 0 or not lines[i - 1].strip()
        over = _RST_ADORN.match(line)
        if (
            over
            and prev_blank
            and i + 2 < n
            and lines[i + 1].strip()
            and lines[i + 2].rstrip() == line.rstrip()
        ):
            emit_body(i)
            title = lines[i + 1].strip()
            level = level_of((over.group(1), True))
            blocks.append(Block(title, "heading", level=level, line_start=i + 1, line_end=i + 3))
            i += 3
            body_start = i
            continue
        if (
            line.strip()
            and not line[0].isspace()
            and prev_blank
            and i + 1 < n
            and not _RST_ADORN.match(line)
        ):
            under = _RST_ADORN.match(lines[i + 1])
            if under and len(lines[i + 1].rstrip()) >= len(line.rstrip()):
                emit_body(i)
                level = level_of((under.group(1), False))
                blocks.append(
                    Block(line.strip(), "heading", level=level, line_start=i + 1, line_end=i + 2)
                )
                i += 2
                body_start = i
                continue
        i += 1
    emit_body(n)
    # Literal blocks (after "::" or a code directive) are code; a lone adornment line is a
    # transition, not text.
    out: list[Block] = []
    literal_next = False
    for b in blocks:
        if b.kind != "heading" and _RST_ADORN.match(b.text):
            continue
        if b.kind == "paragraph" and literal_next and b.text[:1] in (" ", "\t"):
            b = Block(b.text, "code", line_start=b.line_start, line_end=b.line_end)
        else:
            literal_next = b.kind == "paragraph" and (
                b.text.endswith("::")
                or bool(re.match(r"\.\. (code-block|code|sourcecode)::", b.text))
            )
        out.append(b)
    return out
