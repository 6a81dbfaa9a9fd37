"""The API key entry shared by onboarding and settings: masked, with a Show/Hide toggle."""

from __future__ import annotations

from PySide6.QtWidgets import QLineEdit, QToolButton


def key_field(placeholder: str) -> tuple[QLineEdit, QToolButton]:
    """A password-masked line edit and the checkable button that reveals it."""
    edit = QLineEdit()
    edit.setEchoMode(QLineEdit.EchoMode.Password)
    edit.setPlaceholderText(placeholder)
    reveal = QToolButton()
    reveal.setText("Show")
    reveal.setCheckable(True)
    reveal.setToolTip("Show or hide the key")

    def toggled(on: bool) -> None:
        edit.setEchoMode(QLineEdit.EchoMode.Normal if on else QLineEdit.EchoMode.Password)
        reveal.setText("Hide" if on else "Show")

    reveal.toggled.connect(toggled)
    return edit, reveal
