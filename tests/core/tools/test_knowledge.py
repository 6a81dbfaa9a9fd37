"""knowledge_search: a small fake retriever stands in for the index (the edge of this module)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from parley.core.tools import ToolRegistry, make_knowledge_tool
from parley.core.tools.knowledge import MAX_PASSAGE_CHARS


@dataclass
class Hit:
    path: Path
    text: str
    heading: str
    page: int | None
    line_start: int | None
    line_end: int | None
    score: float


@dataclass
class RootedHit(Hit):
    root: Path = Path("/")


HITS = [
    Hit(Path("/data/docs/guide.pdf"), "Install with pip.", "Setup > Install", 3, None, None, 0.834),
    Hit(Path("/data/docs/notes.md"), "  Ports are 8080.  ", "", None, 12, 18, 0.5),
    Hit(Path("/data/docs/one.txt"), "Single line.", "Intro", None, 7, 7, 0.25),
]


class FakeRetriever:
    """Records calls and returns canned hits: search(query, k) -> list."""

    def __init__(self, hits: list[Hit]) -> None:
        self.hits = hits
        self.calls: list[tuple[str, int]] = []

    def __call__(self, query: str, k: int) -> list[Hit]:
        self.calls.append((query, k))
        return self.hits[:k]


async def test_results_are_numbered_and_cited() -> None:
    retriever = FakeRetriever(HITS)
    registry = ToolRegistry([make_knowledge_tool(retriever)])
    result = await registry.run("knowledge_search", json.dumps({"query": " install "}))
    assert not result.is_error
    assert retriever.calls == [("install", 5)]
    assert result.content == (
        "3 passage(s) for 'install':\n"
        "\n"
        "[1] /data/docs/guide.pdf, page 3 — Setup > Install (score 0.83)\n"
        "Install with pip.\n"
        "\n"
        "[2] /data/docs/notes.md, lines 12–18 (score 0.50)\n"
        "Ports are 8080.\n"
        "\n"
        "[3] /data/docs/one.txt, line 7 — Intro (score 0.25)\n"
        "Single line."
    )


async def test_k_is_passed_and_bounded() -> None:
    retriever = FakeRetriever(HITS)
    registry = ToolRegistry([make_knowledge_tool(retriever)])
    one = await registry.run("knowledge_search", '{"query": "x", "k": 1}')
    assert retriever.calls == [("x", 1)]
    assert one.content.startswith("1 passage(s) for 'x':")
    too_many = await registry.run("knowledge_search", '{"query": "x", "k": 50}')
    assert too_many.is_error and "'k'" in too_many.content
    assert retriever.calls == [("x", 1)]


async def test_paths_relative_to_their_folder_and_long_text_cut() -> None:
    hit = RootedHit(
        Path("/home/u/papers/2024/a.pdf"),
        "w" * 10_000,
        "Abstract",
        1,
        None,
        None,
        0.9,
        root=Path("/home/u/papers"),
    )
    registry = ToolRegistry([make_knowledge_tool(FakeRetriever([hit]))])
    result = await registry.run("knowledge_search", '{"query": "abstract"}')
    lines = result.content.splitlines()
    assert lines[2] == "[1] papers/2024/a.pdf, page 1 — Abstract (score 0.90)"
    assert lines[3] == "w" * MAX_PASSAGE_CHARS + " …"


async def test_nothing_found_and_empty_query() -> None:
    retriever = FakeRetriever([])
    registry = ToolRegistry([make_knowledge_tool(retriever)])
    none = await registry.run("knowledge_search", '{"query": "unicorns"}')
    assert none.content == "No passages in the knowledge base match 'unicorns'."
    empty = await registry.run("knowledge_search", '{"query": "   "}')
    assert empty.is_error and "query is empty" in empty.content
    assert retriever.calls == [("unicorns", 5)]


async def test_async_retriever_and_retriever_failure() -> None:
    async def search(query: str, k: int) -> list[Hit]:
        if query == "fail":
            raise ConnectionError("index is locked")
        return HITS[:1]

    tool = make_knowledge_tool(search)
    assert tool.name == "knowledge_search"
    assert tool.parameters["required"] == ["query"]
    assert "knowledge base" in tool.description
    registry = ToolRegistry([tool])
    ok = await registry.run("knowledge_search", '{"query": "pip"}')
    assert "[1] /data/docs/guide.pdf, page 3" in ok.content
    failed = await registry.run("knowledge_search", '{"query": "fail"}')
    assert failed.is_error
    assert failed.content == "knowledge_search failed: ConnectionError: index is locked"
