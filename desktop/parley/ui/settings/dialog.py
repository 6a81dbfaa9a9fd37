"""The settings dialog: providers (keys, endpoints, models), answers, appearance, spending.

Non-modal (``show()``/``open()``, never ``exec()`` inside a coroutine, STYLE.md §3). Apply and
OK validate everything first and save through ``SettingsStore.update`` (TOML, atomic); a bad
value is reported in one line and nothing typed is lost. Keys go to the OS keyring through
``core.secrets`` only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from pydantic import ValidationError
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QPlainTextEdit,
    QSpinBox,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from parley.ui.folder_approval import ApprovedFolders
from parley.ui.settings.providers import ProviderPage
from parley.ui.settings.spending import SpendingPage
from parley.ui.tasks import TaskSet

if TYPE_CHECKING:
    from parley.core.providers.catalog import Catalog
    from parley.core.secrets import Secrets
    from parley.core.services import ProviderFactory
    from parley.core.settings import Settings, SettingsStore

THEMES = (("system", "Follow the system"), ("light", "Light"), ("dark", "Dark"))

_MAIN_PROVIDERS = ("openai", "anthropic", "openai-compatible")


class SettingsDialog(QDialog):
    """Parley's settings.

    Args:
        settings: The settings store (read now, written on Apply/OK).
        secrets: API keys.
        catalog: Providers and models.
        providers: For "Test connection".
        tasks: Background work (tests).
        conversation_id: The open conversation, if any.
        chat_prompt: That conversation's own system prompt (None: it uses the global one).
        save_chat_prompt: Stores a conversation's own prompt, ``(conversation id, prompt or
            None)``; the window queues it on the database's writer.
    """

    # ---- Signals
    sig_applied = Signal()
    """Settings were saved."""
    sig_keys_changed = Signal()
    """A provider key was saved or removed."""

    def __init__(
        self,
        *,
        settings: SettingsStore,
        secrets: Secrets,
        catalog: Catalog,
        providers: ProviderFactory,
        tasks: TaskSet,
        conversation_id: int | None = None,
        chat_prompt: str | None = None,
        save_chat_prompt: Callable[[int, str | None], None] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Parley settings")
        self.setModal(False)
        self._store = settings
        self._catalog = catalog
        self._save_chat_prompt = save_chat_prompt
        self._conversation_id = conversation_id
        s = settings.current

        # ---- providers tab
        self.provider_list = QListWidget()
        self.provider_pages = QStackedWidget()
        self.pages: dict[str, ProviderPage] = {}
        ordered = [p for p in _MAIN_PROVIDERS if p in catalog.providers] + [
            p for p in catalog.providers if p not in _MAIN_PROVIDERS
        ]
        for pid in ordered:
            info = catalog.providers[pid]
            page = ProviderPage(
                info,
                catalog=catalog,
                secrets=secrets,
                providers=providers,
                tasks=tasks,
                settings=s,
            )
            page.sig_key_changed.connect(lambda _pid: self.sig_keys_changed.emit())
            page.sig_models_listed.connect(self._models_listed)
            self.pages[pid] = page
            self.provider_list.addItem(info.label)
            self.provider_pages.addWidget(page)
        self.provider_list.currentRowChanged.connect(self.provider_pages.setCurrentIndex)
        self.provider_list.setCurrentRow(0)
        self.provider_list.setAccessibleName("Providers")
        self.provider_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        # As wide as its longest name (with the rows' padding), not a fixed guess.
        self.provider_list.setFixedWidth(self.provider_list.sizeHintForColumn(0) + 40)
        providers_tab = QWidget()
        pl = QHBoxLayout(providers_tab)
        pl.addWidget(self.provider_list)
        pl.addWidget(self.provider_pages, 1)

        # ---- answers tab
        self.default_provider = QComboBox()
        for pid in ordered:
            self.default_provider.addItem(catalog.providers[pid].label, pid)
        self.default_provider.setCurrentIndex(
            max(0, self.default_provider.findData(s.default_provider))
        )
        self.new_chat_model = QComboBox()
        self.new_chat_model.addItem("The model I used last", "last_used")
        self.new_chat_model.addItem("Always the model below", "default")
        self.new_chat_model.setCurrentIndex(max(0, self.new_chat_model.findData(s.new_chat_model)))
        self.new_chat_model.setToolTip(
            "Like LM Studio and Jan, a new chat starts with the model you used last; "
            "choose a fixed model instead if you prefer"
        )
        self.default_model = QComboBox()
        self.default_model.setEditable(True)
        self.default_provider.currentIndexChanged.connect(
            lambda _i: self._fill_models(self.default_model, self.default_provider)
        )
        self._fill_models(self.default_model, self.default_provider)
        self.default_model.setCurrentText(s.default_model or "")

        self.temperature = QDoubleSpinBox()
        self.temperature.setRange(-0.1, 2.0)
        self.temperature.setSingleStep(0.1)
        self.temperature.setDecimals(2)
        self.temperature.setSpecialValueText("Provider default")
        self.temperature.setValue(s.temperature if s.temperature is not None else -0.1)
        self.top_p = QDoubleSpinBox()
        self.top_p.setRange(0.0, 1.0)
        self.top_p.setSingleStep(0.05)
        self.top_p.setDecimals(2)
        self.top_p.setSpecialValueText("Provider default")
        self.top_p.setValue(s.top_p if s.top_p is not None else 0.0)
        self.max_tokens = QSpinBox()
        self.max_tokens.setRange(0, 1_000_000)
        self.max_tokens.setSingleStep(256)
        self.max_tokens.setSpecialValueText("Model default")
        self.max_tokens.setValue(s.max_output_tokens or 0)
        self.system_prompt = QPlainTextEdit(s.system_prompt)
        self.system_prompt.setPlaceholderText("Instructions sent with every conversation")
        self.system_prompt.setFixedHeight(self.fontMetrics().lineSpacing() * 5)
        self.chat_prompt = QPlainTextEdit()
        self.chat_prompt.setFixedHeight(self.fontMetrics().lineSpacing() * 4)
        if conversation_id is not None and save_chat_prompt is not None:
            self.chat_prompt.setPlainText(chat_prompt or "")
            self.chat_prompt.setPlaceholderText("Empty: this chat uses the global prompt")
        else:
            self.chat_prompt.setPlaceholderText("Open a conversation to give it its own prompt")
            self.chat_prompt.setEnabled(False)
        self.fallback_provider = QComboBox()
        self.fallback_provider.addItem("Same provider", None)
        for pid in ordered:
            self.fallback_provider.addItem(catalog.providers[pid].label, pid)
        self.fallback_provider.setCurrentIndex(
            max(0, self.fallback_provider.findData(s.fallback_provider))
        )
        self.fallback_model = QComboBox()
        self.fallback_model.setEditable(True)
        self.fallback_provider.currentIndexChanged.connect(
            lambda _i: self._fill_models(self.fallback_model, self.fallback_provider)
        )
        self._fill_models(self.fallback_model, self.fallback_provider)
        self.fallback_model.setCurrentText(s.fallback_model or "")
        line = self.fallback_model.lineEdit()
        if line is not None:  # editable: it has one
            line.setPlaceholderText("none")

        answers_tab = QWidget()
        af = QFormLayout(answers_tab)
        af.addRow("New chats use:", self.new_chat_model)
        af.addRow("Default provider:", self.default_provider)
        af.addRow("Default model:", self.default_model)
        af.addRow("Temperature:", self.temperature)
        af.addRow("Top-p:", self.top_p)
        af.addRow("Max output tokens:", self.max_tokens)
        af.addRow("System prompt:", self.system_prompt)
        af.addRow("This chat's prompt:", self.chat_prompt)
        fb = QHBoxLayout()
        fb.addWidget(self.fallback_provider)
        fb.addWidget(self.fallback_model, 1)
        af.addRow("Fallback model:", fb)
        hint = QLabel(
            "The fallback answers when the chosen model fails before answering "
            "(after retries); such answers are labelled."
        )
        hint.setWordWrap(True)
        hint.setEnabled(False)
        af.addRow("", hint)

        # ---- appearance tab
        self.theme = QComboBox()
        for value, label in THEMES:
            self.theme.addItem(label, value)
        self.theme.setCurrentIndex(max(0, self.theme.findData(s.theme)))
        self.theme.setToolTip("Changes at once; Cancel goes back")
        # The window (and this dialog) follow the choice at once; Cancel puts back the saved
        # theme, Apply/OK keep it.
        self.theme.currentIndexChanged.connect(lambda _i: self._preview_theme())
        appearance_tab = QWidget()
        apf = QFormLayout(appearance_tab)
        apf.addRow("Theme:", self.theme)

        self.tabs = QTabWidget()
        self.tabs.addTab(providers_tab, "Providers")
        self.tabs.addTab(answers_tab, "Answers")
        self.tabs.addTab(appearance_tab, "Appearance")
        self.spending = SpendingPage(s)
        self.tabs.addTab(self.spending, "Spending")
        self.approved_folders = ApprovedFolders(s.tools.approved_folders)
        self.tabs.addTab(self.approved_folders, "Tools")

        self.error_label = QLabel()
        self.error_label.setObjectName("errorLine")
        self.error_label.setWordWrap(True)
        self.error_label.setVisible(False)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok
            | QDialogButtonBox.StandardButton.Apply
            | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.accepted.connect(self._ok)
        self.buttons.rejected.connect(self.reject)
        self.buttons.button(QDialogButtonBox.StandardButton.Apply).clicked.connect(self.apply)

        layout = QVBoxLayout(self)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(self.error_label)
        layout.addWidget(self.buttons)
        em = self.fontMetrics()
        self.resize(em.averageCharWidth() * 110, em.lineSpacing() * 30)

    # ---- Public API
    def show_provider(self, provider_id: str) -> None:
        """Open the Providers tab on ``provider_id``."""
        self.tabs.setCurrentIndex(0)
        if provider_id in self.pages:
            self.provider_list.setCurrentRow(list(self.pages).index(provider_id))

    def collect(self) -> Settings:
        """The settings as edited (validated).

        Raises:
            ValidationError: a value is out of range.
        """
        from parley.core.settings import ProviderSettings, Settings

        s = self._store.current
        providers = dict(s.providers)
        for pid, page in self.pages.items():
            v = page.values()
            old = s.provider(pid)
            if (
                v.base_url != old.base_url
                or v.default_model != old.default_model
                or pid in providers
            ):
                providers[pid] = ProviderSettings(
                    base_url=v.base_url, default_model=v.default_model
                )
        temperature = self.temperature.value()
        top_p = self.top_p.value()
        data = s.model_dump()
        data.update(
            default_provider=str(self.default_provider.currentData()),
            default_model=self.default_model.currentText().strip() or None,
            new_chat_model=str(self.new_chat_model.currentData()),
            providers={k: v.model_dump() for k, v in providers.items()},
            temperature=None if temperature < 0 else round(temperature, 2),
            top_p=None if top_p <= 0 else round(top_p, 2),
            max_output_tokens=self.max_tokens.value() or None,
            system_prompt=self.system_prompt.toPlainText(),
            fallback_provider=self.fallback_provider.currentData(),
            fallback_model=self.fallback_model.currentText().strip() or None,
            theme=str(self.theme.currentData()),
            **self.spending.values(),
        )
        data["tools"] = {**data["tools"], "approved_folders": self.approved_folders.folders()}
        return Settings.model_validate(data)

    def apply(self) -> bool:
        """Save keys and settings; False (with a one-line reason) when something failed."""
        for page in self.pages.values():
            if page.key_dirty() and not page.save_key():
                self.show_provider(page.info.id)
                self._error(f"The {page.info.label} key was not saved: see the note on its page.")
                return False
        try:
            new = self.collect()
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            self._error(f"Not saved: {where}: {first['msg']}.")
            return False
        try:
            self._store.update(new)
        except OSError as exc:
            self._error(f"Settings could not be written: {exc.strerror or exc}.")
            return False
        if (
            self._conversation_id is not None
            and self._save_chat_prompt is not None
            and self.chat_prompt.isEnabled()
        ):
            prompt = self.chat_prompt.toPlainText().strip() or None
            self._save_chat_prompt(self._conversation_id, prompt)
        self.error_label.setVisible(False)
        self.sig_applied.emit()
        return True

    def done(self, result: int) -> None:
        """Closing cancels connection tests still running; Cancel undoes a theme preview."""
        for page in self.pages.values():
            page.cancel_test()
        if result != QDialog.DialogCode.Accepted:
            self._show_theme(self._store.current.theme)
        super().done(result)

    def _preview_theme(self) -> None:
        self._show_theme(str(self.theme.currentData()))

    def _show_theme(self, mode: str) -> None:
        from parley.ui.theme import apply_theme, current_mode

        app = QApplication.instance()
        if isinstance(app, QApplication) and mode != current_mode():
            apply_theme(app, mode)  # type: ignore[arg-type]  # one of THEMES

    # ---- internals
    def _ok(self) -> None:
        if self.apply():
            self.accept()

    def _error(self, text: str) -> None:
        self.error_label.setText(text)
        self.error_label.setVisible(True)

    def _models_listed(self, provider_id: str, _models: list[str]) -> None:
        # A connection test listed a server's models: offer them for new chats too.
        for combo, provider_combo in (
            (self.default_model, self.default_provider),
            (self.fallback_model, self.fallback_provider),
        ):
            if provider_combo.currentData() == provider_id:
                self._fill_models(combo, provider_combo)

    def _fill_models(self, combo: QComboBox, provider_combo: QComboBox) -> None:
        text = combo.currentText()
        combo.blockSignals(True)
        combo.clear()
        combo.addItem("")
        pid = provider_combo.currentData()
        if pid is not None:
            page = self.pages.get(str(pid))
            listed = page.listed_models if page is not None else []
            catalog = [m.id for m in self._catalog.models_for(str(pid))]
            for mid in [*listed, *(m for m in catalog if m not in listed)]:
                combo.addItem(mid)
        combo.setCurrentText(text)
        combo.blockSignals(False)
        combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        combo.view().setTextElideMode(Qt.TextElideMode.ElideRight)
