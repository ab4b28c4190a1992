"""The agent: describes this node, opens a session with a manager, heartbeats, and hands
assignments to the worker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from shoal.agent.controller import Controllers
from shoal.agent.networks import NetworkHandler
from shoal.agent.session import Session
from shoal.agent.worker import Worker
from shoal.api.models import EngineDescription, NodeDescription, Platform, Resources, TLSInfo
from shoal.engine.client import EngineAPI

log = logging.getLogger(__name__)

MAX_BACKOFF = 2.0  # seconds between reconnect attempts, at most


async def describe(engine: EngineAPI, tls_info: TLSInfo | None = None) -> NodeDescription:
    """What the node reports of itself (SwarmKit's executor `Describe`): the engine's host,
    platform, resources and plugins (sorted by type, then name), and the trust root of the
    node's certificate."""
    info = await engine.info()
    labels = {}
    for item in info.get("Labels") or []:
        k, _, v = item.partition("=")
        labels[k] = v
    plugins = [
        {"Type": kind, "Name": name}
        for kind, names in (info.get("Plugins") or {}).items()
        for name in names or []
    ]
    plugins.sort(key=lambda p: (p["Type"], p["Name"]))
    return NodeDescription(
        hostname=info.get("Name"),
        platform=Platform(architecture=info.get("Architecture"), os=info.get("OSType")),
        resources=Resources(
            nano_cpus=int(info.get("NCPU", 0)) * 1_000_000_000, memory_bytes=info.get("MemTotal")
        ),
        engine=EngineDescription(
            engine_version=info.get("ServerVersion"), labels=labels or None, plugins=plugins
        ),
        tls_info=tls_info,
    )


class Agent:
    def __init__(
        self,
        engine: EngineAPI,
        node_id: str,
        connect: Callable[[NodeDescription], Awaitable[Session]],
        controllers: Controllers,
        clock: Callable[[], float] = time.time,
        networks: NetworkHandler | None = None,
        tls_info: TLSInfo | None = None,
    ) -> None:
        self.engine = engine
        self.tls_info = tls_info
        self.node_id = node_id
        self.connect = connect
        self.worker = Worker(engine, node_id, controllers, clock, networks)
        self.session: Session | None = None  # while connected

    async def run(self) -> None:
        backoff = 0.1
        try:
            while True:
                try:
                    description = await describe(self.engine, self.tls_info)
                    self.worker.description = description
                    session = await self.connect(description)
                    backoff = 0.1
                    self.session = session
                    try:
                        async with asyncio.TaskGroup() as tg:
                            tg.create_task(self._heartbeat(session))
                            await self.worker.run(session)
                    finally:
                        self.session = None
                        await session.close()
                except asyncio.CancelledError:
                    raise
                except Exception as e:  # noqa: BLE001 - reconnect with back-off
                    task = asyncio.current_task()
                    if task is not None and task.cancelling():
                        # Stopped while a part of the session failed: the TaskGroup raised
                        # the failure, not the cancellation. Stop all the same.
                        raise asyncio.CancelledError() from e
                    log.warning("agent session: %s", e)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
        finally:
            await self.worker.stop()

    async def stopping(self) -> None:
        """shoald stops to come back (a restart): the manager is told, so that the session
        ending is not taken for the host dying (best effort, 1 s at most)."""
        session = self.session
        if session is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(session.stopping(), 1)

    async def _heartbeat(self, session: Session) -> None:
        while True:
            period = await session.heartbeat()
            await asyncio.sleep(period / 2)
