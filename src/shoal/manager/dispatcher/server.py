"""The cluster port (2377/tcp, TLS): how nodes join and how their agents keep a session.

* `GET /ca` — the root CA certificate; a joining node checks it against the digest in its
  join token before it trusts anything else.
* `POST /join` — `JoinRequest` (token + certificate request) → `JoinAnswer`: a node ID and
  a certificate signed by the swarm's CA (CN node ID, OU role, O swarm ID). A manager's
  names its address too; its etcd member is added to the cluster as a learner, and the
  answer carries the cluster and the swarm's data key.
* `POST /renew` — `RenewRequest` over mutual TLS → `JoinAnswer`: a certificate for the role
  the node has in the store now (`docker node promote/demote`); a node promoted also gets
  its etcd member added as a learner, the cluster and the data key, as a manager that joins.
* `GET /session` — a WebSocket over mutual TLS carrying `shoal.rpc.messages`. Only a
  certificate of a node the swarm still knows is accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

import pydantic
from aiohttp import WSMsgType, web

from shoal.api.errors import INVALID_JOIN_TOKEN, FailedPrecondition, InvalidArgument, ShoalError
from shoal.api.models import ManagerStatus, Node, NodeDescription, NodeSpec, NodeStatus
from shoal.api.naming import new_id
from shoal.ca.authority import identity, issue
from shoal.ca.tokens import role_of
from shoal.manager import ca
from shoal.manager.dispatcher.dispatcher import Dispatcher, LocalSession
from shoal.rpc import messages as rpc_messages
from shoal.rpc.messages import (
    Attach,
    Attached,
    Detach,
    Heartbeat,
    HeartbeatAck,
    Hello,
    JoinAnswer,
    JoinRequest,
    LogChunk,
    LogEnd,
    Managers,
    Named,
    NetworkApplied,
    RenewRequest,
    StatusReport,
    Stopping,
)
from shoal.store.etcd import MemberExists
from shoal.store.store import Store

log = logging.getLogger(__name__)


def managers_of(store: Store) -> list[str]:
    return sorted(
        n.manager_status.addr
        for n in store.nodes()
        if n.manager_status is not None and n.manager_status.addr
    )


class Membership(Protocol):
    """The managers' etcd cluster, as a join changes it (`shoal.store.etcd.Etcd`)."""

    async def add_learner(self, name: str, peer_url: str) -> dict[str, str]: ...


