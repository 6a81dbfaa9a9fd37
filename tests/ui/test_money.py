"""Money in the window (issue 13), driven like a person would against the fake servers.

The composer's estimate and context meter (exact for OpenAI models, the same number the
provider then reports; amber and red at their thresholds with a small window from the
person's models.toml), the status strip ticking while an answer streams, the cost panel
against ``parley costs --json`` on the same ledger, the CSV export, unknown prices, budgets
(the notice at 80 %, the question at 100 %: Don't send keeps the draft, Send anyway sends
and is not asked again that day), answers from Parley's cache, and the database only ever
touched off the GUI thread. Everything is real: the SDKs over sockets, SQLite, the window.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import threading
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt, QUrl, Slot
from PySide6.QtGui import QDesktopServices
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QMessageBox

from parley.core.costs import format_usd
from parley.core.secrets import MemorySecretStore, Secrets
from parley.core.store.ledger import Ledger, LedgerEntry, local_day
from parley.ui.costs.estimate import DraftFigures, level_colors
from parley.ui.theme import apply_theme, is_dark
from tests.core.test_cli import parley
from tests.fakes.script import Text
from tests.fakes.server import FakeLLMServer
from tests.ui.harness import WindowHarness, chat_requests, openai_settings

MINI_IN, MINI_OUT = 0.15, 0.60
"""gpt-4o-mini's prices per 1M tokens in the bundled catalog."""


def _secrets(*providers: str) -> Secrets:
    store = MemorySecretStore()
    for p in providers or ("openai",):
        store.set(p, f"sk-test-{p}")
    return Secrets(store, environ={})


def _models_toml(home: Path, text: str) -> Path:
    config = home / "config"
    config.mkdir(parents=True, exist_ok=True)
    path = config / "models.toml"
    path.write_text(text)
    return path


def _money_json(t: dict[str, Any]) -> str:
    """What the panel must show for a ``parley costs --json`` totals object."""
    if t["requests"] == 0:
        return "$0.00"
    local = t.get("local")  # a count in totals; rows say True when every request was local
    if local is True or (type(local) is int and local == t["requests"]):
        return "$0.00 (local)"
    if t["cost_usd"] is None:
        return "unknown"
    text = format_usd(t["cost_usd"])
    return text + (f" + {t['unknown']:,} unknown" if t["unknown"] else "")


async def _costs_json(home: Path, *args: str) -> dict[str, Any]:
    p = await asyncio.to_thread(parley, home, "costs", "--json", *args)
    assert p.returncode == 0, p.stderr
    return dict(json.loads(p.stdout))


