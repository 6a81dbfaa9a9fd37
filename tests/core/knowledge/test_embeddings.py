"""Embedders: the local MiniLM session (offline assets) and OpenAI against a loopback fake."""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from parley.core.errors import AuthError, ProviderDown, QuotaExhausted
from parley.core.knowledge.embeddings import (
    MODEL_FILES,
    Embedder,
    EmbeddingModelUnavailable,
    LocalEmbedder,
    OpenAIEmbedder,
    local_embedder,
    local_model_dir,
)
from parley.core.paths import Paths, default_paths

from .conftest import FakeOpenAI


def _cos(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("model", ["fp32", "int8"])
def test_local_vectors_are_unit_length_and_mean_something(
    model: str, fp32_embedder: LocalEmbedder, int8_embedder: LocalEmbedder
) -> None:
    embedder = fp32_embedder if model == "fp32" else int8_embedder
    assert isinstance(embedder, Embedder)
    assert embedder.model_id == {"fp32": "all-MiniLM-L6-v2", "int8": "all-MiniLM-L6-v2-int8"}[model]
    v = embedder.embed(
        [
            "How do I install the package?",
            "Installation: run pip install to set the package up.",
            "Bananas are a good source of potassium.",
        ]
    )
    assert len(v) == 3 and all(len(x) == 384 for x in v)
    assert all(abs(math.sqrt(sum(t * t for t in x)) - 1.0) < 1e-4 for x in v)
    assert _cos(v[0], v[1]) > _cos(v[0], v[2]) + 0.2
    assert embedder.embed([]) == []


def test_same_vectors_as_chromas_own_function(paths: Paths, fp32_embedder: LocalEmbedder) -> None:
    embedder = fp32_embedder
    # Padding to the batch's longest text (not 256) must not change the vectors.
    from chromadb.utils.embedding_functions import ONNXMiniLM_L6_V2

    texts = ["short", "a somewhat longer sentence about indexing folders " * 3, "x " * 400]
    ref = ONNXMiniLM_L6_V2(preferred_providers=["CPUExecutionProvider"])
    ref.DOWNLOAD_PATH = local_model_dir(paths)  # instance attribute, as Parley does
    expected = [list(map(float, e)) for e in ref(texts)]
    got = embedder.embed(texts)
    for a, b in zip(expected, got, strict=True):
        assert _cos(a, b) > 0.99999


def test_one_session_per_process_with_explicit_threads(paths: Paths) -> None:
    a = local_embedder(paths, threads=1)
    assert local_embedder(paths, threads=1) is a
    a.embed(["warm up"])
    session = a._fn.model
    a.embed(["again", "and again"])
    assert a._fn.model is session
    assert session.get_session_options().intra_op_num_threads == 1
    assert local_embedder(paths, threads=2) is not a


def test_model_found_in_data_dir_when_no_assets(paths: Paths, tmp_path: Path) -> None:
    assert paths.assets_dir is not None
    src = paths.assets_dir / "models" / "all-MiniLM-L6-v2" / "onnx"
    no_assets = Paths(paths.config_dir, paths.data_dir, paths.cache_dir, paths.log_dir, None)
    target = no_assets.models_dir / "all-MiniLM-L6-v2" / "onnx"
    target.mkdir(parents=True)
    for name in MODEL_FILES:
        (target / name).symlink_to(src / name)
    assert local_model_dir(no_assets) == target.parent
    emb = LocalEmbedder(local_model_dir(no_assets), threads=1)
    assert emb.ready
    assert len(emb.embed(["hello"])[0]) == 384


def test_missing_model_offline_fails_cleanly(paths: Paths) -> None:
    # No assets, nothing in the data dir: Chroma tries to download (the test network guard
    # refuses it) and we must raise a clear error and leave no empty onnx/ folder behind.
    no_assets = Paths(paths.config_dir, paths.data_dir, paths.cache_dir, paths.log_dir, None)
    emb = LocalEmbedder(local_model_dir(no_assets), threads=1)
    assert not emb.ready
    progress: list[tuple[int, int]] = []
    with pytest.raises(EmbeddingModelUnavailable) as info:
        emb.ensure_ready(lambda done, total: progress.append((done, total)))
    assert "could not be downloaded" in info.value.user_message
    assert not (no_assets.models_dir / "all-MiniLM-L6-v2" / "onnx").exists()


def test_incomplete_model_folder_is_not_used(paths: Paths) -> None:
    assert paths.assets_dir is not None
    partial = paths.data_dir / "partial-assets"
    shutil.copytree(
        paths.assets_dir / "models" / "all-MiniLM-L6-v2",
        partial / "models" / "all-MiniLM-L6-v2",
        ignore=shutil.ignore_patterns("vocab.txt", "model.onnx"),
    )
    p = Paths(paths.config_dir, paths.data_dir, paths.cache_dir, paths.log_dir, partial)
    assert local_model_dir(p) == p.models_dir / "all-MiniLM-L6-v2"


# ---------------------------------------------------------------- OpenAI


def test_openai_embeds_in_order_with_the_key(fake_openai: FakeOpenAI) -> None:
    fake_openai.shuffle = True
    emb = OpenAIEmbedder("sk-test-123", base_url=fake_openai.url)
    assert emb.model_id == "openai:text-embedding-3-small"
    out = emb.embed(["alpha", "beta", ""])
    assert len(out) == 3
    # The fake answers in reverse order; the embedder must put vectors back by index.
    again = emb.embed(["beta"])
    assert out[1] == again[0]
    assert fake_openai.headers[0]["authorization"] == "Bearer sk-test-123"
    assert fake_openai.requests[0]["model"] == "text-embedding-3-small"
    assert fake_openai.requests[0]["input"][2] == " "  # the API rejects empty strings


def test_openai_batches_large_inputs(fake_openai: FakeOpenAI) -> None:
    emb = OpenAIEmbedder("k", base_url=fake_openai.url)
    out = emb.embed([f"text {i}" for i in range(1100)])
    assert len(out) == 1100
    assert [len(r["input"]) for r in fake_openai.requests] == [512, 512, 76]


def test_openai_retries_429_then_succeeds(fake_openai: FakeOpenAI) -> None:
    err = {"error": {"message": "slow down", "type": "rate_limit", "code": "rate_limit"}}
    fake_openai.script = [(429, {"retry-after": "0"}, err), (503, {"retry-after": "0"}, err)]
    emb = OpenAIEmbedder("k", base_url=fake_openai.url, retries=3)
    assert len(emb.embed(["x"])) == 1
    assert len(fake_openai.requests) == 3  # no SDK-internal retries on top of ours


def test_openai_gives_up_after_bounded_retries(fake_openai: FakeOpenAI) -> None:
    err = {"error": {"message": "down"}}
    fake_openai.script = [(500, {"retry-after": "0"}, err)] * 5
    emb = OpenAIEmbedder("k", base_url=fake_openai.url, retries=2)
    with pytest.raises(ProviderDown):
        emb.embed(["x"])
    assert len(fake_openai.requests) == 3


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (401, {"error": {"message": "bad key"}}, AuthError),
        (429, {"error": {"message": "no money", "code": "insufficient_quota"}}, QuotaExhausted),
    ],
)
def test_openai_errors_are_typed_and_not_retried(
    fake_openai: FakeOpenAI, status: int, body: dict[str, object], error: type[Exception]
) -> None:
    fake_openai.script = [(status, {}, body)] * 3
    emb = OpenAIEmbedder("k", base_url=fake_openai.url, retries=2)
    with pytest.raises(error):
        emb.embed(["x"])
    assert len(fake_openai.requests) == 1


