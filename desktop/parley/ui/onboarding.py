"""First start: add an OpenAI or Anthropic key, or use a model server on this computer.

Shown when no key is set for OpenAI or Anthropic and no local server is configured. It probes
the usual local endpoints (:data:`~parley.core.providers.local_servers.DEFAULT_PROBE_PORTS`:
Ollama :11434, LM Studio :1234, llama.cpp :8080, vLLM :8000, Jan :1337) on loopback,
concurrently, with a short timeout each, and lists every one whose ``/v1/models`` answers.
A server elsewhere (another port, another computer, https) is reached by typing its address
beside "Scan again" and pressing Connect. The probes are core's
(:mod:`parley.core.providers.local_servers`); the ports are a constructor argument so tests
can point the scan at a server's port. Two clicks from a running Ollama to a chat: the first
server found is selected with its first model, so "Use this server" is all that is left.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
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
    probe_address,
    probe_local_servers,
)
from parley.ui.key_field import key_field
from parley.ui.plain import plain_label
from parley.ui.tasks import TaskSet
from parley.ui.theme import SPACE, repolish, set_type

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
    layout.setContentsMargins(SPACE["l"], SPACE["l"], SPACE["l"], SPACE["l"])
    layout.setSpacing(SPACE["s"])
    t = QLabel(title)
    t.setObjectName("cardTitle")
    set_type(t, "subtitle")
    body = QLabel(text)
    body.setObjectName("mutedText")
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
    sig_address_checked = Signal(bool)
    """A typed server address was asked for its models (whether it answered)."""

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
        self._address_task: asyncio.Task[LocalServer | None] | None = None
        self.servers: list[LocalServer] = []
        """The servers listed: those the scan found, then those reached by address."""
        self._typed: list[LocalServer] = []

        title = QLabel("Welcome to Parley")
        title.setObjectName("onboardingTitle")
        set_type(title, "display")
        subtitle = QLabel(
            "Chat with OpenAI, Anthropic or a model running on this computer. "
            "Your keys stay in your system's keyring; your chats stay on this computer."
        )
        subtitle.setObjectName("mutedText")
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
        self.key_edit.setAccessibleName("API key")
        self.provider_combo.setAccessibleName("Provider")
        self.save_key_button = QPushButton("Save key")
        self.save_key_button.setProperty("primary", True)
        self.session_key_button = QPushButton("Keep for this session only")
        self.session_key_button.setVisible(False)
        self.key_status = QLabel()
        self.key_status.setWordWrap(True)
        self.key_status.setVisible(False)
        self.provider_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.key_edit.setMinimumWidth(self.fontMetrics().averageCharWidth() * 16)
        row = QHBoxLayout()
        row.setSpacing(SPACE["s"])
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
            "Ollama, LM Studio, llama.cpp, vLLM and Jan run models locally: free and private. "
            "A server elsewhere works too: type its address.",
        )
        self.probe_status = plain_label(QLabel("Not scanned yet."))
        self.probe_status.setWordWrap(True)
        self.server_list = QListWidget()
        self.server_list.setAccessibleName("Servers found")
        self.server_list.setVisible(False)
        self.address_edit = QLineEdit()
        self.address_edit.setPlaceholderText("Server address, e.g. localhost:11434")
        self.address_edit.setAccessibleName("Server address")
        self.address_edit.setClearButtonEnabled(True)
        self.connect_button = QPushButton("Connect")
        self.connect_button.setToolTip("Ask the server at this address for its models")
        self.rescan_button = QPushButton("Scan again")
        self.rescan_button.setToolTip(
            "Look again for " + ", ".join(DEFAULT_PROBE_PORTS) + " on this computer"
        )
        arow = QHBoxLayout()
        arow.setSpacing(SPACE["s"])
        arow.addWidget(self.address_edit, 1)
        arow.addWidget(self.connect_button)
        arow.addWidget(self.rescan_button)
        self.local_model_combo = QComboBox()
        self.local_model_combo.setAccessibleName("Model")
        self.local_model_combo.setVisible(False)
        self.use_server_button = QPushButton("Use this server")
        self.use_server_button.setProperty("primary", True)
        self.use_server_button.setEnabled(False)
        lrow = QHBoxLayout()
        lrow.setSpacing(SPACE["s"])
        lrow.addWidget(self.local_model_combo, 1)
        lrow.addWidget(self.use_server_button)
        ll.addWidget(self.probe_status)
        ll.addWidget(self.server_list)
        ll.addLayout(arow)
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
        col.setContentsMargins(SPACE["xl"], SPACE["xxl"], SPACE["xl"], SPACE["xl"])
        col.setSpacing(SPACE["l"])
        col.addWidget(title)
        col.addWidget(subtitle)
        col.addWidget(key_card)
        col.addWidget(local_card)
        col.addLayout(foot)
        self.key_card, self.local_card = key_card, local_card
        self._column = col
        col.addStretch(1)
        content.setMaximumWidth(self.fontMetrics().averageCharWidth() * 90)
        holder = QWidget()
        hl = QHBoxLayout(holder)
        hl.addStretch(1)
        hl.addWidget(content, 10)
        hl.addStretch(1)
        self._scroll = scroll = QScrollArea()
        scroll.setObjectName("pageScroll")
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
        self.connect_button.clicked.connect(self.connect_address)
        self.address_edit.returnPressed.connect(self.connect_address)
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

    def connect_address(self) -> asyncio.Task[LocalServer | None] | None:
        """Ask the server at the typed address for its models; list it when it answers."""
        text = self.address_edit.text()
        try:
            from parley.core.providers.local_servers import parse_server_address

            base_url = parse_server_address(text).base_url
        except ValueError as exc:
            self._probe_message(str(exc), error=True)
            return None
        if self._address_task is not None and not self._address_task.done():
            self._address_task.cancel()
        self.connect_button.setEnabled(False)
        self._probe_message(f"Asking {base_url} for its models…", error=None)
        self._address_task = self._tasks.spawn(
            self._connect(text, base_url), name="onboarding-address"
        )
        return self._address_task

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
        for task in (self._probe_task, self._address_task):
            if task is not None and not task.done():
                task.cancel()

    # ---- internals
    async def _probe(self) -> list[LocalServer]:
        try:
            found = await probe_local_servers(self.probe_ports, timeout=self._probe_timeout)
        finally:
            self.rescan_button.setEnabled(True)
        # Servers reached by address stay listed beside those the scan found.
        urls = {f.base_url for f in found}
        self._show_servers([*found, *(s for s in self._typed if s.base_url not in urls)])
        if found:
            self._bring_local_forward()
            self._probe_message(
                "Found a model server on this computer. Pick it and a model:"
                if len(found) == 1
                else f"Found {len(found)} model servers on this computer. Pick one and a model:",
                error=None,
            )
        else:
            self._probe_message(
                "No local model server answered. Start Ollama, LM Studio or Jan, then scan "
                "again, or type the address of your server.",
                error=None,
            )
        self.sig_probe_finished.emit(len(found))
        return found

    async def _connect(self, text: str, base_url: str) -> LocalServer | None:
        try:
            server = await probe_address(text)
        except ValueError as exc:  # parsed before; kept for safety
            server = None
            self._probe_message(str(exc), error=True)
        finally:
            self.connect_button.setEnabled(True)
        if server is None:
            self._probe_message(
                f"No model server answered at {base_url}/models. Check the address and that "
                "the server is running.",
                error=True,
            )
            self.sig_address_checked.emit(False)
            return None
        self._typed = [*(s for s in self._typed if s.base_url != server.base_url), server]
        others = [s for s in self.servers if s.base_url != server.base_url]
        self._show_servers([*others, server], select=server.base_url)
        n = len(server.models)
        self._probe_message(
            f"Connected to {server.base_url}: {n} model{'s' if n != 1 else ''}. Pick one:",
            error=False,
        )
        self.sig_address_checked.emit(True)
        return server

    def _bring_local_forward(self) -> None:
        """A server answered: its card goes first, "Use this server" scrolled into view.

        The free, private path is then one click away, even in a small window.
        """
        col = self._column
        if col.indexOf(self.local_card) > col.indexOf(self.key_card):
            col.insertWidget(col.indexOf(self.key_card), self.local_card)
        # After the layout has placed the moved card (the scroll area then knows where).
        QTimer.singleShot(
            0, self._scroll, lambda: self._scroll.ensureWidgetVisible(self.use_server_button)
        )

    def _show_servers(self, servers: list[LocalServer], *, select: str | None = None) -> None:
        self.servers = servers
        self.server_list.clear()
        for s in servers:
            count = f"{len(s.models)} model{'s' if len(s.models) != 1 else ''}"
            item = QListWidgetItem(f"{s.name}  ·  {s.base_url.removesuffix('/v1')}  ·  {count}")
            self.server_list.addItem(item)
        self.server_list.setVisible(bool(servers))
        if servers:  # as tall as its rows (up to six), no empty box under one server
            rows = min(len(servers), 6)
            frame = 2 * self.server_list.frameWidth()
            self.server_list.setFixedHeight(rows * self.server_list.sizeHintForRow(0) + frame)
        self.local_model_combo.setVisible(bool(servers))
        if servers:
            urls = [s.base_url for s in servers]
            self.server_list.setCurrentRow(urls.index(select) if select in urls else 0)
        else:
            self._server_selected(-1)

    def _probe_message(self, text: str, *, error: bool | None) -> None:
        name = {True: "errorLine", False: "okLine", None: ""}[error]
        if self.probe_status.objectName() != name:
            self.probe_status.setObjectName(name)
            repolish(self.probe_status)
        self.probe_status.setText(text)

    def _server_selected(self, row: int) -> None:
        self.local_model_combo.clear()
        if 0 <= row < len(self.servers):
            self.local_model_combo.addItems(list(self.servers[row].models))
        self.use_server_button.setEnabled(0 <= row < len(self.servers))

    def _key_message(self, text: str, *, error: bool) -> None:
        self.key_status.setObjectName("errorLine" if error else "okLine")
        repolish(self.key_status)
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
