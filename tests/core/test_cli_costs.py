"""``parley costs``, ``parley ask --json``'s money fields, budgets and the price file.

Run as real subprocesses against the fake servers (issue 13).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from parley.core.store.ledger import Ledger, LedgerEntry, local_day
from tests.core.test_cli import assert_one_line_error, parley
from tests.fakes.script import Text


def settings(home: Path, text: str) -> None:
    (home / "config").mkdir(parents=True, exist_ok=True)
    (home / "config" / "settings.toml").write_text(text)


def ask_json(home: Path, srv: Any, *args: str) -> dict[str, Any]:
    p = parley(home, "ask", "--json", *args, srv=srv)
    assert p.returncode == 0, p.stderr
    return dict(json.loads(p.stdout))


def costs(home: Path, *args: str) -> Any:
    p = parley(home, "costs", *args)
    assert p.returncode == 0, p.stderr
    return p


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_ask_json_reports_estimate_usage_cost_and_cache(
    parley_home: Path, fake_llm: Any, provider: str
) -> None:
    model = "gpt-4o" if provider == "openai" else "claude-haiku-4-5"
    fake_llm.enqueue(
        Text("Fine.", input_tokens=2000, output_tokens=5, cached_input_tokens=1200,
             cache_write_tokens=300)
    )  # fmt: skip
    out = ask_json(parley_home, fake_llm, "--provider", provider, "--model", model, "How?")
    est = out["estimate"]
    assert set(est) == {"input_tokens", "cost_usd", "exact"}
    assert est["exact"] is (provider == "openai") and est["input_tokens"] > 0
    assert est["cost_usd"] > 0
    assert out["usage"] == {
        "input_tokens": 2000,
        "output_tokens": 5,
        "cached_input_tokens": 1200,
        "cache_write_tokens": 300,
    }
    assert out["cached"] is False and out["local"] is False
    ledger = Ledger(parley_home / "data" / "parley.sqlite3")
    try:
        assert out["cost_usd"] == pytest.approx(
            ledger.conversation(out["conversation_id"]).cost_usd
        )
    finally:
        ledger.close()


def test_ask_json_estimate_matches_what_openai_counts(parley_home: Path, fake_llm: Any) -> None:
    out = ask_json(
        parley_home, fake_llm, "--model", "gpt-4o", "--system", "Answer in French.", "Hi " * 300
    )
    reported = out["usage"]["input_tokens"]  # counted by the fake with tiktoken
    assert out["estimate"]["exact"] is True
    assert abs(out["estimate"]["input_tokens"] - reported) <= 0.03 * reported


def test_cached_answer_at_temperature_zero(parley_home: Path, fake_llm: Any) -> None:
    settings(parley_home, "temperature = 0.0\n")
    fake_llm.enqueue(Text("Forty-two.", input_tokens=50, output_tokens=3))
    first = ask_json(parley_home, fake_llm, "--model", "gpt-4o", "Meaning of life?")
    again = ask_json(parley_home, fake_llm, "--model", "gpt-4o", "Meaning of life?")
    assert len(fake_llm.requests) == 1
    assert first["cached"] is False and again["cached"] is True
    assert again["text"] == "Forty-two." and again["cost_usd"] == 0.0
    total = json.loads(costs(parley_home, "--json").stdout)["totals"]
    assert total["cache_hits"] == 1 and total["saved_usd"] == pytest.approx(first["cost_usd"])


def test_unknown_price_is_null_with_how_to_add_one(parley_home: Path, fake_llm: Any) -> None:
    p = parley(parley_home, "ask", "--json", "--model", "my-finetune", "hi", srv=fake_llm)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["cost_usd"] is None and out["estimate"]["cost_usd"] is None
    assert '[models."my-finetune"]' in out["price_hint"]
    assert "models.toml" in p.stderr and "price_input" in p.stderr
    data = json.loads(costs(parley_home, "--json", "--by", "model").stdout)
    [row] = data["rows"]
    assert row["model"] == "my-finetune" and row["cost_usd"] is None and row["unknown"] == 1
    assert "price_hint" in row and data["totals"]["cost_usd"] is None


def test_local_server_costs_nothing_and_says_so(parley_home: Path, fake_llm: Any) -> None:
    out = ask_json(
        parley_home,
        fake_llm,
        "--provider",
        "openai-compatible",
        "--base-url",
        fake_llm.openai_base_url,
        "--model",
        "fake-model",
        "hi",
    )
    assert out["cost_usd"] == 0.0 and out["local"] is True
    text = costs(parley_home, "--by", "model").stdout
    assert "fake-model" in text and "$0.00 (local)" in text


def seed(home: Path) -> None:
    ledger = Ledger(home / "data" / "parley.sqlite3")
    day = 86400
    import time

    now = time.time()
    for e in [
        LedgerEntry("openai", "gpt-4o", 1000, 100, 200, 0, 0.004, ts=now),
        LedgerEntry("openai", "gpt-4o", 500, 50, cost_usd=0.002, purpose="tool_round", ts=now),
        LedgerEntry("anthropic", "claude-sonnet-4-6", 800, 80, 0, 0, 0.0036, ts=now - 3 * day),
        LedgerEntry("openai", "gpt-4o", 10, 1, cost_usd=0.5, ts=now - 60 * day),
    ]:
        ledger.record(e)
    ledger.close()


def test_costs_json_totals_and_groupings(parley_home: Path) -> None:
    seed(parley_home)
    import time

    since = local_day(time.time() - 10 * 86400)
    data = json.loads(costs(parley_home, "--json", "--since", since).stdout)
    assert data["by"] == "day" and data["since"] == since and data["until"] is None
    t = data["totals"]
    assert t["requests"] == 3 and t["cost_usd"] == pytest.approx(0.0096)
    assert t["input_tokens"] == 2300 and t["cached_input_tokens"] == 200
    assert [r["requests"] for r in data["rows"]] == [1, 2]  # oldest day first
    by_model = json.loads(costs(parley_home, "--json", "--by", "model").stdout)["rows"]
    assert [(r["model"], r["provider"], r["requests"]) for r in by_model] == [
        ("gpt-4o", "openai", 3),
        ("claude-sonnet-4-6", "anthropic", 1),
    ]
    by_purpose = json.loads(costs(parley_home, "--json", "--by", "purpose").stdout)["rows"]
    assert {r["purpose"]: r["requests"] for r in by_purpose} == {"chat": 3, "tool_round": 1}
    today = local_day()
    text = costs(parley_home, "--since", today, "--until", today).stdout
    assert today in text and "total" in text and "$0.0060" in text


def test_costs_csv_exports_every_request(parley_home: Path) -> None:
    seed(parley_home)
    rows = list(csv.DictReader(io.StringIO(costs(parley_home, "--csv").stdout)))
    assert len(rows) == 4
    assert {"time", "provider", "model", "purpose", "cost_usd", "cache_hit"} <= set(rows[0])
    assert rows[0]["cost_usd"] == "0.5"  # oldest first
    grouped = list(csv.DictReader(io.StringIO(costs(parley_home, "--csv", "--by", "model").stdout)))
    assert [r["model"] for r in grouped] == ["gpt-4o", "claude-sonnet-4-6"]


def test_costs_bad_dates_are_one_line_errors(parley_home: Path) -> None:
    assert_one_line_error(parley(parley_home, "costs", "--since", "yesterday"), "2026-01-31")
    assert_one_line_error(
        parley(parley_home, "costs", "--since", "2026-02-01", "--until", "2026-01-01"), "after"
    )


def test_budget_warns_then_refuses_unless_over_budget(parley_home: Path, fake_llm: Any) -> None:
    settings(parley_home, "[budget]\ndaily_usd = 0.01\n")
    ledger = Ledger(parley_home / "data" / "parley.sqlite3")
    ledger.record(LedgerEntry("openai", "gpt-4o", 1000, 10, cost_usd=0.0085))
    p = parley(parley_home, "ask", "--model", "gpt-4o", "hi", srv=fake_llm)
    assert p.returncode == 0 and "85% of your $0.01 daily budget" in p.stderr
    ledger.record(LedgerEntry("openai", "gpt-4o", 1000, 10, cost_usd=0.01))
    ledger.close()
    before = len(fake_llm.requests)
    p = parley(parley_home, "ask", "--model", "gpt-4o", "more", srv=fake_llm)
    assert_one_line_error(p, "--over-budget")
    assert "daily budget" in p.stderr and len(fake_llm.requests) == before  # nothing sent
    p = parley(parley_home, "ask", "--over-budget", "--model", "gpt-4o", "more", srv=fake_llm)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "You said: more" and len(fake_llm.requests) == before + 1


def test_a_price_file_typo_does_not_stop_parley(parley_home: Path, fake_llm: Any) -> None:
    (parley_home / "config").mkdir(parents=True, exist_ok=True)
    user = parley_home / "config" / "models.toml"
    user.write_text('[models."gpt-4o"]\nprice_input = 1.0,\n')
    p = parley(parley_home, "models", "--json")
    assert p.returncode == 0
    assert f"{user}, line 2" in p.stderr and "built-in prices" in p.stderr
    by_id = {r["id"]: r for r in json.loads(p.stdout)}
    assert by_id["gpt-4o"]["price_input_per_mtok"] == 2.5
    out = ask_json(parley_home, fake_llm, "--model", "gpt-4o", "hi")
    assert out["cost_usd"] is not None and out["cost_usd"] > 0
