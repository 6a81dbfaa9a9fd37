"""Build Parley's one-folder bundle with PyInstaller, then smoke-test the frozen app.

Run from anywhere, with the project's virtualenv (PyInstaller installed in it)::

    PARLEY_ASSETS=../shared/assets .venv/bin/python packaging/build.py

Output: ``dist/parley/`` (``dist/Parley.app`` on macOS), PyInstaller's scratch files in
``build/pyinstaller/``, and a JSON report (``build/packaging-report.json``) with the build
time, the bundle's size and largest parts, start-up times and what each smoke step saw.
Exit code 0 only if the build and every smoke step succeeded.

The smoke test runs the frozen executable the way a person would, with a temporary
``PARLEY_HOME`` and ``HOME``, ``QT_QPA_PLATFORM=offscreen``, no ``PARLEY_ASSETS`` (the bundled
assets must be used) and every proxy variable pointing at a closed port, so any attempt to
download (tiktoken files, the embedding model) fails the run:

1. ``parley --version`` (cold, then warm) and ``parley models --json``;
2. ``parley ask`` through both SDKs (OpenAI and Anthropic wire formats) against the fake
   server from the checkout (``python -m tests.fakes.server``) on 127.0.0.1, then the window
   with ``PARLEY_SMOKE_ASK``: it asks one question once its stream worker (a spawned
   process) is up, prints the answer and quits;
3. ``parley index`` of a tiny folder with Markdown, HTML, PDF and DOCX files (the last three
   are parsed in the loaders' forkserver worker processes), then ``parley search`` (hybrid
   and dense: the bundled ONNX model) and ``parley ask --knowledge``;
4. the window, with ``PARLEY_FIRST_PAINT_EXIT=1``: it prints the time of its first paint and
   quits (cold, then warm).

Options: ``--skip-build`` (smoke-test an existing bundle), ``--no-smoke``, ``--clean`` (drop
PyInstaller's cache first), ``--debug`` (``PARLEY_PYINSTALLER_DEBUG=1``: console and import
tracing), ``--report PATH``. Code signing on macOS: set ``CODESIGN_IDENTITY`` (and optionally
``MACOS_ENTITLEMENTS``, ``TARGET_ARCH``); the spec reads them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import queue
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SPEC = HERE / "parley.spec"
DIST = REPO / "dist"
WORK = REPO / "build" / "pyinstaller"
REPORT = REPO / "build" / "packaging-report.json"

STEP_TIMEOUT_S = 180.0
"""Longest any single smoke step may take (indexing loads the ONNX model: seconds)."""

WARM_RUNS = 5
"""Runs of ``--version`` after the first, for the warm start-up median."""

WINDOW_WARM_RUNS = 2
"""Window starts after the first, for the warm first-paint median."""

CLOSED_PORT_PROXY = "http://127.0.0.1:9"
"""A proxy nobody listens on: any non-loopback HTTP(S) request fails at once."""

QT_NOISE = ("This plugin does not support propagateSizeHints()",)
"""stderr lines the offscreen platform prints on every window; not a failure."""


class SmokeFailure(Exception):
    """A smoke step saw something wrong; the message says what, with the output."""


# ---------------------------------------------------------------- locations
def version() -> str:
    """Parley's version, read from ``desktop/parley/__init__.py`` (not imported)."""
    text = (REPO / "desktop" / "parley" / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r"^__version__\s*=\s*[\"']([^\"']+)", text, re.MULTILINE)
    if match is None:
        raise SystemExit("no __version__ in desktop/parley/__init__.py")
    return match.group(1)


def bundle_dir(dist: Path = DIST) -> Path:
    """The folder that holds the bundle (``dist/parley``, or ``dist/Parley.app`` on macOS)."""
    return dist / "Parley.app" if sys.platform == "darwin" else dist / "parley"


def executables(dist: Path = DIST) -> tuple[Path, Path]:
    """``(window, cli)`` executables of the bundle.

    They differ only on Windows, where the windowed ``parley.exe`` has no stdout and the
    spec adds a console ``parley-cli.exe`` for the command line.
    """
    if sys.platform == "darwin":
        exe = bundle_dir(dist) / "Contents" / "MacOS" / "parley"
        return exe, exe
    if sys.platform == "win32":
        return bundle_dir(dist) / "parley.exe", bundle_dir(dist) / "parley-cli.exe"
    exe = bundle_dir(dist) / "parley"
    return exe, exe


# ---------------------------------------------------------------- build
def default_assets() -> Path | None:
    """``PARLEY_ASSETS``, else the ``shared/assets`` folder beside the checkout (as in CI)."""
    value = os.environ.get("PARLEY_ASSETS")
    if value:
        return Path(value).expanduser()
    sibling = REPO.parent / "shared" / "assets"
    return sibling if sibling.is_dir() else None


