"""App start: QApplication, the qasync loop, the window first, the core right after.

``main()`` creates the QApplication, then runs :func:`amain` on a qasync loop through
``asyncio.Runner(loop_factory=...)`` (Python 3.11's ``asyncio.run`` has no ``loop_factory``;
STYLE.md §3). :func:`amain` is the composition root of the window:

1. install the :class:`~parley.ui.errors.ErrorPresenter` (excepthook + loop handler),
2. show the window shell and wait for its first paint (nothing slow is imported before),
3. build the core (``build_services``, with streams in a worker process) in a worker thread,
   so the SDK/pydantic imports do not freeze the painted window, and bind the window to it,
4. wait for quit (window closed, Ctrl+Q, SIGINT/SIGTERM, or the session ending), then stop
   running streams (their partial answers are saved), cancel background work and close the
   SDK clients and the database.

``PARLEY_FIRST_PAINT_EXIT=1`` prints ``PARLEY_FIRST_PAINT <unix time>`` on stdout at the first
paint and quits: the first-paint benchmark (``tests/bench/bench_ui.py``) uses it.
``PARLEY_SMOKE_ASK=<question>`` sends that question through the window once the stream worker
is up, prints ``PARLEY_SMOKE_ANSWER <json>`` and quits: the packaged app's smoke test
(``packaging/build.py``) uses it to check that the frozen window streams through its worker.

Before any window, :func:`main` checks what would otherwise end in a Qt abort or a traceback
(issue 16): no display (one line on stderr, exit 2), Parley's folders cannot be created (the
same line, and a dialog when there is a display), and another window already open on the
same data folder (:mod:`parley.ui.single_instance`: it is brought forward, exit 0).
``parley --self-test`` runs :func:`self_test_qt` in a child process for its Qt check.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import logging.handlers
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import qasync
from PySide6.QtCore import QMessageLogContext, Qt, QtMsgType, qInstallMessageHandler
from PySide6.QtWidgets import QApplication, QMessageBox

from parley import __version__
from parley.core.errors import ParleyError
from parley.ui.errors import ErrorPresenter
from parley.ui.main_window import MainWindow
from parley.ui.qt_guard import guard_none_refcount
from parley.ui.single_instance import SingleInstance, bring_to_front
from parley.ui.tasks import TaskSet
from parley.ui.theme import app_icon, apply_theme

if TYPE_CHECKING:
    from parley.core.paths import Paths
    from parley.core.services import Services

log = logging.getLogger("parley")

FIRST_PAINT_ENV = "PARLEY_FIRST_PAINT_EXIT"
FIRST_PAINT_MARK = "PARLEY_FIRST_PAINT"
SMOKE_ASK_ENV = "PARLEY_SMOKE_ASK"
SMOKE_ANSWER_MARK = "PARLEY_SMOKE_ANSWER"

EXIT_CANNOT_START = 2
"""Exit code when the window cannot start (no display, unwritable folders, a stuck window)."""

HEADLESS_PLATFORMS = ("offscreen", "minimal")
"""Qt platforms with no screen a person could see a dialog on."""


def _setup_logging(paths: Paths) -> logging.Handler | None:
    """Log to ``<log_dir>/parley.log`` (rotated); never keys (core never logs them).

    Returns:
        The handler added (removed again when the window quits), or None if one exists.
    """
    root = logging.getLogger("parley")
    if any(getattr(h, "_parley", False) for h in root.handlers):
        return None
    try:
        paths.log_dir.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.handlers.RotatingFileHandler(
            paths.log_dir / "parley.log", maxBytes=1_000_000, backupCount=3, encoding="utf-8"
        )
    except OSError:
        handler = logging.StreamHandler(sys.stderr)
    handler._parley = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
    return handler


def bind_services(window: MainWindow, services: Services) -> None:
    """Give the window the collaborators it uses (never the Services object itself).

    The documents feature is the core's (``services.knowledge``): it opens the index when
    the window first asks, so nothing heavy runs here.
    """
    from parley.ui.costs.feature import MoneyHooks

    window.bind(
        settings=services.settings,
        secrets=services.secrets,
        catalog=services.catalog,
        conversations=services.conversations,
        providers=services.providers,
        chat=services.chat,
        turn_options=services.turn_options,
        paths=services.paths,
        knowledge=services.knowledge,
        money=MoneyHooks(services.ledger, services.budget, services.meter),
    )
    services.folder_asker.handler = window.ask_folder_approval


def _warm_imports() -> None:
    """Import the slow modules in a worker thread (pure Python; no Qt objects are made)."""
    import parley.core.services
    import parley.ui.chat.view
    import parley.ui.controllers
    import parley.ui.file_actions
    import parley.ui.knowledge.controller
    import parley.ui.message_actions
    import parley.ui.side_panels
    import parley.ui.window_session  # noqa: F401


async def amain(
    app: QApplication,
    *,
    paths: Paths | None = None,
    services_factory: Callable[[Paths], Services] | None = None,
    probe_ports: Mapping[str, int] | None = None,
    window_ready: Callable[[MainWindow], Any] | None = None,
    instance: SingleInstance | None = None,
) -> int:
    """Run the window until quit; returns the exit code.

    Args:
        app: The QApplication.
        paths: Parley's folders (default: from the environment).
        services_factory: Builds the core (default: ``build_services`` with a stream
            worker); tests inject one.
        probe_ports: Ports the onboarding panel probes (tests point it at a fake server).
        window_ready: Called with the window once it is bound (tests and benchmarks drive it).
        instance: The single-window lock (:func:`main`); later launches bring this window
            forward through it.
    """
    from parley.core.paths import default_paths

    paths = paths or default_paths()
    log_handler = _setup_logging(paths)
    loop = asyncio.get_running_loop()
    presenter = ErrorPresenter()
    presenter.install(loop)
    tasks = TaskSet()
    quit_event = asyncio.Event()
    window = MainWindow(
        tasks=tasks,
        presenter=presenter,
        probe_ports=probe_ports,
        geometry_file=paths.config_dir / "window.ini",
    )
    presenter.set_window(window)
    on_quit = quit_event.set
    window.sig_quit_requested.connect(on_quit)
    if instance is not None:
        instance.sig_activation_requested.connect(lambda: bring_to_front(window))
    app.aboutToQuit.connect(on_quit)
    _install_signal_handlers(loop, quit_event)
    painted = asyncio.Event()
    window.sig_first_paint.connect(painted.set)
    window.show()

    services: Services | None = None
    try:
        await painted.wait()
        if os.environ.get(FIRST_PAINT_ENV):
            print(f"{FIRST_PAINT_MARK} {time.time():.6f}", flush=True)
            return 0
        try:
            services = await asyncio.to_thread(_build, paths, services_factory)
        except ParleyError as exc:
            presenter.show_exception(exc, context="starting Parley")
            window.fail(exc.user_message)
        else:
            bind_services(window, services)
            log.info("window ready (Parley %s)", __version__)
            tasks.spawn(settle_after_startup(window, services), name="settle")
            if os.environ.get(SMOKE_ASK_ENV):
                question = os.environ[SMOKE_ASK_ENV]
                tasks.spawn(_smoke_ask(window, services, question, quit_event), name="smoke")
            if window_ready is not None:
                window_ready(window)
        await quit_event.wait()
        log.info("quitting")
        return 0
    finally:
        with contextlib.suppress(RuntimeError, TypeError):
            app.aboutToQuit.disconnect(on_quit)
        await _shutdown(window, services, presenter)
        if log_handler is not None:
            logging.getLogger("parley").removeHandler(log_handler)
            log_handler.close()


async def settle_after_startup(window: MainWindow, services: Services | None = None) -> None:
    """Once start-up work is done, start the stream worker and freeze long-lived objects.

    The stream worker (:mod:`parley.core.providers.worker`) is a child process that imports
    an SDK: it starts after the first paint; until it is ready, streams run in-process.

    CPython's full (generation 2) collection walks every tracked object; with Qt, pydantic
    and an SDK imported that is ~130,000 objects and a ~100 ms pause, which showed up as the
    largest stall while streaming (``tests/bench/bench_ui.py``; ``gc.callbacks`` timing).
    ``gc.freeze()`` moves what exists now (modules, classes, the window) out of the
    collector's sight; a full collection then takes ~20 ms. Those objects live until exit
    anyway, so nothing is leaked that would otherwise be reclaimed in practice.
    """
    await window.wait_startup()
    gc.collect()
    gc.freeze()
    worker = services.providers.stream_worker if services is not None else None
    if worker is not None:
        await worker.start()  # seconds in the child (SDK imports); nothing waits for it here


async def _smoke_ask(
    window: MainWindow, services: Services, question: str, quit_event: asyncio.Event
) -> None:
    """``PARLEY_SMOKE_ASK``: one question through the window and its worker, then quit."""
    import json

    try:
        worker = services.providers.stream_worker
        ready = await asyncio.wait_for(worker.start(), 60) if worker is not None else False
        assert window.controller is not None
        finished: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def on_finished(ev: Any) -> None:
            if not finished.done():
                finished.set_result(ev)

        window.controller.sig_turn_finished.connect(on_finished)
        window.composer.set_text(question)
        window.composer.submit()
        ev = await asyncio.wait_for(finished, 60)
        report = {
            "status": ev.status,
            "text": ev.text,
            "worker_ready": ready,
            "worker_pid": worker.pid if worker is not None else None,
            "worker_streams": worker.streams if worker is not None else 0,
            "app_pid": os.getpid(),
        }
        print(f"{SMOKE_ANSWER_MARK} {json.dumps(report)}", flush=True)
    finally:
        quit_event.set()


def _build(paths: Paths, factory: Callable[[Paths], Services] | None) -> Services:
    _warm_imports()
    if factory is not None:
        return factory(paths)
    from parley.core.services import build_services

    # Streams run in a worker process once it has started (settle_after_startup): the SDK's
    # parsing then does not compete with rendering for this thread.
    return build_services(paths, stream_worker=True)


async def _shutdown(
    window: MainWindow, services: Services | None, presenter: ErrorPresenter
) -> None:
    try:
        await window.shutdown()
        if services is not None:
            await services.aclose()
    except Exception:  # quitting must always finish
        log.exception("error while quitting")
    finally:
        window.close_now()
        presenter.uninstall()


def _install_signal_handlers(loop: asyncio.AbstractEventLoop, quit_event: asyncio.Event) -> None:
    """Ctrl+C / SIGTERM quit gracefully (Qt alone would ignore Ctrl+C)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, quit_event.set)
        except (NotImplementedError, RuntimeError, ValueError):
            with contextlib.suppress(ValueError):  # not the main thread
                signal.signal(sig, lambda *_: loop.call_soon_threadsafe(quit_event.set))


