"""The PyInstaller bundle: build it with ``packaging/build.py``, then check the frozen app.

``build.py`` builds ``dist/parley/`` and smoke-tests the frozen executable (``--version``,
``models``, ``ask`` through both SDKs against the fake server, ``index``/``search`` with the
bundled ONNX model and no network, the window's first paint, offscreen and under Xvfb, and
the Secret Service keyring where available); it exits non-zero if any step fails. These
tests run it once and then check its report and the bundle on disk.

Opt-in (a build takes 2-4 minutes on two cores and writes ~490 MB to ``dist/``)::

    PARLEY_TEST_PACKAGING=1 .venv/bin/pytest tests/integration/test_packaging.py
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD_PY = REPO / "packaging" / "build.py"
DIST = REPO / "dist"
BUNDLE = DIST / "parley"
INTERNAL = BUNDLE / "_internal"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("PARLEY_TEST_PACKAGING") != "1",
        reason="builds the PyInstaller bundle (minutes, ~490 MB): set PARLEY_TEST_PACKAGING=1",
    ),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="checks a Linux bundle"),
    pytest.mark.timeout(1800),
]


def _assets() -> Path:
    value = os.environ.get("PARLEY_ASSETS")
    if not value or not Path(value).is_dir():
        pytest.skip("needs the offline assets (PARLEY_ASSETS; tests/conftest.py sets it)")
    return Path(value)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Build + smoke-test once for the module; the JSON report build.py wrote."""
    assets = _assets()
    path = tmp_path_factory.mktemp("packaging") / "report.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(BUILD_PY),
            "--assets",
            str(assets),
            "--report",
            str(path),
            "--installer",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    assert proc.returncode == 0, (
        f"build.py failed (exit {proc.returncode})\n"
        f"--- stdout\n{proc.stdout[-6000:]}\n--- stderr\n{proc.stderr[-6000:]}"
    )
    return dict(json.loads(path.read_text(encoding="utf-8")))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_frozen_app_passes_the_smoke_test(report: dict[str, Any]) -> None:
    import parley

    smoke = report["smoke"]
    assert report["smoke_passed"] is True
    assert smoke["version"] == f"parley {parley.__version__}"
    assert smoke["models"] >= 5
    for provider in ("openai", "anthropic"):
        assert smoke["ask"][provider]["usage"]["output_tokens"] > 0
    # One file per loader; html, pdf and docx were parsed in forkserver workers.
    assert smoke["index"]["files"] == 4
    tops = {key.split(": ", 1)[1]: v["top"] for key, v in smoke["search"].items()}
    assert set(tops.values()) == {"tea.md", "coffee.html", "bread.pdf", "cheese.docx"}
    assert any(k.startswith("dense: ") for k in smoke["search"])
    assert "coffee.html" in smoke["ask_knowledge_sources"]
    assert smoke["window_first_paint_cold_s"] > 0
    # The window's answer streamed through its spawned worker process.
    assert smoke["window_ask"]["worker_streams"] >= 1 and smoke["window_ask"]["chars"] > 0
    # The frozen self-test passed every check (build.py fails the smoke test otherwise).
    assert set(smoke["self_test"]["checks"]) == {
        "qt",
        "keyring",
        "tiktoken",
        "embedding",
        "chroma",
        "database",
        "worker",
    }
    assert "ICU collation" in smoke["self_test"]["checks"]["qt"]


def test_installer_tarball_installs_and_its_menu_entry_starts_parley(
    report: dict[str, Any],
) -> None:
    import parley

    tarball = Path(report["installer"]["path"])
    assert tarball.name == f"Parley-{parley.__version__}-linux-x86_64.tar.gz"
    install = report["smoke"]["install"]
    assert install["exec"].endswith('/.local/opt/parley/parley"')
    assert install["first_paint_s"] > 0


def test_read_only_bundle_runs_as_an_unprivileged_user(report: dict[str, Any]) -> None:
    read_only = report["smoke"]["read_only"]
    if isinstance(read_only, str):
        pytest.skip(read_only)
    assert read_only["first_paint_s"] > 0


def test_measurements_are_reported(report: dict[str, Any]) -> None:
    assert report["build_seconds"] > 0
    bundle = report["bundle"]
    assert len(bundle["top"]) == 10
    assert sum(p["mb"] for p in bundle["top"]) <= bundle["total_mb"]
    # Regression guard: measured 395 MB (486 MB before the ICU, strip and gRPC cuts; with
    # QtWebEngine & co. it would pass 700 MB). Issue 16 asks for 350 MB: not reached, see
    # packaging/README.md ("Measured") for where the rest goes.
    assert bundle["total_mb"] <= 400, bundle["top"]
    smoke = report["smoke"]
    # Generous bounds for a loaded machine (measured here: 0.23 s and 0.54 s).
    assert smoke["version_warm_s"] < 1.5
    assert smoke["window_first_paint_warm_s"] < 5.0