def test_embedder_from_setting(paths: Paths, fake_openai: FakeOpenAI) -> None:
    from parley.core.errors import ConfigError
    from parley.core.knowledge.indexer import EmbedderConfig, make_embedder

    assert make_embedder(paths, EmbedderConfig.from_setting("all-MiniLM-L6-v2")) is (
        local_embedder(paths)
    )
    cfg = EmbedderConfig.from_setting(
        "openai:text-embedding-3-small", "k", base_url=fake_openai.url
    )
    emb = make_embedder(paths, cfg)
    assert emb.model_id == "openai:text-embedding-3-small" and len(emb.embed(["a"])) == 1
    with pytest.raises(ConfigError):
        make_embedder(paths, EmbedderConfig.from_setting("openai:text-embedding-3-small"))
    with pytest.raises(ConfigError):
        EmbedderConfig.from_setting("word2vec")


def test_int8_is_its_own_model(paths: Paths, fp32_embedder: LocalEmbedder) -> None:
    """The int8 model (opt-in) is another vector space: own id, collection and cache keys.

    Its vectors stay close to the fp32 ones (measured 0.9925 mean cosine on real chunks), and
    it comes from the assets folder (``parley assets download`` makes it), 23 MB instead of 87.
    """
    from parley.core.knowledge.embeddings import LOCAL_INT8_MODEL_ID, LOCAL_MODEL_ID
    from parley.core.knowledge.indexer import EmbedderConfig, make_embedder
    from parley.core.settings import KnowledgeSettings

    assert KnowledgeSettings().embedding_model == LOCAL_MODEL_ID  # fp32 stays the default
    assert make_embedder(paths, EmbedderConfig()) is fp32_embedder
    q = make_embedder(paths, EmbedderConfig.from_setting(LOCAL_INT8_MODEL_ID))
    assert q is not fp32_embedder and q.model_id == LOCAL_INT8_MODEL_ID
    assert paths.assets_dir is not None
    assert q.files_dir == paths.assets_dir / "models" / LOCAL_INT8_MODEL_ID
    assert (q.files_dir / "onnx" / "model.onnx").stat().st_size < 30_000_000
    texts = [
        "To install Parley, run pip install parley inside a virtual environment.",
        "Bananas are rich in potassium and make a quick breakfast.",
    ]
    for a, b in zip(q.embed(texts), fp32_embedder.embed(texts), strict=True):
        assert sum(x * y for x, y in zip(a, b, strict=True)) > 0.97
    # One text per run: a text's vector does not depend on the texts embedded beside it.
    alone = q.embed(texts[:1])[0]
    assert max(abs(x - y) for x, y in zip(alone, q.embed(texts)[0], strict=True)) < 1e-6
    assert not paths.models_dir.exists() or not any(paths.models_dir.iterdir())


