"""The dispatcher: the manager's side of agent sessions (every manager runs one).

It registers nodes, streams each node its assignment set (the tasks the scheduler gave it,
first in full, then as increments), takes their status reports and writes them to the store in
batches, and records heartbeats in memory so that a heartbeat costs no store write. It claims
the nodes whose sessions it holds (`claims.py`), so that every manager knows a node is served;
a node whose heartbeats stop here is marked down here, unless another manager holds its
session by then. Nodes with no session anywhere are the leader's node monitor's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from shoal.api.defaults import HEARTBEAT_PERIOD
from shoal.api.errors import Conflict, NotFound, PermissionDenied
from shoal.api.models import (
    Attachment,
    Config,
    Network,
    Node,
    NodeDescription,
    NodeStatus,
    Secret,
    Service,
    Task,
    TaskStatus,
)
from shoal.api.naming import new_id
from shoal.api.states import TaskState
from shoal.manager.dispatcher.claims import Claims
from shoal.manager.dispatcher.networks import balancers, endpoints, in_rotation, state_for
from shoal.rpc.messages import (
    Assignment,
    LogCancel,
    LogRequest,
    NetworkState,
    RoleChange,
    ServiceInfo,
)
from shoal.store.store import Event, Store

log = logging.getLogger(__name__)

ATTACH_WAIT = 10.0  # seconds an attach waits for its address, at most
FLUSH_INTERVAL = 0.01  # gathers a burst; writes in flight gather the next batch
# A node is down once it has missed this many heartbeat periods (plus a little slack).
GRACE_PERIODS = 3


DRAIN_TIMEOUT = 2.0  # seconds a stop waits, at most, for every node to leave the task out


@dataclass(frozen=True)
class Drain:
    version: int  # the first network state version without the task
    deadline: float  # on the dispatcher's clock


def heartbeat_period(store: Store) -> float:
    """Seconds between a node's heartbeats (the swarm's `--dispatcher-heartbeat`)."""
    swarm = store.swarm()
    if swarm is not None and swarm.spec.dispatcher.heartbeat_period:
        return float(swarm.spec.dispatcher.heartbeat_period) / 1e9
    return HEARTBEAT_PERIOD / 1e9


def grace(store: Store) -> float:
    """Seconds without a heartbeat after which a node is down."""
    return heartbeat_period(store) * GRACE_PERIODS + 0.5


def assigned(task: Task, node_id: str) -> bool:
    return task.node_id == node_id and task.status.state >= TaskState.ASSIGNED


def stopping(old: Task, new: Task) -> bool:
    """The task, running, is told to stop (shutdown, remove)."""
    return (
        old.status.state == TaskState.RUNNING
        and old.desired_state <= TaskState.RUNNING < new.desired_state
    )


def service_info(service: Service | None, service_id: str) -> ServiceInfo:
    """What a node with tasks of the service is told of it (its registry credentials among
    that: only ever built for the services of the tasks an assignment carries)."""
    if service is None:
        return ServiceInfo(name=service_id)
    return ServiceInfo(
        name=service.spec.name, labels=service.spec.labels, registry_auth=service.registry_auth
    )


class Dispatcher:
    def __init__(
        self, store: Store, claims: Claims, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.claims = claims
        self.clock = clock
        self.last_seen: dict[str, float] = {}
        self._stopping: set[str] = set()  # nodes whose shoald said it restarts
        self.sessions: dict[str, LocalSession] = {}
        self._statuses: dict[str, TaskStatus] = {}
        self._flush = asyncio.Event()
        # Log streams from remote agents: node → how to send it a message; request → chunks.
        self.log_senders: dict[str, Callable[[LogRequest | LogCancel], Awaitable[None]]] = {}
        self._log_requests: dict[str, asyncio.Queue[tuple[int, bytes] | None]] = {}
        self._sent_networks: dict[str, NetworkState] = {}  # what each node was sent last
        # Network states are numbered across all nodes; each node says which one it applied.
        self._version = 0
        self._sent_version: dict[str, int] = {}
        self._applied: dict[str, int] = {}
        # Tasks told to stop while in a rotation: their stop waits until every node applied a
        # network state without them (the first such state's version), or the deadline.
        self._draining: dict[str, Drain] = {}
        self._drained = asyncio.Event()

    @property
    def heartbeat_period(self) -> float:
        return heartbeat_period(self.store)

    async def run(self) -> None:
        queue = self.store.subscribe()
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.claims.run())
                tg.create_task(self._flush_loop())
                tg.create_task(self._expire_loop())
                tg.create_task(self._drain_loop())
                while True:
                    self._route(await queue.get())
        finally:
            self.store.unsubscribe(queue)

    async def register(
        self, node_id: str, description: NodeDescription, addr: str, role: str | None = None
    ) -> LocalSession:
        """A node's agent (re)connects: the node is ready; its session starts with the full
        assignment set. `role`: the one its certificate names — if the store's differs (it
        was promoted or demoted meanwhile), the session tells it first."""
        await self.claims.claim(node_id)
        self.last_seen[node_id] = self.clock()

        def ready(node: Node) -> bool:
            node.description = description
            node.status = NodeStatus(state="ready", addr=addr)
            return True

        await self.store.modify(Node, {node_id: ready})
        old = self.sessions.get(node_id)
        if old is not None:
            old.closed = True
        session = LocalSession(self, node_id)
        self.sessions[node_id] = session
        node = self.store.get(Node, node_id)
        if role is not None and node is not None and node.spec.role != role:
            session.push(RoleChange(role="manager" if node.spec.role == "manager" else "worker"))
        # The network state first: the node's engine networks need it before its tasks.
        self._sent_networks.pop(node_id, None)
        self._push_networks([node_id])
        tasks = [t for t in self.store.tasks_on(node_id) if assigned(t, node_id)]
        session.push(self._with_dependencies(Assignment(full=True, tasks=tasks)))
        return session

    def _push_networks(self, node_ids: list[str]) -> None:
        """Send each node its network state, if it changed since the last one it got."""
        nodes = {n.id: n for n in self.store.nodes()}
        tasks = list(self.store.tasks())
        everything = endpoints(self.store, tasks, nodes)
        balanced = balancers(self.store, tasks, nodes)
        for node_id in node_ids:
            session = self.sessions.get(node_id)
            if session is None:
                continue
            state = state_for(self.store, node_id, everything, balanced)
            if self._sent_networks.get(node_id) != state:
                self._sent_networks[node_id] = state
                self._version += 1
                self._sent_version[node_id] = self._version
                session.push(state.model_copy(update={"version": self._version}))

    def applied(self, node_id: str, version: int) -> None:
        """The node carries out its network state of `version`."""
        self._applied[node_id] = max(version, self._applied.get(node_id, 0))
        if self._draining:
            self._drained.set()

    def _drain(self, task: Task, version: int) -> None:
        """Hold back the stop of a task in a rotation: the network states from `version` on
        leave it out."""
        self._draining[task.id] = Drain(version, self.clock() + DRAIN_TIMEOUT)
        self._drained.set()

    def _out_of_rotation(self, drain: Drain) -> bool:
        """Every node with a session applied a state without the task, or was sent none since
        (its state did not have the task), or the deadline passed (a slow or dying node)."""
        if self.clock() >= drain.deadline:
            return True
        return all(
            self._sent_version.get(n, 0) < drain.version or self._applied.get(n, 0) >= drain.version
            for n in self.sessions
        )

    def _release_drained(self) -> None:
        """Send the stops whose tasks are out of every rotation."""
        per_node: dict[str, Assignment] = {}
        for task_id, drain in list(self._draining.items()):
            if not self._out_of_rotation(drain):
                continue
            del self._draining[task_id]
            task = self.store.get(Task, task_id)
            if task is not None and task.node_id in self.sessions and assigned(task, task.node_id):
                per_node.setdefault(task.node_id, Assignment(full=False)).tasks.append(task)
        for node_id, a in per_node.items():
            self.sessions[node_id].push(self._with_dependencies(a))

    async def _drain_loop(self) -> None:
        while True:
            if not self._draining:
                await self._drained.wait()
            self._drained.clear()
            self._release_drained()
            if self._draining:
                deadline = min(d.deadline for d in self._draining.values())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._drained.wait(), max(0.0, deadline - self.clock()) + 0.001
                    )

    def _with_dependencies(self, a: Assignment) -> Assignment:
        """The assignment with the services of its tasks, and no other: a node learns of a
        service (and gets its registry credentials) only with a task of it; and with the
        secrets and configs its tasks that are to run refer to, and no other."""
        ids = {t.service_id for t in a.tasks}
        a.services = {sid: service_info(self.store.get(Service, sid), sid) for sid in ids}
        secrets: dict[str, Secret] = {}
        configs: dict[str, Config] = {}
        for t in a.tasks:
            cs = t.spec.container_spec
            if cs is None or t.desired_state > TaskState.COMPLETE:
                continue
            for sref in cs.secrets or []:
                if (secret := self.store.get(Secret, sref.secret_id)) is not None:
                    secrets[secret.id] = secret
            for cref in cs.configs or []:
                if (config := self.store.get(Config, cref.config_id)) is not None:
                    configs[config.id] = config
        a.secrets, a.configs = list(secrets.values()), list(configs.values())
        return a

    def _route(self, events: list[Event]) -> None:
        per_node: dict[str, Assignment] = {}
        without = self._version + 1  # the states sent from here on follow these events
        if any(_touches_networks(ev) for ev in events):
            self._push_networks(list(self.sessions))
        for ev in events:
            if ev.kind == "nodes" and ev.new is None:
                self._forget_node(ev.id)  # removed: its certificate is no longer accepted
            if ev.kind == "nodes" and ev.id in self.sessions and role_changed(ev):
                self.sessions[ev.id].push(RoleChange(role=ev.new.spec.role))
            if ev.kind != "tasks":
                continue
            old, new = ev.old, ev.new
            old_node = old.node_id if old is not None and assigned(old, old.node_id) else None
            new_node = new.node_id if new is not None and assigned(new, new.node_id) else None
            if new is not None and new.id in self._draining and old_node == new_node:
                continue  # its stop is held back until it is out of every rotation
            if (
                old is not None and new is not None and old_node == new_node
                and stopping(old, new) and in_rotation(self.store, old)
            ):  # fmt: skip
                self._drain(new, without)
                continue
            if new_node in self.sessions and (
                old_node != new_node
                or old.desired_state != new.desired_state
                or old.spec != new.spec
            ):
                per_node.setdefault(new_node, Assignment(full=False)).tasks.append(new)
            if old_node in self.sessions and old_node != new_node:
                self._draining.pop(old.id, None)
                per_node.setdefault(old_node, Assignment(full=False)).removed.append(old.id)
        for node_id, a in per_node.items():
            self.sessions[node_id].push(self._with_dependencies(a))

    async def report(self, node_id: str, statuses: dict[str, TaskStatus]) -> None:
        self.last_seen[node_id] = self.clock()
        self._statuses.update(statuses)
        self._flush.set()

    async def attach(self, node_id: str, network_id: str, endpoint: str) -> str:
        """An address (CIDR) for a plain container joining an attachable network on the node:
        an `Attachment` the allocator gives one; the same endpoint asking again gets the same."""
        network = self.store.get(Network, network_id)
        if network is None:
            raise NotFound(f"network {network_id} not found")
        if not network.spec.attachable:
            raise PermissionDenied(f"network {network.name} not manually attachable")
        events = self.store.subscribe()
        try:
            found = self._attachment(node_id, network_id, endpoint)
            if found is None:
                found = await self.store.create(
                    Attachment(id=new_id(), node_id=node_id, network_id=network_id,
                               endpoint=endpoint)
                )  # fmt: skip
            attachment_id = found.id

            async def allocated() -> str:
                while True:
                    current = self.store.get(Attachment, attachment_id)
                    if current is None:
                        raise NotFound(f"attachment to network {network.name} went away")
                    if current.address:
                        return current.address
                    await events.get()

            return await asyncio.wait_for(allocated(), ATTACH_WAIT)
        finally:
            self.store.unsubscribe(events)

    def _attachment(self, node_id: str, network_id: str, endpoint: str) -> Attachment | None:
        return next(
            (a for a in self.store.attachments()
             if (a.node_id, a.network_id, a.endpoint) == (node_id, network_id, endpoint)),
            None,
        )  # fmt: skip

    def _at(self, node_id: str, network_id: str, address: str) -> Attachment | None:
        return next(
            (a for a in self.store.attachments()
             if (a.node_id, a.network_id) == (node_id, network_id)
             and (a.address or "").split("/")[0] == address),
            None,
        )  # fmt: skip

    async def detach(self, node_id: str, network_id: str, address: str) -> None:
        found = self._at(node_id, network_id, address)
        if found is not None:
            with contextlib.suppress(Conflict, NotFound):
                await self.store.delete(found)

    async def named(self, node_id: str, network_id: str, address: str, names: list[str]) -> None:
        found = self._at(node_id, network_id, address)
        if found is None or found.names == names:
            return

        def rename(a: Attachment) -> bool:
            a.names = names
            return True

        await self.store.modify(Attachment, {found.id: rename})

    async def remote_log(
        self, node_id: str, container: str, params: dict[str, str], tty: bool
    ) -> AsyncIterator[tuple[int, bytes]]:
        """A container's log on another node, through that node's session."""
        send = self.log_senders.get(node_id)
        if send is None:
            return
        request = new_id()
        queue: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue(maxsize=256)
        self._log_requests[request] = queue
        try:
            await send(LogRequest(id=request, container=container, params=params, tty=tty))
            while (chunk := await queue.get()) is not None:
                yield chunk
        finally:
            del self._log_requests[request]
            if node_id in self.log_senders:
                with contextlib.suppress(Exception):
                    await self.log_senders[node_id](LogCancel(id=request))

    async def deliver_log(self, request: str, chunk: tuple[int, bytes] | None) -> None:
        queue = self._log_requests.get(request)
        if queue is not None:
            await queue.put(chunk)

    def heartbeat(self, node_id: str) -> float:
        self.last_seen[node_id] = self.clock()
        self._stopping.discard(node_id)
        return self.heartbeat_period

    def stopping(self, node_id: str) -> None:
        """The node's shoald stops to come back (`Stopping`): its session ending next is not
        its host dying."""
        self._stopping.add(node_id)

    def expired(self, now: float) -> list[str]:
        """Nodes whose heartbeats stopped (pure, on the injected clock)."""
        limit = grace(self.store)
        return [nid for nid, seen in self.last_seen.items() if now - seen > limit]

    def session_lost(self, node_id: str) -> None:
        """The node's connection closed (a killed host's does at once): unless it comes back
        within one heartbeat period, it is down — no need to wait out the whole grace. Unless
        its shoald said it is restarting: then the whole grace."""
        if node_id in self._stopping:
            self._stopping.discard(node_id)
            return
        if node_id in self.last_seen:
            limit = grace(self.store)
            soon = self.clock() + self.heartbeat_period - limit
            self.last_seen[node_id] = min(self.last_seen[node_id], soon)

    def _forget_node(self, node_id: str) -> None:
        self.last_seen.pop(node_id, None)
        self._stopping.discard(node_id)
        session = self.sessions.pop(node_id, None)
        if session is not None:
            session.closed = True

    async def _expire_loop(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_period / 2)
            for node_id in self.expired(self.clock()):
                self._forget_node(node_id)
                await self.claims.release(node_id)
                holder = await self.claims.holder(node_id)
                if holder is not None and holder != self.claims.manager_id:
                    log.info("node %s went on with another manager (%s)", node_id, holder)
                    continue
                log.warning("node %s missed its heartbeats: down", node_id)
                await self.store.modify(Node, {node_id: down})

    async def _flush_loop(self) -> None:
        while True:
            await self._flush.wait()
            await asyncio.sleep(FLUSH_INTERVAL)
            self._flush.clear()
            batch, self._statuses = self._statuses, {}
            try:
                await self.store.modify(Task, {tid: _advance(st) for tid, st in batch.items()})
            except Exception as e:  # noqa: BLE001 - retried with the next batch
                log.warning("writing task statuses: %s", e)
                self._statuses = {**batch, **self._statuses}
                self._flush.set()
                await asyncio.sleep(0.5)


def _touches_networks(ev: Event) -> bool:
    """Could this change alter some node's network state?"""
    if ev.kind in ("networks", "nodes", "attachments"):
        return True
    if ev.kind != "tasks":
        return False
    return any(t is not None and t.networks_attachments for t in (ev.old, ev.new))


