"""Walking folders: default skips, ignore files, symlinks, odd names, and 100,000 files."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from parley.core.errors import ConfigError
from parley.core.knowledge.sources import FolderUnavailable, Skipped, SourceFile, walk_folder
from tests.unprivileged import denies_reads, run_as_nobody, shared_tmp


def touch(root: Path, *rels: str, text: str = "x") -> None:
    for rel in rels:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def walk(root: Path, **kwargs) -> tuple[list[str], dict[str, str]]:
    """(indexed files, {skipped path: reason}) as paths relative to the resolved root."""
    real = root.resolve()
    files: list[str] = []
    skipped: dict[str, str] = {}
    for item in walk_folder(root, **kwargs):
        rel = item.path.relative_to(real).as_posix()
        if isinstance(item, SourceFile):
            files.append(rel)
        else:
            skipped[rel] = item.reason
    return files, skipped


def test_default_skips(tmp_path: Path) -> None:
    touch(
        tmp_path,
        "notes.md",
        "docs/guide.rst",
        ".hidden.md",
        ".env",
        ".config/settings.toml",
        ".git/HEAD.txt",
        "node_modules/pkg/readme.md",
        "__pycache__/m.py",
        "build/out.txt",
        "dist/pkg.txt",
        "target/debug/x.rs",
        ".tox/py311/log.txt",
        ".mypy_cache/3.11/x.json",
        "sub/build/deep.txt",
        "myenv/pyvenv.cfg",
        "myenv/lib/site.py",
        "venv/lib/x.py",
        "venv/pyvenv.cfg",
        "conda/conda-meta/history",
        "conda/lib/y.py",
        "env/notes.txt",  # a folder named env without pyvenv.cfg is ordinary
    )
    files, skipped = walk(tmp_path)
    assert files == ["notes.md", "docs/guide.rst", "env/notes.txt"]
    assert skipped == {}


def test_noise_is_silent_but_unknown_types_are_reported(tmp_path: Path) -> None:
    touch(
        tmp_path,
        "photo.PNG",
        "song.mp3",
        "lib.so",
        "data.sqlite",
        "package-lock.json",
        "app.min.js",
        "notes.md~",
        "slides.pptx",
        "book.epub",
        "blob",
        "README",
        "Makefile",
        "main.go",
    )
    files, skipped = walk(tmp_path)
    assert files == ["Makefile", "README", "main.go"]
    assert skipped == {
        "blob": "unsupported file type (no extension)",
        "book.epub": "unsupported file type (.epub)",
        "slides.pptx": "unsupported file type (.pptx)",
    }


def test_gitignore_and_parleyignore_nested(tmp_path: Path) -> None:
    touch(
        tmp_path,
        "keep.md",
        "debug.log",
        "important.log",
        "drafts/a.md",
        "docs/public.md",
        "docs/secret.md",
        "docs/api/gen.md",
        "docs/api/hand.md",
        "src/tmp/x.py",
        "src/main.py",
    )
    (tmp_path / ".gitignore").write_text("# comment\n*.log\n!important.log\ndrafts/\ntmp/\n")
    (tmp_path / "docs" / ".gitignore").write_text("secret.md\napi/*\n!api/hand.md\n")
    (tmp_path / "docs" / ".parleyignore").write_text("!secret.md\npublic.md\n")
    files, skipped = walk(tmp_path)
    assert files == [
        "important.log",
        "keep.md",
        "docs/secret.md",
        "docs/api/hand.md",
        "src/main.py",
    ]
    assert skipped == {}


def test_bad_line_in_ignore_file_keeps_the_others(tmp_path: Path) -> None:
    touch(tmp_path, "a.md", "b.log", "c.md")
    (tmp_path / ".gitignore").write_text("*.log\n!\nx/[z-a]\nc.md\n")
    files, _ = walk(tmp_path)
    assert files == ["a.md"]


def test_extra_ignores_win(tmp_path: Path) -> None:
    touch(tmp_path, "a.md", "b.md", "logs/x.txt", "sub/c.md")
    (tmp_path / ".gitignore").write_text("b.md\n")
    files, _ = walk(tmp_path, extra_ignores=["!b.md", "logs/", "sub/*.md"])
    assert files == ["a.md", "b.md"]


def test_negation_can_bring_back_a_default_skipped_folder(tmp_path: Path) -> None:
    touch(tmp_path, ".github/CONTRIBUTING.md", ".git/config.txt", "build/howto.md")
    (tmp_path / ".parleyignore").write_text("!.github/\n!build/\n")
    files, _ = walk(tmp_path)
    assert files == [".github/CONTRIBUTING.md", "build/howto.md"]


def test_invalid_extra_pattern_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        walk_folder(tmp_path, extra_ignores=["a/**b/[z-a]"])


def test_source_file_fields(tmp_path: Path) -> None:
    touch(tmp_path, "a/b.txt", text="hello")
    link = tmp_path / "link-to-root"
    link.symlink_to(tmp_path, target_is_directory=True)
    (item,) = list(walk_folder(link))
    st = (tmp_path / "a" / "b.txt").stat()
    assert item == SourceFile(
        path=tmp_path.resolve() / "a" / "b.txt",
        root=tmp_path.resolve(),
        size=5,
        mtime_ns=st.st_mtime_ns,
    )


def test_missing_or_wrong_root(tmp_path: Path) -> None:
    with pytest.raises(FolderUnavailable, match="Folder not found"):
        walk_folder(tmp_path / "nope")
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(FolderUnavailable, match="Not a folder"):
        walk_folder(f)


def test_symlinks(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    root = tmp_path / "root"
    touch(outside, "secret.md")
    touch(root, "docs/a.md", ".stash/kept.md", "hidden-target/.x")
    (root / "loop").symlink_to(root, target_is_directory=True)  # points back up: a loop
    (root / "docs" / "again").symlink_to(root / "docs", target_is_directory=True)
    (root / "out-dir").symlink_to(outside, target_is_directory=True)
    (root / "out-file.md").symlink_to(outside / "secret.md")
    (root / "dup.md").symlink_to(root / "docs" / "a.md")  # same file as docs/a.md
    (root / "stash-link").symlink_to(
        root / ".stash", target_is_directory=True
    )  # into a hidden folder
    (root / "broken.md").symlink_to(root / "missing.md")
    (root / "self.md").symlink_to(root / "self.md")
    t0 = time.monotonic()
    files, skipped = walk(root)
    assert time.monotonic() - t0 < 5
    # Real paths win; a link into a skipped folder is followed once; nothing leaves root.
    assert files == ["docs/a.md", "stash-link/kept.md"]
    assert skipped == {
        "out-dir": "symlink points outside the folder",
        "out-file.md": "symlink points outside the folder",
        "broken.md": "broken symlink",
        "self.md": "symlink loop",
    }


def test_symlinked_dir_reached_only_through_the_link(tmp_path: Path) -> None:
    root = tmp_path / "root"
    touch(root, "node_modules/mine/notes.md")
    (root / "notes").symlink_to(root / "node_modules" / "mine", target_is_directory=True)
    (root / "notes2").symlink_to(root / "node_modules" / "mine", target_is_directory=True)
    files, _ = walk(root)
    assert files == ["notes/notes.md"]  # once, though two links lead there


def test_unreadable_folder_is_reported(tmp_path: Path) -> None:
    root = tmp_path if denies_reads() else shared_tmp()  # root reads anything: ask as nobody
    touch(root, "ok.md", "locked/inside.md")
    locked = root / "locked"
    locked.chmod(0)
    try:
        if denies_reads():
            files, skipped = walk(root)
        else:
            code = (
                "import json\nfrom pathlib import Path\n"
                "from parley.core.knowledge.sources import SourceFile, walk_folder\n"
                f"root = Path({str(root)!r})\n"
                "items = list(walk_folder(root))\n"
                "print(json.dumps([[i.path.relative_to(root).as_posix(),"
                " None if isinstance(i, SourceFile) else i.reason] for i in items]))\n"
            )
            items = run_as_nobody(code)
            files = [p for p, why in items if why is None]
            skipped = {p: why for p, why in items if why is not None}
        assert files == ["ok.md"]
        assert skipped == {"locked": "permission denied"}
    finally:
        locked.chmod(0o700)
        if root != tmp_path:
            shutil.rmtree(root)


def test_non_ascii_and_255_byte_names(tmp_path: Path) -> None:
    long_name = "é" * 126 + ".md"
    assert len(long_name.encode()) == 255
    names = ["Résumé – Zürich.md", "東京/メモ.txt", long_name, "x" * 252 + ".py", "emoji 🚀.md"]
    touch(tmp_path, *names)
    files, skipped = walk(tmp_path)
    assert sorted(files) == sorted(names)
    assert skipped == {}


@pytest.mark.skipif(os.name != "posix", reason="only POSIX names can hold undecodable bytes")
def test_names_that_are_not_utf8_are_walked_like_any_other(tmp_path: Path) -> None:
    # A name that is not UTF-8 must not hide its file, nor a folder its contents (issue 11).
    raw = os.fsencode(tmp_path)
    os.close(os.open(raw + b"/caf\xe9.md", os.O_CREAT | os.O_WRONLY, 0o600))
    os.mkdir(raw + b"/d\xff")
    os.close(os.open(raw + b"/d\xff/inner.md", os.O_CREAT | os.O_WRONLY, 0o600))
    touch(tmp_path, "fine.md")
    items = list(walk_folder(tmp_path))
    assert not [i for i in items if isinstance(i, Skipped)]
    found = sorted(os.fsencode(i.path)[len(raw) :] for i in items if isinstance(i, SourceFile))
    assert found == [b"/caf\xe9.md", b"/d\xff/inner.md", b"/fine.md"]


def test_fifo_is_not_a_document(tmp_path: Path) -> None:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    os.mkfifo(tmp_path / "pipe.txt")
    touch(tmp_path, "real.txt")
    files, skipped = walk(tmp_path)
    assert files == ["real.txt"]
    assert skipped == {}


@pytest.mark.slow
def test_100k_tiny_files(tmp_path: Path) -> None:
    """Creating them is the slow part (8x faster on tmpfs); the walk is timed and printed."""
    shm = Path("/dev/shm")
    base = Path(tempfile.mkdtemp(dir=shm)) if shm.is_dir() and os.access(shm, os.W_OK) else tmp_path
    try:
        for d in range(100):
            folder = base / f"d{d:02}"
            folder.mkdir()
            for i in range(1000):
                fd = os.open(folder / f"f{i:03}.txt", os.O_CREAT | os.O_WRONLY, 0o644)
                os.write(fd, b"x")
                os.close(fd)
        (base / ".gitignore").write_text("d9*/\n!d99/\n*7.txt\n")
        t0 = time.perf_counter()
        c0 = time.process_time()
        n = sum(1 for item in walk_folder(base) if isinstance(item, SourceFile))
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        print(f"walked 100,000 files ({n} kept) in {wall:.2f} s wall, {cpu:.2f} s CPU")
        assert n == (100 - 9) * 900  # d90..d98 ignored, d99 re-included, every *7.txt ignored
        assert cpu < 30  # a loose guard against a pathological slowdown, not a benchmark
    finally:
        if base != tmp_path:
            shutil.rmtree(base, ignore_errors=True)
