"""Run a snippet as an unprivileged user, so permission tests mean something as root.

Root (CAP_DAC_OVERRIDE) reads a ``chmod 000`` file anyway, and CI runs as root: without this
the permission-denied cases would only ever be skipped there. ``setpriv`` drops to
``nobody`` with no capabilities; the snippet's result comes back as JSON on stdout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest


def denies_reads() -> bool:
    """True when this process cannot read what ``chmod 000`` protects."""
    return os.geteuid() != 0 if hasattr(os, "geteuid") else True


def shared_tmp() -> Path:
    """A temporary folder ``nobody`` can reach (pytest's tmp_path is private to root)."""
    d = Path(tempfile.mkdtemp(prefix="parley-unpriv-"))
    d.chmod(0o755)
    return d


def run_as_nobody(code: str) -> Any:
    """Run ``code`` (which prints one JSON value last) as ``nobody``; return that value.

    Skips the calling test when privileges cannot be dropped here, or when ``nobody``
    cannot run this interpreter with Parley importable (a private checkout).
    """
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot test a denied read")
    argv = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c"]

    def run(snippet: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*argv, snippet], capture_output=True, text=True, cwd="/", timeout=60)

    probe = run("import parley.core")
    if probe.returncode != 0:
        pytest.skip(f"nobody cannot run Parley from here: {probe.stderr.strip()[-200:]}")
    proc = run(code)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])
