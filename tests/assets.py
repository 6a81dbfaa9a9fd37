"""The offline assets some tests need (``PARLEY_ASSETS``, see shared/assets/README.md)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from parley.core.knowledge.embeddings import LOCAL_MODEL_ID, model_files_complete
from parley.core.paths import Paths, default_paths


def with_int8_model(folder: Path, repo: Path) -> Path:
    """``folder``, or a view of it with the int8 model added when it lacks one.

    The view (``<repo>/.cache/test-assets/<key>/``) links to ``folder``'s files and holds the
    int8 model made by ``parley.core.assets.make_int8`` (what ``parley assets download``
    runs), once per checkout and fp32 model; a folder without the fp32 model is returned as
    it is (the tests that need a model skip).
    """
    from parley.core.assets import INT8_SUBDIR, MODEL_SUBDIR, make_int8

    if model_files_complete(folder / INT8_SUBDIR) or not model_files_complete(
        folder / MODEL_SUBDIR
    ):
        return folder
    stat = (folder / MODEL_SUBDIR / "model.onnx").stat()
    key = hashlib.sha256(f"{folder.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
    view = repo / ".cache" / "test-assets" / key.hexdigest()[:12]
    if model_files_complete(view / INT8_SUBDIR):
        return view
    import filelock

    view.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(str(view) + ".lock"):
        for entry in folder.iterdir():
            if entry.name != "models" and not (view / entry.name).exists():
                os.symlink(entry.resolve(), view / entry.name)
        models = view / "models"
        models.mkdir(exist_ok=True)
        for entry in (folder / "models").iterdir():
            if not (models / entry.name).exists():
                os.symlink(entry.resolve(), models / entry.name)
        make_int8(view)
    return view


def need_minilm(paths: Paths | None = None) -> Paths:
    """Skip the calling test unless the MiniLM model files are in the assets folder."""
    p = paths or default_paths()
    if p.assets_dir is None or not model_files_complete(
        p.assets_dir / "models" / LOCAL_MODEL_ID / "onnx"
    ):
        pytest.skip("the MiniLM model is not in PARLEY_ASSETS (see shared/assets/README.md)")
    return p


def default_embedder(paths: Paths) -> Any:
    """The embedder Parley indexes with by default (``knowledge.embedding_model``'s default)."""
    from parley.core.knowledge.indexer import EmbedderConfig, make_embedder
    from parley.core.settings import KnowledgeSettings

    return make_embedder(paths, EmbedderConfig.from_setting(KnowledgeSettings().embedding_model))
