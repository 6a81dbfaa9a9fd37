"""The ``parley`` command: the window, or a headless subcommand.

``parley`` opens the window; ``parley ask|costs|keys|models|conversations|export|import|index|
search`` run headless.

``parley --self-test [--json] [--allow-no-keyring]`` checks the installation
(:mod:`parley.core.selftest`); ``parley assets download`` fetches the offline assets
(:mod:`parley.core.assets`).

Start-up is kept cheap (``parley --version`` must take well under 300 ms): only argparse
and Parley's own small modules load here; the SDKs, chromadb and Qt are imported inside
the commands that need them.

Errors print one line on stderr (the user message, never a traceback) and exit 2;
Ctrl+C exits 130 after saving whatever part of the answer had arrived.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from parley import __version__

if TYPE_CHECKING:
    from parley.core.paths import Paths
    from parley.core.services import Services

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


def _err(message: str) -> None:
    from parley.core.display import for_terminal

    # Messages quote tool output, file names and servers: no escape sequence on a terminal.
    sys.stderr.write(f"parley: {for_terminal(message, sys.stderr)}\n")
    sys.stderr.flush()


# ---------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    """The full command-line grammar."""
    p = argparse.ArgumentParser(
        prog="parley",
        description="Parley: a desktop chat assistant. With no command, opens the window.",
    )
    p.add_argument("--version", action="version", version=f"parley {__version__}")
    p.add_argument(
        "--self-test",
        action="store_true",
        help="check this installation (Qt, keyring, tiktoken, embeddings, Chroma, database, "
        "stream worker) and exit; with --json and --allow-no-keyring",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    ask = sub.add_parser("ask", help="ask a question; the answer streams to stdout")
    ask.add_argument("question", nargs="?", help="the question ('-' or omitted: read stdin)")
    ask.add_argument("--provider", help="openai, anthropic, openai-compatible, or a preset")
    ask.add_argument("--model", help="model id (default: from settings or the catalog)")
    ask.add_argument("--base-url", help="endpoint for the provider (OpenAI-compatible servers)")
    ask.add_argument("--system", help="system prompt for this question")
    ask.add_argument("--conversation", type=int, metavar="ID", help="continue a conversation")
    ask.add_argument("--json", action="store_true", help="print one JSON object at the end")
    ask.add_argument("--tools", action="store_true", help="let the model use local tools")
    ask.add_argument(
        "--folder",
        action="append",
        default=[],
        metavar="PATH",
        help="allow a folder for tools/knowledge in this run (repeatable)",
    )
    ask.add_argument("--knowledge", action="store_true", help="answer from your indexed folders")
    ask.add_argument(
        "--over-budget",
        action="store_true",
        help="send even when a daily or monthly budget is reached",
    )
    ask.set_defaults(func=cmd_ask)

    costs = sub.add_parser(
        "costs", help="what the model APIs cost: totals and rows from the ledger"
    )
    costs.add_argument("--since", metavar="YYYY-MM-DD", help="first local day (inclusive)")
    costs.add_argument("--until", metavar="YYYY-MM-DD", help="last local day (inclusive)")
    costs.add_argument(
        "--by",
        choices=("model", "day", "purpose"),
        help="group rows by model, day or purpose (default: day; with --csv: every request)",
    )
    fmt = costs.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print one JSON object")
    fmt.add_argument("--csv", action="store_true", help="print CSV (the ledger's rows)")
    costs.set_defaults(func=cmd_costs)

    keys = sub.add_parser("keys", help="manage API keys in the OS keyring")
    ksub = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    kset = ksub.add_parser("set", help="store a key (read from stdin or a hidden prompt)")
    kset.add_argument("provider")
    kclear = ksub.add_parser("clear", help="remove a stored key")
    kclear.add_argument("provider")
    kstatus = ksub.add_parser("status", help="which providers have a key, and from where")
    kstatus.add_argument("--json", action="store_true")
    keys.set_defaults(func=cmd_keys)

    models = sub.add_parser("models", help="list models with context windows and prices")
    models.add_argument("--json", action="store_true")
    models.add_argument("--provider", help="only this provider")
    models.add_argument(
        "--remote",
        action="store_true",
        help="ask the provider's /v1/models endpoint instead of the catalog",
    )
    models.add_argument("--base-url", help="endpoint to ask with --remote")
    models.set_defaults(func=cmd_models)

    convs = sub.add_parser("conversations", help="list stored conversations")
    convs.add_argument("--json", action="store_true")
    convs.add_argument("--search", help="only those whose title or text contains this")
    convs.set_defaults(func=cmd_conversations)

    export = sub.add_parser(
        "export", help="write a conversation as Markdown, JSON (lossless) or HTML"
    )
    export.add_argument("conversation", type=int, metavar="ID", help="the conversation's id")
    export.add_argument(
        "--format", choices=("md", "json", "html"), default="md", help="default: md"
    )
    export.add_argument(
        "-o", "--output", metavar="FILE", help="write to FILE instead of standard output"
    )
    export.set_defaults(func=cmd_export)

    imp = sub.add_parser("import", help="add a conversation from a JSON export")
    imp.add_argument("file", metavar="FILE", help="a file written by `parley export --format json`")
    imp.add_argument("--json", action="store_true", help="print the new conversation as JSON")
    imp.set_defaults(func=cmd_import)

    assets = sub.add_parser("assets", help="the offline files (tiktoken, embedding model)")
    asub = assets.add_subparsers(dest="assets_command", metavar="ACTION", required=True)
    dl = asub.add_parser(
        "download",
        help="download tiktoken's BPE files and the MiniLM model, checking their SHA-256, "
        "and make the int8 model from it",
    )
    dl.add_argument(
        "--dir",
        type=os.path.abspath,
        metavar="DIR",
        help="where to put them (default: PARLEY_ASSETS, else <data folder>/assets); "
        "point PARLEY_ASSETS at it on another machine or for a build",
    )
    assets.set_defaults(func=cmd_assets)

    try:
        from parley.cli_knowledge import add_commands
    except ImportError:  # the knowledge feature is optional at this layer
        pass
    else:
        add_commands(sub)
    return p


# ---------------------------------------------------------------- entry
def main(argv: Sequence[str] | None = None) -> int:
    """Run ``parley``; returns the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list:
        return _open_window()
    if args_list[0] == "--self-test-qt" and len(args_list) == 2:  # parley --self-test's child
        from parley.ui.app import self_test_qt

        return self_test_qt(args_list[1])
    if "--self-test" in args_list:
        return _self_test(args_list)
    parser = build_parser()
    args = parser.parse_args(args_list)
    if not getattr(args, "func", None):
        return _open_window()
    import logging

    logging.basicConfig(level=logging.WARNING, format="parley: %(levelname)s: %(message)s")
    from parley.core.errors import ParleyError

    try:
        paths = _paths()
        return int(args.func(args, paths))
    except ParleyError as exc:
        _err(exc.user_message)
        return EXIT_ERROR
    except KeyboardInterrupt:
        _err("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (``parley ask ... | head``): stop quietly. Point stdout at
        # devnull so the interpreter's final flush does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as exc:  # last resort: one line, no traceback for the person
        logging.getLogger("parley").debug("unexpected error", exc_info=True)
        _err(f"internal error: {type(exc).__name__}: {exc}")
        return 1


def _paths() -> Paths:
    from parley.core.paths import default_paths

    return default_paths()


def _services(paths: Paths) -> Services:
    from parley.core.services import build_services

    return build_services(paths)


def _self_test(args_list: list[str]) -> int:
    """``parley --self-test [--json] [--allow-no-keyring]``: 0 only if every check passed."""
    import asyncio
    import time

    from parley.core.selftest import report_json, report_text, run_self_test

    p = argparse.ArgumentParser(prog="parley", description="Check this installation.")
    p.add_argument("--self-test", action="store_true", required=True)
    p.add_argument("--json", action="store_true", help="one JSON object instead of lines")
    p.add_argument(
        "--allow-no-keyring",
        action="store_true",
        help="pass without an OS keyring (keys then come from the environment)",
    )
    args = p.parse_args(args_list)
    t0 = time.perf_counter()
    checks = asyncio.run(run_self_test(_paths(), allow_no_keyring=args.allow_no_keyring))
    seconds = time.perf_counter() - t0
    if args.json:
        print(report_json(checks, seconds, __version__))
    else:
        print(f"Parley {__version__} self-test")
        print(report_text(checks, seconds))
    sys.stdout.flush()
    return 0 if all(c.ok for c in checks) else 1


def _open_window() -> int:
    try:
        from parley.ui.app import main as gui_main
    except ImportError as exc:
        _err(f"the window cannot start: {exc}")
        return EXIT_ERROR
    return int(gui_main())


# ---------------------------------------------------------------- ask
def _read_question(arg: str | None) -> str:
    from parley.core.errors import ConfigError

    if arg is not None and arg != "-":
        return arg
    if sys.stdin is None or (arg is None and sys.stdin.isatty()):
        raise ConfigError("No question given. Usage: parley ask QUESTION (or pipe it on stdin).")
    data = sys.stdin.buffer.read()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"The question on stdin is not valid UTF-8 (bad byte at position {exc.start})."
        ) from None