def _loaded_libraries(args: list[str], tmp_path: Path, **env: str) -> str:
    """The dynamic loader's trace (LD_DEBUG=files) of one run of the frozen app."""
    proc = subprocess.run(
        [str(BUNDLE / "parley"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={
            **os.environ,
            "PARLEY_HOME": str(tmp_path / "home"),
            "QT_QPA_PLATFORM": "offscreen",
            "LD_DEBUG": "files",
            **env,
        },
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stderr


def test_command_line_starts_without_loading_qt(report: dict[str, Any], tmp_path: Path) -> None:
    # packaging/hooks/rthooks/pyi_rth_pyside6_lazy.py: PyInstaller's own PySide6 hook would
    # load Qt Core (~0.22 s) in every process, workers included.
    assert "libQt6Core" not in _loaded_libraries(["--version"], tmp_path)
    assert "libQt6Core" not in _loaded_libraries(["models", "--json"], tmp_path)
    # The same trace does see Qt when the window starts (the check can fail).
    window = _loaded_libraries([], tmp_path, PARLEY_FIRST_PAINT_EXIT="1")
    assert "libQt6Core" in window


def test_bundle_carries_the_offline_assets_byte_for_byte(
    report: dict[str, Any], tmp_path: Path
) -> None:
    from parley.core.knowledge.embeddings import store_weights_half

    assets = _assets()
    originals = [p for p in (assets / "tiktoken").iterdir() if p.is_file()]
    originals += list((assets / "models" / "all-MiniLM-L6-v2" / "onnx").iterdir())
    assert len(originals) >= 8
    for src in originals:
        bundled = INTERNAL / "assets" / src.relative_to(assets)
        assert bundled.is_file(), bundled
        if src.name == "model.onnx":
            # The spec stores the model's weights as fp16 (same vectors, half the bytes).
            expected = tmp_path / "model.onnx"
            store_weights_half(src, expected)
            assert _sha256(bundled) == _sha256(expected), bundled
            continue
        assert _sha256(bundled) == _sha256(src), bundled


def test_bundle_has_parley_resources_where_the_app_looks(report: dict[str, Any]) -> None:
    resources = INTERNAL / "parley" / "resources"
    for name in ("models.toml", "parley.svg", "parley.png", "check.svg"):
        assert (resources / name).read_bytes() == (REPO / "resources" / name).read_bytes()


def test_trimmed_parts_are_gone(report: dict[str, Any]) -> None:
    qt = INTERNAL / "PySide6" / "Qt"
    assert (qt / "plugins" / "platforms" / "libqxcb.so").is_file()
    assert (qt / "plugins" / "platforms" / "libqoffscreen.so").is_file()
    assert (qt / "plugins" / "imageformats" / "libqsvg.so").is_file()
    assert not (qt / "plugins" / "platformthemes" / "libqgtk3.so").exists()
    assert not list(qt.glob("translations/*.qm"))
    names = {p.name for p in INTERNAL.rglob("*")}
    # The GTK theme's libraries (the build machine's) went with it.
    assert not {
        n for n in names if n.startswith(("libgtk-3", "libgdk-3", "libcairo.", "libpango-"))
    }
    # Only the Qt modules Parley imports.
    bindings = {p.name.split(".")[0] for p in (INTERNAL / "PySide6").glob("Qt*.abi3.so")}
    assert bindings == {"QtCore", "QtGui", "QtWidgets", "QtNetwork"}
    assert not list(qt.glob("plugins/tls/*")) and not list(qt.glob("plugins/networkinformation/*"))
    for unused in ("kubernetes", "mypy", "uvloop", "tkinter", "grpc", "regex", "bcrypt"):
        assert not (INTERNAL / unused).exists(), unused
    # ICU's data without what Qt never reads (32 MB -> ~11 MB), and stripped binaries.
    assert (qt / "lib" / "libicudata.so.73").stat().st_size < 15e6
    assert (INTERNAL / "libpython3.11.so.1.0").stat().st_size < 10e6


def test_icons_were_generated_for_windows_and_macos(report: dict[str, Any]) -> None:
    icons = REPO / "build" / "pyinstaller" / "parley" / "icons"
    assert (icons / "parley.ico").read_bytes()[:4] == b"\x00\x00\x01\x00"
    assert (icons / "parley.icns").read_bytes()[:4] == b"icns"


def test_runtime_hooks_are_in_the_bundle(report: dict[str, Any]) -> None:
    toc = (REPO / "build" / "pyinstaller" / "parley" / "Analysis-00.toc").read_text()
    assert "pyi_rth_parley_env" in toc
    assert "pyi_rth_pyside6_lazy" in toc
    # PyInstaller's own PySide6 hook imports QtCore in every process; ours replaces it.
    assert "pyi_rth_pyside6.py" not in toc
