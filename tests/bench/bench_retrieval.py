"""Retrieval quality beside the naive recipe, on real corpora: prints ONE JSON object on stdout.

    .venv/bin/python tests/bench/bench_retrieval.py --set pg --set git --reuse /tmp/rb
    .venv/bin/python tests/bench/bench_retrieval.py --set NAME:CORPUS_DIR:QUESTIONS[:GLOB]

For every corpus named by the sets, in the same run:

- **Parley**: the files are indexed through Parley's real :class:`Indexer` into a fresh
  ``PARLEY_HOME`` (what ``parley index DIR`` does), then every question is asked through
  :class:`Retriever` in each mode (hybrid, dense, keyword) with ``k=5``, and hybrid again with
  ``k=20`` (stability: the top 5 of ``-k 5`` must equal the top 5 of ``-k 20``).
- **The naive recipe** (``../shared/eval/baseline_seed.py``: HTML reduced to text,
  ``RecursiveCharacterTextSplitter(1000, 200)``, Chroma's default local embedding, dense query
  only), run in its own interpreter (``--recipe-python``: a venv holding ``chromadb`` and
  ``langchain-text-splitters``) on the very same files, with the seed's own functions.

Both systems see a copy of the same files (``GLOB`` under ``CORPUS_DIR``, default
``**/*.html``; several globs separated by commas), so a folder's ``.txt`` twins or
``_sources`` do not count for one and not the other. Figures per set: ``recall_at_5`` and
``mrr`` (reciprocal rank of the first accepted file within the top 5) per mode and for the
recipe, ``stable_k5_k20``; per corpus: chunk counts and index seconds of both, Parley's
query p50/p95 (hybrid, query embedding included, in process) and the recipe's.

Question sets: TSV as in ``../shared/eval`` (``question<TAB>stem1,stem2``; a result counts when
its file-name stem, lower-cased and without .html/.htm/.md/.txt/.rst/.rst.txt/.pdf, is
accepted), or JSON (``[{"q": ..., "answers": ["tutorial/x.html", ...]}]``; a result counts when
its path relative to the corpus root is one of the answers). Named sets: ``pg`` (the public
PostgreSQL set), ``pydocs`` (Parley's own 44 questions, Python 3.11 docs), ``pydocs-qa`` and
``git`` (outside-written sets in ``tests/bench/eval/``).

``--reuse DIR`` keeps the copied corpora, both indexes and the recipe's answers between runs,
so ranking can be changed and measured again in seconds; an index is rebuilt when the code
that shapes it (chunking, loaders, the schema) changed, or with ``--reindex``.
``--sample N`` asks every n-th question only (quick loops; report full sets).
``--param NAME=VALUE`` overrides a :class:`RankingConfig` field (for sweeps).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
K = 5
K_WIDE = 20
MODES = ("hybrid", "dense", "keyword")
SUFFIXES = (".rst.txt", ".html", ".htm", ".md", ".txt", ".rst", ".pdf")


def _shared_dir() -> Path | None:
    """``shared/`` beside the checkout (main checkout or a worktree one level deeper)."""
    env = os.environ.get("PARLEY_SHARED")
    cands = [Path(env)] if env else []
    cands += [REPO.parent / "shared", REPO.parent.parent / "shared"]
    return next((c for c in cands if c.is_dir()), None)


def _first(*paths: Path) -> Path:
    return next((p for p in paths if p.exists()), paths[0])


SHARED = _shared_dir() or REPO.parent / "shared"
PYDOCS = Path("/usr/share/doc/python3.11-doc/html")
PYDOCS_PARTS = "tutorial/*.html,faq/*.html,howto/*.html,using/*.html,installing/*.html"
"""Parley's own 44 questions cover these parts of the Python docs (as in bench_index.py)."""
NAMED_SETS: dict[str, tuple[Path, str, Path]] = {
    "pg": (
        Path("/usr/share/doc/postgresql-doc-15/html"),
        "*.html",
        SHARED / "eval" / "pg_docs_qa.tsv",
    ),
    "pydocs": (PYDOCS, PYDOCS_PARTS, HERE / "questions_pydocs.json"),
    "pydocs-qa": (PYDOCS, "**/*.html", HERE / "eval" / "pydocs_qa.tsv"),
    "git": (Path("/usr/share/doc/git-doc"), "**/*.html", HERE / "eval" / "gitdocs_qa.tsv"),
}


