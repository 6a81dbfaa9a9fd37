"""Where indexing time goes, and Parley against the naive recipe: prints ONE JSON object.

    # stage by stage (each stage run alone, one after the other, on the whole corpus)
    .venv/bin/python tests/bench/bench_index_speed.py stages /usr/share/doc/postgresql-doc-15/html

    # end to end, both systems in the same run (fresh homes), optional recall per system
    .venv/bin/python tests/bench/bench_index_speed.py e2e /usr/share/doc/postgresql-doc-15/html \
        --baseline-python /path/to/venv-with-langchain/bin/python \
        --qa ../shared/eval/pg_docs_qa.tsv

``runs`` compares ONNX run sizes (texts per ``model.run``) on the corpus's chunks, interleaved
rounds in one process (``--sizes 16,8,4,2,1 --call 64 --limit 600 --rounds 4``).

``stages`` loads every file in this process (load/parse), chunks it (chunk), tokenizes the
embedded texts as the embedder does (tokenize), runs the ONNX model over them in the
embedder's batches (onnx), upserts the vectors into a fresh Chroma collection (chroma) and
writes the chunks into SQLite with its FTS5 index (sqlite_fts = a full ``write_files`` minus
its Chroma part). ``unique_texts`` counts the distinct embedded texts after the embedding
cache's normalisation (what the cache would embed once).

``e2e`` runs the naive recipe (``../shared/eval/baseline_seed.py``:
``RecursiveCharacterTextSplitter(1000, 200)`` + Chroma's default embedding) and
``parley index DIR --json`` one after the other, each in a fresh process and home, and reports
wall seconds, CPU seconds (the process and its children: steadier than wall time when other
jobs load the machine), peak RSS, chunks, and ``ratio_wall`` / ``ratio_cpu`` (Parley over the
recipe; the target is <= 0.6). Parley's own ``timings`` breakdown comes from its report.
With ``--qa`` (``question<TAB>stem,stem`` lines, or Parley's ``questions_*.json``), recall@5
is measured for Parley with ``../shared/eval/recall.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
EVAL = Path(os.environ.get("PARLEY_EVAL_DIR", REPO.parent / "shared" / "eval"))
"""The shared eval folder (recall.py, baseline_seed.py, question sets)."""


def _env(home: Path) -> dict[str, str]:
    env = dict(os.environ, PARLEY_HOME=str(home), ANONYMIZED_TELEMETRY="False")
    assets = REPO.parent / "shared" / "assets"
    if "PARLEY_ASSETS" not in env and assets.is_dir():
        env["PARLEY_ASSETS"] = str(assets)
    env["PYTHONPATH"] = str(REPO / "desktop") + os.pathsep + env.get("PYTHONPATH", "")
    return env


# ---------------------------------------------------------------- stages


def _load_docs(corpus: Path, glob: str) -> list[Any]:
    """Every file of the corpus that Parley's loaders read, in path order."""
    from parley.core.knowledge.loaders import FileSkipped, load_file

    docs = []
    for f in sorted(p for p in corpus.glob(glob) if p.is_file()):
        try:
            docs.append(load_file(f))
        except FileSkipped:
            pass
    return docs


