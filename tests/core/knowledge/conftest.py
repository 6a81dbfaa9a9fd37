"""Fixtures for the knowledge store tests: real SQLite, real Chroma, the real MiniLM model."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from parley.core.knowledge.chunking import Chunk
from parley.core.knowledge.embeddings import LocalEmbedder, local_embedder
from parley.core.knowledge.store import KnowledgeStore
from parley.core.paths import Paths, default_paths
from tests.assets import default_embedder, need_minilm


def make_chunks(texts: list[str], heading: tuple[str, ...] = ("Doc",)) -> list[Chunk]:
    """Chunks with line ranges 10 lines apart, embed_text prefixed by the heading."""
    return [
        Chunk(
            index=i,
            text=t,
            embed_text=" > ".join(heading) + ": " + t,
            heading_path=heading,
            line_start=i * 10 + 1,
            line_end=i * 10 + 10,
            page=None,
            token_count=len(t.split()),
        )
        for i, t in enumerate(texts)
    ]


@contextmanager
def index_lock_held_elsewhere(paths: Paths) -> Iterator[None]:
    """Another process holds the index writer lock until the block ends."""
    with subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import sys, filelock
            lock = filelock.FileLock({str(paths.index_lock_file)!r})
            lock.acquire()
            print("locked", flush=True)
            sys.stdin.readline()
        """),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        assert holder.stdin is not None and holder.stdout is not None
        try:
            assert holder.stdout.readline().strip() == "locked"
            yield
        finally:
            holder.stdin.write("\n")
            holder.stdin.flush()
            holder.wait(10)


@pytest.fixture
def paths(parley_home: Path) -> Paths:
    p = default_paths()
    p.ensure()
    return need_minilm(p)


@pytest.fixture
def embedder(paths: Paths) -> LocalEmbedder:
    """The default local model, the one ``parley index`` and the window use."""
    emb = default_embedder(paths)
    assert isinstance(emb, LocalEmbedder)
    return emb


@pytest.fixture
def fp32_embedder(paths: Paths) -> LocalEmbedder:
    """The fp32 local model (``all-MiniLM-L6-v2``)."""
    return local_embedder(paths)


@pytest.fixture
def int8_embedder(paths: Paths) -> LocalEmbedder:
    """The opt-in int8 local model (``all-MiniLM-L6-v2-int8``)."""
    return local_embedder(paths, quantized=True)


@pytest.fixture
def store(paths: Paths, embedder: LocalEmbedder) -> Iterator[KnowledgeStore]:
    s = KnowledgeStore(paths, embedder)
    yield s
    s.close()


# ---------------------------------------------------------------- fake OpenAI embeddings


@dataclass
class FakeOpenAI:
    """POST /v1/embeddings on 127.0.0.1, scripted: queue statuses to return before 200s."""

    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    script: list[tuple[int, dict[str, str], dict[str, Any]]] = field(default_factory=list)
    shuffle: bool = False
    dim: int = 8


def _vector(text: str, dim: int) -> list[float]:
    # Deterministic and text-dependent, unit length: enough for ranking to mean something.
    import hashlib
    import math

    vals = [b / 255.0 - 0.5 for b in hashlib.sha256(text.encode()).digest()[:dim]]
    norm = math.sqrt(sum(v * v for v in vals)) or 1.0
    return [v / norm for v in vals]


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    state = FakeOpenAI()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", 0))
            body = json.loads(self.rfile.read(length) or b"{}")
            state.requests.append(body)
            state.headers.append({k.lower(): v for k, v in self.headers.items()})
            if self.path != "/v1/embeddings":
                self._send(404, {}, {"error": {"message": "not found"}})
                return
            if state.script:
                status, headers, payload = state.script.pop(0)
                self._send(status, headers, payload)
                return
            inputs = body["input"]
            data = [
                {"object": "embedding", "index": i, "embedding": _vector(t, state.dim)}
                for i, t in enumerate(inputs)
            ]
            if state.shuffle:
                data.reverse()
            self._send(
                200,
                {},
                {
                    "object": "list",
                    "data": data,
                    "model": body["model"],
                    "usage": {"prompt_tokens": 1, "total_tokens": 1},
                },
            )

        def _send(self, status: int, headers: dict[str, str], payload: dict[str, Any]) -> None:
            raw = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(raw)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(raw)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
