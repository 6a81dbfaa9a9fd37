"""The person approves the folders tools may read, per folder, in the tool-dispatch layer.

The first time a turn wants to read or search a folder, :class:`FolderGate` asks (the window
shows "Allow once / Always for this folder / Deny"); "Always" is remembered in settings
(``tools.approved_folders``, revocable there), "Allow once" lasts the turn, "Deny" refuses
the call with a line the model can act on. The calculator and knowledge search never ask.
Folders given to ``parley ask --folder`` count as approved for that run.

The gate wraps the registry the agent loop calls (:meth:`FolderGate.run`); a call runs
through file tools confined to the approved folders only, so a search over several folders
reads only those allowed. The file tools themselves are not changed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, Iterable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from parley.core.tools.registry import Confirm, ToolRegistry, ToolResult

if TYPE_CHECKING:
    from parley.core.tools.confinement import FolderPolicy

FILE_TOOLS = frozenset({"file_search", "read_file"})
"""Tools that read the person's folders (everything else needs no folder approval)."""


class Approval(StrEnum):
    """The person's answer to "may the tools read this folder?"."""

    ONCE = "once"
    ALWAYS = "always"
    DENY = "deny"


AskFolder = Callable[[str], Awaitable[Approval]]
"""Asks the person about one folder (its full path); returns their answer."""


def folder_key(folder: str | Path) -> str:
    """A folder as approvals remember it: absolute, user expanded, symlinks resolved."""
    return os.path.realpath(os.path.expanduser(str(folder)))


class FolderGate(ToolRegistry):
    """A tool registry that asks before its file tools read a folder not approved yet.

    Args:
        base: The turn's registry (calculator, file tools for every added folder, knowledge).
        policy: The added folders (the same ones ``base``'s file tools are confined to).
        file_tools_for: Builds the file tools for a subset of the folders.
        approved: Folders already approved (settings' "always", the CLI's ``--folder``).
        ask: Asks the person; None: nothing can be asked, unapproved folders are refused.
        remember: Stores an "Always for this folder" answer (in settings).
    """

    def __init__(
        self,
        base: ToolRegistry,
        policy: FolderPolicy,
        file_tools_for: Callable[[list[Path]], ToolRegistry],
        *,
        approved: Iterable[str] = (),
        ask: AskFolder | None = None,
        remember: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__([t for name in base.names() if (t := base.get(name)) is not None])
        self._policy = policy
        self._file_tools_for = file_tools_for
        self._approved = {folder_key(f) for f in approved}
        self._denied: set[str] = set()
        self._ask = ask
        self._remember = remember
        self._confined: dict[frozenset[Path], ToolRegistry] = {}

    async def run(self, name: str, arguments: str, *, confirm: Confirm | None = None) -> ToolResult:
        """Run a call; a file tool's call first gets the approval of the folders it reads."""
        if name not in FILE_TOOLS or not self._policy.roots:
            return await super().run(name, arguments, confirm=confirm)
        roots = self._roots_touched(name, arguments)
        for root in roots:
            await self._decide(root)
        allowed = [r for r in roots if folder_key(r) in self._approved]
        if not allowed:
            shown = ", ".join(str(r) for r in roots)
            return ToolResult(
                f"The person did not allow the tools to read {shown}. Answer without it, or "
                "ask them to allow the folder.",
                is_error=True,
            )
        key = frozenset(allowed)
        registry = self._confined.get(key)
        if registry is None:
            registry = self._confined[key] = self._file_tools_for(allowed)
        return await registry.run(name, arguments, confirm=confirm)

    def approved(self) -> set[str]:
        """Folders approved for this turn (remembered ones included)."""
        return set(self._approved)

    # ---- internals
    def _roots_touched(self, name: str, arguments: str) -> list[Path]:
        """The folders a call would read: the one holding read_file's path, else all."""
        roots = list(self._policy.roots)
        if name != "read_file" or len(roots) == 1:
            return roots
        try:
            path = json.loads(arguments).get("path")
            real = self._policy.resolve(str(path))
        except Exception:
            return roots[:1]
        for root in roots:
            if real == root or real.is_relative_to(root):
                return [root]
        return roots[:1]

    async def _decide(self, root: Path) -> None:
        key = folder_key(root)
        if key in self._approved or key in self._denied:
            return
        answer = Approval.DENY if self._ask is None else await self._ask(key)
        if answer == Approval.DENY:
            self._denied.add(key)
            return
        self._approved.add(key)
        if answer == Approval.ALWAYS and self._remember is not None:
            self._remember(key)


class FolderAsker:
    """Where the front end plugs in its prompt (the window sets :attr:`handler`).

    Without a handler (the CLI, a headless run) nothing can be asked: folders not approved
    are refused.
    """

    def __init__(self) -> None:
        self.handler: AskFolder | None = None

    async def ask(self, folder: str) -> Approval:
        """Ask the person through the handler (Deny without one)."""
        if self.handler is None:
            return Approval.DENY
        return await self.handler(folder)
