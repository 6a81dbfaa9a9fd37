"""``parley --self-test``: can this installation run Parley? Seven checks, headless.

Each check tries the real thing the way Parley does it, on a throw-away copy where it would
write, and says what to do when it fails:

- ``qt``: Qt's platform plugin loads, a widget renders, the icon (SVG) loads, ICU collation
  and casing work. Runs in a child process (core never imports Qt; a platform plugin that
  cannot load aborts its process) with ``--self-test-qt``, handled by ``parley.ui.app``.
- ``keyring``: names the keyring backend; fails on keyring's fail/null backend (and on
  plaintext ones) unless ``allow_no_keyring``.
- ``tiktoken``: both BPE files are where tiktoken looks (the assets folder), their SHA-256
  is tiktoken's own, and they encode: no download can happen.
- ``embedding``: the MiniLM ONNX model Parley indexes with (fp32, or int8 when the settings
  choose it) loads from its folder and embeds one sentence.
- ``chroma``: Chroma opens a store in a temporary folder, adds two vectors, queries one back.
- ``database``: Parley's SQLite database opens read-only (or there is none yet); FTS5 works.
- ``worker``: the stream worker process starts (``spawn``: in the frozen app it re-runs the
  executable) and streams one answer from a loopback server through the real SDK.

Nothing is created in Parley's folders. ``tests/core/test_selftest.py`` covers pass and fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import math
import os
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from parley.core.assets import MODEL_SUBDIR, TIKTOKEN_ENCODINGS, tiktoken_file
from parley.core.paths import Paths

QT_PROBE_ARG = "--self-test-qt"
"""Hidden command-line flag: ``parley --self-test-qt RESULT_FILE`` runs the Qt probe."""

QT_TIMEOUT_S = 60.0
"""Longest the Qt probe may take (a cold start on a slow disk takes seconds)."""

WORKER_TIMEOUT_S = 60.0
"""Longest the worker may take to start and answer (it imports both SDKs first)."""

CHECK_ORDER = ("qt", "keyring", "tiktoken", "embedding", "chroma", "database", "worker")
"""The checks, in the order they are reported."""

REINSTALL = "reinstall Parley (the installed copy is incomplete)"
"""Advice when a file that ships inside the packaged app is missing or broken."""


@dataclass(frozen=True)
class Check:
    """The result of one check."""

    name: str
    ok: bool
    detail: str
    """What was found (the backend's name, the Qt platform, the model folder, ...)."""
    fix: str = ""
    """What to do about a failure (empty when it passed)."""
    seconds: float = 0.0


LINUX = sys.platform.startswith("linux")
"""Advice differs on Linux (system libraries, Secret Service)."""


def _frozen() -> bool:
    return bool(getattr(sys, "frozen", False))


def _timed(name: str, fn: Callable[[], Check]) -> Check:
    t0 = time.perf_counter()
    try:
        result = fn()
    except Exception as exc:  # a check must never take the whole self-test down
        result = Check(name, False, f"unexpected error: {type(exc).__name__}: {exc}", _bug())
    return Check(result.name, result.ok, result.detail, result.fix, time.perf_counter() - t0)


def _bug() -> str:
    return REINSTALL if _frozen() else "reinstall Parley's dependencies (pip install -c ...)"


# ---------------------------------------------------------------- qt
def qt_command(result_file: Path) -> list[str]:
    """How to run the Qt probe in a child process (this executable when frozen)."""
    if _frozen():
        return [sys.executable, QT_PROBE_ARG, str(result_file)]
    return [sys.executable, "-m", "parley", QT_PROBE_ARG, str(result_file)]


def qt_environment(environ: Mapping[str, str]) -> tuple[dict[str, str], str]:
    """The probe's environment and a note: with no display, Qt is checked offscreen."""
    env = dict(environ)
    no_display = (
        sys.platform.startswith("linux")
        and not env.get("QT_QPA_PLATFORM")
        and not env.get("DISPLAY")
        and not env.get("WAYLAND_DISPLAY")
    )
    if no_display:
        env["QT_QPA_PLATFORM"] = "offscreen"
        return env, " (no display here: checked offscreen; the window needs a desktop session)"
    return env, ""


async def check_qt(environ: Mapping[str, str] | None = None) -> Check:
    """Run the Qt probe in a child process and read its JSON result."""
    env, note = qt_environment(os.environ if environ is None else environ)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="parley-selftest-") as tmp:
        out = Path(tmp) / "qt.json"
        try:
            proc = await asyncio.create_subprocess_exec(
                *qt_command(out),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                env=env,
            )
            _, err = await asyncio.wait_for(proc.communicate(), QT_TIMEOUT_S)
        except (OSError, TimeoutError) as exc:
            return Check("qt", False, f"the Qt probe did not run: {exc}", _bug())
        seconds = time.perf_counter() - t0
        try:
            found: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            found = {}
    stderr = err.decode("utf-8", "replace")
    platform = env.get("QT_QPA_PLATFORM") or "default"
    if proc.returncode != 0 or not found:
        return Check(
            "qt",
            False,
            f"Qt could not start on the {platform!r} platform (exit {proc.returncode}): "
            + _last_lines(stderr),
            _bug() if "Traceback" in stderr else _qt_fix(stderr),
            seconds,
        )
    problems = list(found.get("problems", []))
    detail = f"Qt {found.get('qt')} on the {found.get('platform')!r} platform{note}"
    if found.get("warnings"):
        said = [w.splitlines()[0] for w in found["warnings"][:3] if w.strip()]
        detail += f" (Qt said: {'; '.join(said)})"
    if problems:
        return Check("qt", False, f"{detail}: {'; '.join(problems)}", _bug(), seconds)
    return Check(
        "qt", True, detail + "; widgets, SVG icon, ICU collation, casing and zone names work"
    )


