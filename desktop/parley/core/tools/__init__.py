"""Local tools the model may call: calculator, confined file search/read, knowledge search.

Build the registry a conversation uses with :func:`default_registry`; the agent loop runs
calls through :meth:`ToolRegistry.run`, which never raises for a tool's failure.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from parley.core.tools.calculator import CalcError, calculator_tool, evaluate
from parley.core.tools.confinement import AccessDenied, FolderPolicy, PathNotFound
from parley.core.tools.file_search import file_search_tool
from parley.core.tools.knowledge import make_knowledge_tool
from parley.core.tools.read_file import DocumentLoader, read_file_tool
from parley.core.tools.registry import (
    CancelToken,
    Tool,
    ToolCancelled,
    ToolError,
    ToolRegistry,
    ToolResult,
    tool,
)

__all__ = [
    "AccessDenied",
    "CalcError",
    "CancelToken",
    "DocumentLoader",
    "FolderPolicy",
    "PathNotFound",
    "Tool",
    "ToolCancelled",
    "ToolError",
    "ToolRegistry",
    "ToolResult",
    "calculator_tool",
    "default_registry",
    "evaluate",
    "make_file_tools",
    "make_knowledge_tool",
    "tool",
]


def make_file_tools(
    policy: FolderPolicy, *, load_document: DocumentLoader | None = None
) -> list[Tool]:
    """The ``file_search`` and ``read_file`` tools, confined by ``policy``.

    Args:
        policy: The folders the person added.
        load_document: Parses PDF and DOCX files for read_file (see
            :func:`~parley.core.tools.read_file.read_file_tool`).

    Returns:
        ``[file_search, read_file]``.
    """
    return [file_search_tool(policy), read_file_tool(policy, load_document=load_document)]


def default_registry(
    policy: FolderPolicy | None,
    knowledge_search: Callable[[str, int], Any] | None = None,
    *,
    load_document: DocumentLoader | None = None,
) -> ToolRegistry:
    """The standard tools: calculator, file tools when folders were added, knowledge search.

    Args:
        policy: The folders the person added; file tools are left out when there are none.
        knowledge_search: The retriever's ``search(query, k)``; the tool is left out without it.
        load_document: How read_file parses PDF/DOCX (e.g. ``IsolatedLoader(...).load``);
            see :func:`make_file_tools`.

    Returns:
        A new registry.
    """
    registry = ToolRegistry([calculator_tool])
    if policy is not None and policy.roots:
        for file_tool in make_file_tools(policy, load_document=load_document):
            registry.register(file_tool)
    if knowledge_search is not None:
        registry.register(make_knowledge_tool(knowledge_search))
    return registry
