"""Text embedders: local all-MiniLM-L6-v2 (ONNX, the default) and OpenAI (optional).

The local embedder is Chroma's own ``ONNXMiniLM_L6_V2`` embedding function, subclassed so that:

- one ONNX session is built per process and reused (Chroma's ``DefaultEmbeddingFunction``
  builds a new session on every call, ~0.18 s each);
- the onnxruntime thread count is set explicitly (``intra_op_num_threads``);
- the model folder is an *instance* attribute (``DOWNLOAD_PATH``), never Chroma's HOME-derived
  class default, so nothing global is mutated and the offline assets are found;
- a batch is tokenized together, sorted by length and padded to its longest text instead of
  to 256 tokens. Chroma pads every text to 256 tokens; attention masks make the padding inert,
  so the vectors are the same (cosine 0.9999999 measured) but a typical batch of chunks runs
  ~2x faster and a short query ~13x faster (5 ms instead of 68 ms on two cores).

A collection is bound to the model that made its vectors: :attr:`Embedder.model_id` goes into
the collection name and metadata (see ``store.py``), and into every key of the embedding cache
(:func:`embedding_cache_key`), so vectors of one model are never served for another.

``all-MiniLM-L6-v2-int8`` (opt-in) is the same model with int8 weights
(``onnxruntime.quantization.quantize_dynamic``, see :data:`INT8_QUANTIZATION`): taken from the
assets folder (``parley assets download`` makes it), else made once from the fp32 files
(:func:`make_int8_model`, which needs the ``onnx`` package).
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import re
import shutil
import sys
import threading
import time
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from parley.core.errors import (
    AuthError,
    ParleyError,
    ProviderDown,
    ProviderTimeout,
    QuotaExhausted,
    RateLimited,
)
from parley.core.paths import Paths

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

log = logging.getLogger(__name__)

LOCAL_MODEL_ID = "all-MiniLM-L6-v2"
"""Model id of the default local embedder (also the folder name of its files)."""

LOCAL_INT8_MODEL_ID = "all-MiniLM-L6-v2-int8"
"""The local model with int8 weights, opt-in (``knowledge.embedding_model``). Measured (issue
12, ``tests/bench/bench_retrieval.py --model``): 40-50 % less CPU per chunk than fp32, cosine
to the fp32 vectors 0.9925 mean / 0.983 worst, a 23 MB file instead of 87; recall@5 equal to
fp32's on three of the four question sets and one question lower on the fourth (Python docs,
0.9125 against 0.925 of 80). The adoption rule (no set may drop by more than 0.01) keeps fp32
the default; the same held for 8-bit weights (no ``reduce_range``)."""

MODEL_FILES = (
    "config.json",
    "model.onnx",
    "special_tokens_map.json",
    "tokenizer_config.json",
    "tokenizer.json",
    "vocab.txt",
)
"""The six files Chroma's ONNXMiniLM_L6_V2 checks before deciding to download."""

MAX_TOKENS = 256
"""MiniLM's sequence limit as sentence-transformers uses it; longer texts are truncated."""

BATCH_SIZE = 4
"""Texts per ONNX run. Texts are sorted by length over the whole call first and a run is padded
to its longest text, so a small run pads little: with the indexer's 64 texts per call, 16 per
run wasted 11 % of the model's work on padding, 4 per run 3 %. Measured on 600 chunks of the
Python docs, 64 per call, four interleaved rounds on two cores
(``tests/bench/bench_index_speed.py runs DIR --sizes 16,8,4,2,1``): median ONNX seconds 16.4
at 16 per run, 15.1 at 8, 13.8 at 4, 13.6 at 2, 14.2 at 1. Smaller runs also keep the
attention tensors in the CPU cache and the process's working memory small; 4 rather than 2
leaves more rows per matrix product for machines with more cores."""

