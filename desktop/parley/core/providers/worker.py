"""Provider streams in a worker process, so the SDK's parsing does not share the window's core.

The openai and anthropic SDKs spend a few hundred microseconds of Python per streamed chunk
(SSE decoding, JSON, pydantic models). In the window that work competed with rendering on
the GUI thread: a fast stream then took ~1.5x as long as the SDK alone. A
:class:`StreamWorker` is one long-lived child process (``spawn``) that runs the real adapter
(SDK, stall limits, error mapping) and sends its events back over a pipe, text deltas
batched every 10 ms. It builds each adapter from the same
:class:`~parley.core.providers.registry.ProviderRegistry` as this process (handed to it at
start), so a new protocol needs no change here. Everything else stays here: retries and
fallback (:mod:`~parley.core.providers.resilient`), the agent and its tools, the database.

:class:`WorkerProvider` wraps an adapter: ``stream()`` goes through the worker when it is
running and through the adapter in this process otherwise (before the worker has started,
or after it died), so the worker is an optimisation, never a new way to fail. The API key
travels to the child over the pipe only (never argv, environment or a file).
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import logging
import multiprocessing
import threading
from collections.abc import AsyncGenerator
from multiprocessing.connection import Connection
from typing import Any

from parley.core.errors import ParleyError, ProviderDown
from parley.core.providers.base import (
    ChatRequest,
    ModelInfo,
    Provider,
    StreamEvent,
    TextDelta,
)
from parley.core.providers.registry import AdapterSpec, ProviderRegistry, builtin_registry
from parley.core.providers.stall import StallGuard, StallTimeout

log = logging.getLogger(__name__)

HANG_MARGIN_S = 3.0
"""A worker silent this long past the stream's own time limits is stopped as hung."""

BATCH_S = 0.01
"""How long the worker collects events before sending them (text deltas are joined); the
window shows at most ~30 frames a second."""


# ---------------------------------------------------------------- errors across the pipe


def _pack_error(exc: BaseException) -> tuple[str, str, dict[str, Any], tuple[Any, ...]]:
    cls = type(exc)
    state = {k: v for k, v in vars(exc).items() if not k.startswith("_")}
    return cls.__module__, cls.__qualname__, state, tuple(str(a) for a in exc.args)


def _unpack_error(packed: tuple[str, str, dict[str, Any], tuple[Any, ...]]) -> BaseException:
    """The worker's exception, rebuilt: Parley's typed errors exactly, anything else as a bug."""
    module, qualname, state, args = packed
    if module == "parley.core.errors":
        cls = getattr(importlib.import_module(module), qualname, None)
        if isinstance(cls, type) and issubclass(cls, ParleyError):
            exc = cls.__new__(cls)
            exc.args = args
            exc.__dict__.update(state)
            return exc
    return RuntimeError(f"stream worker: {qualname}: {args[0] if args else ''}")


def _ending_error(msg: tuple[Any, ...]) -> BaseException:
    """The exception for a message that ends a request other than ``end``."""
    if msg[0] == "error":
        return _unpack_error(msg[2])
    if msg[0] == "died":
        return ProviderDown("The connection worker stopped during the answer.")
    # "cancelled" without our asking: the worker is shutting down
    return ProviderDown("The connection worker cancelled the answer.")


# ---------------------------------------------------------------- the child process


def _worker_main(conn: Connection, registry: ProviderRegistry) -> None:
    """Entry point of the worker process: serve stream requests until the pipe closes."""
    asyncio.run(_serve(conn, registry))


