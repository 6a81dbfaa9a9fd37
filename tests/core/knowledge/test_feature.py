"""The documents feature as build_services makes it: closed at first, the rule, grounding.

Grounding and the tools' backend go through the one object (real SQLite, Chroma, MiniLM; the
fake LLM server).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from parley.core.chat import SourcesAttached, TurnFinished
from parley.core.errors import ConfigError
from parley.core.knowledge.indexer import Indexer
from parley.core.knowledge.loaders import FileSkipped
from parley.core.paths import Paths
from parley.core.secrets import MemorySecretStore, Secrets
from parley.core.services import Services, build_services, tool_registry_for
from parley.core.settings import KnowledgeSettings, ProviderSettings, Settings


def _services(paths: Paths, fake_llm: Any, folders: list[str]) -> Services:
    settings = Settings(
        default_provider="openai-compatible",
        providers={
            "openai-compatible": ProviderSettings(
                base_url=fake_llm.openai_base_url, default_model="fake-model"
            )
        },
        knowledge=KnowledgeSettings(folders=folders),
    )
    return build_services(paths, settings, Secrets(MemorySecretStore(), environ={}), environ={})


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "budget.md").write_text(
        "# Q3 budget\n\nThe Q3 marketing budget is 42,000 euros, approved in July.\n"
    )
    (folder / "page.html").write_text("<html><body><h1>Hello</h1><p>An HTML page.</p></body>")
    return folder


async def _turn(services: Services, question: str, **switches: bool) -> TurnFinished:
    options = services.turn_options(**switches)
    events = [ev async for ev in services.chat.send(question, options)]
    finished = events[-1]
    assert isinstance(finished, TurnFinished)
    assert any(isinstance(e, SourcesAttached) for e in events) == bool(finished.sources)
    return finished


def test_the_rule_for_when_a_turn_needs_the_index(paths: Paths, fake_llm: Any) -> None:
    class Switches:
        def __init__(self, use_knowledge: bool, use_tools: bool) -> None:
            self.use_knowledge, self.use_tools = use_knowledge, use_tools

    without = _services(paths, fake_llm, [])
    with_folders = _services(paths, fake_llm, [str(paths.data_dir)])
    try:
        for services, folders in ((without, False), (with_folders, True)):
            rule = services.knowledge.needed_for
            assert rule(Switches(use_knowledge=True, use_tools=False))
            assert rule(Switches(use_knowledge=True, use_tools=True))
            assert not rule(Switches(use_knowledge=False, use_tools=False))
            # knowledge_search is offered once folders are added
            assert rule(Switches(use_knowledge=False, use_tools=True)) is folders
    finally:
        for services in (without, with_folders):
            services.conversations.close()


async def test_built_closed_opened_on_attach_then_grounds_and_searches(
    paths: Paths, fake_llm: Any, docs: Path
) -> None:
    services = _services(paths, fake_llm, [str(docs)])
    try:
        knowledge = services.knowledge
        # Building the core opens nothing: no store, no Chroma folder.
        assert knowledge.grounder is None and knowledge.store is None
        assert not paths.chroma_dir.exists()
        # Closed, a "Use my documents" turn is answered without documents.
        finished = await _turn(services, "What is the Q3 budget?", use_knowledge=True)
        assert finished.status == "complete" and finished.sources == ()
        assert "<sources" not in str(fake_llm.requests[-1].json)
        tools = tool_registry_for(services.turn_options(use_tools=True), knowledge)
        assert "knowledge_search" not in tools.names()

        grounder = await asyncio.to_thread(knowledge.attach)
        assert knowledge.attach() is grounder  # once
        store = knowledge.store
        assert store is not None
        await asyncio.to_thread(Indexer(store).index, [docs])

        finished = await _turn(services, "What is the Q3 budget?", use_knowledge=True)
        assert finished.sources and finished.sources[0].path.endswith("budget.md")
        assert "42,000 euros" in str(fake_llm.requests[-1].json)  # the source went along
        tools = tool_registry_for(services.turn_options(use_tools=True), knowledge)
        assert "knowledge_search" in tools.names()

        await asyncio.to_thread(knowledge.detach)
        assert knowledge.grounder is None
        finished = await _turn(services, "And again?", use_knowledge=True)
        assert finished.sources == ()
        assert "42,000 euros" not in str(fake_llm.requests[-1].json)
        # Re-opened on the next attach: a new grounder over the same index.
        again = await asyncio.to_thread(knowledge.attach)
        assert again is not grounder
        finished = await _turn(services, "What is the Q3 budget?", use_knowledge=True)
        assert finished.sources
    finally:
        await services.aclose()
    assert services.knowledge.grounder is None  # closed with the services
    with pytest.raises(ConfigError, match="closing"):
        services.knowledge.attach()


async def test_read_file_parses_documents_in_one_loader_until_close(
    paths: Paths, fake_llm: Any, docs: Path
) -> None:
    services = _services(paths, fake_llm, [str(docs)])
    knowledge = services.knowledge
    try:
        first = await asyncio.to_thread(knowledge.load_document, docs / "page.html")
        assert "An HTML page." in " ".join(b.text for b in first.blocks)
        loader = knowledge._loader
        assert loader is not None
        await asyncio.to_thread(knowledge.load_document, docs / "page.html")
        assert knowledge._loader is loader  # started once, reused
        tools = tool_registry_for(services.turn_options(use_tools=True), knowledge)
        assert "read_file" in tools.names()
    finally:
        await services.aclose()
    with pytest.raises(FileSkipped, match="closed"):
        knowledge.load_document(docs / "page.html")