INT8_BATCH_SIZE = 1
"""Texts per ONNX run for the int8 model: one. Its activations are quantized with one scale
per tensor, computed from the whole run (padding and neighbours included), so in a batch a
text's vector depended on the texts beside it (max component difference 0.019 measured; the
embedding cache and a query would then disagree with a re-embed). Alone, a text always gets
the same vector, and it is cheaper too: 320 real PostgreSQL chunks took 9-11 s of CPU one at
a time against 13 s sixteen at a time (attention tensors of one text stay in the CPU cache)."""

ATTENTION_CELLS = 16 * 192 * 192
"""Most ``texts x padded length^2`` in one ONNX run, whatever the run size asked for: the
attention tensors, which set the model's working memory (and onnxruntime's arena keeps its
peak), grow with the square of the length. With 16 texts per run (the size before
:data:`BATCH_SIZE` became 4) chunks filling the 256-token window went 9 at a time: a 49 MB
one-line file's indexing process peaked at 660 MB RSS with 16 full-length texts per run, the
issue's bound is 600 MB. At :data:`BATCH_SIZE` it never binds below 256 tokens."""

OPENAI_DEFAULT_MODEL = "text-embedding-3-small"
"""The optional hosted embedder."""

OPENAI_BATCH = 512
"""Inputs per OpenAI request (the API accepts up to 2,048; smaller keeps requests short)."""

DownloadProgress = Callable[[int, int], None]
"""``progress(bytes_done, bytes_total)`` while the model downloads (total 0 if unknown)."""


_WS_RUN = re.compile(r"\s+")


def normalise_for_cache(text: str) -> str:
    """The form of a text its embedding depends on: Unicode NFC, whitespace runs as one space.

    Exact for MiniLM (BERT's normalizer and pre-tokenizer treat every whitespace run as one
    break, and accents are decomposed anyway), so two texts that differ only in line breaks
    or indentation share one cached vector.
    """
    return _WS_RUN.sub(" ", unicodedata.normalize("NFC", text)).strip()


def embedding_cache_key(model_id: str, text: str) -> bytes:
    """Content address of ``text``'s vector under ``model_id`` (16 bytes of sha256)."""
    data = f"{model_id}\x00{normalise_for_cache(text)}".encode("utf-8", "surrogatepass")
    return hashlib.sha256(data).digest()[:16]


@dataclass
class EmbedStats:
    """Where a local embedder's time went (cumulative; read with :meth:`LocalEmbedder.stats`)."""

    texts: int = 0
    """Texts embedded."""
    tokens: int = 0
    """Word pieces run through the model, padding excluded."""
    padded_tokens: int = 0
    """Word pieces including the padding of each batch to its longest text."""
    tokenize_s: float = 0.0
    onnx_s: float = 0.0
    """Wall seconds in the tokenizer and in the ONNX session."""


class EmbeddingModelUnavailable(ParleyError):
    """The local embedding model's files are missing and could not be downloaded."""

    default_message = "The local embedding model is not available."


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into vectors. Implementations are thread-safe."""

    model_id: str
    """The vector space: ``all-MiniLM-L6-v2``, ``openai:text-embedding-3-small``, ..."""

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Return one unit-length vector per text, in order."""
        ...


# ---------------------------------------------------------------- local model files


def model_files_complete(folder: Path) -> bool:
    """Whether ``folder`` (an ``onnx/`` folder) holds all six model files."""
    return all((folder / name).is_file() for name in MODEL_FILES)


def local_model_dir(paths: Paths, model_id: str = LOCAL_MODEL_ID) -> Path:
    """The folder holding ``onnx/`` for a local model (fp32, or :data:`LOCAL_INT8_MODEL_ID`).

    The assets copy if complete, else the one under Parley's data dir (which may still need
    downloading, or for int8 making from the fp32 files).
    """
    if paths.assets_dir is not None:
        candidate = paths.assets_dir / "models" / model_id
        if model_files_complete(candidate / "onnx"):
            return candidate
    return paths.models_dir / model_id


