"""What the damaged-index check costs when a store opens (issue 11, item 4). Prints JSON.

For indexes of several sizes (random 384-d vectors, as MiniLM's, written through
``KnowledgeStore``): the fingerprint that decides whether to check, the file checks alone
(in-process), the whole child-process probe, and opening a store when the fingerprint matches
(the normal case: no check) and when it does not (the check runs).

    PARLEY_ASSETS=../shared/assets .venv/bin/python tests/bench/bench_vector_probe.py [N ...]
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from parley.core.knowledge import vector_check
from parley.core.knowledge.chunking import Chunk
from parley.core.knowledge.store import FileWrite, KnowledgeStore
from parley.core.paths import default_paths

DIM = 384


class RandomEmbedder:
    """Unit vectors from a seeded generator: the bench measures the index, not a model."""

    model_id = "bench-random-384"

    def __init__(self) -> None:
        self._rng = random.Random(7)

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        out = []
        for _ in texts:
            v = [self._rng.gauss(0.0, 1.0) for _ in range(DIM)]
            n = sum(x * x for x in v) ** 0.5
            out.append([x / n for x in v])
        return out


def _timed(fn: Callable[[], Any], runs: int) -> dict[str, float]:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return {"median_s": round(statistics.median(times), 4), "max_s": round(max(times), 4)}


def _build(home: Path, n: int) -> Any:
    paths = default_paths({"PARLEY_HOME": str(home)})
    paths.ensure()
    emb = RandomEmbedder()
    root = home / "docs"
    root.mkdir()
    with KnowledgeStore(paths, emb) as store:
        store.add_root(root)
        with store.writer():
            for start in range(0, n, 500):
                writes = []
                for i in range(start, min(n, start + 500)):
                    text = f"passage {i}"
                    chunk = Chunk(
                        index=i,
                        text=text,
                        embed_text=text,
                        heading_path=(),
                        page=None,
                        line_start=1,
                        line_end=1,
                        token_count=2,
                    )
                    path = root / f"f{i}.txt"
                    writes.append(
                        FileWrite(path, root, 1, 1, "x", "text", [chunk], emb.embed([text]))
                    )
                store.write_files(writes)
    return paths, emb


def _forget_good_state(paths: Any) -> None:
    db = sqlite3.connect(paths.data_dir / "knowledge.sqlite3")
    with db:
        db.execute("DELETE FROM meta WHERE key = 'vector_files'")
    db.close()


def _measure(n: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        t = time.perf_counter()
        paths, emb = _build(home, n)
        build_s = time.perf_counter() - t
        seg = next(p for p in paths.chroma_dir.iterdir() if p.is_dir())
        on_disk = {p.name: p.stat().st_size for p in seg.iterdir()}

        def open_close() -> None:
            KnowledgeStore(paths, emb).close()

        def open_close_unchecked() -> None:
            _forget_good_state(paths)
            KnowledgeStore(paths, emb).close()

        probe = vector_check.probe(paths.chroma_dir)
        assert probe.problem is None, probe
        store = KnowledgeStore(paths, emb)
        try:
            # What every open and every clean close now adds when nothing changed: the
            # fingerprint compared with the recorded one, then recorded again at close.
            check_unchanged = _timed(store._check_local_index, 20)
            record_on_close = _timed(store._record_if_idle, 20)
        finally:
            store.close()
        return {
            "vectors": n,
            "build_s": round(build_s, 2),
            "segment_bytes": on_disk,
            "fingerprint": _timed(lambda: vector_check.fingerprint(paths.chroma_dir), 20),
            "file_checks_in_process": _timed(lambda: vector_check.check_segment(seg), 5),
            "probe_child_process": _timed(lambda: vector_check.probe(paths.chroma_dir), 3),
            "added_on_open_when_unchanged": check_unchanged,
            "added_on_clean_close": record_on_close,
            "open_close_store_fingerprint_matches": _timed(open_close, 5),
            "open_close_store_check_runs": _timed(open_close_unchecked, 3),
        }


def main(sizes: Sequence[int]) -> None:
    results = [_measure(n) for n in sizes]
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(json.dumps({"cpus": os.cpu_count(), "loadavg": load, "results": results}, indent=1))


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1_000, 20_000])
