"""Local model servers on this computer: which usual ports answer ``GET /v1/models``.

Onboarding offers the servers found (Ollama, LM Studio, llama.cpp, vLLM). The probe only
ever talks to loopback, reads at most :data:`MAX_PROBE_BYTES` and never follows anything the
server says. It speaks a minimal HTTP/1.1 GET itself instead of going through an SDK: the
SDKs import slowly and would retry; a person should see results within a second. The ports
are an argument (tests, and a server on another port, point it elsewhere);
:data:`DEFAULT_PROBE_PORTS` is the one list of the usual ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_PROBE_PORTS: dict[str, int] = {
    "Ollama": 11434,
    "LM Studio": 1234,
    "llama.cpp server": 8080,
    "vLLM": 8000,
}
"""The usual local OpenAI-compatible servers and their default ports."""

PROBE_HOST = "127.0.0.1"
MAX_PROBE_BYTES = 1_000_000
"""A model list is small; a server that sends more is not one we want."""


@dataclass(frozen=True)
class LocalServer:
    """A model server that answered on this machine."""

    name: str
    """Which product usually listens on that port ("Ollama")."""
    base_url: str
    """``http://127.0.0.1:PORT/v1``."""
    models: tuple[str, ...]
    """Model ids it listed."""


def _dechunk(body: bytes) -> bytes:
    out = bytearray()
    rest = body
    while rest:
        line, _, rest = rest.partition(b"\r\n")
        try:
            size = int(line.split(b";")[0].strip() or b"0", 16)
        except ValueError:
            break
        if size == 0:
            break
        out += rest[:size]
        rest = rest[size + 2 :]
    return bytes(out)


async def probe_server(
    name: str, port: int, *, host: str = PROBE_HOST, timeout: float = 0.8
) -> LocalServer | None:
    """``GET http://host:port/v1/models``; the server's listing, or None if it does not answer.

    Args:
        name: The product name to show.
        port: TCP port on ``host``.
        host: Loopback address (kept loopback: onboarding never probes the network).
        timeout: Seconds for the whole exchange.
    """
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            request = (
                f"GET /v1/models HTTP/1.1\r\nHost: {host}:{port}\r\n"
                "Accept: application/json\r\nUser-Agent: Parley onboarding\r\n"
                "Connection: close\r\n\r\n"
            )
            writer.write(request.encode("ascii"))
            await writer.drain()
            data = await reader.read(MAX_PROBE_BYTES + 1)
            chunks = [data]
            total = len(data)
            while data and total <= MAX_PROBE_BYTES:
                data = await reader.read(MAX_PROBE_BYTES + 1 - total)
                chunks.append(data)
                total += len(data)
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        return None
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
    raw = b"".join(chunks)
    if total > MAX_PROBE_BYTES:
        return None
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    parts = lines[0].split() if lines else []
    if len(parts) < 2 or parts[1] != b"200":
        return None
    headers = {
        k.strip().lower(): v.strip() for k, _, v in (line.partition(b":") for line in lines[1:])
    }
    if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
        body = _dechunk(body)
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    items = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(items, list):
        return None
    models = tuple(
        str(m["id"])[:200] for m in items if isinstance(m, dict) and isinstance(m.get("id"), str)
    )
    return LocalServer(name=name, base_url=f"http://{host}:{port}/v1", models=models[:500])


async def probe_local_servers(
    ports: Mapping[str, int] = DEFAULT_PROBE_PORTS,
    *,
    host: str = PROBE_HOST,
    timeout: float = 0.8,
) -> list[LocalServer]:
    """Probe every ``name -> port`` concurrently; the servers that answered, in ``ports`` order."""
    results = await asyncio.gather(
        *(probe_server(name, port, host=host, timeout=timeout) for name, port in ports.items())
    )
    return [r for r in results if r is not None]