def _last_lines(text: str, n: int = 3) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return " / ".join(lines[-n:]) or "no output"


def _qt_fix(stderr: str) -> str:
    low = stderr.lower()
    if "could not connect to display" in low or "failed to create wl_display" in low:
        return (
            "start Parley inside a desktop session (DISPLAY or WAYLAND_DISPLAY must be set); "
            "to check without one, run with QT_QPA_PLATFORM=offscreen"
        )
    if LINUX:
        return (
            "install the libraries Qt's platform plugin needs (Debian/Ubuntu: libegl1 "
            "libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 "
            "libxcb-shape0 libfontconfig1 libdbus-1-3); QT_DEBUG_PLUGINS=1 shows which is missing"
        )
    return REINSTALL


def qt_probe_report(
    qt_version: str, platform: str, problems: Sequence[str], extra: Mapping[str, Any]
) -> str:
    """The probe's JSON result (written by ``parley.ui.app``'s probe, read by :func:`check_qt`)."""
    return json.dumps({"qt": qt_version, "platform": platform, "problems": list(problems), **extra})


# ---------------------------------------------------------------- keyring
def check_keyring(allow_no_keyring: bool) -> Check:
    """Name the keyring backend; fail on fail/null/plaintext backends unless allowed."""
    import keyring
    from keyring.backends import chainer

    from parley.core.secrets import KeyringSecretStore

    backend = keyring.get_keyring()
    inner = list(backend.backends) if isinstance(backend, chainer.ChainerBackend) else [backend]
    names = ", ".join(f"{type(b).__module__}.{type(b).__name__}" for b in inner) or "none"
    if isinstance(backend, chainer.ChainerBackend):
        names = f"chainer of [{names}]"
    if KeyringSecretStore().available():
        return Check("keyring", True, f"{names}: keys are stored in the OS keyring")
    if allow_no_keyring:
        return Check(
            "keyring",
            True,
            f"{names}: no usable OS keyring (allowed by --allow-no-keyring); keys come from "
            "OPENAI_API_KEY / ANTHROPIC_API_KEY or last for one session",
        )
    if LINUX:
        fix = (
            "start or unlock a Secret Service keyring (GNOME Keyring or KWallet) in this "
            "session; or run with --allow-no-keyring and give keys through OPENAI_API_KEY / "
            "ANTHROPIC_API_KEY"
        )
    else:
        fix = "check that the system keychain is available to this user, or --allow-no-keyring"
    return Check("keyring", False, f"{names}: no usable OS keyring, keys cannot be saved", fix)


