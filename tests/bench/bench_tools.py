"""Benchmark of the local tools; prints ONE JSON object.

Run: ``.venv/bin/python tests/bench/bench_tools.py`` (about 15 s on 2 cores).

- ``calc_ops_per_s``: a 1,000-expression realistic mix through ``evaluate``.
- ``calc_hostile_max_ms``: the slowest hostile expression (``9**9**9``, ``factorial(10**7)``,
  100,000 nested parentheses, 1 MB of text...), best of 3 runs each; target ≤ 200 ms.
- ``file_search_ms``: content search through the registry (as the agent runs it) over a
  generated tree of 10,000 text files of 2-8 KB in nested folders, the query in a few files;
  median of 5 warm runs.
- ``file_search_grep_ratio``: that time over ``grep -rIl -i QUERY tree`` (median of 5 warm
  runs, same tree, same run); target ≤ 2.
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from parley.core.tools import FolderPolicy, ToolRegistry, evaluate, make_file_tools
from parley.core.tools.calculator import CalcError

QUERY = "zephyrquux"
FILES = 10_000
MATCHING_FILES = 7
WORDS = (
    "the of and to in is that for it as was with be by on not he this are or his from at which "
    "but have an they you were her she there been one all we their has would when if so no "
    "report budget invoice meeting project schedule design review quarter figure table result"
).split()


def realistic_expressions(n: int, rng: random.Random) -> list[str]:
    """A mix of what a model asks a calculator: money, percentages, powers, functions."""
    templates = [
        lambda: f"{rng.randint(1, 9999)}.{rng.randint(0, 99):02d} * {rng.randint(1, 12)}",
        lambda: f"({rng.uniform(1, 500):.2f} + {rng.uniform(1, 500):.2f}) * 1.2",
        lambda: f"{rng.randint(1, 10**6)} / {rng.randint(1, 1000)}",
        lambda: f"{rng.uniform(0, 100):.3f} / {rng.uniform(1, 100):.3f}",
        lambda: f"{rng.randint(2, 99)} ** {rng.randint(2, 40)}",
        lambda: f"sqrt({rng.randint(1, 10**6)})",
        lambda: f"log({rng.randint(1, 10**6)}, 10)",
        lambda: f"sin(pi / {rng.randint(1, 12)}) ** 2 + cos(pi / {rng.randint(1, 12)}) ** 2",
        lambda: f"round({rng.uniform(0, 1000):.5f}, 2)",
        lambda: f"factorial({rng.randint(1, 60)})",
        lambda: f"{rng.randint(1, 10**9)} % {rng.randint(1, 97)}",
        lambda: f"{rng.randint(1, 10**4)} * (1 + {rng.randint(1, 20)}/100) ** {rng.randint(1, 30)}",
        lambda: f"max({rng.randint(1, 99)}, {rng.uniform(0, 99):.1f}, {rng.randint(1, 99)}/3)",
        lambda: f"{rng.uniform(0, 10):.2f} < {rng.uniform(0, 10):.2f} <= 10",
        lambda: f"hypot({rng.randint(1, 99)}, {rng.randint(1, 99)})",
    ]
    return [rng.choice(templates)() for _ in range(n)]


HOSTILE = [
    "9**9**9",
    "factorial(10**7)",
    "10**10**10",
    "(" * 100_000 + "1" + ")" * 100_000,
    "1+" * 500_000 + "1",
    "-" * 4_000 + "1",
    "- " * 2_000 + "1",
    "2**2**2**2**2**2**2",
    "factorial(factorial(20))",
    "(1/3)**100000",
    "1e100000",
    "(10**4999)*(10**4999)*(10**4999)",
    "not " * 1_000 + "1",
    "sqrt(" * 40 + "2" + ")" * 40,
    "1" + "+1" * 2_400,
    "2**" * 1_600 + "2",
]


def bench_calculator() -> tuple[float, float]:
    exprs = realistic_expressions(1_000, random.Random(7))
    for e in exprs[:50]:  # warm-up
        evaluate(e)
    t0 = time.perf_counter()
    for e in exprs:
        evaluate(e)
    ops = len(exprs) / (time.perf_counter() - t0)
    worst = 0.0
    for e in HOSTILE:
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            try:
                evaluate(e)
            except CalcError:
                pass
            best = min(best, (time.perf_counter() - t0) * 1000)
        worst = max(worst, best)
    return ops, worst


def make_tree(root: Path, rng: random.Random) -> None:
    matching = set(rng.sample(range(FILES), MATCHING_FILES))
    for i in range(FILES):
        folder = root / f"area{i % 10}" / f"part{(i // 10) % 10}" / f"set{(i // 100) % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        size = rng.randint(2_000, 8_000)
        lines, length = [], 0
        while length < size:
            line = " ".join(rng.choices(WORDS, k=rng.randint(6, 16)))
            lines.append(line)
            length += len(line) + 1
        if i in matching:
            lines.insert(rng.randrange(len(lines)), f"see the ZephyrQuux note {i}")
        (folder / f"doc{i:05d}.txt").write_text("\n".join(lines) + "\n")


def bench_file_search(root: Path) -> tuple[float, float, int]:
    registry = ToolRegistry(make_file_tools(FolderPolicy([root])))
    args = json.dumps({"query": QUERY, "max_results": 50})

    def ours() -> float:
        t0 = time.perf_counter()
        result = asyncio.run(registry.run("file_search", args))
        elapsed = time.perf_counter() - t0
        assert not result.is_error, result.content
        ours.matches = result.content.count("ZephyrQuux")  # type: ignore[attr-defined]
        return elapsed

    def grep() -> float:
        t0 = time.perf_counter()
        out = subprocess.run(
            ["grep", "-rIl", "-i", QUERY, str(root)], capture_output=True, check=False
        )
        elapsed = time.perf_counter() - t0
        assert out.stdout.count(b"\n") == MATCHING_FILES, out.stdout
        return elapsed

    grep(), ours()  # warm the page cache and the imports
    grep_times, our_times = [], []
    for _ in range(5):
        grep_times.append(grep())
        our_times.append(ours())
    ours_s, grep_s = statistics.median(our_times), statistics.median(grep_times)
    return ours_s * 1000, ours_s / grep_s, ours.matches  # type: ignore[attr-defined]


def main() -> None:
    ops, hostile_ms = bench_calculator()
    tmp = Path(tempfile.mkdtemp(prefix="parley-bench-tools-"))
    try:
        make_tree(tmp / "tree", random.Random(11))
        search_ms, ratio, matches = bench_file_search(tmp / "tree")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if matches != MATCHING_FILES:
        print(f"warning: found {matches} matches, expected {MATCHING_FILES}", file=sys.stderr)
    print(
        json.dumps(
            {
                "calc_ops_per_s": round(ops),
                "calc_hostile_max_ms": round(hostile_ms, 2),
                "file_search_ms": round(search_ms, 1),
                "file_search_grep_ratio": round(ratio, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
