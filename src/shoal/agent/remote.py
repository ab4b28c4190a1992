"""The agent's session with a manager over the network: a WebSocket on the cluster port,
mutual TLS with the node certificate; and the join handshake that gets that certificate."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from shoal.agent.engine import Engine
from shoal.agent.logs import container_log
from shoal.agent.session import Assignment, ServiceInfo
from shoal.api.errors import BadRequest, Unavailable, rpc
from shoal.api.models import NodeDescription, Task, TaskStatus
from shoal.manager.ca.authority import new_csr, new_key
from shoal.manager.ca.tokens import ca_digest, parse, same

CONNECT_TIMEOUT = 5.0
INVALID_TOKEN = rpc("InvalidArgument", "A valid join token is necessary to join this cluster")


def client_context(certs: Path | None = None, ca_pem: bytes | None = None) -> ssl.SSLContext:
    """TLS to a manager: its certificate must chain to the cluster CA (names are not checked:
    managers are reached by address). With `certs`, our node certificate goes along."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    if certs is not None:
        ctx.load_verify_locations(cafile=str(certs / "ca.crt"))
        ctx.load_cert_chain(str(certs / "node.crt"), str(certs / "node.key"))
    elif ca_pem is not None:
        ctx.load_verify_locations(cadata=ca_pem.decode())
    else:
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def join(
    manager: str, token: str, hostname: str, addr: str, availability: str, certs: Path
) -> dict[str, Any]:
    """Join the swarm at `manager` (host:port). Writes `certs/{ca,node}.crt` and `node.key`;
    returns the manager's answer (NodeID, ClusterID, Managers)."""
    parsed = parse(token)
    if parsed is None:
        raise BadRequest(INVALID_TOKEN)
    timeout = aiohttp.ClientTimeout(total=30, sock_connect=CONNECT_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        try:
            async with http.get(f"https://{manager}/ca", ssl=client_context()) as resp:
                ca_pem = await resp.read()
        except (aiohttp.ClientError, TimeoutError) as e:
            raise Unavailable(f"could not reach the manager at {manager}: {e}") from e
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        try:
            der = x509.load_pem_x509_certificate(ca_pem).public_bytes(serialization.Encoding.DER)
        except ValueError as e:
            raise Unavailable(f"{manager} did not send a CA certificate") from e
        if not same(ca_digest(der), parsed[0]):
            raise BadRequest("remote CA does not match fingerprint. Expected: " + parsed[0])
        key, key_pem = new_key()
        body = {
            "JoinToken": token,
            "CSR": new_csr(key).decode(),
            "Hostname": hostname,
            "Addr": addr,
            "Availability": availability,
        }
        async with http.post(
            f"https://{manager}/join", json=body, ssl=client_context(ca_pem=ca_pem)
        ) as resp:
            data = await resp.json(content_type=None)
            if resp.status != 200:
                raise BadRequest(data.get("message", f"join refused ({resp.status})"))
    certs.mkdir(parents=True, exist_ok=True)
    certs.chmod(0o700)
    (certs / "ca.crt").write_bytes(ca_pem)
    (certs / "node.crt").write_text(data["Certificate"])
    key_file = certs / "node.key"
    key_file.touch(mode=0o600)
    key_file.write_bytes(key_pem)
    return data  # type: ignore[no-any-return]


class RemoteSession:
    """`Session` over a WebSocket to one manager."""

    def __init__(self, node_id: str, http: aiohttp.ClientSession, ws: Any, engine: Engine) -> None:
        self.node_id = node_id
        self._http = http
        self._ws = ws
        self._engine = engine
        self._logs: dict[str, asyncio.Task[None]] = {}
        self._send_lock = asyncio.Lock()
        self._heartbeats: asyncio.Queue[float] = asyncio.Queue()
        self.managers: list[str] = []

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
        """A session with the first manager of `managers` that answers."""
        errors = []
        ctx = client_context(certs)
        for manager in managers:
            http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT)
            )
            try:
                ws = await http.ws_connect(
                    f"wss://{manager}/session", ssl=ctx, heartbeat=None, max_msg_size=0
                )
                hello = {"description": description.to_api(), "addr": addr}
                await ws.send_str(json.dumps(hello))
                return cls(node_id, http, ws, engine)
            except (aiohttp.ClientError, OSError, TimeoutError) as e:
                errors.append(f"{manager}: {e}")
                await http.close()
        raise Unavailable("no manager answers: " + "; ".join(errors))

    async def assignments(self) -> AsyncIterator[Assignment]:
        async for msg in self._ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(msg.data)
            kind = data.get("type")
            if kind == "assignment":
                yield Assignment(
                    full=data["full"],
                    tasks=[Task.model_validate(t) for t in data["tasks"]],
                    removed=data["removed"],
                    services={
                        sid: ServiceInfo(name=i["name"], labels=i.get("labels"))
                        for sid, i in data["services"].items()
                    },
                )
            elif kind == "heartbeat":
                self._heartbeats.put_nowait(float(data["period"]))
            elif kind == "managers":
                self.managers = list(data["managers"])
            elif kind == "logs":
                self._logs[data["id"]] = asyncio.create_task(self._send_log(data))
            elif kind == "logs_cancel" and data["id"] in self._logs:
                self._logs.pop(data["id"]).cancel()
        raise ConnectionError("the manager closed the session")

    async def _send(self, message: dict[str, Any]) -> None:
        async with self._send_lock:
            await self._ws.send_str(json.dumps(message))

    async def _send_log(self, req: dict[str, Any]) -> None:
        """Answer the manager's log request: the container's log, then its end."""
        try:
            async for stream, data in container_log(
                self._engine, req["container"], req["params"], bool(req.get("tty"))
            ):
                b64 = base64.b64encode(data).decode()
                await self._send({"type": "log", "id": req["id"], "stream": stream, "data": b64})
            await self._send({"type": "log_end", "id": req["id"]})
        finally:
            self._logs.pop(req["id"], None)

    async def report(self, statuses: dict[str, TaskStatus]) -> None:
        payload = {k: v.model_dump(by_alias=True, exclude_none=True) for k, v in statuses.items()}
        await self._send({"type": "status", "statuses": payload})

    async def heartbeat(self) -> float:
        await self._send({"type": "heartbeat"})
        return await asyncio.wait_for(self._heartbeats.get(), CONNECT_TIMEOUT)

    async def close(self) -> None:
        for job in self._logs.values():
            job.cancel()
        await self._ws.close()
        await self._http.close()
