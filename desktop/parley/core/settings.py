"""Settings: one declarative pydantic model, stored as TOML in the config folder.

Every field has a type, a default and a description (STYLE.md §6). Secrets never live here
(see ``core.secrets``). The file carries ``schema_version``; upgrades are ordered functions.
"""

from __future__ import annotations

import os
import tempfile
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from parley.core.errors import ConfigError

SCHEMA_VERSION = 1


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", validate_assignment=True)


class ProviderSettings(_Model):
    """Per-provider choices (no keys: those are in the OS keyring)."""

    base_url: str | None = Field(None, description="Endpoint override (OpenAI-compatible servers).")
    default_model: str | None = Field(None, description="Model picked for new chats.")


class TimeoutSettings(_Model):
    """Network time limits in seconds."""

    connect_s: float = Field(10.0, gt=0, description="Connecting to the provider.")
    first_byte_s: float = Field(
        60.0, gt=0, description="From sending a request to the first streamed token."
    )
    idle_s: float = Field(30.0, gt=0, description="Longest silence allowed mid-stream.")


class ChromaServerSettings(_Model):
    """A shared Chroma server for a team knowledge base (the token is in the keyring)."""

    host: str = Field(..., description="Host name of the Chroma server.")
    port: int = Field(8000, ge=1, le=65535, description="Port of the Chroma server.")
    ssl: bool = Field(False, description="Use TLS.")


class KnowledgeSettings(_Model):
    """Folders the person added and how they are indexed."""

    folders: list[str] = Field(default_factory=list, description="Folders added to Parley.")
    max_file_mb: int = Field(50, ge=1, description="Files larger than this are skipped.")
    parse_timeout_s: float = Field(30.0, gt=0, description="Time limit to parse one file.")
    max_chunks_per_file: int = Field(
        10_000,
        ge=1,
        description="A file is indexed up to this many passages (the rest is left out, "
        "with a reason shown).",
    )
    embedding_model: str = Field(
        "all-MiniLM-L6-v2",
        description="'all-MiniLM-L6-v2' (local, the default), 'all-MiniLM-L6-v2-int8' "
        "(local, int8 weights: less CPU) or 'openai:text-embedding-3-small'.",
    )
    chroma_server: ChromaServerSettings | None = Field(
        None, description="Use a Chroma server instead of the embedded store."
    )
    retrieval_k: int = Field(6, ge=1, le=50, description="Sources put into a grounded prompt.")
    source_token_budget: int = Field(
        3000, ge=200, description="Most prompt tokens spent on retrieved sources."
    )


class ToolSettings(_Model):
    """The agent loop's limits."""

    step_cap: int = Field(10, ge=1, le=100, description="Most model calls in one turn.")
    max_output_tokens: int = Field(
        20000, ge=1000, description="Most tool-output tokens returned to the model per turn."
    )
    approved_folders: list[str] = Field(
        default_factory=list,
        description="Folders the file tools may read without asking (Always for this folder).",
    )


class BudgetSettings(_Model):
    """Spending limits (issue 13): off unless set. At 80 % a notice; at 100 % sending asks."""

    daily_usd: float | None = Field(
        None, gt=0, description="Most US dollars to spend on model APIs in one day."
    )
    monthly_usd: float | None = Field(
        None, gt=0, description="Most US dollars to spend on model APIs in one calendar month."
    )


class CachingSettings(_Model):
    """Prompt caching at the provider and Parley's own response cache."""

    prompt_cache: bool = Field(
        True,
        description="Mark the stable start of long Anthropic requests for prompt caching "
        "(cached tokens cost a tenth; writing them costs a quarter more once).",
    )
    response_cache: bool = Field(
        True,
        description="Answer a request identical to an earlier one from Parley's own cache "
        "(only at temperature 0; Regenerate always asks the model).",
    )