# ---------------------------------------------------------------- tiktoken
def check_tiktoken(paths: Paths) -> Check:
    """Both BPE files are in tiktoken's cache folder, verified, and encode a sentence."""
    from parley.core import tokens

    tokens.configure(paths.assets_dir)
    cache = os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR")
    fix = REINSTALL if _frozen() and paths.assets_dir is not None else _assets_fix()
    if not cache:
        return Check(
            "tiktoken",
            False,
            "no assets folder with tiktoken's files: the first token count would download them",
            fix,
        )
    problems = []
    for name, (url, sha) in TIKTOKEN_ENCODINGS.items():
        path = Path(cache) / tiktoken_file(url)
        if not path.is_file():
            problems.append(f"{name} is missing ({path})")
        elif hashlib.sha256(path.read_bytes()).hexdigest() != sha:
            problems.append(f"{name} is damaged ({path}: wrong SHA-256)")
    if problems:
        return Check("tiktoken", False, "; ".join(problems), fix)
    import tiktoken

    counts = [
        len(tiktoken.get_encoding(name).encode("Parley counts tokens offline."))
        for name in TIKTOKEN_ENCODINGS
    ]
    if min(counts) <= 0:  # pragma: no cover - an encoder that returns nothing is a broken build
        return Check("tiktoken", False, "encoding returned no tokens", _bug())
    return Check(
        "tiktoken",
        True,
        f"{' and '.join(TIKTOKEN_ENCODINGS)} encode from {cache} ({counts[0]} tokens)",
    )


def _assets_fix() -> str:
    return (
        "run `parley assets download` on a machine with internet (or copy an assets folder "
        "here) and set PARLEY_ASSETS to that folder"
    )


# ---------------------------------------------------------------- embedding + chroma
def _int8_chosen(paths: Paths) -> bool:
    """Whether the settings choose the int8 local model (fp32 is the default)."""
    from parley.core.knowledge.indexer import EmbedderConfig
    from parley.core.settings import load_settings

    try:
        config = EmbedderConfig.from_setting(
            load_settings(paths.settings_file).knowledge.embedding_model
        )
    except Exception:  # a broken settings file is not this check's business
        return False
    return config.kind == "local" and config.quantized


def check_embedding(paths: Paths) -> tuple[Check, list[float] | None]:
    """The local model loads from its folder (no download) and embeds one sentence.

    The local model the settings choose: fp32 (the default), or int8. The int8 one may not
    exist yet: Parley makes it from the fp32 files on first use, so the check makes it in a
    temporary folder, which proves that works without writing to Parley's folders.
    """
    from parley.core.knowledge.embeddings import (
        EmbeddingModelUnavailable,
        LocalEmbedder,
        local_embedder,
        model_files_complete,
    )

    quantized = _int8_chosen(paths)
    emb = local_embedder(paths, quantized=quantized)
    onnx = emb.files_dir / "onnx"
    fix = REINSTALL if _frozen() and paths.assets_dir is not None else _assets_fix()
    if not emb.ready:
        where = [str(onnx)]
        if paths.assets_dir is not None and paths.assets_dir / MODEL_SUBDIR != onnx:
            where.insert(0, str(paths.assets_dir / MODEL_SUBDIR))
        detail = "the model files are missing in " + " and in ".join(where)
        return Check("embedding", False, detail, fix), None
    made = ""
    with tempfile.TemporaryDirectory(prefix="parley-selftest-", ignore_cleanup_errors=True) as d:
        if quantized and not model_files_complete(onnx):
            emb = LocalEmbedder(emb.model_dir, quantized=True, int8_dir=Path(d))
            onnx = emb.model_dir / "onnx"
            made = " (int8 model made from it in a temporary folder, as Parley does once)"
        try:
            emb.ensure_ready()
            vector = emb.embed(["Parley embeds this sentence on this computer."])[0]
        except EmbeddingModelUnavailable as exc:
            return Check("embedding", False, exc.user_message, fix), None
    norm = math.sqrt(sum(x * x for x in vector))
    if len(vector) != emb.dimension or abs(norm - 1.0) > 1e-3:
        return Check("embedding", False, f"unexpected vector from {onnx}", fix), None
    detail = f"{emb.model_id} from {onnx}{made}, {len(vector)} dimensions"
    return Check("embedding", True, detail), vector


