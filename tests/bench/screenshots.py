"""Render the window's main states to PNG for a visual check.

Run: ``.venv/bin/python tests/bench/screenshots.py [--out /tmp/parley-shots]``

Each theme (light, dark) and scale (100 %, 200 % via ``QT_SCALE_FACTOR=2``) runs in its own
subprocess (the scale factor is read once at start), offscreen, with the real window bound to
real services and the fake server on loopback, at two window sizes (800×600 and 1600×1000).
States: the welcome page (a local server found, the address field), the empty chat, a long
answer with code and a table, an error with Retry, the rate-limit countdown, tool calls, the
Documents panel (over the chat at 800 px, docked at 1600 px), the settings dialog, the
keyboard shortcuts sheet and the About box. Money (issue 13, shot once, in the 1600×1000 run;
those windows set their own sizes): the composer's estimate and context meter
(``meter-normal``, ``meter-amber``, ``meter-red``: the window with a small context window from
models.toml, and ``composer-*`` crops of the composer), the cost panel (``costs``,
``costs-panel``), the over-budget question (``budget-question``) and Settings ▸ Spending
(``settings-spending``). Files: ``<state>-<theme>-<scale>x-<size>.png``.
``--only money`` renders just the money states.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]
_ASSETS = _REPO.parent / "shared" / "assets"
if "PARLEY_ASSETS" not in os.environ and _ASSETS.is_dir():
    os.environ["PARLEY_ASSETS"] = str(_ASSETS)  # the embedding model for the tools state

ANSWER = """## Sorting a list of records

Python's `sorted()` takes a **key function**; for several fields, return a tuple:

```python
from dataclasses import dataclass


@dataclass
class Person:
    name: str
    age: int


people = [Person("Ada", 36), Person("Alan", 41), Person("Grace", 36)]
for p in sorted(people, key=lambda p: (p.age, p.name)):
    print(f"{p.name:<6} {p.age}")
```

| Approach | Stable | Cost |
|---|:---:|---:|
| `sorted(key=...)` | yes | O(n log n) |
| `list.sort()` | yes | in place |
| `heapq.nsmallest` | no | O(n log k) |

> Tip: `operator.attrgetter("age", "name")` is a little faster than a lambda.

