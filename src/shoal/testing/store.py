"""`MemoryStore`: the cluster store (`shoal.store.mirrored.MirroredStore`, the real one) over
`MemoryKV`, for component tests. Use it as an async context manager: the mirror runs inside.
`two_managers()`: two managers' stores over one `MemoryKV`, the second's mirror lagging."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from types import TracebackType

from shoal.store.mirrored import MirroredStore
from shoal.store.seal import Sealer
from shoal.testing.kv import LaggingKV, MemoryKV


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


@contextlib.asynccontextmanager
async def two_managers() -> AsyncIterator[tuple[MemoryStore, MirroredStore, LaggingKV]]:
    async with MemoryStore() as a:
        lagging = LaggingKV(a.memory)
        b = MirroredStore(lagging, a._sealer)
        runner = asyncio.create_task(b.run())
        await b.synced.wait()
        try:
            yield a, b, lagging
        finally:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
