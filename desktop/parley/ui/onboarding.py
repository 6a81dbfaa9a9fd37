"""First start: add an OpenAI or Anthropic key, or use a model server on this computer.

Shown when no key is set for OpenAI or Anthropic and no local server is configured. It probes
the usual local endpoints (:data:`~parley.core.providers.local_servers.DEFAULT_PROBE_PORTS`:
Ollama :11434, LM Studio :1234, llama.cpp :8080, vLLM :8000) on loopback, concurrently, with a
short timeout each, and offers the ones whose ``/v1/models`` answers. The probe is core's
(:func:`~parley.core.providers.local_servers.probe_local_servers`); the ports are a
constructor argument so tests can point it at a server's port.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from parley.core.errors import KeyringUnavailable
from parley.core.providers.local_servers import (
    DEFAULT_PROBE_PORTS,
    LocalServer,
    probe_local_servers,
)
from parley.ui.key_field import key_field
from parley.ui.tasks import TaskSet
from parley.ui.theme import scale_font

if TYPE_CHECKING:
    from parley.core.secrets import Secrets
    from parley.core.settings import SettingsStore

log = logging.getLogger(__name__)

KEY_PROVIDERS = ("openai", "anthropic")
"""Providers onboarding offers a key field for."""


def _card(title: str, text: str) -> tuple[QFrame, QVBoxLayout]:
    frame = QFrame()
    frame.setObjectName("onboardingCard")
    layout = QVBoxLayout(frame)
    t = QLabel(title)
    t.setObjectName("cardTitle")
    scale_font(t, 1.1)
    body = QLabel(text)
    body.setWordWrap(True)
    layout.addWidget(t)
    layout.addWidget(body)
    return frame, layout


class OnboardingPanel(QWidget):
    """The friendly first-run panel.

    Args:
        secrets: Where a key goes (the OS keyring, or this session only when opted in).
        settings: Settings to record the chosen local server and provider.
        tasks: Runs the probe in the background.
        probe_ports: ``name -> port`` to probe on loopback.
        probe_timeout: Seconds per probe.
    """

    # ---- Signals
    sig_completed = Signal(str)
    """The person is set up; the provider id now in use."""
    sig_skipped = Signal()
    """"Skip for now" was clicked."""
    sig_settings_requested = Signal()
    """Open the full settings."""
    sig_probe_finished = Signal(int)
    """A probe ended (how many servers answered)."""

    def __init__(
        self,
        *,
        secrets: Secrets,
        settings: SettingsStore,
        tasks: TaskSet,
        probe_ports: Mapping[str, int] = DEFAULT_PROBE_PORTS,
        probe_timeout: float = 0.8,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._secrets = secrets
        self._settings = settings
        self._tasks = tasks
        self.probe_ports = dict(probe_ports)
        self._probe_timeout = probe_timeout
        self._probe_task: asyncio.Task[list[LocalServer]] | None = None
        self.servers: list[LocalServer] = []

        title = QLabel("Welcome to Parley")
        title.setObjectName("onboardingTitle")
        scale_font(title, 1.7)
        subtitle = QLabel(
            "Chat with OpenAI, Anthropic or a model running on this computer. "
            "Your keys stay in your system's keyring; your chats stay on this computer."
        )
        subtitle.setWordWrap(True)

        # --- key card
        key_card, kl = _card(
            "Use an API key",
            "Paste a key from platform.openai.com or console.anthropic.com. "
            "Usage is billed by the provider; Parley shows what each answer costs.",
        )
        self.provider_combo = QComboBox()
        self.provider_combo.addItem("OpenAI", "openai")
        self.provider_combo.addItem("Anthropic", "anthropic")
        self.key_edit, self.reveal_button = key_field("sk-…")
        self.save_key_button = QPushButton("Save key")
        self.session_key_button = QPushButton("Keep for this session only")
        self.session_key_button.setVisible(False)
        self.key_status = QLabel()
        self.key_status.setWordWrap(True)
        self.key_status.setVisible(False)
        row = QHBoxLayout()
        row.addWidget(self.provider_combo)
        row.addWidget(self.key_edit, 1)
        row.addWidget(self.reveal_button)
        row.addWidget(self.save_key_button)
        kl.addLayout(row)
        kl.addWidget(self.key_status)
        kl.addWidget(self.session_key_button, 0, Qt.AlignmentFlag.AlignLeft)

        # --- local card
        local_card, ll = _card(
            "Use a model on this computer",
            "Ollama, LM Studio, llama.cpp and vLLM run models locally: free and private.",
        )
        self.probe_status = QLabel("Not scanned yet.")
        self.probe_status.setWordWrap(True)
        self.server_list = QListWidget()
        self.server_list.setVisible(False)
        self.server_list.setMaximumHeight(self.fontMetrics().lineSpacing() * 6)
        self.local_model_combo = QComboBox()
        self.local_model_combo.setVisible(False)
        self.use_server_button = QPushButton("Use this server")
        self.use_server_button.setEnabled(False)
        self.rescan_button = QPushButton("Scan again")
        lrow = QHBoxLayout()
        lrow.addWidget(self.local_model_combo, 1)
        lrow.addWidget(self.use_server_button)
        lrow.addWidget(self.rescan_button)
        ll.addWidget(self.probe_status)
        ll.addWidget(self.server_list)
        ll.addLayout(lrow)

        # --- footer
        self.skip_button = QPushButton("Skip for now")
        self.skip_button.setFlat(True)
        self.settings_button = QPushButton("All settings…")
        self.settings_button.setFlat(True)
        foot = QHBoxLayout()
        foot.addWidget(self.settings_button)
        foot.addStretch(1)
        foot.addWidget(self.skip_button)

        content = QWidget()
        col = QVBoxLayout(content)
        em = self.fontMetrics().height()
        col.setContentsMargins(em * 2, em * 2, em * 2, em * 2)
        col.setSpacing(em)
        col.addWidget(title)
        col.addWidget(subtitle)
        col.addWidget(key_card)
        col.addWidget(local_card)
        col.addLayout(foot)
        col.addStretch(1)
        content.setMaximumWidth(self.fontMetrics().averageCharWidth() * 90)
        holder = QWidget()
        hl = QHBoxLayout(holder)
        hl.addStretch(1)
        hl.addWidget(content, 10)
        hl.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(holder)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)

        self.save_key_button.clicked.connect(lambda: self.save_key(session_only=False))
        self.key_edit.returnPressed.connect(lambda: self.save_key(session_only=False))
        self.session_key_button.clicked.connect(lambda: self.save_key(session_only=True))
        self.rescan_button.clicked.connect(self.start_probe)
        self.server_list.currentRowChanged.connect(self._server_selected)
        self.use_server_button.clicked.connect(self.use_selected_server)
        self.skip_button.clicked.connect(self.skip)
        self.settings_button.clicked.connect(self.sig_settings_requested)

    # ---- Public API
    def start_probe(self) -> asyncio.Task[list[LocalServer]]:
        """Scan the local ports in the background (a scan in progress is replaced)."""
        if self._probe_task is not None and not self._probe_task.done():
            self._probe_task.cancel()
        names = ", ".join(self.probe_ports)
        self.probe_status.setText(f"Looking for {names} on this computer…")
        self.rescan_button.setEnabled(False)
        self._probe_task = self._tasks.spawn(self._probe(), name="onboarding-probe")
        return self._probe_task

    def save_key(self, *, session_only: bool) -> bool:
        """Store the typed key (keyring, or this session only); True when stored."""
        provider = str(self.provider_combo.currentData())
        key = self.key_edit.text().strip()
        if not key:
            self._key_message("Paste a key first.", error=True)
            return False
        if any(c.isspace() for c in key) or len(key) > 4096:
            self._key_message(
                "That does not look like an API key (spaces or too long).", error=True
            )
            return False
        try:
            where = self._secrets.save(provider, key, session_only=session_only)
        except KeyringUnavailable as exc:
            self._key_message(f"{exc.user_message} The key was not stored.", error=True)
            self.session_key_button.setVisible(True)
            return False
        self.key_edit.clear()
        self.session_key_button.setVisible(False)
        note = "for this session only" if where == "session" else "in your system keyring"
        self._key_message(f"Key saved {note}.", error=False)
        s = self._settings.current
        self._settings.update(
            s.model_copy(
                update={"default_provider": provider, "default_model": None, "onboarded": True}
            )
        )
        self.sig_completed.emit(provider)
        return True

    def use_selected_server(self) -> None:
        """Make the selected local server the default provider."""
        row = self.server_list.currentRow()
        if row < 0 or row >= len(self.servers):
            return
        server = self.servers[row]
        model = self.local_model_combo.currentText() or (
            server.models[0] if server.models else None
        )
        self.use_server(server, model)

    def use_server(self, server: LocalServer, model: str | None) -> None:
        """Configure ``server`` as the OpenAI-compatible provider, ``model`` as default."""
        from parley.core.settings import ProviderSettings

        s = self._settings.current
        providers = dict(s.providers)
        providers["openai-compatible"] = ProviderSettings(
            base_url=server.base_url, default_model=model
        )
        self._settings.update(
            s.model_copy(
                update={
                    "providers": providers,
                    "default_provider": "openai-compatible",
                    "default_model": model,
                    "onboarded": True,
                }
            )
        )
        self.sig_completed.emit("openai-compatible")

    def skip(self) -> None:
        """Remember that the person skipped; do not show the panel again."""
        s = self._settings.current
        self._settings.update(s.model_copy(update={"onboarded": True}))
        self.sig_skipped.emit()

    def cancel_probe(self) -> None:
        """Stop a scan in progress."""
        if self._probe_task is not None and not self._probe_task.done():
            self._probe_task.cancel()

    # ---- internals
    async def _probe(self) -> list[LocalServer]:
        try:
            servers = await probe_local_servers(self.probe_ports, timeout=self._probe_timeout)
        finally:
            self.rescan_button.setEnabled(True)
        self.servers = servers
        self.server_list.clear()
        for s in servers:
            count = f"{len(s.models)} model{'s' if len(s.models) != 1 else ''}"
            item = QListWidgetItem(f"{s.name}  ·  {s.base_url.removesuffix('/v1')}  ·  {count}")
            self.server_list.addItem(item)
        self.server_list.setVisible(bool(servers))
        self.local_model_combo.setVisible(bool(servers))
        if servers:
            self.probe_status.setText(
                "Found a model server on this computer. Pick it and a model:"
                if len(servers) == 1
                else f"Found {len(servers)} model servers on this computer. Pick one and a model:"
            )
            self.server_list.setCurrentRow(0)
        else:
            self.probe_status.setText(
                "No local model server answered. Start Ollama or LM Studio, then scan again."
            )
        self.sig_probe_finished.emit(len(servers))
        return servers

    def _server_selected(self, row: int) -> None:
        self.local_model_combo.clear()
        if 0 <= row < len(self.servers):
            self.local_model_combo.addItems(list(self.servers[row].models))
        self.use_server_button.setEnabled(0 <= row < len(self.servers))

    def _key_message(self, text: str, *, error: bool) -> None:
        self.key_status.setObjectName("errorLine" if error else "okLine")
        self.key_status.setStyleSheet("")  # re-polish for the new object name
        self.key_status.style().unpolish(self.key_status)
        self.key_status.style().polish(self.key_status)
        self.key_status.setText(text)
        self.key_status.setVisible(True)


def needs_onboarding(
    secrets: Secrets, settings: SettingsStore, key_envs: Mapping[str, str | None]
) -> bool:
    """Whether to show the panel: never onboarded, no OpenAI/Anthropic key, no local server.

    Args:
        secrets: Key lookup.
        settings: Current settings.
        key_envs: Provider id -> its key's environment variable (from the catalog).
    """
    s = settings.current
    if s.onboarded:
        return False
    for pid in KEY_PROVIDERS:
        if secrets.resolve(pid, env_var=key_envs.get(pid)) is not None:
            return False
    return not s.provider("openai-compatible").base_url
