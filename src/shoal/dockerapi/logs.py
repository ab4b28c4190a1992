"""`docker service logs` and task logs: the engine's container logs, each line prefixed with
the details the docker CLI needs to name its source (`com.docker.swarm.node.id=…,…`), merged
into one multiplexed stream."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import Mapping
from urllib.parse import quote

from aiohttp import web

from shoal.api import labels
from shoal.api.models import Service, Task
from shoal.api.naming import container_name
from shoal.api.states import TaskState
from shoal.dockerapi.node import LocalNode
from shoal.store.store import Store

CONTENT_TYPE = "application/vnd.docker.multiplexed-stream"
DRAIN_AFTER_REMOVAL = 5.0  # seconds


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


def has_container(task: Task) -> bool:
    """The task's container was started (it may have ended since): there is a log to read. A
    container only created has none yet, and following it would end at once."""
    return task.status.state >= TaskState.STARTING and task.status.state != TaskState.REJECTED


def log_params(q: Mapping[str, str]) -> dict[str, str]:
    """The engine's container-log query for a service/task log query."""
    on = ("1", "true")
    params = {
        "stdout": "1" if q.get("stdout", "") in on else "0",
        "stderr": "1" if q.get("stderr", "") in on else "0",
        "follow": "1" if q.get("follow", "") in on else "0",
        "timestamps": "1" if q.get("timestamps", "") in on else "0",
        "tail": q.get("tail", "all"),
    }
    if q.get("since"):
        params["since"] = q["since"]
    return params


async def stream(
    request: web.Request,
    node: LocalNode,
    store: Store,
    tasks: list[Task],
    service_id: str | None = None,
) -> web.StreamResponse:
    """The logs of `tasks` — every one with a container, running or ended, on any node — as
    one multiplexed stream. Following a service (`service_id`), tasks that get a container
    later join in, and the stream ends once the service is gone and its logs are drained."""
    q = request.query
    params = log_params(q)
    follow = params["follow"] == "1"
    timestamps = params["timestamps"] == "1"
    with_details = q.get("details", "") in ("1", "true")
    resp = web.StreamResponse(headers={"Content-Type": CONTENT_TYPE})
    await resp.prepare(request)
    out: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=1024)
    pumps: dict[str, asyncio.Task[None]] = {}

    async def pump(task: Task) -> None:
        service = store.get(Service, task.service_id)
        name = container_name(task, service.spec.name if service else task.service_id)
        tty = bool(task.spec.container_spec and task.spec.container_spec.tty)
        prefix = details(task) if with_details else b""
        async for stream_id, payload in node.task_log(task, name, params, tty):
            for line in payload.splitlines(keepends=True):
                data = decorate(line, prefix, timestamps) if with_details else line
                await out.put(frame(stream_id, data))

    def start(task: Task) -> None:
        if task.id not in pumps and has_container(task):
            pumps[task.id] = asyncio.create_task(pump(task))

    async def drained() -> None:
        while pumps and not all(p.done() for p in pumps.values()):
            await asyncio.gather(*pumps.values(), return_exceptions=True)

    async def follow_service(sid: str) -> None:
        """Start the service's tasks as they get containers; return once it is gone."""
        for t in store.tasks_of(sid):
            start(t)
        while store.get(Service, sid) is not None:
            for ev in await events.get():
                if ev.kind == "tasks" and ev.new is not None and ev.new.service_id == sid:
                    start(ev.new)

    async def produce() -> None:
        try:
            if follow and service_id is not None:
                await follow_service(service_id)
                # Gone: its containers are being removed, which ends their logs; a node that
                # is away cannot end them, so they get a little while, not forever.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(drained(), DRAIN_AFTER_REMOVAL)
            else:
                for t in tasks:
                    start(t)
                await drained()
        finally:
            await out.put(None)

    events = store.subscribe()
    producer = asyncio.create_task(produce())
    try:
        while (chunk := await out.get()) is not None:
            await resp.write(chunk)
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        store.unsubscribe(events)
        producer.cancel()
        for p in pumps.values():
            p.cancel()
    with contextlib.suppress(ConnectionError):
        await resp.write_eof()
    return resp
