"""Server mode: the store against a real ``chroma run`` on loopback (a shared team index)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from parley.core.errors import ProviderDown
from parley.core.knowledge.chunking import Chunk
from parley.core.knowledge.embeddings import local_embedder
from parley.core.knowledge.retrieval import Retriever
from parley.core.knowledge.store import FileWrite, KnowledgeStore
from parley.core.knowledge.vectors import ChromaServer
from parley.core.paths import Paths, default_paths
from tests.assets import need_minilm

pytestmark = pytest.mark.integration

CHROMA = Path(sys.executable).parent / "chroma"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def chroma_server(tmp_path: Path) -> Iterator[ChromaServer]:
    exe = str(CHROMA) if CHROMA.exists() else shutil.which("chroma")
    if exe is None:
        pytest.skip("the `chroma` CLI is not installed (pip install chromadb puts it in bin/)")
    port = _free_port()
    env = dict(os.environ, ANONYMIZED_TELEMETRY="False")
    proc = subprocess.Popen(
        [
            exe,
            "run",
            "--path",
            str(tmp_path / "server-data"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("chroma run did not start")
                time.sleep(0.1)  # polling a port with a deadline, not waiting blindly
        yield ChromaServer(host="127.0.0.1", port=port)
    finally:
        proc.terminate()
        proc.wait(20)


@pytest.fixture
def paths() -> Paths:
    p = default_paths()
    p.ensure()
    return need_minilm(p)


def test_shared_server_index(chroma_server: ChromaServer, paths: Paths, tmp_path: Path) -> None:
    emb = local_embedder(paths)
    root = tmp_path / "team"
    root.mkdir()
    doc = root / "handbook.md"
    doc.write_text("x")
    texts = [
        "Expense reports are due on the fifth working day of each month.",
        "The VPN client must be updated before connecting from abroad.",
    ]
    chunks = [Chunk(i, t, t, ("Handbook",), None, i + 1, i + 1, 10) for i, t in enumerate(texts)]
    writer = KnowledgeStore(paths, emb, server=chroma_server)
    try:
        assert not (paths.chroma_dir / "chroma.sqlite3").exists()  # nothing embedded locally
        writer.add_root(root)
        with writer.writer():
            writer.write_files(
                [FileWrite(doc, root, 1, 1, "h", "markdown", chunks, emb.embed(texts))]
            )
        assert writer.vector_count() == 2
        hit = Retriever(writer).search("when must I hand in expenses", k=1)[0]
        assert hit.path == doc and hit.heading == "Handbook"
    finally:
        writer.close()

    # A teammate: another Parley home (no local manifest), same server.
    mate_home = tmp_path / "teammate"
    mate = Paths(
        mate_home / "c", mate_home / "d", mate_home / "ca", mate_home / "l", paths.assets_dir
    )
    mate.ensure()
    reader = KnowledgeStore(mate, emb, server=chroma_server)
    try:
        hits = Retriever(reader).search("updating the VPN before travel", k=1, mode="dense")
        assert hits and hits[0].path == doc
        assert hits[0].text == texts[1]  # the text came from the server
        assert (hits[0].line_start, hits[0].heading) == (2, "Handbook")
    finally:
        reader.close()


def test_unreachable_server_is_a_clear_error(paths: Paths) -> None:
    emb = local_embedder(paths)
    with pytest.raises(ProviderDown) as info:
        KnowledgeStore(paths, emb, server=ChromaServer("127.0.0.1", _free_port()))
    assert "Chroma server" in info.value.user_message