def create_application(argv: Sequence[str] | None = None) -> QApplication:
    """The process's QApplication (made once), styled and named."""
    os.environ.setdefault("QT_API", "pyside6")
    existing = QApplication.instance()
    if isinstance(existing, QApplication):
        app = existing
    else:
        QApplication.setHighDpiScaleFactorRoundingPolicy(
            Qt.HighDpiScaleFactorRoundingPolicy.PassThrough
        )
        app = QApplication(list(argv) if argv is not None else sys.argv[:1])
    guard_none_refcount()  # process-wide, before any window (see its docstring)
    app.setApplicationName("Parley")
    app.setApplicationDisplayName("Parley")
    app.setApplicationVersion(__version__)
    app.setOrganizationName("Parley")
    app.setDesktopFileName("parley")
    app.setWindowIcon(app_icon())
    # The window decides when to quit (after saving streams), not Qt's last-window rule.
    app.setQuitOnLastWindowClosed(False)
    apply_theme(app, "system")
    return app


def main(argv: Sequence[str] | None = None) -> int:
    """Start the window; returns the exit code.

    What would otherwise abort inside Qt or print a traceback ends in one clear message
    instead (stderr, and a dialog when a display exists), with exit code 2: no display,
    folders that cannot be created. A second launch on the same data folder brings the
    open window forward and exits 0.
    """
    problem = display_problem(os.environ)
    if problem is not None:
        _say(problem)
        return EXIT_CANNOT_START
    # Qt ends the process (abort) when no platform plugin loads; say why in one line first.
    qInstallMessageHandler(_startup_message_handler)
    try:
        app = create_application(argv)
    finally:
        qInstallMessageHandler(None)
        _startup_messages.clear()

    from parley.core.paths import default_paths

    paths = default_paths()
    problem = folders_problem(paths)
    if problem is not None:
        return startup_error(app, problem)
    instance = SingleInstance(paths.data_dir)
    if not instance.acquire():
        if instance.activate_running():
            _say("Parley is already open: its window was brought forward.")
            return 0
        return startup_error(
            app,
            f"Parley is already running for {paths.data_dir} but its window does not "
            "answer. Close it (or end the stuck process), then start Parley again.",
        )
    try:
        with asyncio.Runner(loop_factory=lambda: qasync.QEventLoop(app)) as runner:
            try:
                return runner.run(amain(app, paths=paths, instance=instance))
            except RuntimeError as exc:
                # Qt quit by itself (the desktop session ended): the Runner's close cancels
                # amain, whose finally block still stops streams and closes the clients.
                log.info("event loop stopped early: %s", exc)
                return 0
            except KeyboardInterrupt:
                return 130
    finally:
        instance.release()