# ---------------------------------------------------------------------------- questions


@dataclass
class Question:
    text: str
    stems: frozenset[str] = frozenset()
    relpaths: frozenset[str] = frozenset()


def stem(path: str) -> str:
    """'/docs/html/SQL-Insert.html' -> 'sql-insert' (recall.py's rule)."""
    name = re.split(r"[\\/]", str(path).strip())[-1].split("#", 1)[0].lower()
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def load_questions(path: Path) -> list[Question]:
    if path.suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        return [Question(d["q"], relpaths=frozenset(d["answers"])) for d in data]
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        q, accepted = line.split("\t", 1)
        out.append(Question(q.strip(), stems=frozenset(stem(s) for s in accepted.split(","))))
    return out


def is_hit(q: Question, path: str, root: Path) -> bool:
    if q.relpaths:
        try:
            # Parley stores resolved paths: the corpus folder may be a symbolic link.
            return Path(path).relative_to(root.resolve()).as_posix() in q.relpaths
        except ValueError:
            return False
    return stem(path) in q.stems


def first_hit(q: Question, paths: list[str], root: Path) -> int | None:
    """Rank (1-based) of the first accepted file in the top :data:`K`, or None."""
    return next((i for i, p in enumerate(paths[:K], 1) if is_hit(q, p, root)), None)


def score(questions: list[Question], got: list[list[str]], root: Path) -> dict[str, Any]:
    found, rr = 0, 0.0
    for q, paths in zip(questions, got, strict=True):
        rank = first_hit(q, paths, root)
        if rank:
            found += 1
            rr += 1.0 / rank
    n = len(questions) or 1
    return {"recall_at_5": round(found / n, 4), "mrr": round(rr / n, 4)}


# ---------------------------------------------------------------------------- corpora


@dataclass
class Corpus:
    source: Path
    glob: str
    dir: Path
    sets: list[tuple[str, Path]] = field(default_factory=list)

    @property
    def key(self) -> str:
        h = hashlib.sha256(f"{self.source}\0{self.glob}".encode()).hexdigest()[:8]
        return f"{self.source.parent.name}-{self.source.name}-{h}"


def copy_corpus(source: Path, glob: str, dest: Path) -> int:
    """The files ``glob`` selects under ``source``, copied to ``dest`` (kept if complete)."""
    files = sorted({p for g in glob.split(",") for p in source.glob(g) if p.is_file()})
    marker = dest / ".complete"
    if marker.is_file() and marker.read_text() == str(len(files)):
        return len(files)
    shutil.rmtree(dest, ignore_errors=True)
    for p in files:
        target = dest / p.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(p, target)
    marker.write_text(str(len(files)))
    return len(files)


def index_fingerprint() -> str:
    """Changes whenever the code that shapes an index does (chunking, loaders, schema)."""
    from parley.core.knowledge import chunking, loaders, store

    h = hashlib.sha256()
    for mod in (chunking, loaders):
        file = Path(mod.__file__ or "")
        # A package (loaders/) counts with all its modules, in a fixed order.
        for part in sorted(file.parent.glob("*.py")) if file.name == "__init__.py" else [file]:
            h.update(part.read_bytes())
    h.update(repr([m.name for m in store.MIGRATIONS]).encode())
    h.update(str(getattr(store, "INDEX_VERSION", 0)).encode())
    return h.hexdigest()[:10]


# ---------------------------------------------------------------------------- Parley


def _assets() -> str | None:
    if os.environ.get("PARLEY_ASSETS"):
        return os.environ["PARLEY_ASSETS"]
    cand = SHARED / "assets"
    return str(cand) if cand.is_dir() else None


