"""Benchmark: folder walk, loading and chunking. Prints JSON. Suggested home: tests/bench/."""

from __future__ import annotations

import glob
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from parley.core.knowledge.chunking import Chunker, default_tokenizer_path
from parley.core.knowledge.loaders import IsolatedLoader, load_file
from parley.core.knowledge.sources import SourceFile, walk_folder


def timed(fn):
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    res: dict[str, object] = {"load_avg_1min": os.getloadavg()[0]}
    files = sorted(
        glob.glob(f"{sys.prefix}/lib/python3*/site-packages/**/*.md", recursive=True)
        + glob.glob("/usr/share/doc/**/*.md", recursive=True)
    )
    docs, wall, cpu = timed(lambda: [load_file(Path(f)) for f in files])
    mb = sum(d.size for d in docs) / 1e6
    res["corpus"] = {"files": len(files), "MB": round(mb, 1)}
    res["load_markdown"] = {
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "MB_per_cpu_s": round(mb / cpu, 1),
    }
    assets = Path(os.environ["PARLEY_ASSETS"]) if os.environ.get("PARLEY_ASSETS") else None
    for name, path in (("exact", default_tokenizer_path(assets)), ("estimate", None)):
        chunker = Chunker(tokenizer_path=path)
        for run in ("cold", "warm"):
            chunks, wall, cpu = timed(lambda ch=chunker: [c for d in docs for c in ch.chunk(d)])
            res[f"chunk_{name}_{run}"] = {
                "chunks": len(chunks),
                "chunks_per_s_wall": round(len(chunks) / wall),
                "chunks_per_s_cpu": round(len(chunks) / cpu),
                "mean_tokens": round(sum(c.token_count for c in chunks) / len(chunks), 1),
            }
    base = Path(tempfile.mkdtemp(dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
    try:
        for d in range(100):
            (base / f"d{d:02}").mkdir()
            for i in range(1000):
                fd = os.open(base / f"d{d:02}" / f"f{i:03}.txt", os.O_CREAT | os.O_WRONLY, 0o644)
                os.write(fd, b"x")
                os.close(fd)
        n, wall, cpu = timed(lambda: sum(isinstance(x, SourceFile) for x in walk_folder(base)))
        res["walk_100k"] = {"files": n, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2)}
        (base / ".gitignore").write_text("d9*/\n!d99/\n*7.txt\n")
        n, wall, cpu = timed(lambda: sum(isinstance(x, SourceFile) for x in walk_folder(base)))
        res["walk_100k_gitignore"] = {"files": n, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2)}
        html = base / "p.html"
        html.write_text("<h1>T</h1><p>x</p>")
        with IsolatedLoader() as loader:
            _, wall, _ = timed(lambda: loader.load(html))
            res["isolated_first_load_s"] = round(wall, 3)
            _, wall, _ = timed(lambda: [loader.load(html) for _ in range(200)])
            res["isolated_per_file_ms"] = round(wall / 200 * 1000, 2)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
