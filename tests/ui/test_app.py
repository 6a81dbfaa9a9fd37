"""App start and quit, the error presenter, and the window's import boundary.

``amain`` runs here in-process on the test's qasync loop (window first, core after the first
paint, graceful quit that saves a running stream); ``python -m parley`` runs in subprocesses
for the first-paint marker and a SIGTERM quit.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication

from parley.core.errors import RateLimited, StorageError
from parley.core.paths import Paths, default_paths
from parley.core.secrets import MemorySecretStore, Secrets
from parley.core.services import Services, build_services
from parley.core.settings import save_settings
from parley.core.store.conversations import ConversationStore
from parley.ui.app import FIRST_PAINT_MARK, SMOKE_ANSWER_MARK, amain
from parley.ui.errors import ErrorDialog, ErrorPresenter, report_for
from parley.ui.main_window import MainWindow
from parley.ui.tasks import TaskSet
from tests.fakes.script import Text
from tests.fakes.server import FakeLLMServer
from tests.ui.harness import (
    chat_requests,
    local_settings,
    until,
)

REPO = Path(__file__).resolve().parents[2]


def _factory(server: FakeLLMServer, seen: dict[str, object]):  # type: ignore[no-untyped-def]
    def build(paths: Paths) -> Services:
        # Runs after the first paint: the window must already have painted.
        windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow)]
        seen["painted_before_core"] = bool(windows) and all(w.has_painted() for w in windows)
        services = build_services(
            paths,
            local_settings(server),
            Secrets(MemorySecretStore(), environ={}),
            environ={},
            stream_worker=True,  # as the window's own build_services call
        )
        seen["services"] = services
        return services

    return build


async def test_amain_paints_first_binds_and_quits_saving_the_stream(qtbot) -> None:
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    seen: dict[str, object] = {}
    ready: list[MainWindow] = []
    with FakeLLMServer() as srv:
        srv.enqueue(Text("word " * 500, chunk_chars=5, delay=0.01))
        task = asyncio.ensure_future(
            amain(app, services_factory=_factory(srv, seen), window_ready=ready.append)
        )
        window = await until(lambda: ready and ready[0], what="window ready")
        qtbot.addWidget(window)
        assert seen["painted_before_core"] is True
        assert window.is_bound()
        window.composer.set_text("a long story please")
        window.composer.submit()
        await until(
            lambda: (
                window.view is not None
                and window.view.model().rowCount() == 2
                and len(window.view.model().items()[1].text) > 20
            ),
            what="streaming",
        )
        cid = window.conversation_id
        window.close()  # the person closes the window mid-answer
        code = await asyncio.wait_for(task, 10)
        assert code == 0
        assert not window.isVisible()
        services = seen["services"]
        assert isinstance(services, Services)
        # The partial answer was saved as cancelled, then the database was closed.
        store = ConversationStore(services.paths.db_file)
        try:
            last = store.branch(cid)[-1]
        finally:
            store.close()
        assert last.status == "cancelled"
        assert last.content.startswith("word word")
        with pytest.raises(Exception, match="closed"):
            services.conversations.conn.execute("SELECT 1")
        assert len(chat_requests(srv)) == 1
    log_file = default_paths().log_dir / "parley.log"
    assert "window ready" in log_file.read_text()


async def test_amain_startup_failure_is_shown_and_the_window_stays(qtbot) -> None:
    app = QApplication.instance()
    assert isinstance(app, QApplication)

    def broken(_paths: Paths) -> Services:
        raise StorageError("Parley's database is damaged (test).")

    holder: list[MainWindow] = []
    task = asyncio.ensure_future(amain(app, services_factory=broken))
    window = await until(
        lambda: next(
            (
                w
                for w in QApplication.topLevelWidgets()
                if isinstance(w, MainWindow)
                and w.isVisible()
                and "damaged" in w.failed_label.text()
            ),
            None,
        ),
        what="failure shown",
    )
    holder.append(window)
    qtbot.addWidget(window)
    assert not window.is_bound()
    assert "Parley's database is damaged (test)." in window.failed_label.text()
    dialogs = [d for d in QApplication.topLevelWidgets() if isinstance(d, ErrorDialog)]
    assert any("damaged" in d.report.summary for d in dialogs if d.isVisible())
    for d in dialogs:
        d.close()
    window.sig_quit_requested.emit()
    assert await asyncio.wait_for(task, 10) == 0


# ---------------------------------------------------------------- error presenter
class _Emitter(QObject):
    sig_go = Signal()


async def test_presenter_shows_slot_and_task_errors_and_keeps_running(qtbot) -> None:
    presenter = ErrorPresenter()
    presenter.install(asyncio.get_running_loop())
    parent = MainWindow(tasks=TaskSet())
    qtbot.addWidget(parent)
    presenter.set_window(parent)
    try:
        emitter = _Emitter()

        def boom() -> None:
            raise ValueError("bad value in a slot")

        emitter.sig_go.connect(boom)
        emitter.sig_go.emit()  # PySide routes the slot's exception to sys.excepthook
        dialog = await until(lambda: presenter.dialogs() and presenter.dialogs()[0])
        assert dialog.report.summary == "Something went wrong: ValueError: bad value in a slot"
        assert "Traceback" in dialog.report.details and "boom" in dialog.report.details
        assert not dialog.isModal()
        dialog.copy_button.click()
        assert "bad value in a slot" in QGuiApplication.clipboard().text()
        assert "Traceback" in QGuiApplication.clipboard().text()

        emitter.sig_go.emit()  # the same error again: counted, not a second dialog
        assert len(presenter.dialogs()) == 1
        assert "(×2)" in dialog.message.text()

        async def failing() -> None:
            raise RateLimited(retry_after=3)

        tasks = TaskSet()
        tasks.spawn(failing(), name="failing-task")
        await until(lambda: len(presenter.dialogs()) == 2, what="task error shown")
        summaries = sorted(d.report.summary for d in presenter.dialogs())
        assert "The provider is rate limiting requests. Try again in 3 s." in summaries
        # still running: the loop keeps serving timers
        fired = asyncio.Event()
        QTimer.singleShot(0, fired.set)
        await asyncio.wait_for(fired.wait(), 2)
    finally:
        for d in presenter.dialogs():
            d.close()
        presenter.uninstall()


async def test_errors_before_the_window_are_held_until_it_exists(qtbot) -> None:
    presenter = ErrorPresenter()
    presenter.show_exception(StorageError("held back"))
    assert presenter.dialogs() == []
    window = MainWindow(tasks=TaskSet())
    qtbot.addWidget(window)
    presenter.set_window(window)
    try:
        assert [d.report.summary for d in presenter.dialogs()] == ["held back"]
    finally:
        for d in presenter.dialogs():
            d.close()


def test_report_for_parley_error_uses_its_user_message() -> None:
    try:
        raise RateLimited(retry_after=2)
    except RateLimited as exc:
        report = report_for(exc, "sending")
    assert report.summary == "The provider is rate limiting requests. Try again in 2 s."
    assert report.details.startswith("sending")


async def test_task_set_keeps_references_and_cancels_on_quit() -> None:
    tasks = TaskSet()
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def forever() -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            await asyncio.sleep(0)  # cleanup that awaits, like saving a partial answer
            cancelled.set()
            raise

    tasks.spawn(forever(), name="forever")
    await started.wait()
    assert len(tasks.running) == 1
    await tasks.cancel_all(timeout=2)
    assert cancelled.is_set()
    assert tasks.running == frozenset()


# ---------------------------------------------------------------- subprocesses
def _env(home: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(PARLEY_HOME=str(home), QT_QPA_PLATFORM="offscreen", **extra)
    env.pop("PARLEY_FIRST_PAINT_EXIT", None)
    env.update(extra)
    return env


def test_python_m_parley_reports_first_paint(tmp_path: Path) -> None:
    t0 = time.time()
    proc = subprocess.run(
        [sys.executable, "-m", "parley"],
        env=_env(tmp_path / "home", PARLEY_FIRST_PAINT_EXIT="1"),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    mark = [line for line in proc.stdout.splitlines() if line.startswith(FIRST_PAINT_MARK)]
    assert mark, proc.stdout
    painted_at = float(mark[0].split()[1])
    assert t0 < painted_at < time.time()


@pytest.mark.slow
def test_sigterm_quits_gracefully(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = _env(home)
    with FakeLLMServer() as srv:
        paths = default_paths({"PARLEY_HOME": str(home)})
        paths.ensure()
        save_settings(local_settings(srv), paths.settings_file)
        log_file = paths.log_dir / "parley.log"
        with subprocess.Popen(
            [sys.executable, "-m", "parley"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        ) as proc:
            try:
                deadline = time.monotonic() + 60
                while not (log_file.exists() and "window ready" in log_file.read_text()):
                    assert proc.poll() is None, proc.communicate()[1]
                    assert time.monotonic() < deadline, "the window never became ready"
                    time.sleep(0.05)
                proc.send_signal(signal.SIGTERM)
                _, err = proc.communicate(timeout=20)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.communicate()
        assert proc.returncode == 0, err
        assert "quitting" in log_file.read_text()
        assert (paths.config_dir / "window.ini").exists()  # geometry remembered


@pytest.mark.slow
def test_the_app_streams_an_answer_through_its_worker_process(tmp_path: Path) -> None:
    # The whole app as a person starts it: window, core, the stream worker started after
    # the first paint, a question sent through the composer (PARLEY_SMOKE_ASK, also used
    # on the frozen bundle by packaging/build.py).
    home = tmp_path / "home"
    with FakeLLMServer() as srv:
        srv.enqueue(Text("An answer from **the worker** process.", chunk_chars=4))
        paths = default_paths({"PARLEY_HOME": str(home)})
        paths.ensure()
        save_settings(local_settings(srv), paths.settings_file)
        proc = subprocess.run(
            [sys.executable, "-m", "parley"],
            env=_env(home, PARLEY_SMOKE_ASK="Who answers?"),
            capture_output=True,
            text=True,
            timeout=120,
            cwd=REPO,
        )
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(SMOKE_ANSWER_MARK + " ")]
    assert lines, (proc.stdout, proc.stderr)
    report = json.loads(lines[0].split(" ", 1)[1])
    assert report["status"] == "complete"
    assert report["text"] == "An answer from **the worker** process."
    assert report["worker_ready"] and report["worker_streams"] == 1
    assert report["worker_pid"] not in (None, report["app_pid"])
    stored = ConversationStore(paths.db_file)
    try:
        conv = stored.list()[0]
        assert [m.content for m in stored.branch(conv.id)][-2:] == [
            "Who answers?",
            "An answer from **the worker** process.",
        ]
    finally:
        stored.close()


def test_the_window_does_not_import_the_sdks_or_chroma() -> None:
    code = (
        "import sys\n"
        "import parley.ui.app, parley.ui.main_window, parley.ui.controllers\n"
        "import parley.ui.settings.dialog, parley.ui.onboarding, parley.ui.message_actions\n"
        "bad = [m for m in ('openai', 'anthropic', 'chromadb') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=60)


def test_first_paint_path_imports_no_core_heavyweights() -> None:
    # What runs before the first paint: the app module and the window shell.
    code = (
        "import sys\n"
        "import parley.ui.app\n"
        "heavy = [m for m in ('pydantic', 'parley.core.services', 'parley.ui.chat.view',"
        " 'markdown_it', 'pygments', 'tiktoken') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=60)
