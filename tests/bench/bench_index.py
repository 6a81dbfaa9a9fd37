"""Knowledge indexing and retrieval benchmark: prints ONE JSON object on stdout.

    .venv/bin/python tests/bench/bench_index.py [--quick] [--corpus DIR]

Corpora:
- real: the CPython documentation as Debian ships it (``apt-get install -y python3-doc``,
  HTML under /usr/share/doc/python3-doc/html): the tutorial, FAQ, HOWTOs, "using" and
  "installing" pages (``--quick``: four FAQ pages). Questions with the pages that answer them:
  tests/bench/questions_pydocs.json (44, phrased as a user would ask, not copied from headings).
- generated: 10,000 small text files (``--quick``: 200) for re-index and 10k query latency.
- 100,000 chunks (``--quick``: 10,000) written straight into a store with realistic texts and
  vectors derived from real embeddings (noise added), for query latency at scale.

- edit: a 300-page Markdown document (``--quick``: 30 pages) indexed, then one paragraph in
  its middle edited and the folder indexed again: ``edit_one_paragraph_s`` (target <= 2 s),
  with ``edit_embedded`` (texts the embedder ran on) and the first index's time.

- unchanged: the 10,000-file tree (``--quick``: 200) registered in a store with synthetic
  vectors (the unchanged path never embeds), then indexed again: ``reindex_unchanged_10k_s``
  (target <= 2 s) and its peak RSS. ``generated`` measures the same after a real first index.

``--parts real,generated,large,stall,edit,unchanged`` runs only those parts (default: all but
unchanged, which ``generated`` covers with real vectors).

Figures: chunks_per_s (end to end); non_embedding_share = 1 - (wall time of embedding the same
chunk texts alone) / (wall time of indexing), plus ``_cpu`` (the same with CPU seconds of this
process and the loader's workers: steadier when other jobs load the machine) and ``_inline``
(time the indexing thread spends outside ``embed()``; parsing overlaps on another thread);
reindex_unchanged_s; query p50/p95 (hybrid, query embedding included); rss_mb_indexing (peak),
rss_mb_idle (afterwards, model loaded and store open);
recall_at_5 per mode; and the event-loop stall (a 5 ms asyncio heartbeat) while indexing with
a worker thread vs a niced worker process (``index_stall_p99_ms`` is the chosen runner's).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
QUESTIONS = HERE / "questions_pydocs.json"

REAL_PARTS_FULL = ("tutorial", "faq", "howto", "using", "installing")
REAL_PARTS_QUICK = ("faq",)
QUICK_FILES = ("general.html", "gui.html", "windows.html", "installed.html")
"""--quick indexes only these FAQ pages (and asks only the questions they answer)."""

WORDS = (
    "system file folder index search query chunk vector model embedding token budget cost "
    "provider window message stream cancel retry error network socket loop thread process "
    "python module package install config setting key secret keyring ledger price context "
    "document page heading section paragraph sentence word letter number table figure chart"
).split()


def _embedder(paths: Any) -> Any:
    """Parley's default local embedder (``knowledge.embedding_model``'s default)."""
    from parley.core.knowledge.indexer import EmbedderConfig, make_embedder
    from parley.core.settings import KnowledgeSettings

    return make_embedder(paths, EmbedderConfig.from_setting(KnowledgeSettings().embedding_model))


def _env_setup(home: Path) -> None:
    os.environ["PARLEY_HOME"] = str(home)
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    assets = REPO.parent / "shared" / "assets"
    if "PARLEY_ASSETS" not in os.environ and assets.is_dir():
        os.environ["PARLEY_ASSETS"] = str(assets)


def find_pydocs() -> Path | None:
    """The CPython HTML docs from Debian's python3-doc package, if installed."""
    base = Path("/usr/share/doc")
    for cand in sorted(base.glob("python3*-doc/html")) + sorted(base.glob("python3*/html")):
        if (cand / "tutorial").is_dir():
            return cand.resolve()
    return None


