"""Is an embedded Chroma folder safe to open? Checked in a child process (issue 11, item 4).

Chroma keeps each collection's HNSW graph in four files (``header.bin``, ``data_level0.bin``,
``length.bin``, ``link_lists.bin``) plus ``index_metadata.pickle``, next to ``chroma.sqlite3``.
hnswlib trusts those files: an overwritten ``data_level0.bin`` or ``link_lists.bin`` holds
neighbour ids that point anywhere, and the process that loads them dies with SIGSEGV, which
no ``try`` can catch. Other damage (a short ``header.bin``, a garbage pickle, a
``chroma.sqlite3`` cut to nothing) surfaces as errors on every query, or as an index that
silently lost its vectors.

:func:`probe` therefore checks the folder in a separate process before Parley opens it:

1. :func:`check_segment` validates each HNSW segment's files without native code: header
   fields consistent with each other, file sizes, every neighbour list (count within
   bounds, every neighbour id below the element count), the entry point's level, and the
   pickle's opcode stream (walked with ``pickletools``, never unpickled);
2. then it opens the folder with chromadb, counts every collection and runs a few queries
   against each (which loads the graph and replays Chroma's write-ahead log, as a real
   search would).

A crash, a timeout or an error in the child is the parent's answer: the folder is damaged.
:func:`fingerprint` says whether the folder changed since the last good check, so the
check runs only when there is something new to check (``knowledge/store.py``).
"""

from __future__ import annotations

import json
import logging
import math
import multiprocessing
import os
import pickletools
import signal
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 120.0
"""Longest wait for the child (loading a large graph from a slow disk takes a while)."""

HEADER = struct.Struct("<iQQQQQQiIQQQdQ")
"""``header.bin`` as chromadb's hnswlib writes it (``persistHeader``): version, offsetLevel0,
max_elements, cur_element_count, size_data_per_element, label_offset, offsetData, maxlevel,
enterpoint_node, maxM, maxM0, M, mult, ef_construction (100 bytes)."""

PERSISTENCE_VERSION = 1
"""The only ``header.bin`` version hnswlib reads."""

_SEGMENT_FILES = ("header.bin", "data_level0.bin", "length.bin", "link_lists.bin")

_SIZE_ONLY = ("chroma.sqlite3",)
"""Opening Chroma rewrites this file's mtime on every start, so only its size counts."""


@dataclass(frozen=True)
class ProbeResult:
    """What the child found."""

    problem: str | None = None
    """Why the folder must not be opened (None: it looked fine)."""
    counts: dict[str, int] = field(default_factory=dict)
    """Vectors per collection name (when it looked fine)."""
    inconclusive: bool = False
    """The check could not run to the end for a reason that says nothing about the files
    (it timed out, or could not start); the caller opens the folder as before."""


def fingerprint(chroma_dir: Path) -> str:
    """The folder's files with size and mtime (size only for ``chroma.sqlite3``), as JSON.

    Costs one ``stat`` per file (a handful): it decides whether :func:`probe` runs.
    """
    entries: list[tuple[str, int, int]] = []
    base = str(chroma_dir)
    for folder, dirs, files in os.walk(base):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(folder, name)
            try:
                st = os.stat(full)
            except OSError:
                continue
            rel = os.path.relpath(full, base).replace(os.sep, "/")
            mtime = 0 if name.startswith(_SIZE_ONLY) else st.st_mtime_ns
            entries.append((rel, st.st_size, mtime))
    return json.dumps(entries, separators=(",", ":"))


# ---------------------------------------------------------------- file checks


def check_segment(folder: Path) -> str | None:
    """Validate one HNSW segment folder; returns what is wrong, or None.

    Pure Python and numpy: it reads the files but never hands them to native code.
    """
    names = set(os.listdir(folder))
    missing = [n for n in _SEGMENT_FILES if n not in names]
    if missing:
        if len(missing) == len(_SEGMENT_FILES):
            return None  # not an HNSW segment folder
        return f"{', '.join(missing)} missing in {folder.name}"
    try:
        return _check_hnsw(folder) or _check_pickle(folder)
    except OSError as exc:
        return f"{folder.name} could not be read ({exc.strerror or exc})"