# ---------------------------------------------------------------- before sending
async def test_composer_estimate_is_what_the_provider_counts_then_amber_then_red(
    qtbot: Any, parley_home: Path
) -> None:
    # A 1,000-token window keeping 100 for the answer: 900 for the request, amber from 720.
    _models_toml(parley_home, '[models."gpt-4o-mini"]\ncontext_window = 1000\nmax_output = 100\n')
    with FakeLLMServer() as srv:
        srv.enqueue(Text("Sure.", output_tokens=2))
        async with WindowHarness(
            qtbot, server=srv, settings=openai_settings(srv), secrets=_secrets()
        ) as h:
            w = h.w
            assert w.money is not None
            bar = w.money.estimate_bar
            await w.wait_startup()
            assert w.picker.current() == ("openai", "gpt-4o-mini")
            assert not bar.isVisible()  # a new chat with nothing typed: nothing to say

            question = "How many moons does Jupiter have, roughly?"
            w.composer.edit.setFocus()
            QTest.keyClicks(w.composer.edit, question)
            opts = h.s.turn_options(provider="openai", model="gpt-4o-mini")
            draft = await asyncio.to_thread(h.s.chat.draft_estimate, None, opts)
            assert draft is not None
            expected = draft.update(question).input_tokens
            fig: DraftFigures = await h.until(
                lambda: (f := bar.figures) is not None and f.tokens == expected and f,
                what="the estimate of the typed question",
            )
            assert bar.isVisible()
            assert fig.exact and fig.method == "o200k_base"
            expected_cost = fig.tokens * MINI_IN / 1_000_000
            assert expected_cost < 0.00005  # a short question on a cheap model: not "$0.0000"
            assert bar.label.text() == f"{fig.tokens:,} tokens · < $0.0001"
            assert bar.meter_label.text() == f"{fig.tokens} / 1K"
            assert bar.meter.level() == "ok" and fig.level == "ok"
            assert "Exact: counted with o200k_base" in bar.toolTip()
            assert "100 kept for the answer" in bar.toolTip()

            # Enter: the fake counts the prompt it receives with tiktoken, as OpenAI would.
            QTest.keyClick(w.composer.edit, Qt.Key.Key_Return)
            await h.until(w.is_busy, what="busy")
            await h.until(lambda: not w.is_busy(), what="answered")
            reported = h.s.ledger.conversation(w.conversation_id or 0).input_tokens
            assert reported == fig.tokens  # the estimate before sending was the real count

            # The history now counts too. Fill the draft towards the room for the request.
            w.composer.set_text("")
            await h.until(lambda: bar.figures is not None and bar.figures.draft_empty)
            await h.until(lambda: bar.isVisible(), what="context of an open chat shown")
            base = bar.figures.tokens
            assert base > reported  # the question and the answer are history now

            def fill(tokens: int) -> str:
                return "word " * max(0, tokens - base)  # " word" is one o200k token

            w.composer.set_text(fill(770))
            await h.until(lambda: bar.figures is not None and not bar.figures.draft_empty)
            await h.until(lambda: 720 <= bar.figures.tokens <= 900, what="amber range")
            assert bar.meter.level() == "warn"
            amber = level_colors(bar.meter.palette())["warn"]
            assert bar.meter.fill_color() == amber
            assert bar.meter_label.palette().windowText().color() == amber
            assert "Nearly full" in bar.toolTip()
            # A theme switch recolours it (dark needs a lighter amber to stay readable).
            app = QApplication.instance()
            assert isinstance(app, QApplication)
            apply_theme(app, "dark")
            await h.until(lambda: is_dark(bar.palette()), what="the dark palette")
            dark_amber = level_colors(bar.palette())["warn"]
            assert dark_amber != amber
            await h.until(lambda: bar.meter_label.palette().windowText().color() == dark_amber)
            apply_theme(app, "light")

            w.composer.set_text(fill(950))
            await h.until(lambda: bar.figures is not None and bar.figures.tokens > 900, what="red")
            assert bar.meter.level() == "over"
            assert bar.meter.fill_color() == level_colors(bar.meter.palette())["over"]
            assert "It will not fit" in bar.toolTip()

            # Back under the threshold: normal again.
            w.composer.set_text("short")
            await h.until(lambda: bar.figures is not None and bar.figures.level == "ok")
            assert bar.meter.level() == "ok"


async def test_claude_estimate_is_marked_approximate(qtbot: Any) -> None:
    with FakeLLMServer() as srv:
        settings = openai_settings(srv)
        settings = settings.model_copy(
            update={"default_provider": "anthropic", "default_model": "claude-haiku-4-5"}
        )
        async with WindowHarness(
            qtbot, server=srv, settings=settings, secrets=_secrets("anthropic")
        ) as h:
            w = h.w
            assert w.money is not None
            await w.wait_startup()
            assert w.picker.current() == ("anthropic", "claude-haiku-4-5")
            w.composer.set_text("Hello Claude")
            bar = w.money.estimate_bar
            fig = await h.until(lambda: (f := bar.figures) and not f.draft_empty and f)
            assert not fig.exact
            assert re.fullmatch(rf"≈ {fig.tokens:,} tokens · (< )?\$[\d.]+", bar.label.text())
            assert "≈ Estimate" in bar.toolTip() and "not yet calibrated" in bar.toolTip()


def test_estimate_texts_for_rough_local_and_unknown_counts() -> None:
    common: dict[str, Any] = {"note": "", "model": "m", "window": None, "reserved": 0}
    rough = DraftFigures(120, False, "chars", cost_usd=None, local=False, **common)
    assert rough.text() == "≈ 120 tokens (rough) · price unknown"
    assert "Rough: the tokenizer files are missing" in rough.explanation()
    assert rough.level == "unknown" and rough.meter_text() == ""
    local = DraftFigures(1500, True, "o200k_base", cost_usd=0.0, local=True, **common)
    assert local.text() == "1,500 tokens · free (local)"


