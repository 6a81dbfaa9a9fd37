"""What stops the window from starting ends in one clear line and exit 2, never a traceback.

Issue 16's edge cases: no display, a display that cannot be reached, and a HOME whose
config folder cannot be created. ``python -m parley`` runs as a person starts it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from parley.core.paths import Paths
from parley.ui.app import display_problem, folders_problem

REPO = Path(__file__).resolve().parents[2]


def _run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY", "PARLEY_HOME")
    }
    return subprocess.run(
        [sys.executable, "-m", "parley"],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=False,
    )


def _one_line(r: subprocess.CompletedProcess[str]) -> str:
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2, r.stderr
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""
    return lines[0]


pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="display rules are Linux's (DISPLAY)"
)


def test_no_display_is_one_line(tmp_path: Path) -> None:
    line = _one_line(_run({"PARLEY_HOME": str(tmp_path / "home")}))
    assert "needs a graphical desktop session" in line and "parley ask" in line
    assert not (tmp_path / "home").exists()  # nothing was created


def test_an_unreachable_display_is_one_line(tmp_path: Path) -> None:
    # Qt aborts the process when its platform plugin cannot connect; Parley says why first.
    line = _one_line(_run({"PARLEY_HOME": str(tmp_path / "home"), "DISPLAY": ":93"}))
    assert line.startswith("parley: the window cannot start: Qt could not load")
    assert "parley --self-test" in line


def test_a_config_folder_that_cannot_be_created_is_one_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / ".config").write_text("a file where the config folder should be")
    env = {
        "HOME": str(home),
        "QT_QPA_PLATFORM": "offscreen",
        "XDG_CONFIG_HOME": "",
        "XDG_DATA_HOME": "",
    }
    line = _one_line(_run(env))
    assert f"cannot create or write its folder {home / '.config' / 'parley'}" in line
    assert "PARLEY_HOME" in line


def test_display_problem_rules() -> None:
    assert display_problem({}) is not None
    assert display_problem({"DISPLAY": ":0"}) is None
    assert display_problem({"WAYLAND_DISPLAY": "wayland-0"}) is None
    assert display_problem({"QT_QPA_PLATFORM": "offscreen"}) is None


def test_folders_problem_names_the_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    ok = Paths(tmp_path / "c", tmp_path / "d", tmp_path / "k", tmp_path / "l", None)
    assert folders_problem(ok) is None and (tmp_path / "d").is_dir()
    bad = Paths(tmp_path / "c", blocker / "data", tmp_path / "k", tmp_path / "l", None)
    problem = folders_problem(bad)
    assert problem is not None and str(blocker / "data") in problem