def copy_real(src: Path, dest: Path, parts: tuple[str, ...]) -> Path:
    for part in parts:
        if (src / part).is_dir():
            shutil.copytree(
                src / part,
                dest / part,
                symlinks=False,
                ignore=shutil.ignore_patterns("_static", "_images", "*.png"),
            )
    return dest


def make_generated(dest: Path, n: int, seed: int = 7) -> Path:
    rnd = random.Random(seed)
    for i in range(n):
        sub = dest / f"d{i // 500:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        words = " ".join(rnd.choice(WORDS) for _ in range(rnd.randint(25, 60)))
        (sub / f"note{i:05d}.txt").write_text(f"Note {i} on {rnd.choice(WORDS)}. {words}.\n")
    return dest


class PeakRss:
    """Samples this process's RSS every 50 ms; ``peak_mb`` after ``stop()``.

    Also sums the CPU time of this process and of every descendant seen (the loader's parser
    workers), so CPU shares can be compared without the noise of other load on the machine.
    """

    def __init__(self) -> None:
        import psutil

        self._psutil = psutil
        self._proc = psutil.Process()
        self.peak = 0
        self._cpu: dict[int, float] = {}
        self._cpu0 = self._cpu_now()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _cpu_now(self) -> dict[int, float]:
        out = {}
        for p in [self._proc, *self._proc.children(recursive=True)]:
            try:
                t = p.cpu_times()
                out[p.pid] = t.user + t.system
            except self._psutil.Error:
                pass
        return out

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self._proc.memory_info().rss)
            self._cpu.update(self._cpu_now())

    def cpu_seconds(self) -> float:
        """CPU seconds used since start by this process and its descendants."""
        self._cpu.update(self._cpu_now())
        return sum(v - self._cpu0.get(pid, 0.0) for pid, v in self._cpu.items())

    def stop(self) -> float:
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)
        return round(self.peak / 2**20, 1)


def _rss_mb() -> float:
    """This process's RSS now (model loaded, store open, nothing running)."""
    import psutil

    return round(psutil.Process().memory_info().rss / 2**20, 1)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    i = min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))
    return s[i]


def bench_real(corpus: Path, quick: bool) -> dict[str, Any]:
    from parley.core.knowledge.indexer import Indexer
    from parley.core.knowledge.retrieval import Retriever
    from parley.core.knowledge.store import KnowledgeStore
    from parley.core.paths import default_paths

    paths = default_paths()
    paths.ensure()
    emb = _embedder(paths)
    emb.ensure_ready()
    emb.embed(["warm up"])
    store = KnowledgeStore(paths, emb)
    rss_idle_before = _rss_mb()
    rss = PeakRss()
    t0 = time.perf_counter()
    report = Indexer(store).index([corpus])
    total = time.perf_counter() - t0
    cpu_index = rss.cpu_seconds()
    rss_mb = rss.stop()
    gc.collect()
    rss_idle_after = _rss_mb()
    texts = [r[0] for r in store._read().execute("SELECT COALESCE(embed_text, text) FROM chunks")]
    t1 = time.perf_counter()
    c1 = time.process_time()
    for s in range(0, len(texts), 64):  # the indexer's batch size
        emb.embed(texts[s : s + 64])
    embed_alone = time.perf_counter() - t1
    cpu_embed = time.process_time() - c1
    out: dict[str, Any] = {
        "real_corpus": str(corpus),
        "real_files": report.files_indexed,
        "real_chunks": report.chunks,
        "real_index_s": round(total, 2),
        "chunks_per_s": round(report.chunks / total, 1),
        "embed_alone_s": round(embed_alone, 2),
        "non_embedding_share": round(max(0.0, 1 - embed_alone / total), 3),
        "non_embedding_share_inline": round(1 - report.embed_seconds / total, 3),
        "non_embedding_share_cpu": round(max(0.0, 1 - cpu_embed / cpu_index), 3),
        "cpu_s_indexing": round(cpu_index, 1),
        "cpu_s_embed_alone": round(cpu_embed, 1),
        "rss_mb_indexing": rss_mb,
        "rss_mb_idle": rss_idle_after,
        "rss_mb_idle_before_indexing": rss_idle_before,
        "real_skipped": len(report.files_skipped),
    }
    questions = json.loads(QUESTIONS.read_text())
    if quick:
        have = {p.relative_to(corpus).as_posix() for p in corpus.rglob("*.html")}
        questions = [q for q in questions if set(q["answers"]) & have]
    retriever = Retriever(store)
    recall: dict[str, float] = {}
    misses: dict[str, list[str]] = {}
    for mode in ("hybrid", "dense", "keyword"):
        found = 0
        misses[mode] = []
        for q in questions:
            hits = retriever.search(q["q"], 5, mode=mode)
            rels = {h.path.relative_to(corpus).as_posix() for h in hits}
            if rels & set(q["answers"]):
                found += 1
            else:
                misses[mode].append(q["q"])
        recall[mode] = round(found / len(questions), 3)
    out["recall_at_5"] = recall
    out["recall_questions"] = len(questions)
    out["recall_misses_hybrid"] = misses["hybrid"]
    store.close()
    return out