# ---------------------------------------------------------------- start-up problems
def _say(message: str) -> None:
    """One line on stderr (a windowed Windows app has none)."""
    if sys.stderr is not None:
        sys.stderr.write(f"parley: {message}\n")
        sys.stderr.flush()


def display_problem(environ: Mapping[str, str]) -> str | None:
    """Why the window cannot start for lack of a display, or None.

    Only decidable up front on Linux and the BSDs: Qt picks xcb or wayland there, and both
    need ``DISPLAY`` / ``WAYLAND_DISPLAY``. A set but unreachable display is caught by
    :func:`_startup_message_handler` instead.
    """
    if sys.platform in ("win32", "darwin") or environ.get("QT_QPA_PLATFORM"):
        return None
    if environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"):
        return None
    return (
        "the window needs a graphical desktop session (neither DISPLAY nor WAYLAND_DISPLAY "
        "is set). The command line works without one: parley ask, parley --self-test, "
        "parley --help."
    )


_startup_messages: list[str] = []


def _startup_message_handler(mode: QtMsgType, _context: QMessageLogContext, message: str) -> None:
    """Collect Qt's start-up warnings; on its fatal error, say why in one line and exit 2."""
    if mode != QtMsgType.QtFatalMsg:
        _startup_messages.append(message.strip())
        return
    causes = [m for m in _startup_messages if m] or [message.splitlines()[0]]
    # Qt follows "could not connect to display" with generic advice about xcb libraries.
    causes = [m for m in causes if "could not connect to display" in m.lower()] or causes
    _say(
        "the window cannot start: Qt could not load its display plugin ("
        + "; ".join(causes[-3:])
        + "). Run `parley --self-test` for details."
    )
    os._exit(EXIT_CANNOT_START)  # Qt aborts right after this handler returns