# ---------------------------------------------------------------- while streaming
async def test_output_and_cost_tick_while_streaming_then_the_provider_usage(qtbot: Any) -> None:
    answer = " ".join(f"Sentence {i} about moons and rings." for i in range(150))
    with FakeLLMServer() as srv:
        # The provider reports more than the text counts here (a reasoning model's hidden
        # tokens, say): the local count ticks, then the report replaces it.
        srv.enqueue(Text(answer, chunk_chars=12, delay=0.006, input_tokens=500, output_tokens=5000))
        async with WindowHarness(
            qtbot, server=srv, settings=openai_settings(srv), secrets=_secrets()
        ) as h:
            w = h.w
            assert w.money is not None
            ticker = w.money.ticker
            await w.wait_startup()
            finished: list[Any] = []
            samples: list[tuple[int, float | None, str]] = []
            assert w.controller is not None
            w.controller.sig_turn_finished.connect(finished.append)
            h.type_and_send("Tell me about Saturn")
            await h.until(w.is_busy, what="busy")
            while w.is_busy() and not finished:
                if ticker.active:
                    samples.append(
                        (ticker.output_tokens, ticker.cost_usd, w.status.tokens_label.text())
                    )
                await asyncio.sleep(0.02)
            await h.until(lambda: not w.is_busy())

            counts = [n for n, _c, _t in samples]
            assert counts == sorted(counts), "the count never goes down"
            assert len({n for n in counts if n > 0}) >= 3, counts  # it ticked, in steps
            costs = [c for _n, c, _t in samples if c is not None]
            assert costs and costs == sorted(costs) and costs[-1] > costs[0]
            shown = [t for _n, _c, t in samples if t.startswith("Answering: ≈ ")]
            assert len(set(shown)) >= 2, shown  # the label itself changed while streaming
            m = re.match(r"Answering: ≈ ([\d,]+) tokens out · ≈ \$([\d.]+)", shown[-1])
            assert m is not None, shown[-1]
            # counted locally: what the text is, not yet the provider's 5,000
            assert 1000 < int(m.group(1).replace(",", "")) < 5000

            # At the end the provider's usage replaces the local count.
            cost = (500 * MINI_IN + 5000 * MINI_OUT) / 1_000_000
            assert w.status.tokens_label.text() == (
                f"Last turn: 500 in · 5,000 out · {format_usd(cost)}"
            )
            assert not ticker.active and ticker.output_tokens == 5000
            assert finished[0].usage.output_tokens == 5000


# ---------------------------------------------------------------- the cost panel
def _seed_history(db: Path, now: float) -> None:
    """Earlier days' requests (another process wrote them: the CLI, an earlier session)."""
    ledger = Ledger(db)
    try:
        for days_ago, model, cost, purpose in (
            (1, "gpt-4o-mini", 0.25, "chat"),
            (1, "gpt-4o-mini", 0.05, "tool_round"),
            (3, "claude-haiku-4-5", 1.10, "chat"),
            (12, "gpt-4o-mini", 0.40, "chat"),
            (29, "my-finetune", None, "chat"),
            (40, "gpt-4o-mini", 9.99, "chat"),  # outside the chart's 30 days
        ):
            provider = "anthropic" if model.startswith("claude") else "openai"
            ledger.record(
                LedgerEntry(
                    provider,
                    model,
                    1000,
                    200,
                    cost_usd=cost,
                    purpose=purpose,
                    ts=now - days_ago * 86400,
                )
            )
    finally:
        ledger.close()