def query_latency(store: Any, queries: list[str], rounds: int) -> tuple[float, float]:
    from parley.core.knowledge.retrieval import Retriever

    r = Retriever(store)
    for q in queries[:3]:
        r.search(q, 5)
    times = []
    for _ in range(rounds):
        for q in queries:
            t = time.perf_counter()
            r.search(q, 5)
            times.append((time.perf_counter() - t) * 1000)
    return round(pct(times, 50), 1), round(pct(times, 95), 1)


QUERIES = [
    "how do I cancel a running stream",
    "where is the secret key stored",
    "token budget for a model",
    "retry after network error",
    "which provider is cheapest",
    "page heading of the document",
    "embedding vector search",
    "install the python package",
    "thread or process for indexing",
    "price of a message",
    "open a folder",
    "why did the socket fail",
]


def bench_generated(root: Path, n: int) -> dict[str, Any]:
    from parley.core.knowledge.indexer import Indexer
    from parley.core.knowledge.store import KnowledgeStore
    from parley.core.paths import default_paths

    paths = default_paths()
    make_generated(root, n)
    store = KnowledgeStore(paths, _embedder(paths))
    t0 = time.perf_counter()
    first = Indexer(store).index([root])
    first_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    again = Indexer(store).index([root])
    reindex = time.perf_counter() - t1
    assert again.files_unchanged == n and again.chunks == 0, again
    p50, p95 = query_latency(store, QUERIES, 5)
    store.close()
    return {
        "generated_files": n,
        "generated_index_s": round(first_s, 1),
        "generated_chunks": first.chunks,
        "reindex_unchanged_s": round(reindex, 2),
        "query_p50_ms_10k": p50,
        "query_p95_ms_10k": p95,
    }


def _page(rnd: random.Random, page: int) -> str:
    paras = []
    for p in range(6):
        words = " ".join(rnd.choice(WORDS) for _ in range(rnd.randint(60, 90)))
        paras.append(f"Page {page}, paragraph {p}: {words}.")
    return f"## Page {page}\n\n" + "\n\n".join(paras) + "\n"