See the [sorting HOWTO](https://docs.python.org/3/howto/sorting.html) for more.
"""


SIZES = ((800, 600), (1600, 1000))
"""Window sizes every state is shot at (logical pixels)."""


async def _shoot(out: Path, theme: str, scale: str, only: str = "all") -> list[str]:
    written: list[str] = []
    for width, height in SIZES:
        money = only in ("all", "money") and (width, height) == SIZES[-1]
        if only == "money" and not money:
            continue
        written += await _shoot_size(out, theme, scale, width, height, only, money=money)
    return written


async def _shoot_size(
    out: Path, theme: str, scale: str, width: int, height: int, only: str, *, money: bool
) -> list[str]:
    from PySide6.QtWidgets import QApplication
    from tests.fakes.script import Call, HTTPError, Text, ToolCalls
    from tests.fakes.server import FakeLLMServer

    from parley.core.paths import default_paths
    from parley.core.secrets import MemorySecretStore, Secrets
    from parley.core.services import build_services
    from parley.core.settings import KnowledgeSettings, ProviderSettings, Settings
    from parley.ui.app import bind_services
    from parley.ui.errors import ErrorPresenter
    from parley.ui.main_window import MainWindow
    from parley.ui.tasks import TaskSet
    from parley.ui.theme import apply_theme

    app = QApplication.instance()
    assert isinstance(app, QApplication)
    written: list[str] = []

    def save(widget: object, state: str) -> None:
        path = out / f"{state}-{theme}-{scale}x-{width}x{height}.png"
        widget.grab().save(str(path))  # type: ignore[attr-defined]
        written.append(str(path))

    async def settle(seconds: float = 0.3) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            await asyncio.sleep(0.02)

    async def until(cond, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
        end = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > end:
                raise TimeoutError("screenshot state not reached")
            await asyncio.sleep(0.02)

    def window_for(
        settings: Settings, secrets: Secrets, ports: dict[str, int], models_toml: str = ""
    ) -> MainWindow:
        home = Path(tempfile.mkdtemp(prefix="parley-shots-"))
        os.environ["PARLEY_HOME"] = str(home)
        if models_toml:
            (home / "config").mkdir(parents=True, exist_ok=True)
            (home / "config" / "models.toml").write_text(models_toml)
        services = build_services(
            default_paths(), settings, secrets, environ={}, stream_worker=True
        )
        w = MainWindow(
            tasks=TaskSet(), presenter=ErrorPresenter(show_dialogs=False), probe_ports=ports
        )
        w.resize(width, height)
        w.show()
        bind_services(w, services)
        apply_theme(app, theme)  # type: ignore[arg-type]
        w._services_for_shots = services  # type: ignore[attr-defined]
        return w

    async def close(w: MainWindow) -> None:
        await w.shutdown()
        await w._services_for_shots.aclose()  # type: ignore[attr-defined]
        w.close_now()

    with FakeLLMServer() as srv:
        srv.models = ["llama3.2:3b", "qwen2.5:7b-instruct"]
        notes = Path(tempfile.mkdtemp(prefix="parley-shot-notes-"))
        (notes / "budget.md").write_text("# Budget\n\nThe Q3 budget is 1.2M, approved in March.\n")
        local = Settings(
            knowledge=KnowledgeSettings(folders=[str(notes)]),
            default_provider="openai-compatible",
            providers={
                "openai-compatible": ProviderSettings(
                    base_url=srv.openai_base_url, default_model="llama3.2:3b"
                )
            },
            onboarded=True,
            theme=theme,  # type: ignore[arg-type]
        )
        secrets = Secrets(MemorySecretStore(), environ={})
        secrets.save("openai", "sk-screenshot-0000000000", session_only=True)
        if money:
            priced = Settings(
                default_provider="openai",
                default_model="gpt-4o-mini",
                providers={"openai": ProviderSettings(base_url=srv.openai_base_url)},
                onboarded=True,
                theme=theme,  # type: ignore[arg-type]
            )
            await _money_states(srv, priced, secrets, window_for, close, save, settle, until)
        if only == "money":
            return written

        # onboarding
        w = window_for(
            Settings(theme=theme),
            Secrets(MemorySecretStore(), environ={}),  # type: ignore[arg-type]
            {"Ollama": srv.port, "LM Studio": 1},
        )
        assert w.onboarding is not None
        await until(lambda: bool(w.onboarding and w.onboarding.servers))
        await settle()
        save(w, "onboarding")
        await close(w)

        # empty chat with some history in the sidebar
        w = window_for(local, secrets, {})
        store = w._services_for_shots.conversations  # type: ignore[attr-defined]
        now = time.time()
        for title, days in (
            ("Trip to Lisbon: packing list", 0),
            ("Regex for ISO dates", 0),
            ("Explain Rust lifetimes", 1),
            ("Quarterly report outline", 3),
            ("Birthday poem for Sam", 20),
        ):
            c = store.create(title)
            store.add_message(c.id, "user", title)
            with store.conn:
                store.conn.execute(
                    "UPDATE conversations SET updated_at=? WHERE id=?", (now - days * 86400, c.id)
                )
        w.refresh_sidebar(sync=True)
        await settle()
        save(w, "empty")

        # long answer with code and a table
        srv.enqueue(Text(ANSWER, chunk_chars=40, input_tokens=1200, output_tokens=420))
        w.composer.set_text("How do I sort a list of records by age, then name?")
        w.composer.submit()
        await until(
            lambda: not w.is_busy() and w.view is not None and w.view.model().rowCount() == 2
        )
        await settle(0.5)
        save(w, "answer")

        # error with Retry
        srv.enqueue(*[HTTPError(503, retry_after=0)] * 3)
        w.composer.set_text("And with pandas?")
        w.composer.submit()
        await until(
            lambda: not w.is_busy() and w.view is not None and w.view.model().rowCount() == 4
        )
        await settle(0.5)
        save(w, "error")

        # rate-limit countdown
        srv.enqueue(HTTPError(429, retry_after=8))  # stopped during the wait
        w.composer.set_text("Try once more")
        w.composer.submit()
        await until(lambda: "Retrying in" in w.notice.text())
        await settle(0.4)
        save(w, "countdown")
        w.stop()
        await until(lambda: not w.is_busy())

        # tool calls: one result, one file read, one refusal
        w.new_chat()
        w.composer.tools_switch.setChecked(True)
        srv.enqueue(
            ToolCalls(
                [
                    Call("calculator", '{"expression": "2.1/8.9"}'),
                    Call("read_file", '{"path": "budget.md"}'),
                    Call("read_file", '{"path": "/etc/passwd"}'),
                ],
                text="Let me work that out.",
            ),
            Text(
                "Paris has about **0.236** times London's population, and your notes put "
                "the Q3 budget at **1.2M**. I could not open `/etc/passwd`: it is outside "
                "the folders you added."
            ),
        )
        w.composer.set_text("Paris (2.1M) divided by London (8.9M)? And the Q3 budget?")
        w.composer.submit()

        def answered() -> bool:  # item 8: the notes folder allowed once, anything else denied
            from PySide6.QtWidgets import QMessageBox

            for box in w.findChildren(QMessageBox):
                if box.objectName() == "folder-approval" and box.isVisible():
                    want = "Allow once" if str(notes) in box.text() else "Deny"
                    next(b for b in box.buttons() if b.text() == want).click()
            return not w.is_busy() and w.view is not None and w.view.model().rowCount() == 2

        await until(answered)
        await settle(0.5)
        save(w, "tools")

        # the Documents panel: over the chat in a narrow window, docked in a wide one
        w.show_documents()
        await until(lambda: w.docks is not None and w.docks.knowledge_dock is not None)
        await settle(0.6)
        save(w, "panel")
        if w.docks is not None and w.docks.knowledge_dock is not None:
            w.docks.knowledge_dock.close()
        await settle(0.2)

        # settings
        dialog = w.open_settings("openai")
        assert dialog is not None
        dialog.resize(min(900, width - 40), min(560, height - 40))
        await settle()
        save(dialog, "settings")
        dialog.reject()

        # help: the shortcuts sheet and the About box
        sheet = w.show_shortcuts()
        await settle()
        save(sheet, "shortcuts")
        sheet.close()
        about = w.show_about()
        await about.loaded  # type: ignore[attr-defined]
        await settle()
        save(about, "about")
        about.close()
        await close(w)
    return written


PROSE = (
    "Saturn's rings are mostly water ice, from dust-sized grains to boulders as big as a "
    "house. They span about 280,000 km but are often only ten metres thick. "
)


async def _money_states(  # type: ignore[no-untyped-def]
    srv, priced, secrets, window_for, close, save, settle, until
) -> None:
    """The composer's estimate (normal, amber, red), the cost panel, budgets (issue 13)."""
    from tests.fakes.script import Text

    from parley.core.store.ledger import Ledger, LedgerEntry

    # A 4,000-token window keeping 500 for the answer: amber from 2,800, red above 3,500.
    w = window_for(
        priced, secrets, {}, '[models."gpt-4o-mini"]\ncontext_window = 4000\nmax_output = 500\n'
    )
    srv.enqueue(
        Text(
            "Saturn has **146** known moons. The largest, *Titan*, is bigger than Mercury.",
            input_tokens=640,
            output_tokens=120,
        )
    )
    w.composer.set_text("How many moons does Saturn have?")
    w.composer.submit()
    await until(lambda: not w.is_busy() and w.view is not None and w.view.model().rowCount() == 2)
    bar = w.money.estimate_bar
    for state, text in (
        ("normal", "And what are its rings made of?"),
        ("amber", "Summarise this for me:\n\n" + PROSE * 80),
        ("red", "Summarise this for me:\n\n" + PROSE * 100),
    ):
        w.composer.set_text(text)
        w.composer.edit.moveCursor(w.composer.edit.textCursor().MoveOperation.Start)
        want = {"normal": "ok", "amber": "warn", "red": "over"}[state]
        await until(lambda want=want: bar.figures is not None and bar.figures.level == want)
        await settle(0.4)
        save(w, f"meter-{state}")
        save(w.composer, f"composer-{state}")
    w.composer.set_text("")

    # The cost panel over a month of requests (another session wrote the older ones).
    db = w._services_for_shots.paths.db_file
    ledger = Ledger(db)
    now = time.time()
    try:
        for i in range(29, 0, -1):
            if i % 6 == 5:
                continue  # a day without requests
            scale = 1 + (i % 4) * 0.6
            for model, provider, cost in (
                ("gpt-4o-mini", "openai", 0.018 * scale),
                ("claude-sonnet-4-6", "anthropic", 0.061 * scale if i % 3 else 0.0),
                ("gpt-4.1", "openai", 0.035 * (i % 5)),
            ):
                ledger.record(
                    LedgerEntry(
                        provider,
                        model,
                        12_000,
                        900,
                        cached_input_tokens=4_000 if provider == "anthropic" else 0,
                        cost_usd=cost,
                        purpose="tool_round" if i % 4 == 0 else "chat",
                        saved_usd=0.004 if provider == "anthropic" else None,
                        ts=now - i * 86400,
                    )
                )
        ledger.record(
            LedgerEntry("openai", "text-embedding-3-small", 80_000, 0, cost_usd=0.0016,
                        purpose="embedding", ts=now - 3600)
        )  # fmt: skip
        ledger.record(
            LedgerEntry("openai", "my-finetune", 3_000, 400, cost_usd=None, ts=now - 7200)
        )
    finally:
        ledger.close()
    w.resize(1320, 820)
    panel = w.money.show_panel()
    await until(lambda: panel.figures is not None and panel.figures.month.requests > 0)
    await settle(0.6)
    save(w, "costs")
    assert w.money.dock is not None
    save(w.money.dock, "costs-panel")
    w.money.dock.hide()

    # Over the budget: the question before sending.
    settings = w._services_for_shots.settings
    cur = settings.current
    settings.update(
        cur.model_copy(update={"budget": cur.budget.model_copy(update={"daily_usd": 0.001})}),
        save=False,
    )
    w.resize(1100, 720)
    w.composer.set_text("One more question about Titan's atmosphere")
    w.composer.submit()
    await until(lambda: w.money.budget.question is not None)
    await settle(0.5)
    box = w.money.budget.question
    save(box, "budget-question")
    box.reject()
    await until(lambda: w.money.budget.question is None)

    dialog = w.open_settings()
    dialog.tabs.setCurrentWidget(dialog.spending)
    dialog.resize(900, 560)
    await settle()
    save(dialog, "settings-spending")
    dialog.reject()
    await close(w)


def _child(out: Path, theme: str, scale: str, only: str = "all") -> int:
    import qasync
    from PySide6.QtWidgets import QApplication

    from parley.ui.app import create_application

    app = create_application([])
    assert isinstance(app, QApplication)
    with asyncio.Runner(loop_factory=lambda: qasync.QEventLoop(app)) as runner:
        for path in runner.run(_shoot(out, theme, scale, only)):
            print(path)
    return 0


def main() -> int:
    """Render every state for every theme and scale."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/tmp/parley-shots")
    parser.add_argument("--child", nargs=2, metavar=("THEME", "SCALE"), help=argparse.SUPPRESS)
    parser.add_argument("--only", choices=("all", "money"), default="all")
    parser.add_argument("--scales", default="1,2", help="comma-separated: 1, 2")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.child:
        sys.path.insert(0, str(_REPO))
        return _child(out, *args.child, args.only)
    for theme in ("light", "dark"):
        for scale in args.scales.split(","):
            env = dict(os.environ, QT_QPA_PLATFORM="offscreen", QT_SCALE_FACTOR=scale)
            env.setdefault("QT_API", "pyside6")
            proc = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--out",
                    str(out),
                    "--child",
                    theme,
                    scale,
                    "--only",
                    args.only,
                ],
                env=env,
                cwd=_REPO,
                capture_output=True,
                text=True,
                timeout=1200,
            )
            if proc.returncode != 0:
                sys.stderr.write(proc.stderr)
                return proc.returncode
            sys.stdout.write(proc.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
