"""One provider's settings page: API key (keyring), where it came from, base URL, default model.

The key is shown masked with a reveal toggle. It is stored only through ``core.secrets`` (the
OS keyring); when no keyring is usable the page says so and offers "Keep for this session
only" (memory), never a file; a provider that needs no key (a local server) gets no keyring
warning. "Test connection" lists the endpoint's models with the key and base URL as typed,
before anything is saved, and fills the default-model list with them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from parley.core.errors import KeyringUnavailable, ParleyError
from parley.ui.key_field import key_field
from parley.ui.plain import plain_label
from parley.ui.tasks import TaskSet
from parley.ui.theme import SPACE, repolish, set_type

if TYPE_CHECKING:
    from parley.core.providers.catalog import Catalog, ProviderInfo
    from parley.core.secrets import Secrets
    from parley.core.services import ProviderFactory
    from parley.core.settings import Settings

TEST_TIMEOUT_S = 15.0

_SOURCE_TEXT = {
    "keyring": "Stored in {store}.",
    "session": "Kept for this session only (forgotten when Parley quits).",
    "environment": "From the environment variable {env} (it is not stored by Parley).",
    "explicit": "Given on the command line.",
}


@dataclass(frozen=True)
class ProviderValues:
    """What the page holds for its provider (not yet saved)."""

    base_url: str | None
    default_model: str | None


def masked_hint(key: str) -> str:
    """``sk-…abcd``: enough to recognise a key, never enough to use it."""
    if len(key) <= 8:
        return "•" * len(key)
    return f"{key[:3]}…{key[-4:]}"


class ProviderPage(QWidget):
    """Settings of one provider.

    Args:
        info: The provider's catalog entry.
        catalog: For the default-model suggestions.
        secrets: Key storage and lookup.
        providers: Builds the adapter for "Test connection".
        tasks: Runs the test in the background.
        settings: The settings to show.
    """

    # ---- Signals
    sig_key_changed = Signal(str)
    """The stored key changed (provider id)."""
    sig_test_finished = Signal(str, bool, str)
    """A connection test ended: (provider id, ok, message)."""
    sig_models_listed = Signal(str, list)
    """A connection test listed the endpoint's models: (provider id, model ids)."""

    def __init__(
        self,
        info: ProviderInfo,
        *,
        catalog: Catalog,
        secrets: Secrets,
        providers: ProviderFactory,
        tasks: TaskSet,
        settings: Settings,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.info = info
        self._secrets = secrets
        self._providers = providers
        self._tasks = tasks
        self._stored_key: str | None = None
        self._test_task: asyncio.Task[None] | None = None
        self._catalog_models = [m.id for m in catalog.models_for(info.id)]
        self.listed_models: list[str] = []
        """The models the last successful "Test connection" listed."""

        # key
        self.key_edit, self.reveal_button = key_field(
            "not needed" if info.key_optional else "paste your API key"
        )
        self.save_key_button = QPushButton("Save key")
        self.clear_key_button = QPushButton("Remove key")
        self.session_key_button = QPushButton("Keep for this session only")
        self.session_key_button.setToolTip(
            "Hold the key in memory until Parley quits; it is never written to a file."
        )
        self.source_label = QLabel()
        self.source_label.setWordWrap(True)
        self.keyring_warning = QLabel()
        self.keyring_warning.setObjectName("keyringWarning")
        self.keyring_warning.setWordWrap(True)
        self.keyring_warning.setVisible(False)
        key_row = QHBoxLayout()
        key_row.setSpacing(SPACE["s"])
        key_row.addWidget(self.key_edit, 1)
        key_row.addWidget(self.reveal_button)
        key_row.addWidget(self.save_key_button)
        key_row.addWidget(self.clear_key_button)

        # endpoint and model
        self.base_url_edit = QLineEdit()
        self.base_url_edit.setPlaceholderText(info.base_url or "the provider's default endpoint")
        self.model_combo = QComboBox()
        self.model_combo.setEditable(True)
        self.model_combo.setAccessibleName("Default model")
        self.model_combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.model_combo.addItem("")
        for mid in self._catalog_models:
            self.model_combo.addItem(mid)
        line = self.model_combo.lineEdit()
        if line is not None:  # editable: it has one
            line.setPlaceholderText(info.default_model or "choose a model")

        # test
        self.test_button = QPushButton("Test connection")
        self.test_result = plain_label(QLabel())  # quotes the server's words
        self.test_result.setWordWrap(True)
        test_row = QHBoxLayout()
        test_row.addWidget(self.test_button)
        test_row.addWidget(self.test_result, 1)

        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        form.setHorizontalSpacing(SPACE["m"])
        form.setVerticalSpacing(SPACE["s"])
        title = plain_label(QLabel(info.label))
        set_type(title, "subtitle")
        form.addRow(title)
        form.addRow("API key:", key_row)
        form.addRow("", self.source_label)
        form.addRow("", self.keyring_warning)
        form.addRow("", self.session_key_button)
        form.addRow("Base URL:", self.base_url_edit)
        form.addRow("Default model:", self.model_combo)
        form.addRow("", test_row)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addStretch(1)

        self.save_key_button.clicked.connect(lambda: self.save_key(session_only=False))
        self.session_key_button.clicked.connect(lambda: self.save_key(session_only=True))
        self.clear_key_button.clicked.connect(self.clear_key)
        self.test_button.clicked.connect(self.start_test)
        self.key_edit.textEdited.connect(lambda _t: self._refresh_buttons())

        ps = settings.provider(info.id)
        self.base_url_edit.setText(ps.base_url or "")
        self.model_combo.setCurrentText(ps.default_model or "")
        self.refresh_key()

    # ---- Public API
    def values(self) -> ProviderValues:
        """Base URL and default model as typed ("" becomes None)."""
        return ProviderValues(
            base_url=self.base_url_edit.text().strip() or None,
            default_model=self.model_combo.currentText().strip() or None,
        )

    def key_text(self) -> str:
        """The key field's content (trimmed)."""
        return self.key_edit.text().strip()

    def key_dirty(self) -> bool:
        """Whether the key field differs from the stored key."""
        return bool(self.key_text()) and self.key_text() != (self._stored_key or "")

    def refresh_key(self) -> None:
        """Show the stored key (masked) and where it came from."""
        resolved = self._secrets.resolve(self.info.id, env_var=self.info.key_env)
        self._stored_key = None
        self.key_edit.clear()
        if resolved is None:
            self.source_label.setText(
                "No key needed for a local server."
                if self.info.key_optional
                else "No key set."
                + (f" You can also set {self.info.key_env}." if self.info.key_env else "")
            )
        else:
            text = _SOURCE_TEXT.get(resolved.source, "{store}").format(
                store=self._secrets.store.describe(), env=self.info.key_env or ""
            )
            self.source_label.setText(f"{text} ({masked_hint(resolved.value)})")
            if resolved.source in ("keyring", "session"):
                self._stored_key = resolved.value
                self.key_edit.setText(resolved.value)
        available = getattr(self._secrets.store, "available", None)
        # A provider that needs no key has nothing to keep in a keyring: no warning.
        keyring_ok = self.info.key_optional or (available() if callable(available) else True)
        if not keyring_ok:
            self.keyring_warning.setText(
                "No OS keyring is available on this computer, so keys cannot be saved "
                "permanently. Install and unlock one (GNOME Keyring or KWallet), or keep the "
                "key for this session only."
            )
        self.keyring_warning.setVisible(not keyring_ok)
        self.session_key_button.setVisible(not keyring_ok)
        self._refresh_buttons()

    def save_key(self, *, session_only: bool = False) -> bool:
        """Store the typed key; False (with the reason shown) when it could not be."""
        key = self.key_text()
        if not key:
            self._show_test("Type or paste a key first.", ok=False)
            return False
        if any(c.isspace() for c in key) or len(key) > 4096:
            self._show_test("That does not look like an API key (spaces or too long).", ok=False)
            return False
        try:
            self._secrets.save(self.info.id, key, session_only=session_only)
        except KeyringUnavailable as exc:
            self.keyring_warning.setText(f"{exc.user_message} The key was not stored.")
            self.keyring_warning.setVisible(True)
            self.session_key_button.setVisible(True)
            return False
        self.refresh_key()
        self.sig_key_changed.emit(self.info.id)
        return True

    def clear_key(self) -> None:
        """Remove the stored key (keyring and session)."""
        self._secrets.clear(self.info.id)
        self.refresh_key()
        self.sig_key_changed.emit(self.info.id)

    def start_test(self) -> asyncio.Task[None]:
        """List the endpoint's models with the key and base URL as typed."""
        if self._test_task is not None and not self._test_task.done():
            self._test_task.cancel()
        self.test_button.setEnabled(False)
        self._show_test("Testing…", ok=None)
        self._test_task = self._tasks.spawn(self._test(), name=f"test-{self.info.id}")
        return self._test_task

    def cancel_test(self) -> None:
        """Stop a test in progress (the dialog is closing)."""
        if self._test_task is not None and not self._test_task.done():
            self._test_task.cancel()

    # ---- internals
    async def _test(self) -> None:
        pid = self.info.id
        overrides: dict[str, str] = {}
        if self.key_text():
            overrides["api_key"] = self.key_text()
        if self.values().base_url:
            overrides["base_url"] = self.values().base_url or ""
        ok = False
        try:
            # The factory reads per-run overrides synchronously in raw(): set, build, restore,
            # so the typed values are tested without being saved anywhere.
            previous = self._providers.overrides.get(pid)
            self._providers.overrides[pid] = {**(previous or {}), **overrides}
            try:
                provider = self._providers.raw(pid)
            finally:
                if previous is None:
                    self._providers.overrides.pop(pid, None)
                else:
                    self._providers.overrides[pid] = previous
            async with asyncio.timeout(TEST_TIMEOUT_S):
                models = await provider.list_models()
        except ParleyError as exc:
            message = exc.user_message
        except TimeoutError:
            message = f"{self.info.label} did not answer within {TEST_TIMEOUT_S:.0f} s."
        else:
            ok = True
            n = len(models)
            sample = ", ".join(m.id for m in models[:3])
            message = f"Connected: {n} model{'s' if n != 1 else ''} available" + (
                f" ({sample}{', …' if n > 3 else ''})." if n else "."
            )
            self.show_models([m.id for m in models])
        finally:
            self.test_button.setEnabled(True)
        self._show_test(message, ok=ok)
        self.sig_test_finished.emit(pid, ok, message)

    def show_models(self, model_ids: list[str]) -> None:
        """Offer ``model_ids`` (the endpoint's own list) as the default model.

        What was typed stays; an empty choice becomes the first model listed. A local
        server's list replaces the vendor catalog's models (it serves only its own).
        """
        self.listed_models = list(dict.fromkeys(model_ids))
        if not self.listed_models:
            return
        typed = self.model_combo.currentText().strip()
        extra = [] if self.info.key_optional else self._catalog_models
        self.model_combo.blockSignals(True)
        self.model_combo.clear()
        self.model_combo.addItem("")
        for mid in [*self.listed_models, *(m for m in extra if m not in self.listed_models)]:
            self.model_combo.addItem(mid)
        self.model_combo.setCurrentText(typed or self.listed_models[0])
        self.model_combo.blockSignals(False)
        self.sig_models_listed.emit(self.info.id, list(self.listed_models))

    def _show_test(self, text: str, *, ok: bool | None) -> None:
        name = {True: "okLine", False: "errorLine", None: ""}[ok]
        self.test_result.setObjectName(name)
        repolish(self.test_result)
        self.test_result.setText(text)

    def _refresh_buttons(self) -> None:
        self.save_key_button.setEnabled(self.key_dirty())
        self.clear_key_button.setEnabled(self._stored_key is not None)