def cmd_ask(args: argparse.Namespace, paths: Paths) -> int:
    """``parley ask``."""
    import asyncio

    from parley.core.errors import ParleyError

    question = _read_question(args.question)
    services = _services(paths)
    _report_catalog_problems(services.catalog)
    provider = args.provider or services.settings.current.default_provider
    services.catalog.provider(provider)  # unknown provider: one clear line
    _check_budget(services, args.over_budget)
    if args.base_url:
        services.providers.overrides.setdefault(provider, {})["base_url"] = args.base_url
    options = services.turn_options(
        provider=provider,
        model=args.model,
        system=args.system,
        use_tools=args.tools,
        use_knowledge=args.knowledge,
        folders=tuple(os.path.abspath(f) for f in args.folder),
    )
    options.over_budget = args.over_budget
    if services.knowledge.needed_for(options):
        try:
            services.knowledge.attach()
        except ParleyError as exc:
            if options.use_knowledge:
                raise
            # Only knowledge_search wanted the index (tools on, folders added): without it
            # (no model files, server down) the other tools still work.
            _err(f"knowledge_search unavailable: {exc.user_message}")
    return asyncio.run(_ask(services, question, options, args))


def _report_catalog_problems(catalog: Any) -> None:
    for problem in catalog.problems:
        _err(problem)