async def test_cost_panel_figures_match_parley_costs_json(
    qtbot: Any, parley_home: Path, tmp_path: Path
) -> None:
    now = time.time()
    _seed_history(parley_home / "data" / "parley.sqlite3", now)
    with FakeLLMServer() as srv:
        srv.enqueue(
            Text("One.", input_tokens=12_000, output_tokens=3_000),
            Text("Two.", input_tokens=20_000, output_tokens=1_000, cached_input_tokens=8_000),
        )
        async with WindowHarness(
            qtbot, server=srv, settings=openai_settings(srv), secrets=_secrets()
        ) as h:
            w = h.w
            assert w.money is not None
            await w.wait_startup()
            await h.send_and_wait("first")
            await h.send_and_wait("second")
            await h.until(lambda: w.status.cost_label.text() != "Chat cost: $0.00")

            # The status strip's cost opens the panel.
            QTest.mouseClick(w.status.cost_label, Qt.MouseButton.LeftButton)
            panel = w.money.panel
            assert panel is not None and w.money.panel_visible()
            await h.until(lambda: panel.figures is not None, what="figures")
            f = panel.figures
            assert f is not None

            today = local_day(now)
            month_start = today[:8] + "01"
            month = await _costs_json(parley_home, "--by", "model", "--since", month_start)
            day = await _costs_json(parley_home, "--since", today, "--until", today)
            purposes = await _costs_json(parley_home, "--by", "purpose", "--since", month_start)
            start = (dt.date.fromisoformat(today) - dt.timedelta(days=29)).isoformat()
            days = await _costs_json(parley_home, "--by", "day", "--since", start)
            conv = await asyncio.to_thread(h.s.ledger.conversation, w.conversation_id or 0)

            assert panel.month_card.value.text() == _money_json(month["totals"])
            assert panel.today_card.value.text() == _money_json(day["totals"])
            assert panel.conversation_card.value.text() == _money_json(conv.to_json())
            assert w.status.cost_label.text() == f"Chat cost: {format_usd(conv.cost_usd)}"
            expected_rows = [
                [
                    r["model"],
                    f"{r['requests']:,}",
                    f"{r['input_tokens']:,} / {r['output_tokens']:,}",
                    _money_json(r),
                ]
                for r in month["rows"]
            ]
            assert panel.model_rows() == expected_rows
            names = {"chat": "Chat answers", "tool_round": "Tool rounds"}
            assert panel.purpose_rows() == [
                [names[r["purpose"]], f"{r['requests']:,}", _money_json(r)]
                for r in purposes["rows"]
            ]
            by_day = {r["day"]: r for r in days["rows"]}
            chart = panel.chart.days()
            assert len(chart) == 30 and chart[-1][0] == today
            for d, cost, unknown in chart:
                row = by_day.get(d)
                assert cost == (row["cost_usd"] or 0.0 if row else 0.0), d
                assert unknown == (row["unknown"] if row else 0), d
            assert 9.99 not in [c for _d, c, _u in chart]
            # this message: the last answer
            last = await asyncio.to_thread(h.s.ledger.message, f.message_id or 0)
            assert panel.message_card.value.text() == format_usd(last.cost_usd)
            assert "8,000 cached" in panel.message_card.detail.text()

            # Ctrl+Shift+C hides and shows it.
            w.activateWindow()
            ctrl_shift = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier
            QTest.keyClick(w.composer.edit, Qt.Key.Key_C, ctrl_shift)
            await h.until(lambda: not w.money.panel_visible(), what="hidden")
            QTest.keyClick(w.composer.edit, Qt.Key.Key_C, ctrl_shift)
            await h.until(lambda: w.money.panel_visible(), what="shown again")

            # Export the month as CSV through the file dialog: the same rows as the CLI's.
            QTest.mouseClick(panel.export_button, Qt.MouseButton.LeftButton)
            dialog = await h.until(lambda: w.money.export_dialog, what="file dialog")
            out = tmp_path / "exported.csv"
            dialog.selectFile(str(out))
            dialog.accept()
            await h.until(lambda: out.exists() and "Exported" in panel.status_label.text())
            cli = await asyncio.to_thread(
                parley, parley_home, "costs", "--csv", "--since", month_start, "--until", today
            )
            assert out.read_bytes().decode("utf-8") == cli.stdout
            assert panel.status_label.text().startswith(
                f"Exported {len(cli.stdout.splitlines()) - 1:,} requests to "
            )


