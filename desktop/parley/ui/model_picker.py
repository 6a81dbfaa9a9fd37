"""The model picker: models grouped by provider, with context window and price per 1M tokens.

Prices and context windows come from the catalog (models.toml), never from code. A model the
catalog does not know shows "price unknown"; a model on a server on this machine shows
"free (local)". Models an OpenAI-compatible server lists (``/v1/models``) are added under
their provider when the server answers.

:class:`ModelPicker` is the widget; :class:`ModelChooser` fills it (providers with a key or a
server, the default model, the detail text in the status strip), asks local servers for
their models and creates SDK clients off the GUI thread before the first turn needs them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from PySide6.QtCore import QModelIndex, QObject, QPersistentModelIndex, QSize, Qt, Signal
from PySide6.QtGui import QFont, QPainter, QPalette, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QComboBox,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QWidget,
)

if TYPE_CHECKING:
    from parley.core.providers.catalog import Catalog, ModelInfo
    from parley.core.services import ProviderFactory
    from parley.core.settings import SettingsStore
    from parley.ui.status import StatusStrip
    from parley.ui.tasks import TaskSet

log = logging.getLogger(__name__)

REMOTE_LIST_TIMEOUT_S = 3.0
"""How long the chooser waits for a local server's model list."""

T = TypeVar("T")

_PROVIDER_ROLE = Qt.ItemDataRole.UserRole + 1
_MODEL_ROLE = Qt.ItemDataRole.UserRole + 2
_DETAIL_ROLE = Qt.ItemDataRole.UserRole + 3
_HEADER_ROLE = Qt.ItemDataRole.UserRole + 4


@dataclass(frozen=True)
class PickerEntry:
    """One choosable model."""

    provider: str
    model: str
    label: str
    detail: str
    """Context window and prices, e.g. "400K context · $1.25 in · $10 out per 1M"."""


@dataclass(frozen=True)
class PickerGroup:
    """A provider and its models."""

    provider: str
    label: str
    entries: list[PickerEntry] = field(default_factory=list)


def format_tokens(n: int | None) -> str:
    """``128K`` / ``1M`` / ``200K``; "?" when unknown."""
    if not n:
        return "?"
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f}M"
    if n >= 1000:
        return f"{round(n / 1000)}K"
    return str(n)


def format_price(value: float) -> str:
    """``$0.15`` / ``$10`` / ``$0.075`` (per 1M tokens)."""
    if value == int(value):
        return f"${int(value)}"
    text = f"{value:.3f}".rstrip("0")
    if len(text.split(".")[1]) < 2:
        text = f"{value:.2f}"
    return f"${text}"


def describe_model(info: ModelInfo | None, *, local: bool) -> str:
    """The picker's detail text for a model."""
    parts: list[str] = []
    if info is not None and info.context_window:
        parts.append(f"{format_tokens(info.context_window)} context")
    if local:
        parts.append("free (local)")
    elif info is None or not info.has_prices:
        parts.append("price unknown")
    else:
        assert info.price_input is not None and info.price_output is not None
        price = (
            f"{format_price(info.price_input)} in · {format_price(info.price_output)} out per 1M"
        )
        if info.unverified:
            price += " (unverified)"
        parts.append(price)
    return " · ".join(parts)


def build_groups(
    catalog: Catalog,
    providers: Iterable[str],
    *,
    is_local: Callable[[str], bool],
    remote: Mapping[str, Sequence[str]] | None = None,
) -> list[PickerGroup]:
    """Groups for ``providers`` (in order): catalog models, then models their server listed.

    Args:
        catalog: The model catalog.
        providers: Provider ids to offer (those with a key or a configured local server).
        is_local: Whether a provider is a server on this machine (its models are free).
        remote: Model ids a provider's ``/v1/models`` listed.
    """
    remote = remote or {}
    groups: list[PickerGroup] = []
    for pid in providers:
        info = catalog.providers.get(pid)
        if info is None:
            continue
        local = is_local(pid)
        entries: list[PickerEntry] = []
        seen: set[str] = set()
        listed = list(remote.get(pid, ()))
        catalog_models = catalog.models_for(pid)
        # A local server offers what it lists; the vendor catalog is for the vendor's API.
        if not (local and listed):
            for m in catalog_models:
                entries.append(PickerEntry(pid, m.id, m.label, describe_model(m, local=local)))
                seen.add(m.id)
        for mid in listed:
            if mid in seen:
                continue
            seen.add(mid)
            known = catalog.model(mid, pid)
            entries.append(
                PickerEntry(
                    pid, mid, known.label if known else mid, describe_model(known, local=local)
                )
            )
        if info.default_model and info.default_model not in seen and not local:
            known = catalog.model(info.default_model, pid)
            entries.insert(
                0,
                PickerEntry(
                    pid, info.default_model, info.default_model, describe_model(known, local=local)
                ),
            )
        groups.append(PickerGroup(pid, info.label, entries))
    return groups


