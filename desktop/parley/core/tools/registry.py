"""The tool registry: typed Python functions offered to the model, run safely.

A tool is a plain (sync or async) function with type hints and a Google-style docstring. The
:func:`tool` decorator turns it into a :class:`Tool`: the JSON Schema of its parameters comes from
the signature through pydantic's public API (``create_model``), the description from the
docstring's summary and the per-argument text from its ``Args:`` section.

:meth:`ToolRegistry.run` is the only way the agent loop calls a tool. It never raises (except
``CancelledError``): unknown tools, bad JSON, wrong argument types, refusals, time-outs and
exceptions all come back as ``ToolResult(is_error=True)`` with one line the model can act on.
Sync tools run in a worker thread; a tool that declares a :class:`CancelToken` parameter gets one,
and the registry sets it when the call times out or the awaiting task is cancelled, so loops
inside the tool stop promptly instead of running on in the background.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
import threading
import types
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pydantic

from parley.core.display import escape_surrogates
from parley.core.errors import ParleyError
from parley.core.providers.base import ToolSpec

__all__ = [
    "CancelToken",
    "Confirm",
    "Tool",
    "ToolCancelled",
    "ToolError",
    "ToolRegistry",
    "ToolResult",
    "tool",
]


# ---------------------------------------------------------------- errors and results
class ToolError(ParleyError):
    """A tool refused or failed in a way the model should be told about (one clear line)."""

    default_message = "The tool failed."


class ToolCancelled(ToolError):
    """Raised inside a tool by :meth:`CancelToken.raise_if_cancelled`."""

    default_message = "The tool call was stopped."


@dataclass(frozen=True)
class ToolResult:
    """What a tool call produced, as it goes back to the model."""

    content: str
    """The text sent back to the model (already capped to the tool's ``max_output_chars``)."""
    is_error: bool = False
    """True when the call failed or was refused; ``content`` then says why in one line."""
    truncated: bool = False
    """True when the registry cut the output at the tool's ``max_output_chars``."""


class CancelToken(threading.Event):
    """Set by the registry when a call is cancelled or times out; tools poll it in loops.

    A tool asks for one by declaring a parameter annotated ``CancelToken`` (or
    ``CancelToken | None``); that parameter is injected and never appears in the JSON Schema.
    """

    def raise_if_cancelled(self) -> None:
        """Raise :class:`ToolCancelled` if the call was cancelled."""
        if self.is_set():
            raise ToolCancelled()


Confirm = Callable[["Tool", dict[str, Any]], Awaitable[bool]]
"""Asks the person whether a tool may run with these (validated) arguments."""


# ---------------------------------------------------------------- the tool
@dataclass(frozen=True)
class Tool:
    """A function the model may call, with its schema and its limits."""

    name: str
    """Name the model uses (``^[a-zA-Z0-9_-]{1,64}$``, accepted by OpenAI and Anthropic)."""
    description: str
    """What the tool does and when to use it, for the model."""
    parameters: dict[str, Any]
    """JSON Schema of the arguments: ``{"type": "object", "properties": ..., "required": ...}``."""
    func: Callable[..., Any]
    """The implementation, sync (run in a worker thread) or async."""
    timeout_s: float = 30.0
    """Longest a call may take; past it the call ends with an error and the token is set."""
    max_output_chars: int = 64_000
    """Output longer than this is cut (with a note saying so)."""
    read_only: bool = True
    """The tool only reads; it changes nothing on the machine or elsewhere."""
    needs_confirmation: bool = False
    """The person must approve each call (through ``run(..., confirm=...)``)."""
    args_model: type[pydantic.BaseModel] | None = field(default=None, repr=False, compare=False)
    """Validates the model's arguments; built from ``func``'s signature when not given."""
    cancel_param: str | None = field(default=None, repr=False, compare=False)
    """Name of the parameter that receives the :class:`CancelToken`, if the tool takes one."""

    def __post_init__(self) -> None:
        if not _NAME_RE.fullmatch(self.name):
            raise ValueError(f"tool name {self.name!r} must match {_NAME_RE.pattern}")
        if self.args_model is None:
            model, cancel_param, _ = _signature_model(self.func, self.name)
            object.__setattr__(self, "args_model", model)
            if self.cancel_param is None:
                object.__setattr__(self, "cancel_param", cancel_param)

    def spec(self) -> ToolSpec:
        """The vendor-neutral description the providers send."""
        return ToolSpec(name=self.name, description=self.description, parameters=self.parameters)


_NAME_RE = re.compile(r"[a-zA-Z0-9_-]{1,64}")


def tool(
    *,
    name: str | None = None,
    timeout_s: float = 30.0,
    max_output_chars: int = 64_000,
    read_only: bool = True,
    needs_confirmation: bool = False,
) -> Callable[[Callable[..., Any]], Tool]:
    """Turn a typed function into a :class:`Tool`.

    The schema comes from the signature (defaults, ``X | None``, ``Annotated[int, Field(...)]``
    constraints all carry over); the description is the docstring without its ``Args:`` /
    ``Returns:`` sections, and each argument's description comes from ``Args:``.

    Args:
        name: Tool name; defaults to the function's name.
        timeout_s: Time limit of one call, in seconds.
        max_output_chars: Output cap; longer output is cut with a note.
        read_only: Whether the tool only reads.
        needs_confirmation: Whether the person must approve each call.

    Returns:
        A decorator producing the :class:`Tool`.
    """

    def wrap(func: Callable[..., Any]) -> Tool:
        tool_name = name or func.__name__
        model, cancel_param, schema = _signature_model(func, tool_name)
        summary, _ = _parse_docstring(inspect.getdoc(func) or "")
        return Tool(
            name=tool_name,
            description=summary,
            parameters=schema,
            func=func,
            timeout_s=timeout_s,
            max_output_chars=max_output_chars,
            read_only=read_only,
            needs_confirmation=needs_confirmation,
            args_model=model,
            cancel_param=cancel_param,
        )

    return wrap


# ---------------------------------------------------------------- schema from a signature
_SECTION_RE = re.compile(
    r"^(Args|Arguments|Parameters|Returns|Return|Yields|Raises|Examples?|Notes?):\s*$"
)


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """Split a Google-style docstring into (description, {argument: description})."""
    description: list[str] = []
    args: dict[str, str] = {}
    section: str | None = None
    current: str | None = None
    for line in doc.splitlines():
        header = _SECTION_RE.match(line.strip()) if not line.startswith((" ", "\t")) else None
        if header:
            section = header.group(1)
            current = None
            continue
        if section is None:
            description.append(line)
        elif section in ("Args", "Arguments", "Parameters"):
            stripped = line.strip()
            m = re.match(r"^(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$", stripped)
            # An argument starts at the section's first indentation level; deeper lines continue it.
            indent = len(line) - len(line.lstrip())
            if m and indent <= 4:
                current = m.group(1).lstrip("*")
                args[current] = m.group(2).strip()
            elif current and stripped:
                args[current] = f"{args[current]} {stripped}".strip()
    # Unwrap hard-wrapped paragraphs: the model reads prose, not a source file's line breaks.
    paragraphs = "\n".join(description).strip().split("\n\n")
    summary = "\n\n".join(" ".join(line.strip() for line in p.splitlines()) for p in paragraphs)
    return summary, args


def _is_cancel_annotation(annotation: Any) -> bool:
    if annotation is CancelToken:
        return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(a is CancelToken for a in typing.get_args(annotation))
    return False


def _signature_model(
    func: Callable[..., Any], tool_name: str
) -> tuple[type[pydantic.BaseModel], str | None, dict[str, Any]]:
    """Build the argument model, find the cancel parameter and produce the JSON Schema."""
    signature = inspect.signature(func)
    hints = typing.get_type_hints(func, include_extras=True)
    _, arg_docs = _parse_docstring(inspect.getdoc(func) or "")
    fields: dict[str, Any] = {}
    cancel_param: str | None = None
    for pname, param in signature.parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(f"tool {tool_name}: *args/**kwargs cannot be described to a model")
        annotation = hints.get(pname, Any)
        if _is_cancel_annotation(annotation):
            cancel_param = pname
            continue
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[pname] = (
            annotation,
            pydantic.Field(default=default, description=arg_docs.get(pname) or None),
        )
    model = pydantic.create_model(
        f"{tool_name}_arguments",
        __config__=pydantic.ConfigDict(extra="forbid"),
        **fields,
    )
    schema = _clean_schema(model.model_json_schema())
    schema.setdefault("properties", {})
    schema.setdefault("required", [])
    return model, cancel_param, schema


def _clean_schema(schema: Any, *, in_properties: bool = False) -> Any:
    """Drop pydantic's generated ``title`` keys (noise for the model); keep property names."""
    if isinstance(schema, dict):
        out: dict[str, Any] = {}
        for key, value in schema.items():
            if key == "title" and not in_properties and isinstance(value, str):
                continue
            out[key] = _clean_schema(value, in_properties=key in ("properties", "$defs"))
        return out
    if isinstance(schema, list):
        return [_clean_schema(v) for v in schema]
    return schema


# ---------------------------------------------------------------- the registry
class ToolRegistry:
    """The tools offered in a conversation, and the one safe way to run them."""

    def __init__(self, tools: typing.Iterable[Tool] = ()) -> None:
        """Create a registry, optionally with some tools already registered."""
        self._tools: dict[str, Tool] = {}
        for t in tools:
            self.register(t)

    # ---- Public API
    def register(self, tool: Tool) -> None:
        """Add a tool. Raises ``ValueError`` if the name is taken (a programming error)."""
        if tool.name in self._tools:
            raise ValueError(f"a tool named {tool.name!r} is already registered")
        self._tools[tool.name] = tool

    def get(self, name: str) -> Tool | None:
        """The tool called ``name``, or None."""
        return self._tools.get(name)

    def names(self) -> list[str]:
        """Registered tool names, in registration order."""
        return list(self._tools)

    def specs(self) -> tuple[ToolSpec, ...]:
        """Vendor-neutral specs for a :class:`~parley.core.providers.base.ChatRequest`."""
        return tuple(t.spec() for t in self._tools.values())

    def openai_tools(self) -> list[dict[str, Any]]:
        """The ``tools=`` argument of OpenAI's Chat Completions API."""
        return [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": t.parameters,
                },
            }
            for t in self._tools.values()
        ]

    def anthropic_tools(self) -> list[dict[str, Any]]:
        """The ``tools=`` argument of Anthropic's Messages API."""
        return [
            {"name": t.name, "description": t.description, "input_schema": t.parameters}
            for t in self._tools.values()
        ]

    async def run(self, name: str, arguments: str, *, confirm: Confirm | None = None) -> ToolResult:
        """Validate the model's arguments, ask for confirmation if needed, run the tool.

        Args:
            name: The tool name the model used.
            arguments: The raw JSON text of the arguments, as the model produced it.
            confirm: Asks the person; required for tools that need confirmation.

        Returns:
            The result; errors are results with ``is_error=True`` and a one-line reason.

        Raises:
            asyncio.CancelledError: The awaiting task was cancelled (the tool's token is set).
        """
        tool = self._tools.get(name)
        if tool is None:
            known = ", ".join(self._tools) or "none"
            return _error(f"There is no tool named {name!r}. Available tools: {known}.")
        kwargs = _parse_arguments(tool, arguments)
        if isinstance(kwargs, ToolResult):
            return kwargs

        if tool.needs_confirmation:
            refusal = await _ask(tool, kwargs, confirm)
            if refusal is not None:
                return refusal

        token = CancelToken()
        call_kwargs = dict(kwargs)
        if tool.cancel_param:
            call_kwargs[tool.cancel_param] = token
        try:
            if inspect.iscoroutinefunction(tool.func):
                awaitable: Awaitable[Any] = tool.func(**call_kwargs)
            else:
                awaitable = asyncio.to_thread(tool.func, **call_kwargs)
            value = await asyncio.wait_for(awaitable, tool.timeout_s)
        except TimeoutError:
            token.set()
            return _error(f"{tool.name} did not finish in {tool.timeout_s:g} s; it was stopped.")
        except asyncio.CancelledError:
            token.set()
            raise
        except ToolCancelled:
            return _error(f"{tool.name} was stopped.")
        except ParleyError as exc:
            return _error(f"{tool.name}: {exc.user_message}")
        except Exception as exc:
            return _error(f"{tool.name} failed: {_one_line(exc)}")
        # A result is sent to the model (JSON) and stored (SQLite): lone surrogates (a file
        # name that is not UTF-8) would fail both, so they are escaped here for every tool.
        capped = _cap(escape_surrogates(_to_text(value)), tool.max_output_chars)
        if isinstance(value, ToolResult) and (value.is_error or value.truncated):
            truncated = value.truncated or capped.truncated
            return ToolResult(capped.content, is_error=value.is_error, truncated=truncated)
        return capped


