"""One window per user and data folder (issue 14 item 7): the handshake between processes.

A second ``parley`` on the same ``PARLEY_HOME`` asks the running window to come forward over
a local socket and exits 0; ``parley ask`` keeps working beside the window; another
``PARLEY_HOME`` is another window; a window that crashed leaves nothing that blocks the next.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PySide6.QtWidgets import QWidget

from parley.core.paths import default_paths
from parley.core.settings import save_settings
from parley.ui.app import FIRST_PAINT_MARK
from parley.ui.single_instance import LOCK_NAME, SingleInstance, bring_to_front, server_name
from tests.fakes.server import FakeLLMServer
from tests.ui.harness import local_settings

REPO = Path(__file__).resolve().parents[2]


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_SMOKE")}
    env.pop("PARLEY_FIRST_PAINT_EXIT", None)
    env.update(PARLEY_HOME=str(home), QT_QPA_PLATFORM="offscreen", **extra)
    return env


def _parley(home: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "parley", *args],
        env=_env(home, **extra),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        check=False,
    )


def test_server_name_is_per_user_and_data_folder(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    assert server_name(a, "ann") == server_name(a, "ann")
    assert server_name(a, "ann") != server_name(b, "ann")
    assert server_name(a, "ann") != server_name(a, "bob")
    # Short enough for a Unix socket path under any temp folder.
    assert len(server_name(a, "ann")) < 40


def test_a_second_launch_brings_the_running_window_forward(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    home = Path(os.environ["PARLEY_HOME"])
    data = default_paths().data_dir
    data.mkdir(parents=True)
    first = SingleInstance(data)
    assert first.acquire()
    window = QWidget()
    qtbot.addWidget(window)
    window.hide()
    first.sig_activation_requested.connect(lambda: bring_to_front(window))
    try:
        # A second SingleInstance on the same folder (as a second process would see it).
        assert not SingleInstance(data).acquire()
        with qtbot.waitSignal(first.sig_activation_requested, timeout=60_000):
            proc = subprocess.Popen(
                [sys.executable, "-m", "parley"],
                env=_env(home),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=REPO,
            )
        out, err = proc.communicate(timeout=60)
    finally:
        first.release()
    assert proc.returncode == 0, err
    assert "already open" in err and out == ""
    assert window.isVisible()
    assert not (data / LOCK_NAME).exists()  # released: the next launch is the first again


def test_a_launch_gives_up_cleanly_when_the_window_does_not_answer(tmp_path: Path) -> None:
    # The lock is held by a live process that never answers (a hung window).
    home = tmp_path / "home"
    data = default_paths({"PARLEY_HOME": str(home)}).data_dir
    data.mkdir(parents=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from PySide6.QtCore import QLockFile\n"
            f"lock = QLockFile({str(data / LOCK_NAME)!r}); assert lock.tryLock(0)\n"
            "print('locked', flush=True); time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        r = _parley(home)
    finally:
        holder.kill()
        holder.communicate()
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "already running" in lines[0] and "does not answer" in lines[0]


@pytest.mark.slow
def test_two_processes_one_window_and_the_command_line_beside_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with FakeLLMServer() as srv:
        paths = default_paths({"PARLEY_HOME": str(home)})
        paths.ensure()
        save_settings(local_settings(srv), paths.settings_file)
        log_file = paths.log_dir / "parley.log"
        first = subprocess.Popen(
            [sys.executable, "-m", "parley"],
            env=_env(home),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        try:
            deadline = time.monotonic() + 90
            while not (log_file.exists() and "window ready" in log_file.read_text()):
                assert first.poll() is None, first.communicate()[1]
                assert time.monotonic() < deadline, "the first window never became ready"
                time.sleep(0.05)

            # parley ask works while the window is open (same database).
            ask = _parley(home, "ask", "--json", "Are you there?")
            assert ask.returncode == 0, ask.stderr
            assert json.loads(ask.stdout)["status"] == "complete"

            # The second launch brings the first window forward and exits 0.
            second = _parley(home)
            assert second.returncode == 0, second.stderr
            assert "already open" in second.stderr
            assert "bringing it forward" in log_file.read_text()

            # Another PARLEY_HOME is another, independent window.
            other = _parley(tmp_path / "other", PARLEY_FIRST_PAINT_EXIT="1")
            assert other.returncode == 0 and FIRST_PAINT_MARK in other.stdout, other.stderr

            # The first window crashes: its lock and socket must not block the next start.
            first.send_signal(signal.SIGKILL)
            first.wait(20)
        finally:
            if first.poll() is None:
                first.kill()
            first.communicate()
        after = _parley(home, PARLEY_FIRST_PAINT_EXIT="1")
        assert after.returncode == 0, after.stderr
        assert FIRST_PAINT_MARK in after.stdout
