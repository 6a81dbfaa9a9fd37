"""file_search: names and contents, case-insensitive, bounded, skipping what must be skipped."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from parley.core.tools import (
    CancelToken,
    FolderPolicy,
    ToolCancelled,
    ToolRegistry,
    make_file_tools,
)
from parley.core.tools.file_search import LINE_WIDTH, file_search_impl

posix_only = pytest.mark.skipif(os.name == "nt", reason="POSIX symlinks and FIFOs")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    files = {
        "README.md": "# Project\nThe Widget factory.\n",
        "notes/meeting.md": "Agenda\nwidget pricing\nOther\nWIDGET launch date\n",
        "notes/todo.txt": "buy milk\n",
        "src/app.py": "import os\n\ndef make_widget():\n    return 'Widget'\n",
        "src/util/helpers.py": "# nothing here\n",
        "docs/école.txt": "Rentrée à l'ÉCOLE lundi.\n",
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def search(root: Path | list[Path], **arguments: object) -> tuple[str, bool]:
    roots = root if isinstance(root, list) else [root]
    registry = ToolRegistry(make_file_tools(FolderPolicy(roots)))
    result = asyncio.run(registry.run("file_search", json.dumps(arguments)))
    return result.content, result.is_error


def hits(content: str) -> list[str]:
    return content.splitlines()[1:]


def test_content_matches_with_line_numbers_case_insensitive(tree: Path) -> None:
    content, is_error = search(tree, query="wIdGeT")
    assert not is_error
    assert content.splitlines()[0] == (
        "5 matching line(s) for 'wIdGeT' in 3 file(s) (6 files searched):"
    )
    assert hits(content) == [
        "README.md:2: The Widget factory.",
        "notes/meeting.md:2: widget pricing",
        "notes/meeting.md:4: WIDGET launch date",
        "src/app.py:3: def make_widget():",
        "src/app.py:4:     return 'Widget'",
    ]


def test_results_feed_read_file(tree: Path) -> None:
    content, _ = search(tree, query="launch")
    path, line, _ = hits(content)[0].split(":", 2)
    registry = ToolRegistry(make_file_tools(FolderPolicy([tree])))
    result = asyncio.run(
        registry.run("read_file", json.dumps({"path": path, "start_line": int(line)}))
    )
    assert result.content.splitlines()[1] == "4\tWIDGET launch date"


def test_non_ascii_query_is_case_insensitive(tree: Path) -> None:
    content, _ = search(tree, query="école")
    assert hits(content) == ["docs/école.txt:1: Rentrée à l'ÉCOLE lundi."]


def test_glob_restricts_files(tree: Path) -> None:
    content, _ = search(tree, query="widget", glob="*.md")
    assert [h.split(":")[0] for h in hits(content)] == [
        "README.md",
        "notes/meeting.md",
        "notes/meeting.md",
    ]
    content, _ = search(tree, query="widget", glob="src/*")
    assert all(h.startswith("src/") for h in hits(content)) and hits(content)


def test_name_search_without_content(tree: Path) -> None:
    content, _ = search(tree, query="", glob="*.py", content=False)
    assert content.splitlines() == [
        "2 file(s) matching '*.py':",
        "src/app.py",
        "src/util/helpers.py",
    ]
    content, _ = search(tree, query="NOTES/", content=False)
    assert content.splitlines()[0] == "2 file(s) whose path contains 'NOTES/':"
    assert hits(content) == ["notes/meeting.md", "notes/todo.txt"]
    content, _ = search(tree, query="", glob="**/*.md", content=False)
    assert hits(content) == ["README.md", "notes/meeting.md"]


def test_max_results_stops_and_says_so(tree: Path) -> None:
    content, _ = search(tree, query="widget", max_results=2)
    assert hits(content)[:2] == [
        "README.md:2: The Widget factory.",
        "notes/meeting.md:2: widget pricing",
    ]
    assert content.splitlines()[-1].startswith("Stopped at max_results=2")
    content, is_error = search(tree, query="widget", max_results=0)
    assert is_error and "'max_results'" in content


def test_no_matches_and_empty_query(tree: Path) -> None:
    content, is_error = search(tree, query="zebra")
    assert not is_error and content == "No matches for 'zebra' (6 files looked at)."
    content, is_error = search(tree, query="  ")
    assert is_error and "query is empty" in content


def test_skips_binaries_hidden_vendored_and_sensitive(tree: Path) -> None:
    needle = "widget"
    (tree / "logo.bin").write_bytes(b"\x00\x01widget\x00")
    (tree / ".env").write_text(f"{needle}=secret\n")
    (tree / "server.pem").write_text(f"{needle}\n")
    for rel in (
        ".git/config",
        ".hidden/notes.txt",
        "node_modules/pkg/index.js",
        "venv/lib/site.py",
        "sub/__pycache__/x.txt",
    ):
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_text(f"{needle}\n")
    env = tree / "tools" / "myenv"
    (env / "lib").mkdir(parents=True)
    (env / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (env / "lib" / "mod.py").write_text(f"{needle}\n")
    content, _ = search(tree, query=needle, max_results=500)
    files = {h.split(":")[0] for h in hits(content)}
    assert files == {"README.md", "notes/meeting.md", "src/app.py"}
    listed, _ = search(tree, query="", content=False, max_results=500)
    for name in (".env", "server.pem", ".git/config", "node_modules/pkg/index.js", "mod.py"):
        assert not any(h.endswith(name) for h in hits(listed)), name
    assert "logo.bin" in hits(listed)  # binary files are listed by name, never searched


@posix_only
def test_links_out_are_not_followed_links_in_are(tree: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("widget secret\n")
    (tree / "leak.txt").symlink_to(outside / "secret.txt")
    (tree / "outdir").symlink_to(outside, target_is_directory=True)
    (tree / "alias.md").symlink_to(tree / "README.md")
    os.mkfifo(tree / "pipe.txt")
    content, _ = search(tree, query="widget")
    assert "secret" not in content
    assert "alias.md:2: The Widget factory." in hits(content)


def test_long_lines_are_clipped_around_the_match(tree: Path) -> None:
    (tree / "long.txt").write_text("a" * 5_000 + " NEEDLE " + "b" * 5_000 + "\n")
    content, _ = search(tree, query="needle")
    (hit,) = hits(content)
    text = hit.split(":", 2)[2].strip()
    assert "NEEDLE" in text
    assert len(text) <= LINE_WIDTH + 2
    assert text.startswith("…") and text.endswith("…")


def test_control_characters_are_removed(tree: Path) -> None:
    (tree / "ansi.txt").write_text("\x1b[31mred widget\x1b[0m \u202eevil\n")
    content, _ = search(tree, query="red widget")
    assert hits(content) == ["ansi.txt:1: [31mred widget[0m evil"]


def test_large_file_is_searched_in_blocks_with_right_line_numbers(tree: Path) -> None:
    # Over the 4 MB block: matches on both sides of block boundaries keep their numbers.
    lines = [f"line {i} " + "z" * 90 for i in range(1, 100_001)]
    for n in (3, 45_000, 99_999):
        lines[n - 1] = f"line {n} has the MARKER"
    (tree / "big.log").write_text("\n".join(lines) + "\n")
    content, _ = search(tree, query="marker")
    assert hits(content) == [
        "big.log:3: line 3 has the MARKER",
        "big.log:45000: line 45000 has the MARKER",
        "big.log:99999: line 99999 has the MARKER",
    ]


def test_several_folders_are_prefixed(tree: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "widget.txt").write_text("widget spec\n")
    content, _ = search([tree, other], query="widget", glob="*.txt")
    assert hits(content) == ["other/widget.txt:1: widget spec"]
    content, _ = search([tree, other], query="", glob="*.md", content=False)
    assert hits(content) == ["project/README.md", "project/notes/meeting.md"]


def test_a_cancelled_token_stops_the_search(tree: Path) -> None:
    token = CancelToken()
    token.set()
    with pytest.raises(ToolCancelled):
        file_search_impl(FolderPolicy([tree]), "widget", cancel=token)


def test_time_budget_returns_partial_results(tree: Path) -> None:
    text = file_search_impl(FolderPolicy([tree]), "widget", time_budget_s=0.0)
    assert text.splitlines()[-1] == "The search stopped after 0 s; results are partial."


def test_a_file_over_the_size_limit_is_reported_not_called_a_non_match(tree: Path) -> None:
    # Before: "No matches" — the model was told the text is not there. The file is sparse
    # (1 GB on paper, a few KB on disk) and holds the text near its start.
    with open(tree / "notes" / "big.txt", "wb") as f:
        f.write(b"header line\n" * 10_000 + b"widget budget: 1.2M\n")
        f.truncate(2**30)
    content, is_error = search(tree, query="budget")
    assert not is_error
    lines = content.splitlines()
    assert lines[0] == "No matches for 'budget' (7 files looked at)."
    assert lines[1] == (
        "1 file skipped: notes/big.txt, 1 GB, over the 256 MB search limit "
        "(not searched, so it may hold matches)."
    )
    # With matches elsewhere, the skipped file is still named (after the matches).
    content, _ = search(tree, query="widget")
    assert content.splitlines()[0].startswith("5 matching line(s)")
    assert content.splitlines()[-1].startswith("1 file skipped: notes/big.txt, 1 GB")


def test_many_skipped_files_are_counted(tree: Path) -> None:
    for i in range(12):
        with open(tree / f"big{i:02d}.log.txt", "wb") as f:
            f.write(b"x\n" * 40_000)
            f.truncate(300 * 2**20)
    content, _ = search(tree, query="nothing-like-this")
    note = content.splitlines()[-1]
    assert note.startswith("12 files skipped: big00.log.txt, 300 MB, over the 256 MB")
    assert "big09.log.txt" in note and "big10.log.txt" not in note
    assert note.endswith("; and 2 more (not searched, so they may hold matches).")
