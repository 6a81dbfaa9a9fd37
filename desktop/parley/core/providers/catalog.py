"""The model catalog: providers, context windows and prices from ``resources/models.toml``.

A user file (``<config>/models.toml``) overrides or extends entries field by field. Prices
are data, never code; an unknown model has an unknown price (``None``), never $0.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parley.core.errors import ConfigError
from parley.core.paths import resources_dir


@dataclass(frozen=True)
class ProviderInfo:
    """A provider entry: how to reach it and where its key comes from."""

    id: str
    label: str
    protocol: str
    """``openai`` (Chat Completions) or ``anthropic`` (Messages)."""
    key_env: str | None = None
    base_url: str | None = None
    base_url_env: str | None = None
    key_optional: bool = False
    default_model: str | None = None


@dataclass(frozen=True)
class ModelInfo:
    """One model: its provider, limits and prices per 1M tokens (``None`` = unknown)."""

    id: str
    provider: str
    label: str
    context_window: int | None = None
    max_output: int | None = None
    price_input: float | None = None
    price_output: float | None = None
    price_cached_input: float | None = None
    price_cache_write: float | None = None
    unverified: bool = False
    as_of: str | None = None

    @property
    def has_prices(self) -> bool:
        """Whether input and output prices are both known."""
        return self.price_input is not None and self.price_output is not None


@dataclass(frozen=True)
class Catalog:
    """Providers and models, merged from the bundled file and the user's overrides."""

    providers: dict[str, ProviderInfo]
    models: dict[str, ModelInfo]
    sources: tuple[Path, ...] = field(default=())

    def provider(self, provider_id: str) -> ProviderInfo:
        """The provider ``provider_id``.

        Raises:
            ConfigError: unknown provider id.
        """
        try:
            return self.providers[provider_id]
        except KeyError:
            known = ", ".join(sorted(self.providers))
            raise ConfigError(f"Unknown provider '{provider_id}'. Known: {known}.") from None

    def model(self, model_id: str, provider: str | None = None) -> ModelInfo | None:
        """The catalog entry of ``model_id``, or ``None`` when the catalog does not know it.

        A model served through another provider than its catalog entry (e.g. a local
        server naming a model ``gpt-4o``) is not priced as the vendor's model.
        """
        info = self.models.get(model_id)
        if info is None:
            # Dated snapshots ("gpt-4o-2024-08-06", "claude-haiku-4-5-20251001") share the
            # family's limits and prices.
            for mid in sorted(self.models, key=len, reverse=True):
                if model_id.startswith(mid + "-") and model_id[len(mid) + 1 :][:1].isdigit():
                    info = self.models[mid]
                    break
        if info is None:
            return None
        if provider is not None and info.provider != provider:
            return None
        return info

    def models_for(self, provider: str) -> list[ModelInfo]:
        """Catalog models of one provider, in file order."""
        return [m for m in self.models.values() if m.provider == provider]


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, val in over.items():
        if isinstance(val, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], val)
        else:
            out[key] = val
    return out


_MODEL_FIELDS = set(ModelInfo.__dataclass_fields__) - {"id"}
_PROVIDER_FIELDS = set(ProviderInfo.__dataclass_fields__) - {"id"}


def load_catalog(user_file: Path | None = None, bundled: Path | None = None) -> Catalog:
    """Read the bundled catalog and apply ``user_file`` on top when it exists.

    Raises:
        ConfigError: a file is not valid TOML or an entry is malformed.
    """
    bundled = bundled or resources_dir() / "models.toml"
    sources = [bundled]
    data = _read(bundled)
    if user_file is not None and user_file.is_file():
        data = _merge(data, _read(user_file))
        sources.append(user_file)
    providers: dict[str, ProviderInfo] = {}
    for pid, entry in data.get("providers", {}).items():
        fields = {k: v for k, v in entry.items() if k in _PROVIDER_FIELDS}
        try:
            providers[pid] = ProviderInfo(id=pid, **{"label": pid, "protocol": "openai", **fields})
        except TypeError as exc:
            raise ConfigError(f"Bad provider entry '{pid}' in models.toml: {exc}") from exc
    models: dict[str, ModelInfo] = {}
    for mid, entry in data.get("models", {}).items():
        fields = {k: v for k, v in entry.items() if k in _MODEL_FIELDS}
        if "provider" not in fields:
            raise ConfigError(f"Model '{mid}' in models.toml has no provider.")
        for key in ("price_input", "price_output", "price_cached_input", "price_cache_write"):
            val = fields.get(key)
            if val is not None and (not isinstance(val, int | float) or val < 0):
                raise ConfigError(f"Model '{mid}': {key} must be a non-negative number.")
        models[mid] = ModelInfo(id=mid, **{"label": mid, **fields})
    return Catalog(providers, models, tuple(sources))


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"Cannot read {path}: {exc.strerror}") from exc
