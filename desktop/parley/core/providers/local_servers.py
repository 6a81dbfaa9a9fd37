"""Local model servers on this computer: which usual ports answer ``GET /v1/models``.

Onboarding offers the servers found (Ollama, LM Studio, llama.cpp, vLLM, Jan). The scan only
ever talks to loopback, reads at most :data:`MAX_PROBE_BYTES` and never follows anything the
server says. It speaks a minimal HTTP/1.1 GET itself instead of going through an SDK: the
SDKs import slowly and would retry; a person should see results within a second. The ports
are an argument (tests, and a server on another port, point it elsewhere);
:data:`DEFAULT_PROBE_PORTS` is the one list of the usual ones.

A server elsewhere (another port, another machine on the network, https) is asked only when
the person types its address (:func:`probe_address`, :func:`parse_server_address`): that is
their explicit choice, so it may be any host.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

DEFAULT_PROBE_PORTS: dict[str, int] = {
    "Ollama": 11434,
    "LM Studio": 1234,
    "llama.cpp server": 8080,
    "vLLM": 8000,
    "Jan": 1337,
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


@dataclass(frozen=True)
class ServerAddress:
    """Where a typed server address points (see :func:`parse_server_address`)."""

    scheme: str
    """``http`` or ``https``."""
    host: str
    port: int
    path: str
    """The API's path prefix, ``/v1`` unless the address named another one."""

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL, e.g. ``http://127.0.0.1:11434/v1``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{self.path}"


def parse_server_address(text: str) -> ServerAddress:
    """Read what a person typed: ``localhost:1234``, ``http://10.0.0.5:11434/v1``, ``:8080``...

    A bare port means this computer; no scheme means ``http``; no path means ``/v1``; no
    port means the scheme's default (80 or 443).

    Raises:
        ValueError: a message for the person (empty, not http(s), bad port...).
    """
    raw = text.strip()
    if not raw:
        raise ValueError("Type a server address, for example localhost:11434.")
    if raw.isdigit() or (raw.startswith(":") and raw[1:].isdigit()):
        raw = f"127.0.0.1:{raw.lstrip(':')}"
    if "://" not in raw:
        raw = f"http://{raw}"
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"That is not a server address ({exc}).") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError("Only http:// and https:// servers are supported.")
    if not parts.hostname:
        raise ValueError("That address has no host name.")
    if parts.username or parts.password:
        raise ValueError("Put no user name or password in the address.")
    path = parts.path.rstrip("/")
    for suffix in ("/chat/completions", "/models"):
        if path.endswith(suffix):
            path = path[: -len(suffix)]
    return ServerAddress(
        scheme=parts.scheme,
        host=parts.hostname,
        port=port or (443 if parts.scheme == "https" else 80),
        path=path or "/v1",
    )


def product_for_port(port: int) -> str | None:
    """The product that usually listens on ``port`` ("Ollama"), if any."""
    return next((name for name, p in DEFAULT_PROBE_PORTS.items() if p == port), None)


async def _list_models(address: ServerAddress, *, timeout: float) -> tuple[str, ...] | None:
    """``GET <base>/models`` with a minimal HTTP/1.1 client; the model ids, or None."""
    writer: asyncio.StreamWriter | None = None
    host = address.host
    try:
        async with asyncio.timeout(timeout):
            tls = ssl.create_default_context() if address.scheme == "https" else None
            reader, writer = await asyncio.open_connection(
                host, address.port, ssl=tls, server_hostname=host if tls else None
            )
            shown_host = f"[{host}]" if ":" in host else host
            request = (
                f"GET {address.path}/models HTTP/1.1\r\nHost: {shown_host}:{address.port}\r\n"
                "Accept: application/json\r\nUser-Agent: Parley onboarding\r\n"
                "Connection: close\r\n\r\n"
            )
            writer.write(request.encode("ascii", "replace"))
            await writer.drain()
            data = await reader.read(MAX_PROBE_BYTES + 1)
            chunks = [data]
            total = len(data)
            while data and total <= MAX_PROBE_BYTES:
                data = await reader.read(MAX_PROBE_BYTES + 1 - total)
                chunks.append(data)
                total += len(data)
    except (OSError, TimeoutError, asyncio.IncompleteReadError, ssl.SSLError, UnicodeError):
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
    return models[:500]


async def probe_server(
    name: str, port: int, *, host: str = PROBE_HOST, timeout: float = 0.8
) -> LocalServer | None:
    """``GET http://host:port/v1/models``; the server's listing, or None if it does not answer.

    Args:
        name: The product name to show.
        port: TCP port on ``host``.
        host: Loopback address (kept loopback: the scan never probes the network).
        timeout: Seconds for the whole exchange.
    """
    address = ServerAddress("http", host, port, "/v1")
    models = await _list_models(address, timeout=timeout)
    if models is None:
        return None
    return LocalServer(name=name, base_url=address.base_url, models=models)


async def probe_address(text: str, *, timeout: float = 3.0) -> LocalServer | None:
    """Ask the server at a typed address for its models; None when it did not answer as one.

    Raises:
        ValueError: the address cannot be read (the message says why).
    """
    address = parse_server_address(text)
    models = await _list_models(address, timeout=timeout)
    if models is None:
        return None
    name = product_for_port(address.port) or "Server"
    if address.host not in ("127.0.0.1", "localhost", "::1"):
        name = f"{name} on {address.host}"
    return LocalServer(name=name, base_url=address.base_url, models=models)


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