async def _serve(conn: Connection, registry: ProviderRegistry) -> None:
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[Any] = asyncio.Queue()
    send_lock = threading.Lock()

    def send(msg: Any) -> None:
        with send_lock:
            conn.send(msg)

    def read() -> None:  # a thread: Connection.recv blocks
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                msg = None
            loop.call_soon_threadsafe(inbox.put_nowait, msg)
            if msg is None:
                return

    threading.Thread(target=read, name="parley-stream-worker-read", daemon=True).start()
    # Import the SDKs before saying ready (the first answer must not wait for them here;
    # until then the window streams in its own process).
    for module in registry.sdk_modules():
        try:
            importlib.import_module(module)
        except ImportError as exc:  # pragma: no cover - the SDKs are dependencies
            log.warning("stream worker could not import %s: %s", module, exc)
    adapters: dict[AdapterSpec, Provider] = {}
    running: dict[int, asyncio.Task[None]] = {}
    send(("ready",))
    try:
        while (msg := await inbox.get()) is not None:
            if msg[0] == "stream":
                _, rid, spec, request = msg
                adapter = adapters.get(spec)
                if adapter is None:
                    adapter = adapters[spec] = registry.build(spec)
                task = asyncio.create_task(_run_stream(rid, adapter, request, send))
                running[rid] = task
                task.add_done_callback(functools.partial(_forget, running, rid))
            elif msg[0] == "cancel" and msg[1] in running:
                running[msg[1]].cancel()
    finally:
        for task in list(running.values()):
            task.cancel()
        for adapter in adapters.values():
            await adapter.aclose()


def _forget(running: dict[int, asyncio.Task[None]], rid: int, _task: object) -> None:
    running.pop(rid, None)


async def _run_stream(rid: int, adapter: Provider, request: ChatRequest, send: Any) -> None:
    loop = asyncio.get_running_loop()
    batch: list[StreamEvent] = []
    timer: asyncio.TimerHandle | None = None
    since = 0.0

    def flush() -> None:
        nonlocal timer
        if timer is not None:
            timer.cancel()
            timer = None
        if batch:
            send(("events", rid, list(batch)))
            batch.clear()

    try:
        async for ev in adapter.stream(request):
            if isinstance(ev, TextDelta) and batch and isinstance(batch[-1], TextDelta):
                batch[-1] = TextDelta(batch[-1].text + ev.text)
            else:
                batch.append(ev)
            now = loop.time()
            if timer is None:  # first event of a batch: send it within BATCH_S...
                since = now
                timer = loop.call_later(BATCH_S, flush)
            elif now - since >= BATCH_S:
                # ...also when events keep coming without a pause (a fast stream's data is
                # already buffered: the loop, and so the timer, does not get a turn).
                flush()
        flush()
        send(("end", rid))
    except asyncio.CancelledError:
        send(("cancelled", rid))
    except BaseException as exc:  # every failure goes back to the caller
        flush()
        send(("error", rid, _pack_error(exc)))


# ---------------------------------------------------------------- this process


