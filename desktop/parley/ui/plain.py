"""Untrusted names and text in widgets: shown as plain text, never steering the display.

File names, headings and reasons come from documents and the file system. Two things go
wrong when a widget shows them as they are: control and bidi characters hide or reorder
text, and Qt takes a string that *looks* like HTML for rich text (``Qt::mightBeRichText``):
a file called ``<img src="file:///...">.md`` in a tooltip or an auto-format ``QLabel``
would load that image. So:

- :func:`shown` is ``core.display.safe_text`` in its one-line form, for item views and
  plain-text labels;
- :func:`tooltip` is the same text HTML-escaped inside a paragraph, so Qt shows it verbatim;
- :func:`plain_label` sets a ``QLabel`` to plain text (call it for labels that show names).
"""

from __future__ import annotations

import html

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel

from parley.core.display import safe_text


def shown(text: str) -> str:
    """``text`` safe for one line of a table, a tree or a plain label."""
    return safe_text(text, one_line=True)


def tooltip(text: str) -> str:
    """``text`` as a tooltip that Qt shows verbatim (never interpreted as HTML)."""
    if not text:
        return ""
    lines = safe_text(text).split("\n")
    body = "<br>".join(html.escape(line, quote=False) for line in lines)
    return f'<p style="white-space:pre-wrap">{body}</p>'


def plain_label(label: QLabel) -> QLabel:
    """Make ``label`` show its text as plain text (no rich-text guessing); returns it."""
    label.setTextFormat(Qt.TextFormat.PlainText)
    return label


__all__ = ["plain_label", "shown", "tooltip"]
