"""Event-loop stalls of the real window while a real folder indexes in the background.

Run: cd /work/main && QT_QPA_PLATFORM=offscreen .venv/bin/python tests/bench/bench_knowledge_ui.py
Prints ONE JSON object: index_stall_p99_ms, index_stall_max_ms (5 ms QTimer heartbeat, a stall
is how late a beat comes), plus the run's size and duration. The Knowledge panel is open and
showing progress (the worst case: it repaints on every progress event).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(_REPO))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QT_API", "pyside6")
if (_REPO.parent / "shared" / "assets").is_dir():  # offline machines (see README)
    os.environ.setdefault("PARLEY_ASSETS", str(_REPO.parent / "shared" / "assets"))
os.environ["ANONYMIZED_TELEMETRY"] = "False"
HEARTBEAT_MS = 5


def make_folder(base: Path, n: int) -> Path:
    root = base / "corpus"
    root.mkdir()
    for i in range(n):
        (root / f"doc{i:03d}.md").write_text(
            f"# Document {i}\n\n"
            + "\n\n".join(
                f"Section {j} of document {i}. " + " ".join(f"term{i}x{j}x{k}" for k in range(70))
                for j in range(3)
            )
        )
    (root / "blob.txt").write_bytes(b"\x00binary" * 100)
    return root


def pct(xs, q):
    xs = sorted(xs)
    if not xs:
        return 0.0
    k = min(len(xs) - 1, max(0, round(q * (len(xs) - 1))))
    return xs[k]


async def run(n: int) -> dict:
    from tests.bench.heartbeat import Heartbeat

    from parley.core.paths import default_paths
    from parley.core.secrets import MemorySecretStore, Secrets
    from parley.core.services import build_services
    from parley.core.settings import Settings
    from parley.ui.app import bind_services
    from parley.ui.errors import ErrorPresenter
    from parley.ui.main_window import MainWindow
    from parley.ui.tasks import TaskSet

    base = Path(tempfile.mkdtemp(prefix="kbench-"))
    os.environ["PARLEY_HOME"] = str(base / "home")
    folder = make_folder(base, n)
    services = build_services(
        default_paths(),
        Settings(onboarded=True),
        Secrets(MemorySecretStore(), environ={}),
        environ={},
        stream_worker=True,
    )
    w = MainWindow(tasks=TaskSet(), presenter=ErrorPresenter(show_dialogs=False))
    w.resize(1200, 760)
    w.show()
    bind_services(w, services)
    w.show_documents()
    k = w.knowledge
    await k.ensure_attached()  # measured separately: opening the store is a worker-thread job
    for _ in range(20):
        await asyncio.sleep(0.02)
    heartbeat = Heartbeat(HEARTBEAT_MS)
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    heartbeat.start()
    w.handle_dropped_paths([str(folder)])
    events = [0]
    k.sig_index_progress.connect(lambda _p: events.__setitem__(0, events[0] + 1))
    while not k.is_busy():
        await asyncio.sleep(0.005)
    while k.is_busy():
        await asyncio.sleep(0.005)
    # let the last refresh land
    for _ in range(20):
        await asyncio.sleep(0.01)
    stalls = heartbeat.stop()
    took = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    rows = k.rows()
    await w.shutdown()
    await services.aclose()
    w.close_now()
    return {
        "index_stall_p50_ms": round(pct(stalls, 0.5), 2),
        "index_stall_p99_ms": round(pct(stalls, 0.99), 2),
        "index_stall_max_ms": round(max(stalls) if stalls else 0.0, 2),
        "heartbeats": len(stalls),
        "files": rows[0].files if rows else 0,
        "chunks": rows[0].chunks if rows else 0,
        "index_seconds": round(took, 1),
        "gui_process_cpu_s": round(cpu, 2),
        "progress_events": events[0],
        "cpus": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "targets": {"index_stall_p99_ms": 16},
    }


def main() -> int:
    import qasync

    from parley.ui.app import create_application

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 60
    app = create_application([])
    with asyncio.Runner(loop_factory=lambda: qasync.QEventLoop(app)) as runner:
        print(json.dumps(runner.run(run(n))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
