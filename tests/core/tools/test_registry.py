"""The tool registry: schemas from signatures, both vendor forms, and run() never raising."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import Field, TypeAdapter

from parley.core.errors import ParleyError
from parley.core.providers.base import ToolSpec
from parley.core.tools import FolderPolicy, default_registry
from parley.core.tools.registry import (
    CancelToken,
    Tool,
    ToolError,
    ToolRegistry,
    ToolResult,
    tool,
)


@tool(timeout_s=12.5, max_output_chars=1_000)
def lookup(  # noqa: D417 - `cancel` is injected by the runner, not told to the model
    title: str,
    limit: int = 3,
    ratio: float | None = None,
    tags: list[str] | None = None,
    exact: bool = False,
    cancel: CancelToken | None = None,
) -> str:
    """Look something up in the catalogue.

    A second paragraph, wrapped
    over two lines.

    Args:
        title: The title to find.
        limit: How many results
            to return at most.
        ratio: Optional threshold.
        tags: Tags to filter by.
        exact: Whether to match exactly.

    Returns:
        The matches.
    """
    return f"{title}|{limit}|{ratio}|{tags}|{exact}|{cancel is not None}"


def test_schema_comes_from_the_signature_and_docstring() -> None:
    assert lookup.name == "lookup"
    assert lookup.description == (
        "Look something up in the catalogue.\n\nA second paragraph, wrapped over two lines."
    )
    assert lookup.parameters == {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "title": {"type": "string", "description": "The title to find."},
            "limit": {
                "type": "integer",
                "default": 3,
                "description": "How many results to return at most.",
            },
            "ratio": {
                "anyOf": [{"type": "number"}, {"type": "null"}],
                "default": None,
                "description": "Optional threshold.",
            },
            "tags": {
                "anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}],
                "default": None,
                "description": "Tags to filter by.",
            },
            "exact": {
                "type": "boolean",
                "default": False,
                "description": "Whether to match exactly.",
            },
        },
        "required": ["title"],
    }
    assert "cancel" not in lookup.parameters["properties"]
    assert lookup.cancel_param == "cancel"
    assert (lookup.timeout_s, lookup.max_output_chars) == (12.5, 1_000)
    assert (lookup.read_only, lookup.needs_confirmation) == (True, False)


def test_constraints_and_a_property_named_title_survive_cleaning() -> None:
    @tool(name="bounded-tool")
    def bounded(n: Annotated[int, Field(ge=1, le=9)] = 2, title: str = "x") -> str:
        """Bounded."""
        return str(n)

    props = bounded.parameters["properties"]
    assert props["n"] == {"type": "integer", "minimum": 1, "maximum": 9, "default": 2}
    assert props["title"] == {"type": "string", "default": "x"}
    assert bounded.parameters["required"] == []


def test_both_export_forms_exactly_and_valid_for_the_sdks() -> None:
    registry = ToolRegistry([lookup])
    assert registry.names() == ["lookup"]
    assert registry.get("lookup") is lookup
    assert registry.get("nope") is None
    assert registry.specs() == (ToolSpec("lookup", lookup.description, lookup.parameters),)
    assert registry.openai_tools() == [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "description": lookup.description,
                "parameters": lookup.parameters,
            },
        }
    ]
    assert registry.anthropic_tools() == [
        {"name": "lookup", "description": lookup.description, "input_schema": lookup.parameters}
    ]
    json.dumps(registry.openai_tools())  # plain JSON, nothing pydantic-specific left


def test_exports_match_the_sdk_request_types() -> None:
    """The SDKs' own request types accept both forms, and no key is one we invented.

    (Importing both SDKs costs ~4 s of CPU on its own; in a full run other tests import them.)
    """
    from anthropic.types import ToolParam
    from openai.types.chat import ChatCompletionToolParam

    registry = default_registry(FolderPolicy([Path.cwd()]), lambda q, k: [])
    registry.register(lookup)
    for item in registry.openai_tools():
        TypeAdapter(ChatCompletionToolParam).validate_python(item)
        assert set(item) <= set(ChatCompletionToolParam.__annotations__)
    for item in registry.anthropic_tools():
        TypeAdapter(ToolParam).validate_python(item)
        assert set(item) <= set(ToolParam.__annotations__)


def test_registering_twice_or_a_bad_name_is_a_programming_error() -> None:
    registry = ToolRegistry([lookup])
    with pytest.raises(ValueError, match="already registered"):
        registry.register(lookup)
    with pytest.raises(ValueError, match="must match"):
        tool(name="has space")(lambda: None)


async def test_run_validates_and_calls_with_defaults() -> None:
    registry = ToolRegistry([lookup])
    result = await registry.run("lookup", '{"title": "Dune", "ratio": 0.5, "tags": ["sf"]}')
    assert result == ToolResult("Dune|3|0.5|['sf']|False|True")


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ('{"title": "x"', "not valid JSON"),
        ("[1, 2]", "must be a JSON object, not list"),
        ('"title"', "must be a JSON object, not str"),
        ("{}", "'title' is required"),
        ('{"title": "x", "limit": "many"}', "'limit': Input should be a valid integer"),
        ('{"title": ["x"]}', "'title': Input should be a valid string"),
        ('{"title": "x", "colour": "red"}', "'colour' is not a parameter of this tool"),
        ('{"title": "x", "tags": [1]}', "'tags.0': Input should be a valid string"),
    ],
)
async def test_bad_arguments_come_back_as_one_clear_error_line(
    arguments: str, expected: str
) -> None:
    result = await ToolRegistry([lookup]).run("lookup", arguments)
    assert result.is_error
    assert expected in result.content
    assert "\n" not in result.content


async def test_unknown_tool_names_the_available_ones() -> None:
    result = await ToolRegistry([lookup]).run("lokup", "{}")
    assert result.is_error
    assert result.content == "There is no tool named 'lokup'. Available tools: lookup."


async def test_empty_arguments_mean_no_arguments() -> None:
    @tool()
    def now() -> str:
        """The time."""
        return "noon"

    assert await ToolRegistry([now]).run("now", "") == ToolResult("noon")


async def test_exceptions_become_error_results() -> None:
    @tool()
    def broken(kind: str) -> str:
        """Fails."""
        if kind == "parley":
            raise ToolError("The widget is not ready.\nsecond line")
        if kind == "value":
            raise ValueError("boom")
        raise KeyError("k")

    registry = ToolRegistry([broken])
    parley = await registry.run("broken", '{"kind": "parley"}')
    assert parley == ToolResult("broken: The widget is not ready.", is_error=True)
    value = await registry.run("broken", '{"kind": "value"}')
    assert value == ToolResult("broken failed: ValueError: boom", is_error=True)
    key = await registry.run("broken", '{"kind": "key"}')
    assert key.is_error and "KeyError" in key.content


async def test_non_text_results_are_serialised() -> None:
    @tool()
    def data(kind: str) -> Any:
        """Data."""
        return {"a": [1, 2], "é": None} if kind == "dict" else None

    registry = ToolRegistry([data])
    assert (await registry.run("data", '{"kind": "dict"}')).content == '{"a": [1, 2], "é": null}'
    assert (await registry.run("data", '{"kind": "none"}')).content == "(no output)"


async def test_a_tool_may_return_its_own_error_result() -> None:
    @tool()
    def picky() -> ToolResult:
        """Picky."""
        return ToolResult("not today", is_error=True)

    assert await ToolRegistry([picky]).run("picky", "{}") == ToolResult("not today", is_error=True)


async def test_output_is_capped_with_a_note() -> None:
    @tool(max_output_chars=100)
    def chatty(n: int) -> str:
        """Talks."""
        return "x" * n

    registry = ToolRegistry([chatty])
    short = await registry.run("chatty", '{"n": 100}')
    assert short == ToolResult("x" * 100)
    long = await registry.run("chatty", '{"n": 1000}')
    assert long.truncated and not long.is_error
    assert len(long.content) <= 100
    assert long.content.startswith("xxx")
    assert long.content.endswith("output cut at 100 of 1,000 characters.")


async def test_async_tools_run_on_the_loop() -> None:
    @tool()
    async def later(x: int) -> str:
        """Async."""
        await asyncio.sleep(0)
        return str(x * 2)

    assert await ToolRegistry([later]).run("later", '{"x": 21}') == ToolResult("42")


async def test_timeout_returns_an_error_and_sets_the_token() -> None:
    started, stopped = threading.Event(), threading.Event()
    seen: list[CancelToken] = []

    @tool(timeout_s=0.2)
    def spin(cancel: CancelToken) -> str:
        """Spins until cancelled."""
        seen.append(cancel)
        started.set()
        try:
            while not cancel.wait(0.01):
                pass
            return "cancelled"
        finally:
            stopped.set()

    t0 = time.perf_counter()
    result = await ToolRegistry([spin]).run("spin", "{}")
    assert time.perf_counter() - t0 < 2.0
    assert result.is_error
    assert result.content == "spin did not finish in 0.2 s; it was stopped."
    assert started.is_set() and seen[0].is_set()
    # The worker thread notices the token and ends: no tool keeps running in the background.
    assert await asyncio.to_thread(stopped.wait, 5.0)


async def test_async_tool_timeout() -> None:
    @tool(timeout_s=0.05)
    async def hang() -> str:
        """Never returns."""
        await asyncio.Event().wait()
        return "never"

    result = await ToolRegistry([hang]).run("hang", "{}")
    assert result == ToolResult("hang did not finish in 0.05 s; it was stopped.", is_error=True)


async def test_cancelling_the_caller_sets_the_token_and_propagates() -> None:
    started, stopped = threading.Event(), threading.Event()
    tokens: list[CancelToken] = []

    @tool(timeout_s=30)
    def crawl(cancel: CancelToken) -> str:
        """Walks a long way, checking the token."""
        tokens.append(cancel)
        started.set()
        try:
            while True:
                cancel.raise_if_cancelled()
                cancel.wait(0.01)
        finally:
            stopped.set()

    task = asyncio.create_task(ToolRegistry([crawl]).run("crawl", "{}"))
    deadline = time.monotonic() + 5
    while not started.is_set():
        assert time.monotonic() < deadline, "the tool never started"
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert tokens[0].is_set()
    assert await asyncio.to_thread(stopped.wait, 5.0)


async def test_confirmation_refused_accepted_missing_and_failing() -> None:
    calls: list[str] = []

    @tool(read_only=False, needs_confirmation=True)
    def delete(name: str) -> str:
        """Deletes."""
        calls.append(name)
        return f"deleted {name}"

    registry = ToolRegistry([delete])
    asked: list[tuple[str, dict[str, Any]]] = []

    async def no(t: Tool, args: dict[str, Any]) -> bool:
        asked.append((t.name, args))
        return False

    async def yes(t: Tool, args: dict[str, Any]) -> bool:
        asked.append((t.name, args))
        return True

    async def broken(t: Tool, args: dict[str, Any]) -> bool:
        raise RuntimeError("dialog closed")

    refused = await registry.run("delete", '{"name": "a"}', confirm=no)
    assert refused.is_error and "declined" in refused.content
    assert calls == []
    missing = await registry.run("delete", '{"name": "a"}')
    assert missing.is_error and "confirmation" in missing.content
    failed = await registry.run("delete", '{"name": "a"}', confirm=broken)
    assert failed.is_error and "dialog closed" in failed.content
    assert calls == []
    accepted = await registry.run("delete", '{"name": "b"}', confirm=yes)
    assert accepted == ToolResult("deleted b")
    assert calls == ["b"]
    assert asked == [("delete", {"name": "a"}), ("delete", {"name": "b"})]


async def test_read_only_tools_are_not_confirmed() -> None:
    async def never(t: Tool, args: dict[str, Any]) -> bool:
        raise AssertionError("must not be asked")

    result = await ToolRegistry([lookup]).run("lookup", '{"title": "t"}', confirm=never)
    assert not result.is_error


def test_tool_error_is_a_parley_error() -> None:
    assert issubclass(ToolError, ParleyError)


def test_default_registry(tmp_path: Any) -> None:
    assert default_registry(None).names() == ["calculator"]
    assert default_registry(FolderPolicy([])).names() == ["calculator"]
    full = default_registry(FolderPolicy([tmp_path]), lambda q, k: [])
    assert full.names() == ["calculator", "file_search", "read_file", "knowledge_search"]
    assert all(t["function"]["description"] for t in full.openai_tools())


async def test_a_tool_built_by_hand_validates_against_its_function() -> None:
    def shout(text: str, times: int = 1) -> str:
        return text.upper() * times

    hand = Tool(
        name="shout",
        description="Shouts.",
        parameters={
            "type": "object",
            "properties": {"text": {"type": "string"}, "times": {"type": "integer"}},
            "required": ["text"],
        },
        func=shout,
        timeout_s=5.0,
    )
    assert hand.spec() == ToolSpec("shout", "Shouts.", hand.parameters)
    registry = ToolRegistry([hand])
    assert await registry.run("shout", '{"text": "hi", "times": 2}') == ToolResult("HIHI")
    bad = await registry.run("shout", '{"times": 2}')
    assert bad.is_error and "'text' is required" in bad.content