def _check_budget(services: Services, over_budget: bool) -> None:
    """Refuse (exit 2) when a budget is reached, unless ``--over-budget``; warn from 80 %."""
    status = services.budget.status()
    if status.over and not over_budget:
        raise status.error("Pass --over-budget to send anyway.")
    if status.message:
        _err(status.message)


async def _ask(services: Services, question: str, options: Any, args: argparse.Namespace) -> int:
    import asyncio
    import contextlib

    from parley.core.agent import AgentStopped, ToolRunFinished, ToolRunStarted
    from parley.core.chat import TurnFinished, TurnQueued, TurnStarted
    from parley.core.display import TerminalText, escape_surrogates, is_terminal, safe_json
    from parley.core.providers.base import ContextTrimmed, FallbackUsed, RetryScheduled, TextDelta

    out = sys.stdout
    # Model output is untrusted: on a terminal, control characters are shown, not obeyed
    # (TerminalText holds back a CR split from its LF across chunks); a pipe gets it exact.
    shown = TerminalText() if is_terminal(out) else None
    finished: TurnFinished | None = None
    started: TurnStarted | None = None
    streamed = False
    turn = services.chat.send(question, options, conversation_id=args.conversation)
    try:
        # aclosing: when the loop ends early (Ctrl+C, a closed pipe), the turn is closed,
        # and its partial answer saved, before services.aclose() closes the database.
        async with contextlib.aclosing(turn):
            async for ev in turn:
                if isinstance(ev, TextDelta):
                    if not args.json:
                        out.write(shown.feed(ev.text) if shown else escape_surrogates(ev.text))
                        out.flush()
                        streamed = True
                elif isinstance(ev, TurnStarted):
                    started = ev
                elif isinstance(ev, TurnQueued):
                    _err(
                        f"waiting: {ev.ahead} other question(s) in conversation "
                        f"{ev.conversation_id} are answered first"
                    )
                elif isinstance(ev, RetryScheduled):
                    _err(f"{ev.message} Retrying in {ev.wait_s:.1f} s (attempt {ev.attempt}).")
                elif isinstance(ev, FallbackUsed):
                    _err(ev.message)
                elif isinstance(ev, ToolRunStarted):
                    _err(f"tool {ev.call.name}({_short(ev.call.arguments)}) ...")
                elif isinstance(ev, ToolRunFinished):
                    state = "error" if ev.is_error else "ok"
                    _err(f"tool {ev.call.name}: {state} in {ev.ms:.0f} ms: {_short(ev.content)}")
                elif isinstance(ev, AgentStopped):
                    _err(ev.message)
                elif isinstance(ev, ContextTrimmed):
                    _err(ev.note)
                elif isinstance(ev, TurnFinished):
                    finished = ev
    except asyncio.CancelledError:
        if streamed:
            out.write((shown.flush() if shown else "") + "\n")
        if started is not None:
            _err(f"stopped; the partial answer is saved in conversation {started.conversation_id}")
        raise KeyboardInterrupt from None
    finally:
        price_hint = _price_hint(services, finished)
        await services.aclose()
    assert finished is not None
    if streamed and not args.json:
        out.write((shown.flush() if shown else "") + "\n")
        out.flush()
    if price_hint:
        _err(price_hint)
    if args.json:
        payload: dict[str, Any] = {
            "text": finished.text,
            "provider": finished.provider,
            "model": finished.model,
            "status": finished.status,
            "estimate": _estimate_json(finished.estimate),
            "usage": {
                "input_tokens": finished.usage.input_tokens,
                "output_tokens": finished.usage.output_tokens,
                "cached_input_tokens": finished.usage.cached_input_tokens,
                "cache_write_tokens": finished.usage.cache_write_tokens,
            },
            "cost_usd": finished.cost_usd,
            "cached": finished.cached,
            "local": finished.local,
            "conversation_id": finished.conversation_id,
            "attempts": finished.attempts,
        }
        if price_hint:
            payload["price_hint"] = price_hint
        if finished.notes:
            payload["notes"] = list(finished.notes)
        if finished.error is not None:
            payload["error"] = finished.error.user_message
        if args.tools:
            payload["tool_calls"] = [
                {
                    "name": t.call.name,
                    "arguments": _json_or_text(t.call.arguments),
                    "result": None if t.is_error else t.content,
                    "error": t.content if t.is_error else None,
                    "ms": round(t.ms, 1),
                }
                for t in finished.tool_calls
            ]
        if args.knowledge:
            payload["sources"] = [_source_json(i + 1, s) for i, s in enumerate(finished.sources)]
            if finished.search_query is not None:
                payload["search_query"] = finished.search_query
        out.write(safe_json(payload) + "\n")
        out.flush()
    if finished.error is not None:
        _err(finished.error.user_message)
        return EXIT_ERROR
    if finished.status != "complete":
        return EXIT_ERROR
    return 0