def _check_hnsw(folder: Path) -> str | None:
    import numpy as np

    raw = (folder / "header.bin").read_bytes()
    if len(raw) < HEADER.size:
        return f"header.bin is {len(raw)} bytes, not {HEADER.size}"
    (
        version,
        offset_level0,
        max_elements,
        count,
        size_per_element,
        label_offset,
        offset_data,
        max_level,
        entry,
        max_m,
        max_m0,
        m,
        mult,
        _ef_construction,
    ) = HEADER.unpack_from(raw)
    links0 = max_m0 * 4 + 4
    links_upper = max_m * 4 + 4
    data_size = size_per_element - links0 - 8
    if (
        version != PERSISTENCE_VERSION
        or offset_level0 != 0
        or not 0 < max_m <= max_m0 < 0xFFFF
        or m != max_m
        or count > max_elements
        or max_elements > 2**32
        or offset_data != links0
        or data_size <= 0
        or data_size % 4
        or label_offset != links0 + data_size
        or not math.isfinite(mult)
    ):
        return "header.bin holds inconsistent values"
    if count == 0:
        return None
    if not 0 <= entry < count or not 0 <= max_level < 64:
        return "header.bin names an entry point outside the graph"
    level0 = folder / "data_level0.bin"
    if level0.stat().st_size < count * size_per_element:
        return f"data_level0.bin is too short for {count} elements"
    if (folder / "length.bin").stat().st_size < count * 4:
        return f"length.bin is too short for {count} elements"
    # length.bin holds each vector's norm before normalising (Parley's collections are all
    # cosine): a norm is a finite number >= 0, which garbage bytes almost never all are.
    norms = np.fromfile(folder / "length.bin", dtype="<f4", count=count)
    if not bool(np.isfinite(norms).all()) or bool((norms < 0).any()):
        return "length.bin holds values that are not vector lengths"

    # Level 0: each element's list is a uint16 count (then flag bytes) and maxM0 neighbour ids.
    table = np.memmap(level0, dtype=np.uint8, mode="r", shape=(count, size_per_element))
    lists = np.ascontiguousarray(table[:, :links0]).view(np.uint32)
    sizes = lists[:, 0] & 0xFFFF
    if int(sizes.max()) > max_m0:
        return "data_level0.bin holds a neighbour list longer than allowed"
    used = np.arange(max_m0)[None, :] < sizes[:, None]
    if bool((lists[:, 1:][used] >= count).any()):
        return "data_level0.bin links to elements that do not exist"
    del table

    # Upper levels: per element a uint32 byte length, then that many bytes of level lists.
    blob = (folder / "link_lists.bin").read_bytes()
    pos = 0
    levels = np.zeros(count, dtype=np.int32)
    blocks: list[bytes] = []
    for i in range(count):
        if pos + 4 > len(blob):
            return "link_lists.bin ends before the last element"
        (length,) = struct.unpack_from("<I", blob, pos)
        pos += 4
        if length:
            if length % links_upper or length // links_upper > max_level:
                return "link_lists.bin holds a level list of an impossible size"
            if pos + length > len(blob):
                return "link_lists.bin ends inside a level list"
            levels[i] = length // links_upper
            blocks.append(blob[pos : pos + length])
            pos += length
    if levels[entry] != max_level:
        return "the graph's entry point is not on its top level"
    if blocks:
        upper = np.frombuffer(b"".join(blocks), dtype=np.uint32).reshape(-1, max_m + 1)
        up_sizes = upper[:, 0] & 0xFFFF
        if int(up_sizes.max()) > max_m:
            return "link_lists.bin holds a neighbour list longer than allowed"
        used = np.arange(max_m)[None, :] < up_sizes[:, None]
        if bool((upper[:, 1:][used] >= count).any()):
            return "link_lists.bin links to elements that do not exist"
    return None