INT8_QUANTIZATION: dict[str, Any] = {
    "op_types_to_quantize": ["MatMul", "Gather"],
    "per_channel": True,
    "reduce_range": True,
}
"""How the int8 model is made from the fp32 one (``quantize_dynamic``, int8 weights).

- MatMul weights per output channel: per tensor drops the cosine to the fp32 vectors to 0.95.
- Gather: the 30,522 x 384 word-piece table (47 of the model's 87 MB) stored as int8 too; the
  file is 23 MB and the vectors are as close as with MatMul alone (cosine 0.9925 mean, 0.983
  worst, on 300 real PostgreSQL chunks).
- 7-bit weights (``reduce_range``): x86 CPUs without VNNI multiply u8 x s8 pairs into int16
  with saturation, so full 8-bit weights could give other vectors on them than on this one.
"""


def make_int8_model(source: Path, dest: Path) -> None:
    """Make the int8 model's folder ``dest`` from the fp32 one ``source`` (``onnx/`` folders).

    Takes a few seconds and needs the ``onnx`` package (onnxruntime's quantizer imports it).
    The folder appears whole or not at all (built beside it, then renamed), so a crash or a
    second process making it at the same time leaves no half model behind.

    Raises:
        EmbeddingModelUnavailable: ``onnx`` is missing, or the quantizer failed.
    """
    if model_files_complete(dest):
        return
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:  # onnxruntime's quantizer needs the onnx package
        how = (
            "the packaged app leaves it out: make the model with `parley assets download "
            "--dir DIR` where Parley runs from Python and set PARLEY_ASSETS to DIR"
            if getattr(sys, "frozen", False)
            else "`pip install onnx`"
        )
        raise EmbeddingModelUnavailable(
            f"{LOCAL_INT8_MODEL_ID} is made from {LOCAL_MODEL_ID} with the 'onnx' package, "
            f"which is not installed ({how}), or set knowledge.embedding_model to "
            f"{LOCAL_MODEL_ID}.",
            detail=repr(exc),
        ) from exc
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    root = logging.getLogger()
    level = root.level
    # The quantizer logs advice ("consider pre-processing") on the root logger.
    root.setLevel(logging.ERROR)
    try:
        for name in MODEL_FILES:
            if name != "model.onnx":
                shutil.copyfile(source / name, tmp / name)
        quantize_dynamic(
            source / "model.onnx",
            tmp / "model.onnx",
            weight_type=QuantType.QInt8,
            **INT8_QUANTIZATION,
        )
        if dest.exists() and not model_files_complete(dest):
            shutil.rmtree(dest)  # a half folder from before this protocol
        try:
            os.replace(tmp, dest)
        except OSError:
            if not model_files_complete(dest):  # else another process made it first
                raise
    except Exception as exc:
        raise EmbeddingModelUnavailable(
            f"The int8 embedding model could not be made: {exc}", detail=repr(exc)
        ) from exc
    finally:
        root.setLevel(level)
        shutil.rmtree(tmp, ignore_errors=True)


HALF_STORAGE_MIN_VALUES = 1024
"""Weights with at least this many values are stored in half precision by
:func:`store_weights_half`: in MiniLM 44 of them (the 36 layer matrices, the word-piece and
position tables, the six 1,536-value feed-forward biases), 99.9 % of the bytes; the other
biases and the norms stay fp32."""