class Settings(_Model):
    """All of Parley's settings."""

    schema_version: int = Field(SCHEMA_VERSION, description="Version of this file's layout.")
    default_provider: str = Field("openai", description="Provider used for new chats.")
    default_model: str | None = Field(None, description="Model used for new chats.")
    new_chat_model: Literal["last_used", "default"] = Field(
        "last_used",
        description="What the window's new chats use: the model last used there (as LM "
        "Studio and Jan do), or always default_provider/default_model.",
    )
    last_provider: str | None = Field(
        None, description="Provider of the model last used in the window (kept by the window)."
    )
    last_model: str | None = Field(
        None, description="The model last used in the window (kept by the window)."
    )
    providers: dict[str, ProviderSettings] = Field(
        default_factory=dict, description="Per-provider settings."
    )
    temperature: float | None = Field(None, ge=0, le=2, description="Sampling temperature.")
    top_p: float | None = Field(None, gt=0, le=1, description="Nucleus sampling.")
    max_output_tokens: int | None = Field(None, ge=1, description="Cap on answer length.")
    system_prompt: str = Field("", description="Global system prompt.")
    fallback_provider: str | None = Field(None, description="Provider of the fallback model.")
    fallback_model: str | None = Field(
        None, description="Model tried when the chosen one fails before answering."
    )
    timeouts: TimeoutSettings = Field(default_factory=TimeoutSettings)
    theme: Literal["system", "light", "dark"] = Field("system", description="Window theme.")
    knowledge: KnowledgeSettings = Field(default_factory=KnowledgeSettings)
    tools: ToolSettings = Field(default_factory=ToolSettings)
    budget: BudgetSettings = Field(default_factory=BudgetSettings)
    caching: CachingSettings = Field(default_factory=CachingSettings)
    onboarded: bool = Field(False, description="The first-run panel was completed.")

    def provider(self, provider_id: str) -> ProviderSettings:
        """Settings of ``provider_id`` (defaults when never set)."""
        return self.providers.get(provider_id) or ProviderSettings()


# Ordered upgrades: (version it produces, function). Picard's config_upgrade pattern.
_UPGRADES: list[tuple[int, Callable[[dict[str, Any]], dict[str, Any]]]] = []


def _upgrade(data: dict[str, Any]) -> dict[str, Any]:
    version = int(data.get("schema_version", 1))
    if version > SCHEMA_VERSION:
        raise ConfigError(
            f"Settings were written by a newer Parley (schema {version}); please update Parley."
        )
    for target, fn in _UPGRADES:
        if version < target:
            data = fn(data)
            data["schema_version"] = version = target
    return data


def load_settings(path: Path) -> Settings:
    """Read ``path``; a missing file gives defaults.

    Raises:
        ConfigError: the file is not valid TOML or holds invalid values.
    """
    if not path.exists():
        return Settings()
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"Settings file {path} is not valid TOML: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"Cannot read settings file {path}: {exc.strerror}") from exc
    try:
        return Settings.model_validate(_upgrade(data))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"Settings file {path}: {where}: {first['msg']}") from exc


def save_settings(settings: Settings, path: Path) -> None:
    """Write atomically (temp file + rename) so a crash never leaves half a file."""
    data = settings.model_dump(mode="json", exclude_none=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".settings-", suffix=".toml", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            tomli_w.dump(data, fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class SettingsStore:
    """The current settings plus persistence; collaborators read ``current`` at call time.

    Listeners registered with :meth:`add_listener` run after each save
    (``settings_did_change`` hooks, STYLE.md §4).
    """

    def __init__(self, path: Path, settings: Settings | None = None) -> None:
        self.path = path
        self._current = settings if settings is not None else load_settings(path)
        self._listeners: list[Callable[[Settings], None]] = []

    @property
    def current(self) -> Settings:
        """The settings in force."""
        return self._current

    def update(self, settings: Settings, *, save: bool = True) -> None:
        """Replace the settings (validated model), save them, tell listeners."""
        self._current = Settings.model_validate(settings.model_dump())
        if save:
            save_settings(self._current, self.path)
        for fn in list(self._listeners):
            fn(self._current)

    def add_listener(self, fn: Callable[[Settings], None]) -> None:
        """Call ``fn(settings)`` after each update."""
        self._listeners.append(fn)

    def remove_listener(self, fn: Callable[[Settings], None]) -> None:
        """Stop calling ``fn``."""
        if fn in self._listeners:
            self._listeners.remove(fn)