def stages(corpus: Path, glob: str) -> dict[str, Any]:
    """Each indexing stage alone over the whole corpus (see the module docstring)."""
    from parley.core.knowledge.chunking import Chunker, default_tokenizer_path
    from parley.core.knowledge.embeddings import local_embedder
    from parley.core.knowledge.store import FileWrite, KnowledgeStore
    from parley.core.paths import default_paths

    paths = default_paths()
    paths.ensure()
    out: dict[str, Any] = {"corpus": str(corpus)}
    t = time.perf_counter()
    docs = _load_docs(corpus, glob)
    out["files"] = len(docs)
    out["load_parse_s"] = round(time.perf_counter() - t, 2)
    chunker = Chunker(tokenizer_path=default_tokenizer_path(paths.assets_dir))
    t = time.perf_counter()
    chunked = [(d, chunker.chunk(d)) for d in docs]
    out["chunk_s"] = round(time.perf_counter() - t, 2)
    texts = [c.embed_text for _, cs in chunked for c in cs]
    out["chunks"] = len(texts)
    try:
        from parley.core.knowledge.embeddings import normalise_for_cache
    except ImportError:  # before the embedding cache existed
        normalise_for_cache = None
    if normalise_for_cache is not None:
        out["unique_texts"] = len({normalise_for_cache(t) for t in texts})
    else:
        out["unique_texts"] = len({" ".join(t.split()) for t in texts})
    emb = local_embedder(paths)
    emb.ensure_ready()
    out["model_id"] = emb.model_id
    # The embedder's own path (length-sorted batches padded to their longest text), a few
    # hundred texts per call as the indexer passes them; its stats split tokenizer and ONNX.
    t = time.perf_counter()
    c = time.process_time()
    vecs = []
    for s in range(0, len(texts), 256):
        vecs.extend(emb.embed(texts[s : s + 256]))
    out["embed_s"] = round(time.perf_counter() - t, 2)
    out["embed_cpu_s"] = round(time.process_time() - c, 2)
    st = emb.stats()
    out["tokenize_s"] = round(st.tokenize_s, 2)
    out["onnx_s"] = round(st.onnx_s, 2)
    out["tokens"] = st.tokens
    out["padded_tokens"] = st.padded_tokens
    out["tokens_per_chunk"] = round(st.tokens / max(1, len(texts)), 1)

    store = KnowledgeStore(paths, emb)
    root = corpus.resolve()
    store.add_root(root)
    writes = []
    pos = 0
    for d, cs in chunked:
        writes.append(
            FileWrite(
                path=d.path.resolve(),
                root=root,
                size=d.size,
                mtime_ns=1,
                sha256=d.sha256,
                kind=d.kind,
                chunks=cs,
                vectors=vecs[pos : pos + len(cs)],
            )
        )
        pos += len(cs)
    with store.writer():
        t = time.perf_counter()
        for s in range(0, len(writes), 16):
            store.write_files(writes[s : s + 16])
        write_all = time.perf_counter() - t
    store.close()
    # Chroma alone: the same upserts into a fresh collection.
    import chromadb
    from chromadb.config import Settings

    with tempfile.TemporaryDirectory() as tmp:
        client = chromadb.PersistentClient(tmp, settings=Settings(anonymized_telemetry=False))
        col = client.get_or_create_collection(
            "stage-chroma", configuration={"hnsw": {"space": "cosine"}}, embedding_function=None
        )
        ids = [f"c{i}" for i in range(len(vecs))]
        metas = [{"path": str(w.path), "idx": i} for w in writes for i in range(len(w.chunks))]
        t = time.perf_counter()
        for s in range(0, len(ids), 64):
            col.upsert(
                ids=ids[s : s + 64], embeddings=vecs[s : s + 64], metadatas=metas[s : s + 64]
            )
        out["chroma_s"] = round(time.perf_counter() - t, 2)
    out["sqlite_fts_s"] = round(max(0.0, write_all - out["chroma_s"]), 2)
    keys = ("load_parse_s", "chunk_s", "tokenize_s", "onnx_s", "chroma_s", "sqlite_fts_s")
    total = sum(out[k] for k in keys)
    out["sum_s"] = round(total, 2)
    out["share"] = {k: round(out[k] / total, 3) for k in keys}
    return out


