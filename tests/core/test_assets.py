"""``parley assets download``: fetches, verifies against pinned SHA-256, keeps nothing bad.

The files come from a loopback HTTP server serving the offline assets folder at the same
paths as their real hosts (``PARLEY_ASSETS_BASE_URL``, tests only); the real pins apply, so
the tiktoken files served here are checked against tiktoken's own hashes.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import os
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from parley.core.assets import (
    INT8_SUBDIR,
    MODEL_ARCHIVE,
    MODEL_FILES,
    MODEL_SUBDIR,
    SUMS_FILE,
    TIKTOKEN_ENCODINGS,
    AssetError,
    Source,
    complete,
    default_sources,
    download_assets,
    read_sums,
    tiktoken_file,
)
from parley.core.paths import default_paths
from tests.assets import need_minilm


def _shared() -> Path:
    folder = need_minilm().assets_dir
    assert folder is not None
    return folder


def _model_tarball(extra: tuple[tarfile.TarInfo, ...] = ()) -> bytes:
    """A ``onnx.tar.gz`` laid out like Chroma's (``onnx/<file>``), with small stand-in files."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for info in extra:
            data = b"evil" if info.isfile() else None
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
        for name in MODEL_FILES:
            data = _stand_in(name)
            info = tarfile.TarInfo(f"onnx/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _stand_in(name: str) -> bytes:
    return f"stand-in for {name}\n".encode()


class _Server:
    """Serves ``routes`` (path -> bytes) on 127.0.0.1 and records the paths asked for."""

    def __init__(self, routes: dict[str, bytes]) -> None:
        self.routes = routes
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append(self.path)
                body = outer.routes.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _real_routes(model_archive: bytes | None = None) -> dict[str, bytes]:
    routes = {}
    for url, _sha in TIKTOKEN_ENCODINGS.values():
        path = url.split(".net", 1)[1]
        routes[path] = (_shared() / "tiktoken" / tiktoken_file(url)).read_bytes()
    routes["/all-MiniLM-L6-v2/onnx.tar.gz"] = model_archive or _model_tarball()
    return routes


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server(_real_routes())
    yield srv
    srv.close()


def _cli(folder: Path, base_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "parley", "assets", "download", "--dir", str(folder)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PARLEY_ASSETS_BASE_URL": base_url},
        check=False,
    )


def _leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob("*") if p.name.startswith(".")]


# ---------------------------------------------------------------- the pins
def test_pins_are_the_libraries_own_and_match_the_real_files() -> None:
    import tiktoken_ext.openai_public as openai_public
    from chromadb.utils.embedding_functions import ONNXMiniLM_L6_V2

    from parley.core.knowledge.embeddings import MODEL_FILES as EMBEDDER_FILES

    source = inspect.getsource(openai_public)
    for url, sha in TIKTOKEN_ENCODINGS.values():
        assert url in source and f'expected_hash="{sha}"' in source
        # tiktoken's cache name for the URL is the file name in the assets folder.
        real = _shared() / "tiktoken" / tiktoken_file(url)
        assert hashlib.sha256(real.read_bytes()).hexdigest() == sha
    assert ONNXMiniLM_L6_V2.MODEL_DOWNLOAD_URL == MODEL_ARCHIVE[0]
    assert ONNXMiniLM_L6_V2._MODEL_SHA256 == MODEL_ARCHIVE[1]
    assert tuple(MODEL_FILES) == tuple(EMBEDDER_FILES)
    assert [s.name for s in default_sources()] == ["o200k_base", "cl100k_base", "all-MiniLM-L6-v2"]


# ---------------------------------------------------------------- the command
def test_cli_downloads_with_progress_and_verifies(tmp_path: Path, server: _Server) -> None:
    folder = tmp_path / "assets"
    # The model is already there (copied from another machine), its sums recorded.
    (folder / MODEL_SUBDIR).mkdir(parents=True)
    for name in MODEL_FILES:
        (folder / MODEL_SUBDIR / name).write_bytes((_shared() / MODEL_SUBDIR / name).read_bytes())
    shared_sums = read_sums(_shared())
    (folder / SUMS_FILE).write_text(
        "".join(
            f"{shared_sums[f'{MODEL_SUBDIR}/{n}']}  ./{MODEL_SUBDIR}/{n}\n" for n in MODEL_FILES
        )
    )

    r = _cli(folder, server.url)
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert "o200k_base: 3.4 MB downloaded, SHA-256 verified" in out
    assert "cl100k_base: 1.6 MB downloaded, SHA-256 verified" in out
    assert "all-MiniLM-L6-v2: already there, SHA-256 verified" in out
    # The int8 model (the default) is made here from the verified fp32 one.
    assert "all-MiniLM-L6-v2-int8: made from all-MiniLM-L6-v2" in out
    int8 = folder / INT8_SUBDIR
    assert sorted(p.name for p in int8.iterdir()) == sorted(MODEL_FILES)
    assert (int8 / "model.onnx").stat().st_size < 30_000_000  # 87 MB fp32 -> 23 MB
    for name in MODEL_FILES:
        if name != "model.onnx":
            assert (int8 / name).read_bytes() == (folder / MODEL_SUBDIR / name).read_bytes()
    assert "o200k_base: 896 KB/3.4 MB" in r.stderr  # progress (not a terminal: quarter steps)
    assert sorted(server.requests) == [
        "/encodings/cl100k_base.tiktoken",
        "/encodings/o200k_base.tiktoken",
    ]
    assert complete(folder) == []
    # SHA256SUMS now lists all eight files, and they match (sha256sum -c).
    sums = read_sums(folder)
    assert len(sums) == 8
    for rel, digest in sums.items():
        assert hashlib.sha256((folder / rel).read_bytes()).hexdigest() == digest
        assert (folder / rel).read_bytes() == (_shared() / rel).read_bytes()
    assert _leftovers(folder) == []

    # Twice: nothing is downloaded again.
    server.requests.clear()
    again = _cli(folder, server.url)
    assert again.returncode == 0 and server.requests == []
    assert again.stdout.count("already there, SHA-256 verified") == 3
    assert "all-MiniLM-L6-v2-int8: already there" in again.stdout.splitlines()