def bench_edit(root: Path, pages: int) -> dict[str, Any]:
    """Index a ``pages``-page document, edit one paragraph, time the re-index."""
    from parley.core.knowledge.indexer import Indexer
    from parley.core.knowledge.store import KnowledgeStore
    from parley.core.paths import default_paths

    paths = default_paths()
    root.mkdir(parents=True, exist_ok=True)
    rnd = random.Random(5)
    body = [_page(rnd, i) for i in range(pages)]
    doc = root / "handbook.md"
    doc.write_text("# Handbook\n\n" + "\n".join(body))
    store = KnowledgeStore(paths, _embedder(paths))
    t0 = time.perf_counter()
    first = Indexer(store).index([root])
    first_s = time.perf_counter() - t0
    mid = pages // 2
    body[mid] = body[mid].replace(
        f"Page {mid}, paragraph 3:", f"Page {mid}, paragraph 3 (revised):"
    )
    doc.write_text("# Handbook\n\n" + "\n".join(body))
    rss = PeakRss()
    t1 = time.perf_counter()
    edit = Indexer(store).index([root])
    edit_s = time.perf_counter() - t1
    rss_mb = rss.stop()
    assert edit.files_indexed == 1, edit
    store.close()
    return {
        "edit_pages": pages,
        "edit_doc_chars": doc.stat().st_size,
        "edit_doc_chunks": first.chunks,
        "edit_first_index_s": round(first_s, 1),
        "edit_one_paragraph_s": round(edit_s, 2),
        "edit_embedded": edit.embedded,
        "edit_timings": edit.timings,
        "edit_rss_mb": rss_mb,
    }


def bench_unchanged(root: Path, n: int, home: Path) -> dict[str, Any]:
    """Re-index of an unchanged n-file tree whose index was written with synthetic vectors."""
    import numpy as np

    from parley.core.knowledge.chunking import Chunker, default_tokenizer_path
    from parley.core.knowledge.indexer import Indexer, file_sha256
    from parley.core.knowledge.loaders import load_file
    from parley.core.knowledge.store import FileWrite, KnowledgeStore

    paths = default_store_paths(home)
    make_generated(root, n)
    store = KnowledgeStore(paths, _embedder(paths))
    root = root.resolve()
    store.add_root(root)
    chunker = Chunker(tokenizer_path=default_tokenizer_path(paths.assets_dir))
    rnd = np.random.default_rng(1)
    t0 = time.perf_counter()
    with store.writer():
        batch: list[Any] = []
        for f in sorted(root.rglob("*.txt")):
            st = f.stat()
            chunks = chunker.chunk(load_file(f))
            vecs = rnd.normal(size=(len(chunks), 384)).astype(np.float32)
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
            batch.append(
                FileWrite(
                    f,
                    root,
                    st.st_size,
                    st.st_mtime_ns,
                    file_sha256(f),
                    "text",
                    chunks,
                    vecs.tolist(),
                )
            )
            if len(batch) >= 500:
                store.write_files(batch)
                batch = []
        store.write_files(batch)
    build_s = time.perf_counter() - t0
    rss = PeakRss()
    t1 = time.perf_counter()
    again = Indexer(store).index([root])
    reindex = time.perf_counter() - t1
    rss_mb = rss.stop()
    assert again.files_unchanged == n and again.chunks == 0, again
    store.close()
    return {
        "unchanged_files": n,
        "unchanged_build_s": round(build_s, 1),
        f"reindex_unchanged_{n // 1000}k_s": round(reindex, 2),
        "unchanged_rss_mb": rss_mb,
    }