class _Delegate(QStyledItemDelegate):
    """Popup rows: the model name, and its context/price detail in a quieter colour."""

    def sizeHint(
        self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> QSize:
        base = super().sizeHint(option, index)
        if index.data(_MODEL_ROLE) is None:
            return base
        fm = option.fontMetrics
        return QSize(base.width(), int(fm.lineSpacing() * 2.4))

    def paint(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        index: QModelIndex | QPersistentModelIndex,
    ) -> None:
        detail = index.data(_DETAIL_ROLE)
        if index.data(_MODEL_ROLE) is None or not detail:
            super().paint(painter, option, index)
            return
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        text = opt.text
        opt.text = ""
        style = opt.widget.style() if opt.widget else QWidget().style()
        style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, opt.widget)
        rect = opt.rect.adjusted(opt.fontMetrics.averageCharWidth() * 2, 0, -4, 0)
        selected = bool(opt.state & QStyle.StateFlag.State_Selected)
        group = QPalette.ColorGroup.Normal
        main = opt.palette.color(
            group,
            QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text,
        )
        sub = QPalette(opt.palette).color(
            group,
            QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.PlaceholderText,
        )
        half = rect.height() // 2
        painter.save()
        painter.setPen(main)
        painter.drawText(
            rect.adjusted(0, 0, 0, -half),
            int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignBottom),
            text,
        )
        small = QFont(opt.font)
        small.setPointSizeF(max(1.0, small.pointSizeF() * 0.85))
        painter.setFont(small)
        painter.setPen(sub)
        painter.drawText(
            rect.adjusted(0, half, 0, 0),
            int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop),
            detail,
        )
        painter.restore()


