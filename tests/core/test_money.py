"""Money (issue 13).

Prices, the ledger of every request, estimates against reported usage, budgets, the response cache
and Anthropic prompt caching, through the real SDKs and the fake wire servers.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from parley.core.budget import evaluate
from parley.core.cache import CachedResponse, ResponseCache, request_key
from parley.core.chat import TurnFinished
from parley.core.costs import cache_savings, usage_cost
from parley.core.errors import OverBudget
from parley.core.paths import default_paths
from parley.core.providers.base import (
    CacheReplay,
    ChatRequest,
    Finished,
    Message,
    Metered,
    TextDelta,
    ToolCall,
    Usage,
)
from parley.core.providers.catalog import ModelInfo, load_catalog
from parley.core.secrets import MemorySecretStore, Secrets
from parley.core.services import Services, build_services
from parley.core.settings import (
    BudgetSettings,
    CachingSettings,
    ProviderSettings,
    Settings,
)
from parley.core.store.conversations import MIGRATIONS, ConversationStore
from parley.core.store.db import connect
from parley.core.store.ledger import Ledger, LedgerEntry, local_day
from tests.fakes.script import Call, Stall, Text, ToolCalls

KINDS = ["openai", "anthropic"]
MODELS = {"openai": "gpt-4o", "anthropic": "claude-sonnet-4-6"}


def make(srv: Any, kind: str = "openai", **settings: Any) -> Services:
    s = Settings(
        default_provider=kind,
        default_model=MODELS[kind],
        providers={
            "openai": ProviderSettings(base_url=srv.openai_base_url),
            "anthropic": ProviderSettings(base_url=srv.anthropic_base_url),
            "openai-compatible": ProviderSettings(base_url=srv.openai_base_url),
        },
        **settings,
    )
    secrets = Secrets(MemorySecretStore())
    secrets.store.set("openai", "sk-test")
    secrets.store.set("anthropic", "sk-ant-test")
    return build_services(default_paths(), s, secrets)


@pytest.fixture
def closing() -> Any:
    made: list[Services] = []
    yield made
    for svc in made:
        svc.conversations.close()
        svc.ledger.close()
        svc.response_cache.close()


async def ask(
    svc: Services, text: str, *, cid: int | None = None, **opts: Any
) -> tuple[TurnFinished, list[Any]]:
    options = svc.turn_options(**{k: v for k, v in opts.items() if k != "over_budget"})
    options.over_budget = opts.get("over_budget", False)
    events = [e async for e in svc.chat.send(text, options, conversation_id=cid)]
    assert isinstance(events[-1], TurnFinished)
    return events[-1], events


def rows(svc: Services) -> list[sqlite3.Row]:
    conn = connect(svc.paths.db_file, readonly=True)
    try:
        return conn.execute("SELECT * FROM ledger ORDER BY id").fetchall()
    finally:
        conn.close()


# ---------------------------------------------------------------- prices, one field at a time
M = ModelInfo(
    "m",
    "openai",
    "m",
    price_input=2.0,
    price_output=8.0,
    price_cached_input=0.5,
    price_cache_write=3.0,
)


def test_price_input() -> None:
    assert usage_cost(Usage(1_000_000, 0), M) == pytest.approx(2.0)


def test_price_output() -> None:
    assert usage_cost(Usage(0, 1_000_000), M) == pytest.approx(8.0)


def test_price_cached_input() -> None:
    # 1M prompt tokens of which 400k read from the cache
    assert usage_cost(Usage(1_000_000, 0, 400_000, 0), M) == pytest.approx(0.6 * 2 + 0.4 * 0.5)
    no_cache_price = ModelInfo("n", "x", "n", price_input=2.0, price_output=8.0)
    assert usage_cost(Usage(1_000_000, 0, 400_000, 0), no_cache_price) == pytest.approx(2.0)


def test_price_cache_write() -> None:
    assert usage_cost(Usage(1_000_000, 0, 0, 250_000), M) == pytest.approx(0.75 * 2 + 0.25 * 3)


def test_cache_savings_are_net_of_writes() -> None:
    assert cache_savings(Usage(1_000_000, 0, 400_000, 0), M) == pytest.approx(0.4 * 1.5)
    assert cache_savings(Usage(1_000_000, 0, 0, 100_000), M) == pytest.approx(-0.1)
    assert cache_savings(Usage(10, 0, 0, 0), M) is None
    assert cache_savings(Usage(10, 0, 5, 0), M, local=True) is None


def test_unknown_price_is_unknown_never_zero() -> None:
    half = ModelInfo("h", "x", "h", price_input=1.0)
    assert usage_cost(Usage(10, 10), half) is None
    assert usage_cost(Usage(10, 10), None) is None
    cat = load_catalog()
    hint = cat.price_hint("my-finetune", "openai")
    assert '[models."my-finetune"]' in hint and "price_input" in hint


# ---------------------------------------------------------------- the ledger, per request
@pytest.mark.parametrize("kind", KINDS)
async def test_usage_is_reconciled_exactly(kind: str, fake_llm: Any, closing: list[Any]) -> None:
    svc = make(fake_llm, kind)
    closing.append(svc)
    fake_llm.enqueue(
        Text(
            "Reconciled.",
            input_tokens=5000,
            output_tokens=120,
            cached_input_tokens=3000,
            cache_write_tokens=1500,
        )
    )
    fin, events = await ask(svc, "How much?")
    await svc.providers.aclose()
    [row] = rows(svc)
    usage = (5000, 120, 3000, 1500)
    got = (
        row["input_tokens"],
        row["output_tokens"],
        row["cached_input_tokens"],
        row["cache_write_tokens"],
    )
    assert got == usage
    info = svc.catalog.model(MODELS[kind], kind)
    expected = usage_cost(Usage(*usage), info)
    assert expected is not None and row["cost_usd"] == pytest.approx(expected)
    assert fin.cost_usd == pytest.approx(expected)
    assert row["kind"] == "chat" and row["message_id"] == fin.message_id
    assert row["saved_usd"] == pytest.approx(cache_savings(Usage(*usage), info))
    assert row["est_input_tokens"] > 0 and row["day"] == local_day()
    [metered] = [e for e in events if isinstance(e, Metered)]
    assert metered.usage == Usage(*usage)
    assert svc.ledger.message(fin.message_id).cost_usd == pytest.approx(expected)


async def test_every_tool_round_is_a_ledger_row(
    fake_llm: Any, closing: list[Any], tmp_path: Path
) -> None:
    svc = make(fake_llm, "openai")
    closing.append(svc)
    fake_llm.enqueue(
        ToolCalls([Call("calculator", '{"expression": "6*7"}')], input_tokens=300),
        Text("42.", input_tokens=400, output_tokens=3),
    )
    fin, _ = await ask(svc, "6*7?", use_tools=True, folders=(str(tmp_path),))
    await svc.providers.aclose()
    assert fin.text == "42."
    got = [(r["kind"], r["input_tokens"], r["message_id"]) for r in rows(svc)]
    assert got == [("chat", 300, fin.message_id), ("tool_round", 400, fin.message_id)]
    assert all(r["est_input_tokens"] for r in rows(svc))
    assert svc.ledger.message(fin.message_id).requests == 2


async def test_a_row_is_written_when_usage_arrives_not_at_the_end(
    fake_llm: Any, closing: list[Any], tmp_path: Path
) -> None:
    svc = make(fake_llm, "anthropic")
    closing.append(svc)
    fake_llm.enqueue(
        ToolCalls([Call("calculator", '{"expression": "1+1"}')], input_tokens=321),
        Stall("thinking", seconds=30),
    )

    async def run() -> None:
        await ask(svc, "1+1?", use_tools=True, folders=(str(tmp_path),))

    task = asyncio.create_task(run())
    await fake_llm.wait_for_requests_async(2, timeout=10)
    deadline = time.monotonic() + 5
    while not rows(svc) and time.monotonic() < deadline:  # another connection, like a survivor
        await asyncio.sleep(0.02)
    found = rows(svc)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await svc.providers.aclose()
    assert [r["input_tokens"] for r in found] == [321]


async def test_estimate_within_3_percent_of_openai_reported_input(
    fake_llm: Any, closing: list[Any], tmp_path: Path
) -> None:
    svc = make(fake_llm, "openai", system_prompt="You are a careful assistant. " * 20)
    closing.append(svc)
    (tmp_path / "notes.txt").write_text("The Q3 budget is 1.2M.\n" * 50)
    fin, _ = await ask(svc, "Summarise our history. " * 30)
    cid = fin.conversation_id
    await ask(svc, "And the next point? " * 40, cid=cid)
    fake_llm.enqueue(
        ToolCalls([Call("read_file", '{"path": "notes.txt"}')]), Text("The budget is 1.2M.")
    )
    await ask(svc, "What is the budget?", cid=cid, use_tools=True, folders=(str(tmp_path),))
    await svc.providers.aclose()
    found = rows(svc)
    assert len(found) == 4
    for r in found:  # the fake counts prompts with tiktoken, as OpenAI does
        assert r["est_exact"] == 1
        assert abs(r["est_input_tokens"] - r["input_tokens"]) <= 0.03 * r["input_tokens"], dict(r)


async def test_claude_estimates_calibrate_on_reported_usage(
    fake_llm: Any, closing: list[Any]
) -> None:
    svc = make(fake_llm, "anthropic")
    closing.append(svc)
    cid = None
    errors = []
    for i in range(5):
        fin, _ = await ask(svc, f"Tell me about topic {i}. " + "Some detail here. " * 80, cid=cid)
        cid = fin.conversation_id
        assert fin.estimate is not None and not fin.estimate.exact
        errors.append(
            abs(fin.estimate.input_tokens - fin.usage.input_tokens) / fin.usage.input_tokens
        )  # type: ignore[operator]
    await svc.providers.aclose()
    assert errors[0] > 0.05  # uncalibrated: the fake counts ~4 characters per token
    assert errors[-1] < 0.03 and errors[-1] < errors[0] / 3, errors
    assert "calibrated on its last 4" in (fin.estimate.note if fin.estimate else "")


async def test_unknown_model_costs_unknown_everywhere(fake_llm: Any, closing: list[Any]) -> None:
    svc = make(fake_llm, "openai")
    closing.append(svc)
    fin, _ = await ask(svc, "hi", model="my-finetune")
    await svc.providers.aclose()
    assert fin.status == "complete" and fin.cost_usd is None
    assert fin.estimate is not None and fin.estimate.cost_usd is None
    [row] = rows(svc)
    assert row["cost_usd"] is None
    totals = svc.ledger.totals()
    assert totals.unknown == 1 and totals.to_json()["cost_usd"] is None


async def test_a_local_server_really_costs_nothing(fake_llm: Any, closing: list[Any]) -> None:
    svc = make(fake_llm, "openai")
    closing.append(svc)
    fin, _ = await ask(svc, "hi", provider="openai-compatible", model="fake-model")
    await svc.providers.aclose()
    assert fin.cost_usd == 0.0 and fin.local
    [row] = rows(svc)
    assert row["local"] == 1 and row["cost_usd"] == 0.0
    assert svc.ledger.totals().all_local


# ---------------------------------------------------------------- budgets
def test_budget_decision() -> None:
    off = evaluate(BudgetSettings(), 5.0, 50.0, confirmed_today=False)
    assert off.level == "off" and not off.must_confirm
    b = BudgetSettings(daily_usd=1.0, monthly_usd=20.0)
    assert evaluate(b, 0.5, 5.0, confirmed_today=False).level == "ok"
    warn = evaluate(b, 0.85, 5.0, confirmed_today=False)
    assert warn.level == "warn" and warn.period == "day" and "85%" in (warn.message or "")
    month = evaluate(b, 0.1, 17.0, confirmed_today=False)
    assert month.level == "warn" and month.period == "month"
    over = evaluate(b, 1.2, 5.0, confirmed_today=False)
    assert over.must_confirm and "$1.20 today" in (over.message or "")
    assert evaluate(b, 1.2, 5.0, confirmed_today=True).level == "confirmed"
    assert evaluate(b, 0.0, 25.0, confirmed_today=False).period == "month"


async def test_budget_holds_until_confirmed_once_a_day(fake_llm: Any, closing: list[Any]) -> None:
    svc = make(fake_llm, "openai", budget=BudgetSettings(daily_usd=0.05))
    closing.append(svc)
    svc.ledger.record(LedgerEntry("openai", "gpt-4o", 1000, 10, cost_usd=0.045))
    status = svc.budget.status()
    assert status.level == "warn" and "90%" in (status.message or "")
    svc.ledger.record(LedgerEntry("openai", "gpt-4o", 1000, 10, cost_usd=0.01))
    with pytest.raises(OverBudget, match=r"\$0\.055 today|\$0\.06 today|reaches"):
        await ask(svc, "one more?")
    assert fake_llm.requests == [] and svc.conversations.list() == []  # nothing saved or sent
    fin, _ = await ask(svc, "one more?", over_budget=True)
    assert fin.status == "complete"
    svc.budget.confirm()
    assert svc.budget.status().level == "confirmed"
    fin, _ = await ask(svc, "and another")  # confirmed today: no second question
    await svc.providers.aclose()
    assert fin.status == "complete" and len(fake_llm.requests) == 2
    tomorrow = time.time() + 86400
    assert svc.budget.status(tomorrow).level == "ok"  # a new day, a new budget


# ---------------------------------------------------------------- the response cache
async def test_identical_request_at_temperature_zero_comes_from_the_cache(
    fake_llm: Any, closing: list[Any]
) -> None:
    svc = make(fake_llm, "openai", temperature=0.0)
    closing.append(svc)
    fake_llm.enqueue(Text("Paris.", input_tokens=30, output_tokens=2))
    first, _ = await ask(svc, "Capital of France?")
    assert len(fake_llm.requests) == 1 and not first.cached
    again, events = await ask(svc, "Capital of France?")  # a new chat, the same request
    assert len(fake_llm.requests) == 1  # the fake saw nothing
    assert again.text == "Paris." and again.cached and again.cost_usd == 0.0
    assert any(isinstance(e, CacheReplay) for e in events)
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Paris."]
    hit = rows(svc)[-1]
    assert hit["cache_hit"] == 1 and hit["cost_usd"] == 0.0
    assert hit["saved_usd"] == pytest.approx(first.cost_usd)
    stored = svc.conversations.message(again.message_id)
    assert stored is not None and stored.meta["from_cache"] is True
    assert svc.ledger.totals().saved_usd == pytest.approx(first.cost_usd)

    # Regenerate always asks the model, and its answer replaces the cached one.
    fake_llm.enqueue(Text("Paris, France.", input_tokens=30, output_tokens=3))
    regen = [e async for e in svc.chat.regenerate(again.conversation_id, svc.turn_options())]
    assert len(fake_llm.requests) == 2
    assert regen[-1].text == "Paris, France." and not regen[-1].cached
    third, _ = await ask(svc, "Capital of France?")
    await svc.providers.aclose()
    assert third.cached and third.text == "Paris, France." and len(fake_llm.requests) == 2


@pytest.mark.parametrize(
    "settings",
    [
        {"temperature": None},
        {"temperature": 0.7},
        {"temperature": 0.0, "caching": CachingSettings(response_cache=False)},
    ],
)
async def test_no_response_cache_unless_temperature_zero_and_on(
    fake_llm: Any, closing: list[Any], settings: dict[str, Any]
) -> None:
    svc = make(fake_llm, "openai", **settings)
    closing.append(svc)
    for _ in range(2):
        fin, _ = await ask(svc, "Same question")
        assert not fin.cached
    await svc.providers.aclose()
    assert len(fake_llm.requests) == 2


def test_cache_evicts_old_and_beyond_size(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "c.sqlite3", max_bytes=6000)
    r = ChatRequest("gpt-4o", (Message("user", "q"),), temperature=0)
    key = request_key("openai", "https://api.openai.com/v1", r)
    assert key != request_key("openai", "http://127.0.0.1:1/v1", r)
    assert key == request_key("openai", "https://api.openai.com/v1/", r)
    answer = CachedResponse(
        "openai",
        "gpt-4o",
        "hello",
        (ToolCall("c1", "calculator", "{}"),),
        Usage(10, 2, 0, 0),
        Finished("stop", "stop"),
        0.001,
    )
    now = time.time()
    cache.put(key, answer, now=now - 31 * 86400)
    assert cache.get(key, now=now) is None  # too old to serve
    cache.put(key, answer, now=now)
    got = cache.get(key, now=now)
    assert got is not None and (got.text, got.tool_calls, got.usage) == (
        "hello",
        answer.tool_calls,
        answer.usage,
    )
    import os

    for i in range(10):  # incompressible answers, ~1 KB each
        cache.put(f"k{i}", CachedResponse(**{**answer.__dict__, "text": os.urandom(700).hex()}))
    stats = cache.stats()
    assert stats["bytes"] <= 6000 and stats["entries"] < 11
    assert cache.get("k9") is not None and cache.get("k0") is None  # least recently used went
    cache.put("old", answer, now=now - 40 * 86400)
    assert cache.evict() >= 1 and cache.get("old", now=now - 40 * 86400) is None
    cache.close()


# ---------------------------------------------------------------- Anthropic prompt caching
def long_system() -> str:
    return "You follow the house style guide below.\n" + "Rule: write short sentences. " * 700


def marks(body: Any) -> list[str]:
    """Where a request carries cache_control: tools, system, messages[i]."""
    found = []
    for t in body.get("tools") or ():
        if "cache_control" in t:
            found.append("tools")
    system = body.get("system")
    if isinstance(system, list) and any("cache_control" in b for b in system):
        found.append("system")
    for i, m in enumerate(body["messages"]):
        content = m["content"]
        if isinstance(content, list) and any("cache_control" in b for b in content):
            found.append(f"messages[{i}]")
    return found


async def test_anthropic_requests_mark_the_stable_prefix(
    fake_llm: Any, closing: list[Any], tmp_path: Path
) -> None:
    svc = make(fake_llm, "anthropic", system_prompt=long_system())
    closing.append(svc)
    fin, _ = await ask(svc, "First question")
    await ask(svc, "Second question", cid=fin.conversation_id)
    fake_llm.enqueue(ToolCalls([Call("calculator", '{"expression": "2+2"}')]), Text("4"))
    await ask(svc, "2+2?", cid=fin.conversation_id, use_tools=True, folders=(str(tmp_path),))
    await svc.providers.aclose()
    bodies = [r.json for r in fake_llm.requests]
    assert marks(bodies[0]) == ["system"]  # no history yet: the system prompt alone
    assert bodies[0]["system"][0]["text"] == long_system()
    # the history up to the previous answer, not the newest question
    assert marks(bodies[1]) == ["system", "messages[1]"]
    assert bodies[1]["messages"][1]["role"] == "assistant"
    # with tools: tools, system, and in the tool round the assistant's tool_use turn
    assert marks(bodies[2]) == ["tools", "system", "messages[3]"]
    assert marks(bodies[3]) == ["tools", "system", "messages[5]"]
    assert bodies[3]["messages"][5]["content"][-1]["type"] == "tool_use"


async def test_no_cache_marks_when_off_short_or_openai(fake_llm: Any, closing: list[Any]) -> None:
    off = make(
        fake_llm,
        "anthropic",
        system_prompt=long_system(),
        caching=CachingSettings(prompt_cache=False),
    )
    closing.append(off)
    await ask(off, "hello")
    await off.providers.aclose()
    short = make(fake_llm, "anthropic", system_prompt="Be brief.")
    closing.append(short)
    await ask(short, "hello")
    await short.providers.aclose()
    oai = make(fake_llm, "openai", system_prompt=long_system())
    closing.append(oai)
    await ask(oai, "hello")
    await oai.providers.aclose()
    bodies = [r.json for r in fake_llm.requests]
    assert [marks(b) for b in bodies[:2]] == [[], []]
    assert bodies[0]["system"] == long_system()  # plain text, as before
    assert "cache_control" not in str(bodies[2])


# ---------------------------------------------------------------- the price file
def test_a_price_file_typo_names_file_and_line_and_keeps_built_in_prices(tmp_path: Path) -> None:
    user = tmp_path / "models.toml"
    user.write_text('[models."gpt-4o"]\nprice_input = 1.0\nprice_output = \n')
    cat = load_catalog(user)
    [problem] = cat.problems
    assert str(user) in problem and "line 3" in problem and "built-in prices" in problem
    assert cat.model("gpt-4o").price_input == 2.5  # type: ignore[union-attr]

    user.write_text(
        "# my prices\n\n"
        '[models."gpt-4o"]\n'
        "price_input = 1.0\n"
        'price_output = "ten"\n'
        '[models."my-local"]\n'
        'provider = "openai-compatible"\n'
        "context_window = 8192\n"
    )
    cat = load_catalog(user)
    [problem] = cat.problems
    assert f"{user}, line 5" in problem and "price_output" in problem
    assert "built-in entry" in problem
    assert cat.model("gpt-4o").price_input == 2.5  # type: ignore[union-attr]
    assert cat.model("my-local") is not None  # the good entry still applies


# ---------------------------------------------------------------- queries
def test_ledger_queries_and_csv(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "db.sqlite3")
    now = time.time()
    day = 86400
    entries = [
        LedgerEntry("openai", "gpt-4o", 100, 10, 40, 0, 0.01, conversation_id=1, message_id=2,
                    ts=now),
        LedgerEntry("openai", "gpt-4o", 200, 20, cost_usd=0.02, purpose="tool_round",
                    conversation_id=1, message_id=2, ts=now),
        LedgerEntry("anthropic", "claude-sonnet-4-6", 300, 30, 0, 100, 0.03, ts=now - 2 * day),
        LedgerEntry("openai", "my-finetune", 50, 5, cost_usd=None, ts=now - 40 * day),
        LedgerEntry("openai", "gpt-4o", 10, 1, cost_usd=0.0, cache_hit=True, saved_usd=0.01,
                    conversation_id=1, message_id=4, ts=now),
    ]  # fmt: skip
    for e in entries:
        ledger.record(e)
    today = local_day(now)
    assert ledger.today(now).cost_usd == pytest.approx(0.03)
    assert ledger.today(now).requests == 3 and ledger.today(now).cache_hits == 1
    assert ledger.message(2).cost_usd == pytest.approx(0.03)
    assert ledger.conversation(1).requests == 3
    assert ledger.conversation(1).saved_usd == pytest.approx(0.01)
    all_time = ledger.totals()
    assert all_time.requests == 5 and all_time.unknown == 1
    assert all_time.cost_usd == pytest.approx(0.06) and not all_time.cost_known
    by_model = {g.key: g.totals for g in ledger.breakdown("model")}
    assert by_model["gpt-4o"].requests == 3 and by_model["my-finetune"].unknown == 1
    by_purpose = {g.key: g.totals.requests for g in ledger.breakdown("purpose")}
    assert by_purpose == {"chat": 4, "tool_round": 1}
    days = ledger.breakdown("day", since=local_day(now - 3 * day))
    assert [g.key for g in days] == [local_day(now - 2 * day), today]
    daily = ledger.daily(30, now)
    assert len(daily) == 30 and daily[-1][0] == today
    assert daily[-1][1] == pytest.approx(0.03) and daily[-3][1] == pytest.approx(0.03)
    assert sum(d[1] for d in daily) == pytest.approx(0.06)  # the 40-day-old row is outside
    import io

    out = io.StringIO()
    assert ledger.write_csv(out, since=today) == 3
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("time,provider,model,purpose,input_tokens")
    assert ",gpt-4o,tool_round,200," in lines[2]
    ledger.close()


def test_existing_ledger_rows_are_rolled_up_by_the_migration(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite3"
    conn = connect(db, MIGRATIONS[:1])  # a database from before issue 13
    conn.execute(
        "INSERT INTO ledger(ts, provider, model, input_tokens, output_tokens, cost_usd)"
        " VALUES (?, 'openai', 'gpt-4o', 100, 10, 0.5)",
        (time.time(),),
    )
    conn.close()
    store = ConversationStore(db)  # applies the new migration
    ledger = Ledger(db)
    assert ledger.today().cost_usd == pytest.approx(0.5)
    store.record_usage(provider="openai", model="gpt-4o", usage=(1, 1, 0, 0), cost_usd=0.25)
    assert ledger.today().requests == 2 and ledger.today().cost_usd == pytest.approx(0.75)
    store.close()
    ledger.close()


# ---------------------------------------------------------------- the composer's estimate
async def test_draft_estimate_predicts_the_sent_estimate(
    fake_llm: Any, closing: list[Any], tmp_path: Path
) -> None:
    svc = make(fake_llm, "openai", system_prompt="Be precise.")
    closing.append(svc)
    fin, _ = await ask(svc, "First question " * 20)
    cid = fin.conversation_id
    options = svc.turn_options()
    draft = svc.chat.draft_estimate(cid, options)
    assert draft is not None
    typed = "And the second one, with more words " * 5
    predicted = draft.update(typed)
    fin, _ = await ask(svc, typed, cid=cid)
    assert fin.estimate is not None and predicted.exact
    assert predicted.input_tokens == fin.estimate.input_tokens == rows(svc)[-1]["input_tokens"]
    # with tools on, the schemas and the safety prompt are counted too (its nonce differs)
    tools = svc.turn_options(use_tools=True, folders=(str(tmp_path),))
    with_tools = svc.chat.draft_estimate(cid, tools)
    assert with_tools is not None
    predicted = with_tools.update("Total it")
    fin, _ = await ask(svc, "Total it", cid=cid, use_tools=True, folders=(str(tmp_path),))
    await svc.providers.aclose()
    assert fin.estimate is not None
    assert abs(predicted.input_tokens - fin.estimate.input_tokens) <= 10
    assert predicted.input_tokens > draft.update("Total it").input_tokens + 300


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4"])
def test_estimate_nonce_costs_what_a_real_nonce_costs(model: str) -> None:
    """The estimate's stand-in nonce costs what a random per-turn nonce costs.

    A random nonce's tokens vary by up to 18; sixteen zeros sat at the minimum, so a tool
    turn's estimate could come out 12+ tokens low (a flaky ±10 check in the test above).
    """
    import random

    from parley.core.agent import ESTIMATE_NONCE, TOOL_SAFETY_PROMPT
    from parley.core.tokens import TokenCounter

    counter = TokenCounter(model)
    assert counter.method != "chars"  # the tokenizer files are there (PARLEY_ASSETS)
    estimated = counter.count(TOOL_SAFETY_PROMPT.format(nonce=ESTIMATE_NONCE))
    draws = random.Random(7)
    sent = [
        counter.count(TOOL_SAFETY_PROMPT.format(nonce=f"{draws.getrandbits(64):016x}"))
        for _ in range(2000)
    ]
    assert max(abs(estimated - n) for n in sent) <= 10
    assert abs(estimated - sorted(sent)[len(sent) // 2]) <= 2
