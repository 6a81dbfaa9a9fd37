"""Token counts: tiktoken for OpenAI models, an estimate for others.

tiktoken downloads its BPE files on first use; offline (and in the packaged app) they come
from ``<assets>/tiktoken`` through ``TIKTOKEN_CACHE_DIR``, set before the first encoding loads.
Claude models have no public tokenizer: estimate, and trust the provider's reported usage.
"""

from __future__ import annotations

import os
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

_lock = threading.Lock()
CHARS_PER_TOKEN_ESTIMATE = 3.6


def configure(assets_dir: Path | None) -> None:
    """Point tiktoken at the offline BPE files when Parley has an assets folder."""
    if assets_dir is not None and (assets_dir / "tiktoken").is_dir():
        os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(assets_dir / "tiktoken"))


@lru_cache(maxsize=8)
def _encoding(name: str) -> Any:
    import tiktoken

    with _lock:
        return tiktoken.get_encoding(name)


def encoding_name_for(model: str) -> str | None:
    """Tiktoken encoding of an OpenAI model, None for others."""
    m = model.lower()
    if m.startswith(("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt")):
        return "o200k_base"
    if m.startswith(("gpt-4", "gpt-3.5")):
        return "cl100k_base"
    return None


def count_tokens(text: str, model: str = "gpt-4o") -> tuple[int, bool]:
    """Tokens in ``text`` for ``model`` and whether the count is exact (not an estimate)."""
    name = encoding_name_for(model)
    if name is not None:
        try:
            return len(_encoding(name).encode(text, disallowed_special=())), True
        except Exception:  # no BPE file offline: fall back to the estimate
            pass
    return max(1, round(len(text) / CHARS_PER_TOKEN_ESTIMATE)) if text else 0, False