def _error(message: str) -> ToolResult:
    message = escape_surrogates(message)
    return ToolResult(
        content=message.strip().splitlines()[0] if message.strip() else "Error.", is_error=True
    )


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    detail = text[0] if text else ""
    return f"{type(exc).__name__}: {detail}"[:500] if detail else type(exc).__name__


def _parse_arguments(tool: Tool, arguments: str) -> dict[str, Any] | ToolResult:
    """JSON text -> validated keyword arguments, or an error result saying what is wrong."""
    text = arguments if isinstance(arguments, str) else ""
    # Models send "" (or nothing) for a call without arguments.
    if not text.strip():
        data: Any = {}
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            return _error(
                f"The arguments for {tool.name} are not valid JSON ({exc.msg} at character "
                f"{exc.pos}); send a JSON object."
            )
    if not isinstance(data, dict):
        return _error(
            f"The arguments for {tool.name} must be a JSON object, not {type(data).__name__}."
        )
    assert tool.args_model is not None  # set in Tool.__post_init__
    try:
        validated = tool.args_model.model_validate(data)
    except pydantic.ValidationError as exc:
        return _error(f"Invalid arguments for {tool.name}: {_describe_validation(exc)}")
    return {key: getattr(validated, key) for key in type(validated).model_fields}


def _describe_validation(exc: pydantic.ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False)[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ())) or "arguments"
        if err.get("type") == "missing":
            parts.append(f"'{loc}' is required")
        elif err.get("type") == "extra_forbidden":
            parts.append(f"'{loc}' is not a parameter of this tool")
        else:
            parts.append(f"'{loc}': {err.get('msg', 'invalid value')}")
    return "; ".join(parts) + "."


async def _ask(tool: Tool, kwargs: dict[str, Any], confirm: Confirm | None) -> ToolResult | None:
    """None when the person approved; an error result otherwise."""
    if confirm is None:
        return _error(f"{tool.name} needs the person's confirmation, which could not be asked.")
    try:
        approved = await confirm(tool, dict(kwargs))
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        return _error(f"{tool.name} was not run: the confirmation failed ({_one_line(exc)})")
    if not approved:
        return _error(f"The person declined to run {tool.name}; do not retry it unasked.")
    return None


def _to_text(value: Any) -> str:
    if isinstance(value, ToolResult):
        return value.content
    if value is None:
        return "(no output)"
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


def _cap(text: str, limit: int) -> ToolResult:
    if len(text) <= limit:
        return ToolResult(content=text)
    note = f"\n… output cut at {limit:,} of {len(text):,} characters."
    keep = max(0, limit - len(note))
    return ToolResult(content=text[:keep] + note, truncated=True)
