"""Image pulls shared by the tasks of a node: one pull per image at a time, and its outcome
reused for a short while, so that scaling a service to 50 tasks pulls its image once.

A pull goes with the registry credentials of the task's service (or none): the outcome is
kept per (image, credentials), so a task never gets the outcome of a pull made with
credentials its service does not have, and forgotten after `REUSE` seconds."""

from __future__ import annotations

import asyncio
import time

from shoal.api.errors import EngineError
from shoal.engine.client import Engine

REUSE = 10.0  # seconds a pull's outcome stands for other tasks


class Puller:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._inflight: dict[tuple[str, str | None], asyncio.Future[str | None]] = {}
        self._done: dict[tuple[str, str | None], tuple[float, str | None]] = {}

    async def ensure(self, image: str, auth: str | None = None) -> None:
        """Pull `image`; when the registry cannot give it, use the local copy (as Docker's
        swarm executor does). Raises EngineError when there is neither."""
        key = (image, auth)
        done = self._done.get(key)
        if done is not None and time.monotonic() - done[0] < REUSE:
            error = done[1]
        elif key in self._inflight:
            error = await asyncio.shield(self._inflight[key])
        else:
            fut: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
            self._inflight[key] = fut
            try:
                error = await self._pull(image, auth)
            except BaseException as e:
                fut.set_exception(e)
                fut.exception()  # retrieved: others waiting get it, nobody else must
                raise
            finally:
                del self._inflight[key]
            self._remember(key, error)
            fut.set_result(error)
        if error is not None:
            raise EngineError(404, error)

    def _remember(self, key: tuple[str, str | None], error: str | None) -> None:
        now = time.monotonic()
        for old in [k for k, (at, _) in self._done.items() if now - at >= REUSE]:
            del self._done[old]
        self._done[key] = (now, error)

    async def _pull(self, image: str, auth: str | None) -> str | None:
        """None when the image can be used, else why not. An image pinned by digest that the
        engine already has is not pulled again (as Docker's swarm executor does)."""
        if pinned(image) and await self.engine.image_exists(image):
            return None
        try:
            await self.engine.pull(image, auth)
            return None
        except EngineError as e:
            return None if await self.engine.image_exists(image) else e.message


def pinned(image: str) -> bool:
    """The reference names one exact image: `name@sha256:…` or an image ID."""
    return "@" in image or image.startswith("sha256:")
