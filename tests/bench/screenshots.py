"""Render the window's main states to PNG for a visual check.

Run: ``.venv/bin/python tests/bench/screenshots.py [--out /tmp/parley-shots]``

Each theme (light, dark) and scale (100 %, 200 % via ``QT_SCALE_FACTOR=2``) runs in its own
subprocess (the scale factor is read once at start), offscreen, with the real window bound to
real services and the fake server on loopback, at two window sizes (800×600 and 1600×1000).
States: the welcome page (a local server found, the address field), the empty chat, a long
answer with code and a table, an error with Retry, the rate-limit countdown, tool calls, the
Documents panel (over the chat at 800 px, docked at 1600 px), the settings dialog, the
keyboard shortcuts sheet and the About box. Files: ``<state>-<theme>-<scale>x-<size>.png``.
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


async def _shoot(out: Path, theme: str, scale: str) -> list[str]:
    written: list[str] = []
    for width, height in SIZES:
        written += await _shoot_size(out, theme, scale, width, height)
    return written


async def _shoot_size(out: Path, theme: str, scale: str, width: int, height: int) -> list[str]:
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

    def window_for(settings: Settings, secrets: Secrets, ports: dict[str, int]) -> MainWindow:
        home = Path(tempfile.mkdtemp(prefix="parley-shots-"))
        os.environ["PARLEY_HOME"] = str(home)
        services = build_services(default_paths(), settings, secrets, environ={})
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
        await until(
            lambda: not w.is_busy() and w.view is not None and w.view.model().rowCount() == 2
        )
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


def _child(out: Path, theme: str, scale: str) -> int:
    import qasync
    from PySide6.QtWidgets import QApplication

    from parley.ui.app import create_application

    app = create_application([])
    assert isinstance(app, QApplication)
    with asyncio.Runner(loop_factory=lambda: qasync.QEventLoop(app)) as runner:
        for path in runner.run(_shoot(out, theme, scale)):
            print(path)
    return 0


def main() -> int:
    """Render every state for every theme and scale."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/tmp/parley-shots")
    parser.add_argument("--child", nargs=2, metavar=("THEME", "SCALE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.child:
        sys.path.insert(0, str(_REPO))
        return _child(out, *args.child)
    for theme in ("light", "dark"):
        for scale in ("1", "2"):
            env = dict(os.environ, QT_QPA_PLATFORM="offscreen", QT_SCALE_FACTOR=scale)
            env.setdefault("QT_API", "pyside6")
            proc = subprocess.run(
                [sys.executable, __file__, "--out", str(out), "--child", theme, scale],
                env=env,
                cwd=_REPO,
                capture_output=True,
                text=True,
                timeout=300,
            )
            if proc.returncode != 0:
                sys.stderr.write(proc.stderr)
                return proc.returncode
            sys.stdout.write(proc.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
