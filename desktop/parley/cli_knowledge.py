"""``parley index`` and ``parley search``: the knowledge base from the command line.

``add_commands(subparsers)`` adds both to ``parley``'s argparse; each handler is
``handler(args, paths) -> int`` (0 ok, 2 error with one line on stderr). Heavy modules
(chromadb, onnxruntime) are imported inside the handlers, so ``parley --help`` stays fast.

File names and document text are untrusted: on a terminal they are shown through
``display.safe_text`` (no escape sequence reaches it); ``--json`` stays exact
(``display.safe_json``), with paths in their ``display.path_text`` form.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from parley.core.display import for_terminal, location_text, path_text, safe_json
from parley.core.errors import ParleyError
from parley.core.paths import Paths

SNIPPET_CHARS = 300
"""Longest snippet printed per search result."""


def add_commands(subparsers: Any) -> None:
    """Add ``index`` and ``search`` to an argparse subparsers object."""
    p = subparsers.add_parser(
        "index",
        help="add folders or files to the knowledge base and index them",
        description="Add folders (or single files) to the knowledge base and bring the index "
        "up to date; unchanged files are skipped. Progress goes to stderr.",
    )
    p.add_argument("paths", nargs="*", type=Path, metavar="PATH", help="folders or files")
    p.add_argument("--remove", type=Path, metavar="PATH", help="forget a folder and its chunks")
    p.add_argument("--status", action="store_true", help="show the folders and their state")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    p.add_argument(
        "--no-wait", action="store_true", help="fail instead of waiting for another indexer"
    )
    p.set_defaults(func=run_index)

    s = subparsers.add_parser(
        "search",
        help="search the knowledge base",
        description="Hybrid (meaning + keyword) search over the indexed folders.",
    )
    s.add_argument("query", help="what to look for, in your own words")
    s.add_argument("-k", type=int, default=5, help="number of results (default 5)")
    s.add_argument(
        "--folder", type=Path, action="append", metavar="PATH", help="only below this folder"
    )
    s.add_argument(
        "--kind", action="append", metavar="KIND", help="only this file kind (markdown, pdf, ...)"
    )
    s.add_argument("--mode", choices=("hybrid", "dense", "keyword"), default="hybrid")
    s.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    s.set_defaults(func=run_search)


def _fail(message: str) -> int:
    print(f"parley: {_err_text(message)}", file=sys.stderr)
    return 2


def _out_text(text: str) -> str:
    return for_terminal(text, sys.stdout)


def _err_text(text: str) -> str:
    return for_terminal(text, sys.stderr)


def _open_store(paths: Paths) -> Any:
    """The store the settings describe (embedding model, embedded or Chroma server)."""
    from parley.core.knowledge.feature import open_store
    from parley.core.secrets import KeyringSecretStore, Secrets
    from parley.core.settings import load_settings

    return open_store(paths, load_settings(paths.settings_file), Secrets(KeyringSecretStore()))


def _remember_folders(
    paths: Paths, *, add: list[Path] | None = None, remove: Path | None = None
) -> None:
    """Keep ``settings.knowledge.folders`` (the folders added to Parley) in step.

    Those folders also confine the file tools, so indexing a folder from the command line
    makes it readable by ``parley ask --tools`` too, as it would be from the window.
    """
    from parley.core.settings import SettingsStore

    store = SettingsStore(paths.settings_file)
    s = store.current
    folders = list(s.knowledge.folders)
    for p in add or []:
        folder = str(p.expanduser().resolve())
        if path_text(folder) != folder:
            # settings.toml is UTF-8 text: such a folder stays indexed and searchable, but is
            # not remembered as a folder the tools may read (pass it with --folder instead).
            print(
                _err_text(
                    f"parley: note: {folder} is indexed, but its name is not valid UTF-8, so it "
                    "is not added to the folders the tools may read (use --folder for them)."
                ),
                file=sys.stderr,
            )
            continue
        if Path(folder).is_dir() and folder not in folders:
            folders.append(folder)
    if remove is not None:
        gone = str(remove.expanduser().resolve())
        folders = [f for f in folders if f != gone]
    if folders != s.knowledge.folders:
        store.update(
            s.model_copy(update={"knowledge": s.knowledge.model_copy(update={"folders": folders})})
        )


def run_index(args: argparse.Namespace, paths: Paths) -> int:
    """``parley index PATH... | --remove PATH | --status``."""
    modes = sum([bool(args.paths), args.remove is not None, bool(args.status)])
    if modes != 1:
        return _fail("give folders to index, or --remove PATH, or --status (exactly one)")
    try:
        store = _open_store(paths)
    except ParleyError as exc:
        return _fail(exc.user_message)
    try:
        if args.status:
            return _status(store, as_json=args.json)
        if args.remove is not None:
            removed = store.remove_root(args.remove)
            _remember_folders(paths, remove=args.remove)
            if args.json:
                print(safe_json({"removed": path_text(args.remove.resolve()), "chunks": removed}))
            else:
                print(_err_text(f"Removed {args.remove} ({removed} chunks)."), file=sys.stderr)
            return 0
        from parley.core.settings import load_settings

        ks = load_settings(paths.settings_file).knowledge
        code = _index(
            store,
            args.paths,
            as_json=args.json,
            wait=not args.no_wait,
            limits={
                "loader_timeout_s": ks.parse_timeout_s,
                "max_file_bytes": ks.max_file_mb * 2**20,
                "max_chunks_per_file": ks.max_chunks_per_file,
            },
        )
        if code == 0:
            _remember_folders(paths, add=list(args.paths))
        return code
    except ParleyError as exc:
        return _fail(exc.user_message)
    except KeyboardInterrupt:
        return _fail("interrupted (what was indexed so far is kept)")
    finally:
        store.close()


def _index(
    store: Any,
    targets: list[Path],
    *,
    as_json: bool,
    wait: bool,
    limits: dict[str, Any] | None = None,
) -> int:
    import threading
    import time

    from parley.core.knowledge.indexer import Indexer, IndexProgress

    for t in targets:
        if not t.exists() and store.root_for(t) is None:
            return _fail(f"no such folder or file: {t}")
    interactive = sys.stderr.isatty()
    last_len = [0]
    last_inside = [0.0]
    told_why = [False]

    def progress(p: IndexProgress) -> None:
        inside = p.phase == "indexing" and p.file_chunks_total > 0 and p.current
        if p.phase == "rebuilding":
            if not told_why[0]:
                told_why[0] = True
                why = f" because {p.reason}" if p.reason else ""
                if interactive and last_len[0]:
                    sys.stderr.write("\n")
                    last_len[0] = 0
                sys.stderr.write(_err_text(f"rebuilding the vector index{why}") + "\n")
            line = f"re-embedding stored passages: {p.chunks} done"
        elif p.phase == "scanning":
            line = "scanning..."
        elif p.files_total == 0:
            return  # nothing to index: the summary says so ("0/0 files" told nothing)
        else:
            eta = f", about {p.eta_s:.0f} s left" if p.eta_s else ""
            line = f"{p.files_done}/{p.files_total} files, {p.chunks} chunks{eta}"
            if inside:
                line += (
                    f"; {Path(str(p.current)).name}: {p.file_chunks_done} of "
                    f"~{p.file_chunks_total} passages"
                )
        if interactive:
            sys.stderr.write("\r" + line.ljust(last_len[0]))
            last_len[0] = len(line)
        elif p.files_done == p.files_total or p.phase != "indexing":
            sys.stderr.write(line + "\n")
        elif inside and time.monotonic() - last_inside[0] >= 2.0:
            # Inside a big file: a line every few seconds, so a log shows it is moving.
            last_inside[0] = time.monotonic()
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    cancel = threading.Event()
    try:
        report = Indexer(store, **(limits or {})).index(
            targets, progress=progress, cancel=cancel, wait_for_lock=wait
        )
    finally:
        if interactive and last_len[0]:
            sys.stderr.write("\n")
    if as_json:
        print(
            safe_json(
                {
                    "files_indexed": report.files_indexed,
                    "files_unchanged": report.files_unchanged,
                    "files_removed": report.files_removed,
                    "files_skipped": [
                        {"path": path_text(p), "reason": r} for p, r in report.files_skipped
                    ],
                    "files_capped": [
                        {"path": path_text(p), "reason": r} for p, r in report.files_capped
                    ],
                    "chunks": report.chunks,
                    "embedded": report.embedded,
                    "seconds": round(report.seconds, 3),
                    "timings": report.timings,
                }
            )
        )
    else:
        print(_summary(report), file=sys.stderr)
        for p, reason in report.files_skipped[:20]:
            print(_err_text(f"  skipped {p}: {reason}"), file=sys.stderr)
        for p, reason in report.files_capped[:20]:
            print(_err_text(f"  only partly indexed {p}: {reason}"), file=sys.stderr)
    return 0


def _summary(report: Any) -> str:
    """One line that says what the run did (and, when it did nothing, that all is current)."""
    skipped = len(report.files_skipped)
    if not (report.cancelled or report.files_indexed or report.files_removed or report.chunks):
        files = report.files_unchanged
        return (
            f"Nothing changed: {files} {'file' if files == 1 else 'files'} up to date"
            + (f", {skipped} skipped" if skipped else "")
            + f" (checked in {report.seconds:.1f} s)."
        )
    return (
        f"{'Stopped after indexing' if report.cancelled else 'Indexed'} "
        f"{report.files_indexed} files ({report.chunks} chunks), "
        f"{report.files_unchanged} unchanged, {report.files_removed} removed, "
        f"{skipped} skipped in {report.seconds:.1f} s."
    )


def _status(store: Any, *, as_json: bool) -> int:
    roots = store.roots()
    if as_json:
        print(
            safe_json(
                {
                    "needs_reindex": store.needs_reindex,
                    "roots": [
                        {
                            "path": path_text(r.path),
                            "files": r.files,
                            "chunks": r.chunks,
                            "skipped": r.skipped,
                            "status": r.status,
                            "last_indexed": r.last_indexed.isoformat() if r.last_indexed else None,
                        }
                        for r in roots
                    ],
                }
            )
        )
        return 0
    if not roots:
        print("No folders yet: add one with `parley index PATH`.")
    for r in roots:
        when = r.last_indexed.strftime("%Y-%m-%d %H:%M") if r.last_indexed else "never"
        print(
            _out_text(
                f"{r.path}  {r.status}  {r.files} files, {r.chunks} chunks, "
                f"{r.skipped} skipped, last indexed {when}"
            )
        )
    return 0


def run_search(args: argparse.Namespace, paths: Paths) -> int:
    """``parley search QUERY [-k N] [--folder PATH] [--json]``."""
    if args.k < 1:
        return _fail("-k must be at least 1")
    if not args.query.strip():
        return _fail("the query is empty")
    try:
        from parley.core.knowledge.retrieval import Retriever

        store = _open_store(paths)
    except ParleyError as exc:
        return _fail(exc.user_message)
    try:
        hits = Retriever(store).search(
            args.query, args.k, folders=args.folder, kinds=args.kind, mode=args.mode
        )
    except ParleyError as exc:
        return _fail(exc.user_message)
    finally:
        store.close()
    results: list[dict[str, Any]] = []
    for h in hits:
        if h.page is not None:
            location: dict[str, Any] = {"page": h.page}
        else:
            location = {"line_start": h.line_start, "line_end": h.line_end}
        snippet = " ".join(h.text.split())
        if len(snippet) > SNIPPET_CHARS:
            snippet = snippet[: SNIPPET_CHARS - 1] + "…"
        results.append(
            {
                "path": path_text(h.path),
                "score": round(h.score, 6),
                "location": location,
                "heading": h.heading,
                "snippet": snippet,
            }
        )
    if args.json:
        print(safe_json({"results": results}))
        return 0
    if not results:
        print("No results.")
    for i, r in enumerate(results, 1):
        loc = r["location"]
        where = location_text(loc.get("page"), loc.get("line_start"), loc.get("line_end"))
        head = f" — {r['heading']}" if r["heading"] else ""
        print(_out_text(f"{i}. {r['path']} ({where}){head}\n   {r['snippet']}"))
    return 0