def _check_pickle(folder: Path) -> str | None:
    path = folder / "index_metadata.pickle"
    if not path.exists():
        return None  # written with the first persisted batch
    data = path.read_bytes()
    if not data:
        return "index_metadata.pickle is empty"
    try:
        last = None
        for op, _arg, _pos in pickletools.genops(data):  # reads opcodes; runs nothing
            last = op.name
    except Exception as exc:  # any malformed stream: genops raises ValueError and friends
        return f"index_metadata.pickle is not a valid pickle ({type(exc).__name__})"
    if last != "STOP":
        return "index_metadata.pickle is cut short"
    return None


# ---------------------------------------------------------------- the child process


def _probe_main(conn: Any, chroma_dir: str) -> None:
    """Child process: check the files, then open the folder with chromadb and query it."""
    try:
        folder = Path(chroma_dir)
        for entry in sorted(folder.iterdir()):
            if entry.is_dir():
                problem = check_segment(entry)
                if problem is not None:
                    conn.send(("damaged", problem))
                    return
        conn.send(("counts", _open_and_query(folder)))
    except Exception as exc:
        conn.send(("damaged", f"{type(exc).__name__}: {_one_line(exc)}"))
    finally:
        conn.close()


def _open_and_query(folder: Path) -> dict[str, int]:
    import random

    import chromadb
    from chromadb.config import Settings

    client: Any = chromadb.PersistentClient(  # Any: chromadb's own stubs are too narrow
        path=str(folder), settings=Settings(anonymized_telemetry=False)
    )
    counts: dict[str, int] = {}
    rng = random.Random(0)
    for col in client.list_collections():
        n = int(col.count())
        counts[col.name] = n
        if n == 0:
            continue
        sample = col.get(limit=1, include=["embeddings"])["embeddings"]
        dim = len(sample[0])
        # A few queries from different directions walk different parts of the graph, and
        # the first one makes Chroma apply its write-ahead log, as a real search would.
        queries = [[rng.uniform(-1.0, 1.0) for _ in range(dim)] for _ in range(4)]
        col.query(query_embeddings=queries, n_results=min(n, 20), include=["distances"])
    return counts


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else "")[:300]


def probe(chroma_dir: Path, *, timeout_s: float = PROBE_TIMEOUT_S) -> ProbeResult:
    """Check ``chroma_dir`` in a child process (see the module docstring).

    Returns:
        ``problem`` set when the folder is damaged (the child found a fault, failed, or
        crashed); ``inconclusive`` when the child could not finish for another reason.
    """
    ctx = multiprocessing.get_context("spawn")  # never fork a process that may run Qt
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(
        target=_probe_main, args=(send, str(chroma_dir)), name="parley-vector-probe", daemon=True
    )
    try:
        proc.start()
    except OSError as exc:
        log.warning("the vector index check could not start: %s", exc)
        return ProbeResult(inconclusive=True)
    send.close()
    msg: Any = None
    timed_out = False
    try:
        if recv.poll(timeout_s):
            msg = recv.recv()
        else:
            timed_out = True
    except (EOFError, OSError):
        msg = None  # the child died before answering
    finally:
        recv.close()
    proc.join(5.0)
    if proc.is_alive():
        proc.kill()
        proc.join(5.0)
    if timed_out:
        log.warning("the vector index check did not finish in %.0f s", timeout_s)
        return ProbeResult(inconclusive=True)
    if msg is None:
        code = proc.exitcode
        if code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return ProbeResult(problem=f"opening it crashed the process ({name})")
        return ProbeResult(problem=f"opening it stopped the process (exit code {code})")
    kind, payload = msg
    if kind == "damaged":
        return ProbeResult(problem=str(payload))
    return ProbeResult(counts={str(k): int(v) for k, v in dict(payload).items()})


__all__ = ["ProbeResult", "check_segment", "fingerprint", "probe"]
