"""A task container's log, read from the engine as (stream, bytes) chunks: 1 stdout, 2 stderr.
Used by the manager's API for tasks on its own node and by agents for the manager's log
requests over their session."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator

import aiohttp

from shoal.engine.client import Engine


async def container_log(
    engine: Engine, container: str, params: dict[str, str], tty: bool
) -> AsyncIterator[tuple[int, bytes]]:
    try:
        async with engine.session.get(
            engine.url(f"/containers/{container}/logs"),
            params=params,
            timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
        ) as r:
            if r.status != 200:
                return
            if tty:
                async for chunk in r.content.iter_any():
                    yield 1, chunk
                return
            while True:
                try:
                    header = await r.content.readexactly(8)
                except asyncio.IncompleteReadError:
                    return
                stream_id, length = struct.unpack(">BxxxL", header)
                yield stream_id, await r.content.readexactly(length)
    except (aiohttp.ClientError, asyncio.IncompleteReadError):
        return
