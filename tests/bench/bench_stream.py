"""Benchmark: CLI cold start, and the core's overhead on a streamed answer. Prints JSON.

- ``version_ms``: median wall time of ``python -m parley --version`` (a cold process).
- ``core_ratio``: time for the core (ChatSession: resilient provider, adapter, SQLite
  persistence with periodic flushes) to drain a 5,000-token answer from the fake server,
  divided by the raw ``openai`` SDK's time for the same stream, same run (medians of
  interleaved repetitions, so machine noise hits both alike).
- ``adapter_ratio``: the same for the provider layer alone (no persistence).

The fake server runs in its own process, as a real server would: in-process, its threads
would compete with the client for the GIL and blur the ratio.

Run: ``.venv/bin/python tests/bench/bench_stream.py [--reps N]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.fakes.script import Text  # noqa: E402
from tests.fakes.server import (  # noqa: E402
    FakeLLMServer,
    FakeServerProcess,
    serve_until_stdin_closes,
)

from parley.core.paths import default_paths  # noqa: E402
from parley.core.providers.base import ChatRequest, Message, StreamResult  # noqa: E402
from parley.core.providers.openai import OpenAIProvider  # noqa: E402
from parley.core.providers.resilient import ResilientProvider  # noqa: E402
from parley.core.secrets import MemorySecretStore, Secrets  # noqa: E402
from parley.core.services import build_services  # noqa: E402
from parley.core.settings import ProviderSettings, Settings  # noqa: E402

TOKENS = 5000
ANSWER = ("lorem ipsum dolor sit amet " * 800)[: TOKENS * 4]  # ~4 chars per token


def version_ms(reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "parley", "--version"], check=True, capture_output=True
        )
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def serve() -> int:
    """``--serve``: answer every chat with ANSWER at full speed (see FakeServerProcess)."""
    return serve_until_stdin_closes(
        FakeLLMServer(default_reply=lambda _req: Text(ANSWER, chunk_chars=4))
    )


def server_process() -> FakeServerProcess:
    return FakeServerProcess([sys.executable, __file__, "--serve"], cwd=REPO)


async def raw_sdk(srv: FakeServerProcess, client: object) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    stream = await client.chat.completions.create(  # type: ignore[attr-defined]
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "go"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    n = 0
    async for chunk in stream:
        for c in chunk.choices:
            if c.delta.content:
                n += len(c.delta.content)
    assert n == len(ANSWER)
    return time.perf_counter() - t0, time.process_time() - c0


async def adapter(srv: FakeServerProcess, provider: ResilientProvider) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    r = StreamResult()
    async for ev in provider.stream(
        ChatRequest(model="gpt-4o-mini", messages=(Message("user", "go"),))
    ):
        r.feed(ev)
    assert len(r.text) == len(ANSWER)
    return time.perf_counter() - t0, time.process_time() - c0


async def core(srv: FakeServerProcess, services: object) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    last = None
    async for ev in services.chat.send("go", services.turn_options()):  # type: ignore[attr-defined]
        last = ev
    assert last is not None and len(last.text) == len(ANSWER)
    return time.perf_counter() - t0, time.process_time() - c0


async def streams(reps: int) -> dict[str, float]:
    import openai

    with server_process() as srv, tempfile.TemporaryDirectory() as home:
        os.environ["PARLEY_HOME"] = home
        client = openai.AsyncOpenAI(api_key="k", base_url=srv.openai_base_url, max_retries=0)
        provider = ResilientProvider(OpenAIProvider(api_key="k", base_url=srv.openai_base_url))
        settings = Settings(
            default_provider="openai",
            default_model="gpt-4o-mini",
            providers={"openai": ProviderSettings(base_url=srv.openai_base_url)},
        )
        secrets = Secrets(MemorySecretStore())
        secrets.store.set("openai", "k")
        services = build_services(default_paths(), settings, secrets)
        raw, ad, co = [], [], []
        for _ in range(2):  # warm-up: imports, connections, first SQLite pages
            await raw_sdk(srv, client)
            await adapter(srv, provider)
            await core(srv, services)
        for _ in range(reps):
            raw.append(await raw_sdk(srv, client))
            ad.append(await adapter(srv, provider))
            co.append(await core(srv, services))
        await client.close()
        await provider.aclose()
        await services.aclose()

    def med(xs: list[tuple[float, float]], i: int) -> float:
        return statistics.median(x[i] for x in xs)

    r, a, c = med(raw, 0), med(ad, 0), med(co, 0)
    return {
        "raw_sdk_ms": round(r * 1000, 1),
        "adapter_ms": round(a * 1000, 1),
        "core_ms": round(c * 1000, 1),
        "adapter_ratio": round(a / r, 3),
        "core_ratio": round(c / r, 3),
        "adapter_cpu_ratio": round(med(ad, 1) / med(raw, 1), 3),
        "core_cpu_ratio": round(med(co, 1) / med(raw, 1), 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        sys.exit(serve())
    result = {"version_ms": round(version_ms(7), 1)}
    result.update(asyncio.run(streams(args.reps)))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