def _estimate_json(estimate: Any) -> dict[str, Any] | None:
    if estimate is None:
        return None
    return {
        "input_tokens": estimate.input_tokens,
        "cost_usd": estimate.cost_usd,
        "exact": estimate.exact,
    }


def _price_hint(services: Services, finished: Any) -> str | None:
    """How to add a price when the answer's model has none (its cost is unknown)."""
    if finished is None or finished.cost_usd is not None or finished.local:
        return None
    if finished.usage.input_tokens is None and finished.usage.output_tokens is None:
        return None  # nothing was reported: not a price problem
    info = services.catalog.model(finished.model, finished.provider)
    if info is not None and info.has_prices:
        return None
    return str(services.catalog.price_hint(finished.model, finished.provider))


def _short(text: str, n: int = 120) -> str:
    one = " ".join(text.split())
    return one if len(one) <= n else one[: n - 1] + "…"


def _json_or_text(text: str) -> Any:
    import json

    try:
        return json.loads(text)
    except ValueError:
        return text


def _source_json(n: int, source: Any) -> dict[str, Any]:
    to_dict = getattr(source, "to_dict", None)
    d = dict(to_dict()) if callable(to_dict) else {}
    return {"n": n, "path": d.get("path"), "location": d.get("location")}


# ---------------------------------------------------------------- costs
def _day_arg(value: str | None, flag: str) -> str | None:
    import datetime as dt

    from parley.core.errors import ConfigError

    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value.strip()).isoformat()
    except ValueError:
        raise ConfigError(f"{flag} wants a date like 2026-01-31, not '{value}'.") from None


def _usd(value: float | None, *, unknown: int = 0, local: bool = False) -> str:
    from parley.core.costs import format_usd

    if local:
        return "$0.00 (local)"
    text = format_usd(value)
    if unknown and value is not None:
        text += f" + {unknown} unknown"
    return text