def parley_paths(home: Path) -> Any:
    from parley.core.paths import default_paths

    env = {"PARLEY_HOME": str(home)}
    assets = _assets()
    if assets:
        env["PARLEY_ASSETS"] = assets
    p = default_paths(env)
    p.ensure()
    return p


MODEL: str | None = None
"""``--model``: the ``knowledge.embedding_model`` to index and search with (None: the default)."""


def _model() -> str:
    from parley.core.settings import KnowledgeSettings

    return MODEL or KnowledgeSettings().embedding_model


def _model_suffix() -> str:
    """Index folders of the original fp32 model keep their old names (so they are reused)."""
    from parley.core.knowledge.embeddings import LOCAL_MODEL_ID

    model = _model()
    return "" if model == LOCAL_MODEL_ID else "-" + re.sub(r"[^A-Za-z0-9.-]+", "_", model)


def _embedder(paths: Any) -> Any:
    from parley.core.knowledge.indexer import EmbedderConfig, make_embedder

    return make_embedder(paths, EmbedderConfig.from_setting(_model()))


def parley_index(corpus: Corpus, base: Path, reindex: bool, log: Any) -> tuple[Path, dict]:
    """Index ``corpus.dir`` into a fresh Parley home (or reuse a matching one)."""
    from parley.core.knowledge.indexer import Indexer
    from parley.core.knowledge.store import KnowledgeStore

    home = base / f"parley-{corpus.key}-{index_fingerprint()}{_model_suffix()}"
    done = home / "done.json"
    if done.is_file() and not reindex:
        return home, json.loads(done.read_text())
    # An index stopped part-way (no done.json) is resumed: the indexer skips the files it
    # already committed, so index_s then covers the rest only (flagged "resumed").
    resumed = (home / "data" / "knowledge.sqlite3").is_file() and not reindex
    if not resumed:
        shutil.rmtree(home, ignore_errors=True)
    paths = parley_paths(home)
    store = KnowledgeStore(paths, _embedder(paths))
    log(f"parley: {'resuming' if resumed else 'indexing'} {corpus.dir} into {home}")
    try:
        t0 = time.perf_counter()
        report = Indexer(store).index([corpus.dir])
        seconds = time.perf_counter() - t0
        stats = {
            "files": report.files_indexed,
            "skipped": len(report.files_skipped),
            "chunks": store.chunk_count(),
            "index_s": round(seconds, 1),
            "embed_s": round(report.embed_seconds, 1),
        }
        if resumed:
            stats["resumed"] = True
    finally:
        store.close()
    done.write_text(json.dumps(stats))
    return home, stats