def check_chroma(vector: Sequence[float] | None) -> Check:
    """Chroma opens a store in a temporary folder, stores two vectors, finds one again."""
    import chromadb
    from chromadb.config import Settings

    dim = len(vector) if vector else 384
    first: Any = list(vector) if vector else [1.0] + [0.0] * (dim - 1)
    second: Any = [0.0, 1.0] + [0.0] * (dim - 2)
    with tempfile.TemporaryDirectory(prefix="parley-selftest-", ignore_cleanup_errors=True) as d:
        client = chromadb.PersistentClient(path=d, settings=Settings(anonymized_telemetry=False))
        try:
            col = client.create_collection(
                "parley_self_test", configuration={"hnsw": {"space": "cosine"}}
            )
            col.add(ids=["a", "b"], embeddings=[first, second], documents=["first", "second"])
            found = col.query(query_embeddings=[first], n_results=1)
            ids = found["ids"][0] if found["ids"] else []
        finally:
            with contextlib.suppress(Exception):
                client.clear_system_cache()
    if ids != ["a"]:
        return Check("chroma", False, f"a query returned {ids} instead of ['a']", _bug())
    return Check("chroma", True, f"chromadb {chromadb.__version__}: store, add and query work")


# ---------------------------------------------------------------- database
def check_database(paths: Paths) -> Check:
    """Parley's database opens read-only (nothing is written); FTS5 is compiled in."""
    fts5 = _has_fts5()
    if not fts5:
        return Check("database", False, "this SQLite lacks FTS5 (keyword search)", _bug())
    db = paths.db_file
    if not db.exists():
        return Check(
            "database",
            True,
            f"no database yet at {db} (Parley creates it at first start); "
            f"SQLite {sqlite3.sqlite_version} with FTS5",
        )
    # No write-ahead log: no process has the database open, so read it as immutable (SQLite
    # then creates no -wal/-shm files beside it). Otherwise read-only, beside the writer.
    wal = db.with_name(db.name + "-wal").exists()
    mode = "mode=ro" if wal else "immutable=1"
    try:
        conn = sqlite3.connect(f"{db.resolve().as_uri()}?{mode}", uri=True, timeout=5)
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            count = (
                conn.execute("SELECT count(*) FROM conversations").fetchone()[0]
                if "conversations" in tables
                else 0
            )
        finally:
            conn.close()
    except sqlite3.Error as exc:
        text = str(exc).lower()
        if "not a database" in text or "malformed" in text:
            fix = f"move {db} aside (Parley starts a new one) and restore it from a backup"
        elif "locked" in text or "busy" in text:
            fix = "close other programs that use Parley's database, then try again"
        else:
            fix = f"check that {db} and its folder can be read by this user"
        return Check("database", False, f"{db} cannot be read: {exc}", fix)
    return Check("database", True, f"{db}: {count} conversations (opened read-only)")


def _has_fts5() -> bool:
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute("CREATE VIRTUAL TABLE t USING fts5(x)")
        return True
    except sqlite3.Error:
        return False
    finally:
        conn.close()


