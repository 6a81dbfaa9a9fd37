"""A made-up vendor protocol for the registry tests: one adapter module, nothing else.

It answers ``echo <pid>: <question>`` without a network, so a test can see which process
built and ran it (the stream worker builds adapters from the registry it was given).
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator

from parley.core.providers.base import (
    ChatRequest,
    Finished,
    ModelInfo,
    StreamEvent,
    TextDelta,
    Timeouts,
    Usage,
)


class EchoProvider:
    """Echoes the last question, saying which process it runs in."""

    def __init__(
        self,
        *,
        name: str = "echo",
        label: str = "Echo",
        api_key: str | None = None,
        base_url: str | None = None,
        timeouts: Timeouts | None = None,
    ) -> None:
        self.name = name
        self.label = label

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        """One delta, its usage, the end."""
        question = request.messages[-1].content
        yield TextDelta(f"echo {os.getpid()}: {question}")
        yield Usage(input_tokens=1, output_tokens=1)
        yield Finished("stop", "stop")

    async def list_models(self) -> list[ModelInfo]:
        """No models to list."""
        return []

    async def aclose(self) -> None:
        """Nothing to close."""
