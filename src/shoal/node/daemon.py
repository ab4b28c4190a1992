"""One `shoald`: the node's swarm membership and everything that runs for it.

Outside a swarm the daemon only proxies the local engine. `swarm init` (or, on restart, the
saved local state) starts the swarm parts in one task group: on a manager the etcd member,
the store mirror, the manager (leader loops), the dispatcher, the cluster port and this
node's agent; on a worker the agent alone. `swarm leave` cancels the group and wipes the
swarm state. A manager restarted with autolock on starts nothing until `swarm unlock`
gives it the key that opens its data key (`node/keys.py`). The composition root: the only
module that knows every part. Joining and leaving (`membership.py`), role changes
(`rolechange.py`) and recovery (`recovery.py`) are parts of the same `Daemon`, each in its
module, sharing what `parts.py` declares.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from aiohttp import web

from shoal.agent.agent import Agent
from shoal.agent.controller import EngineControllers
from shoal.agent.files import TaskFiles
from shoal.agent.networks import EngineNetworks
from shoal.agent.remote import RemoteSession
from shoal.agent.session import Session
from shoal.api.errors import (
    NOT_A_MANAGER,
    NOT_A_MANAGER_WORKER,
    NOT_LOCKED,
    REMOVED_MANAGER,
    Conflict,
    DaemonError,
    NoLeader,
    NotAcceptable,
    RemovedManager,
    ShoalError,
    SwarmLocked,
)
from shoal.api.models import (
    NodeDescription,
    Swarm,
    Task,
    TLSInfo,
)
from shoal.ca.authority import tls_info
from shoal.ca.tls import server_context, write_plain_key
from shoal.engine.client import Engine
from shoal.engine.logs import container_log
from shoal.etcd.member import Member, MemberConfig, PeerTLS
from shoal.manager.dispatcher.claims import Claims
from shoal.manager.dispatcher.dispatcher import Dispatcher
from shoal.manager.dispatcher.server import make_cluster_app
from shoal.manager.manager import Manager
from shoal.node.addresses import SWARM_PORT, host_of
from shoal.node.clusterstore import promote_learners, wait_answering
from shoal.node.keys import LocalKeys
from shoal.node.membership import SwarmMembership
from shoal.node.networks import NodeNetworks
from shoal.node.parts import STOP_TIMEOUT, DaemonConfig
from shoal.node.recovery import Recovery
from shoal.node.rolechange import RoleChanges
from shoal.node.state import LocalState, SwarmDir
from shoal.store.etcd import Etcd
from shoal.store.mirrored import MirroredStore
from shoal.store.seal import Sealer

log = logging.getLogger(__name__)

ETCD_START_TIMEOUT = 60.0  # seconds a new member (init, join) may take to answer
RESTART_PATIENCE = 20.0  # seconds a restart waits for the store before the API serves


class Daemon(SwarmMembership, RoleChanges, Recovery):
    """Implements `shoal.dockerapi.node.LocalNode` for the Docker API."""

    def __init__(self, config: DaemonConfig) -> None:
        self.config = config
        self._engine = Engine(config.engine_host)
        self.dir = SwarmDir(config.state_dir)
        self.files = TaskFiles(config.exec_root / "files")  # the tasks' secrets and configs
        self.state: LocalState | None = None
        self.keys = LocalKeys(self.dir.data_key)
        self._locked = False
        self._removed = False  # this manager's etcd member was removed from its cluster
        self.store: MirroredStore | None = None
        self.dispatcher: Dispatcher | None = None
        self.networks: NodeNetworks | None = None
        self._group: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._manager: Manager | None = None
        self._role_change: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ LocalNode

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def membership(self) -> LocalState | None:
        return self.state

    @property
    def locked(self) -> bool:
        return self._locked

    def control(self) -> MirroredStore:
        if self._locked:
            raise SwarmLocked()
        if self.state is not None and self.state.role != "manager":
            raise NotAcceptable(NOT_A_MANAGER_WORKER)
        if self._removed:
            raise RemovedManager()
        if self.store is None:
            raise NotAcceptable(NOT_A_MANAGER)
        if not self.store.synced.is_set() or not self.store.quorate:
            raise NoLeader()
        return self.store

    async def barrier(self) -> None:
        store = self.store
        if self._locked or self._removed or store is None:
            return  # control() answers with the reason
        if not store.synced.is_set() or not store.quorate:
            return  # control() answers with the reason
        await store.barrier()

    def known_managers(self) -> list[dict[str, str]]:
        if self.store is None:
            return []
        return [
            {"NodeID": n.id, "Addr": n.manager_status.addr}
            for n in self.store.nodes()
            if n.manager_status is not None and n.manager_status.addr
        ]

    def task_log(
        self, task: Task, container: str, params: dict[str, str], tty: bool
    ) -> AsyncIterator[tuple[int, bytes]]:
        local = self.state.node_id if self.state else None
        if task.node_id == local:
            return container_log(self._engine, container, params, tty)
        if self.dispatcher is not None and task.node_id:
            return self.dispatcher.remote_log(task.node_id, container, params, tty)
        return _nothing()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self.state = self.dir.load()
        if self.state is None:
            return
        if self.state.role == "manager":
            self._check_store_flags(self.state)
            if self.keys.locked():
                self._locked = True
                log.warning("swarm is locked (autolock): `docker swarm unlock` starts it")
                networks = self.networks = self._node_networks(self.state)
                await networks.serve()  # dockerd waits for its plugin, locked or not
                return
            self.keys.open()
        # Started again: the other managers may not be up yet (a whole cluster started host
        # by host), so the member may wait for a quorum as long as it takes; the API serves
        # meanwhile (control calls answer that there is no leader), as dockerd does after its
        # 20 s wait for the swarm.
        await self._start_swarm(self.state, patience=RESTART_PATIENCE)

    def _check_store_flags(self, state: LocalState) -> None:
        """A manager keeps its swarm where it was made: an embedded member must never be
        started for a swarm on an external cluster (it would make a new, empty one)."""
        if state.external_etcd and not self.config.etcd_endpoints:
            raise DaemonError(
                "this manager's swarm keeps its state in an external etcd cluster: start "
                "shoald with --etcd-endpoints (and --etcd-cacert, --etcd-cert, --etcd-key)"
            )
        if not state.external_etcd and self.config.etcd_endpoints:
            raise DaemonError(
                "this manager's swarm keeps its state in the managers' own etcd members: "
                "start shoald without --etcd-endpoints"
            )

    def _etcd(self, state: LocalState) -> Etcd:
        if state.external_etcd:
            return Etcd(self.config.etcd_endpoints, tls=self.config.etcd_tls)
        return Etcd(state.etcd_endpoint)

    async def unlock(self, unlock_key: str) -> None:
        """`POST /swarm/unlock`: open the data key with the unlock key, start the swarm (carried
        through even if the client goes away meanwhile)."""
        await asyncio.shield(asyncio.ensure_future(self._unlock(unlock_key)))

    async def _unlock(self, unlock_key: str) -> None:
        async with self._lock:
            if self.state is None:
                raise NotAcceptable(NOT_A_MANAGER)
            if self.state.role != "manager":
                raise NotAcceptable(NOT_A_MANAGER_WORKER)
            if not self._locked:
                raise Conflict(NOT_LOCKED)
            self.keys.open(unlock_key)
            self._locked = False
            if self.networks is not None:  # served while locked: the swarm parts take over
                await self.networks.close()
            try:
                await self._start_swarm(self.state)
            except Exception as e:
                await self._stop_swarm()
                self.keys.forget()
                self._locked = True
                if isinstance(e, ShoalError):
                    raise
                raise DaemonError(f"swarm component could not be started: {e}") from e
            log.info("swarm unlocked")

    def follow_unlock_key(self) -> None:
        """Keep this manager's data key wrapped with the swarm's current unlock key (plain
        with autolock off). Called on every change of the swarm object, and by the API right
        after an update so that a restart at once finds the new wrapping."""
        swarm = self.control().swarm()
        if swarm is not None:
            self._follow(swarm)

    def _follow(self, swarm: Swarm) -> None:
        if self.keys.follow(swarm.unlock_key):
            log.info("data key %s", "wrapped with the unlock key" if swarm.unlock_key else
                     "kept unwrapped (autolock off)")  # fmt: skip

    async def stop(self) -> None:
        """shoald stops (SIGTERM), to be started again: the manager is told first."""
        if self.networks is not None and self.networks.agent is not None:
            await self.networks.agent.stopping()
        await self._stop_swarm()
        await self._engine.close()

    async def _start_swarm(
        self, state: LocalState, force_new_cluster: bool = False, patience: float | None = None
    ) -> None:
        """Start the swarm parts; return once a manager's store is loaded (or raise what
        went wrong while starting). With `patience`, return after that many seconds at most
        and let a manager's parts wait for their etcd quorum in the background, however long."""
        ready = asyncio.Event()
        networks = self.networks = self._node_networks(state)
        if state.role == "manager":
            etcd_wait = None if patience is not None else ETCD_START_TIMEOUT
            run = self._run_manager(state, networks, ready, force_new_cluster, etcd_wait)
        else:
            run = self._run_worker(state, networks)
            ready.set()
        self._group = asyncio.create_task(run)
        waiter = asyncio.create_task(ready.wait())
        done, _ = await asyncio.wait(
            {waiter, self._group}, timeout=patience, return_when=asyncio.FIRST_COMPLETED
        )
        if self._group in done:
            waiter.cancel()
            self._group.result()
        elif not done:
            waiter.cancel()
            log.warning("no quorum of managers yet after %.0f s: the API serves meanwhile, "
                        "control calls answer that there is no leader", patience or 0)  # fmt: skip

    def _node_networks(self, state: LocalState) -> NodeNetworks:
        return NodeNetworks(
            host_of(state.advertise_addr), self.dir.network, EngineNetworks(self._engine)
        )

    async def _run_manager(
        self,
        state: LocalState,
        networks: NodeNetworks,
        ready: asyncio.Event,
        force_new_cluster: bool = False,
        etcd_wait: float | None = None,
    ) -> None:
        """`etcd_wait`: how long the member may take to answer (None: as long as it takes,
        for a quorum of managers started one by one)."""
        assert self.keys.data_key is not None
        etcd = self._etcd(state)
        store = self.store = MirroredStore(etcd, Sealer(self.keys.data_key))
        dispatcher = self.dispatcher = Dispatcher(store, Claims(etcd, state.node_id))
        async with asyncio.TaskGroup() as tg:
            tg.create_task(networks.run())  # first: dockerd waits for the plugin to start
            if state.external_etcd:
                await wait_answering(etcd, etcd_wait)
            else:
                await self._start_member(tg, state, etcd, force_new_cluster, etcd_wait, ready)
            tg.create_task(store.run())
            tg.create_task(store.watch_quorum())
            await store.synced.wait()
            ready.set()
            membership = None if state.external_etcd else etcd  # an external one is etcd's
            manager = self._manager = Manager(store, etcd, state.node_id, membership=membership)
            tg.create_task(manager.run())
            tg.create_task(self._follow_role(store, state.node_id))
            tg.create_task(dispatcher.run())
            if membership is not None:
                tg.create_task(promote_learners(etcd))
            tg.create_task(self._serve_cluster_port(state, store, dispatcher, membership))
            tg.create_task(self._follow_swarm(store))
            addr = host_of(state.advertise_addr)
            tg.create_task(
                self._run_agent(
                    state, networks, lambda d: dispatcher.register(state.node_id, d, addr)
                )
            )

    async def _start_member(
        self,
        tg: asyncio.TaskGroup,
        state: LocalState,
        etcd: Etcd,
        force_new_cluster: bool,
        etcd_wait: float | None,
        ready: asyncio.Event,
    ) -> None:
        """This manager's own etcd member, started in `tg`; returns once it answers (a
        learner: once promoted). One removed from its cluster serves nothing but says why."""
        assert self.keys.data_key is not None
        peer_key = self.config.exec_root / "etcd" / "peer.key"
        write_plain_key(self.dir.certs, self.keys.data_key, peer_key)
        config = self._member_config(state, peer_key)
        config.force_new_cluster = force_new_cluster
        member = Member(config)
        tg.create_task(member.run())
        tg.create_task(self._watch_removed(member))
        await member.started.wait()
        removed = asyncio.ensure_future(member.removed.wait())
        waiting = asyncio.ensure_future(wait_answering(etcd, etcd_wait))
        await asyncio.wait({removed, waiting}, return_when=asyncio.FIRST_COMPLETED)
        if not waiting.done():
            waiting.cancel()
            ready.set()
            await asyncio.Event().wait()
        removed.cancel()
        waiting.result()
        with contextlib.suppress(Exception):  # a swarm made when peers were on loopback
            await etcd.update_peer_url(config.peer_url)

    async def _watch_removed(self, member: Member) -> None:
        """This manager's member was removed from its etcd cluster while it was away (a
        `swarm init --force-new-cluster` on another manager): it never serves again."""
        await member.removed.wait()
        self._removed = True
        log.error(REMOVED_MANAGER)

    def _member_config(self, state: LocalState, peer_key: Path) -> MemberConfig:
        """This manager's etcd member: clients on loopback, peers on the advertise address
        with mutual TLS (the node certificate names that address)."""
        return MemberConfig(
            data_dir=self.dir.etcd,
            name=state.node_id,
            client_port=self.config.etcd_client_port,
            peer_port=self.config.etcd_peer_port,
            peer_host=host_of(state.advertise_addr),
            tls=PeerTLS(
                cert=self.dir.certs / "node.crt", key=peer_key, ca=self.dir.certs / "ca.crt"
            ),  # fmt: skip
            cluster=state.etcd_cluster,
        )

    async def _follow_swarm(self, store: MirroredStore) -> None:
        """The unlock key, as any manager changes it (`follow_unlock_key`)."""
        events = store.subscribe()
        try:
            while True:
                swarm = store.swarm()
                if swarm is not None:
                    self._follow(swarm)
                while not any(e.kind == "swarm" for e in await events.get()):
                    pass
        finally:
            store.unsubscribe(events)

    async def _run_worker(self, state: LocalState, networks: NodeNetworks) -> None:
        def remember(managers: list[str]) -> None:
            """The managers a session named: the next sessions try them (and so does this
            node after a restart)."""
            if managers and managers != state.managers:
                state.managers = list(managers)
                self.dir.save(state)

        async def connect(description: NodeDescription) -> RemoteSession:
            session = await RemoteSession.connect(
                state.node_id, state.managers, self.dir.certs, description,
                host_of(state.advertise_addr), self._engine,
            )  # fmt: skip
            session.on_managers = remember
            session.on_role = self._on_role
            return session

        async with asyncio.TaskGroup() as tg:
            tg.create_task(networks.run())  # the plugin serves dockerd, session or not
            tg.create_task(self._run_agent(state, networks, connect))

    # ------------------------------------------------------------------ promote / demote

    async def _run_agent(
        self,
        state: LocalState,
        networks: NodeNetworks,
        connect: Callable[[NodeDescription], Awaitable[Session]],
    ) -> None:
        """This node's agent; its swarm networks' engine side follows the agent's state."""
        agent = Agent(
            self._engine, state.node_id, connect,
            EngineControllers(self._engine, networks.engine_networks, self.files),
            networks=networks,
            tls_info=self._tls_info(),
        )  # fmt: skip
        networks.agent = agent
        await agent.run()

    def _tls_info(self) -> TLSInfo:
        """The trust root of this node's certificate, as its node description reports it."""
        return tls_info((self.dir.certs / "ca.crt").read_bytes())

    async def _serve_cluster_port(
        self,
        state: LocalState,
        store: MirroredStore,
        dispatcher: Dispatcher,
        membership: Etcd | None,
    ) -> None:
        """2377/tcp: joins and agent sessions, TLS with this manager's node certificate
        (`membership`: the embedded members' cluster, which a manager joining joins)."""
        # Agent sessions never end by themselves: give open connections 1 s, not aiohttp's 60.
        runner = web.AppRunner(
            make_cluster_app(store, dispatcher, membership, self.keys.data_key or b""),
            access_log=None,
            shutdown_timeout=1.0,
        )
        await runner.setup()
        host, _, port = state.listen_addr.rpartition(":")
        site = web.TCPSite(
            runner, host or "0.0.0.0", int(port or SWARM_PORT),
            ssl_context=server_context(self.dir.certs, self.keys.data_key),
        )  # fmt: skip
        try:
            await site.start()
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    async def _stop_swarm(self) -> None:
        """Cancel the swarm parts and wait for them, but never long: a part that does not
        stop in time is logged and left to finish on its own (leave must not hang)."""
        group, self._group = self._group, None
        if group is not None:
            group.cancel()
            done, _ = await asyncio.wait({group}, timeout=STOP_TIMEOUT)
            if not done:
                log.warning("swarm parts still stopping after %.0f s: %s", STOP_TIMEOUT,
                            _stacks(group))  # fmt: skip
            elif not group.cancelled() and group.exception() is not None:
                log.warning("swarm parts ended with: %r", group.exception())
        if self.store is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.store.kv.close(), 2)
        self.store = self.dispatcher = None

    # ------------------------------------------------------------------ init / join / leave


def _stacks(task: asyncio.Task[None]) -> str:
    """Where the tasks that did not stop are stuck (for the log)."""
    lines = []
    for t in asyncio.all_tasks():
        if not t.done() and t is not asyncio.current_task():
            frames = t.get_stack(limit=1)
            where = f"{frames[-1].f_code.co_filename}:{frames[-1].f_lineno}" if frames else "?"
            lines.append(f"{t.get_name()} at {where}")
    return "; ".join(lines) or repr(task)


async def _nothing() -> AsyncIterator[tuple[int, bytes]]:
    return
    yield  # an empty async generator
