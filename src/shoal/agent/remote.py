"""The agent's session with a manager over the network: a WebSocket on the cluster port,
mutual TLS with the node certificate, `shoal.rpc.messages` both ways."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pydantic

from shoal.api.errors import BadRequest, Unavailable
from shoal.api.models import NodeDescription, TaskStatus
from shoal.api.naming import new_id
from shoal.ca.tls import client_context
from shoal.engine.client import Engine
from shoal.engine.logs import container_log
from shoal.rpc import messages as rpc
from shoal.rpc.messages import (
    Assignment,
    Attach,
    Attached,
    Detach,
    Heartbeat,
    HeartbeatAck,
    Hello,
    LogCancel,
    LogChunk,
    LogEnd,
    LogRequest,
    Managers,
    Named,
    NetworkApplied,
    NetworkState,
    RoleChange,
    StatusReport,
    Stopping,
)

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0
ACK_TIMEOUT = 2.0  # seconds a heartbeat waits for its answer, at least
ATTACH_TIMEOUT = 15.0


class RemoteSession:
    """`Session` over a WebSocket to one manager."""

    def __init__(
        self, node_id: str, http: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse,
        engine: Engine,
    ) -> None:  # fmt: skip
        self.node_id = node_id
        self._http = http
        self._ws = ws
        self._engine = engine
        self._logs: dict[str, asyncio.Task[None]] = {}
        self._send_lock = asyncio.Lock()
        self._heartbeats: asyncio.Queue[float] = asyncio.Queue()
        self._period = 1.0  # seconds between heartbeats, as the manager last said
        self._attaching: dict[str, asyncio.Future[Attached]] = {}
        self.managers: list[str] = []
        # Told the managers' addresses (at the start of each session): where to go next time.
        self.on_managers: Callable[[list[str]], None] | None = None
        # Told the node's role changed (promoted or demoted): the node's to carry out.
        self.on_role: Callable[[str], None] | None = None
        self.manager = ""  # the cluster-port address of the manager this session is with

    @classmethod
    async def connect(
        cls,
        node_id: str,
        managers: list[str],
        certs: Path,
        description: NodeDescription,
        addr: str,
        engine: Engine,
    ) -> RemoteSession:
        """A session with whichever manager of `managers` answers first: they are all tried
        at once, so a dead manager (no answer at all) costs no time. Only the first to answer
        is sent the `Hello` that opens the session: the others never register the node."""
        ctx = client_context(certs)

        async def attempt(manager: str) -> RemoteSession:
            http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT)
            )
            try:
                ws = await http.ws_connect(
                    f"wss://{manager}/session", ssl=ctx, heartbeat=None, max_msg_size=0
                )
                return cls(node_id, http, ws, engine)
            except BaseException:
                await http.close()
                raise

        errors: list[str] = []
        pending = {asyncio.create_task(attempt(m)): m for m in managers}
        try:
            while pending:
                done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for job in done:
                    manager = pending.pop(job)
                    if job.exception() is not None:
                        errors.append(f"{manager}: {job.exception()}")
                        continue
                    session: RemoteSession = job.result()
                    session.manager = manager
                    for other in done - {job}:  # answered at the same time: not this one
                        pending[other] = ""
                    try:
                        await session._send(Hello(description=description, addr=addr))
                    except BaseException:
                        await session.close()
                        raise
                    return session
        finally:
            for job in pending:
                job.cancel()
            for job in pending:  # one that answered meanwhile is closed
                with contextlib.suppress(BaseException):
                    await (await job).close()
        raise Unavailable("no manager answers: " + "; ".join(errors))

    async def assignments(self) -> AsyncIterator[Assignment | NetworkState]:
        async for msg in self._ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            try:
                message = rpc.to_agent(msg.data)
            except pydantic.ValidationError as e:
                log.warning("invalid message from the manager dropped: %s", rpc.invalid(e))
                continue
            if isinstance(message, Assignment | NetworkState):
                yield message
            elif isinstance(message, HeartbeatAck):
                self._heartbeats.put_nowait(message.period)
            elif isinstance(message, Attached):
                pending = self._attaching.pop(message.id, None)
                if pending is not None and not pending.done():
                    pending.set_result(message)
            elif isinstance(message, Managers):
                self.managers = list(message.managers)
                if self.on_managers is not None:
                    self.on_managers(self.managers)
            elif isinstance(message, RoleChange):
                if self.on_role is not None:
                    self.on_role(message.role)
            elif isinstance(message, LogRequest):
                self._logs[message.id] = asyncio.create_task(self._send_log(message))
            elif isinstance(message, LogCancel) and message.id in self._logs:
                self._logs.pop(message.id).cancel()
        raise ConnectionError("the manager closed the session")

    async def _send(self, message: rpc.ToManager) -> None:
        async with self._send_lock:
            await self._ws.send_str(rpc.encode(message))

    async def _send_log(self, req: LogRequest) -> None:
        """Answer the manager's log request: the container's log, then its end."""
        try:
            async for stream, data in container_log(
                self._engine, req.container, req.params, req.tty
            ):
                await self._send(LogChunk(id=req.id, stream=stream, data=data))
            await self._send(LogEnd(id=req.id))
        finally:
            self._logs.pop(req.id, None)

    async def report(self, statuses: dict[str, TaskStatus]) -> None:
        await self._send(StatusReport(statuses=statuses))

    async def attach(self, network_id: str, endpoint: str) -> str:
        request = new_id()
        answer: asyncio.Future[Attached] = asyncio.get_running_loop().create_future()
        self._attaching[request] = answer
        try:
            await self._send(Attach(id=request, network_id=network_id, endpoint=endpoint))
            got = await asyncio.wait_for(answer, ATTACH_TIMEOUT)
        finally:
            self._attaching.pop(request, None)
        if got.error:
            raise BadRequest(got.error)
        return got.address

    async def detach(self, network_id: str, address: str) -> None:
        await self._send(Detach(network_id=network_id, address=address))

    async def named(self, network_id: str, address: str, names: list[str]) -> None:
        await self._send(Named(network_id=network_id, address=address, names=names))

    async def applied(self, version: int) -> None:
        await self._send(NetworkApplied(version=version))

    async def stopping(self) -> None:
        await self._send(Stopping())

    async def heartbeat(self) -> float:
        """Send a heartbeat; the period until the next one. A manager that does not answer
        within two periods (two seconds at least) is given up: the agent connects anew."""
        await self._send(Heartbeat())
        async with asyncio.timeout(max(ACK_TIMEOUT, 2 * self._period)):
            self._period = await self._heartbeats.get()
        return self._period

    async def close(self) -> None:
        for job in self._logs.values():
            job.cancel()
        await self._ws.close()
        await self._http.close()
