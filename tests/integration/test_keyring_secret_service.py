"""The real OS keyring: GNOME Keyring's Secret Service on a private D-Bus session.

``parley keys set`` stores the key there, ``keys status`` finds it, ``ask`` uses it (the
fake server sees it in the Authorization header), and it is in no file of the data dir.
Skipped, with the reason, where dbus-run-session or gnome-keyring-daemon is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.script import Text

REPO = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not (shutil.which("dbus-run-session") and shutil.which("gnome-keyring-daemon")),
        reason="needs dbus-run-session and gnome-keyring-daemon "
        "(apt-get install dbus gnome-keyring)",
    ),
]

SCRIPT = r"""
set -e
mkdir -p "$HOME/.cache" "$HOME/.local/share/keyrings"
eval "$(printf pw | gnome-keyring-daemon --unlock --components=secrets)"
export GNOME_KEYRING_CONTROL
P="$PY -m parley"
printf '%s' "$CANARY" | $P keys set openai
$P keys status --json > "$OUT/status.json"
$P ask --json "hello keyring" > "$OUT/ask.json"
$P keys clear openai > "$OUT/clear.txt"
$P keys status --json > "$OUT/status2.json"
"""


def test_keys_round_trip_through_secret_service(
    tmp_path: Path, parley_home: Path, fake_llm: Any
) -> None:
    canary = "sk-SECRETSERVICE-0123456789abcdef"
    home = tmp_path / "home"
    out = tmp_path / "out"
    home.mkdir()
    out.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith(("_API_KEY", "_BASE_URL")) and not k.startswith("DBUS_")
    }
    env.update(
        HOME=str(home),
        PARLEY_HOME=str(parley_home),
        PYTHONPATH=str(REPO),
        PY=sys.executable,
        OUT=str(out),
        CANARY=canary,
        OPENAI_BASE_URL=fake_llm.openai_base_url,
    )
    fake_llm.enqueue(Text("answered with the keyring's key"))
    proc = subprocess.run(
        ["dbus-run-session", "--", "bash", "-c", SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    status = {r["provider"]: r for r in json.loads((out / "status.json").read_text())["providers"]}
    assert status["openai"]["source"] == "keyring"
    assert "SecretService" in json.loads((out / "status.json").read_text())["keyring"]
    answer = json.loads((out / "ask.json").read_text())
    assert answer["text"] == "answered with the keyring's key"
    assert fake_llm.requests[-1].headers["authorization"] == f"Bearer {canary}"
    assert "key removed" in (out / "clear.txt").read_text()
    status2 = {
        r["provider"]: r for r in json.loads((out / "status2.json").read_text())["providers"]
    }
    assert status2["openai"]["has_key"] is False
    assert canary not in proc.stdout + proc.stderr
    for f in parley_home.rglob("*"):
        if f.is_file():
            assert canary.encode() not in f.read_bytes(), f
