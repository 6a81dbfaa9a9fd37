"""``parley index`` / ``parley search`` handlers (through argparse, as the lead wires them)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from parley.cli_knowledge import add_commands
from parley.core.paths import Paths


def _run(paths: Paths, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="parley")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return int(args.func(args, paths))


def test_index_search_status_remove(
    paths: Paths, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "docs"
    root.mkdir()
    (root / "tea.md").write_text("# Tea\n\nGreen tea is steeped at 80 degrees for two minutes.\n")
    (root / "junk.txt").write_bytes(b"\x00\x01" * 500)

    assert _run(paths, "index", str(root), "--json") == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {
        "files_indexed",
        "files_unchanged",
        "files_removed",
        "files_skipped",
        "files_capped",
        "chunks",
        "embedded",
        "seconds",
        "timings",
    }
    assert out["files_indexed"] == 1 and out["chunks"] >= 1
    assert out["embedded"] == out["chunks"] and out["files_capped"] == []
    assert {"load_parse_s", "chunk_s", "onnx_s", "chroma_s", "sqlite_s"} <= set(out["timings"])
    assert (
        out["files_skipped"][0]["path"].endswith("junk.txt") and out["files_skipped"][0]["reason"]
    )

    assert _run(paths, "search", "how hot should the water be for green tea", "--json") == 0
    res = json.loads(capsys.readouterr().out)["results"]
    assert res[0]["path"] == str(root / "tea.md")
    assert res[0]["location"] == {
        "line_start": res[0]["location"]["line_start"],
        "line_end": res[0]["location"]["line_end"],
    }
    assert res[0]["heading"] == "Tea" and "80 degrees" in res[0]["snippet"]
    assert res[0]["score"] > 0

    assert _run(paths, "search", "tea", "-k", "1", "--folder", str(tmp_path / "x"), "--json") == 0
    assert json.loads(capsys.readouterr().out) == {"results": []}

    assert _run(paths, "index", "--status", "--json") == 0
    status = json.loads(capsys.readouterr().out)
    assert status["roots"][0]["path"] == str(root) and status["roots"][0]["files"] == 1

    assert _run(paths, "index", "--remove", str(root), "--json") == 0
    assert json.loads(capsys.readouterr().out)["chunks"] == out["chunks"]


def test_errors_are_one_line_exit_2(
    paths: Paths, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(paths, "index", str(tmp_path / "missing")) == 2
    err = capsys.readouterr().err
    assert err.startswith("parley: no such folder") and err.count("\n") == 1
    assert _run(paths, "index") == 2
    assert _run(paths, "index", "--remove", str(tmp_path)) == 2
    assert "Not in the knowledge base" in capsys.readouterr().err
    assert _run(paths, "search", "x", "-k", "0") == 2


def test_wired_into_parley_command(paths: Paths) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "parley", "search", "anything", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"results": []}
