"""``parley --self-test``: every check passes on a good installation and fails usefully.

The real parts run: keyring backends set through keyring's own API, tiktoken's files, the
MiniLM model (skipped without the offline assets), Chroma in a temporary folder, SQLite, the
stream worker process talking to a loopback server through the real openai SDK, and Qt in a
child process (``--self-test-qt``). The command line runs in subprocesses as a person runs it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import keyring
import pytest
from keyring.backends import fail, null

from parley.core.assets import MODEL_SUBDIR, TIKTOKEN_ENCODINGS, tiktoken_file
from parley.core.paths import Paths, default_paths
from parley.core.selftest import (
    CHECK_ORDER,
    Check,
    check_database,
    check_embedding,
    check_keyring,
    check_qt,
    check_tiktoken,
    report_text,
)
from parley.core.store.conversations import ConversationStore
from tests.assets import need_minilm
from tests.fakes.keyring_backend import MemoryKeyring, using_keyring

REPO = Path(__file__).resolve().parents[2]


def _paths(tmp_path: Path, assets: Path | None) -> Paths:
    return Paths(
        config_dir=tmp_path / "config",
        data_dir=tmp_path / "data",
        cache_dir=tmp_path / "cache",
        log_dir=tmp_path / "logs",
        assets_dir=assets,
    )


def _tiktoken_only(tmp_path: Path) -> Path:
    """An assets folder with tiktoken's files and no embedding model."""
    shared = need_minilm().assets_dir
    assert shared is not None
    folder = tmp_path / "assets-no-model"
    shutil.copytree(shared / "tiktoken", folder / "tiktoken")
    return folder


