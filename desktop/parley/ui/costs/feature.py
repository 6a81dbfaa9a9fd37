"""The money feature in the window: estimate, ticker, cost panel and budgets, wired together.

:class:`MoneyFeature` is created by :meth:`~parley.ui.main_window.MainWindow.bind` when the
core has a ledger (always, from ``build_services``). It puts the estimate in the composer's
bottom row, makes the status strip's cost open the cost panel, keeps the estimate, the
panel and the budget in step with the conversation, the model and each turn's end, and
hands :class:`~parley.ui.turns.TurnRequests` the budget's gate.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QEvent, QObject, Qt, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QDockWidget, QFileDialog, QMainWindow

from parley.core.errors import ParleyError
from parley.ui.chat.model import ChatRole
from parley.ui.costs.budget import BudgetGuard
from parley.ui.costs.estimate import DraftEstimator, EstimateBar
from parley.ui.costs.panel import CostPanel, PanelFigures, ensure_models_file, load_figures
from parley.ui.costs.ticker import StreamTicker
from parley.ui.plain import shown

if TYPE_CHECKING:
    from parley.core.budget import Budget
    from parley.core.chat import ChatSession, OpChanges, TurnOptions
    from parley.core.metering import Meter
    from parley.core.providers.catalog import Catalog
    from parley.core.settings import Settings, SettingsStore
    from parley.core.store.ledger import Ledger
    from parley.ui.chat.transcript import Transcript
    from parley.ui.composer import Composer
    from parley.ui.controllers import ChatController
    from parley.ui.model_picker import ModelPicker
    from parley.ui.notices import NoticeBar
    from parley.ui.status import StatusStrip
    from parley.ui.tasks import TaskSet


@dataclass(frozen=True)
class MoneyHooks:
    """The core parts the money feature uses (from ``Services``; the app passes them)."""

    ledger: Ledger
    budget: Budget
    meter: Meter


class MoneyFeature(QObject):
    """See the module docstring.

    Args:
        window: Where the cost dock goes.
        hooks: The ledger, the budget and the meter.
        chat: Counts drafts; stores budget confirmations.
        catalog: Where the person's ``models.toml`` is, and its problems.
        settings: Budgets and the defaults of a turn's options.
        composer: The draft (and the row the estimate is shown in).
        picker: The chosen model.
        controller: The running turn's events.
        transcript: The conversation shown and its answers.
        status: The status strip (the cost that opens the panel, the ticking line).
        notice: The notice bar.
        tasks: Where reads and counts run.
        turn_options: Builds a turn's options (as sending does).
        is_local: Whether a provider id is a server on this machine.
    """

    def __init__(
        self,
        window: QMainWindow,
        hooks: MoneyHooks,
        *,
        chat: ChatSession,
        catalog: Catalog,
        settings: SettingsStore,
        composer: Composer,
        picker: ModelPicker,
        controller: ChatController,
        transcript: Transcript,
        status: StatusStrip,
        notice: NoticeBar,
        tasks: TaskSet,
        turn_options: Callable[..., TurnOptions],
        is_local: Callable[[str], bool],
    ) -> None:
        super().__init__(window)
        self._window = window
        self._hooks = hooks
        self._catalog = catalog
        self._settings = settings
        self._composer = composer
        self._picker = picker
        self._transcript = transcript
        self._status = status
        self._notice = notice
        self._tasks = tasks
        self._turn_options = turn_options
        self._focused: str | None = None
        self._panel_generation = 0
        self._budget_limits = _limits(settings.current)
        self.closing = False
        self.panel: CostPanel | None = None
        """The cost panel (created the first time it is shown)."""
        self.dock: QDockWidget | None = None
        self.export_dialog: QFileDialog | None = None
        """The CSV file dialog while it is open."""

        self.estimate_bar = EstimateBar()
        composer.add_status_widget(self.estimate_bar)
        self.estimator = DraftEstimator(
            chat=chat,
            meter=hooks.meter,
            composer=composer,
            bar=self.estimate_bar,
            options=self._options,
            conversation_id=lambda: transcript.conversation_id,
            is_local=is_local,
            tasks=tasks,
        )
        self.ticker = StreamTicker(
            controller=controller, meter=hooks.meter, status=status, is_local=is_local, tasks=tasks
        )
        self.budget = BudgetGuard(
            chat=chat,
            budget=hooks.budget,
            settings=settings,
            notice=notice,
            parent=window,
            tasks=tasks,
        )

        controller.sig_turn_started.connect(lambda _turn: self.estimator.invalidate())
        transcript.sig_turn_ended.connect(self._turn_ended)
        picker.sig_model_chosen.connect(lambda _p, _m: self.estimator.invalidate())
        picker.currentIndexChanged.connect(lambda _i: self.estimator.invalidate())
        composer.sig_options_changed.connect(lambda _t, _k: self.estimator.invalidate())
        transcript.view.sig_message_focused.connect(self._message_focused)
        settings.add_listener(self._settings_changed)
        status.cost_label.installEventFilter(self)
        status.cost_label.setCursor(Qt.CursorShape.PointingHandCursor)
        status.cost_label.setToolTip(
            "What this conversation has cost, from the tokens the provider reported and the "
            "prices in the model catalog. Click for the cost panel (Ctrl+Shift+C)."
        )

        self.estimator.invalidate()
        self.budget.refresh()
        if catalog.problems:
            self._tell_catalog_problems()

    # ---- Public API
    def show_panel(self) -> CostPanel:
        """Ctrl+Shift+C or a click on the status strip's cost: the cost panel, refreshed."""
        if self.panel is None:
            panel = CostPanel()
            panel.sig_period_changed.connect(lambda _p: self.refresh_panel())
            panel.sig_export_requested.connect(self.choose_export_file)
            panel.sig_prices_requested.connect(self.open_models_file)
            dock = QDockWidget("Costs", self._window)
            dock.setObjectName("costsDock")
            dock.setWidget(panel)
            dock.setAllowedAreas(
                Qt.DockWidgetArea.RightDockWidgetArea | Qt.DockWidgetArea.LeftDockWidgetArea
            )
            # The window places it (ui/side_panels.py): tabbed beside the other panels, or
            # over the chat when the window is too narrow to dock it.
            self._window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
            dock.visibilityChanged.connect(
                lambda visible: self.refresh_panel() if visible else None
            )
            self.panel, self.dock = panel, dock
        assert self.dock is not None
        self.dock.show()
        self.dock.raise_()
        self.refresh_panel()
        return self.panel

    def toggle_panel(self) -> CostPanel | None:
        """Show the panel, or hide it when it is in view."""
        if (
            self.dock is not None
            and self.dock.isVisible()
            and not self.dock.visibleRegion().isEmpty()
        ):
            self.dock.hide()
            return None
        return self.show_panel()

    def panel_visible(self) -> bool:
        """Whether the cost panel is open."""
        return self.dock is not None and self.dock.isVisible()

    def refresh_panel(self) -> asyncio.Task[None] | None:
        """Read the panel's figures off the GUI thread (only while it is open)."""
        if self.panel is None or not self.panel_visible() or self.closing:
            return None
        self._panel_generation += 1
        generation = self._panel_generation
        panel = self.panel
        ledger, budget = self._hooks.ledger, self._hooks.budget
        period = panel.current_period()
        cid = self._transcript.conversation_id
        mid = self._message_id()

        async def run() -> None:
            try:
                figures: PanelFigures = await asyncio.to_thread(
                    load_figures,
                    ledger,
                    period=period,
                    message_id=mid,
                    conversation_id=cid,
                    budget=budget,
                )
            except ParleyError as exc:
                panel.set_status(f"Could not read the ledger: {exc.user_message}")
                return
            if generation == self._panel_generation and not self.closing:
                panel.show_figures(figures)

        return self._tasks.spawn(run(), name="cost-panel")

    def conversation_opened(self, _conversation_id: int) -> None:
        """Another conversation (or a new chat) is shown."""
        self._focused = None
        self.estimator.invalidate()
        self.refresh_panel()

    def operation_executed(self, changes: OpChanges) -> None:
        """A conversation operation ran: a changed branch or prompt changes the estimate."""
        if changes.conversation_id == self._transcript.conversation_id and (
            changes.branch or changes.options
        ):
            self.estimator.invalidate()

    def choose_export_file(self) -> QFileDialog:
        """Export CSV…: a save dialog (non-modal); the file is written off the GUI thread."""
        from parley.core.store.ledger import local_day

        parent = self.panel or self._window
        start = Path.home() / f"parley-costs-{local_day()}.csv"
        dialog = QFileDialog(parent, "Export the ledger as CSV", str(start), "CSV files (*.csv)")
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.setDefaultSuffix("csv")
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.fileSelected.connect(self.export_csv)
        dialog.destroyed.connect(lambda *_: setattr(self, "export_dialog", None))
        self.export_dialog = dialog
        dialog.open()
        return dialog

    def export_csv(self, path: str) -> asyncio.Task[None] | None:
        """Write the chosen period's requests to ``path`` (a worker thread), then say so."""
        if not path or self.closing:
            return None
        from parley.ui.costs.panel import period_range

        period = self.panel.current_period() if self.panel is not None else "all"
        since, until = period_range(period)
        ledger = self._hooks.ledger
        target = Path(path)

        def write() -> int:
            tmp = target.with_name(target.name + ".part")
            with tmp.open("w", encoding="utf-8", newline="") as fh:
                n = ledger.write_csv(fh, since, until)
            os.replace(tmp, target)
            return n

        async def run() -> None:
            try:
                n = await asyncio.to_thread(write)
            except (OSError, ParleyError) as exc:
                reason = getattr(exc, "user_message", None) or getattr(exc, "strerror", None)
                text = f"Could not export to {shown(str(target))}: {reason or exc}."
                kind = "error"
            else:
                text = f"Exported {n:,} request{'s' if n != 1 else ''} to {shown(str(target))}."
                kind = "info"
            if self.panel is not None:
                self.panel.set_status(text)
            self._notice.show_notice(text, kind=kind, tag="export")  # type: ignore[arg-type]

        return self._tasks.spawn(run(), name="export-costs")

    def open_models_file(self) -> asyncio.Task[None]:
        """Open the person's models.toml (created from a template when missing)."""
        path = self._catalog.user_file
        unknown = (
            list(self.panel.figures.unknown_models) if self.panel and self.panel.figures else []
        )

        async def run() -> None:
            if path is None:  # pragma: no cover - build_services always passes the file
                return
            try:
                created = await asyncio.to_thread(ensure_models_file, path, unknown)
            except OSError as exc:
                self._notice.show_notice(
                    f"Could not create {shown(str(path))}: {exc.strerror or exc}.", kind="error"
                )
                return
            opened = QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))
            what = "Created" if created else "Opened"
            text = f"{what} {shown(str(path))}. Restart Parley after adding prices."
            if not opened:
                text = f"Open {shown(str(path))} in a text editor to add prices."
            if self.panel is not None:
                self.panel.set_status(text)

        return self._tasks.spawn(run(), name="models-file")

    def shutdown(self) -> None:
        """Stop starting work (the window is closing)."""
        self.closing = True
        self.estimator.closing = True
        self.budget.closing = True
        self._settings.remove_listener(self._settings_changed)

    # ---- internals
    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """A click on the status strip's cost opens the panel."""
        if (
            watched is self._status.cost_label
            and event.type() == QEvent.Type.MouseButtonRelease
            and getattr(event, "button", lambda: None)() == Qt.MouseButton.LeftButton
        ):
            self.show_panel()
            return True
        return False

    def _options(self) -> TurnOptions | None:
        current = self._picker.current()
        if current is None:
            return None
        use_tools, use_knowledge = self._composer.options()
        try:
            return self._turn_options(
                provider=current[0],
                model=current[1],
                use_tools=use_tools,
                use_knowledge=use_knowledge,
            )
        except ParleyError:
            return None  # no usable model yet: nothing to estimate

    def _message_id(self) -> int | None:
        mid = self._focused or self._transcript.last_message(ChatRole.ASSISTANT)
        try:
            return int(mid) if mid is not None else None
        except ValueError:
            return None

    def _message_focused(self, message_id: str) -> None:
        item = self._transcript.view.item(message_id)
        if item is not None and item.role == ChatRole.ASSISTANT and message_id != self._focused:
            self._focused = message_id
            self.refresh_panel()

    def _turn_ended(self, _conversation_id: int) -> None:
        self._focused = None  # "this message" follows the newest answer again
        self.estimator.invalidate()
        self.budget.refresh()
        self.refresh_panel()

    def _settings_changed(self, settings: Settings) -> None:
        self.estimator.invalidate()
        limits = _limits(settings)
        if limits != self._budget_limits:
            self._budget_limits = limits
            self.budget.refresh()
            self.refresh_panel()

    def _tell_catalog_problems(self) -> None:
        problems = self._catalog.problems
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        self._notice.show_notice(
            problems[0] + more,
            kind="warning",
            action=("Open models.toml", self.open_models_file),
            timeout_s=20.0,
            tag="catalog",
        )


def _limits(settings: Settings) -> tuple[Any, Any]:
    return settings.budget.daily_usd, settings.budget.monthly_usd
