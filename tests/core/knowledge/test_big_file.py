"""A 49 MB one-line file (issue 11, item 7).

Bounded memory, progress inside the file, committed batches that survive a stop, a resume that does
not redo them, a chunk cap with a reason. Real CLI in a subprocess, real MiniLM, SQLite and Chroma.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from parley.core.knowledge.embeddings import local_embedder
from parley.core.knowledge.indexer import Indexer, IndexProgress
from parley.core.knowledge.store import KnowledgeStore
from parley.core.paths import Paths

pytest.importorskip("parley.core.knowledge.chunking", reason="chunking.py not written yet")

REPO = Path(__file__).resolve().parents[3]

CAP = 200
"""Per-file chunk cap for these tests: a few batches of real embedding, under a minute."""

RSS_LIMIT_MB = 600
"""Issue 11: at most this much resident memory for the indexing process on a 49 MB file."""

_WORDS = (
    "harbour lantern copper meadow quartz falcon saddle ember willow granite orchard "
    "beacon thistle marble canyon ferry pepper velvet anchor glacier cobalt maple "
    "lagoon timber spindle"
).split()


def _one_line_file(path: Path, mb: int) -> Path:
    """``mb`` MiB of words with no line break at all (a minified or exported dump)."""
    rnd = random.Random(11)
    unit = " ".join(
        f"{rnd.choice(_WORDS)}{rnd.randrange(1000)}" for _ in range(120_000)
    ).encode()  # ~1.1 MB of varied words
    with open(path, "wb") as f:
        left = mb * 2**20
        while left > 0:
            f.write(unit[:left])
            left -= len(unit)
            if left > 0:
                f.write(b" ")
                left -= 1
    return path


class _PeakRss:
    """Samples a process's RSS (and its children's, apart) every 20 ms."""

    def __init__(self, pid: int) -> None:
        import psutil

        self._proc = psutil.Process(pid)
        self._psutil = psutil
        self.peak_mb = 0.0
        self.children_peak_mb = 0.0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            try:
                self.peak_mb = max(self.peak_mb, self._proc.memory_info().rss / 2**20)
                for c in self._proc.children(recursive=True):
                    rss = c.memory_info().rss / 2**20
                    self.children_peak_mb = max(self.children_peak_mb, rss)
            except self._psutil.Error:
                pass

    def stop(self) -> None:
        self._stop.set()
        self._t.join()


def _cli(home: Path, *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PARLEY_HOME=str(home), PYTHONPATH=str(REPO / "desktop"))
    return subprocess.Popen(
        [sys.executable, "-m", "parley", "index", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _file_chunks(paths: Paths, big: Path) -> tuple[str, int]:
    store = KnowledgeStore(paths, local_embedder(paths))
    try:
        rec = store.files()[big]
        n = (
            store._read()
            .execute("SELECT count(*) FROM chunks WHERE file_id = ?", (rec.id,))
            .fetchone()[0]
        )
        return rec.status, int(n)
    finally:
        store.close()


@pytest.mark.slow
@pytest.mark.timeout(300)  # ~40 s on an idle machine; two CLI starts and ~200 real embeddings
def test_49_mb_one_line_file_stop_and_resume(paths: Paths, tmp_path: Path) -> None:
    big = _one_line_file(tmp_path / "export.txt", 49)
    paths.settings_file.parent.mkdir(parents=True, exist_ok=True)
    paths.settings_file.write_text(f"[knowledge]\nmax_chunks_per_file = {CAP}\n")
    home = Path(os.environ["PARLEY_HOME"])

    # 1. Index, and stop it (SIGINT, as Ctrl+C) once a batch inside the file is committed.
    proc = _cli(home, str(big))
    rss = _PeakRss(proc.pid)
    assert proc.stderr is not None
    inside = re.compile(r"export\.txt: (\d+) of ~(\d+) passages")
    seen: list[tuple[int, int]] = []
    t0 = time.monotonic()
    for line in proc.stderr:
        m = inside.search(line)
        if m:
            seen.append((int(m[1]), int(m[2])))
            if int(m[1]) > 0:
                proc.send_signal(signal.SIGINT)
                break
        assert time.monotonic() - t0 < 90, "no progress inside the file"
    rest = proc.communicate(timeout=60)[1]
    rss.stop()
    assert seen, f"no progress inside the file was reported:\n{rest}"
    done_first, estimate = seen[-1]
    assert 0 < done_first < CAP and estimate == CAP  # the cap bounds the estimate
    assert proc.returncode != 0 and "interrupted" in rest
    assert rss.peak_mb <= RSS_LIMIT_MB, f"indexing process peaked at {rss.peak_mb:.0f} MB"

    # What was committed before the stop is kept, the file is marked unfinished.
    status, kept = _file_chunks(paths, big)
    assert status == "pending" and kept >= done_first

    # 2. Resume: only what was not committed is embedded; the cap applies, with a reason.
    proc = _cli(home, str(big), "--json")
    rss = _PeakRss(proc.pid)
    out, err = proc.communicate(timeout=120)
    rss.stop()
    assert proc.returncode == 0, err
    report = json.loads(out)
    assert report["chunks"] == CAP
    assert report["embedded"] <= CAP - kept, report  # fewer re-embedded on resume
    [capped] = report["files_capped"]
    assert capped["path"] == str(big) and f"cut at {CAP}" in capped["reason"]
    assert "the rest is not searchable" in capped["reason"]
    assert rss.peak_mb <= RSS_LIMIT_MB, f"indexing process peaked at {rss.peak_mb:.0f} MB"
    assert _file_chunks(paths, big) == ("indexed", CAP)
    # The reason stays visible with the file (the window's skipped list reads it).
    store = KnowledgeStore(paths, local_embedder(paths))
    try:
        assert dict(store.skipped())[big] == capped["reason"]
    finally:
        store.close()


def test_big_file_reports_progress_inside_and_commits_per_batch(
    store: KnowledgeStore, tmp_path: Path
) -> None:
    big = _one_line_file(tmp_path / "dump.txt", 3)  # three windows' worth of text and more
    events: list[IndexProgress] = []
    counts: list[int] = []

    def progress(p: IndexProgress) -> None:
        events.append(p)
        if p.file_chunks_total:
            # Each report inside the file comes after a commit: the chunks are in SQLite.
            counts.append(store.chunk_count())

    report = Indexer(store, embed_batch=40, max_chunks_per_file=130).index([big], progress=progress)
    inside = [(e.file_chunks_done, e.file_chunks_total) for e in events if e.file_chunks_total]
    assert [d for d, _ in inside] == [40, 80, 120][: len(inside)] and len(inside) >= 2
    assert all(total == 130 for _, total in inside)
    assert counts[: len(inside)] == [d for d, _ in inside]
    assert report.chunks == 130 and [p for p, _ in report.files_capped] == [big]
    rows = store._read().execute("SELECT idx FROM chunks ORDER BY idx").fetchall()
    assert [r[0] for r in rows] == list(range(130))  # numbered across windows


def test_big_document_is_chunked_in_windows_that_keep_headings_and_lines(
    store: KnowledgeStore, tmp_path: Path
) -> None:
    """A 1.1 MB Markdown file is chunked a window at a time (nothing embedded here).

    Chunks are numbered across windows, keep their chapter heading, and cite lines in order.
    """
    from parley.core.knowledge.indexer import WINDOW_CHARS, _End, _Part, _Prepared
    from parley.core.knowledge.loaders import load_file

    rnd = random.Random(1)
    parts = []
    for ch in range(8):
        parts.append(f"# Chapter {ch}\n")
        for sec in range(20):
            parts.append(f"## Section {ch}.{sec}\n")
            parts += [" ".join(rnd.choice(_WORDS) for _ in range(150)) + "\n" for _ in range(8)]
    doc_path = tmp_path / "manual.md"
    doc_path.write_text("\n".join(parts))
    doc = load_file(doc_path)
    assert sum(len(b.text) for b in doc.blocks) > 4 * WINDOW_CHARS  # several windows
    item = _Prepared(doc_path, tmp_path, doc.size, 0, doc=doc)
    pieces = list(Indexer(store)._chunk_stream(item, {"chunk_s": 0.0}))
    assert isinstance(pieces[-1], _End) and pieces[-1].reason is None
    chunks = [c for p in pieces if isinstance(p, _Part) for c in p.chunks]
    assert len([p for p in pieces if isinstance(p, _Part)]) >= 4
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert all(c.heading_path and c.heading_path[0].startswith("Chapter") for c in chunks)
    # A window starting mid-chapter is put under the chapter's heading without repeating it
    # as text, and its chunks carry the whole document's title (none: it has 8 chapters),
    # not a title guessed from the window's first heading.
    for ch in range(8):
        assert sum(c.text.count(f"Chapter {ch}") for c in chunks) == 1
    assert {c.title for c in chunks} == {""}
    # Carried headings have no lines: a chunk of nothing but them would have none either.
    starts = [c.line_start for c in chunks]
    assert None not in starts and starts == sorted(starts)
    assert item.est_chunks == len(chunks) and item.doc is None  # the text is let go