def cmd_costs(args: argparse.Namespace, paths: Paths) -> int:
    """``parley costs``: totals and rows from the ledger (every request Parley made)."""
    import json

    from parley.core.errors import ConfigError
    from parley.core.providers.catalog import load_catalog
    from parley.core.store.ledger import Ledger

    since = _day_arg(args.since, "--since")
    until = _day_arg(args.until, "--until")
    if since and until and since > until:
        raise ConfigError(f"--since {since} is after --until {until}.")
    catalog = load_catalog(paths.user_models_file)
    _report_catalog_problems(catalog)
    ledger = Ledger(paths.db_file)
    try:
        if args.csv and args.by is None:
            ledger.write_csv(sys.stdout, since, until)
            return 0
        by = args.by or "day"
        totals = ledger.totals(since, until)
        groups = ledger.breakdown(by, since, until)
    finally:
        ledger.close()
    rows = []
    for g in groups:
        row = g.to_json(by)
        if g.totals.all_local:
            row["local"] = True
        if by == "model" and g.totals.unknown and g.provider is not None:
            row["price_hint"] = catalog.price_hint(g.key, g.provider)
        rows.append(row)
    if args.json:
        payload = {
            "since": since,
            "until": until,
            "by": by,
            "totals": totals.to_json(),
            "rows": rows,
        }
        print(json.dumps(payload, ensure_ascii=False))
        return 0
    if args.csv:
        import csv

        columns = [by, *([] if by != "model" else ["provider"])] + [
            k for k in totals.to_json() if k != "cost_complete"
        ]
        w = csv.writer(sys.stdout)
        w.writerow(columns)
        for r in rows:
            w.writerow(["" if r.get(c) is None else r.get(c) for c in columns])
        return 0
    span = f"{since or 'the beginning'} to {until or 'today'}"
    print(f"Costs from {span} (local days), by {by}:")
    if not rows:
        print("  no requests recorded")
    key_w = max([len(by), *(len(str(r[by])) for r in rows)]) + 2
    print(
        f"  {by:<{key_w}}{'requests':>9} {'input':>11} {'cached':>10} {'written':>9} "
        f"{'output':>10}  cost"
    )
    for g, r in zip(groups, rows, strict=True):
        t = g.totals
        label = str(r[by])
        cost = None if (t.unknown and t.unknown == t.requests) else t.cost_usd
        print(
            f"  {label:<{key_w}}{t.requests:>9,} {t.input_tokens:>11,} "
            f"{t.cached_input_tokens:>10,} {t.cache_write_tokens:>9,} {t.output_tokens:>10,}  "
            f"{_usd(cost, unknown=t.unknown if cost is not None else 0, local=t.all_local)}"
        )
    cost = None if (totals.unknown and totals.unknown == totals.requests) else totals.cost_usd
    print(
        f"  {'total':<{key_w}}{totals.requests:>9,} {totals.input_tokens:>11,} "
        f"{totals.cached_input_tokens:>10,} {totals.cache_write_tokens:>9,} "
        f"{totals.output_tokens:>10,}  "
        f"{_usd(cost, unknown=totals.unknown if cost is not None else 0)}"
    )
    if totals.saved_usd:
        print(f"  saved by caching: {_usd(totals.saved_usd)}")
    for r in rows:
        if r.get("price_hint"):
            _err(r["price_hint"])
    return 0


