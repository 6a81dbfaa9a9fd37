"""The core/ui split holds at runtime, not only in the linter (STYLE.md §2)."""

import ast
import subprocess
import sys
from pathlib import Path

import parley.core


def test_core_imports_no_qt() -> None:
    code = (
        "import sys, pkgutil, importlib, parley.core\n"
        "for m in pkgutil.walk_packages(parley.core.__path__, 'parley.core.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'shiboken6', 'qasync')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


CORE = Path(parley.core.__file__).parent

ABOVE = {
    "parley.core.services": set(),
    "parley.core.chat": {"parley.core.services"},
}
"""The top floors of the core and who may import them: the composition root (services) is
imported by no core module, the chat session by the composition root alone. Everything else
(knowledge, tools, providers, stores...) sits below both (issue 15)."""


def _module_name(path: Path, core: Path) -> str:
    parts = path.relative_to(core.parent.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):  # every import, TYPE_CHECKING and function-local ones too
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def upward_imports(root: Path) -> list[str]:
    """``importer -> imported`` for every import of a top core module from below it."""
    found = []
    for path in sorted(root.rglob("*.py")):
        importer = _module_name(path, root)
        imported = _imported(ast.parse(path.read_text(encoding="utf-8")))
        for top, allowed in ABOVE.items():
            if importer != top and importer not in allowed and top in imported:
                found.append(f"{importer} -> {top}")
    return found


def test_no_core_module_imports_upward_into_chat_or_services() -> None:
    assert upward_imports(CORE) == []


def test_the_upward_import_check_sees_every_kind_of_import(tmp_path: Path) -> None:
    # The check itself, on a made-up core: a TYPE_CHECKING import, a function-local one and
    # ``from parley.core import chat`` are all found; the composition root may import chat.
    pkg = tmp_path / "parley" / "core"
    (pkg / "knowledge").mkdir(parents=True)
    (pkg / "services.py").write_text("from parley.core.chat import ChatSession\n")
    (pkg / "knowledge" / "grounding.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from parley.core.services import Services\n"
    )
    (pkg / "agent.py").write_text("def f():\n    from parley.core import chat\n")
    (pkg / "tools.py").write_text("import parley.core.chat\n")
    (pkg / "store.py").write_text("from parley.core.chatty import x\n")  # a name alike: fine
    assert upward_imports(pkg) == [
        "parley.core.agent -> parley.core.chat",
        "parley.core.knowledge.grounding -> parley.core.services",
        "parley.core.tools -> parley.core.chat",
    ]
