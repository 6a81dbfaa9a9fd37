"""The packaged app: size, where the bytes go, build time, start-up against the source run.

Prints one JSON object::

    bundle_mb             the one-folder bundle, all files (MB = 10^6 bytes)
    bundle_mib            the same in MiB (what ``du -sh`` shows)
    largest_parts         the ten largest parts, MB (packaging/build.py's split)
    build_s               PyInstaller's run (null with --skip-build)
    frozen_first_paint_s  median of N window starts of the frozen app, to its first paint
    source_first_paint_s  the same from source (``python -m parley``), interleaved
    start_ratio           frozen / source
    self_test_s           the frozen ``parley --self-test`` (wall time)
    self_test_cpu_s       its CPU time, child processes included: the wall time on an idle
                          machine is at most this (the checks run side by side), whatever
                          else loads this one

Targets (issue 16): bundle ≤ 350 MB, frozen first paint ≤ 1.5 s and ≤ 1.5x the source run,
self-test ≤ 10 s. Run (from the checkout, the packaging extra installed)::

    PARLEY_ASSETS=../shared/assets .venv/bin/python tests/bench/bench_bundle.py [--skip-build]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "packaging"))

import build  # noqa: E402  (packaging/build.py)


def main() -> int:
    """Build (unless told not to), measure, print JSON."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--skip-build", action="store_true", help="measure the bundle in dist/")
    p.add_argument("--runs", type=int, default=5, help="window starts per side (default 5)")
    args = p.parse_args()

    build_s = None
    if not args.skip_build:
        assets = build.default_assets()
        if assets is None:
            print("bench_bundle: set PARLEY_ASSETS (the offline assets)", file=sys.stderr)
            return 2
        build_s = round(build.build(assets=assets), 1)
    root = build.bundle_dir()
    sizes = build.bundle_sizes(root)
    window_exe, cli = build.executables()
    total_bytes = sum(
        f.stat().st_size for f in root.rglob("*") if f.is_file() and not f.is_symlink()
    )

    frozen: list[float] = []
    source: list[float] = []
    with tempfile.TemporaryDirectory(prefix="parley-bench-bundle-") as tmp_name:
        tmp = Path(tmp_name)
        env = build.smoke_env(tmp)
        # One warm-up each (page cache), then interleaved runs: same machine load for both.
        build._window(window_exe, env)
        source_argv = [sys.executable, "-m", "parley"]
        _source_window(source_argv, env)
        for _ in range(args.runs):
            frozen.append(build._window(window_exe, env)["first_paint_s"])
            source.append(_source_window(source_argv, env))
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        build.self_test(cli, env)
        self_test_s = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        self_test_cpu_s = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)

    frozen_s = statistics.median(frozen)
    source_s = statistics.median(source)
    print(
        json.dumps(
            {
                "bundle_mb": round(total_bytes / 1e6, 1),
                "bundle_mib": round(total_bytes / 2**20, 1),
                "files": sizes["files"],
                "largest_parts": {part["path"]: part["mb"] for part in sizes["top"]},
                "build_s": build_s,
                "frozen_first_paint_s": round(frozen_s, 3),
                "source_first_paint_s": round(source_s, 3),
                "start_ratio": round(frozen_s / source_s, 2),
                "frozen_first_paint_runs": frozen,
                "source_first_paint_runs": source,
                "self_test_s": round(self_test_s, 2),
                "self_test_cpu_s": round(self_test_cpu_s, 2),
                "load_average_1m": round(os.getloadavg()[0], 1),
            },
            indent=2,
        )
    )
    return 0


def _source_window(argv: list[str], env: dict[str, str]) -> float:
    """First paint of the window started from source (``python -m parley``)."""
    start = time.time()
    r = build.run(Path(argv[0]), [*argv[1:]], {**env, "PARLEY_FIRST_PAINT_EXIT": "1"})
    marks = [ln.split()[1] for ln in r.stdout.splitlines() if ln.startswith("PARLEY_FIRST_PAINT ")]
    if r.returncode != 0 or not marks:
        raise SystemExit(f"the source window did not paint:\n{r.describe()}")
    return round(float(marks[0]) - start, 3)


if __name__ == "__main__":
    raise SystemExit(main())