# ---------------------------------------------------------------- keys
def cmd_keys(args: argparse.Namespace, paths: Paths) -> int:
    """``parley keys set|clear|status``."""
    import json

    from parley.core.errors import ConfigError
    from parley.core.providers.catalog import load_catalog
    from parley.core.secrets import KeyringSecretStore, Secrets

    catalog = load_catalog(paths.user_models_file)
    secrets = Secrets(KeyringSecretStore())
    if args.keys_command == "status":
        rows = []
        for pid, info in catalog.providers.items():
            resolved = secrets.resolve(pid, env_var=info.key_env)
            rows.append(
                {
                    "provider": pid,
                    "has_key": resolved is not None,
                    "source": resolved.source if resolved else None,
                    "optional": info.key_optional,
                }
            )
        if args.json:
            print(json.dumps({"keyring": secrets.store.describe(), "providers": rows}))
        else:
            print(f"keyring: {secrets.store.describe()}")
            for r in rows:
                where = r["source"] or ("not needed" if r["optional"] else "no key")
                print(f"  {r['provider']:<18} {where}")
        return 0
    info = catalog.provider(args.provider)
    if args.keys_command == "clear":
        removed = secrets.clear(info.id)
        print(f"{info.label}: key removed" if removed else f"{info.label}: no stored key")
        return 0
    # set
    if sys.stdin is not None and not sys.stdin.isatty():
        raw = sys.stdin.buffer.read()
        try:
            value = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise ConfigError("The key on stdin is not valid UTF-8.") from None
    else:
        import getpass

        value = getpass.getpass(f"{info.label} API key (input hidden): ").strip()
    if not value:
        raise ConfigError("No key given; nothing was stored.")
    if any(c.isspace() for c in value) or len(value) > 4096:
        raise ConfigError("That does not look like an API key (spaces or too long); not stored.")
    secrets.save(info.id, value)
    print(f"{info.label}: key stored in {secrets.store.describe()}")
    return 0


# ---------------------------------------------------------------- models
def cmd_models(args: argparse.Namespace, paths: Paths) -> int:
    """``parley models``."""
    import json

    if args.remote:
        return _remote_models(args, paths)
    from parley.core.providers.catalog import load_catalog

    catalog = load_catalog(paths.user_models_file)
    _report_catalog_problems(catalog)
    if args.provider:
        catalog.provider(args.provider)
    rows = [
        {
            "id": m.id,
            "provider": m.provider,
            "label": m.label,
            "context_window": m.context_window,
            "max_output": m.max_output,
            "price_input_per_mtok": m.price_input,
            "price_output_per_mtok": m.price_output,
            "price_cached_input_per_mtok": m.price_cached_input,
            "price_cache_write_per_mtok": m.price_cache_write,
            "kind": m.kind,
        }
        for m in catalog.models.values()
        if not args.provider or m.provider == args.provider
    ]
    if args.json:
        print(json.dumps(rows))
        return 0

    def price(v: float | None) -> str:
        return "unknown" if v is None else f"${v:g}"

    print(f"{'model':<26} {'provider':<12} {'context':>9}  {'in/1M':>8} {'out/1M':>8}")
    for r in rows:
        ctx = f"{r['context_window']:,}" if r["context_window"] else "?"
        print(
            f"{r['id']:<26} {r['provider']:<12} {ctx:>9}  "
            f"{price(r['price_input_per_mtok']):>8} {price(r['price_output_per_mtok']):>8}"
        )
    return 0


def _remote_models(args: argparse.Namespace, paths: Paths) -> int:
    import asyncio
    import json

    services = _services(paths)
    provider = args.provider or "openai-compatible"
    if args.base_url:
        services.providers.overrides.setdefault(provider, {})["base_url"] = args.base_url

    async def run() -> list[Any]:
        try:
            return await services.providers.raw(provider).list_models()
        finally:
            await services.aclose()

    found = asyncio.run(run())
    if args.json:
        print(json.dumps([{"id": m.id, "provider": provider} for m in found]))
    else:
        for m in found:
            print(m.id)
    return 0


# ---------------------------------------------------------------- assets
def cmd_assets(args: argparse.Namespace, paths: Paths) -> int:
    """``parley assets download [--dir DIR]``."""
    from pathlib import Path

    from parley.core.assets import (
        BASE_URL_ENV,
        INT8_MODEL_ID,
        MODEL_ID,
        Fetched,
        Source,
        download_assets,
        make_int8,
    )
    from parley.core.display import format_size

    if args.dir:
        folder = Path(args.dir)
    elif os.environ.get("PARLEY_ASSETS"):
        folder = Path(os.environ["PARLEY_ASSETS"]).expanduser()
    else:
        folder = paths.data_dir / "assets"
    tty = sys.stderr is not None and sys.stderr.isatty()
    shown: dict[str, int] = {}

    def progress(source: Source, done: int, total: int) -> None:
        # A terminal gets one updating line; a log gets a line every quarter.
        step = 4 * done // total if total else 0
        if tty:
            of = f" of {format_size(total)} ({100 * done // total}%)" if total else ""
            sys.stderr.write(f"\r  {source.name}: {format_size(done)}{of}   ")
        elif done and shown.get(source.name) != step and step < 4:
            shown[source.name] = step
            of = f"/{format_size(total)}" if total else ""
            sys.stderr.write(f"  {source.name}: {format_size(done)}{of}\n")
        sys.stderr.flush()

    def done(result: Fetched) -> str:
        if result.status == "present":
            return f"{result.source.name}: already there, SHA-256 verified"
        size = format_size(result.size)
        return f"{result.source.name}: {size} downloaded, SHA-256 verified"

    print(f"assets folder: {folder}")
    results = download_assets(
        folder, base_url=os.environ.get(BASE_URL_ENV) or None, progress=progress
    )
    if tty:
        sys.stderr.write("\n")
    for r in results:
        print(done(r))
    made = make_int8(folder)  # a few seconds, no network
    print(f"{INT8_MODEL_ID}: " + (f"made from {MODEL_ID}" if made else "already there"))
    print(f"done: point PARLEY_ASSETS at {folder} (or copy it to another machine)")
    return 0


