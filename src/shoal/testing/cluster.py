"""`SimCluster`: a swarm in one process for component tests — the real manager (leader loops
behind a real election), the real dispatcher and, per node, the real agent and worker, on
`MemoryStore` and `FakeEngine`s, all on one `MockClock`.

Nodes talk to the dispatcher through in-process sessions that behave like the network ones:
`kill(node)` drops the connection (the node is down after one heartbeat period), `partition`
silences it (down after the grace), `restart` starts a fresh agent on the same engine (its
containers are still there: it adopts them). Services are created and changed through the
control API's functions, as the Docker API does.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from shoal.agent.agent import Agent
from shoal.api.defaults import swarm_spec
from shoal.api.models import (
    ManagerStatus,
    Network,
    Node,
    NodeDescription,
    NodeSpec,
    NodeStatus,
    Service,
    Swarm,
    SwarmSpec,
    Task,
    TaskStatus,
    ingress_spec,
)
from shoal.api.naming import new_id
from shoal.api.states import TaskState
from shoal.manager.controlapi import services
from shoal.manager.dispatcher.claims import Claims
from shoal.manager.dispatcher.dispatcher import Dispatcher, LocalSession
from shoal.manager.manager import Manager
from shoal.rpc.messages import Assignment, NetworkState, RoleChange, encode
from shoal.testing.clock import MockClock
from shoal.testing.fakes import FakeEngine
from shoal.testing.store import MemoryStore


class Connection:
    """An agent's session as the network would carry it (`shoal.agent.session.Session`).
    Every assignment it delivers is kept in `received` (as the wire would carry it: the
    encoded message), for tests of what a node is told."""

    def __init__(
        self, dispatcher: Dispatcher, session: LocalSession, received: list[str] | None = None
    ) -> None:
        self.dispatcher = dispatcher
        self.session = session
        self.node_id = session.node_id
        self.heard = asyncio.Event()  # cleared: the network between node and manager is down
        self.heard.set()
        self.received = received if received is not None else []

    async def assignments(self) -> AsyncIterator[Assignment | NetworkState | RoleChange]:
        async for a in self.session.assignments():
            self.received.append(encode(a))
            yield a

    async def report(self, statuses: dict[str, TaskStatus]) -> None:
        await self.heard.wait()
        await self.session.report(statuses)

    async def attach(self, network_id: str, endpoint: str) -> str:
        await self.heard.wait()
        return await self.session.attach(network_id, endpoint)

    async def detach(self, network_id: str, address: str) -> None:
        await self.heard.wait()
        await self.session.detach(network_id, address)

    async def named(self, network_id: str, address: str, names: list[str]) -> None:
        await self.heard.wait()
        await self.session.named(network_id, address, names)

    async def applied(self, version: int) -> None:
        await self.heard.wait()
        await self.session.applied(version)

    async def stopping(self) -> None:
        await self.heard.wait()
        await self.session.stopping()

    async def heartbeat(self) -> float:
        await self.heard.wait()
        return await self.session.heartbeat()

    async def close(self) -> None:
        if self.dispatcher.sessions.get(self.node_id) is self.session:
            self.dispatcher.session_lost(self.node_id)  # as the cluster port does
        await self.session.close()


class RecordedNetworks:
    """A node's network data plane that only keeps the states it is given."""

    def __init__(self) -> None:
        self.states: list[NetworkState] = []

    async def apply(self, state: NetworkState) -> None:
        self.states.append(state)

    @property
    def last(self) -> NetworkState:
        return self.states[-1] if self.states else NetworkState()


@dataclass
class SimNode:
    name: str
    id: str
    engine: FakeEngine
    networks: RecordedNetworks = field(default_factory=RecordedNetworks)
    agent: asyncio.Task[None] | None = None
    connection: Connection | None = None
    connections: int = field(default=0)
    received: list[str] = field(default_factory=list)  # every assignment, as sent (encoded)


