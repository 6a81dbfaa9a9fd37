"""Model catalog (prices are data, unknown is unknown) and settings (TOML, PARLEY_HOME)."""

from __future__ import annotations

from pathlib import Path

import pytest

from parley.core.costs import is_local_url, usage_cost
from parley.core.errors import ConfigError
from parley.core.paths import default_paths
from parley.core.providers.base import Usage
from parley.core.providers.catalog import load_catalog
from parley.core.settings import Settings, SettingsStore, load_settings, save_settings


def test_catalog_has_the_models_people_name() -> None:
    cat = load_catalog()
    for mid in (
        "gpt-5.5",
        "gpt-5.5-mini",
        "claude-opus-4-8",
        "claude-sonnet-4-6",
        "claude-haiku-4-5",
        "gpt-4o",
        "gpt-4.1",
    ):
        m = cat.model(mid)
        assert m is not None and m.context_window and m.has_prices, mid
    for pid in (
        "openai",
        "anthropic",
        "openai-compatible",
        "gemini",
        "mistral",
        "deepseek",
        "groq",
        "openrouter",
    ):
        assert cat.provider(pid).protocol in ("openai", "anthropic")
    assert cat.provider("gemini").base_url.startswith("https://generativelanguage")  # type: ignore[union-attr]


def test_unknown_model_has_unknown_price_never_zero() -> None:
    cat = load_catalog()
    assert cat.model("my-finetune-xyz") is None
    assert usage_cost(Usage(1000, 1000), None) is None
    # a local server naming its model like a vendor's is not priced as the vendor's
    assert cat.model("gpt-4o", "openai-compatible") is None
    # dated snapshots share the family's prices
    assert cat.model("gpt-4o-2024-08-06") is cat.model("gpt-4o")


def test_cost_math_with_cache() -> None:
    m = load_catalog().model("claude-sonnet-4-6")
    # 1M prompt tokens: 600k cached read, 100k cache write, 300k fresh; 100k output
    cost = usage_cost(Usage(1_000_000, 100_000, 600_000, 100_000), m)
    assert cost == pytest.approx(0.3 * 3 + 0.6 * 0.3 + 0.1 * 3.75 + 0.1 * 15)
    assert usage_cost(Usage(10, 10), None, local=True) == 0.0
    assert is_local_url("http://127.0.0.1:11434/v1") and is_local_url("http://localhost:1234")
    assert not is_local_url("https://api.groq.com/openai/v1")


def test_user_file_overrides_prices(tmp_path: Path) -> None:
    user = tmp_path / "models.toml"
    user.write_text(
        '[models."gpt-4o"]\nprice_input = 1.0\n\n'
        '[models."my-local"]\nprovider = "openai-compatible"\ncontext_window = 8192\n'
    )
    cat = load_catalog(user)
    assert cat.model("gpt-4o").price_input == 1.0  # type: ignore[union-attr]
    assert cat.model("gpt-4o").price_output == 10.0  # type: ignore[union-attr]
    local = cat.model("my-local")
    assert local is not None and local.price_input is None and not local.has_prices


def test_bad_user_catalog_is_reported_not_fatal(tmp_path: Path) -> None:
    """A typo in the person's models.toml names the file and line; built-in entries stay."""
    user = tmp_path / "models.toml"
    user.write_text("[models.x\n")
    cat = load_catalog(user)
    assert cat.problems and "not valid TOML" in cat.problems[0] and "line 1" in cat.problems[0]
    assert cat.model("gpt-4o") is not None
    user.write_text('[models.x]\nprovider = "openai"\nprice_input = -1\n')
    cat = load_catalog(user)
    assert "non-negative" in cat.problems[0] and "line 3" in cat.problems[0]
    assert cat.model("x") is None  # a new entry with a bad value is left out
    bundled = tmp_path / "bundled.toml"
    bundled.write_text("[models.x\n")
    with pytest.raises(ConfigError, match="not valid TOML"):  # the shipped file must be right
        load_catalog(None, bundled)


def test_parley_home_moves_every_path(parley_home: Path) -> None:
    p = default_paths()
    for d in (p.config_dir, p.data_dir, p.cache_dir, p.log_dir):
        assert d.is_relative_to(parley_home)


def test_settings_round_trip_and_validation(tmp_path: Path) -> None:
    f = tmp_path / "settings.toml"
    assert load_settings(f) == Settings()
    s = Settings(default_provider="anthropic", temperature=0.3, system_prompt="Be kind.")
    s.knowledge.folders.append("/tmp/docs")
    save_settings(s, f)
    assert load_settings(f) == s
    seen = []
    store = SettingsStore(f)
    store.add_listener(seen.append)
    store.update(store.current.model_copy(update={"theme": "dark"}))
    assert load_settings(f).theme == "dark" and seen[0].theme == "dark"
    f.write_text("temperature = 7\n")
    with pytest.raises(ConfigError, match="temperature"):
        load_settings(f)
    f.write_text("schema_version = 99\n")
    with pytest.raises(ConfigError, match="newer Parley"):
        load_settings(f)