def folders_problem(paths: Paths) -> str | None:
    """Why Parley's folders cannot be created or written, or None (they exist now)."""
    import tempfile

    for folder in (paths.config_dir, paths.data_dir, paths.cache_dir, paths.log_dir):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            return (
                f"Parley cannot create or write its folder {folder} ({reason}). Make sure "
                "your home folder can be written, or set PARLEY_HOME to a folder you can write."
            )
    return None


def startup_error(app: QApplication, message: str) -> int:
    """Say why Parley cannot start: stderr, and a dialog when there is a screen to show it on.

    Returns:
        :data:`EXIT_CANNOT_START`.
    """
    _say(message)
    if app.platformName() not in HEADLESS_PLATFORMS:
        QMessageBox.critical(None, "Parley cannot start", message)
    return EXIT_CANNOT_START


# ---------------------------------------------------------------- parley --self-test (Qt part)
def self_test_qt(result_file: str) -> int:
    """The Qt check of ``parley --self-test``, run in a child process (core has no Qt).

    Starts Qt on the platform it would use for the window, renders a widget, loads the
    app icon (SVG), and exercises what the bundle's trimmed ICU data must still provide:
    collation (``QCollator``), locale casing and time zone names. Qt's warnings about
    plugins, libraries and ICU count as problems. Writes
    :func:`parley.core.selftest.qt_probe_report` JSON to ``result_file``.

    Returns:
        0 when the result was written (problems are in it), 1 when Qt could not start.
    """
    from PySide6.QtCore import QCollator, QLocale, QTimeZone, qVersion
    from PySide6.QtGui import QFontDatabase
    from PySide6.QtWidgets import QLabel

    from parley.core.selftest import qt_probe_report

    warnings: list[str] = []

    def collect(mode: QtMsgType, _context: QMessageLogContext, message: str) -> None:
        if mode != QtMsgType.QtDebugMsg and "propagateSizeHints" not in message:
            warnings.append(message.strip())
        if sys.stderr is not None:
            sys.stderr.write(message + "\n")

    qInstallMessageHandler(collect)
    app = create_application([sys.argv[0]])
    problems: list[str] = []
    try:
        label = QLabel("Parley ✓ — Grüße, 你好")
        label.resize(240, 40)
        if label.grab().isNull():
            problems.append("a widget did not render")
        if app_icon().pixmap(64, 64).isNull():
            problems.append("the app icon did not load")
        if not QFontDatabase.families():
            problems.append("no fonts found")
        collator = QCollator(QLocale(QLocale.Language.German, QLocale.Country.Germany))
        words = sorted(["zebra", "Äpfel", "apfel", "Bär"], key=collator.sortKey)
        if words != ["apfel", "Äpfel", "Bär", "zebra"]:
            problems.append(f"ICU collation is wrong: {words}")
        if QLocale(QLocale.Language.Turkish).toUpper("i") != "İ":
            problems.append("ICU locale casing is wrong")
        zone = QTimeZone(b"Europe/Berlin")
        name = zone.displayName(
            QTimeZone.TimeType.StandardTime,
            QTimeZone.NameType.LongName,
            QLocale(QLocale.Language.German, QLocale.Country.Germany),
        )
        if not zone.isValid() or not name or name == "Europe/Berlin":
            problems.append(f"time zone names are missing: {name!r}")
    except Exception as exc:  # report it; the parent turns it into a failed check
        problems.append(f"{type(exc).__name__}: {exc}")
    # Warnings about what the bundle may lack (a plugin, a library, ICU data) are failures;
    # others (a desktop's own chatter) are shown but do not fail the check.
    serious = ("icu", "collator", "plugin", "library", "cannot load", "could not load")
    problems += [f"Qt warned: {w}" for w in warnings if any(k in w.lower() for k in serious)]
    other = [w for w in warnings if not any(k in w.lower() for k in serious)]
    with open(result_file, "w", encoding="utf-8") as f:
        f.write(qt_probe_report(qVersion(), app.platformName(), problems, {"warnings": other}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