class SimCluster:
    def __init__(
        self,
        workers: int = 3,
        *,
        manager_availability: str = "drain",
        default_addr_pool: list[str] | None = None,
        subnet_size: int | None = None,
    ) -> None:
        """`default_addr_pool` and `subnet_size` as `docker swarm init --default-addr-pool
        … --default-addr-pool-mask-length …` set them."""
        self.clock = MockClock()
        self._pool = default_addr_pool
        self._subnet_size = subnet_size
        self.store = MemoryStore(self.clock)
        self.manager_id = new_id()
        self.dispatcher = Dispatcher(
            self.store, Claims(self.store.memory, self.manager_id), self.clock
        )
        self.manager = Manager(self.store, self.store.memory, self.manager_id, self.clock)
        self.nodes: dict[str, SimNode] = {}
        self._workers = workers
        self._manager_availability = manager_availability
        self._loops: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> SimCluster:
        await self.store.__aenter__()
        swarm = Swarm(
            id=new_id(), spec=SwarmSpec.from_api(swarm_spec(None)),
            default_addr_pool=self._pool, subnet_size=self._subnet_size,
        )  # fmt: skip
        await self.store.create(swarm)
        await self.store.create(Network(id=new_id(), spec=ingress_spec()))
        self._loops = [
            asyncio.create_task(self.manager.run()),
            asyncio.create_task(self.dispatcher.run()),
        ]
        await self.add_node("m1", role="manager", availability=self._manager_availability)
        for i in range(1, self._workers + 1):
            await self.add_node(f"w{i}")
        await self.until(lambda: all(self.ready(n) for n in self.nodes), what="nodes ready")
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for node in self.nodes.values():
            await self._stop_agent(node)
        for loop in self._loops:
            loop.cancel()
        for loop in self._loops:
            with contextlib.suppress(BaseException):
                await loop
        await self.store.__aexit__(kind, exc, tb)

    # ------------------------------------------------------------------ nodes

    async def add_node(
        self, name: str, *, role: str = "worker", availability: str = "active"
    ) -> SimNode:
        node_id = self.manager_id if role == "manager" else new_id()
        node = Node(
            id=node_id,
            spec=NodeSpec(role=role, availability=availability, labels={}),
            description=NodeDescription(hostname=name),
            status=NodeStatus(state="unknown", addr=f"10.0.0.{len(self.nodes) + 1}"),
            manager_status=(
                ManagerStatus(leader=False, reachability="reachable", addr="10.0.0.1:2377")
                if role == "manager"
                else None
            ),
        )
        await self.store.create(node)
        sim = self.nodes[name] = SimNode(name, node_id, FakeEngine(name, self.clock))
        self._start_agent(sim)
        return sim

    def _start_agent(self, sim: SimNode) -> None:
        async def connect(description: NodeDescription) -> Connection:
            session = await self.dispatcher.register(sim.id, description, sim.name)
            sim.connection = Connection(self.dispatcher, session, sim.received)
            sim.connections += 1
            return sim.connection

        agent = Agent(sim.engine, sim.id, connect, sim.engine.controllers, self.clock, sim.networks)
        sim.agent = asyncio.create_task(agent.run())

    async def _stop_agent(self, sim: SimNode) -> None:
        if sim.agent is not None:
            sim.agent.cancel()
            with contextlib.suppress(BaseException):
                await sim.agent
            sim.agent = None

    async def kill(self, name: str) -> None:
        """The host dies: its agent and its containers are gone, the connection drops."""
        sim = self.nodes[name]
        await self._stop_agent(sim)
        for c in list(sim.engine.containers.values()):
            sim.engine.remove(c)

    async def restart(self, name: str, away: float = 0.0, *, kill: bool = False) -> None:
        """shoald restarts on the host (SIGTERM, or SIGKILL with `kill`), away for `away`
        seconds; the engine and its containers stay."""
        sim = self.nodes[name]
        if sim.connection is not None and not kill:
            await sim.connection.stopping()
        await self._stop_agent(sim)
        if away:
            await self.sleep(away)
        self._start_agent(sim)

    def partition(self, name: str) -> None:
        conn = self.nodes[name].connection
        assert conn is not None
        conn.heard.clear()

    def heal(self, name: str) -> None:
        conn = self.nodes[name].connection
        assert conn is not None
        conn.heard.set()

    def node(self, name: str) -> Node:
        found = self.store.get(Node, self.nodes[name].id)
        assert found is not None
        return found

    def ready(self, name: str) -> bool:
        return self.node(name).status.state == "ready"

    def down(self, name: str) -> bool:
        return self.node(name).status.state == "down"

    # ------------------------------------------------------------------ services

    async def create(
        self, name: str, image: str = "busybox:1", registry_auth: str | None = None, **spec: Any
    ) -> Service:
        """`docker service create --name NAME IMAGE`, with more of the spec as Docker JSON
        (`Mode=…`, `UpdateConfig=…`, `TaskTemplate` parts as `RestartPolicy=…`, container
        spec parts as `ContainerSpec={"Secrets": …}`); `registry_auth` is what
        `--with-registry-auth` sends."""
        template: dict[str, Any] = {
            "ContainerSpec": {"Image": image, **spec.pop("ContainerSpec", {})}
        }
        for key in ("RestartPolicy", "Placement", "Resources"):
            if key in spec:
                template[key] = spec.pop(key)
        if "TaskTemplate_networks" in spec:  # network names, as `--network NAME` does
            template["Networks"] = [{"Target": n} for n in spec.pop("TaskTemplate_networks")]
        body = {"Name": name, "TaskTemplate": template, **spec}
        return await services.create(self.store, body, registry_auth)

    async def update(
        self,
        name: str,
        change: Callable[[dict[str, Any]], None],
        registry_auth: str | None = None,
        rollback: bool = False,
    ) -> Service:
        """`docker service update`: `change` edits the spec (Docker JSON) in place;
        `registry_auth` as with `--with-registry-auth`; `rollback` as `docker service
        rollback`."""
        current = services.get(self.store, name)
        body = current.spec.to_api()
        change(body)
        return await services.update(
            self.store, current.id, current.version.index, body, rollback, registry_auth
        )

    def service(self, name: str) -> Service:
        return services.get(self.store, name)

    def update_state(self, name: str) -> str | None:
        """`UpdateStatus.State` of the service (None: no update yet)."""
        status = self.service(name).update_status
        return status.state if status is not None else None

    def tasks(self, name: str) -> list[Task]:
        return list(self.store.tasks_of(self.service(name).id))

    def running(self, name: str) -> list[Task]:
        """The service's tasks that run, as the store says."""
        return [
            t
            for t in self.tasks(name)
            if t.status.state == TaskState.RUNNING and t.desired_state == TaskState.RUNNING
        ]

    def where(self, name: str) -> dict[str, int]:
        """Running containers of the service per node, as the engines say."""
        return {
            n: len(sim.engine.running(name)) for n, sim in self.nodes.items()
        }  # fmt: skip

    # ------------------------------------------------------------------ time

    def now(self) -> float:
        return self.clock()

    async def until(
        self, predicate: Callable[[], Any], timeout: float = 60.0, what: str = "condition"
    ) -> float:
        """Wait (on the mock clock) until `predicate()` is true; returns how long it took."""
        start = self.clock()
        while not predicate():
            if self.clock() - start > timeout:
                raise AssertionError(f"not {what} after {timeout} s (mock clock)")
            await asyncio.sleep(0.05)
        return self.clock() - start

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