def bench_large(n: int, home: Path) -> dict[str, Any]:
    """N chunks written straight into a store: real texts, vectors near real embeddings."""
    import numpy as np

    from parley.core.knowledge.store import FileWrite, KnowledgeStore

    base = default_store_paths(home)
    emb = _embedder(base)
    store = KnowledgeStore(base, emb)
    donor = KnowledgeStore(default_store_paths(Path(os.environ["PARLEY_HOME"])), emb)
    rows = donor._read().execute("SELECT text, heading FROM chunks").fetchall()
    donor.close()
    if not rows:
        raise SystemExit("bench_large needs the real corpus indexed first")
    seed_texts = [r[0] for r in rows][:512]
    seed_vecs = np.array(emb.embed(seed_texts), dtype=np.float32)
    rnd = np.random.default_rng(3)
    root = home / "large-root"
    root.mkdir(parents=True, exist_ok=True)
    store.add_root(root)

    class C:
        __slots__ = (
            "embed_text",
            "heading_path",
            "index",
            "line_end",
            "line_start",
            "page",
            "text",
            "token_count",
        )

    per_file = 50
    t0 = time.perf_counter()
    with store.writer():
        batch: list[FileWrite] = []
        nb = 0
        for f in range(n // per_file):
            chunks = []
            picks = rnd.integers(0, len(rows), per_file)
            for i, pick in enumerate(picks):
                c = C()
                c.index, c.text = i, f"{rows[pick][0]} (copy {f})"
                c.embed_text, c.heading_path = c.text, tuple((rows[pick][1] or "").split(" > "))
                c.page, c.line_start, c.line_end, c.token_count = None, i * 5 + 1, i * 5 + 5, 100
                chunks.append(c)
            base_idx = rnd.integers(0, len(seed_vecs), per_file)
            vecs = seed_vecs[base_idx] + rnd.normal(0, 0.03, (per_file, seed_vecs.shape[1]))
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
            batch.append(
                FileWrite(
                    root / f"f{f:05d}.txt",
                    root,
                    1,
                    1,
                    f"h{f}",
                    "text",
                    chunks,
                    vecs.astype(np.float32).tolist(),
                )
            )
            nb += per_file
            if nb >= 5000:
                store.write_files(batch)
                batch, nb = [], 0
        store.write_files(batch)
    build_s = time.perf_counter() - t0
    p50, p95 = query_latency(store, QUERIES, 5)
    count = store.chunk_count()
    store.close()
    return {
        "large_chunks": count,
        "large_build_s": round(build_s, 1),
        f"query_p50_ms_{n // 1000}k": p50,
        f"query_p95_ms_{n // 1000}k": p95,
    }


def default_store_paths(home: Path) -> Any:
    from parley.core.paths import default_paths

    env = dict(os.environ, PARLEY_HOME=str(home))
    p = default_paths(env)
    p.ensure()
    return p


# ---------------------------------------------------------------- event-loop stalls


async def _heartbeat(stop: asyncio.Event, lateness: list[float]) -> None:
    while not stop.is_set():
        t = time.perf_counter()
        await asyncio.sleep(0.005)
        lateness.append(max(0.0, (time.perf_counter() - t - 0.005) * 1000))


async def _stall_run(mode: str, corpus: Path) -> dict[str, Any]:
    from parley.core.knowledge.indexer import index_in_background, index_in_thread
    from parley.core.paths import default_paths

    paths = default_paths()
    paths.ensure()
    lateness: list[float] = []
    stop = asyncio.Event()
    hb = asyncio.create_task(_heartbeat(stop, lateness))
    t0 = time.perf_counter()
    if mode == "idle":
        await asyncio.sleep(3)
        chunks = 0
    elif mode == "thread":
        # The GUI process has the embedder and Chroma loaded already (retrieval uses them).
        from parley.core.knowledge.store import KnowledgeStore

        store = await asyncio.to_thread(KnowledgeStore, paths, _embedder(paths))
        await asyncio.to_thread(store.embedder.embed, ["warm"])
        lateness.clear()
        t0 = time.perf_counter()
        chunks = 0
        async for ev in index_in_thread(store, [corpus]):
            chunks = getattr(ev, "chunks", chunks)
        store.close()
    else:
        chunks = 0
        async for ev in index_in_background(paths, [corpus]):
            chunks = getattr(ev, "chunks", chunks)
    seconds = time.perf_counter() - t0
    stop.set()
    await hb
    return {
        "mode": mode,
        "seconds": round(seconds, 1),
        "chunks": chunks,
        "beats": len(lateness),
        "stall_p50_ms": round(pct(lateness, 50), 2),
        "stall_p99_ms": round(pct(lateness, 99), 2),
        "stall_max_ms": round(max(lateness or [0.0]), 2),
    }


def bench_stall(corpus: Path, workdir: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for mode in ("idle", "thread", "process"):
        home = workdir / f"stall-{mode}"
        home.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, PARLEY_HOME=str(home))
        r = subprocess.run(
            [sys.executable, __file__, "--stall-worker", mode, "--corpus", str(corpus)],
            capture_output=True,
            text=True,
            env=env,
            timeout=1800,
        )
        if r.returncode != 0:
            raise SystemExit(f"stall worker {mode} failed:\n{r.stderr[-3000:]}")
        out[mode] = json.loads(r.stdout.strip().splitlines()[-1])
    return out


def _stage(name: str, partial: dict[str, Any] | None = None) -> None:
    # Partial results go to stderr as each stage ends, so a long run that is stopped
    # still tells what it measured.
    if partial is not None:
        print(f"[bench] partial {json.dumps(partial)}", file=sys.stderr, flush=True)
    print(f"[bench] {time.strftime('%H:%M:%S')} {name}", file=sys.stderr, flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller corpora (< 2 minutes)")
    ap.add_argument("--corpus", type=Path, help="the real documentation folder (HTML docs)")
    ap.add_argument("--stall-worker", choices=("idle", "thread", "process"), help=argparse.SUPPRESS)
    ap.add_argument(
        "--parts",
        default="real,generated,large,stall,edit",
        help="comma-separated parts to run (large needs real)",
    )
    args = ap.parse_args()

    if args.stall_worker:
        _env_setup(Path(os.environ["PARLEY_HOME"]))
        print(json.dumps(asyncio.run(_stall_run(args.stall_worker, args.corpus))))
        return 0

    src = args.corpus or find_pydocs()
    if src is None:
        print("no corpus: apt-get install -y python3-doc, or pass --corpus DIR", file=sys.stderr)
        return 2
    result: dict[str, Any] = {"quick": args.quick, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="parley-bench-") as tmp:
        work = Path(tmp)
        _env_setup(work / "home-real")
        parts = REAL_PARTS_QUICK if args.quick else REAL_PARTS_FULL
        real = copy_real(src, work / "pydocs", parts) if args.corpus is None else src
        if args.quick and args.corpus is None:
            for f in (real / "faq").iterdir():
                if f.name not in QUICK_FILES:
                    f.unlink()
        t = time.perf_counter()
        run_parts = set(args.parts.split(","))
        if "real" in run_parts:
            _stage("real corpus")
            result.update(bench_real(real, args.quick))
        if "generated" in run_parts:
            _stage("generated corpus", result)
            rss = PeakRss()
            result.update(bench_generated(work / "generated", 200 if args.quick else 10_000))
            result["generated_rss_mb_peak"] = rss.stop()
        if "edit" in run_parts:
            _stage("edit one paragraph", result)
            result.update(bench_edit(work / "edit", 30 if args.quick else 300))
        if "unchanged" in run_parts:
            _stage("unchanged tree", result)
            n = 200 if args.quick else 10_000
            result.update(bench_unchanged(work / "unchanged", n, work / "home-unchanged"))
        if "large" in run_parts and "real" in run_parts:
            _stage("large store", result)
            result.update(bench_large(10_000 if args.quick else 100_000, work / "home-large"))
        if "stall" in run_parts:
            _stage("event-loop stalls", result)
            stall_corpus = work / "stall-corpus"
            if args.quick:
                (stall_corpus / "faq").mkdir(parents=True)
                for name in ("general.html",):
                    shutil.copy(src / "faq" / name, stall_corpus / "faq" / name)
            else:
                copy_real(src, stall_corpus, ("tutorial",))
            stalls = bench_stall(stall_corpus, work)
            result["stall"] = stalls
            result["index_stall_p99_ms"] = stalls["process"]["stall_p99_ms"]
        result["bench_seconds"] = round(time.perf_counter() - t, 1)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "desktop"))
    raise SystemExit(main())