class StreamWorker:
    """The parent's handle on the worker process (start it once, after the first paint).

    Args:
        registry: The adapters the worker may build (default: Parley's built-in ones); it
            travels to the child process, which builds each stream's adapter from it.
    """

    def __init__(self, registry: ProviderRegistry | None = None) -> None:
        self.registry = registry if registry is not None else builtin_registry()
        self._proc: Any = None
        self._conn: Connection | None = None
        self._ready = False
        self._dead = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queues: dict[int, asyncio.Queue[Any]] = {}
        self._started: asyncio.Future[bool] | None = None
        self.streams = 0
        """How many streams were sent to the worker process; the last one's request id."""

    @property
    def pid(self) -> int | None:
        """The worker process's id, once started."""
        return None if self._proc is None else int(self._proc.pid)

    @property
    def ready(self) -> bool:
        """Whether streams go through the worker now."""
        return self._ready and not self._dead

    async def start(self) -> bool:
        """Start the worker process (idempotent); True once it is ready to stream."""
        if self._started is None:
            self._started = asyncio.get_running_loop().create_future()
            await self._spawn()
        return await asyncio.shield(self._started)

    async def _spawn(self) -> None:
        assert self._started is not None
        self._loop = asyncio.get_running_loop()
        try:
            # spawn, not fork: this process may be a Qt application with threads.
            ctx = multiprocessing.get_context("spawn")
            parent, child = ctx.Pipe(duplex=True)
            proc = ctx.Process(
                target=_worker_main,
                args=(child, self.registry),
                name="parley-stream-worker",
                daemon=True,
            )
            await asyncio.to_thread(proc.start)  # fork/exec takes tens of ms: not on the loop
            child.close()
        except (OSError, RuntimeError) as exc:
            log.warning("stream worker did not start (%s); streaming in-process", exc)
            self._dead = True
            self._started.set_result(False)
            return
        self._proc, self._conn = proc, parent
        self._loop.add_reader(parent.fileno(), self._on_readable)

    def _on_readable(self) -> None:
        conn = self._conn
        assert conn is not None
        try:
            while conn.poll():
                self._route(conn.recv())
        except (EOFError, OSError):
            self._died()

    def _route(self, msg: Any) -> None:
        if msg[0] == "ready":
            self._ready = True
            if self._started is not None and not self._started.done():
                self._started.set_result(True)
            return
        queue = self._queues.get(msg[1])
        if queue is not None:
            queue.put_nowait(msg)

    def _died(self) -> None:
        if self._dead:
            return
        self._dead = True
        log.warning("stream worker stopped; streaming in-process from now on")
        if self._loop is not None and self._conn is not None:
            self._loop.remove_reader(self._conn.fileno())
        if self._started is not None and not self._started.done():
            self._started.set_result(False)
        for queue in self._queues.values():
            queue.put_nowait(("died", 0))

    async def stream(
        self, spec: AdapterSpec, request: ChatRequest
    ) -> AsyncGenerator[StreamEvent, None]:
        """Run ``request`` in the worker and yield its events.

        Raises:
            ParleyError: what the adapter raised there (the same types and fields).
            ProviderDown: the worker stopped, or stopped answering, during the stream
                (retryable; later streams then run in this process).
        """
        assert self._conn is not None
        self.streams += 1
        rid = self.streams
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self._queues[rid] = queue
        done = False
        t = spec.timeouts
        try:
            # The worker enforces the network limits itself; this guard only catches a worker
            # that is alive but no longer answering (one periodic timer, not one per batch).
            with StallGuard(
                t.connect + t.first_byte + HANG_MARGIN_S, t.idle + HANG_MARGIN_S
            ) as guard:
                try:
                    self._conn.send(("stream", rid, spec, request))
                except (OSError, ValueError) as exc:
                    self._died()
                    raise ProviderDown("The connection worker stopped.") from exc
                while True:
                    msg = await guard.wait(queue.get())
                    guard.started = True
                    if msg[0] == "events":
                        for ev in msg[2]:
                            yield ev
                        continue
                    done = True  # every other message ends the request
                    if msg[0] == "end":
                        return
                    raise _ending_error(msg)
        except StallTimeout:
            done = True
            log.warning("stream worker stopped answering; stopping it, streaming in-process")
            self._kill()
            raise ProviderDown("The connection worker stopped answering.") from None
        finally:
            self._queues.pop(rid, None)
            if not done and not self._dead:
                try:  # the consumer stopped early (Stop, an error): stop the request there too
                    self._conn.send(("cancel", rid))
                except (OSError, ValueError):
                    self._died()

    def _kill(self) -> None:
        self._died()
        if self._proc is not None and self._proc.is_alive():
            self._proc.kill()

    async def aclose(self) -> None:
        """Stop the worker (it also stops by itself when this process goes away)."""
        conn, proc = self._conn, self._proc
        self._ready = False
        self._dead = True
        if conn is not None:
            if self._loop is not None:
                self._loop.remove_reader(conn.fileno())
            conn.close()
        if proc is not None:
            await asyncio.to_thread(proc.join, 3.0)
            if proc.is_alive():
                proc.kill()
        self._conn = self._proc = None


class WorkerProvider:
    """An adapter whose streams run in a :class:`StreamWorker` whenever it is running."""

    def __init__(self, inner: Provider, spec: AdapterSpec, worker: StreamWorker) -> None:
        self.inner = inner
        self.name = inner.name
        self._spec = spec
        self._worker = worker

    @property
    def client(self) -> Any:
        """The in-process SDK client (model lists, connection tests, warm-up)."""
        return getattr(self.inner, "client", None)

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        """Stream through the worker if it is ready, else in this process."""
        if not self._worker.ready:
            async for ev in self.inner.stream(request):
                yield ev
            return
        async for ev in self._worker.stream(self._spec, request):
            yield ev

    async def list_models(self) -> list[ModelInfo]:
        """Models the endpoint offers (asked from this process)."""
        return await self.inner.list_models()

    async def aclose(self) -> None:
        """Close the in-process client (the worker is closed by its owner)."""
        await self.inner.aclose()
