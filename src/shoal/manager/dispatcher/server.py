"""The cluster port (2377/tcp, TLS): how nodes join and how their agents keep a session.

* `GET /ca` — the root CA certificate; a joining node checks it against the digest in its
  join token before it trusts anything else.
* `POST /join` — token + certificate request → a node ID and a certificate signed by the
  cluster CA (CN node ID, OU role, O cluster ID).
* `GET /session` — a WebSocket over mutual TLS: the agent's session (`agent/session.py`'s
  messages as JSON). Only a certificate of a node the cluster still knows is accepted.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import ssl
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web

from shoal.api.errors import rpc
from shoal.api.models import Node, NodeDescription, NodeSpec, NodeStatus, TaskStatus
from shoal.api.naming import new_id
from shoal.manager.ca.authority import RootCA, identity, issue
from shoal.manager.ca.tokens import same
from shoal.manager.controlapi.cluster import get as get_cluster
from shoal.manager.dispatcher.dispatcher import Dispatcher
from shoal.store.store import Store

log = logging.getLogger(__name__)

INVALID_TOKEN = rpc("InvalidArgument", "A valid join token is necessary to join this cluster")


def wire_assignment(a: Any) -> dict[str, Any]:
    return {
        "type": "assignment",
        "full": a.full,
        "tasks": [t.model_dump(by_alias=True, exclude_none=True, mode="json") for t in a.tasks],
        "removed": a.removed,
        "services": {sid: {"name": i.name, "labels": i.labels} for sid, i in a.services.items()},
    }


def managers_of(store: Store) -> list[str]:
    return sorted(
        n.manager_status.addr
        for n in store.nodes()
        if n.manager_status is not None and n.manager_status.addr
    )


def make_cluster_app(
    store: Store, dispatcher: Dispatcher, root_ca: Callable[[], RootCA]
) -> web.Application:
    app = web.Application(client_max_size=8 * 1024**2)

    async def ca(request: web.Request) -> web.Response:
        return web.Response(body=root_ca().cert_pem, content_type="application/x-pem-file")

    async def join(request: web.Request) -> web.Response:
        try:
            body = await request.json()
            token = str(body["JoinToken"])
            csr = str(body["CSR"]).encode()
        except (ValueError, KeyError, TypeError):
            return _error(400, "invalid join request")
        cluster = get_cluster(store)
        if same(token, cluster.join_tokens.manager):
            return _error(
                400,
                rpc(
                    "Unimplemented",
                    "joining as a manager is not supported by this shoal version yet: "
                    "join as a worker",
                ),
            )
        if not same(token, cluster.join_tokens.worker):
            return _error(400, INVALID_TOKEN)
        availability = body.get("Availability") or "active"
        if availability not in ("active", "pause", "drain"):
            return _error(400, rpc("InvalidArgument", f"invalid availability {availability!r}"))
        node_id = new_id()
        try:
            cert = issue(root_ca(), csr, node_id, "worker", cluster.id)
        except ValueError as e:
            return _error(400, rpc("InvalidArgument", f"invalid certificate request: {e}"))
        node = Node(
            id=node_id,
            spec=NodeSpec(role="worker", availability=availability, labels={}),
            description=NodeDescription(hostname=body.get("Hostname")),
            status=NodeStatus(state="unknown", addr=body.get("Addr")),
        )
        await store.create(node)
        log.info("node %s (%s) joined as a worker", node_id, body.get("Hostname"))
        return web.json_response(
            {
                "NodeID": node_id,
                "Certificate": cert.decode(),
                "RootCA": root_ca().cert_pem.decode(),
                "ClusterID": cluster.id,
                "Managers": managers_of(store),
            }
        )

    async def session(request: web.Request) -> web.StreamResponse:
        peer = _peer_identity(request)
        if peer is None:
            return _error(403, "a node certificate is needed")
        node_id, _role, cluster_id = peer
        cluster = get_cluster(store)
        if cluster_id != cluster.id or store.get("nodes", node_id) is None:
            log.warning("refused session of node %s: not a member of this cluster", node_id)
            return _error(403, f"node {node_id} is not a member of this swarm")
        ws = web.WebSocketResponse(heartbeat=None, max_msg_size=64 * 1024**2)
        await ws.prepare(request)
        await _serve_session(ws, dispatcher, store, node_id, request)
        return ws

    app.router.add_get("/ca", ca)
    app.router.add_post("/join", join)
    app.router.add_get("/session", session)
    return app


async def _serve_session(
    ws: web.WebSocketResponse, dispatcher: Dispatcher, store: Store, node_id: str, request: Any
) -> None:
    first = await ws.receive()
    if first.type != WSMsgType.TEXT:
        return
    hello = json.loads(first.data)
    description = NodeDescription.model_validate(hello.get("description") or {})
    addr = hello.get("addr") or (request.remote or "")
    session = await dispatcher.register(node_id, description, addr)

    async def send_assignments() -> None:
        async for a in session.assignments():
            await ws.send_str(json.dumps(wire_assignment(a)))

    sender = asyncio.create_task(send_assignments())
    send_lock = asyncio.Lock()

    async def send(message: dict[str, Any]) -> None:
        async with send_lock:
            await ws.send_str(json.dumps(message))

    dispatcher.log_senders[node_id] = send
    try:
        await ws.send_str(json.dumps({"type": "managers", "managers": managers_of(store)}))
        async for msg in ws:
            if msg.type != WSMsgType.TEXT or session.closed:
                break  # a session the dispatcher gave up on: the agent registers anew
            data = json.loads(msg.data)
            kind = data.get("type")
            if kind == "heartbeat":
                period = await session.heartbeat()
                await ws.send_str(json.dumps({"type": "heartbeat", "period": period}))
            elif kind == "status":
                statuses = {
                    tid: TaskStatus.model_validate(st)
                    for tid, st in (data.get("statuses") or {}).items()
                }
                await session.report(statuses)
            elif kind == "log":
                chunk = (int(data["stream"]), base64.b64decode(data["data"]))
                await dispatcher.deliver_log(data["id"], chunk)
            elif kind == "log_end":
                await dispatcher.deliver_log(data["id"], None)
    finally:
        if dispatcher.log_senders.get(node_id) is send:
            del dispatcher.log_senders[node_id]
        if dispatcher.sessions.get(node_id) is session:
            dispatcher.session_lost(node_id)
        sender.cancel()
        with contextlib.suppress(BaseException):
            await sender
        await session.close()


def _peer_identity(request: web.Request) -> tuple[str, str, str] | None:
    transport = request.transport
    sslobj = transport.get_extra_info("ssl_object") if transport else None
    if sslobj is None:
        return None
    der = sslobj.getpeercert(binary_form=True)
    if not der:
        return None
    return identity(der)


def _error(status: int, message: str) -> web.Response:
    return web.Response(
        body=json.dumps({"message": message}).encode(),
        status=status,
        headers={"Content-Type": "application/json"},
    )


def server_context(cert_file: str, key_file: str, ca_file: str) -> ssl.SSLContext:
    """TLS for the cluster port: our node certificate; client certificates checked against
    the cluster CA when presented (joining nodes have none yet)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=ca_file)
    ctx.load_cert_chain(cert_file, key_file)
    ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx
