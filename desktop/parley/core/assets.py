"""The offline assets: tiktoken's BPE files and the MiniLM embedding model, and their download.

Two libraries Parley uses fetch files on first use: tiktoken its BPE tables, Chroma's ONNX
embedding function the all-MiniLM-L6-v2 model. An *assets folder* holds them so Parley (and a
build of the packaged app) needs no network::

    tiktoken/<sha1 of the file's URL>      tiktoken's cache layout (TIKTOKEN_CACHE_DIR)
    models/all-MiniLM-L6-v2/onnx/          model.onnx, tokenizer.json, vocab.txt, config.json,
                                           special_tokens_map.json, tokenizer_config.json
    models/all-MiniLM-L6-v2-int8/onnx/     the same six files, model.onnx with int8 weights
                                           (made here from the fp32 one; opt-in model)
    SHA256SUMS                             ``sha256sum -c`` format, written by the download

``parley assets download [--dir DIR]`` fills such a folder on a machine with internet, from
the same places the libraries themselves download from, checking every download against a
SHA-256 pinned here (tiktoken's own expected hashes; Chroma's hash of its model archive).
Nothing is kept that did not match: a failed file leaves no partial copy behind. The int8
model is then made from the verified fp32 one on this machine (a few seconds, no network;
``parley.core.knowledge.embeddings.make_int8_model``); it has no pinned hash, since its bytes
depend on the onnx/onnxruntime versions that made it.

``PARLEY_ASSETS_BASE_URL`` (tests only) replaces the scheme and host of every source URL, so
the tests can serve the files from a loopback server; the pinned hashes still apply.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from parley.core.errors import ParleyError

BASE_URL_ENV = "PARLEY_ASSETS_BASE_URL"
"""Tests only: serve every source from this base URL (path kept) instead of its real host."""

MODEL_ID = "all-MiniLM-L6-v2"
"""The local embedding model (``parley.core.knowledge.embeddings.LOCAL_MODEL_ID``)."""

MODEL_SUBDIR = f"models/{MODEL_ID}/onnx"
"""Where the model's files sit inside an assets folder."""

INT8_MODEL_ID = "all-MiniLM-L6-v2-int8"
"""The int8 variant (``parley.core.knowledge.embeddings.LOCAL_INT8_MODEL_ID``), opt-in."""

INT8_SUBDIR = f"models/{INT8_MODEL_ID}/onnx"
"""Where the int8 model's files sit inside an assets folder."""

MODEL_FILES = (
    "config.json",
    "model.onnx",
    "special_tokens_map.json",
    "tokenizer_config.json",
    "tokenizer.json",
    "vocab.txt",
)
"""The six files Chroma's ONNXMiniLM_L6_V2 checks before deciding to download."""

SUMS_FILE = "SHA256SUMS"
"""The checksum list in an assets folder (``sha256sum -c`` format, paths ``./relative``)."""

CHUNK = 1 << 16
"""Bytes read per step while downloading or hashing."""


@dataclass(frozen=True)
class Source:
    """One download: a file, or a ``.tar.gz`` archive some members of which are kept."""

    name: str
    """What it is, for people (``o200k_base``, ``all-MiniLM-L6-v2``)."""
    url: str
    """Where the libraries themselves download it from."""
    sha256: str
    """Pinned hash of the downloaded bytes (of the archive, for an archive)."""
    dest: str
    """Relative path in the assets folder: the file, or the folder an archive's members go to."""
    members: tuple[str, ...] = ()
    """Archive only: file names to keep (matched on the member's base name)."""

    @property
    def outputs(self) -> tuple[str, ...]:
        """The relative paths this source produces in the assets folder."""
        if not self.members:
            return (self.dest,)
        return tuple(f"{self.dest}/{m}" for m in self.members)


def tiktoken_file(url: str) -> str:
    """The cache file name tiktoken uses for ``url`` (the SHA-1 of the URL)."""
    return hashlib.sha1(url.encode()).hexdigest()


TIKTOKEN_ENCODINGS: dict[str, tuple[str, str]] = {
    "o200k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
    "cl100k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    ),
}
"""The encodings Parley counts with (``core/tokens.py``): URL and tiktoken's own expected
SHA-256 (``tiktoken_ext/openai_public.py``)."""