@pytest.mark.slow
def test_int8_model_is_made_once_from_the_fp32_files(paths: Paths, tmp_path: Path) -> None:
    """An assets folder with only the fp32 model: the int8 one is made in the data dir."""
    from parley.core.knowledge.embeddings import (
        LOCAL_INT8_MODEL_ID,
        LOCAL_MODEL_ID,
        local_embedder,
        model_files_complete,
    )

    assert paths.assets_dir is not None
    assets = tmp_path / "fp32-only"
    (assets / "models").mkdir(parents=True)
    (assets / "models" / LOCAL_MODEL_ID).symlink_to(
        (paths.assets_dir / "models" / LOCAL_MODEL_ID).resolve()
    )
    own = default_paths({"PARLEY_HOME": str(tmp_path / "home"), "PARLEY_ASSETS": str(assets)})
    emb = local_embedder(own, quantized=True)
    made = own.models_dir / LOCAL_INT8_MODEL_ID / "onnx"
    assert emb.files_dir / "onnx" == made and emb.ready and not made.exists()
    vector = emb.embed(["Quantized weights, same tokenizer."])[0]
    assert len(vector) == 384
    assert model_files_complete(made)
    assert [p.name for p in made.parent.iterdir()] == ["onnx"]  # no half-made folder left
    before = (made / "model.onnx").stat().st_mtime_ns
    again = LocalEmbedder(emb.model_dir, quantized=True, int8_dir=made.parent)
    assert again.embed(["Quantized weights, same tokenizer."])[0] == pytest.approx(vector)
    assert (made / "model.onnx").stat().st_mtime_ns == before  # made once