def _cli(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TIKTOKEN_", "DISPLAY"))}
    return subprocess.run(
        [sys.executable, "-m", "parley", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env={**clean, "QT_QPA_PLATFORM": "offscreen", **env},
        check=False,
    )


# ---------------------------------------------------------------- the command line
def test_cli_self_test_passes_on_a_complete_installation() -> None:
    need_minilm()
    r = _cli(["--self-test", "--json", "--allow-no-keyring"])
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(r.stdout)
    assert report["ok"] is True
    assert [c["name"] for c in report["checks"]] == list(CHECK_ORDER)
    by = {c["name"]: c for c in report["checks"]}
    assert all(c["ok"] and not c["fix"] for c in report["checks"]), by
    assert "offscreen" in by["qt"]["detail"]
    assert "384 dimensions" in by["embedding"]["detail"]
    assert "streamed an answer" in by["worker"]["detail"]
    assert "no database yet" in by["database"]["detail"]
    # Nothing was created in Parley's folders by checking them.
    assert not any(Path(os.environ["PARLEY_HOME"]).iterdir())


def test_cli_self_test_names_each_failure_and_what_to_do(tmp_path: Path) -> None:
    assets = _tiktoken_only(tmp_path)
    r = _cli(
        ["--self-test"],
        PARLEY_ASSETS=str(assets),
        PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
    )
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    keyring_line = next(ln for ln in lines if ln.split()[1:2] == ["keyring"])
    assert keyring_line.startswith("FAIL") and "keyring.backends.fail.Keyring" in keyring_line
    embedding_line = next(ln for ln in lines if ln.split()[1:2] == ["embedding"])
    assert embedding_line.startswith("FAIL") and str(assets / MODEL_SUBDIR) in embedding_line
    fixes = [ln for ln in lines if ln.strip().startswith("fix:")]
    assert len(fixes) == 2
    assert "--allow-no-keyring" in fixes[0] and "parley assets download" in fixes[1]
    for name in ("qt", "tiktoken", "chroma", "database", "worker"):
        assert next(ln for ln in lines if ln.split()[1:2] == [name]).startswith("ok")
    assert lines[-1] == "self-test: 2 of 7 checks failed: keyring, embedding"
    assert "Traceback" not in r.stderr


def test_cli_self_test_rejects_unknown_options() -> None:
    r = _cli(["--self-test", "--frobnicate"])
    assert r.returncode == 2 and "unrecognized arguments: --frobnicate" in r.stderr


# ---------------------------------------------------------------- single checks
@pytest.mark.parametrize("backend", [fail.Keyring(), null.Keyring()], ids=["fail", "null"])
def test_keyring_without_a_store_fails_unless_allowed(backend: keyring.backend.KeyringBackend):
    with using_keyring(backend):
        refused = check_keyring(allow_no_keyring=False)
        allowed = check_keyring(allow_no_keyring=True)
    name = f"{type(backend).__module__}.{type(backend).__name__}"
    assert not refused.ok and name in refused.detail and "--allow-no-keyring" in refused.fix
    assert allowed.ok and name in allowed.detail and "allowed" in allowed.detail


def test_keyring_with_a_real_store_passes() -> None:
    with using_keyring(MemoryKeyring()):
        result = check_keyring(allow_no_keyring=False)
    assert result.ok and "MemoryKeyring" in result.detail


def test_missing_model_folder_fails_and_says_how_to_get_it(tmp_path: Path) -> None:
    paths = _paths(tmp_path, _tiktoken_only(tmp_path))
    result, vector = check_embedding(paths)
    assert not result.ok and vector is None
    assert "missing" in result.detail and "parley assets download" in result.fix
    # The check must not have tried to download it (which leaves an empty folder behind).
    assert not (paths.assets_dir / "models").exists()  # type: ignore[operator]
    assert not paths.data_dir.exists()


def test_embedding_check_embeds_with_the_bundled_model(tmp_path: Path) -> None:
    shared = need_minilm().assets_dir
    result, vector = check_embedding(_paths(tmp_path, shared))
    assert result.ok and vector is not None and len(vector) == 384


def test_embedding_check_follows_the_int8_setting_and_writes_nothing(tmp_path: Path) -> None:
    """With the int8 model chosen: taken from assets, else made in a temporary folder."""
    shared = need_minilm().assets_dir
    assert shared is not None
    fp32_only = tmp_path / "fp32-only"
    (fp32_only / "models").mkdir(parents=True)
    (fp32_only / "models" / "all-MiniLM-L6-v2").symlink_to(
        (shared / "models" / "all-MiniLM-L6-v2").resolve()
    )
    for assets, made in ((shared, False), (fp32_only, True)):
        paths = _paths(tmp_path / assets.name, assets)
        paths.config_dir.mkdir(parents=True)
        paths.settings_file.write_text('[knowledge]\nembedding_model = "all-MiniLM-L6-v2-int8"\n')
        result, vector = check_embedding(paths)
        assert result.ok and vector is not None and len(vector) == 384, result
        assert result.detail.startswith("all-MiniLM-L6-v2-int8 from ")
        assert ("temporary folder" in result.detail) is made
        assert not paths.data_dir.exists()  # nothing made in Parley's folders
    assert [p.name for p in (fp32_only / "models").iterdir()] == ["all-MiniLM-L6-v2"]


def test_tiktoken_files_missing_or_damaged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR", raising=False)
    nothing = check_tiktoken(_paths(tmp_path, None))
    assert not nothing.ok and "parley assets download" in nothing.fix

    folder = _tiktoken_only(tmp_path)
    url = TIKTOKEN_ENCODINGS["cl100k_base"][0]
    damaged = folder / "tiktoken" / tiktoken_file(url)
    damaged.chmod(0o644)
    damaged.write_bytes(b"not a BPE file")
    result = check_tiktoken(_paths(tmp_path, folder))
    assert not result.ok and "cl100k_base is damaged" in result.detail


def test_database_none_yet_readable_and_damaged(tmp_path: Path) -> None:
    paths = _paths(tmp_path, None)
    none_yet = check_database(paths)
    assert none_yet.ok and "no database yet" in none_yet.detail

    paths.data_dir.mkdir(parents=True)
    store = ConversationStore(paths.db_file)
    store.create("A conversation")
    store.close()
    before = sorted(p.name for p in paths.data_dir.iterdir())
    readable = check_database(paths)
    assert readable.ok and "1 conversations" in readable.detail
    # Read-only: the database gained no journal files and was not changed.
    assert sorted(p.name for p in paths.data_dir.iterdir()) == before

    paths.db_file.write_bytes(b"this is not a database" * 100)
    damaged = check_database(paths)
    assert not damaged.ok and "move" in damaged.fix and str(paths.db_file) in damaged.fix


async def test_qt_check_reports_a_platform_that_does_not_load() -> None:
    env = {**os.environ, "QT_QPA_PLATFORM": "no-such-platform"}
    result = await check_qt(env)
    assert not result.ok
    assert "no-such-platform" in result.detail and result.fix


async def test_qt_check_passes_offscreen() -> None:
    result = await check_qt({**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert result.ok, result
    assert "ICU collation" in result.detail


def test_qt_check_without_a_display_uses_offscreen_and_says_so() -> None:
    from parley.core.selftest import qt_environment

    env, note = qt_environment({"PATH": "/usr/bin"})
    if not sys.platform.startswith("linux"):
        pytest.skip("only Linux decides this from DISPLAY/WAYLAND_DISPLAY")
    assert env["QT_QPA_PLATFORM"] == "offscreen" and "no display" in note
    env, note = qt_environment({"DISPLAY": ":0"})
    assert "QT_QPA_PLATFORM" not in env and note == ""


def test_report_text_lists_fixes_and_a_summary() -> None:
    checks = [
        Check("qt", True, "Qt 6", seconds=0.5),
        Check("keyring", False, "fail.Keyring", "unlock it", 0.1),
    ]
    text = report_text(checks, 0.6).splitlines()
    assert text[0].startswith("ok    qt")
    assert text[1].startswith("FAIL  keyring") and text[2].strip() == "fix: unlock it"
    assert text[-1] == "self-test: 1 of 2 checks failed: keyring"


def test_default_paths_are_what_the_self_test_reads(tmp_path: Path) -> None:
    # The CLI builds Paths from the environment like every command (PARLEY_HOME first).
    assert default_paths().data_dir == Path(os.environ["PARLEY_HOME"]).resolve() / "data"