MODEL_ARCHIVE = (
    "https://chroma-onnx-models.s3.amazonaws.com/all-MiniLM-L6-v2/onnx.tar.gz",
    "913d7300ceae3b2dbc2c50d1de4baacab4be7b9380491c27fab7418616a16ec3",
)
"""Chroma's own download of the model and its pinned SHA-256 (``ONNXMiniLM_L6_V2``'s
``MODEL_DOWNLOAD_URL`` and ``_MODEL_SHA256``; a test keeps the two in step)."""


def default_sources() -> list[Source]:
    """What ``parley assets download`` fetches: two BPE files and the model archive."""
    sources = [
        Source(name, url, sha, f"tiktoken/{tiktoken_file(url)}")
        for name, (url, sha) in TIKTOKEN_ENCODINGS.items()
    ]
    sources.append(Source(MODEL_ID, MODEL_ARCHIVE[0], MODEL_ARCHIVE[1], MODEL_SUBDIR, MODEL_FILES))
    return sources


class AssetError(ParleyError):
    """A download failed or did not match its checksum."""

    default_message = "The assets could not be downloaded."


Progress = Callable[[Source, int, int], None]
"""``progress(source, bytes_done, bytes_total)``; total 0 when the server does not say."""


@dataclass(frozen=True)
class Fetched:
    """What happened to one source."""

    source: Source
    status: str
    """``downloaded`` or ``present`` (already there, checksums matched)."""
    size: int
    """Bytes downloaded (0 when present)."""


# ---------------------------------------------------------------- checksums
def sha256_file(path: Path) -> str:
    """The SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def read_sums(folder: Path) -> dict[str, str]:
    """``{relative path: sha256}`` from ``folder/SHA256SUMS`` (empty when there is none)."""
    try:
        text = (folder / SUMS_FILE).read_text(encoding="utf-8")
    except OSError:
        return {}
    sums: dict[str, str] = {}
    for line in text.splitlines():
        digest, _, name = line.strip().partition("  ")
        if digest and name:
            sums[name.lstrip("*").removeprefix("./")] = digest.lower()
    return sums


def write_sums(folder: Path, sums: dict[str, str]) -> None:
    """Write ``folder/SHA256SUMS`` (sorted, ``./relative`` paths, as ``sha256sum`` prints)."""
    lines = [f"{digest}  ./{rel}\n" for rel, digest in sorted(sums.items())]
    tmp = folder / f".{SUMS_FILE}.tmp"
    tmp.write_text("".join(lines), encoding="utf-8")
    os.replace(tmp, folder / SUMS_FILE)


def _present(folder: Path, source: Source, sums: dict[str, str]) -> dict[str, str] | None:
    """The outputs' hashes when all are already in ``folder`` and verified, else None."""
    found: dict[str, str] = {}
    for rel in source.outputs:
        path = folder / rel
        if not path.is_file():
            return None
        want = source.sha256 if not source.members else sums.get(rel)
        if want is None:  # an archive member with no recorded checksum: fetch again
            return None
        digest = sha256_file(path)
        if digest != want:
            return None
        found[rel] = digest
    return found


# ---------------------------------------------------------------- download
def source_url(source: Source, base_url: str | None) -> str:
    """The URL to fetch ``source`` from: its own, or its path under ``base_url`` (tests)."""
    if not base_url:
        return source.url
    path = urllib.parse.urlsplit(source.url).path
    return base_url.rstrip("/") + path