def runs(corpus: Path, glob: str, sizes: list[int], call: int, limit: int, rounds: int) -> dict:
    """ONNX seconds per run size (texts per ONNX run), interleaved rounds in one process.

    The corpus's chunks (the first ``limit``) are embedded ``call`` texts per embedder call, as
    the indexer passes them, once per size per round; sizes alternate within a round so a
    change in the machine's load hits all of them. Reports each size's rounds and median.
    """
    from statistics import median

    from parley.core.knowledge.chunking import Chunker, default_tokenizer_path
    from parley.core.knowledge.embeddings import local_embedder
    from parley.core.paths import default_paths

    paths = default_paths()
    paths.ensure()
    chunker = Chunker(tokenizer_path=default_tokenizer_path(paths.assets_dir))
    texts = [c.embed_text for d in _load_docs(corpus, glob) for c in chunker.chunk(d)][:limit]
    emb = local_embedder(paths)
    emb.ensure_ready()
    fn = emb._fn
    fn._forward(texts[:32], 4)  # warm-up
    seen: dict[int, list[dict[str, float]]] = {n: [] for n in sizes}
    for _ in range(rounds):
        for n in sizes:
            a = emb.stats()
            c = time.process_time()
            for s in range(0, len(texts), call):
                fn._forward(texts[s : s + call], n)
            b = emb.stats()
            seen[n].append(
                {
                    "onnx_s": round(b.onnx_s - a.onnx_s, 2),
                    "cpu_s": round(time.process_time() - c, 2),
                    "padding": round(
                        (b.padded_tokens - a.padded_tokens) / (b.tokens - a.tokens) - 1, 4
                    ),
                }
            )
    return {
        "corpus": str(corpus),
        "texts": len(texts),
        "call": call,
        "rounds": rounds,
        "per_size": {
            str(n): {
                "median_onnx_s": round(median(r["onnx_s"] for r in seen[n]), 2),
                "median_cpu_s": round(median(r["cpu_s"] for r in seen[n]), 2),
                "padding": seen[n][0]["padding"],
                "runs": seen[n],
            }
            for n in sizes
        },
    }


# ---------------------------------------------------------------- end to end


def _run(cmd: list[str], env: dict[str, str], log: Path) -> tuple[float, float, float, str]:
    """Run ``cmd``; wall s, CPU s (its whole process tree), peak RSS MB, stdout."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    with open(log, "w") as err:
        proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=err, text=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[:3]} failed ({proc.returncode}); see {log}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    # ru_maxrss of children is the largest of any child so far (kB on Linux).
    return wall, cpu, after.ru_maxrss / 1024, proc.stdout


def _qa_tsv(qa: Path, work: Path) -> Path:
    """recall.py reads ``question<TAB>stem,stem``; convert Parley's JSON question sets."""
    if qa.suffix != ".json":
        return qa
    rows = json.loads(qa.read_text())
    out = work / (qa.stem + ".tsv")
    lines = ["# converted from " + qa.name]
    for r in rows:
        stems = sorted({Path(a).name.removesuffix(".html") for a in r["answers"]})
        lines.append(f"{r['q']}\t{','.join(stems)}")
    out.write_text("\n".join(lines) + "\n")
    return out