def _advance(status: TaskStatus) -> Callable[[Task], bool]:
    """Set a reported status unless the stored one is already further along."""

    def apply(task: Task) -> bool:
        if status.state < task.status.state:
            return False
        if task.status == status:
            return False
        task.status = status
        return True

    return apply


def role_changed(ev: Event) -> bool:
    """A node promoted or demoted (`docker node promote/demote`)."""
    return ev.old is not None and ev.new is not None and ev.old.spec.role != ev.new.spec.role


def down(node: Node) -> bool:
    """A node's status once its heartbeats stopped."""
    if node.status.state == "down":
        return False
    node.status = NodeStatus(state="down", message="heartbeat failure", addr=node.status.addr)
    return True


class LocalSession:
    """An in-process session (the agent of the node this manager runs on)."""

    def __init__(self, dispatcher: Dispatcher, node_id: str) -> None:
        self.dispatcher = dispatcher
        self.node_id = node_id
        self.queue: asyncio.Queue[Assignment | NetworkState | RoleChange] = asyncio.Queue()
        self.closed = False

    def push(self, message: Assignment | NetworkState | RoleChange) -> None:
        self.queue.put_nowait(message)

    async def assignments(self) -> AsyncIterator[Assignment | NetworkState | RoleChange]:
        while not self.closed:
            yield await self.queue.get()

    async def report(self, statuses: dict[str, TaskStatus]) -> None:
        await self.dispatcher.report(self.node_id, statuses)

    async def heartbeat(self) -> float:
        if self.closed:  # the node was given up (its heartbeats came too late), or replaced
            raise ConnectionError("the manager closed the session")
        return self.dispatcher.heartbeat(self.node_id)

    async def attach(self, network_id: str, endpoint: str) -> str:
        return await self.dispatcher.attach(self.node_id, network_id, endpoint)

    async def detach(self, network_id: str, address: str) -> None:
        await self.dispatcher.detach(self.node_id, network_id, address)

    async def named(self, network_id: str, address: str, names: list[str]) -> None:
        await self.dispatcher.named(self.node_id, network_id, address, names)

    async def applied(self, version: int) -> None:
        self.dispatcher.applied(self.node_id, version)

    async def stopping(self) -> None:
        self.dispatcher.stopping(self.node_id)

    async def close(self) -> None:
        self.closed = True
        if self.dispatcher.sessions.get(self.node_id) is self:
            del self.dispatcher.sessions[self.node_id]