def store_weights_half(source: Path, dest: Path) -> None:
    """Write the ONNX model file ``source`` to ``dest`` with its weights stored as fp16.

    The packaged app's copy of the fp32 model (``packaging/parley.spec``): 45 MB instead of
    90. Each large fp32 weight is stored in half precision and feeds a ``Cast`` back to fp32,
    which onnxruntime's constant folding computes once when the session starts, so the
    session runs the same fp32 graph as the original, on weights rounded to 11 significant
    bits. Measured on 320 real PostgreSQL chunks: cosine to the original's vectors 1.000000
    for every chunk (to six places), the same speed. The model id stays
    :data:`LOCAL_MODEL_ID`: the vectors are interchangeable with the original's. (An int8
    model is a different one: its activations are quantized too, see
    :data:`LOCAL_INT8_MODEL_ID`.)

    Needs the ``onnx`` package (at build time). ``dest`` is written whole or not at all.
    """
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    initializers, casts = [], []
    for weight in graph.initializer:
        values = numpy_helper.to_array(weight)
        if values.dtype != np.float32 or values.size < HALF_STORAGE_MIN_VALUES:
            initializers.append(weight)
            continue
        half = numpy_helper.from_array(values.astype(np.float16), f"{weight.name}/fp16")
        initializers.append(half)
        casts.append(
            helper.make_node(
                "Cast",
                [half.name],
                [weight.name],
                to=onnx.TensorProto.FLOAT,
                name=f"{weight.name}/to_fp32",
            )
        )
    nodes = [*casts, *graph.node]
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        onnx.save(model, str(tmp))
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _onnx_class() -> type[Any]:
    # Imported lazily: chromadb costs ~0.5 s to import (STACK-NOTES).
    from chromadb.utils.embedding_functions import ONNXMiniLM_L6_V2

    return ONNXMiniLM_L6_V2


def _make_session_class() -> type[Any]:
    """Build the ONNXMiniLM_L6_V2 subclass (at runtime, so chromadb is imported lazily)."""
    import numpy as np

    base = _onnx_class()

    class _ParleyMiniLM(base):  # type: ignore[misc,valid-type]
        def __init__(self, model_dir: Path, threads: int) -> None:
            super().__init__(preferred_providers=["CPUExecutionProvider"])
            # An instance attribute shadows the class default computed from HOME at import.
            self.DOWNLOAD_PATH = model_dir
            self._threads = threads
            self._progress: DownloadProgress | None = None
            self.stats = EmbedStats()
            self._stats_lock = threading.Lock()

        @cached_property
        def tokenizer(self) -> Any:
            tok = self.Tokenizer.from_file(
                os.path.join(self.DOWNLOAD_PATH, self.EXTRACTED_FOLDER_NAME, "tokenizer.json")
            )
            tok.enable_truncation(max_length=MAX_TOKENS)
            tok.no_padding()  # _forward pads each batch to its longest text itself
            return tok

        @cached_property
        def model(self) -> Any:
            so = self.ort.SessionOptions()
            so.log_severity_level = 3
            so.graph_optimization_level = self.ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            so.intra_op_num_threads = self._threads
            so.inter_op_num_threads = 1
            # Idle worker threads sleep instead of spinning: on a desktop the cores are shared
            # with the window; measured under load, same throughput for ~15 % less CPU time.
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
            default = os.path.join(self.DOWNLOAD_PATH, self.EXTRACTED_FOLDER_NAME, "model.onnx")
            return self.ort.InferenceSession(
                default,
                providers=["CPUExecutionProvider"],
                sess_options=so,
            )

        def _forward(
            self, documents: list[str], batch_size: int = BATCH_SIZE
        ) -> npt.NDArray[np.float32]:
            # Same pooling and normalisation as Chroma's _forward; batches are length-sorted
            # and padded to their longest member (see the module docstring).
            out = np.zeros((len(documents), 384), dtype=np.float32)
            t0 = time.perf_counter()
            encoded_all = self.tokenizer.encode_batch(documents)
            tokenize_s = time.perf_counter() - t0
            # Sorted by token count (not characters): the padding follows tokens.
            order = sorted(range(len(documents)), key=lambda i: len(encoded_all[i].ids))
            tokens = padded = 0
            onnx_s = 0.0
            for idx in _batches([len(encoded_all[i].ids) for i in order], order, batch_size):
                encoded = [encoded_all[i].ids for i in idx]
                width = max(len(e) for e in encoded)
                ids = np.zeros((len(idx), width), dtype=np.int64)  # [PAD] is id 0
                mask = np.zeros((len(idx), width), dtype=np.int64)
                for row, e in enumerate(encoded):
                    ids[row, : len(e)] = e
                    mask[row, : len(e)] = 1
                tokens += int(mask.sum())
                padded += mask.size
                t1 = time.perf_counter()
                hidden = self.model.run(
                    None,
                    {
                        "input_ids": ids,
                        "attention_mask": mask,
                        "token_type_ids": np.zeros_like(ids),
                    },
                )[0]
                onnx_s += time.perf_counter() - t1
                m = mask[..., None].astype(np.float32)
                pooled = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
                out[idx] = self._normalize(pooled)
            with self._stats_lock:
                st = self.stats
                st.texts += len(documents)
                st.tokens += tokens
                st.padded_tokens += padded
                st.tokenize_s += tokenize_s
                st.onnx_s += onnx_s
            return out

        def download(self, progress: DownloadProgress | None) -> None:
            """Chroma's own download + sha256 check + extraction, with a progress hook."""
            self._progress = progress
            self._download_model_if_not_exists()

        @property
        def tqdm(self) -> Any:  # Chroma calls self.tqdm(desc=..., total=...) while downloading
            return _progress_bar(self._progress)

        @tqdm.setter
        def tqdm(self, value: Any) -> None:  # set by Chroma's __init__; we report ourselves
            pass

    return _ParleyMiniLM


