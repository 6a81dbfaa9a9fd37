"""Benchmark the chat view's rendering; prints one JSON object.

Run: ``QT_QPA_PLATFORM=offscreen .venv/bin/python tests/bench/bench_render.py [--quick]``

Measures (all on the real widgets, offscreen):

- ``engine``: Qt's ``setMarkdown`` (md4c) against markdown-it-py + Pygments → HTML →
  ``setHtml`` for a whole 30,000-token answer, and what one update would cost at the end of
  the answer if the whole text were re-rendered each time (the non-incremental approach).
- ``stream_update``: the cost of one coalesced streaming update (feed, render the tail,
  lay out, paint) over the first and the last 100 updates of that answer (40 code blocks,
  tables, lists): it must stay flat.
- ``open_1000``: ``set_messages`` with 1,000 messages (200 with code), first paint, then
  scrolling through the whole chat page by page; ``open_1000_with_long_answer``: the same
  with the long answer as the last message (it renders only the blocks in view).
- ``heartbeat``: a 5 ms heartbeat timer while synthetic deltas are pushed at full speed
  through ``append_delta`` (and so through the 33 ms coalescing timer), with 1,000 messages of
  history above: the gaps between beats are the stalls a person would feel.
- ``listview_relayout``: why the view is not a ``QListView``: the cost of one row changing
  height in a 1,000-row ``QListView`` with a Python delegate.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QAbstractListModel, QModelIndex, QSize, Qt, QTimer
from PySide6.QtGui import QTextDocument
from PySide6.QtWidgets import QApplication, QListView, QStyledItemDelegate

from parley.ui.chat.markdown import MarkdownRenderer
from parley.ui.chat.model import ChatItem, ChatRole
from parley.ui.chat.view import ChatView, theme_from_palette

WIDTH = 900
HEIGHT = 800


def synthetic_answer(target_tokens: int = 30_000, code_blocks: int = 40, seed: int = 7) -> str:
    """A long answer with headings, paragraphs, lists, tables, quotes, links and code.

    Roughly 4 characters per token; ``code_blocks`` fenced Python blocks spread evenly.
    """
    rnd = random.Random(seed)
    words = (
        "the quick brown fox jumps over a lazy dog while the model streams tokens into "
        "blocks that render once and stay frozen in the layout cache of the widget"
    ).split()

    def sentence(n: int = 14) -> str:
        return " ".join(rnd.choice(words) for _ in range(n)).capitalize() + "."

    target_chars = target_tokens * 4
    per_code = target_chars // code_blocks
    parts: list[str] = []
    size = 0
    codes = 0
    k = 0
    while size < target_chars:
        k += 1
        if codes < code_blocks and size >= codes * per_code:
            codes += 1
            body = "\n".join(
                f"def step_{codes}_{i}(value: int) -> int:\n    return value * {i}  # note {i}"
                for i in range(8)
            )
            parts.append(f"```python\n{body}\n```")
        else:
            kind = k % 5
            if kind == 0:
                parts.append(f"## Section {k}")
            elif kind == 1:
                parts.append("\n".join(f"{i + 1}. {sentence(8)} `x{i}`" for i in range(4)))
            elif kind == 2:
                rows = "\n".join(
                    f"| {rnd.randint(1, 999)} | {sentence(3)} | **v{i}** |" for i in range(5)
                )
                parts.append(f"| n | text | value |\n|---|:-:|--:|\n{rows}")
            elif kind == 3:
                parts.append(f"> {sentence()}\n> {sentence()}")
            else:
                body = " ".join(sentence() for _ in range(4))
                parts.append(f"{body} See [the docs](https://example.com/{k}).")
        size += len(parts[-1]) + 2
    return "\n\n".join(parts) + "\n"


def _deltas(text: str, size: int = 4) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _summary(values: list[float]) -> dict[str, float]:
    return {
        "median_ms": round(statistics.median(values), 3),
        "p95_ms": round(_pct(values, 0.95), 3),
        "max_ms": round(max(values), 3),
    }


def _ms(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


def bench_engine(app: QApplication, answer: str) -> dict[str, object]:
    view = ChatView()
    theme = theme_from_palette(view.palette(), view.font())
    renderer = MarkdownRenderer(theme)

    def qt_markdown() -> None:
        doc = QTextDocument()
        doc.setMarkdown(answer)
        doc.setTextWidth(WIDTH)
        doc.size()

    def ours() -> None:
        for block in renderer.render(answer):
            doc = QTextDocument()
            doc.setHtml(block.html)
            doc.setTextWidth(WIDTH)
            doc.size()

    qt_ms = min(_ms(qt_markdown) for _ in range(3))
    ours_ms = min(_ms(ours) for _ in range(3))
    parse_ms = min(_ms(lambda: renderer.render(answer)) for _ in range(3))
    return {
        "answer_chars": len(answer),
        "qt_setMarkdown_full_ms": round(qt_ms, 1),
        "markdown_it_pygments_full_ms": round(ours_ms, 1),
        "of_which_markdown_to_html_ms": round(parse_ms, 1),
        "note": (
            "full re-render per update at the end of the answer would cost the *_full_ms "
            "figures 30 times a second; the incremental path is stream_update below"
        ),
    }


def bench_stream_update(app: QApplication, answer: str, chunk_tokens: int = 12) -> dict:
    view = ChatView()
    view.resize(WIDTH, HEIGHT)
    view.show()
    app.processEvents()
    view.append(ChatItem("a", ChatRole.ASSISTANT))
    view.begin_stream("a")
    chunk = chunk_tokens * 4
    wall: list[float] = []
    cpu: list[float] = []
    for i in range(0, len(answer), chunk):
        view.append_delta("a", answer[i : i + chunk])
        t0, c0 = time.perf_counter(), time.process_time()
        view.flush()  # what the coalescing timer does: feed, render the tail, lay out
        app.processEvents()  # paint what changed: blits plus the rebuilt strip
        wall.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    view.end_stream("a")
    app.processEvents()
    out = {
        "updates": len(wall),
        "chars_per_update": chunk,
        "wall_first_100": _summary(wall[:100]),
        "wall_last_100": _summary(wall[-100:]),
        "cpu_first_100": _summary(cpu[:100]),
        "cpu_last_100": _summary(cpu[-100:]),
        "cpu_last_over_first_median": round(
            statistics.median(cpu[-100:]) / max(statistics.median(cpu[:100]), 1e-6), 2
        ),
    }
    view.close()
    return out


def history(n: int = 1000, with_code: int = 200, seed: int = 3) -> list[ChatItem]:
    """A conversation of ``n`` messages, ``with_code`` of the answers containing code."""
    rnd = random.Random(seed)
    items: list[ChatItem] = []
    code_every = max(1, (n // 2) // with_code) if with_code else 0
    for i in range(n):
        if i % 2 == 0:
            items.append(ChatItem(f"m{i}", ChatRole.USER, f"Question {i}: how does part {i} work?"))
            continue
        text = " ".join(f"Answer {i} sentence {j} about blocks." for j in range(rnd.randint(3, 12)))
        if code_every and (i // 2) % code_every == 0:
            text += "\n\n```python\n" + "\n".join(f"x_{j} = {j} * 2" for j in range(10)) + "\n```\n"
            text += "\n- one\n- two\n\n| a | b |\n|---|---|\n| 1 | 2 |\n"
        items.append(ChatItem(f"m{i}", ChatRole.ASSISTANT, text))
    return items


def bench_open_1000(app: QApplication) -> dict[str, object]:
    items = history()
    view = ChatView()
    view.resize(WIDTH, HEIGHT)
    view.show()
    app.processEvents()
    canvas = view.canvas()
    t0 = time.perf_counter()
    view.set_messages(items)
    set_ms = (time.perf_counter() - t0) * 1000
    canvas.viewport().repaint()
    open_ms = (time.perf_counter() - t0) * 1000
    rendered_after_open = len(canvas.rendered_message_ids())
    # Scroll from the bottom to the top, a page at a time, painting each step.
    bar = canvas.verticalScrollBar()
    steps: list[float] = []
    while bar.value() > 0:
        t = time.perf_counter()
        bar.setValue(bar.value() - bar.pageStep())
        canvas.viewport().repaint()
        steps.append((time.perf_counter() - t) * 1000)
    out = {
        "messages": len(items),
        "set_messages_ms": round(set_ms, 1),
        "set_messages_and_first_paint_ms": round(open_ms, 1),
        "messages_rendered_after_open": rendered_after_open,
        "scroll_pages": len(steps),
        "scroll_page": _summary(steps),
    }
    view.close()
    return out


def bench_open_long_answer(app: QApplication, answer: str) -> dict[str, object]:
    """Open 1,000 messages whose last one is the long answer (rendered block by block)."""
    items = [*history(999), ChatItem("big", ChatRole.ASSISTANT, answer)]
    view = ChatView()
    view.resize(WIDTH, HEIGHT)
    view.show()
    app.processEvents()
    t0, c0 = time.perf_counter(), time.process_time()
    view.set_messages(items)
    view.canvas().viewport().repaint()
    out = {
        "answer_chars": len(answer),
        "open_wall_ms": round((time.perf_counter() - t0) * 1000, 1),
        "open_cpu_ms": round((time.process_time() - c0) * 1000, 1),
        "blocks_rendered_of_total": view.canvas().block_counts("big"),
    }
    view.close()
    return out


def bench_heartbeat(app: QApplication, answer: str, interval_ms: int = 5) -> dict[str, object]:
    view = ChatView()
    view.resize(WIDTH, HEIGHT)
    view.show()
    view.set_messages(history())
    app.processEvents()
    view.append(ChatItem("live", ChatRole.ASSISTANT))
    view.begin_stream("live")
    deltas = _deltas(answer)
    beats: list[float] = []
    state = {"i": 0}
    done = {"flag": False}

    def beat() -> None:
        beats.append(time.perf_counter())

    def produce() -> None:
        # Full speed: a few deltas per event-loop turn, as a fast local model would deliver.
        i = state["i"]
        for delta in deltas[i : i + 8]:
            view.append_delta("live", delta)
        state["i"] = i + 8
        if state["i"] >= len(deltas):
            producer.stop()
            view.end_stream("live")
            done["flag"] = True

    heartbeat = QTimer()
    heartbeat.setTimerType(Qt.TimerType.PreciseTimer)
    heartbeat.setInterval(interval_ms)
    heartbeat.timeout.connect(beat)
    producer = QTimer()
    producer.setInterval(0)
    producer.timeout.connect(produce)
    renders = {"n": 0}
    canvas = view.canvas()
    canvas._timer.timeout.connect(lambda: renders.__setitem__("n", renders["n"] + 1))
    t0, c0 = time.perf_counter(), time.process_time()
    heartbeat.start()
    producer.start()
    # Until every delta is sent *and* rendered (a backlog drains tick by tick after the end).
    while not done["flag"] or "live" in canvas.active_streams():
        app.processEvents()
    app.processEvents()
    heartbeat.stop()
    elapsed = time.perf_counter() - t0
    cpu_share = (time.process_time() - c0) / elapsed
    gaps = [(b - a) * 1000 for a, b in itertools.pairwise(beats)]
    stalls = [max(0.0, g - interval_ms) for g in gaps]
    view.close()
    baseline = _baseline_stalls(app, elapsed, interval_ms)
    return {
        "history_messages": 1000,
        "deltas": len(deltas),
        "seconds_until_fully_rendered": round(elapsed, 2),
        "process_cpu_share": round(cpu_share, 2),
        "coalesced_renders": renders["n"],
        "renders_per_second": round(renders["n"] / elapsed, 1),
        "heartbeat_interval_ms": interval_ms,
        "stall_p50_ms": round(_pct(stalls, 0.5), 2),
        "stall_p99_ms": round(_pct(stalls, 0.99), 2),
        "stall_max_ms": round(max(stalls), 2),
        "baseline_without_view": baseline,
    }


def _baseline_stalls(app: QApplication, seconds: float, interval_ms: int) -> dict[str, float]:
    """The same heartbeat and producer with no view: the stalls the machine itself causes."""
    beats: list[float] = []
    sink: list[str] = []
    heartbeat = QTimer()
    heartbeat.setTimerType(Qt.TimerType.PreciseTimer)
    heartbeat.setInterval(interval_ms)
    heartbeat.timeout.connect(lambda: beats.append(time.perf_counter()))
    producer = QTimer()
    producer.setInterval(0)
    producer.timeout.connect(lambda: sink.extend(["delta"] * 8))
    end = time.perf_counter() + max(seconds, 0.5)
    heartbeat.start()
    producer.start()
    while time.perf_counter() < end:
        app.processEvents()
    producer.stop()
    heartbeat.stop()
    stalls = [max(0.0, (b - a) * 1000 - interval_ms) for a, b in itertools.pairwise(beats)]
    return {
        "stall_p50_ms": round(_pct(stalls, 0.5), 2),
        "stall_p99_ms": round(_pct(stalls, 0.99), 2),
        "stall_max_ms": round(max(stalls), 2),
    }


class _ListModel(QAbstractListModel):
    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else self.n

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        return str(index.row()) if role == Qt.ItemDataRole.DisplayRole else None


class _Delegate(QStyledItemDelegate):
    def __init__(self) -> None:
        super().__init__()
        self.heights: dict[int, int] = {}

    def sizeHint(self, option: object, index: QModelIndex) -> QSize:
        return QSize(WIDTH, self.heights.get(index.row(), 100))


def bench_listview(app: QApplication, rows: int = 1000) -> dict[str, object]:
    view = QListView()
    model = _ListModel(rows)
    delegate = _Delegate()
    view.setModel(model)
    view.setItemDelegate(delegate)
    view.setVerticalScrollMode(QListView.ScrollMode.ScrollPerPixel)
    view.resize(WIDTH, HEIGHT)
    view.show()
    app.processEvents()
    costs = []
    for k in range(30):
        delegate.heights[rows - 1] = 100 + 10 * k
        t = time.perf_counter()
        delegate.sizeHintChanged.emit(model.index(rows - 1))
        view.doItemsLayout()
        view.scrollToBottom()
        view.viewport().repaint()
        costs.append((time.perf_counter() - t) * 1000)
    view.close()
    return {"rows": rows, "one_row_height_change": _summary(costs)}


def main() -> None:
    quick = "--quick" in sys.argv
    app = QApplication.instance() or QApplication(sys.argv)
    from parley.ui.qt_guard import guard_none_refcount

    guard_none_refcount()  # as ui/app.py does
    answer = synthetic_answer(6_000 if quick else 30_000, 8 if quick else 40)
    results: dict[str, object] = {
        "machine": {"cores": os.cpu_count(), "loadavg_at_start": os.getloadavg()},
        "engine": bench_engine(app, answer),
        "stream_update": bench_stream_update(app, answer),
        "open_1000": bench_open_1000(app),
        "open_1000_with_long_answer": bench_open_long_answer(app, answer),
        "heartbeat": bench_heartbeat(app, answer),
        "listview_relayout": bench_listview(app),
    }
    results["machine"]["loadavg_at_end"] = os.getloadavg()  # type: ignore[index]
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