class _CachedEmbedder:
    """Query vectors remembered across a --grid sweep (the grid measures ranking only)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.cache: dict[str, list[float]] = {}

    def embed(self, texts: list[str]) -> list[list[float]]:
        missing = [t for t in texts if t not in self.cache]
        if missing:
            self.cache.update(zip(missing, self.inner.embed(missing), strict=True))
        return [self.cache[t] for t in texts]


def open_store(home: Path, cached: bool = False) -> Any:
    from parley.core.knowledge.store import KnowledgeStore

    paths = parley_paths(home)
    store = KnowledgeStore(paths, _embedder(paths))
    if cached:
        store.embedder = _CachedEmbedder(store.embedder)
    return store


def parley_answers(
    store: Any, questions: list[Question], config: Any, modes: tuple[str, ...] = MODES
) -> tuple[dict[str, list[list[str]]], dict[str, Any]]:
    """Top-k paths per question and mode, plus stability and latency."""
    from parley.core.knowledge.retrieval import Retriever

    out: dict[str, list[list[str]]] = {m: [] for m in modes}
    lat: list[float] = []
    stable = 0
    r = Retriever(store, config=config)
    r.search("warm up the model and the caches", K)
    for q in questions:
        for mode in modes:
            t = time.perf_counter()
            hits = r.search(q.text, K, mode=mode)
            if mode == modes[0]:
                lat.append(time.perf_counter() - t)
                wide = r.search(q.text, K_WIDE, mode=mode)
                key = [(h.path, h.chunk_index) for h in hits]
                stable += key == [(h.path, h.chunk_index) for h in wide[:K]]
            out[mode].append([str(h.path) for h in hits])
    lat.sort()
    extra = {
        "stable_k5_k20": round(stable / max(1, len(questions)), 4),
        "query_p50_ms": round(1000 * lat[len(lat) // 2], 1) if lat else None,
        "query_p95_ms": round(1000 * lat[min(len(lat) - 1, int(0.95 * len(lat)))], 1)
        if lat
        else None,
    }
    return out, extra


# ---------------------------------------------------------------------------- the recipe


def recipe_python() -> str | None:
    for cand in (REPO / ".venv-recipe" / "bin" / "python",):
        if cand.is_file():
            return str(cand)
    return None


def _run_recipe(python: str, *args: str) -> Any:
    env = dict(os.environ)
    assets = _assets()
    if assets:
        env["PARLEY_ASSETS"] = assets
    env["ANONYMIZED_TELEMETRY"] = "False"
    proc = subprocess.run(
        [python, str(Path(__file__).resolve()), *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"recipe failed: {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def recipe_index(python: str, corpus: Corpus, base: Path, reindex: bool, log: Any) -> Path:
    db = base / f"recipe-{corpus.key}"
    if (db / "done.json").is_file() and not reindex:
        return db
    if reindex or not (db / "chroma").is_dir():  # else resumed where it stopped
        shutil.rmtree(db, ignore_errors=True)
    log(f"recipe: indexing {corpus.dir} into {db}")
    _run_recipe(python, "_recipe-index", str(corpus.dir), str(db), "--seed", str(_seed_script()))
    return db


def recipe_answers(
    python: str, db: Path, questions: list[Question]
) -> tuple[list[list[str]], dict[str, Any]]:
    texts = [q.text for q in questions]
    key = hashlib.sha256(json.dumps(texts).encode()).hexdigest()[:12]
    cache = db / f"answers-{key}.json"
    if not cache.is_file():
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(texts, f)
        try:
            got = _run_recipe(python, "_recipe-query", str(db), f.name)
        finally:
            os.unlink(f.name)
        cache.write_text(json.dumps(got))
    got = json.loads(cache.read_text())
    stats = json.loads((db / "done.json").read_text())
    stats["query_p50_ms"] = got["query_p50_ms"]
    return got["paths"], stats


def _seed_script() -> Path:
    return SHARED / "eval" / "baseline_seed.py"


def _recipe_main(argv: list[str]) -> int:
    """Runs in the recipe's interpreter: the seed's own functions, a persistent Chroma."""
    import importlib.util

    ap = argparse.ArgumentParser()
    ap.add_argument("cmd")
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--seed")
    a = ap.parse_args(argv)
    import chromadb

    assets = os.environ.get("PARLEY_ASSETS")
    if assets:  # offline: Chroma's default embedding reads the model from here
        from chromadb.utils.embedding_functions.onnx_mini_lm_l6_v2 import ONNXMiniLM_L6_V2

        ONNXMiniLM_L6_V2.DOWNLOAD_PATH = Path(assets) / "models" / "all-MiniLM-L6-v2"
    if a.cmd == "_recipe-index":
        spec = importlib.util.spec_from_file_location("baseline_seed", a.seed)
        assert spec and spec.loader
        seed = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(seed)
        from langchain_text_splitters import RecursiveCharacterTextSplitter

        corpus, db = Path(a.a), Path(a.b)
        files = sorted(p for p in corpus.glob("**/*") if p.is_file() and p.name != ".complete")
        splitter = RecursiveCharacterTextSplitter(
            chunk_size=1000,
            chunk_overlap=200,
            length_function=len,
            separators=["\n\n", "\n", ". ", " ", ""],
        )
        client = chromadb.PersistentClient(path=str(db / "chroma"))
        col = client.get_or_create_collection("documents")
        t0 = time.perf_counter()
        docs, metas = [], []
        for f in files:
            for c in splitter.split_text(seed.read_text(f)):
                docs.append(c)
                metas.append({"source": str(f)})
        t_split = time.perf_counter() - t0
        batch = 256
        start = col.count()  # an index stopped part-way goes on from there (same order)
        for i in range(start, len(docs), batch):
            col.add(
                documents=docs[i : i + batch],
                metadatas=metas[i : i + batch],
                ids=[f"chunk_{j}" for j in range(i, min(i + batch, len(docs)))],
            )
        t_index = time.perf_counter() - t0
        stats = {
            "files": len(files),
            "chunks": len(docs),
            "split_s": round(t_split, 1),
            "index_s": round(t_index, 1),
        }
        if start:
            stats["resumed_from"] = start
        (db / "done.json").write_text(json.dumps(stats))
        print(json.dumps(stats))
        return 0
    # _recipe-query
    db, qfile = Path(a.a), Path(a.b)
    client = chromadb.PersistentClient(path=str(db / "chroma"))
    col = client.get_or_create_collection("documents")
    out, lat = [], []
    for q in json.loads(qfile.read_text()):
        t = time.perf_counter()
        res = col.query(query_texts=[q], n_results=K)
        lat.append(time.perf_counter() - t)
        out.append([m["source"] for m in res["metadatas"][0]])
    lat.sort()
    print(json.dumps({"paths": out, "query_p50_ms": round(1000 * lat[len(lat) // 2], 1)}))
    return 0


# ---------------------------------------------------------------------------- main


def parse_set(spec: str) -> tuple[str, Path, str, Path]:
    if spec in NAMED_SETS:
        src, glob, qs = NAMED_SETS[spec]
        if spec in ("pydocs-qa", "git") and not qs.is_file():
            notes = Path("/work/notes/eval") / qs.name
            qs = notes if notes.is_file() else qs
        return spec, src, glob, qs
    parts = spec.split(":")
    if len(parts) not in (3, 4):
        raise SystemExit(f"--set {spec!r}: a known name or NAME:CORPUS_DIR:QUESTIONS[:GLOB]")
    return parts[0], Path(parts[1]), parts[3] if len(parts) == 4 else "**/*.html", Path(parts[2])


def _coerce(text: str, like: Any) -> Any:
    if isinstance(like, bool):
        return text.lower() in ("1", "true", "yes", "on")
    if isinstance(like, int):
        return int(text)
    if isinstance(like, float):
        return float(text)
    if isinstance(like, tuple):
        return tuple(float(x) for x in text.split(","))
    return text


def ranking_config(params: list[str]) -> Any:
    from parley.core.knowledge.retrieval import RankingConfig

    config = RankingConfig()
    defaults = {f.name: getattr(config, f.name) for f in fields(config)}
    for p in params:
        name, _, value = p.partition("=")
        if name not in defaults:
            raise SystemExit(f"unknown ranking parameter {name!r}: {sorted(defaults)}")
        config = replace(config, **{name: _coerce(value, defaults[name])})
    return config


def latency_at_scale(home: Path, base: Path, n: int, log: Any) -> dict[str, Any]:
    """Query latency at scale, with bench_index.py's large-store harness.

    n chunks of this corpus's texts (repeated), vectors near their real embeddings; hybrid
    queries with the shipped ranking.
    """
    sys.path.insert(0, str(HERE))
    import bench_index

    large = base / f"large-{n}"
    shutil.rmtree(large, ignore_errors=True)
    old = os.environ.get("PARLEY_HOME")
    os.environ["PARLEY_HOME"] = str(home)
    if _assets():
        os.environ.setdefault("PARLEY_ASSETS", str(_assets()))
    log(f"latency: building a {n}-chunk store")
    try:
        return dict(bench_index.bench_large(n, large))
    finally:
        if old is None:
            os.environ.pop("PARLEY_HOME", None)
        else:
            os.environ["PARLEY_HOME"] = old
        shutil.rmtree(large, ignore_errors=True)


def partial_home(c: Corpus, base: Path) -> tuple[Path, dict[str, Any]]:
    """The biggest Parley home of this corpus, finished or not."""
    import sqlite3

    best, most = None, -1
    for home in base.glob(f"parley-{c.key}-*"):
        db = home / "data" / "knowledge.sqlite3"
        if db.is_file():
            n = sqlite3.connect(db).execute("SELECT count(*) FROM chunks").fetchone()[0]
            if n > most:
                best, most = home, n
    if best is None:
        raise SystemExit(f"no index of {c.source} under {base}")
    return best, {"chunks": most, "partial": True}


def answerable(home: Path, root: Path, questions: list[Question]) -> list[Question]:
    import sqlite3

    db = home / "data" / "knowledge.sqlite3"
    paths = [
        r[0] for r in sqlite3.connect(db).execute("SELECT path FROM files WHERE status='indexed'")
    ]
    return [q for q in questions if any(is_hit(q, p, root) for p in paths)]


def sweep(home: Path, c: Corpus, args: Any, base: Any) -> None:
    """Every combination of the --grid values, hybrid mode: one JSON line per config."""
    import itertools

    axes = []
    for g in args.grid:
        name, _, values = g.partition("=")
        like = getattr(base, name)
        axes.append([(name, _coerce(v, like)) for v in values.split("|")])
    sets = [(n, load_questions(qs)[:: max(1, args.sample)]) for n, qs in c.sets]
    if args.partial:
        sets = [(n, answerable(home, c.dir, qs)) for n, qs in sets]
    store = open_store(home, cached=True)
    try:
        for combo in itertools.product(*axes):
            config = replace(base, **dict(combo))
            line: dict[str, Any] = {k: v for k, v in combo}
            for name, questions in sets:
                got, extra = parley_answers(store, questions, config, (args.grid_mode,))
                r = score(questions, got[args.grid_mode], c.dir)
                line[name] = [r["recall_at_5"], r["mrr"], extra["stable_k5_k20"], len(questions)]
            print(json.dumps(line), flush=True)
    finally:
        store.close()


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1].startswith("_recipe-"):
        return _recipe_main(sys.argv[1:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--set", action="append", required=True, dest="sets")
    ap.add_argument("--reuse", type=Path, help="keep corpora, indexes and answers here")
    ap.add_argument("--reindex", action="store_true", help="rebuild Parley's index")
    ap.add_argument("--no-recipe", action="store_true")
    ap.add_argument("--recipe-python", help="interpreter with chromadb + langchain-text-splitters")
    ap.add_argument("--sample", type=int, default=1, help="every n-th question only")
    ap.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    ap.add_argument("--misses", action="store_true", help="list hybrid misses")
    ap.add_argument(
        "--ranks", action="store_true", help="per question: rank of the first hit, each system"
    )
    ap.add_argument("--only-recipe", action="store_true", help="index with the recipe only")
    ap.add_argument("--only-index", action="store_true", help="index with Parley only")
    ap.add_argument(
        "--recipe-cached-only",
        action="store_true",
        help="compare with the recipe only where its index is already in --reuse",
    )
    ap.add_argument("--grid-mode", choices=MODES, default="hybrid", help="mode of --grid")
    ap.add_argument(
        "--partial",
        action="store_true",
        help="use an index still being built (questions with no indexed answer are dropped)",
    )
    ap.add_argument(
        "--latency",
        type=int,
        metavar="N",
        help="also query p50/p95 at N chunks (bench_index.py's harness, this corpus as donor)",
    )
    ap.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="NAME=V1|V2",
        help="sweep ranking parameters (hybrid only, cached query vectors, one line each)",
    )
    ap.add_argument(
        "--model",
        help="knowledge.embedding_model to use (default: Parley's default; index kept per model)",
    )
    args = ap.parse_args()
    global MODEL
    MODEL = args.model

    config = None if args.only_recipe or args.only_index else ranking_config(args.param)

    base = args.reuse or Path(tempfile.mkdtemp(prefix="bench-retrieval-"))
    base.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

    def log(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    corpora: dict[tuple[Path, str], Corpus] = {}
    for spec in args.sets:
        name, src, glob, qs = parse_set(spec)
        if not qs.is_file():
            raise SystemExit(f"--set {name}: no question file {qs}")
        c = corpora.setdefault((src, glob), Corpus(src, glob, Path()))
        c.sets.append((name, qs))
    python = None if args.no_recipe else (args.recipe_python or recipe_python())
    if not args.no_recipe and python is None:
        raise SystemExit(
            "the recipe needs an interpreter with chromadb and langchain-text-splitters: "
            "python3 -m venv .venv-recipe && .venv-recipe/bin/pip install "
            "chromadb==1.5.9 langchain-text-splitters (or --recipe-python, or --no-recipe)"
        )

    result: dict[str, Any] = {
        "load_avg_1min": round(os.getloadavg()[0], 2),
        "model": _model(),
        "config": {f.name: getattr(config, f.name) for f in fields(config)} if config else None,
        "corpora": {},
        "sets": {},
    }
    for c in corpora.values():
        c.dir = base / f"corpus-{c.key}"
        nfiles = copy_corpus(c.source, c.glob, c.dir)
        cres: dict[str, Any] = {"source": str(c.source), "glob": c.glob, "files": nfiles}
        if args.only_recipe:
            if python:
                recipe_index(python, c, base, False, log)
            continue
        if args.partial:
            home, pstats = partial_home(c, base)
        else:
            home, pstats = parley_index(c, base, args.reindex, log)
        cres["parley"] = pstats
        if args.only_index:
            log(f"parley: {pstats}")
            continue
        if args.recipe_cached_only and python:
            db = base / f"recipe-{c.key}"
            db = db if (db / "done.json").is_file() else None
        else:
            db = recipe_index(python, c, base, False, log) if python else None
        if args.grid:
            sweep(home, c, args, config)
            continue
        for name, qs in c.sets:
            questions = load_questions(qs)[:: max(1, args.sample)]
            log(f"{name}: {len(questions)} questions")
            store = open_store(home)
            try:
                got, extra = parley_answers(store, questions, config)
            finally:
                store.close()
            sres: dict[str, Any] = {"questions": len(questions), "corpus": c.key}
            for mode in MODES:
                sres[mode] = score(questions, got[mode], c.dir)
            sres.update(extra)
            if db is not None:
                rgot, rstats = recipe_answers(python, db, questions)
                sres["recipe"] = score(questions, rgot, c.dir)
                cres["recipe"] = rstats
                sres["delta_vs_recipe"] = {
                    k: round(sres["hybrid"][k] - sres["recipe"][k], 4)
                    for k in ("recall_at_5", "mrr")
                }
            if args.ranks:
                systems = {m: got[m] for m in MODES} | ({"recipe": rgot} if db is not None else {})
                sres["ranks"] = [
                    {"q": q.text} | {m: first_hit(q, g[i], c.dir) for m, g in systems.items()}
                    for i, q in enumerate(questions)
                ]
            if args.misses:
                sres["misses"] = [
                    {
                        "q": q.text,
                        "want": sorted(q.stems or q.relpaths),
                        "got": [stem(p) for p in g],
                    }
                    for q, g in zip(questions, got["hybrid"], strict=True)
                    if not any(is_hit(q, p, c.dir) for p in g[:K])
                ]
            result["sets"][name] = sres
        if args.latency:
            cres["parley"].update(latency_at_scale(home, base, args.latency, log))
        cres["parley"]["query_p50_ms"] = max(
            (result["sets"][n]["query_p50_ms"] or 0) for n, _ in c.sets
        )
        result["corpora"][c.key] = cres
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