def _batches(lengths: list[int], order: list[int], batch_size: int) -> Iterator[list[int]]:
    """``order`` (sorted by ascending ``lengths``) cut into ONNX runs.

    At most ``batch_size`` texts, and at most :data:`ATTENTION_CELLS` ``texts x length^2``
    (a run pads to its last, longest text); always at least one text.
    """
    batch: list[int] = []
    for i, n in zip(order, lengths, strict=True):
        if batch and (len(batch) >= batch_size or (len(batch) + 1) * n * n > ATTENTION_CELLS):
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


def _progress_bar(progress: DownloadProgress | None) -> Callable[..., Any]:
    class _Bar:
        def __init__(self, *, total: int = 0, **_: Any) -> None:
            self.total = int(total or 0)
            self.done = 0
            log.info("downloading the embedding model (%d bytes)", self.total)

        def __enter__(self) -> _Bar:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def update(self, n: int) -> None:
            self.done += n
            if progress is not None:
                progress(self.done, self.total)

    return _Bar


class LocalEmbedder:
    """all-MiniLM-L6-v2 through one reused ONNX session (thread-safe).

    Build it with :func:`local_embedder`, which caches one instance per process.
    """

    dimension = 384

    def __init__(
        self,
        model_dir: Path,
        *,
        threads: int | None = None,
        quantized: bool = False,
        int8_dir: Path | None = None,
    ) -> None:
        """Prepare (but do not load) the model.

        Args:
            model_dir: Folder whose ``onnx/`` subfolder holds (or will hold) the fp32 model's
                six files: the model itself, and the source the int8 one is made from.
            threads: onnxruntime intra-op threads; default: the CPUs this process may use.
            quantized: Use the int8 variant (:data:`LOCAL_INT8_MODEL_ID`).
            int8_dir: Folder whose ``onnx/`` holds (or will get) the int8 model's six files
                (needed when quantized).

        Raises:
            ValueError: ``quantized`` without an ``int8_dir``.
        """
        if quantized and int8_dir is None:
            raise ValueError("the int8 model needs a folder (int8_dir)")
        self.model_dir = model_dir
        self.threads = threads or _usable_cpus()
        self.quantized = quantized
        self.model_id = LOCAL_INT8_MODEL_ID if quantized else LOCAL_MODEL_ID
        self._int8_dir = int8_dir
        self._lock = threading.Lock()
        self._fn: Any = None

    @property
    def files_dir(self) -> Path:
        """The folder whose ``onnx/`` this embedder's session reads."""
        if self.quantized:
            assert self._int8_dir is not None  # checked in __init__
            return self._int8_dir
        return self.model_dir

    @property
    def ready(self) -> bool:
        """Whether the model can load without a download.

        The int8 model is ready when its files are present, or when the fp32 files it is
        made from are (making it takes a few seconds and no network).
        """
        if self.quantized and model_files_complete(self.files_dir / "onnx"):
            return True
        return model_files_complete(self.model_dir / "onnx")

    def stats(self) -> EmbedStats:
        """A copy of the time and token counts so far (all zero before the first embed)."""
        fn = self._fn
        if fn is None:
            return EmbedStats()
        with fn._stats_lock:
            return EmbedStats(**vars(fn.stats))

    def ensure_ready(self, progress: DownloadProgress | None = None) -> None:
        """Load the session, downloading the model once first if its files are missing.

        The download (Chroma's own, ~80 MB, sha256-checked) cannot run offline; it is
        untested here. A failed download leaves no half-filled folder behind.

        Raises:
            EmbeddingModelUnavailable: The files are missing and could not be fetched.
        """
        with self._lock:
            if self._fn is not None:
                return
            session_class = _make_session_class()
            files = self.files_dir / "onnx"
            if not model_files_complete(files):
                if not model_files_complete(self.model_dir / "onnx"):
                    self._download(session_class(self.model_dir, self.threads), progress)
                if self.quantized:
                    make_int8_model(self.model_dir / "onnx", files)
            fn = session_class(self.files_dir, self.threads)
            try:
                fn.model  # noqa: B018 - loads the ONNX session now, not on the first embed
                fn.tokenizer  # noqa: B018
            except Exception as exc:
                raise EmbeddingModelUnavailable(
                    f"The embedding model in {self.files_dir} could not be loaded: {exc}",
                    detail=repr(exc),
                ) from exc
            self._fn = fn

    def _download(self, fn: Any, progress: DownloadProgress | None) -> None:
        onnx = self.model_dir / "onnx"
        existed = onnx.exists()
        try:
            fn.download(progress)
        except Exception as exc:
            # Chroma creates the folder before it downloads; an empty or partial one would
            # make later runs fail differently, so remove what this attempt left.
            if not existed and onnx.exists() and not model_files_complete(onnx):
                shutil.rmtree(onnx, ignore_errors=True)
            raise EmbeddingModelUnavailable(
                "The embedding model could not be downloaded; check the internet connection "
                "or put its files in " + str(onnx),
                detail=repr(exc),
            ) from exc
        if not model_files_complete(onnx):
            raise EmbeddingModelUnavailable(f"The downloaded embedding model is incomplete: {onnx}")

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed ``texts`` (truncated at 256 tokens); unit-length 384-d vectors."""
        if not texts:
            return []
        if self._fn is None:
            self.ensure_ready()
        # onnxruntime's run() is thread-safe, and the tokenizer is only read.
        size = INT8_BATCH_SIZE if self.quantized else BATCH_SIZE
        return self._fn._forward(list(texts), size).tolist()  # type: ignore[no-any-return]


def _usable_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


_LOCAL_CACHE: dict[tuple[Path, int, Path | None], LocalEmbedder] = {}
_LOCAL_CACHE_LOCK = threading.Lock()


def local_embedder(
    paths: Paths, *, threads: int | None = None, quantized: bool = False
) -> LocalEmbedder:
    """The process-wide local embedder for ``paths`` (one ONNX session per process).

    Args:
        paths: Where to find the model (assets folder first, then the data dir).
        threads: onnxruntime intra-op threads; default: the CPUs this process may use.
        quantized: The int8 variant (the assets folder's, else made once into
            ``paths.models_dir`` from the fp32 files).
    """
    int8_dir = local_model_dir(paths, LOCAL_INT8_MODEL_ID) if quantized else None
    key = (local_model_dir(paths), threads or _usable_cpus(), int8_dir)
    with _LOCAL_CACHE_LOCK:
        emb = _LOCAL_CACHE.get(key)
        if emb is None:
            emb = _LOCAL_CACHE[key] = LocalEmbedder(
                key[0], threads=key[1], quantized=quantized, int8_dir=int8_dir
            )
        return emb


# ---------------------------------------------------------------- OpenAI


class OpenAIEmbedder:
    """OpenAI's embeddings endpoint through the official SDK (sync client, worker thread).

    SDK retries are off; a short bounded retry here handles 429/5xx/timeouts, honouring
    ``Retry-After`` up to ``max_wait_s``.
    """

    def __init__(
        self,
        api_key: str,
        *,
        model: str = OPENAI_DEFAULT_MODEL,
        base_url: str | None = None,
        timeout_s: float = 60.0,
        retries: int = 3,
        max_wait_s: float = 20.0,
        on_usage: Callable[[str, int], None] | None = None,
    ) -> None:
        """Create the client (no request is made).

        Args:
            api_key: The key; never logged.
            model: Embedding model name.
            base_url: Another OpenAI-compatible endpoint (``.../v1``).
            timeout_s: Per-request timeout.
            retries: Extra attempts after a retryable failure.
            max_wait_s: Longest wait between attempts.
            on_usage: Called with ``(model, prompt tokens)`` after each request the service
                answered: every paid request lands in the ledger (issue 13).
        """
        import openai

        self.model = model
        self._on_usage = on_usage
        self.model_id = f"openai:{model}"
        self._retries = retries
        self._max_wait_s = max_wait_s
        self._client = openai.OpenAI(
            api_key=api_key, base_url=base_url, timeout=timeout_s, max_retries=0
        )

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed ``texts`` in batches; raises a :class:`ParleyError` subclass on failure."""
        out: list[list[float]] = []
        for start in range(0, len(texts), OPENAI_BATCH):
            # The API rejects empty strings; a single space embeds as "nothing".
            batch = [t if t.strip() else " " for t in texts[start : start + OPENAI_BATCH]]
            out.extend(self._embed_batch(batch))
        return out

    def _embed_batch(self, batch: list[str]) -> list[list[float]]:
        attempt = 0
        while True:
            try:
                resp = self._client.embeddings.create(
                    model=self.model, input=batch, encoding_format="float"
                )
                data = sorted(resp.data, key=lambda d: d.index)
                usage = getattr(resp, "usage", None)
                if self._on_usage is not None and usage is not None:
                    self._on_usage(self.model, int(getattr(usage, "prompt_tokens", 0) or 0))
                if len(data) != len(batch):
                    raise ProviderDown(
                        f"The embedding service returned {len(data)} vectors "
                        f"for {len(batch)} texts."
                    )
                return [list(d.embedding) for d in data]
            except Exception as exc:
                err = _openai_error(exc)
                if not err.retryable or attempt >= self._retries:
                    raise err from exc
                attempt += 1
                delay = getattr(err, "retry_after", None)
                if delay is None:
                    delay = min(self._max_wait_s, 0.5 * 2**attempt) * (0.5 + random.random() / 2)
                time.sleep(min(max(delay, 0.0), self._max_wait_s))