def test_cli_refuses_an_archive_that_does_not_match_its_pin(
    tmp_path: Path, server: _Server
) -> None:
    # The loopback server's model archive is not Chroma's, so the real pin must reject it:
    # exactly what happens to a tampered or truncated download.
    folder = tmp_path / "assets"
    r = _cli(folder, server.url)
    assert r.returncode == 2
    assert "all-MiniLM-L6-v2: the download from" in r.stderr
    assert "does not match its pinned SHA-256" in r.stderr and "nothing was kept" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (folder / "models").exists()
    assert _leftovers(folder) == []
    # The files that did verify are kept, with their sums.
    assert sorted(read_sums(folder)) == sorted(
        f"tiktoken/{tiktoken_file(u)}" for u, _ in TIKTOKEN_ENCODINGS.values()
    )


def test_cli_reports_a_server_that_is_not_there(tmp_path: Path) -> None:
    srv = _Server({})
    url = srv.url
    srv.close()
    r = _cli(tmp_path / "assets", url)
    assert r.returncode == 2
    assert "o200k_base: download from" in r.stderr and "failed" in r.stderr
    assert "Traceback" not in r.stderr


# ---------------------------------------------------------------- the library
def test_archive_members_are_extracted_safely(tmp_path: Path) -> None:
    escape = tarfile.TarInfo("../../escape.txt")
    link = tarfile.TarInfo("onnx/config.json")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    archive = _model_tarball((escape, link))
    srv = _Server({"/model.tar.gz": archive})
    try:
        source = Source(
            "model",
            "https://example.invalid/model.tar.gz",
            hashlib.sha256(archive).hexdigest(),
            MODEL_SUBDIR,
            MODEL_FILES,
        )
        folder = tmp_path / "assets"
        [fetched] = download_assets(folder, sources=[source], base_url=srv.url)
    finally:
        srv.close()
    assert fetched.status == "downloaded" and fetched.size == len(archive)
    for name in MODEL_FILES:
        path = folder / MODEL_SUBDIR / name
        assert not path.is_symlink() and path.read_bytes() == _stand_in(name)
    assert not list(tmp_path.rglob("escape.txt"))
    assert _leftovers(folder) == []


def test_a_damaged_file_is_fetched_again_and_a_bad_download_is_not_kept(
    tmp_path: Path,
) -> None:
    url, sha = TIKTOKEN_ENCODINGS["cl100k_base"]
    good = (_shared() / "tiktoken" / tiktoken_file(url)).read_bytes()
    path = "/encodings/cl100k_base.tiktoken"
    source = Source("cl100k_base", url, sha, f"tiktoken/{tiktoken_file(url)}")
    folder = tmp_path / "assets"
    target = folder / source.dest
    target.parent.mkdir(parents=True)
    target.write_bytes(b"damaged")

    srv = _Server({path: good[:-10]})  # truncated in transit
    try:
        with pytest.raises(AssetError, match="does not match its pinned SHA-256"):
            download_assets(folder, sources=[source], base_url=srv.url)
        assert target.read_bytes() == b"damaged"  # untouched: nothing half-written replaces it
        srv.routes[path] = good
        [fetched] = download_assets(folder, sources=[source], base_url=srv.url)
    finally:
        srv.close()
    assert fetched.status == "downloaded" and target.read_bytes() == good
    assert _leftovers(folder) == []


def test_downloaded_assets_are_found_without_parley_assets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PARLEY_ASSETS", raising=False)
    assert default_paths().assets_dir is None
    folder = default_paths().data_dir / "assets"
    folder.mkdir(parents=True)
    assert default_paths().assets_dir == folder
