"""Issue 14 item 8: file tools read a folder only once the person approved it."""

from __future__ import annotations

import json
from pathlib import Path

from parley.core.chat import TurnOptions
from parley.core.services import tool_registry_for
from parley.core.settings import Settings, SettingsStore
from parley.core.tools.approval import Approval, FolderGate, folder_key


def _folders(tmp_path: Path) -> tuple[Path, Path]:
    a, b = tmp_path / "alpha", tmp_path / "beta"
    for folder, word in ((a, "apple"), (b, "banana")):
        folder.mkdir()
        (folder / "notes.txt").write_text(f"the secret fruit is {word}\n")
    return a, b


def _gate(tmp_path: Path, answers: list[Approval], **kw) -> tuple[FolderGate, list[str]]:
    a, b = _folders(tmp_path)
    asked: list[str] = []

    async def ask(folder: str) -> Approval:
        asked.append(folder)
        return answers.pop(0)

    store = SettingsStore(tmp_path / "settings.json", Settings())
    options = TurnOptions("openai", "gpt-4o-mini", use_tools=True, folders=(str(a), str(b)), **kw)
    gate = tool_registry_for(options, settings=store, ask_folder=ask)
    assert isinstance(gate, FolderGate)
    return gate, asked


async def test_calculator_needs_no_approval(tmp_path: Path) -> None:
    gate, asked = _gate(tmp_path, [])
    result = await gate.run("calculator", json.dumps({"expression": "6*7"}))
    assert "42" in result.content and asked == []


async def test_once_always_deny_per_folder(tmp_path: Path) -> None:
    gate, asked = _gate(tmp_path, [Approval.ONCE, Approval.DENY])
    search = json.dumps({"query": "secret fruit"})
    result = await gate.run("file_search", search)
    # Both folders asked about once; only the allowed one was searched.
    assert [Path(p).name for p in asked] == ["alpha", "beta"]
    assert "apple" in result.content and "banana" not in result.content
    again = await gate.run("file_search", search)  # same turn: no second question
    assert len(asked) == 2 and "banana" not in again.content
    denied = await gate.run("read_file", json.dumps({"path": "beta/notes.txt"}))
    assert denied.is_error and "did not allow" in denied.content


async def test_always_is_remembered_in_settings_and_revocable(tmp_path: Path) -> None:
    gate, asked = _gate(tmp_path, [Approval.ALWAYS])
    result = await gate.run("read_file", json.dumps({"path": "alpha/notes.txt"}))
    assert "apple" in result.content and len(asked) == 1
    store = SettingsStore(tmp_path / "settings.json")
    assert store.current.tools.approved_folders == [folder_key(tmp_path / "alpha")]
    # The next turn does not ask about alpha (a new gate reads settings).
    a, b = tmp_path / "alpha", tmp_path / "beta"
    options = TurnOptions("openai", "m", use_tools=True, folders=(str(a), str(b)))

    async def never(folder: str) -> Approval:
        raise AssertionError(f"asked about {folder}")

    gate2 = tool_registry_for(options, settings=store, ask_folder=never)
    again = await gate2.run("read_file", json.dumps({"path": "alpha/notes.txt"}))
    assert "apple" in again.content
    # Revoked in settings: asked again.
    s = store.current
    store.update(
        s.model_copy(update={"tools": s.tools.model_copy(update={"approved_folders": []})})
    )
    gate3 = tool_registry_for(options, settings=store, ask_folder=never)
    try:
        await gate3.run("read_file", json.dumps({"path": "alpha/notes.txt"}))
    except AssertionError as exc:
        assert "asked about" in str(exc)
    else:
        raise AssertionError("a revoked folder was read without asking")


async def test_cli_folder_counts_as_approval_and_nothing_asks_without_a_front_end(
    tmp_path: Path,
) -> None:
    a, b = _folders(tmp_path)
    store = SettingsStore(tmp_path / "settings.json", Settings())
    options = TurnOptions(
        "openai", "m", use_tools=True, folders=(str(a), str(b)), approved_folders=(str(b),)
    )
    gate = tool_registry_for(options, settings=store)  # no way to ask: refused unless approved
    result = await gate.run("file_search", json.dumps({"query": "secret fruit"}))
    assert "banana" in result.content and "apple" not in result.content
    refused = await gate.run("read_file", json.dumps({"path": "alpha/notes.txt"}))
    assert refused.is_error
