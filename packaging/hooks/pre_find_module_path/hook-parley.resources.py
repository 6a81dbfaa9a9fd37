"""Where PyInstaller finds ``parley.resources``: the checkout's top-level ``resources/``.

pyproject.toml maps that folder onto the package (``package-dir``); the editable install
does it with an import hook that PyInstaller's import graph does not run, so without this
the bundle would lack the module and ``parley.core.paths.resources_dir()`` would look in
the wrong place. ``hook-parley.py`` collects the data files beside it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

_REPO = Path(__file__).resolve().parents[3]
"""The checkout (this file is ``<repo>/packaging/hooks/pre_find_module_path/...``)."""


def pre_find_module_path(api: Any) -> None:
    """Search the checkout's root for ``resources`` (the package's folder name)."""
    api.search_dirs = [str(_REPO)]
