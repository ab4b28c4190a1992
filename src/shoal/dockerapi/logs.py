"""`docker service logs` and task logs: the engine's container logs, each line prefixed with
the details the docker CLI needs to name its source (`com.docker.swarm.node.id=…,…`), merged
into one multiplexed stream."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from urllib.parse import quote

from aiohttp import web

from shoal.api import labels
from shoal.api.models import Service, Task
from shoal.api.naming import container_name
from shoal.dockerapi.node import LocalNode
from shoal.store.store import Store

CONTENT_TYPE = "application/vnd.docker.multiplexed-stream"


def details(task: Task) -> bytes:
    pairs = sorted(
        {
            labels.NODE_ID: task.node_id or "",
            labels.SERVICE_ID: task.service_id,
            labels.TASK_ID: task.id,
        }.items()
    )
    return ",".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs).encode()


def frame(stream: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxL", stream, len(payload)) + payload


def decorate(line: bytes, prefix: bytes, timestamps: bool) -> bytes:
    """`[<timestamp> ]<details> <message>` from an engine line `[<timestamp> ]<message>`."""
    if timestamps:
        ts, _, rest = line.partition(b" ")
        return ts + b" " + prefix + b" " + rest
    return prefix + b" " + line


async def stream(
    request: web.Request, node: LocalNode, store: Store, tasks: list[Task]
) -> web.StreamResponse:
    q = request.query
    follow = q.get("follow", "") in ("1", "true")
    timestamps = q.get("timestamps", "") in ("1", "true")
    with_details = q.get("details", "") in ("1", "true")
    params = {
        "stdout": "1" if q.get("stdout", "") in ("1", "true") else "0",
        "stderr": "1" if q.get("stderr", "") in ("1", "true") else "0",
        "follow": "1" if follow else "0",
        "timestamps": "1" if timestamps else "0",
        "tail": q.get("tail", "all"),
    }
    if q.get("since"):
        params["since"] = q["since"]
    resp = web.StreamResponse(headers={"Content-Type": CONTENT_TYPE})
    await resp.prepare(request)
    out: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=1024)

    async def pump(task: Task) -> None:
        service = store.get(Service, task.service_id)
        name = container_name(task, service.spec.name if service else task.service_id)
        tty = bool(task.spec.container_spec and task.spec.container_spec.tty)
        prefix = details(task) if with_details else b""
        async for stream_id, payload in node.task_log(task, name, params, tty):
            for line in payload.splitlines(keepends=True):
                data = decorate(line, prefix, timestamps) if with_details else line
                await out.put(frame(stream_id, data))

    pumps = [asyncio.create_task(pump(t)) for t in tasks]

    async def close_when_done() -> None:
        await asyncio.gather(*pumps, return_exceptions=True)
        await out.put(None)

    closer = asyncio.create_task(close_when_done())
    try:
        while (chunk := await out.get()) is not None:
            await resp.write(chunk)
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        for p in pumps:
            p.cancel()
        closer.cancel()
    with contextlib.suppress(ConnectionError):
        await resp.write_eof()
    return resp