def build(
    *,
    dist: Path = DIST,
    work: Path = WORK,
    clean: bool = False,
    debug: bool = False,
    assets: Path | None = None,
) -> float:
    """Run PyInstaller on parley.spec; returns the seconds it took.

    Args:
        dist: Where the bundle goes (``<dist>/parley``).
        work: PyInstaller's scratch folder (kept between builds: it caches the analysis).
        clean: Empty PyInstaller's cache and ``work`` first.
        debug: A debug build (console, import tracing).
        assets: The offline assets folder to bundle; None builds a bundle without them
            (it then downloads them on first use, and the smoke test's offline check fails).

    Raises:
        SystemExit: PyInstaller failed (its output has been shown).
    """
    env = dict(os.environ)
    env.pop("PARLEY_ASSETS", None)
    if assets is not None:
        env["PARLEY_ASSETS"] = str(assets.resolve())
    if debug:
        env["PARLEY_PYINSTALLER_DEBUG"] = "1"
    cmd = [
        sys.executable,
        "-m",
        "PyInstaller",
        "--noconfirm",
        "--log-level",
        "WARN",
        "--distpath",
        str(dist),
        "--workpath",
        str(work),
        *(["--clean"] if clean else []),
        str(SPEC),
    ]
    print("build:", " ".join(cmd), flush=True)
    t0 = time.monotonic()
    proc = subprocess.run(cmd, env=env, cwd=REPO, check=False)
    seconds = time.monotonic() - t0
    if proc.returncode != 0:
        raise SystemExit(f"build: PyInstaller failed (exit {proc.returncode})")
    print(f"build: done in {seconds:.1f} s -> {bundle_dir(dist)}", flush=True)
    return seconds


# ---------------------------------------------------------------- sizes
def _size(path: Path) -> int:
    """Bytes of a file or folder; symlinks count as nothing (their target is counted)."""
    if path.is_symlink():
        return 0
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def bundle_sizes(root: Path, top: int = 10) -> dict[str, Any]:
    """Total size of the bundle and its largest parts.

    Parts are the executable and every top-level entry of ``_internal/`` (macOS: of
    ``Contents/Frameworks`` and ``Contents/Resources``), with ``PySide6`` and ``assets``
    split one level further since they hold several unrelated pieces.

    Returns:
        ``{"total_mb", "files", "top": [{"path", "mb"}, ...]}``.
    """
    parts: dict[str, int] = {}
    internal_dirs = [root / "_internal"]
    if sys.platform == "darwin":
        internal_dirs = [root / "Contents" / "Frameworks", root / "Contents" / "Resources"]
    for entry in root.iterdir():
        if entry.is_file() and not entry.is_symlink():
            parts[entry.name] = entry.stat().st_size
    for internal in internal_dirs:
        if not internal.is_dir():
            continue
        for entry in internal.iterdir():
            split = entry.name in ("PySide6", "assets") and entry.is_dir()
            children = list(entry.iterdir()) if split else [entry]
            for child in children:
                if split and child.name == "Qt" and child.is_dir():  # PySide6/Qt/{lib,plugins}
                    for sub in child.iterdir():
                        parts[sub.relative_to(internal).as_posix()] = _size(sub)
                    continue
                parts[child.relative_to(internal).as_posix()] = _size(child)
    files = [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]
    total = sum(p.stat().st_size for p in files)
    largest = sorted(parts.items(), key=lambda kv: kv[1], reverse=True)[:top]
    return {
        "total_mb": round(total / 1e6, 1),
        "files": len(files),
        "top": [{"path": name, "mb": round(size / 1e6, 1)} for name, size in largest],
    }