class ModelPicker(QComboBox):
    """A combo box of models grouped under provider headers."""

    # ---- Signals
    sig_model_chosen = Signal(str, str)
    """The person picked a model: (provider id, model id)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._model = QStandardItemModel(self)
        self.setModel(self._model)
        self.setItemDelegate(_Delegate(self))
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.setMinimumContentsLength(18)
        self.setToolTip("Model for this chat")
        self._groups: list[PickerGroup] = []
        self._updating = False
        self.activated.connect(self._activated)

    # ---- Public API
    def set_groups(
        self, groups: Sequence[PickerGroup], *, current: tuple[str, str] | None = None
    ) -> None:
        """Show ``groups``; keep (or set) the current choice without emitting a signal."""
        keep = current or self.current()
        self._updating = True
        try:
            self._groups = list(groups)
            self._model.clear()
            header_font = QFont(self.font())
            header_font.setBold(True)
            for g in groups:
                header = QStandardItem(g.label)
                header.setFlags(Qt.ItemFlag.NoItemFlags)
                header.setFont(header_font)
                header.setData(True, _HEADER_ROLE)
                self._model.appendRow(header)
                if not g.entries:
                    empty = QStandardItem("    (no models listed)")
                    empty.setFlags(Qt.ItemFlag.NoItemFlags)
                    self._model.appendRow(empty)
                for e in g.entries:
                    item = QStandardItem(e.label)
                    item.setData(e.provider, _PROVIDER_ROLE)
                    item.setData(e.model, _MODEL_ROLE)
                    item.setData(e.detail, _DETAIL_ROLE)
                    item.setToolTip(f"{g.label} · {e.model}\n{e.detail}")
                    self._model.appendRow(item)
            if not groups:
                none = QStandardItem("No model yet")
                none.setToolTip("Add a key or a local server in Settings (Ctrl+,)")
                none.setFlags(Qt.ItemFlag.NoItemFlags)
                self._model.appendRow(none)
                self.setCurrentIndex(0)
            if keep is not None:
                self.set_current(*keep)
        finally:
            self._updating = False

    def set_current(self, provider: str, model: str, *, detail: str | None = None) -> None:
        """Select ``model`` of ``provider``; an unlisted model is added under its provider.

        Args:
            provider: Provider id.
            model: Model id.
            detail: Context/price text for a model that is not listed yet (default: "not in
                the catalog · price unknown").
        """
        row = self._row_of(provider, model)
        if row is None:
            row = self._add_unlisted(provider, model, detail)
        was = self._updating
        self._updating = True
        self.setCurrentIndex(row)
        self._updating = was

    def current(self) -> tuple[str, str] | None:
        """(provider, model) selected, or None."""
        idx = self.currentIndex()
        if idx < 0:
            return None
        item = self._model.item(idx)
        if item is None or item.data(_MODEL_ROLE) is None:
            return None
        return str(item.data(_PROVIDER_ROLE)), str(item.data(_MODEL_ROLE))

    def current_detail(self) -> str:
        """The context/price text of the selected model."""
        item = self._model.item(self.currentIndex()) if self.currentIndex() >= 0 else None
        return str(item.data(_DETAIL_ROLE) or "") if item is not None else ""

    def entries(self) -> list[tuple[str, str, str]]:
        """(provider, model, detail) of every choosable row, in order."""
        out = []
        for r in range(self._model.rowCount()):
            item = self._model.item(r)
            if item.data(_MODEL_ROLE) is not None:
                out.append(
                    (
                        str(item.data(_PROVIDER_ROLE)),
                        str(item.data(_MODEL_ROLE)),
                        str(item.data(_DETAIL_ROLE)),
                    )
                )
        return out

    def headers(self) -> list[str]:
        """Provider headers, in order."""
        return [
            self._model.item(r).text()
            for r in range(self._model.rowCount())
            if self._model.item(r).data(_HEADER_ROLE)
        ]

    # ---- internals
    def _row_of(self, provider: str, model: str) -> int | None:
        for r in range(self._model.rowCount()):
            item = self._model.item(r)
            if item.data(_PROVIDER_ROLE) == provider and item.data(_MODEL_ROLE) == model:
                return r
        return None

    def _add_unlisted(self, provider: str, model: str, detail: str | None) -> int:
        # Insert after the provider's header and models, or in a new group at the end.
        label = next((g.label for g in self._groups if g.provider == provider), provider)
        insert_at = None
        for r in range(self._model.rowCount()):
            item = self._model.item(r)
            if item.data(_HEADER_ROLE) and item.text() == label:
                insert_at = r + 1
                while insert_at < self._model.rowCount() and not self._model.item(insert_at).data(
                    _HEADER_ROLE
                ):
                    insert_at += 1
        if insert_at is None:
            header = QStandardItem(label)
            header.setFlags(Qt.ItemFlag.NoItemFlags)
            header.setData(True, _HEADER_ROLE)
            self._model.appendRow(header)
            insert_at = self._model.rowCount()
        item = QStandardItem(model)
        item.setData(provider, _PROVIDER_ROLE)
        item.setData(model, _MODEL_ROLE)
        item.setData(detail or "not in the catalog · price unknown", _DETAIL_ROLE)
        self._model.insertRow(insert_at, item)
        return insert_at

    def _activated(self, _index: int) -> None:
        if self._updating:
            return
        cur = self.current()
        if cur is not None:
            self.sig_model_chosen.emit(*cur)


class ModelChooser(QObject):
    """Keeps the picker's list, its current model and the status strip's model detail.

    Args:
        picker: The picker widget.
        status: Shows the current model's detail (context window, prices).
        catalog: Models, prices, providers.
        providers: Keys, default models, local or not, SDK clients.
        settings: The default provider and the local servers' base URLs.
        tasks: Where listing and warm-up run.
    """

    def __init__(
        self,
        picker: ModelPicker,
        status: StatusStrip,
        *,
        catalog: Catalog,
        providers: ProviderFactory,
        settings: SettingsStore,
        tasks: TaskSet,
    ) -> None:
        super().__init__(picker)
        self.picker = picker
        self._status = status
        self._catalog = catalog
        self._providers = providers
        self._settings = settings
        self._tasks = tasks
        self._remote_models: dict[str, list[str]] = {}
        self._warming: set[asyncio.Task[Any]] = set()
        self.closing = False
        """Set when the window closes: late model lists are dropped."""

    # ---- Public API
    def refresh(self) -> asyncio.Task[None]:
        """Rebuild the list from the catalog and the keys; ask local servers for theirs."""
        self._rebuild()
        return self._tasks.spawn(self._list_remote_models(), name="remote-models")

    def available_providers(self) -> list[str]:
        """Providers that can answer now (a key, or a local server that is set up)."""
        out = []
        for pid, info in self._catalog.providers.items():
            if info.key_optional:
                if self._settings.current.provider(pid).base_url or self._remote_models.get(pid):
                    out.append(pid)
            elif self._providers.key(pid) is not None:
                out.append(pid)
        return out

    def is_local(self, provider: str) -> bool:
        """Whether ``provider`` is a server on this machine (its turns are free)."""
        return _safe(lambda: self._providers.is_local(provider), False)

    def select_default(self) -> None:
        """Select the model a new chat starts with.

        That is the model last used in the window (:meth:`remember`), unless the person
        chose a fixed default in Settings (``new_chat_model = "default"``) or that model's
        provider is no longer available; then the default provider's default model, else
        the first one listed.
        """
        s = self._settings.current
        if s.new_chat_model == "last_used" and s.last_provider and s.last_model:
            if s.last_provider in self.available_providers():
                self.pick(s.last_provider, s.last_model)
                self.update_status()
                return
        pid = s.default_provider
        model = _safe(lambda: self._providers.default_model(pid), None)
        if model is None and pid in self._remote_models and self._remote_models[pid]:
            model = self._remote_models[pid][0]
        if model is not None and pid in self.available_providers():
            self.pick(pid, model)
        elif self.picker.entries():
            p, m, _ = self.picker.entries()[0]
            self.picker.set_current(p, m)
        self.update_status()

    def pick(self, provider: str, model: str) -> None:
        """Select a model in the picker (described even before a server lists it)."""
        local = self.is_local(provider)
        info = self._catalog.model(model, provider)
        detail = describe_model(info, local=local)
        if info is None and not local:
            detail = "not in the catalog · " + detail
        self.picker.set_current(provider, model, detail=detail)

    def remember(self, provider: str, model: str) -> None:
        """Note ``model`` as the one last used (new chats start with it); saved in settings."""
        s = self._settings.current
        if (s.last_provider, s.last_model) == (provider, model):
            return
        try:
            self._settings.update(
                s.model_copy(update={"last_provider": provider, "last_model": model})
            )
        except OSError as exc:  # an unwritable settings file must not break choosing
            log.warning("could not remember the model: %s", exc)

    def update_status(self) -> None:
        """Show the current model and its detail in the status strip."""
        cur = self.picker.current()
        if cur is None:
            self._status.set_model_detail("No model: add a key in Settings (Ctrl+,)")
            return
        self._status.set_model_detail(f"{cur[1]} · {self.picker.current_detail()}")

    async def sdk_ready(self) -> None:
        """Until SDK clients being created off-thread exist (a turn never makes a second)."""
        pending = [t for t in self._warming if not t.done()]
        if pending:
            await asyncio.wait(pending)

    # ---- internals
    def _rebuild(self) -> None:
        groups = build_groups(
            self._catalog,
            self.available_providers(),
            is_local=self.is_local,
            remote=self._remote_models,
        )
        self.picker.set_groups(groups)
        if self.picker.current() is None:
            self.select_default()
        self.update_status()

    async def _list_remote_models(self) -> None:
        current = self.picker.current()
        await self._warm_sdk(current[0] if current else self._settings.current.default_provider)
        found: dict[str, list[str]] = {}
        for pid, info in self._catalog.providers.items():
            if not info.key_optional or not self._settings.current.provider(pid).base_url:
                continue
            try:
                provider = self._providers.raw(pid)
                await self._warm_sdk(pid)
                async with asyncio.timeout(REMOTE_LIST_TIMEOUT_S):
                    models = await provider.list_models()
            except Exception as exc:  # an unreachable server is normal (ParleyError, timeout)
                log.info("could not list models of %s: %s", pid, getattr(exc, "user_message", exc))
                continue
            found[pid] = [m.id for m in models]
        if found and not self.closing:
            self._remote_models.update(found)
            self._rebuild()

    async def _warm_sdk(self, provider_id: str) -> None:
        """Create the provider's SDK client in a worker thread.

        The core imports an SDK lazily, on first use (~0.4-1 s here, STACK-NOTES); doing it
        on the GUI thread at the first Send would freeze the window. The adapter's ``client``
        property is what triggers it, so it is touched once, off the GUI thread.
        """
        from parley.core.errors import ParleyError

        try:
            provider = self._providers.raw(provider_id)
        except ParleyError:
            return
        if getattr(type(provider), "client", None) is None:
            return
        task = self._tasks.spawn(
            asyncio.to_thread(lambda: provider.client),  # type: ignore[attr-defined]
            name=f"warm-{provider_id}",
        )
        self._warming.add(task)
        task.add_done_callback(self._warming.discard)
        await asyncio.wait([task])


def _safe(fn: Callable[[], T], default: T) -> T:
    """``fn()``, or ``default`` when it raises a ParleyError (an unknown provider...)."""
    from parley.core.errors import ParleyError

    try:
        return fn()
    except ParleyError:
        return default


def price_text(catalog: Catalog, provider: str, model: str) -> str | None:
    """The catalog's price for a model as the usage tooltip says it (None: unknown)."""
    info = catalog.model(model, provider)
    if info is None or not info.has_prices:
        return None
    text = f"${info.price_input:g} in · ${info.price_output:g} out"
    if info.price_cached_input is not None:
        text += f" · ${info.price_cached_input:g} cached"
    return text + " per 1M tokens" + (f" (as of {info.as_of})" if info.as_of else "")