def e2e(
    corpus: Path,
    glob: str,
    baseline_python: str | None,
    qa: list[Path],
    skip_parley: bool,
    model: str | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {"corpus": str(corpus), "model": model or "default"}
    with tempfile.TemporaryDirectory(prefix="parley-speed-") as tmp:
        work = Path(tmp)
        qa_tsv = [_qa_tsv(q, work) for q in qa]
        if baseline_python:
            qa_for_baseline = qa_tsv[0] if qa_tsv else None
            if qa_for_baseline is None:  # the recipe script wants a question file
                qa_for_baseline = work / "none.tsv"
                qa_for_baseline.write_text("# none\nnothing\tnothing\n")
            wall, cpu, rss, stdout = _run(
                [
                    baseline_python,
                    str(EVAL / "baseline_seed.py"),
                    str(corpus),
                    str(qa_for_baseline),
                    "--k",
                    "5",
                    "--glob",
                    glob,
                ],
                _env(work / "home-recipe"),
                work / "recipe.log",
            )
            rec = json.loads(stdout.strip().splitlines()[-1])
            out["recipe"] = {
                "wall_s": round(wall, 1),
                "index_s": rec["index_s"],
                "cpu_s": round(cpu, 1),
                "rss_mb": round(rss, 1),
                "chunks": rec["chunks"],
                "recall_at_5": rec["recall_at_k"] if qa else None,
            }
        if skip_parley:
            return out
        home = work / "home-parley"
        env = _env(home)
        if model:
            (home / "config").mkdir(parents=True, exist_ok=True)
            (home / "config" / "settings.toml").write_text(
                f'[knowledge]\nembedding_model = "{model}"\n'
            )
        wall, cpu, rss, stdout = _run(
            [sys.executable, "-m", "parley", "index", str(corpus), "--json"],
            env,
            work / "parley.log",
        )
        rep = json.loads(stdout.strip().splitlines()[-1])
        out["parley"] = {
            "wall_s": round(wall, 1),
            "index_s": rep["seconds"],
            "cpu_s": round(cpu, 1),
            "rss_mb": round(rss, 1),
            "chunks": rep["chunks"],
            "files": rep["files_indexed"],
            "timings": rep.get("timings"),
        }
        # Unchanged re-index of the same corpus.
        _wall2, _cpu2, _rss2, stdout2 = _run(
            [sys.executable, "-m", "parley", "index", str(corpus), "--json"],
            env,
            work / "parley2.log",
        )
        out["parley"]["reindex_unchanged_s"] = json.loads(stdout2.strip().splitlines()[-1])[
            "seconds"
        ]
        recalls = {}
        for q in qa_tsv:
            r = subprocess.run(
                [
                    sys.executable,
                    str(EVAL / "recall.py"),
                    f"{sys.executable} -m parley",
                    str(q),
                    "--k",
                    "5",
                ],
                env=env,
                capture_output=True,
                text=True,
            )
            line = (r.stdout.strip().splitlines() or ["{}"])[-1]
            got = json.loads(line)
            recalls[q.stem] = {"recall_at_5": got.get("recall_at_k"), "mrr": got.get("mrr")}
        out["parley"]["recall"] = recalls
        if "recipe" in out:
            out["ratio_wall"] = round(out["parley"]["index_s"] / out["recipe"]["index_s"], 3)
            out["ratio_cpu"] = round(out["parley"]["cpu_s"] / out["recipe"]["cpu_s"], 3)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=("stages", "e2e", "runs"))
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--glob", default="**/*.html")
    ap.add_argument("--baseline-python", help="a Python with chromadb + langchain-text-splitters")
    ap.add_argument("--qa", type=Path, action="append", default=[])
    ap.add_argument("--skip-parley", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model", help="Parley's knowledge.embedding_model for this run")
    ap.add_argument("--sizes", default="16,8,4,2,1", help="runs: texts per ONNX run to compare")
    ap.add_argument("--call", type=int, default=64, help="runs: texts per embedder call")
    ap.add_argument("--limit", type=int, default=600, help="runs: chunks embedded per pass")
    ap.add_argument("--rounds", type=int, default=4, help="runs: interleaved rounds")
    args = ap.parse_args()
    if args.what == "runs":
        with tempfile.TemporaryDirectory(prefix="parley-runs-") as tmp:
            os.environ.update(_env(Path(tmp)))
            sizes = [int(x) for x in args.sizes.split(",")]
            result = runs(args.corpus, args.glob, sizes, args.call, args.limit, args.rounds)
    elif args.what == "stages":
        with tempfile.TemporaryDirectory(prefix="parley-stages-") as tmp:
            os.environ.update(_env(Path(tmp)))
            result = stages(args.corpus, args.glob)
    else:
        result = e2e(
            args.corpus, args.glob, args.baseline_python, args.qa, args.skip_parley, args.model
        )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "desktop"))
    raise SystemExit(main())
