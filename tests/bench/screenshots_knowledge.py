"""Screenshots of the knowledge feature: panel while indexing, skipped files, citations + sources.

Run: .venv/bin/python tests/bench/screenshots_knowledge.py  (writes /tmp/parley-shots/knowledge-*)
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path("/work/main")


def make_folder(base: Path) -> Path:
    root = base / "Team notes"
    (root / "meetings").mkdir(parents=True)
    (root / "research").mkdir()
    (root / "q3-plan.md").write_text(
        "# Q3 plan\n\nWe ship the garden planner in September, after a beta in August.\n\n"
        "## Budget\n\nThe budget for the third quarter is 40,000 euros, of which 12,000 go to "
        "user research.\n\n## Risks\n\nThe sync service may not be ready; the fallback is "
        "export to CSV.\n"
    )
    (root / "research" / "tomatoes.txt").write_text(
        "Growing notes\n\nTomatoes need full sun, at least six hours a day, and deep watering "
        "twice a week rather than a little every day.\n"
    )
    for i in range(36):
        (
            root / "meetings" / f"2026-{(i % 12) + 1:02d}-{(i % 27) + 1:02d}-standup-{i}.md"
        ).write_text(
            f"# Stand-up {i}\n\n"
            + "\n\n".join(
                f"Item {j}: the team discussed topic {i}-{j} at length. "
                + " ".join(f"word{i}x{j}x{k}" for k in range(60))
                for j in range(3)
            )
        )
    (root / "research" / "survey-raw.txt").write_bytes(b"\x00\x01\x02binary" * 400)
    (root / "research" / "export.csv").write_bytes(b"\xff\xfe\x00\x00" * 10)
    (root / "huge-log.txt").write_text("log line\n" * 250_000)  # > 1 MB limit below
    (root / "empty.md").write_text("")
    return root


async def shoot(out: Path, theme: str) -> list[str]:
    from PySide6.QtWidgets import QApplication
    from tests.fakes.script import Text
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
    written: list[str] = []

    def save(widget, state):
        path = out / f"knowledge-{state}-{theme}.png"
        widget.grab().save(str(path))
        written.append(str(path))

    async def settle(s=0.3):
        end = time.monotonic() + s
        while time.monotonic() < end:
            await asyncio.sleep(0.02)

    async def until(cond, timeout=240.0):
        end = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > end:
                raise TimeoutError("state not reached")
            await asyncio.sleep(0.02)

    base = Path(tempfile.mkdtemp(prefix="kshots-"))
    os.environ["PARLEY_HOME"] = str(base / "home")
    folder = make_folder(base)
    with FakeLLMServer() as srv:
        settings = Settings(
            default_provider="openai-compatible",
            providers={
                "openai-compatible": ProviderSettings(
                    base_url=srv.openai_base_url, default_model="llama3.2:3b"
                )
            },
            onboarded=True,
            theme=theme,
            knowledge=KnowledgeSettings(max_file_mb=1),
        )
        services = build_services(
            default_paths(),
            settings,
            Secrets(MemorySecretStore(), environ={}),
            environ={},
            stream_worker=True,
        )
        w = MainWindow(tasks=TaskSet(), presenter=ErrorPresenter(show_dialogs=False))
        w.resize(1280, 760)
        w.show()
        bind_services(w, services)
        apply_theme(app, theme)
        w.set_citation_opener(lambda req: None)
        panel = w.show_documents()
        w.handle_dropped_paths([str(folder)])
        k = w.knowledge
        await until(
            lambda: (
                panel.progress.isVisible()
                and "of" in panel.progress_detail.text()
                and panel.progress_bar.value() > 5
            )
        )
        await settle(0.2)
        save(w, "indexing")
        await until(lambda: not k.is_busy())
        await until(lambda: panel.skipped_model.rowCount() > 0)
        await settle(0.5)
        save(w, "skipped")
        # grounded answer
        w.composer.knowledge_switch.setChecked(True)
        srv.enqueue(
            Text(
                "The Q3 budget is **40,000 euros**, of which 12,000 go to user research [1]. "
                "The planner ships in September after an August beta [1].\n\n"
                "For the tomatoes: full sun for at least six hours a day, and deep watering twice "
                "a week [2]. I found nothing about a greenhouse [9].",
                chunk_chars=30,
            )
        )
        w.composer.set_text("What is the Q3 budget, and how should I water the tomatoes?")
        w.composer.submit()
        await until(lambda: not w.is_busy() and w.view.model().rowCount() == 2)
        w.show_sources()
        await settle(0.6)
        save(w, "citations")
        await w.shutdown()
        await services.aclose()
        w.close_now()
    return written


def child(out: Path, theme: str) -> int:
    import qasync

    from parley.ui.app import create_application

    app = create_application([])
    with asyncio.Runner(loop_factory=lambda: qasync.QEventLoop(app)) as runner:
        for p in runner.run(shoot(out, theme)):
            print(p)
    return 0


if __name__ == "__main__":
    out = Path("/tmp/parley-shots")
    out.mkdir(parents=True, exist_ok=True)
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        sys.path.insert(0, str(REPO))
        sys.exit(child(out, sys.argv[2]))
    for theme in ("light", "dark"):
        env = dict(
            os.environ,
            QT_QPA_PLATFORM="offscreen",
            QT_API="pyside6",
            PARLEY_ASSETS=os.environ.get("PARLEY_ASSETS", str(REPO.parent / "shared" / "assets")),
            ANONYMIZED_TELEMETRY="False",
            TIKTOKEN_CACHE_DIR=os.path.join(
                os.environ.get("PARLEY_ASSETS", str(REPO.parent / "shared" / "assets")), "tiktoken"
            ),
        )
        proc = subprocess.run(
            [sys.executable, __file__, "--child", theme],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=600,
        )
        sys.stdout.write(proc.stdout)
        if proc.returncode:
            sys.stderr.write(proc.stderr[-5000:])
            sys.exit(proc.returncode)
