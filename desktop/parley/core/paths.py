"""Every file-system location Parley uses, in one place.

``PARLEY_HOME`` moves all of them under one folder (tests always set it). Otherwise the
platform's conventional folders are used (platformdirs). ``PARLEY_ASSETS`` names a folder
of offline assets (tiktoken BPE files, the embedding model: ``core/assets.py``); else the
packaged app's own, else ``<data dir>/assets`` when ``parley assets download`` filled it.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

APP_NAME = "parley"


@dataclass(frozen=True)
class Paths:
    """Resolved locations. Build with :func:`default_paths` (or directly in tests)."""

    config_dir: Path
    """Settings (settings.toml) and user overrides (models.toml)."""
    data_dir: Path
    """The SQLite database, the Chroma index, the embedding model."""
    cache_dir: Path
    """Disposable caches."""
    log_dir: Path
    """Log files (never contain secrets)."""
    assets_dir: Path | None
    """Offline assets folder (tiktoken/, models/), if one is configured or bundled."""

    @property
    def settings_file(self) -> Path:
        """The TOML settings file."""
        return self.config_dir / "settings.toml"

    @property
    def user_models_file(self) -> Path:
        """User overrides for the model catalog (prices, context windows)."""
        return self.config_dir / "models.toml"

    @property
    def db_file(self) -> Path:
        """Parley's SQLite database."""
        return self.data_dir / "parley.sqlite3"

    @property
    def response_cache_file(self) -> Path:
        """Parley's response cache (answers to identical temperature-0 requests)."""
        return self.data_dir / "response-cache.sqlite3"

    @property
    def chroma_dir(self) -> Path:
        """The embedded Chroma store."""
        return self.data_dir / "chroma"

    @property
    def index_lock_file(self) -> Path:
        """Held by the one process that writes the knowledge index."""
        return self.data_dir / "index.lock"

    @property
    def models_dir(self) -> Path:
        """Embedding model files downloaded or copied under the data dir."""
        return self.data_dir / "models"

    def ensure(self) -> None:
        """Create the writable folders (not the assets folder)."""
        for d in (self.config_dir, self.data_dir, self.cache_dir, self.log_dir):
            d.mkdir(parents=True, exist_ok=True)


def _bundled_assets() -> Path | None:
    base = getattr(sys, "_MEIPASS", None)
    if base:
        p = Path(base) / "assets"
        if p.is_dir():
            return p
    return None


def default_paths(environ: dict[str, str] | None = None) -> Paths:
    """Locations from the environment: ``PARLEY_HOME`` first, then platformdirs.

    The assets folder: ``PARLEY_ASSETS``, else the packaged app's, else ``<data dir>/assets``
    if it exists (``parley assets download`` puts them there by default).
    """
    env = os.environ if environ is None else environ
    assets_env = env.get("PARLEY_ASSETS")
    assets = Path(assets_env).expanduser().resolve() if assets_env else _bundled_assets()
    home = env.get("PARLEY_HOME")
    if home:
        root = Path(home).expanduser().resolve()
        dirs = (root / "config", root / "data", root / "cache", root / "logs")
    else:
        import platformdirs

        dirs = (
            Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)),
            Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)),
            Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False)),
            Path(platformdirs.user_log_dir(APP_NAME, appauthor=False)),
        )
    if assets is None and (dirs[1] / "assets").is_dir():
        assets = dirs[1] / "assets"
    return Paths(
        config_dir=dirs[0], data_dir=dirs[1], cache_dir=dirs[2], log_dir=dirs[3], assets_dir=assets
    )


def resources_dir() -> Path:
    """The folder holding models.toml, icons and style sheets.

    Installed: the ``parley.resources`` package. Frozen: ``_MEIPASS/parley/resources``.
    Source checkout: the top-level ``resources/`` folder.
    """
    try:
        import parley.resources as res

        return Path(res.__file__).resolve().parent
    except ImportError:  # running from a source tree without installing
        return Path(__file__).resolve().parents[3] / "resources"
