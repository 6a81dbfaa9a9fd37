"""PyInstaller hook for Parley's own package (found through ``hookspath`` in parley.spec).

What the import graph cannot see by itself:

- ``parley.resources`` (models.toml, icons, style sheets) lives in the checkout's top-level
  ``resources/`` folder, mapped onto the package by pyproject.toml's ``package-dir``.
  PyInstaller's ``collect_data_files("parley.resources")`` would put those files at the
  bundle's root (it derives the destination from the folder name), so they are listed here
  with the destination ``parley/resources``: where ``parley.core.paths.resources_dir()`` looks
  in the frozen app (next to the ``parley.resources`` package it imports).
- Every ``parley`` submodule: several are imported lazily, by name, or only inside worker
  processes (the indexer's ``spawn`` worker unpickles its target by module name). Collecting
  them all costs a few hundred kilobytes and removes a class of "works from source, fails
  frozen" bugs.
- Third-party modules that are loaded from strings (STACK-NOTES.md, PyInstaller section):
  chromadb picks its components by dotted name from its settings; tiktoken finds its
  encodings through the ``tiktoken_ext`` namespace plugin package; Chroma's ONNX embedding
  function imports onnxruntime, tokenizers and tqdm inside a method.
"""

from __future__ import annotations

from pathlib import Path

from PyInstaller.utils.hooks import collect_data_files, collect_submodules

_REPO = Path(__file__).resolve().parents[2]
"""The checkout (this file is ``<repo>/packaging/hooks/hook-parley.py``)."""

RESOURCE_PATTERNS = ("*.toml", "*.svg", "*.png", "*.ico", "*.qss", "*.md", "prompts/*")
"""The same file patterns pyproject.toml ships as ``parley.resources`` package data."""

CHROMADB_SKIPPED = (
    "chromadb.test",
    "chromadb.server",
    "chromadb.cli",
    "chromadb.auth.simple_rbac_authz",
    "chromadb.telemetry.opentelemetry.fastapi",
    "chromadb.telemetry.opentelemetry.grpc",
    "chromadb.proto",
    "chromadb.logservice",
    "chromadb.db.impl.grpc",
    "chromadb.execution.executor.distributed",
)
"""chromadb parts a desktop client never loads: its tests, its HTTP server (FastAPI/uvicorn),
the server's auth and tracing middleware, the ``chroma`` command line (which starts that
server), and the gRPC client of its distributed mode (parley.spec excludes gRPC)."""


def resource_datas(repo: Path = _REPO) -> list[tuple[str, str]]:
    """``(source, destination folder)`` pairs for Parley's resources folder.

    Args:
        repo: The checkout's root.

    Returns:
        One pair per file, destined for ``parley/resources`` (sub-folders kept).
    """
    src = repo / "resources"
    found: list[tuple[str, str]] = []
    for pattern in RESOURCE_PATTERNS:
        for f in sorted(src.glob(pattern)):
            if f.is_file():
                dest = Path("parley/resources") / f.parent.relative_to(src)
                found.append((str(f), dest.as_posix()))
    return found


def _keep_chromadb_module(name: str) -> bool:
    return not any(name == s or name.startswith(s + ".") for s in CHROMADB_SKIPPED)


hiddenimports = [
    "parley.resources",
    *collect_submodules("parley"),
    *collect_submodules("chromadb", filter=_keep_chromadb_module),
    "tiktoken_ext",
    "tiktoken_ext.openai_public",
    "onnxruntime",
    "tokenizers",
    "tqdm",
]

datas = [
    *resource_datas(),
    # chromadb reads its own YAML/SQL migration files next to its modules.
    *collect_data_files("chromadb", excludes=["test/**", "server/**", "**/__pycache__"]),
]