def make_cluster_app(
    store: Store, dispatcher: Dispatcher, membership: Membership | None, data_key: bytes
) -> web.Application:
    """`membership` and `data_key`: what a manager that joins gets (its etcd member is added
    to the cluster, as a learner; the swarm's data key, over this TLS connection).
    `membership` None: the swarm's store is an external etcd cluster, which every manager
    reaches by itself."""
    app = web.Application(client_max_size=8 * 1024**2)

    async def root_ca(request: web.Request) -> web.Response:
        return web.Response(body=ca.load(store).cert_pem, content_type="application/x-pem-file")

    async def join(request: web.Request) -> web.Response:
        try:
            req = JoinRequest.model_validate_json(await request.read())
        except pydantic.ValidationError:
            return _error(400, "invalid join request")
        swarm = store.swarm()
        if swarm is None:
            return _error(503, "this manager has no swarm")
        role = role_of(req.JoinToken, swarm.join_tokens.worker, swarm.join_tokens.manager)
        if role == "manager" and not (req.Addr and req.ClusterAddr):
            return _refuse(InvalidArgument("a manager joins with its addresses"))
        if role == "manager" and (refusal := _store_mismatch(membership, req.EtcdPeerURL)):
            return refusal
        if role is None:
            return _refuse(InvalidArgument(INVALID_JOIN_TOKEN))
        if req.Availability not in ("active", "pause", "drain"):
            return _refuse(InvalidArgument(f"invalid availability {req.Availability!r}"))
        node_id = new_id()
        authority = ca.load(store)
        addresses = [req.Addr] if role == "manager" else []
        try:
            cert = issue(authority, req.CSR.encode(), node_id, role, swarm.id, addresses)
        except ValueError as e:
            return _refuse(InvalidArgument(f"invalid certificate request: {e}"))
        cluster: dict[str, str] = {}
        if role == "manager" and membership is not None:
            try:
                cluster = await membership.add_learner(node_id, req.EtcdPeerURL)
            except MemberExists as e:
                return _refuse(FailedPrecondition(
                    f"a manager at {req.ClusterAddr} (node {e.name}) is still a member of the "
                    f"swarm's cluster store: demote it (docker node demote {e.name}) and remove "
                    f"it (docker node rm {e.name}) before this host joins again"
                ))  # fmt: skip
            except Exception as e:  # noqa: BLE001 - no quorum, a refused peer URL
                log.warning("node %s could not join as a manager: %s", node_id, e)
                return _error(503, f"could not add the manager to the cluster: {e}")
        node = Node(
            id=node_id,
            spec=NodeSpec(role=role, availability=req.Availability, labels={}),
            description=NodeDescription(hostname=req.Hostname or None),
            status=NodeStatus(state="unknown", addr=req.Addr or None),
            manager_status=ManagerStatus(
                leader=False, reachability="unknown", addr=req.ClusterAddr
            ) if role == "manager" else None,
        )  # fmt: skip
        await store.create(node)
        log.info("node %s (%s) joined as a %s", node_id, req.Hostname, role)
        return _answer(store, node_id, cert, authority.cert_pem, swarm.id, role, data_key, cluster)

    async def session(request: web.Request) -> web.StreamResponse:
        known = _member(request, store)
        if isinstance(known, web.Response):
            return known
        node_id, ou, _ = known
        ws = web.WebSocketResponse(heartbeat=None, max_msg_size=64 * 1024**2)
        await ws.prepare(request)
        role = ROLES.get(ou)
        await _serve_session(ws, dispatcher, store, node_id, request.remote or "", role)
        return ws

    async def renew(request: web.Request) -> web.Response:
        known = _member(request, store)
        if isinstance(known, web.Response):
            return known
        node_id, _, node = known
        swarm = store.swarm()
        assert swarm is not None
        try:
            req = RenewRequest.model_validate_json(await request.read())
        except pydantic.ValidationError:
            return _error(400, "invalid renew request")
        role = node.spec.role
        if role == "manager" and not (req.Addr and req.ClusterAddr):
            return _refuse(InvalidArgument("a manager needs its addresses"))
        if role == "manager" and (refusal := _store_mismatch(membership, req.EtcdPeerURL)):
            return refusal
        authority = ca.load(store)
        try:
            cert = issue(authority, req.CSR.encode(), node_id, role, swarm.id,
                         [req.Addr] if role == "manager" else [])  # fmt: skip
        except ValueError as e:
            return _refuse(InvalidArgument(f"invalid certificate request: {e}"))
        cluster: dict[str, str] = {}
        if role == "manager":
            try:
                if membership is not None:
                    cluster = await membership.add_learner(node_id, req.EtcdPeerURL)
            except Exception as e:  # noqa: BLE001 - no quorum, a refused peer URL
                log.warning("node %s could not become a manager: %s", node_id, e)
                return _error(503, f"could not add the manager to the cluster: {e}")

            def member(n: Node) -> bool:
                if n.spec.role != "manager" or n.manager_status is not None:
                    return False
                n.manager_status = ManagerStatus(
                    leader=False, reachability="unknown", addr=req.ClusterAddr
                )
                return True

            await store.modify(Node, {node_id: member})
        log.info("node %s has a %s certificate now", node_id, role)
        return _answer(store, node_id, cert, authority.cert_pem, swarm.id, role, data_key, cluster)

    app.router.add_get("/ca", root_ca)
    app.router.add_post("/join", join)
    app.router.add_post("/renew", renew)
    app.router.add_get("/session", session)
    return app


ROLES = {"swarm-manager": "manager", "swarm-worker": "worker"}  # certificate OU → role


def _store_mismatch(membership: Membership | None, peer_url: str) -> web.Response | None:
    """A manager to be must keep the swarm where the others do: in an etcd member of its
    own (it names the member's peer URL) or in the swarm's external etcd cluster (none)."""
    if membership is None and peer_url:
        return _refuse(FailedPrecondition(
            "this swarm keeps its state in an external etcd cluster: start shoald on the new "
            "manager with --etcd-endpoints (and --etcd-cacert, --etcd-cert, --etcd-key) naming it"
        ))  # fmt: skip
    if membership is not None and not peer_url:
        return _refuse(FailedPrecondition(
            "this swarm keeps its state in the managers' own etcd members: start shoald on the "
            "new manager without --etcd-endpoints"
        ))  # fmt: skip
    return None