def download_assets(
    folder: Path,
    *,
    sources: Sequence[Source] | None = None,
    base_url: str | None = None,
    progress: Progress | None = None,
    timeout_s: float = 60.0,
) -> list[Fetched]:
    """Fill ``folder`` with the assets; skip what is already there and verified.

    Args:
        folder: The assets folder (created if missing).
        sources: What to fetch (default: :func:`default_sources`).
        base_url: Tests only: fetch every source's path from this base URL instead.
        progress: Called while bytes arrive.
        timeout_s: Socket timeout per read.

    Returns:
        One :class:`Fetched` per source, in order.

    Raises:
        AssetError: A download failed, did not match its pinned SHA-256, or an archive
            lacked a file. Files fetched before the failure are kept (they were verified);
            nothing of the failed source is.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AssetError(f"Cannot create the assets folder {folder}: {exc.strerror}") from None
    sums = read_sums(folder)
    results: list[Fetched] = []
    for source in default_sources() if sources is None else sources:
        done = _present(folder, source, sums)
        if done is not None:
            sums.update(done)
            results.append(Fetched(source, "present", 0))
            continue
        url = source_url(source, base_url)
        with tempfile.TemporaryDirectory(prefix=".download-", dir=folder) as tmp_name:
            tmp = Path(tmp_name)
            blob = tmp / "blob"
            size = _fetch(url, blob, source, progress, timeout_s)
            digest = sha256_file(blob)
            if digest != source.sha256:
                raise AssetError(
                    f"{source.name}: the download from {url} does not match its pinned "
                    f"SHA-256 (expected {source.sha256[:16]}…, got {digest[:16]}…); "
                    "nothing was kept."
                )
            if source.members:
                staged = _extract(blob, source, tmp / "members")
            else:
                staged = {source.dest: blob}
            for rel, path in staged.items():
                final = folder / rel
                final.parent.mkdir(parents=True, exist_ok=True)
                sums[rel] = sha256_file(path)
                os.replace(path, final)
        write_sums(folder, sums)
        results.append(Fetched(source, "downloaded", size))
    write_sums(folder, sums)
    return results


def _fetch(url: str, out: Path, source: Source, progress: Progress | None, timeout: float) -> int:
    """Stream ``url`` into ``out``; returns the bytes written."""
    if urllib.parse.urlsplit(url).scheme not in ("https", "http"):
        raise AssetError(f"{source.name}: refusing to download from {url!r}")
    request = urllib.request.Request(url, headers={"User-Agent": "parley-assets"})
    done = 0
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp, open(out, "wb") as f:
            total = int(resp.headers.get("Content-Length") or 0)
            if progress is not None:
                progress(source, 0, total)
            while block := resp.read(CHUNK):
                f.write(block)
                done += len(block)
                if progress is not None:
                    progress(source, done, total)
    except OSError as exc:  # URLError, HTTPError, timeouts and a full disk are all OSErrors
        reason = getattr(exc, "reason", None) or exc.strerror or exc
        raise AssetError(f"{source.name}: download from {url} failed: {reason}") from None
    return done


def _extract(archive: Path, source: Source, into: Path) -> dict[str, Path]:
    """Extract the wanted members (regular files only, matched by base name) into ``into``.

    Returns:
        ``{relative destination: extracted file}`` for every member of ``source``.
    """
    into.mkdir()
    wanted = set(source.members)
    staged: dict[str, Path] = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                name = PurePosixPath(member.name).name
                if name not in wanted or name in staged or not member.isfile():
                    continue  # links, folders, devices and other files are never written
                reader = tar.extractfile(member)
                if reader is None:
                    continue
                target = into / name
                with reader, open(target, "wb") as f:
                    shutil.copyfileobj(reader, f, CHUNK)
                staged[name] = target
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise AssetError(f"{source.name}: the archive could not be read: {exc}") from None
    missing = sorted(wanted - set(staged))
    if missing:
        raise AssetError(f"{source.name}: the archive lacks {', '.join(missing)}; nothing kept.")
    return {f"{source.dest}/{name}": path for name, path in staged.items()}


def make_int8(folder: Path) -> bool:
    """Make ``folder``'s int8 model from its fp32 one, unless it is there already.

    Returns:
        True if it was made now, False if it was already complete.

    Raises:
        AssetError: The fp32 model is missing, ``onnx`` is not installed, or quantizing
            failed (nothing half-made is left).
    """
    from parley.core.knowledge.embeddings import (
        EmbeddingModelUnavailable,
        make_int8_model,
        model_files_complete,
    )

    dest = folder / INT8_SUBDIR
    if model_files_complete(dest):
        return False
    if not model_files_complete(folder / MODEL_SUBDIR):
        raise AssetError(f"{INT8_MODEL_ID}: {MODEL_ID} is not in {folder / MODEL_SUBDIR}")
    try:
        make_int8_model(folder / MODEL_SUBDIR, dest)
    except EmbeddingModelUnavailable as exc:
        raise AssetError(str(exc)) from None
    return True


def complete(folder: Path) -> list[str]:
    """The relative paths of the default assets that ``folder`` lacks (empty: complete)."""
    return [rel for s in default_sources() for rel in s.outputs if not (folder / rel).is_file()]
