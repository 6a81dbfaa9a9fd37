"""The Knowledge panel and its controller: real store, real background indexing, real widgets.

Indexing runs through ``index_in_background`` (a worker process with the local MiniLM model
from ``PARLEY_ASSETS``), exactly as in the window; folders are small so a run takes seconds.
Async tests poll with ``asyncio.sleep`` (never ``qtbot.wait*`` on the qasync loop).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from parley.core.paths import default_paths
from parley.core.secrets import MemorySecretStore, Secrets
from parley.core.services import Services, build_services
from parley.core.settings import Settings
from parley.ui.knowledge.controller import KnowledgeController, summarize
from parley.ui.knowledge.panel import (
    FolderRow,
    KnowledgePanel,
    format_eta,
    format_when,
    skipped_rows,
)
from parley.ui.tasks import TaskSet
from tests.assets import need_minilm
from tests.ui.harness import until


def _doc(topic: str, paragraphs: int = 2) -> str:
    body = "\n\n".join(
        f"Paragraph {i} about {topic}. " + " ".join(f"{topic}{j}" for j in range(40))
        for i in range(paragraphs)
    )
    return f"# {topic.title()}\n\n{body}\n"


def _notes(tmp_path: Path) -> Path:
    root = tmp_path / "notes"
    root.mkdir()
    (root / "q3.md").write_text(
        "# Q3 plan\n\nWe ship the garden planner in September.\n\n"
        "## Budget\n\nThe budget for the quarter is 40,000 euros.\n"
    )
    (root / "tomatoes.txt").write_text("Tomatoes need full sun and deep watering twice a week.\n")
    (root / "blob.txt").write_bytes(b"\x00\x01binary\x00" * 100)
    return root


@dataclass
class Env:
    """A controller and a panel bound to real services (SQLite, Chroma, MiniLM)."""

    services: Services
    controller: KnowledgeController
    panel: KnowledgePanel
    tasks: TaskSet
    events: list[tuple[str, Any]] = field(default_factory=list)

    def folders(self) -> list[str]:
        return list(self.services.settings.current.knowledge.folders)

    def row(self, folder: Path) -> FolderRow | None:
        return next((r for r in self.panel.folder_rows() if r.path == folder.resolve()), None)


@asynccontextmanager
async def knowledge_env(qtbot: Any, settings: Settings | None = None) -> AsyncIterator[Env]:
    need_minilm()
    paths = default_paths()
    services = build_services(
        paths,
        settings or Settings(onboarded=True),
        Secrets(MemorySecretStore(), environ={}),
        environ={},
    )
    tasks = TaskSet()
    controller = KnowledgeController(
        paths=paths,
        settings=services.settings,
        secrets=services.secrets,
        tasks=tasks,
        feature=services.knowledge,
        opener=lambda _req: None,
    )
    panel = KnowledgePanel()
    qtbot.addWidget(panel)
    controller.bind_panel(panel)
    panel.resize(720, 560)
    panel.show()
    env = Env(services, controller, panel, tasks)
    controller.sig_index_progress.connect(lambda p: env.events.append(("progress", p)))
    controller.sig_index_finished.connect(lambda r, s: env.events.append(("finished", (r, s))))
    controller.sig_busy_changed.connect(lambda b: env.events.append(("busy", b)))

    try:
        yield env
    finally:
        await controller.shutdown()
        await tasks.cancel_all()
        await services.aclose()


def _status(env: Env, folder: Path) -> str | None:
    row = env.row(folder)
    return row.status if row is not None else None


def _indexer_children() -> list[Any]:
    return [p for p in multiprocessing.active_children() if p.name == "parley-indexer"]


# ---------------------------------------------------------------- the widget alone


def test_panel_rows_progress_confirmation_and_signals(qtbot, tmp_path) -> None:
    panel = KnowledgePanel()
    qtbot.addWidget(panel)
    panel.show()
    asked: list[str] = []
    removed: list[str] = []
    reindexed: list[str] = []
    added: list[str] = []
    cancelled: list[bool] = []
    panel.sig_skipped_requested.connect(asked.append)
    panel.sig_remove_requested.connect(removed.append)
    panel.sig_reindex_requested.connect(reindexed.append)
    panel.sig_add_requested.connect(added.append)
    panel.sig_cancel_requested.connect(lambda: cancelled.append(True))

    assert panel.empty_label.isVisible() and not panel.folders.isVisible()
    when = datetime.fromtimestamp(time.time() - 300, UTC)
    panel.set_folders(
        [
            FolderRow(Path("/data/notes"), 12, 340, 2, "indexed", when),
            FolderRow(Path("/data/gone"), status="missing"),
        ]
    )
    assert panel.folders.isVisible() and not panel.empty_label.isVisible()
    first = panel.folders.topLevelItem(0)
    assert [first.text(c) for c in range(5)] == ["notes", "12", "340", "2", "Indexed"]
    assert panel.folders.topLevelItem(1).text(4) == "Folder missing"
    # the first folder is selected and its skipped files are asked for
    assert panel.selected_folder() == "/data/notes" and asked == ["/data/notes"]
    assert "last indexed 5 min ago" in panel.detail_label.text()
    # a missing folder cannot be re-indexed, but it can be removed
    panel.select_folder("/data/gone")
    assert not panel.reindex_button.isEnabled() and panel.remove_button.isEnabled()
    panel.select_folder("/data/notes")
    QTest.mouseClick(panel.reindex_button, Qt.MouseButton.LeftButton)
    assert reindexed == ["/data/notes"]

    # progress: starting (busy bar), then numbers, then finished
    panel.set_starting(["/data/notes"])
    assert panel.progress.isVisible() and panel.progress_bar.maximum() == 0
    assert panel.progress_title.text() == "Indexing notes"

    @dataclass
    class P:
        files_done: int
        files_total: int
        chunks: int
        current: str | None
        eta_s: float | None
        phase: str = "indexing"

    panel.set_progress(P(3, 10, 42, "/data/notes/q3.md", 12.4))
    assert panel.progress_detail.text() == "3 of 10 files · 42 chunks · about 12 s left"
    assert (panel.progress_bar.value(), panel.progress_bar.maximum()) == (3, 10)
    assert panel.progress_current.full_text() == "notes/q3.md"  # relative to its folder
    QTest.mouseClick(panel.cancel_button, Qt.MouseButton.LeftButton)
    assert cancelled == [True]
    panel.set_progress(P(0, 0, 17, None, None, phase="rebuilding"))
    assert "Re-embedding" in panel.progress_detail.text()
    # A big file streams in batches: the run says how far into that file it is (issue 11).
    from parley.core.knowledge.indexer import IndexProgress

    panel.set_progress(
        IndexProgress(0, 1, 256, "/data/notes/export.txt", None, "indexing", 256, 10_000)
    )
    assert "this file: 256 of ~10,000 passages" in panel.progress_detail.text()
    panel.set_finished("Indexed 3 file(s) (42 passages) in 2 s.")
    assert not panel.progress.isVisible()

    # remove asks first, inline; Keep does nothing
    QTest.mouseClick(panel.remove_button, Qt.MouseButton.LeftButton)
    assert panel.confirm.isVisible()
    assert "340 indexed passages are deleted" in panel.confirm_label.text()
    assert "files on disk are not touched" in panel.confirm_label.text()
    QTest.mouseClick(panel.confirm_keep_button, Qt.MouseButton.LeftButton)
    assert not panel.confirm.isVisible() and removed == []
    QTest.mouseClick(panel.remove_button, Qt.MouseButton.LeftButton)
    QTest.mouseClick(panel.confirm_remove_button, Qt.MouseButton.LeftButton)
    assert removed == ["/data/notes"] and not panel.confirm.isVisible()

    # the re-index banner
    seen: list[bool] = []
    panel.sig_reindex_all_requested.connect(lambda: seen.append(True))
    assert not panel.banner.isVisible()
    panel.set_needs_reindex(True)
    assert panel.banner.isVisible()
    QTest.mouseClick(panel.reindex_now_button, Qt.MouseButton.LeftButton)
    assert seen == [True]
    panel.set_busy(True)
    assert not panel.reindex_now_button.isEnabled()

    # Add folder: a non-modal picker; choosing a folder emits it
    target = tmp_path / "papers"
    target.mkdir()
    dialog = panel.choose_folder()  # open() returned: nothing waits in a nested loop
    assert dialog.isVisible()
    dialog.setDirectory(str(tmp_path))
    dialog.selectFile(str(target))
    dialog.accept()
    assert added == [str(target)]
    assert panel.folder_dialog is None


def test_skipped_list_of_100k_files_filters_quickly(qtbot) -> None:
    panel = KnowledgePanel()
    qtbot.addWidget(panel)
    panel.show()
    panel.set_folders([FolderRow(Path("/big"), 5, 5, 100_000, "indexed")])
    reasons = ("binary file", "too large (60 MB; the limit is 50 MB)", "permission denied")
    items = [(Path(f"/big/dir{i % 97}/file{i}.bin"), reasons[i % 3]) for i in range(100_000)]
    rows = skipped_rows(Path("/big"), items)  # the controller does this in a worker thread
    t0 = time.perf_counter()
    panel.set_skipped("/big", rows)  # the part on the GUI thread
    shown_s = time.perf_counter() - t0
    assert panel.skipped_model.rowCount() == 100_000
    assert panel.skipped_title.text() == "Skipped files in big (100,000)"
    assert panel.skipped_model.row(1) == ("dir1/file1.bin", reasons[1])
    # a stale answer for another folder is ignored
    panel.set_skipped("/elsewhere", [(Path("/elsewhere/x"), "binary file")])
    assert panel.skipped_model.rowCount() == 100_000

    qtbot.keyClicks(panel.skipped_filter, "PERMISSION")
    qtbot.waitUntil(lambda: panel.skipped_model.rowCount() == 33_333, timeout=3000)
    assert panel.skipped_title.text() == "Skipped files in big (33,333 of 100,000)"
    t0 = time.perf_counter()
    panel.skipped_model.set_filter("file4242.bin")
    filter_s = time.perf_counter() - t0
    assert [panel.skipped_model.row(i)[0] for i in range(panel.skipped_model.rowCount())] == [
        "dir71/file4242.bin"
    ]
    # 100k rows: shown and filtered without freezing the window (generous bounds)
    assert shown_s < 0.3 and filter_s < 0.3, (shown_s, filter_s)


def test_formatting() -> None:
    assert format_eta(None) == ""
    assert format_eta(0.2) == "almost done"
    assert format_eta(12.4) == "about 12 s left"
    assert format_eta(150) == "about 2 min left"
    assert format_eta(7260) == "about 2 h 1 min left"
    now = time.time()
    assert format_when(None) == "never"
    assert format_when(datetime.fromtimestamp(now - 10, UTC), now) == "just now"
    assert format_when(datetime.fromtimestamp(now - 7300, UTC), now) == "2 h ago"


# ---------------------------------------------------------------- real indexing


@pytest.mark.slow
async def test_add_index_show_skipped_and_remove_a_real_folder(qtbot, tmp_path) -> None:
    notes = _notes(tmp_path)
    async with knowledge_env(qtbot) as env:
        panel, ctl = env.panel, env.controller
        # Add folder… through the picker, as a person would
        dialog = panel.choose_folder()
        dialog.setDirectory(str(tmp_path))
        dialog.selectFile(str(notes))
        dialog.accept()
        assert env.folders() == [str(notes.resolve())]
        assert ctl.is_busy() and panel.progress.isVisible()
        assert ("busy", True) in env.events
        await until(lambda: ctl.rows(), timeout=60, what="the folder row")  # opens the store
        assert env.row(notes) is not None
        await until(lambda: not ctl.is_busy(), timeout=120, what="indexing to finish")
        progress = [p for k, p in env.events if k == "progress" and p.phase == "indexing"]
        assert progress and progress[-1].files_total == 3 and progress[-1].files_done == 3
        # the worker sends at most ~20 events a second: some files may not be named
        assert all(p.current and Path(p.current).parent == notes.resolve() for p in progress)
        report, summary = next(v for k, v in env.events if k == "finished")
        assert report.files_indexed == 2 and report.chunks >= 2
        assert summary.startswith("Indexed 2 file(s)") and "skipped 1" in summary
        await until(lambda: _status(env, notes) == "indexed", timeout=30, what="indexed row")
        row = env.row(notes)
        assert row is not None and (row.files, row.skipped) == (2, 1) and row.chunks >= 2
        assert panel.status_text(notes.resolve()) == "Indexed"
        assert not panel.progress.isVisible()
        # the skipped list, with its reason, filterable
        await until(lambda: panel.skipped_model.rowCount() == 1, 30, "the skipped list")
        assert panel.skipped_model.row(0) == ("blob.txt", "binary file")
        panel.skipped_model.set_filter("pdf")
        assert panel.skipped_model.rowCount() == 0
        panel.skipped_model.set_filter("")
        # this process's store sees what the worker process wrote
        grounder = ctl.grounder
        assert grounder is not None
        hits = await asyncio.to_thread(grounder.retriever.search, "quarter budget euros", 1)
        assert hits and hits[0].path.name == "q3.md"

        # Remove… asks, then removes chunks and the folder from the settings
        panel.select_folder(notes.resolve())
        QTest.mouseClick(panel.remove_button, Qt.MouseButton.LeftButton)
        QTest.mouseClick(panel.confirm_remove_button, Qt.MouseButton.LeftButton)
        await until(lambda: not panel.folder_rows(), timeout=30, what="the row to go")
        assert env.folders() == []
        store = ctl.store
        assert store is not None and store.chunk_count() == 0 and store.roots() == []
        assert panel.empty_label.isVisible()


N_SMALL = 80


@pytest.mark.slow
async def test_cancel_a_real_background_index_then_finish_it(qtbot, tmp_path) -> None:
    big = tmp_path / "big"
    big.mkdir()
    # Many small files: loading and chunking them one by one keeps the worker busy for a
    # while after the first file is reported, so Cancel lands mid-run; they embed quickly.
    for i in range(N_SMALL):
        (big / f"note{i:03d}.md").write_text(f"# Note {i}\n\nA short note about subject {i}.\n")
    async with knowledge_env(qtbot) as env:
        panel, ctl = env.panel, env.controller
        ctl.add_folders([big])
        await until(
            lambda: any(k == "progress" and p.files_done >= 1 for k, p in env.events),
            timeout=60,
            what="the first indexed file",
        )
        assert panel.progress.isVisible() and f"of {N_SMALL} files" in panel.progress_detail.text()
        assert panel.status_text(big.resolve()) == "Indexing…"
        QTest.mouseClick(panel.cancel_button, Qt.MouseButton.LeftButton)
        await until(lambda: not ctl.is_busy(), timeout=30, what="the run to stop")
        assert _indexer_children() == []
        await until(lambda: _status(env, big) == "incomplete", 30, "an incomplete row")
        row = env.row(big)
        assert row is not None and row.files < N_SMALL
        assert panel.status_text(big.resolve()) == "Incomplete"
        # Re-index finishes the job, only the files not done yet
        done_before = row.files
        env.events.clear()
        panel.select_folder(big.resolve())
        QTest.mouseClick(panel.reindex_button, Qt.MouseButton.LeftButton)
        await until(lambda: not ctl.is_busy() and env.events, timeout=120, what="the second run")
        await until(lambda: _status(env, big) == "indexed", timeout=30, what="indexed row")
        report, _ = next(v for k, v in env.events if k == "finished")
        assert report.files_indexed == N_SMALL - done_before
        row = env.row(big)
        assert row is not None and row.files == N_SMALL


async def test_model_switch_asks_for_a_reindex(qtbot, tmp_path) -> None:
    notes = _notes(tmp_path)
    async with knowledge_env(qtbot) as env:
        ctl, panel = env.controller, env.panel
        grounder = await ctl.ensure_attached()
        assert grounder is not None
        from parley.core.knowledge.indexer import Indexer

        store = grounder.retriever.store
        await asyncio.to_thread(Indexer(store).index, [notes])
        await ctl.refresh()
        assert not panel.banner.isVisible()
        # switching the embedding model: the store re-opens for the new model, whose vectors
        # do not exist yet
        env.services.secrets.save("openai", "sk-test", session_only=True)
        s = env.services.settings.current
        other = s.knowledge.model_copy(update={"embedding_model": "openai:text-embedding-3-small"})
        env.services.settings.update(s.model_copy(update={"knowledge": other}))
        await until(lambda: panel.banner.isVisible(), timeout=30, what="the re-index banner")
        assert ctl.needs_reindex()
        assert ctl.grounder is not None and ctl.grounder is not grounder
        assert env.services.knowledge.grounder is ctl.grounder  # the chat grounds through it
        row = env.row(notes)
        assert row is not None and row.status == "needs-reindex"
        assert panel.status_text(notes.resolve()) == "Needs re-index"
        # and back: the local vectors are still there
        env.services.settings.update(s)
        await until(lambda: not panel.banner.isVisible(), timeout=30, what="the banner to go")
        row = env.row(notes)
        assert row is not None and row.status == "indexed"


async def test_folders_that_are_not_folders_are_refused(qtbot, tmp_path) -> None:
    afile = tmp_path / "a.txt"
    afile.write_text("x")
    async with knowledge_env(qtbot) as env:
        notices: list[tuple[str, str]] = []
        env.controller.sig_notice.connect(lambda m, k: notices.append((m, k)))
        added = env.controller.add_folders([afile, tmp_path / "nope"])
        assert added == [] and env.folders() == []
        assert notices and "not a folder" in notices[0][0] and notices[0][1] == "warning"
        assert not env.controller.is_busy()


def test_summaries() -> None:
    from parley.core.knowledge.indexer import IndexReport

    assert summarize(IndexReport()) == "Up to date: nothing changed."
    rep = IndexReport(files_indexed=3, chunks=40, seconds=2.2, files_skipped=[(Path("x"), "y")])
    assert summarize(rep) == "Indexed 3 file(s) (40 passages), skipped 1 in 2 s."
    assert summarize(IndexReport(files_indexed=1, cancelled=True)).startswith("Stopped after 1")


async def test_an_unreachable_team_server_is_reported_in_one_line(qtbot) -> None:
    import socket

    from parley.core.settings import ChromaServerSettings, KnowledgeSettings

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ChromaServerSettings(host="127.0.0.1", port=port)
    settings = Settings(onboarded=True, knowledge=KnowledgeSettings(chroma_server=server))
    async with knowledge_env(qtbot, settings) as env:
        notices: list[tuple[str, str]] = []
        env.controller.sig_notice.connect(lambda m, k: notices.append((m, k)))
        loop = asyncio.get_running_loop()
        unexpected: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda _loop, ctx: unexpected.append(ctx))
        try:
            assert await env.controller.ensure_attached() is None
            await asyncio.sleep(0.05)  # task-done callbacks run
        finally:
            loop.set_exception_handler(None)
        assert unexpected == []  # an expected failure, not a bug report
        assert notices and notices[0][1] == "error"
        message = notices[0][0]
        assert f"127.0.0.1:{port}" in message and "\n" not in message
        assert env.panel.error_label.isVisible() and env.panel.error_label.text()
        assert env.services.knowledge.grounder is None  # answers go on without documents