def _openai_error(exc: Exception) -> ParleyError:
    """Map an openai SDK exception to a Parley error (SDK text is not copied verbatim)."""
    import openai

    if isinstance(exc, ParleyError):
        return exc
    if isinstance(exc, openai.APITimeoutError):
        return ProviderTimeout("The embedding service took too long to answer.")
    if isinstance(exc, openai.APIConnectionError):
        return ProviderDown("The embedding service could not be reached.")
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        retry_after = _retry_after(exc)
        if status in (401, 403):
            return AuthError()
        if status == 429:
            code = _error_code(exc)
            if code == "insufficient_quota":
                return QuotaExhausted()
            return RateLimited(retry_after=retry_after)
        if status in (408, 409) or status >= 500:
            return ProviderDown(
                f"The embedding service failed (HTTP {status}).",
                status=status,
                retry_after=retry_after,
            )
        return ParleyError(f"The embedding service refused the request (HTTP {status}).")
    return ParleyError(f"Embedding failed: {type(exc).__name__}", detail=repr(exc))


def _retry_after(exc: Any) -> float | None:
    try:
        value = exc.response.headers.get("retry-after")
        return float(value) if value is not None else None
    except (AttributeError, TypeError, ValueError):
        return None


def _error_code(exc: Any) -> str | None:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            code = inner.get("code") or inner.get("type")
            return str(code) if code else None
    return None
