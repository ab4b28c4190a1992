"""`MemoryStore`: the cluster store (`shoal.store.mirrored.MirroredStore`, the real one) over
`MemoryKV`, for component tests. Use it as an async context manager: the mirror runs inside."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from types import TracebackType

from shoal.store.mirrored import MirroredStore
from shoal.store.seal import Sealer
from shoal.testing.kv import MemoryKV


class MemoryStore(MirroredStore):
    def __init__(self, clock: Callable[[], float] = time.time, kv: MemoryKV | None = None) -> None:
        self.memory = kv or MemoryKV()
        super().__init__(self.memory, Sealer.new()[0], clock)
        self._runner: asyncio.Task[None] | None = None

    async def __aenter__(self) -> MemoryStore:
        self._runner = asyncio.create_task(self.run())
        await self.synced.wait()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
