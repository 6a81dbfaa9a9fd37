"""The window's small dialogs: shortcuts, About, "Open link?", "Delete answer", folder access.

Moved out of :mod:`parley.ui.main_window` as-is; the window's ``show_shortcuts``,
``show_about``, ``delete_answer`` and ``ask_folder_approval`` delegate to
:class:`WindowDialogs`, and links clicked in an answer come to
:meth:`WindowDialogs.open_link`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QAbstractButton, QDialog, QMessageBox, QWidget

if TYPE_CHECKING:
    from parley.core.paths import Paths
    from parley.core.tools.approval import Approval
    from parley.ui.tasks import TaskSet
    from parley.ui.turns import TurnRequests
    from parley.ui.window_layout import WindowActions


class WindowDialogs:
    """Opens the help dialogs (one at a time), link confirmations and the delete-answer box.

    Args:
        window: The parent of every dialog.
        tasks: Background tasks (About reads licences off the GUI thread).
        menu_actions: The menus' actions (the shortcuts sheet lists them).
        confirm_links: Ask before opening a link from an answer.
        paths: The data and config folders About shows (None until bound).
        turns: Deletes an answer once the person agrees (None until bound).
    """

    def __init__(
        self,
        window: QWidget,
        *,
        tasks: TaskSet,
        menu_actions: WindowActions,
        confirm_links: bool,
        paths: Callable[[], Paths | None],
        turns: Callable[[], TurnRequests | None],
    ) -> None:
        self._window = window
        self._tasks = tasks
        self.menu_actions = menu_actions
        self._confirm_links = confirm_links
        self._paths = paths
        self._turns = turns
        self.help_dialog: QDialog | None = None
        """The shortcuts sheet or the About box while one is open."""

    # ------------------------------------------------------------------ help
    def show_shortcuts(self) -> QDialog:
        """Help › Keyboard shortcuts (Ctrl+/)."""
        from parley.ui.help import ShortcutsSheet

        return self._show_help(ShortcutsSheet(self.menu_actions.all(), self._window))

    def show_about(self) -> QDialog:
        """Help › About Parley: version, data folder, licences."""
        from parley.ui.help import AboutDialog

        paths = self._paths()
        return self._show_help(
            AboutDialog(
                data_dir=paths.data_dir if paths is not None else None,
                config_dir=paths.config_dir if paths is not None else None,
                tasks=self._tasks,
                parent=self._window,
            )
        )

    def _show_help(self, dialog: QDialog) -> QDialog:
        if self.help_dialog is not None:
            self.help_dialog.close()
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.destroyed.connect(
            lambda *_: setattr(self, "help_dialog", None) if self.help_dialog is dialog else None
        )
        self.help_dialog = dialog
        dialog.show()
        return dialog

    # ------------------------------------------------------------------ links
    def open_link(self, url: str) -> None:
        """A link clicked in an answer: open it in the browser (after asking)."""
        from parley.ui.chat.markdown import display_url, link_is_openable

        if not link_is_openable(url):
            return
        if not self._confirm_links:
            QDesktopServices.openUrl(QUrl(url))
            return
        box = QMessageBox(self._window)
        box.setIcon(QMessageBox.Icon.Question)
        box.setWindowTitle("Open link?")
        box.setText("Open this link in your browser?")
        box.setInformativeText(display_url(url))
        box.setStandardButtons(QMessageBox.StandardButton.Open | QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.accepted.connect(lambda: QDesktopServices.openUrl(QUrl(url)))
        box.open()

    # ------------------------------------------------------------------ questions
    async def ask_folder_approval(self, folder: str) -> Approval:
        """Ask whether the tools may read ``folder`` (Allow once / Always / Deny)."""
        from parley.ui.folder_approval import ask_folder

        self._window.raise_()
        return await ask_folder(self._window, folder)

    def delete_answer(self, message_id: str) -> QMessageBox:
        """Ask, then delete an answer and what followed it (the box is window-modal)."""
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Delete answer",
            "Delete this answer and anything that followed it? This cannot be undone; its "
            "cost stays in the cost history.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            self._window,
        )
        box.setObjectName("delete-answer")
        box.button(QMessageBox.StandardButton.Yes).setText("Delete")
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        def answered(button: QAbstractButton) -> None:
            turns = self._turns()
            if box.standardButton(button) == QMessageBox.StandardButton.Yes and turns:
                turns.delete_answer(message_id)

        box.buttonClicked.connect(answered)
        box.open()
        return box