async def _serve_session(
    ws: web.WebSocketResponse,
    dispatcher: Dispatcher,
    store: Store,
    node_id: str,
    remote: str,
    role: str | None = None,
) -> None:
    first = await ws.receive()
    if first.type != WSMsgType.TEXT:
        return
    try:
        hello = rpc_messages.to_manager(first.data)
    except pydantic.ValidationError as e:
        log.warning("node %s: invalid session opening: %s", node_id, rpc_messages.invalid(e))
        return
    if not isinstance(hello, Hello):
        log.warning("node %s: the session must open with hello, not %s", node_id, hello.type)
        return
    try:
        session = await dispatcher.register(node_id, hello.description, hello.addr or remote, role)
    except Exception as e:  # noqa: BLE001 - no quorum, no lease yet: the agent comes back
        log.warning("node %s: session not opened: %s", node_id, e)
        return
    send_lock = asyncio.Lock()

    async def send(message: rpc_messages.ToAgent) -> None:
        async with send_lock:
            await ws.send_str(rpc_messages.encode(message))

    async def send_assignments() -> None:
        async for a in session.assignments():
            await send(a)

    sender = asyncio.create_task(send_assignments())
    dispatcher.log_senders[node_id] = send
    try:
        await send(Managers(managers=managers_of(store)))
        async for msg in ws:
            if msg.type != WSMsgType.TEXT or session.closed:
                break  # a session the dispatcher gave up on: the agent registers anew
            try:
                message = rpc_messages.to_manager(msg.data)
            except pydantic.ValidationError as e:
                why = rpc_messages.invalid(e)
                log.warning("node %s: invalid message dropped: %s", node_id, why)
                continue
            await _handle(message, session, dispatcher, send)
    finally:
        if dispatcher.log_senders.get(node_id) is send:
            del dispatcher.log_senders[node_id]
        if dispatcher.sessions.get(node_id) is session:
            dispatcher.session_lost(node_id)
        sender.cancel()
        with contextlib.suppress(BaseException):
            await sender
        await session.close()


async def _handle(
    message: rpc_messages.ToManager,
    session: LocalSession,
    dispatcher: Dispatcher,
    send: Callable[[rpc_messages.ToAgent], Awaitable[None]],
) -> None:
    if isinstance(message, Heartbeat):
        await send(HeartbeatAck(period=await session.heartbeat()))
    elif isinstance(message, StatusReport):
        await session.report(message.statuses)
    elif isinstance(message, Attach):
        job = asyncio.create_task(_attach(message, session, send))
        _attaching.add(job)
        job.add_done_callback(_attaching.discard)
    elif isinstance(message, Detach):
        await session.detach(message.network_id, message.address)
    elif isinstance(message, Named):
        await session.named(message.network_id, message.address, message.names)
    elif isinstance(message, NetworkApplied):
        await session.applied(message.version)
    elif isinstance(message, Stopping):
        await session.stopping()
    elif isinstance(message, LogChunk):
        await dispatcher.deliver_log(message.id, (message.stream, message.data))
    elif isinstance(message, LogEnd):
        await dispatcher.deliver_log(message.id, None)


_attaching: set[asyncio.Task[None]] = set()  # attach requests being answered


async def _attach(
    message: Attach, session: LocalSession, send: Callable[[rpc_messages.ToAgent], Awaitable[None]]
) -> None:
    """Answer an attach without holding up the session's other messages."""
    try:
        address = await session.attach(message.network_id, message.endpoint)
        answer = Attached(id=message.id, address=address)
    except (ShoalError, TimeoutError) as e:
        answer = Attached(id=message.id, error=str(e) or "no address in time")
    with contextlib.suppress(ConnectionError):
        await send(answer)


def _answer(
    store: Store,
    node_id: str,
    cert: bytes,
    ca_pem: bytes,
    swarm_id: str,
    role: str,
    data_key: bytes,
    cluster: dict[str, str],
) -> web.Response:
    """A join's (or a renewal's) answer: a manager's carries the data key and its etcd
    cluster too."""
    answer = JoinAnswer(
        NodeID=node_id,
        Certificate=cert.decode(),
        RootCA=ca_pem.decode(),
        SwarmID=swarm_id,
        Managers=managers_of(store),
        DataKey=data_key if role == "manager" else None,
        EtcdCluster=cluster,
    )
    return web.Response(text=answer.model_dump_json(), content_type="application/json")


def _member(request: web.Request, store: Store) -> tuple[str, str, Node] | web.Response:
    """(node ID, role OU, node) of the peer's certificate, if it is a node this swarm still
    knows; else the 403 answer."""
    peer = _peer_identity(request)
    if peer is None:
        return _error(403, "a node certificate is needed")
    node_id, ou, swarm_id = peer
    swarm = store.swarm()
    node = store.get(Node, node_id)
    if swarm is None or swarm_id != swarm.id or node is None:
        log.warning("refused session of node %s: not a member of this swarm", node_id)
        return _error(403, f"node {node_id} is not a member of this swarm")
    return node_id, ou, node


def _peer_identity(request: web.Request) -> tuple[str, str, str] | None:
    transport = request.transport
    sslobj = transport.get_extra_info("ssl_object") if transport else None
    if sslobj is None:
        return None
    der = sslobj.getpeercert(binary_form=True)
    if not der:
        return None
    return identity(der)


def _refuse(err: ShoalError) -> web.Response:
    """A refused join, answered 400 with the error's text (the joining node shows it)."""
    return _error(400, str(err))


def _error(status: int, message: str) -> web.Response:
    return web.Response(
        body=json.dumps({"message": message}).encode(),
        status=status,
        headers={"Content-Type": "application/json"},
    )