def test_int8_model_without_the_onnx_package_says_what_to_do(paths: Paths, tmp_path: Path) -> None:
    """Without ``onnx`` (onnxruntime's quantizer needs it) the error names the way out."""
    assert paths.assets_dir is not None
    fp32 = paths.assets_dir / "models" / "all-MiniLM-L6-v2" / "onnx"
    code = textwrap.dedent(f"""
        import sys
        sys.modules["onnx"] = None  # as if the package were not installed
        from pathlib import Path
        from parley.core.knowledge.embeddings import EmbeddingModelUnavailable, make_int8_model
        try:
            make_int8_model(Path({str(fp32)!r}), Path({str(tmp_path / "int8" / "onnx")!r}))
        except EmbeddingModelUnavailable as exc:
            print(exc.user_message)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "pip install onnx" in r.stdout and "all-MiniLM-L6-v2" in r.stdout, r.stderr
    assert not (tmp_path / "int8").exists() or not any((tmp_path / "int8").iterdir())


def test_openai_embedding_requests_land_in_the_ledger(
    paths: Paths, fake_openai: FakeOpenAI
) -> None:
    """Issue 13: every paid request is in the ledger, embeddings included, priced."""
    from parley.core.knowledge.indexer import EmbedderConfig, make_embedder
    from parley.core.metering import embedding_recorder
    from parley.core.store.ledger import Ledger

    emb = make_embedder(
        paths,
        EmbedderConfig.from_setting("openai:text-embedding-3-small", "k", base_url=fake_openai.url),
    )
    emb.embed([f"text {i}" for i in range(600)])  # two requests
    record = embedding_recorder(paths.db_file, paths.user_models_file)
    record("text-embedding-3-small", 1_000_000)
    ledger = Ledger(paths.db_file)
    try:
        rows = list(ledger.entries())
        by_purpose = {g.key: g.totals for g in ledger.breakdown("purpose")}
    finally:
        ledger.close()
    assert [(r["purpose"], r["model"], r["input_tokens"]) for r in rows] == [
        ("embedding", "text-embedding-3-small", 1),  # the fake reports 1 token per request
        ("embedding", "text-embedding-3-small", 1),
        ("embedding", "text-embedding-3-small", 1_000_000),
    ]
    assert rows[-1]["cost_usd"] == pytest.approx(0.02)  # $0.02 per 1M tokens
    assert by_purpose["embedding"].requests == 3


def test_onnx_runs_bound_the_attention_memory_not_just_the_count() -> None:
    """Full-window chunks (256 tokens) go fewer at a time than short ones (issue 11.7)."""
    from parley.core.knowledge.embeddings import ATTENTION_CELLS, BATCH_SIZE, _batches

    lengths = sorted([40] * 40 + [256] * 40 + [600])
    for size in (BATCH_SIZE, 16):
        runs = list(_batches(lengths, list(range(len(lengths))), size))
        assert [i for run in runs for i in run] == list(range(len(lengths)))  # all, in order
        assert len(runs[0]) == size  # short texts: the full count
        for run in runs:
            width = lengths[run[-1]]
            assert len(run) <= size
            assert len(run) == 1 or len(run) * width * width <= ATTENTION_CELLS
    # A large run size asked for: the attention bound, not the count, limits full windows.
    runs16 = list(_batches(lengths, list(range(len(lengths))), 16))
    assert max(len(r) for r in runs16 if lengths[r[-1]] == 256) < 16


def test_weights_stored_half_give_the_same_vectors(
    paths: Paths, tmp_path: Path, fp32_embedder: LocalEmbedder
) -> None:
    """Weights stored as fp16 (the packaged app's model file): half the size, same vectors.

    The session computes in fp32 on the rounded weights, so the file keeps the model id.
    """
    from parley.core.knowledge.embeddings import model_files_complete, store_weights_half

    source = fp32_embedder.model_dir / "onnx"
    half = tmp_path / "half" / "onnx"
    half.mkdir(parents=True)
    for name in MODEL_FILES:
        if name != "model.onnx":
            shutil.copyfile(source / name, half / name)
    store_weights_half(source / "model.onnx", half / "model.onnx")
    assert model_files_complete(half)
    assert [p.name for p in half.iterdir() if p.name.startswith(".")] == []  # no temp left
    size, original = (half / "model.onnx").stat().st_size, (source / "model.onnx").stat().st_size
    assert size < 0.52 * original
    emb = LocalEmbedder(half.parent, threads=1)
    assert emb.model_id == fp32_embedder.model_id
    texts = [
        "To install Parley, run pip install parley inside a virtual environment.",
        "VACUUM reclaims storage occupied by dead tuples; ANALYZE collects statistics.",
        "Bananas are rich in potassium and make a quick breakfast.",
    ]
    for a, b in zip(emb.embed(texts), fp32_embedder.embed(texts), strict=True):
        assert _cos(a, b) > 0.99999
        assert max(abs(x - y) for x, y in zip(a, b, strict=True)) < 5e-4  # 8.5e-5 measured
    # A different text is still far away: the check above is not vacuous.
    assert _cos(emb.embed(texts[:1])[0], fp32_embedder.embed(texts[2:])[0]) < 0.5