class _UrlRecorder(QObject):
    """Receives ``file:`` URLs instead of the desktop (``QDesktopServices.setUrlHandler``)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[QUrl] = []

    @Slot(QUrl)
    def open(self, url: QUrl) -> None:
        self.urls.append(url)


async def test_unknown_price_is_unknown_with_a_button_to_models_toml(
    qtbot: Any, parley_home: Path
) -> None:
    with FakeLLMServer() as srv:
        srv.enqueue(Text("Tuned.", input_tokens=900, output_tokens=100))
        settings = openai_settings(srv, model="my-finetune")
        async with WindowHarness(qtbot, server=srv, settings=settings, secrets=_secrets()) as h:
            w = h.w
            assert w.money is not None
            await w.wait_startup()
            assert w.picker.current() == ("openai", "my-finetune")
            w.composer.set_text("hello tuned model")
            bar = w.money.estimate_bar
            await h.until(lambda: bar.figures is not None and not bar.figures.draft_empty)
            assert bar.label.text().endswith("· price unknown")
            await h.send_and_wait("hello tuned model")
            await h.until(lambda: w.status.cost_label.text() == "Chat cost: unknown")

            panel = w.show_costs()
            assert panel is not None
            await h.until(lambda: panel.figures is not None and panel.unknown_box.isVisible())
            assert panel.month_card.value.text() == "unknown"
            assert panel.conversation_card.value.text() == "unknown"
            assert panel.model_rows()[0][0] == "my-finetune"
            assert panel.model_rows()[0][3] == "unknown"
            assert "my-finetune" in panel.unknown_label.text()
            assert "$0.00" not in panel.month_card.value.text()

            recorder = _UrlRecorder()
            QDesktopServices.setUrlHandler("file", recorder, "open")
            try:
                models = parley_home / "config" / "models.toml"
                assert not models.exists()
                QTest.mouseClick(panel.prices_button, Qt.MouseButton.LeftButton)
                await h.until(lambda: recorder.urls, what="models.toml opened")
                assert Path(recorder.urls[0].toLocalFile()) == models
                text = models.read_text()
                assert '# [models."my-finetune"]' in text and '# provider = "openai"' in text
                assert "Created" in panel.status_label.text()
                # An existing file is opened as it is, never rewritten.
                models.write_text("# mine\n")
                QTest.mouseClick(panel.prices_button, Qt.MouseButton.LeftButton)
                await h.until(lambda: len(recorder.urls) == 2)
                assert models.read_text() == "# mine\n"
            finally:
                QDesktopServices.unsetUrlHandler("file")


# ---------------------------------------------------------------- budgets
async def test_budget_notice_at_80_percent_and_confirmation_at_100(qtbot: Any) -> None:
    with FakeLLMServer() as srv:
        # gpt-4o-mini input: $0.15 per 1M. 56,667 tokens ≈ $0.0085 (85 % of $0.01).
        srv.enqueue(
            Text("One.", input_tokens=56_667, output_tokens=0),
            Text("Two.", input_tokens=10_000, output_tokens=0),
            Text("Three.", input_tokens=10, output_tokens=1),
            Text("Four.", input_tokens=10, output_tokens=1),
        )
        async with WindowHarness(
            qtbot, server=srv, settings=openai_settings(srv), secrets=_secrets()
        ) as h:
            w = h.w
            assert w.money is not None
            await w.wait_startup()
            # The limit is set in Settings ▸ Spending (off by default).
            dialog = w.open_settings()
            assert dialog is not None
            page = dialog.spending
            assert page.daily.value() is None and page.monthly.value() is None
            page.daily.enabled.setChecked(True)
            page.daily.amount.setValue(0.01)
            assert dialog.apply()
            dialog.reject()
            assert h.s.settings.current.budget.daily_usd == 0.01

            await h.send_and_wait("first")
            await h.until(lambda: "85%" in w.notice.text(), what="the 80 % notice")
            assert w.notice.property("kind") == "warning"
            assert "of your $0.01 daily budget" in w.notice.text()

            await h.send_and_wait("second")
            await h.until(lambda: "reaches your $0.01 daily budget" in w.notice.text())
            sent = len(chat_requests(srv))

            # At 100 %: a question, the draft untouched, nothing sent until it is answered.
            questions: list[QMessageBox] = []
            w.money.budget.sig_question_shown.connect(questions.append)
            h.type_and_send("third")
            box = await h.until(lambda: questions and questions[-1], what="the question")
            assert box.isVisible()  # open(), not exec(): the loop keeps running
            assert "You have spent $0.01 today" in box.text()
            assert w.composer.text() == "third" and not w.is_busy()
            keep = next(b for b in box.buttons() if b.text() == "Don't send")
            QTest.mouseClick(keep, Qt.MouseButton.LeftButton)
            await h.until(lambda: "Not sent" in w.notice.text())
            assert w.composer.text() == "third"  # the draft is kept
            assert len(chat_requests(srv)) == sent and not w.is_busy()

            QTest.keyClick(w.composer.edit, Qt.Key.Key_Return)
            box = await h.until(lambda: len(questions) == 2 and questions[-1])
            send = next(b for b in box.buttons() if b.text() == "Send anyway")
            QTest.mouseClick(send, Qt.MouseButton.LeftButton)
            await h.until(lambda: len(chat_requests(srv)) == sent + 1, what="sent")
            await h.until(lambda: not w.is_busy())
            assert h.texts()[-1] == ("assistant", "Three.")
            assert await asyncio.to_thread(h.s.ledger.budget_confirmed, local_day())

            # Confirmed today: not asked again.
            await h.send_and_wait("fourth")
            assert len(questions) == 2
            assert h.texts()[-1] == ("assistant", "Four.")


# ---------------------------------------------------------------- response cache
async def test_an_answer_from_the_cache_is_marked_and_costs_nothing(qtbot: Any) -> None:
    with FakeLLMServer() as srv:
        srv.enqueue(Text("Four.", input_tokens=100, output_tokens=10))
        settings = openai_settings(srv, temperature=0.0)
        async with WindowHarness(qtbot, server=srv, settings=settings, secrets=_secrets()) as h:
            w = h.w
            await w.wait_startup()
            await h.send_and_wait("What is 2+2?")
            assert not [f for f in h.items()[-1].footer if f.kind == "cache"]
            first = w.conversation_id
            w.new_chat()
            await h.send_and_wait("What is 2+2?")  # the same request: answered from the cache
            assert len(chat_requests(srv)) == 1
            item = h.items()[-1]
            assert item.text == "Four."
            marks = [f.text for f in item.footer if f.kind == "cache"]
            assert marks and marks[0].startswith("from cache · $0.00")
            assert w.status.tokens_label.text().endswith("· $0.00")
            cid = w.conversation_id
            assert cid != first
            # Stored: the mark is still there when the chat is opened again.
            w.new_chat()
            await w.open_conversation(cid)
            assert [f.kind for f in h.items()[-1].footer] == ["cache"]
            row = await asyncio.to_thread(h.s.ledger.conversation, cid)
            assert row.cost_usd == 0.0 and row.cache_hits == 1 and row.saved_usd > 0


# ---------------------------------------------------------------- threads
async def test_money_never_touches_the_database_on_the_gui_thread(qtbot: Any) -> None:
    with FakeLLMServer() as srv:
        srv.enqueue(
            Text("Expensive.", input_tokens=100_000, output_tokens=0),
            Text("Again.", input_tokens=10, output_tokens=1),
        )
        async with WindowHarness(
            qtbot, server=srv, settings=openai_settings(srv), secrets=_secrets()
        ) as h:
            w = h.w
            assert w.money is not None
            await w.wait_startup()
            seen: list[tuple[str, str]] = []

            def trace(statement: str) -> None:
                seen.append((threading.current_thread().name, statement))

            conns = (h.s.ledger.conn, h.s.conversations.conn)
            settings = h.s.settings.current
            for c in conns:
                c.set_trace_callback(trace)
            try:
                h.s.settings.update(
                    settings.model_copy(
                        update={"budget": settings.budget.model_copy(update={"daily_usd": 0.01})}
                    ),
                    save=False,
                )
                panel = w.money.show_panel()
                w.composer.set_text("typing a question " * 50)
                await h.until(lambda: (f := w.money.estimate_bar.figures) and not f.draft_empty)
                await h.send_and_wait("expensive question")
                await h.until(lambda: panel.figures is not None and panel.figures.today.requests)
                questions: list[QMessageBox] = []
                w.money.budget.sig_question_shown.connect(questions.append)
                h.type_and_send("over the budget")
                box = await h.until(lambda: questions and questions[-1])
                QTest.mouseClick(
                    next(b for b in box.buttons() if b.text() == "Send anyway"),
                    Qt.MouseButton.LeftButton,
                )
                await h.until(lambda: len(chat_requests(srv)) == 2)
                await h.until(lambda: not w.is_busy())
                await w.wait_startup()
            finally:
                for c in conns:
                    c.set_trace_callback(None)
            gui = threading.main_thread().name
            assert [s for t, s in seen if t == gui] == []
            writes = [
                (t, s)
                for t, s in seen
                if s.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE", "REPLACE"))
            ]
            assert writes and {t for t, _ in writes} == {"parley-db_0"}, writes
            assert any("budget_confirmations" in s for _t, s in writes)


def test_spending_page_keeps_a_limit_exact_unless_it_is_edited(qtbot: Any) -> None:
    from parley.core.settings import BudgetSettings, Settings
    from parley.ui.settings.spending import SpendingPage

    page = SpendingPage(Settings(budget=BudgetSettings(daily_usd=0.005)))
    qtbot.addWidget(page)
    assert page.values()["budget"] == {"daily_usd": 0.005, "monthly_usd": None}
    assert page.values()["caching"] == {"prompt_cache": True, "response_cache": True}
    page.daily.amount.setValue(2.5)
    page.monthly.enabled.setChecked(True)
    assert page.values()["budget"] == {"daily_usd": 2.5, "monthly_usd": 20.0}
    page.daily.enabled.setChecked(False)
    page.response_cache.setChecked(False)
    assert page.values()["budget"]["daily_usd"] is None
    assert page.values()["caching"]["response_cache"] is False