# ---------------------------------------------------------------- export / import
def cmd_export(args: argparse.Namespace, paths: Paths) -> int:
    """``parley export ID [--format md|json|html] [-o FILE]``."""
    from parley.core.store.conversations import ConversationStore
    from parley.core.transfer import export_text, read_conversation

    store = ConversationStore(paths.db_file)
    try:
        text = export_text(read_conversation(store, args.conversation), args.format)
    finally:
        store.close()
    if args.output is None:
        from parley.core.display import for_terminal

        sys.stdout.write(for_terminal(text, sys.stdout))  # no escape sequence on a terminal
        sys.stdout.flush()
        return 0
    _write_file(args.output, text)
    print(f"Exported conversation {args.conversation} to {args.output}.")
    return 0


def _write_file(path: str, text: str) -> None:
    """Write ``text`` (UTF-8) through a temporary file, so a failure leaves no half file."""
    import tempfile
    from pathlib import Path

    from parley.core.errors import ConfigError

    target = Path(path).expanduser()
    try:
        fd, tmp = tempfile.mkstemp(prefix=".parley-export-", dir=target.parent or Path("."))
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        os.replace(tmp, target)
    except OSError as exc:
        raise ConfigError(f"Cannot write {target}: {exc.strerror or exc}.") from None


def cmd_import(args: argparse.Namespace, paths: Paths) -> int:
    """``parley import FILE``: a JSON export becomes a new conversation."""
    from pathlib import Path

    from parley.core.display import for_terminal, safe_json
    from parley.core.errors import ConfigError
    from parley.core.store.conversations import ConversationStore
    from parley.core.transfer import MAX_IMPORT_BYTES, import_into, parse_import

    source = Path(args.file).expanduser()
    try:
        with source.open("rb") as fh:
            data = fh.read(MAX_IMPORT_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"Cannot read {source}: {exc.strerror or exc}.") from None
    conversation = parse_import(data)
    store = ConversationStore(paths.db_file)
    try:
        conv = import_into(store, conversation)
        count = store.count_messages(conv.id)
    finally:
        store.close()
    if args.json:
        print(safe_json({"id": conv.id, "title": conv.title, "messages": count}))
    else:
        line = f"Imported as conversation {conv.id}: {conv.title or 'New chat'} ({count} messages)"
        print(for_terminal(line, sys.stdout))
    return 0


# ---------------------------------------------------------------- conversations
def cmd_conversations(args: argparse.Namespace, paths: Paths) -> int:
    """``parley conversations``."""
    import datetime as dt

    from parley.core.display import for_terminal, safe_json
    from parley.core.store.conversations import ConversationStore

    store = ConversationStore(paths.db_file)
    try:
        rows = [
            {
                "id": c.id,
                "title": c.title,
                "updated_at": dt.datetime.fromtimestamp(c.updated_at, dt.UTC).isoformat(),
                "messages": store.count_messages(c.id),
            }
            for c in store.list(query=args.search)
        ]
    finally:
        store.close()
    if args.json:
        print(safe_json(rows))
    else:
        for r in rows:
            line = f"{r['id']:>5}  {r['updated_at'][:16].replace('T', ' ')}  {r['title']}"
            print(for_terminal(line, sys.stdout))
    return 0


if __name__ == "__main__":
    sys.exit(main())
