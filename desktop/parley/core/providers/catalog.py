"""The model catalog: providers, context windows and prices from ``resources/models.toml``.

A user file (``<config>/models.toml``) overrides or extends entries field by field. Prices
are data, never code; an unknown model has an unknown price (``None``), never $0.

A mistake in the user file never stops Parley: a file that is not valid TOML is ignored as a
whole, a bad entry or value is ignored alone, and :attr:`Catalog.problems` names the file and
line of each so the front ends can say so (the built-in prices are used meanwhile).
"""

from __future__ import annotations

import re
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
    cache_min_tokens: int | None = None
    """Shortest prompt prefix the provider caches for this model (Anthropic's minimum)."""
    kind: str = "chat"
    """``chat`` or ``embedding`` (embedding models are priced, never offered for chats)."""

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
    problems: tuple[str, ...] = field(default=())
    """One line per mistake found in the user's models.toml (file and line); ignored."""
    user_file: Path | None = None
    """Where the user's overrides go (whether or not the file exists yet)."""

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
        """Chat models of one provider, in file order."""
        return [m for m in self.models.values() if m.provider == provider and m.kind == "chat"]

    def price_hint(self, model_id: str, provider: str) -> str:
        """How to give ``model_id`` a price: the models.toml table to add, and where."""
        where = str(self.user_file) if self.user_file is not None else "models.toml"
        return (
            f"No price is known for {model_id} ({provider}), so its cost is unknown. Add one "
            f'to {where}: [models."{model_id}"] provider = "{provider}" price_input = ... '
            "price_output = ... (US dollars per 1M tokens)."
        )


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

    Mistakes in ``user_file`` do not raise: they are reported in :attr:`Catalog.problems`
    and the bundled entries stay in force.

    Raises:
        ConfigError: the bundled file is not valid TOML or one of its entries is malformed.
    """
    bundled = bundled or resources_dir() / "models.toml"
    sources = [bundled]
    data = _read(bundled)
    providers, models = _entries(data)
    problems: list[str] = []
    if user_file is not None and user_file.is_file():
        try:
            text = user_file.read_text(encoding="utf-8")
            over = tomllib.loads(text)
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{user_file}: cannot be read ({exc}); using the built-in prices.")
        except tomllib.TOMLDecodeError as exc:
            problems.append(
                f"{_where(user_file, exc)}: not valid TOML ({_toml_reason(exc)}); "
                "using the built-in prices."
            )
        else:
            sources.append(user_file)
            _apply_user(over, text, user_file, data, providers, models, problems)
    return Catalog(providers, models, tuple(sources), tuple(problems), user_file)


def _entries(data: dict[str, Any]) -> tuple[dict[str, ProviderInfo], dict[str, ModelInfo]]:
    providers: dict[str, ProviderInfo] = {}
    for pid, entry in data.get("providers", {}).items():
        providers[pid] = _provider(pid, entry)
    models: dict[str, ModelInfo] = {}
    for mid, entry in data.get("models", {}).items():
        models[mid] = _model(mid, entry)
    return providers, models


def _provider(pid: str, entry: Any) -> ProviderInfo:
    if not isinstance(entry, dict):
        raise ConfigError(f"Provider '{pid}' in models.toml is not a table.")
    fields = {k: v for k, v in entry.items() if k in _PROVIDER_FIELDS}
    for key, val in fields.items():
        want: type | tuple[type, ...] = bool if key == "key_optional" else str
        if not isinstance(val, want):
            raise ConfigError(f"Provider '{pid}': {key} has the wrong type.", detail=key)
    try:
        return ProviderInfo(id=pid, **{"label": pid, "protocol": "openai", **fields})
    except TypeError as exc:
        raise ConfigError(f"Bad provider entry '{pid}' in models.toml: {exc}") from exc


_PRICES = ("price_input", "price_output", "price_cached_input", "price_cache_write")
_INTS = ("context_window", "max_output", "cache_min_tokens")


def _model(mid: str, entry: Any) -> ModelInfo:
    if not isinstance(entry, dict):
        raise ConfigError(f"Model '{mid}' in models.toml is not a table.")
    fields = {k: v for k, v in entry.items() if k in _MODEL_FIELDS}
    if "provider" not in fields:
        raise ConfigError(f"Model '{mid}' in models.toml has no provider.", detail="provider")
    for key in _PRICES:
        val = fields.get(key)
        if val is not None and (
            isinstance(val, bool) or not isinstance(val, int | float) or val < 0
        ):
            raise ConfigError(f"Model '{mid}': {key} must be a non-negative number.", detail=key)
    for key in _INTS:
        val = fields.get(key)
        if val is not None and (isinstance(val, bool) or not isinstance(val, int) or val <= 0):
            raise ConfigError(f"Model '{mid}': {key} must be a positive whole number.", detail=key)
    for key in ("provider", "label", "as_of", "kind"):
        if key in fields and not isinstance(fields[key], str):
            raise ConfigError(f"Model '{mid}': {key} must be text.", detail=key)
    return ModelInfo(id=mid, **{"label": mid, **fields})


def _apply_user(
    over: dict[str, Any],
    text: str,
    path: Path,
    data: dict[str, Any],
    providers: dict[str, ProviderInfo],
    models: dict[str, ModelInfo],
    problems: list[str],
) -> None:
    """Merge the user's entries one by one; a bad one is reported and skipped."""

    def entries(section: str) -> list[tuple[str, Any, bool]]:
        table = over.get(section, {})
        if not isinstance(table, dict):
            problems.append(f"{path}, line {_line_of(text, section)}: [{section}] must be a table.")
            return []
        out = []
        for key, entry in table.items():
            base = data.get(section, {}).get(key, {})
            merged = _merge(base, entry) if isinstance(entry, dict) else entry
            out.append((key, merged, bool(base)))
        return out

    def report(section: str, key: str, exc: ConfigError, built_in: bool) -> None:
        line = _line_of(text, section, key, exc.detail)
        problems.append(
            f"{path}, line {line}: {exc.user_message} Ignored; "
            + ("using the built-in entry." if built_in else "the entry is left out.")
        )

    for key, merged, built_in in entries("providers"):
        try:
            providers[key] = _provider(key, merged)
        except ConfigError as exc:
            report("providers", key, exc, built_in)
    for key, merged, built_in in entries("models"):
        try:
            models[key] = _model(key, merged)
        except ConfigError as exc:
            report("models", key, exc, built_in)


def _line_of(text: str, section: str, key: str | None = None, field_name: str | None = None) -> int:
    """1-based line of ``[section."key"]`` (and of ``field_name`` inside it) in ``text``."""
    lines = text.splitlines()
    start = 0
    if key is not None:
        header = re.compile(
            rf"^\s*\[\s*{re.escape(section)}\s*\.\s*(\"{re.escape(key)}\"|'{re.escape(key)}'|"
            rf"{re.escape(key)})\s*\]"
        )
        for i, line in enumerate(lines):
            if header.match(line):
                start = i
                break
    if field_name is not None:
        pat = re.compile(rf"^\s*{re.escape(field_name)}\s*=")
        for i in range(start, len(lines)):
            if pat.match(lines[i]):
                return i + 1
    return start + 1


def _where(path: Path, exc: tomllib.TOMLDecodeError) -> str:
    m = re.search(r"at line (\d+)", str(exc))
    return f"{path}, line {m.group(1)}" if m else str(path)


def _toml_reason(exc: tomllib.TOMLDecodeError) -> str:
    return re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc)) or "syntax error"


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"Cannot read {path}: {exc.strerror}") from exc