# ---------------------------------------------------------------- worker
class _Echo(BaseHTTPRequestHandler):
    """A loopback stand-in for an OpenAI-compatible server: streams ``pong``."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        chunks = [
            {"role": "assistant", "content": ""},
            {"content": "po"},
            {"content": "ng"},
        ]
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for i, delta in enumerate(chunks):
            body: dict[str, Any] = {
                "id": "self-test",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": "self-test",
                "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
            }
            if i == len(chunks) - 1:
                body["choices"][0]["finish_reason"] = "stop"
            self.wfile.write(f"data: {json.dumps(body)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


async def check_worker() -> Check:
    """The stream worker starts and streams one answer from a loopback server through its SDK."""
    from parley.core.providers.base import ChatRequest, Message, TextDelta, Timeouts
    from parley.core.providers.registry import AdapterSpec
    from parley.core.providers.worker import StreamWorker

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=server.serve_forever, name="parley-selftest-echo", daemon=True).start()
    worker = StreamWorker()
    try:
        ready = await asyncio.wait_for(worker.start(), WORKER_TIMEOUT_S)
        if not ready:
            return Check("worker", False, "the stream worker process did not start", _bug())
        spec = AdapterSpec(
            protocol="openai",
            name="self-test",
            label="Self-test",
            base_url=f"http://127.0.0.1:{server.server_address[1]}/v1",
            timeouts=Timeouts(connect=5, first_byte=20, idle=20),
            api_key="self-test",
        )
        request = ChatRequest(model="self-test", messages=(Message("user", "ping"),))
        text = ""
        async for ev in worker.stream(spec, request):
            if isinstance(ev, TextDelta):
                text += ev.text
        pid = worker.pid
    except TimeoutError:
        return Check("worker", False, "the stream worker did not answer in time", _bug())
    except Exception as exc:
        message = getattr(exc, "user_message", None) or f"{type(exc).__name__}: {exc}"
        fix = _bug()
        if any(os.environ.get(v) for v in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")):
            fix = "add 127.0.0.1 to NO_PROXY (a proxy is set), then try again"
        return Check("worker", False, f"the stream worker failed: {message}", fix)
    finally:
        await worker.aclose()
        server.shutdown()
        server.server_close()
    if text != "pong":
        return Check("worker", False, f"the stream worker answered {text!r}", _bug())
    return Check("worker", True, f"worker process {pid} streamed an answer through the SDK")


# ---------------------------------------------------------------- all
async def run_self_test(
    paths: Paths,
    *,
    allow_no_keyring: bool = False,
    qt: Callable[[], Awaitable[Check]] | None = None,
) -> list[Check]:
    """Run every check (the slow ones side by side); results in :data:`CHECK_ORDER`.

    Args:
        paths: Parley's folders (the database is only read; nothing is created).
        allow_no_keyring: Pass the keyring check without a usable OS keyring.
        qt: The Qt check (default: :func:`check_qt`, a child process).
    """

    async def timed_async(name: str, make: Callable[[], Awaitable[Check]]) -> Check:
        t0 = time.perf_counter()
        try:
            result = await make()
        except Exception as exc:
            result = Check(name, False, f"unexpected error: {type(exc).__name__}: {exc}", _bug())
        return Check(result.name, result.ok, result.detail, result.fix, time.perf_counter() - t0)

    def in_thread() -> list[Check]:
        vector: list[float] | None = None

        def embedding() -> Check:
            nonlocal vector
            check, vector = check_embedding(paths)
            return check

        return [
            _timed("keyring", lambda: check_keyring(allow_no_keyring)),
            _timed("tiktoken", lambda: check_tiktoken(paths)),
            _timed("embedding", embedding),
            _timed("chroma", lambda: check_chroma(vector)),
            _timed("database", lambda: check_database(paths)),
        ]

    qt_task = asyncio.ensure_future(timed_async("qt", qt or check_qt))
    worker_task = asyncio.ensure_future(timed_async("worker", check_worker))
    results = await asyncio.to_thread(in_thread)
    results += [await qt_task, await worker_task]
    by_name = {c.name: c for c in results}
    return [by_name[n] for n in CHECK_ORDER]


def report_text(checks: Sequence[Check], seconds: float) -> str:
    """One line per check (and its fix), then a summary line."""
    lines = []
    for c in checks:
        lines.append(f"{'ok  ' if c.ok else 'FAIL'}  {c.name:<10} {c.detail} ({c.seconds:.1f} s)")
        if not c.ok and c.fix:
            lines.append(f"      {'':<10} fix: {c.fix}")
    failed = [c.name for c in checks if not c.ok]
    if failed:
        lines.append(
            f"self-test: {len(failed)} of {len(checks)} checks failed: {', '.join(failed)}"
        )
    else:
        lines.append(f"self-test: all {len(checks)} checks passed in {seconds:.1f} s")
    return "\n".join(lines)


def report_json(checks: Sequence[Check], seconds: float, version: str) -> str:
    """The result as one JSON object."""
    import platform

    return json.dumps(
        {
            "ok": all(c.ok for c in checks),
            "parley": version,
            "frozen": _frozen(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "seconds": round(seconds, 2),
            "checks": [{**asdict(c), "seconds": round(c.seconds, 2)} for c in checks],
        },
        ensure_ascii=False,
    )