# ---------------------------------------------------------------- smoke helpers
@dataclass
class Run:
    """One finished run of the frozen executable."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def describe(self) -> str:
        """The command and its output, for failure messages."""
        return (
            f"$ parley {' '.join(self.args)}  (exit {self.returncode}, {self.seconds:.2f} s)\n"
            f"--- stdout\n{self.stdout[-4000:]}\n--- stderr\n{self.stderr[-4000:]}"
        )


def smoke_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of the frozen app in the smoke test.

    Nothing from the developer's shell that would hide a packaging bug: no assets folder,
    no tiktoken cache, no keys, no Python path; a fresh HOME (so no model cached under
    ``~/.cache``), the null keyring backend (no prompt from a real keyring), and proxies that
    make any download attempt fail.
    """
    drop = ("PARLEY_", "TIKTOKEN_", "PYTHON", "QT_", "HF_", "SENTENCE_TRANSFORMERS")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(drop)
        and not k.endswith(("_API_KEY", "_BASE_URL"))
        and k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
    }
    (home / "home").mkdir(parents=True, exist_ok=True)
    env.update(
        HOME=str(home / "home"),
        XDG_CONFIG_HOME=str(home / "home" / ".config"),
        XDG_CACHE_HOME=str(home / "home" / ".cache"),
        XDG_DATA_HOME=str(home / "home" / ".local" / "share"),
        PARLEY_HOME=str(home / "parley-home"),
        QT_QPA_PLATFORM="offscreen",
        PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring",
        ANONYMIZED_TELEMETRY="False",
        HTTP_PROXY=CLOSED_PORT_PROXY,
        HTTPS_PROXY=CLOSED_PORT_PROXY,
        ALL_PROXY=CLOSED_PORT_PROXY,
        http_proxy=CLOSED_PORT_PROXY,
        https_proxy=CLOSED_PORT_PROXY,
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    env.update(extra)
    return env


def run(
    exe: Path,
    args: Sequence[str],
    env: Mapping[str, str],
    *,
    stdin: str | None = None,
    prefix: Sequence[str] = (),
) -> Run:
    """Run the frozen executable once (after ``prefix``, e.g. ``xvfb-run``) and capture all."""
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            [*prefix, str(exe), *args],
            input=stdin,
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            env=dict(env),
            timeout=STEP_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise SmokeFailure(
            f"parley {' '.join(args)} did not finish in {STEP_TIMEOUT_S:.0f} s"
        ) from exc
    return Run(list(args), proc.returncode, proc.stdout, proc.stderr, time.perf_counter() - t0)


def expect(ok: bool, message: str, result: Run | None = None) -> None:
    """Raise :class:`SmokeFailure` with ``message`` (and the run's output) unless ``ok``."""
    if not ok:
        raise SmokeFailure(message + ("\n" + result.describe() if result else ""))


def json_out(result: Run) -> Any:
    """The run's stdout as JSON (the last non-empty line for commands that stream)."""
    expect(result.returncode == 0, "the command failed", result)
    lines = [ln for ln in result.stdout.splitlines() if ln.strip()]
    expect(bool(lines), "no output on stdout", result)
    try:
        return json.loads(lines[-1])
    except ValueError:
        raise SmokeFailure("stdout is not JSON\n" + result.describe()) from None


@contextlib.contextmanager
def fake_server(python: str = sys.executable) -> Iterator[dict[str, str]]:
    """The checkout's fake OpenAI + Anthropic server on 127.0.0.1 (a random free port).

    Yields:
        ``{"openai": base_url, "anthropic": base_url}``.
    """
    proc = subprocess.Popen(
        [python, "-m", "tests.fakes.server", "--port", "0", "--delay", "0", "--quiet"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:  # a thread: select() cannot see lines already in the pipe's buffer
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    try:
        urls: dict[str, str] = {}
        labels = {"openai": "OpenAI base URL:", "anthropic": "Anthropic base URL:"}
        deadline = time.monotonic() + 30
        while len(urls) < len(labels):
            left = deadline - time.monotonic()
            if left <= 0 or proc.poll() is not None:
                err = proc.stderr.read() if proc.stderr and proc.poll() is not None else ""
                raise SmokeFailure(f"the fake server did not start: {err}")
            with contextlib.suppress(queue.Empty):
                line = lines.get(timeout=min(left, 0.5))
                for key, label in labels.items():
                    if label in line:
                        urls[key] = line.split(label, 1)[1].strip()
        yield urls
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _pdf_bytes(text: str) -> bytes:
    """A one-page PDF whose page shows ``text`` (ASCII) in Helvetica."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode("ascii")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def make_corpus(folder: Path) -> dict[str, str]:
    """A tiny folder to index: one file per loader kind.

    Returns:
        ``{query: expected top file name}`` for the search step.
    """
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tea.md").write_text(
        "# Tea\n\nGreen tea is steeped at 80 degrees Celsius for two minutes.\n",
        encoding="utf-8",
    )
    (folder / "coffee.html").write_text(
        "<!doctype html><html><head><title>Coffee</title></head><body><h1>Coffee</h1>"
        "<p>Espresso is brewed at nine bars of pressure in about thirty seconds.</p>"
        "</body></html>",
        encoding="utf-8",
    )
    (folder / "bread.pdf").write_bytes(
        _pdf_bytes("Sourdough bread rises with a starter fed on flour and water.")
    )
    queries = {
        "how hot should the water be for green tea": "tea.md",
        "espresso machine pressure": "coffee.html",
        "sourdough starter": "bread.pdf",
    }
    try:
        import docx  # python-docx: a Parley dependency, so present in the build environment
    except ImportError:
        return queries
    doc = docx.Document()
    doc.add_heading("Cheese", level=1)
    doc.add_paragraph("Cheddar is aged in caves for up to two years.")
    doc.save(str(folder / "cheese.docx"))
    queries["how long is cheddar aged"] = "cheese.docx"
    return queries


# ---------------------------------------------------------------- smoke steps
def smoke_test(dist: Path = DIST) -> dict[str, Any]:
    """Run every smoke step against the bundle in ``dist``; returns what each saw.

    Raises:
        SmokeFailure: A step failed (the message includes the command's output).
    """
    window_exe, cli = executables(dist)
    expect(cli.is_file(), f"no executable at {cli}")
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="parley-smoke-") as tmp_name:
        tmp = Path(tmp_name)
        env = smoke_env(tmp)

        # 1. --version (the first run after a build is the coldest start we can get here)
        runs = [run(cli, ["--version"], env) for _ in range(1 + WARM_RUNS)]
        for r in runs:
            expect(r.returncode == 0, "--version failed", r)
            expect(r.stdout.strip() == f"parley {version()}", "wrong version", r)
        report["version"] = runs[0].stdout.strip()
        report["version_cold_s"] = round(runs[0].seconds, 3)
        report["version_warm_s"] = round(statistics.median(r.seconds for r in runs[1:]), 3)

        # 2. the model catalog comes from the bundled resources/models.toml
        r = run(cli, ["models", "--json"], env)
        models = json_out(r)
        providers = {m.get("provider") for m in models}
        expect(
            len(models) >= 5 and {"openai", "anthropic"} <= providers,
            "the catalog is not the bundled models.toml",
            r,
        )
        report["models"] = len(models)

        with fake_server() as urls:
            keys = {
                "OPENAI_API_KEY": "sk-smoke-openai",
                "OPENAI_BASE_URL": urls["openai"],
                "ANTHROPIC_API_KEY": "sk-ant-smoke",
                "ANTHROPIC_BASE_URL": urls["anthropic"],
            }
            ask_env = {**env, **keys}
            # 3. ask through both SDKs
            report["ask"] = {}
            for provider, model in (("openai", "gpt-4o-mini"), ("anthropic", "claude-haiku-4-5")):
                marker = f"smoke-{provider}-{os.getpid()}"
                r = run(
                    cli,
                    ["ask", "--provider", provider, "--model", model, "--json", f"Echo {marker}"],
                    ask_env,
                )
                answer = json_out(r)
                expect(answer.get("status") == "complete", f"{provider}: not complete", r)
                expect(marker in answer.get("text", ""), f"{provider}: answer lacks the echo", r)
                expect(answer.get("usage", {}).get("output_tokens", 0) > 0, "no usage", r)
                report["ask"][provider] = {
                    "seconds": round(r.seconds, 2),
                    "chars": len(answer["text"]),
                    "usage": answer["usage"],
                    "cost_usd": answer.get("cost_usd"),
                }

            # 3b. the window asks too: its answers stream through a spawned worker process
            report["window_ask"] = _window_ask(window_exe, ask_env)

            # 3c. one window per data folder; the command line works beside it
            report["single_instance"] = _single_instance(window_exe, cli, ask_env, tmp)

            # 4. index (parsers in forkserver workers) + search with the bundled model
            corpus = tmp / "notes"
            queries = make_corpus(corpus)
            r = run(cli, ["index", str(corpus), "--json"], env)
            indexed = json_out(r)
            expect(
                indexed["files_indexed"] == len(queries) and not indexed["files_skipped"],
                f"expected {len(queries)} files indexed and none skipped",
                r,
            )
            report["index"] = {
                "files": indexed["files_indexed"],
                "chunks": indexed["chunks"],
                "seconds": round(r.seconds, 2),
                "indexer_seconds": indexed["seconds"],
            }
            report["search"] = {}
            for query, expected in queries.items():
                for mode in ("hybrid", "dense"):
                    r = run(cli, ["search", query, "--mode", mode, "-k", "3", "--json"], env)
                    results = json_out(r)["results"]
                    top = Path(results[0]["path"]).name if results else None
                    expect(top == expected, f"{mode} search {query!r}: top {top}", r)
                    report["search"][f"{mode}: {query}"] = {
                        "top": top,
                        "seconds": round(r.seconds, 2),
                    }
            r = run(
                cli,
                ["ask", "--knowledge", "--json", "What pressure is espresso brewed at?"],
                ask_env,
            )
            grounded = json_out(r)
            sources = [Path(s["path"]).name for s in grounded.get("sources", []) if s.get("path")]
            expect("coffee.html" in sources, f"ask --knowledge cited {sources}", r)
            report["ask_knowledge_sources"] = sources

        # Nothing was downloaded: the model came from the bundle, not a cache.
        downloaded = [
            p.relative_to(tmp).as_posix()
            for p in tmp.rglob("*")
            if p.is_file() and p.name in ("model.onnx", "tokenizer.json")
        ]
        expect(not downloaded, f"model files were downloaded: {downloaded}")

        # 5. the window: first paint, then quit by itself
        paints = [_window(window_exe, env) for _ in range(1 + WINDOW_WARM_RUNS)]
        report["window_first_paint_cold_s"] = paints[0]["first_paint_s"]
        report["window_first_paint_warm_s"] = round(
            statistics.median(p["first_paint_s"] for p in paints[1:]), 3
        )
        report["window_exit_s"] = paints[0]["exit_s"]

        # 6. Linux extras, where the tools exist: a real X server (the xcb platform plugin
        # and what it links, which the trimming must not have removed) and the real
        # Secret Service (the keyring backends the frozen app must find by entry point).
        xvfb = shutil.which("xvfb-run") if sys.platform.startswith("linux") else None
        if xvfb:
            x_env = {**env, "QT_QPA_PLATFORM": "xcb"}
            x_prefix = [xvfb, "-a", "-s", "-screen 0 1280x800x24"]
            report["window_xcb"] = _window(window_exe, x_env, prefix=x_prefix)
        else:
            report["window_xcb"] = "skipped: no xvfb-run"
        report["keyring"] = _keyring(cli, env, tmp)

        # 7. the self-test, as a support thread would ask a person to run it
        report["self_test"] = self_test(cli, env)

        # 8. from a read-only folder, as a user who cannot write there
        report["read_only"] = _read_only(dist, tmp)

        # 9. what stops the window: one clear line and exit 2, no traceback
        report["startup_problems"] = _startup_problems(window_exe, env, tmp)
    return report


def self_test(exe: Path, env: Mapping[str, str]) -> dict[str, Any]:
    """``parley --self-test --json --allow-no-keyring`` (the null keyring in the smoke env).

    Returns:
        ``{"seconds", "checks": {name: detail}}``.

    Raises:
        SmokeFailure: A check failed (its detail and fix are in the message).
    """
    r = run(exe, ["--self-test", "--json", "--allow-no-keyring"], env)
    report = json_out(r) if r.stdout.strip() else {}
    failed = [c for c in report.get("checks", []) if not c.get("ok")]
    expect(
        r.returncode == 0 and report.get("ok") is True and report.get("frozen") is True,
        "the frozen self-test failed: "
        + "; ".join(f"{c['name']}: {c['detail']} (fix: {c['fix']})" for c in failed),
        r,
    )
    return {
        "seconds": round(r.seconds, 2),
        "checks": {c["name"]: c["detail"] for c in report["checks"]},
    }


def _read_only(dist: Path, tmp: Path) -> dict[str, Any] | str:
    """The bundle made read-only, run by an unprivileged user: self-test and window.

    Root ignores permission bits, so as root the runs drop to ``nobody`` (``setpriv``) with
    a HOME of their own; the bundle's write bits are restored afterwards.
    """
    setpriv = shutil.which("setpriv")
    if not sys.platform.startswith("linux") or os.geteuid() != 0 or setpriv is None:
        return "skipped: needs Linux, root and setpriv to drop to an unprivileged user"
    # A read-only copy where ``nobody`` can reach it (the checkout's folders may be private).
    tmp.chmod(0o755)
    ro_dist = tmp / "read-only"
    ro_dist.mkdir()
    subprocess.run(["cp", "-a", str(bundle_dir(dist)), str(ro_dist)], check=True)
    root = bundle_dir(ro_dist)
    window_exe, cli = executables(ro_dist)
    home = tmp / "nobody-home"
    home.mkdir()
    shutil.chown(home, "nobody", "nogroup")
    env = smoke_env(tmp / "nobody", HOME=str(home), PARLEY_HOME=str(home / "parley-home"))
    for key in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
        env.pop(key)
    prefix = [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--inh-caps=-all"]
    subprocess.run(["chmod", "-R", "a-w", str(root)], check=True)
    try:
        probe = run(
            Path("sh"),
            ["-c", f"touch '{root}/probe' 2>/dev/null && echo writable"],
            env,
            prefix=prefix,
        )
        expect("writable" not in probe.stdout, "the bundle is still writable for nobody", probe)
        r = run(cli, ["--self-test", "--json", "--allow-no-keyring"], env, prefix=prefix)
        report = json_out(r)
        expect(report.get("ok") is True, "the self-test failed from a read-only folder", r)
        window = _window(window_exe, env, prefix=prefix)
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(root)], check=True)
    return {"self_test_s": round(r.seconds, 2), "first_paint_s": window["first_paint_s"]}


def _startup_problems(exe: Path, env: Mapping[str, str], tmp: Path) -> dict[str, str]:
    """No display, and a HOME whose config folder cannot be created: one line, exit 2."""
    seen = {}
    no_display = {k: v for k, v in env.items() if k not in ("QT_QPA_PLATFORM", "DISPLAY")}
    no_display.pop("WAYLAND_DISPLAY", None)
    bad_home = tmp / "bad-home"
    bad_home.mkdir()
    (bad_home / ".config").write_text("a file where the config folder should be")
    unwritable = {k: v for k, v in env.items() if k not in ("PARLEY_HOME", "XDG_CONFIG_HOME")}
    unwritable["HOME"] = str(bad_home)
    cases = {"no_display": no_display} if sys.platform.startswith("linux") else {}
    cases["config_folder"] = unwritable
    for name, case_env in cases.items():
        r = run(exe, [], case_env)
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        expect(
            r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr,
            f"{name}: expected one line on stderr and exit 2",
            r,
        )
        seen[name] = lines[0]
    return seen


def _window_ask(exe: Path, env: Mapping[str, str]) -> dict[str, Any]:
    """The window sends one question (``PARLEY_SMOKE_ASK``) once its stream worker is up."""
    marker = f"smoke-window-{os.getpid()}"
    r = run(exe, [], {**env, "PARLEY_SMOKE_ASK": f"Echo {marker}"})
    expect(r.returncode == 0, "the window did not answer and quit cleanly", r)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("PARLEY_SMOKE_ANSWER ")]
    expect(bool(lines), "the window printed no answer", r)
    answer = json.loads(lines[0].split(" ", 1)[1])
    expect(answer.get("status") == "complete", "window: the answer is not complete", r)
    expect(marker in answer.get("text", ""), "window: the answer lacks the echo", r)
    expect(
        bool(answer.get("worker_ready"))
        and answer.get("worker_streams", 0) >= 1
        and answer.get("worker_pid") not in (None, answer.get("app_pid")),
        "the window did not stream through its worker process (spawn in the frozen app?)",
        r,
    )
    return {
        "seconds": round(r.seconds, 2),
        "chars": len(answer["text"]),
        "worker_streams": answer["worker_streams"],
    }


def _single_instance(
    window_exe: Path, cli: Path, env: Mapping[str, str], tmp: Path
) -> dict[str, Any] | str:
    """Single-window smoke: ask beside an open window, a second launch, then SIGTERM.

    A window stays open; ``parley ask`` answers beside it; a second launch brings it
    forward and exits 0; SIGTERM then closes the first cleanly.
    """
    if sys.platform == "win32":
        return "skipped: SIGTERM ends a Windows process without letting it quit"
    home = tmp / "single-instance"
    env = {**env, "PARLEY_HOME": str(home)}
    log_file = home / "logs" / "parley.log"
    first = subprocess.Popen(
        [str(window_exe)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + STEP_TIMEOUT_S
        while not (log_file.is_file() and "window ready" in log_file.read_text(errors="replace")):
            if first.poll() is not None:
                raise SmokeFailure(f"the first window exited ({first.returncode})")
            if time.monotonic() > deadline:
                raise SmokeFailure("the first window never became ready")
            time.sleep(0.1)
        marker = f"smoke-beside-{os.getpid()}"
        ask = run(
            cli,
            ["ask", "--provider", "openai", "--model", "gpt-4o-mini", "--json", f"Echo {marker}"],
            env,
        )
        expect(marker in json_out(ask).get("text", ""), "parley ask beside the window", ask)
        second = run(window_exe, [], env)
        expect(
            second.returncode == 0 and "already open" in second.stderr,
            "a second launch did not hand over to the open window",
            second,
        )
        expect("bringing it forward" in log_file.read_text(), "the open window was not asked")
        first.send_signal(signal.SIGTERM)
        try:
            first.wait(60)
        except subprocess.TimeoutExpired:
            raise SmokeFailure("the first window did not quit on SIGTERM") from None
        expect(first.returncode == 0, f"the first window quit with {first.returncode}")
    finally:
        if first.poll() is None:
            first.kill()
        first.communicate()
    return {"second_launch_s": round(second.seconds, 2), "ask_beside_s": round(ask.seconds, 2)}


def _window(exe: Path, env: Mapping[str, str], *, prefix: Sequence[str] = ()) -> dict[str, float]:
    start = time.time()
    r = run(exe, [], {**env, "PARLEY_FIRST_PAINT_EXIT": "1"}, prefix=prefix)
    expect(r.returncode == 0, "the window did not start and quit cleanly", r)
    marks = [ln.split()[1] for ln in r.stdout.splitlines() if ln.startswith("PARLEY_FIRST_PAINT ")]
    expect(bool(marks), "the window never painted", r)
    noise = [
        ln for ln in r.stderr.splitlines() if ln.strip() and not any(n in ln for n in QT_NOISE)
    ]
    expect(not noise, "the window wrote to stderr (a missing Qt plugin or library?)", r)
    return {"first_paint_s": round(float(marks[0]) - start, 3), "exit_s": round(r.seconds, 3)}


_KEYRING_SCRIPT = r"""
set -e
mkdir -p "$HOME/.cache" "$HOME/.local/share/keyrings"
eval "$(printf pw | gnome-keyring-daemon --unlock --components=secrets)"
export GNOME_KEYRING_CONTROL
printf '%s' "$CANARY" | "$PARLEY" keys set openai
"$PARLEY" keys status --json
"$PARLEY" keys clear openai
"""
"""Runs inside ``dbus-run-session``: a private bus and keyring that end with the session
(STACK-NOTES.md, keyring on headless Linux)."""


def _keyring(cli: Path, env: Mapping[str, str], tmp: Path) -> dict[str, Any] | str:
    """``keys set``, ``status`` and ``clear`` against a private GNOME Keyring."""
    tools = ("dbus-run-session", "gnome-keyring-daemon")
    if not sys.platform.startswith("linux") or not all(shutil.which(t) for t in tools):
        return "skipped: no dbus-run-session/gnome-keyring-daemon"
    canary = f"sk-smoke-keyring-{os.getpid()}-0123456789"
    k_env = {
        k: v for k, v in env.items() if k != "PYTHON_KEYRING_BACKEND" and not k.startswith("DBUS_")
    }
    k_env.update(HOME=str(tmp / "keyring-home"), PARLEY=str(cli), CANARY=canary)
    (tmp / "keyring-home").mkdir()
    r = run(Path("sh"), ["-c", _KEYRING_SCRIPT], k_env, prefix=["dbus-run-session", "--"])
    expect(r.returncode == 0, "the keyring round trip failed", r)
    status = next((json.loads(ln) for ln in r.stdout.splitlines() if ln.startswith("{")), None)
    expect(status is not None, "keys status printed no JSON", r)
    assert status is not None
    openai = next(p for p in status["providers"] if p["provider"] == "openai")
    expect(
        "SecretService" in status["keyring"] and openai["source"] == "keyring",
        "the key did not go to the Secret Service",
        r,
    )
    expect("key removed" in r.stdout, "keys clear did not remove the key", r)
    leaked = [
        p.name
        for p in Path(env["PARLEY_HOME"]).rglob("*")
        if p.is_file() and canary.encode() in p.read_bytes()
    ]
    expect(not leaked, f"the key was written to {leaked}", r)
    return {"backend": status["keyring"], "seconds": round(r.seconds, 2)}


# ---------------------------------------------------------------- installers
def installer(dist: Path = DIST) -> Path:
    """The installer for this system, made from the bundle in ``dist``.

    Linux: ``Parley-<version>-linux-<machine>.tar.gz`` (the bundle folder ``parley/``,
    ``install.sh``, ``uninstall.sh``, ``parley.desktop``). Windows: Inno Setup's
    ``Parley-<version>-windows-x64-setup.exe`` (``packaging/windows/parley.iss``). macOS:
    ``Parley-<version>-macos-<arch>.dmg`` (``packaging/macos/make_dmg.sh``).

    Raises:
        SystemExit: The tool for this system's installer is missing or failed.
    """
    t0 = time.monotonic()
    if sys.platform == "win32":
        iscc = shutil.which("iscc") or r"C:\Program Files (x86)\Inno Setup 6\ISCC.exe"
        if not Path(iscc).is_file():
            raise SystemExit("installer: Inno Setup's iscc is not installed")
        out = dist / f"Parley-{version()}-windows-x64-setup.exe"
        icon = WORK / "parley" / "icons" / "parley.ico"
        cmd = [
            iscc,
            f"/DAppVersion={version()}",
            f"/DSourceDir={bundle_dir(dist)}",
            f"/DOutputDir={dist}",
            *([f"/DIconFile={icon}"] if icon.is_file() else []),
            str(HERE / "windows" / "parley.iss"),
        ]
        subprocess.run(cmd, check=True)
    elif sys.platform == "darwin":
        proc = subprocess.run(
            ["sh", str(HERE / "macos" / "make_dmg.sh"), str(bundle_dir(dist))],
            check=True,
            capture_output=True,
            text=True,
        )
        print(proc.stdout, end="")
        out = Path(proc.stdout.strip().splitlines()[-1])
    else:
        import tarfile

        name = f"Parley-{version()}-linux-{platform.machine()}"
        out = dist / f"{name}.tar.gz"
        tmp = out.with_suffix(".partial")
        # tar keeps the symlinks PyInstaller makes (a zip would turn them into copies).
        with tarfile.open(tmp, "w:gz", compresslevel=6) as tar:
            tar.add(bundle_dir(dist), arcname=f"{name}/parley")
            for script in ("install.sh", "uninstall.sh", "parley.desktop"):
                tar.add(HERE / "linux" / script, arcname=f"{name}/{script}")
        os.replace(tmp, out)
    print(
        f"installer: {out} ({out.stat().st_size / 1e6:.1f} MB, {time.monotonic() - t0:.1f} s)",
        flush=True,
    )
    return out


def install_smoke(tarball: Path) -> dict[str, Any]:
    """Linux: unpack the tarball and install it as a person would, into a temporary HOME.

    ``install.sh``, then the menu entry's ``Exec`` line starts the window (offscreen, until
    its first paint), ``~/.local/bin/parley`` answers, ``install.sh`` again upgrades in place
    and keeps the person's data, ``uninstall.sh`` keeps it, ``uninstall.sh --purge`` removes it.

    Raises:
        SmokeFailure: A step did not do what it says.
    """
    import shlex
    import tarfile

    with tempfile.TemporaryDirectory(prefix="parley-install-") as tmp_name:
        tmp = Path(tmp_name)
        with tarfile.open(tarball) as tar:
            tar.extractall(tmp / "download", filter="tar")
        [unpacked] = list((tmp / "download").iterdir())
        home = tmp / "home"
        home.mkdir()
        env = smoke_env(tmp / "smoke")
        env.update(HOME=str(home), PATH=f"{home / '.local' / 'bin'}:/usr/bin:/bin")
        for key in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME", "PARLEY_HOME"):
            env.pop(key, None)
        sh = Path("sh")

        r = run(sh, [str(unpacked / "install.sh")], env)
        expect(r.returncode == 0 and "installed in" in r.stdout, "install.sh failed", r)
        opt = home / ".local" / "opt" / "parley"
        desktop = home / ".local" / "share" / "applications" / "parley.desktop"
        icons = home / ".local" / "share" / "icons" / "hicolor"
        link = home / ".local" / "bin" / "parley"
        expect(desktop.is_file(), f"no menu entry at {desktop}", r)
        expect((icons / "256x256" / "apps" / "parley.png").is_file(), "no icon installed", r)
        expect((icons / "scalable" / "apps" / "parley.svg").is_file(), "no SVG icon", r)
        expect(link.is_symlink() and link.resolve() == (opt / "parley").resolve(), "no link", r)
        entry = dict(line.split("=", 1) for line in desktop.read_text().splitlines() if "=" in line)
        exec_argv = shlex.split(entry["Exec"])
        expect(exec_argv == [str(opt / "parley")], f"Exec is {entry['Exec']!r}", r)
        validate = shutil.which("desktop-file-validate")
        if validate:
            v = run(Path(validate), [str(desktop)], env)
            expect(v.returncode == 0 and not v.stdout.strip(), "the menu entry is not valid", v)

        # The menu entry starts Parley (offscreen, quitting at its first paint).
        window = _window(Path(exec_argv[0]), env)
        version_run = run(Path("parley"), ["--version"], env)
        expect(version_run.stdout.strip() == f"parley {version()}", "parley on PATH", version_run)

        # The person's data (the platform's folders under HOME) survives an upgrade.
        data = home / ".local" / "share" / "parley"
        config = home / ".config" / "parley"
        expect(data.is_dir() and config.is_dir(), "the window made no data folders")
        (data / "keep-me").write_text("conversations live here")
        r = run(sh, [str(unpacked / "install.sh")], env)
        expect(r.returncode == 0 and "upgraded in" in r.stdout, "a second install.sh failed", r)
        expect((data / "keep-me").is_file(), "install.sh touched the person's data", r)
        expect(not list(opt.parent.glob("parley.*")), "the upgrade left a folder behind", r)

        r = run(sh, [str(opt / "uninstall.sh")], env)
        expect(r.returncode == 0, "uninstall.sh failed", r)
        gone = [p for p in (opt, desktop, link) if p.exists() or p.is_symlink()]
        expect(not gone, f"uninstall.sh left {gone}", r)
        expect((data / "keep-me").is_file() and config.is_dir(), "uninstall.sh removed data", r)

        run(sh, [str(unpacked / "install.sh")], env)
        r = run(sh, [str(opt / "uninstall.sh"), "--purge"], env)
        expect(r.returncode == 0 and not data.exists() and not config.exists(), "--purge", r)
    return {"first_paint_s": window["first_paint_s"], "exec": entry["Exec"]}


# ---------------------------------------------------------------- main
def main(argv: Sequence[str] | None = None) -> int:
    """Build, measure and smoke-test; returns the exit code."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--skip-build", action="store_true", help="smoke-test the existing bundle")
    p.add_argument("--no-smoke", action="store_true", help="build only")
    p.add_argument("--clean", action="store_true", help="drop PyInstaller's cache first")
    p.add_argument("--debug", action="store_true", help="console + import tracing build")
    p.add_argument(
        "--assets",
        type=Path,
        default=default_assets(),
        help="offline assets folder to bundle (default: PARLEY_ASSETS, else ../shared/assets)",
    )
    p.add_argument("--dist", type=Path, default=DIST, help="output folder (default: dist/)")
    p.add_argument("--report", type=Path, default=REPORT, help="where the JSON report goes")
    p.add_argument(
        "--installer",
        action="store_true",
        help="also make this system's installer (Linux: a .tar.gz with install.sh, then "
        "installed into a temporary HOME as part of the smoke test)",
    )
    args = p.parse_args(argv)

    report: dict[str, Any] = {
        "parley": version(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
    }
    with contextlib.suppress(ImportError):
        import PyInstaller

        report["pyinstaller"] = PyInstaller.__version__
    if not args.skip_build:
        if args.assets is None or not args.assets.is_dir():
            print(
                "build: no offline assets folder (set PARLEY_ASSETS or pass --assets DIR): "
                "the app's first run would need the network",
                file=sys.stderr,
            )
            return 2
        report["assets"] = str(args.assets.resolve())
        report["build_seconds"] = round(
            build(dist=args.dist, clean=args.clean, debug=args.debug, assets=args.assets), 1
        )
    root = bundle_dir(args.dist)
    if not root.is_dir():
        print(f"build: no bundle at {root}", file=sys.stderr)
        return 1
    report["bundle"] = {"path": str(root), **bundle_sizes(root)}
    status = 0
    tarball = None
    if args.installer:
        t0 = time.monotonic()
        tarball = installer(args.dist)
        report["installer"] = {
            "path": str(tarball),
            "mb": round(tarball.stat().st_size / 1e6, 1),
            "seconds": round(time.monotonic() - t0, 1),
        }
    if not args.no_smoke:
        try:
            report["smoke"] = smoke_test(args.dist)
            if tarball is not None and tarball.name.endswith(".tar.gz"):
                report["smoke"]["install"] = install_smoke(tarball)
            report["smoke_passed"] = True
        except SmokeFailure as exc:
            report["smoke_passed"] = False
            report["smoke_failure"] = str(exc)
            print(f"smoke: FAILED: {exc}", file=sys.stderr)
            status = 1
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    _summary(report, args.report)
    return status


def _summary(report: dict[str, Any], path: Path) -> None:
    b = report["bundle"]
    print(f"\nbundle: {b['path']}  {b['total_mb']} MB in {b['files']} files")
    for part in b["top"]:
        print(f"  {part['mb']:>7.1f} MB  {part['path']}")
    if "build_seconds" in report:
        print(f"build: {report['build_seconds']} s")
    smoke = report.get("smoke")
    if smoke:
        print(
            f"start-up: --version {smoke['version_cold_s']} s cold, {smoke['version_warm_s']} s "
            f"warm; window first paint {smoke['window_first_paint_cold_s']} s cold, "
            f"{smoke['window_first_paint_warm_s']} s warm"
        )
        print(f"self-test: {smoke['self_test']['seconds']} s")
        if "install" in smoke:
            print(f"install.sh: the menu entry's Exec ({smoke['install']['exec']}) painted")
        print("smoke: passed")
    print(f"report: {path}")


if __name__ == "__main__":
    raise SystemExit(main())
