"""The offline assets some tests need (``PARLEY_ASSETS``, see shared/assets/README.md)."""

from __future__ import annotations

import pytest

from parley.core.knowledge.embeddings import LOCAL_MODEL_ID, model_files_complete
from parley.core.paths import Paths, default_paths


def need_minilm(paths: Paths | None = None) -> Paths:
    """Skip the calling test unless the MiniLM model files are in the assets folder."""
    p = paths or default_paths()
    if p.assets_dir is None or not model_files_complete(
        p.assets_dir / "models" / LOCAL_MODEL_ID / "onnx"
    ):
        pytest.skip("the MiniLM model is not in PARLEY_ASSETS (see shared/assets/README.md)")
    return p
