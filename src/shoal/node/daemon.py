"""One `shoald`: the node's swarm membership and everything that runs for it.

Outside a swarm the daemon only proxies the local engine. `swarm init` (or, on restart, the
saved local state) starts the swarm parts in one task group: on a manager the etcd member,
the store mirror, the manager (leader loops), the dispatcher, the cluster port and this
node's agent; on a worker the agent alone. `swarm leave` cancels the group and wipes the
swarm state. A manager restarted with autolock on starts nothing until `swarm unlock`
gives it the key that opens its data key (`node/keys.py`). The composition root: the only
module that knows every part.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from shoal.agent.agent import Agent, describe
from shoal.agent.controller import EngineControllers
from shoal.agent.files import TaskFiles
from shoal.agent.networks import EngineNetworks
from shoal.agent.remote import RemoteSession
from shoal.agent.session import Session
from shoal.api import labels
from shoal.api.errors import (
    ALREADY_IN_SWARM,
    LOCKED_LEAVE,
    NOT_A_MANAGER,
    NOT_A_MANAGER_WORKER,
    NOT_LOCKED,
    REMOVED_MANAGER,
    BadRequest,
    Conflict,
    DaemonError,
    InvalidArgument,
    NoLeader,
    NotAcceptable,
    RemovedManager,
    ShoalError,
    SwarmLocked,
)
from shoal.api.models import (
    ManagerStatus,
    Network,
    Node,
    NodeDescription,
    Swarm,
    Task,
    TLSInfo,
    ingress_spec,
)
from shoal.api.naming import new_id
from shoal.ca.authority import RootCA, issue, new_csr, new_key, new_root_ca, tls_info
from shoal.ca.tls import encrypt_key, server_context, write_certs, write_plain_key
from shoal.engine.client import Engine
from shoal.engine.logs import container_log
from shoal.etcd.member import Member, MemberConfig, PeerTLS
from shoal.manager import ca
from shoal.manager.controlapi import swarm as controlapi_swarm
from shoal.manager.dispatcher.claims import Claims
from shoal.manager.dispatcher.dispatcher import Dispatcher
from shoal.manager.dispatcher.server import make_cluster_app, managers_of
from shoal.manager.manager import Manager
from shoal.node import backup, bootstrap
from shoal.node.addresses import SWARM_PORT, advertise_address, host_of, route_address
from shoal.node.keys import LocalKeys
from shoal.node.networks import NodeNetworks
from shoal.node.state import LocalState, SwarmDir
from shoal.store.etcd import ClientTLS, Etcd
from shoal.store.mirrored import MirroredStore
from shoal.store.seal import Sealer, new_unlock_key

log = logging.getLogger(__name__)

AVAILABILITIES = ("active", "pause", "drain")
ETCD_START_TIMEOUT = 60.0  # seconds a new member (init, join) may take to answer
EXTERNAL_ETCD_TIMEOUT = 10.0  # seconds an external etcd cluster may take to answer
SWARM_KEYS = "/shoal/swarm/"
RESTART_PATIENCE = 20.0  # seconds a restart waits for the store before the API serves
STOP_TIMEOUT = 10.0  # seconds the swarm parts get to stop (leave, shutdown)
REMOVE_TIMEOUT = 15.0  # seconds for each engine call removing task containers on leave


@dataclass
class DaemonConfig:
    state_dir: Path
    exec_root: Path = Path("/run/shoal")  # what lives only while the host is up (tmpfs)
    engine_host: str = "unix:///var/run/docker.sock"
    etcd_client_port: int = 2379
    etcd_peer_port: int = 2380
    # An external etcd cluster instead of an embedded member (`--etcd-endpoints`).
    etcd_endpoints: list[str] = field(default_factory=list)
    etcd_tls: ClientTLS | None = None


class Daemon:
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

    async def _swarm_in_external_etcd(self) -> str | None:
        """The ID of the swarm the external etcd cluster holds, if any (before this node
        makes or joins one there)."""
        etcd = Etcd(self.config.etcd_endpoints, tls=self.config.etcd_tls)
        try:
            await _wait_etcd(etcd, EXTERNAL_ETCD_TIMEOUT)
            _, kvs = await etcd.load(SWARM_KEYS)
        except Exception as e:  # noqa: BLE001 - said in the user's terms
            raise DaemonError(
                f"the etcd cluster at {', '.join(self.config.etcd_endpoints)} does not "
                f"answer: {e or type(e).__name__}"
            ) from e
        finally:
            with contextlib.suppress(Exception):
                await etcd.close()
        return kvs[0].key.removeprefix(SWARM_KEYS) if kvs else None

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
                await _wait_etcd(etcd, etcd_wait)
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
                tg.create_task(_promote_learners(etcd))
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
        waiting = asyncio.ensure_future(_wait_etcd(etcd, etcd_wait))
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

    async def _follow_role(self, store: MirroredStore, node_id: str) -> None:
        """A manager demoted (`docker node demote`, on any manager) sees it in its store."""
        events = store.subscribe()
        try:
            while True:
                node = store.get(Node, node_id)
                if node is not None and node.spec.role == "worker":
                    self._on_role("worker")
                while not any(e.kind == "nodes" and e.id == node_id for e in await events.get()):
                    pass
        finally:
            store.unsubscribe(events)

    def _on_role(self, role: str) -> None:
        """The store gives this node another role: carried out apart from the swarm parts,
        which it stops and starts again."""
        if self._role_change is None or self._role_change.done():
            self._role_change = asyncio.create_task(self._change_role(role))

    async def _change_role(self, role: str) -> None:
        for attempt in range(5):
            try:
                async with self._lock:
                    state = self.state
                    if state is None or state.role == role or self._locked:
                        return
                    started = asyncio.get_running_loop().time()
                    if role == "manager":
                        await self._promote(state)
                    else:
                        await self._demote(state)
                    took = asyncio.get_running_loop().time() - started
                    log.info("this node is a %s now (%.2f s)", role, took)
                    return
            except Exception as e:  # noqa: BLE001 - a manager busy or away: again
                log.warning("becoming a %s (attempt %d): %s", role, attempt + 1, e)
                await asyncio.sleep(2)

    async def _promote(self, state: LocalState) -> None:
        """Worker → manager: a manager certificate, the data key and a learner member from a
        manager; the worker parts stop (task containers keep running) and the manager parts
        start, adopting them as after a restart."""
        addr = host_of(state.advertise_addr)
        answer, key_pem = await bootstrap.renew(
            state.managers, self.dir.certs, addr, state.advertise_addr,
            self._peer_url(state.advertise_addr),
        )  # fmt: skip
        if answer.DataKey is None:
            return  # demoted again meanwhile
        await self._stop_for_role_change()
        write_certs(self.dir.certs, answer.RootCA.encode(), answer.Certificate.encode(),
                    encrypt_key(key_pem, answer.DataKey))  # fmt: skip
        shutil.rmtree(self.dir.etcd, ignore_errors=True)
        self.keys.create(answer.DataKey, None)  # wrapped once it sees autolock is on
        state.role = "manager"
        fields = self._store_fields()
        state.external_etcd = fields.get("external_etcd", False)
        state.etcd_endpoint = fields["etcd_endpoint"]
        state.etcd_cluster = answer.EtcdCluster
        state.managers = answer.Managers or state.managers
        self.dir.save(state)
        await self._start_swarm(state)

    async def _demote(self, state: LocalState) -> None:
        """Manager → worker: a worker certificate from another manager; leadership handed
        over; the etcd member taken out of the cluster; the manager parts stop, the etcd data
        and the data key go; the node comes back as a worker (task containers kept)."""
        store = self.store
        assert store is not None
        others = [a for a in managers_of(store) if a != state.advertise_addr]
        addr = host_of(state.advertise_addr)
        answer, key_pem = await bootstrap.renew(
            others, self.dir.certs, addr, state.advertise_addr, "", self.keys.data_key
        )
        if answer.DataKey is not None:
            return  # promoted again meanwhile
        if self._manager is not None and self._manager.is_leader:
            await self._manager.election.resign()  # the others campaign at once
        if not state.external_etcd:  # its own member hands over and leaves the cluster
            if isinstance(store.kv, Etcd):
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(store.kv.hand_over(), 2)
            await _leave_etcd_cluster(store.kv)
        await self._stop_for_role_change()
        write_certs(self.dir.certs, answer.RootCA.encode(), answer.Certificate.encode(), key_pem)
        shutil.rmtree(self.dir.etcd, ignore_errors=True)
        self.dir.data_key.unlink(missing_ok=True)
        self.keys.forget()
        state.role = "worker"
        state.etcd_endpoint = ""
        state.external_etcd = False
        state.etcd_cluster = {}
        state.managers = answer.Managers or others
        self.dir.save(state)
        await self._start_swarm(state)

    async def _stop_for_role_change(self) -> None:
        """Stop the swarm parts as for a restart: the session's manager is told, task
        containers and the node's networks stay."""
        if self.networks is not None and self.networks.agent is not None:
            await self.networks.agent.stopping()
        await self._stop_swarm()
        self._manager = None

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

    async def init(self, req: dict[str, Any]) -> str:
        if self.state is not None and req.get("ForceNewCluster"):
            return await asyncio.shield(asyncio.ensure_future(self._force_new_cluster(req)))
        async with self._lock:
            if self.state is not None:
                raise NotAcceptable(ALREADY_IN_SWARM)
            # Outside a swarm `--force-new-cluster` changes nothing (as Docker's): a new swarm.
            listen = req.get("ListenAddr") or f"0.0.0.0:{SWARM_PORT}"
            advertise = advertise_address(req.get("AdvertiseAddr") or "", listen)
            availability = req.get("Availability") or "active"
            if availability not in AVAILABILITIES:
                raise InvalidArgument(f"invalid availability {availability!r}")
            state = LocalState(
                node_id=new_id(),
                swarm_id=new_id(),
                role="manager",
                advertise_addr=advertise,
                listen_addr=listen,
                **self._store_fields(),
            )
            if state.external_etcd:
                held = await self._swarm_in_external_etcd()
                if held is not None:
                    raise Conflict(
                        f"the etcd cluster at {', '.join(self.config.etcd_endpoints)} holds "
                        f"swarm {held} already: join it (docker swarm join), or make this "
                        "swarm on another etcd cluster"
                    )
            self.dir.wipe()
            description = await describe(self._engine)
            root = new_root_ca()
            swarm, node = bootstrap.new_swarm(state, req, description, availability, root)
            key, key_pem = new_key()
            cert = issue(root, new_csr(key), state.node_id, "manager", state.swarm_id,
                         [host_of(advertise)])  # fmt: skip
            _, data_key = Sealer.new()
            write_certs(self.dir.certs, root.cert_pem, cert, encrypt_key(key_pem, data_key))
            self.keys.create(data_key, swarm.unlock_key)
            await self._start_swarm(state)
            try:
                assert self.store is not None
                await ca.save(self.store, root)
                await self.store.create(swarm)
                await self.store.create(node)
                await self.store.create(Network(id=new_id(), spec=ingress_spec()))
            except BaseException:
                await self._stop_swarm()
                self.dir.wipe()
                self.keys.forget()
                raise
            self.dir.save(state)
            self.state = state
            return state.node_id

    def _store_fields(self) -> dict[str, Any]:
        """Where a manager made here keeps the swarm: its own member (on loopback) or the
        external cluster of `--etcd-endpoints`."""
        if self.config.etcd_endpoints:
            return {"external_etcd": True, "etcd_endpoint": ""}
        return {"etcd_endpoint": f"127.0.0.1:{self.config.etcd_client_port}"}

    def _peer_url(self, advertise: str) -> str:
        """Where this manager's own etcd member would listen for its peers ("" on an
        external cluster: there is no member of its own)."""
        if self.config.etcd_endpoints:
            return ""
        return f"https://{host_of(advertise)}:{self.config.etcd_peer_port}"

    async def _force_new_cluster(self, req: dict[str, Any]) -> str:
        """`swarm init --force-new-cluster` on a manager: its etcd member starts once with
        etcd's `--force-new-cluster` (a one-member cluster from its own data), the swarm
        parts start again, and the other managers lose their `ManagerStatus` (their node
        objects keep the manager role, as Docker's). Nothing else changes: same swarm, same
        node ID, tokens, services and tasks; the workers' containers run on."""
        async with self._lock:
            state = self.state
            if state is None:
                raise NotAcceptable(NOT_A_MANAGER)
            if self._locked:  # the data key is needed to read the state: unlock first
                raise SwarmLocked()
            if state.role != "manager":
                raise NotAcceptable(NOT_A_MANAGER_WORKER)
            if state.external_etcd:
                raise BadRequest(
                    "this swarm keeps its state in an external etcd cluster, whose quorum is "
                    "etcd's own: recover that cluster (etcd's --force-new-cluster on one of its "
                    "members) and the managers serve again"
                )
            given = req.get("AdvertiseAddr") or ""
            if given:
                wanted = advertise_address(given, req.get("ListenAddr") or state.listen_addr)
                if host_of(wanted) != host_of(state.advertise_addr):
                    raise BadRequest(
                        f"--force-new-cluster keeps this manager's address "
                        f"{host_of(state.advertise_addr)} (its certificate names it); "
                        f"{host_of(wanted)} was asked for"
                    )
            log.warning("--force-new-cluster: this manager becomes the only member of a new "
                        "etcd cluster with the swarm's data")  # fmt: skip
            await self._stop_swarm()
            state.etcd_cluster = {}
            self.dir.save(state)
            self._removed = False
            await self._start_swarm(state, force_new_cluster=True)
            assert self.store is not None
            await self.store.modify(Node, {
                n.id: _drop_manager_status
                for n in self.store.nodes()
                if n.id != state.node_id and n.manager_status is not None
            })  # fmt: skip
            log.info("new cluster forced: this manager is the only one")
            return state.node_id

    async def backup(self) -> tuple[bytes, str | None]:
        """`shoal swarm backup`: the backup file, and the key made for it (None: the swarm's
        unlock key opens it, autolock being on)."""
        store = self.control()
        swarm = store.swarm()
        if not isinstance(store.kv, Etcd) or swarm is None or self.keys.data_key is None:
            raise NotAcceptable(NOT_A_MANAGER)
        assert self.state is not None
        root = ca.load(store)
        made = None if swarm.unlock_key else new_unlock_key()
        key = swarm.unlock_key or made
        assert key is not None
        snapshot = await store.kv.snapshot()
        b = backup.make(self.state.swarm_id, self.state.node_id, self.keys.data_key, key,
                        made is None, root.cert_pem, root.key_pem, snapshot)  # fmt: skip
        log.info("backup taken (%d bytes of etcd snapshot)", len(snapshot))
        return backup.dump(b), made

    async def restore(self, data: bytes, key: str, req: dict[str, Any]) -> str:
        """`shoal swarm restore`: on a node outside any swarm, the backup's swarm with this
        node as its only manager, in the place (node ID) of the manager it was taken on."""
        return await asyncio.shield(asyncio.ensure_future(self._restore(data, key, req)))

    async def _restore(self, data: bytes, key: str, req: dict[str, Any]) -> str:
        async with self._lock:
            if self.state is not None:
                raise NotAcceptable(ALREADY_IN_SWARM)
            if self.config.etcd_endpoints:
                raise BadRequest(
                    "a restore makes this node the only manager of the swarm, on an etcd member "
                    "of its own: start shoald without --etcd-endpoints to restore here"
                )
            b = backup.load(data)
            data_key, ca_cert, ca_key = backup.open_backup(b, key)
            listen = req.get("ListenAddr") or f"0.0.0.0:{SWARM_PORT}"
            advertise = advertise_address(req.get("AdvertiseAddr") or "", listen)
            state = LocalState(
                node_id=b.node_id, swarm_id=b.swarm_id, role="manager",
                advertise_addr=advertise, listen_addr=listen,
                etcd_endpoint=f"127.0.0.1:{self.config.etcd_client_port}",
            )  # fmt: skip
            self.dir.wipe()
            root = RootCA(ca_cert, ca_key)
            node_key, key_pem = new_key()
            cert = issue(root, new_csr(node_key), state.node_id, "manager", state.swarm_id,
                         [host_of(advertise)])  # fmt: skip
            write_certs(self.dir.certs, root.cert_pem, cert, encrypt_key(key_pem, data_key))
            self.keys.create(data_key, key if b.autolock else None)
            peer_url = f"https://{host_of(advertise)}:{self.config.etcd_peer_port}"
            try:
                await restore_snapshot(b.snapshot, self.dir.etcd, state.node_id, peer_url)
                await self._start_swarm(state)
                assert self.store is not None
                addr = advertise
                await self.store.modify(Node, {
                    n.id: (lambda n: _this_manager(n, addr)) if n.id == state.node_id
                    else _drop_manager_status
                    for n in self.store.nodes()
                    if n.id == state.node_id or n.manager_status is not None
                })  # fmt: skip
            except BaseException:
                await self._stop_swarm()
                self.dir.wipe()
                self.keys.forget()
                raise
            self.dir.save(state)
            self.state = state
            log.info("swarm %s restored from a backup: this node is its only manager",
                     state.swarm_id)  # fmt: skip
            return state.node_id

    async def join(self, req: dict[str, Any]) -> None:
        await asyncio.shield(asyncio.ensure_future(self._join(req)))

    async def _join(self, req: dict[str, Any]) -> None:
        async with self._lock:
            if self.state is not None:
                raise NotAcceptable(ALREADY_IN_SWARM)
            remotes = [a for a in req.get("RemoteAddrs") or [] if a]
            if not remotes:
                raise BadRequest("at least 1 RemoteAddr is required to join")
            manager = remotes[0] if ":" in remotes[0] else f"{remotes[0]}:{SWARM_PORT}"
            listen = req.get("ListenAddr") or f"0.0.0.0:{SWARM_PORT}"
            given = req.get("AdvertiseAddr") or route_address(host_of(manager)) or ""
            advertise = advertise_address(given, listen)
            description = await describe(self._engine)
            self.dir.wipe()
            peer_url = self._peer_url(advertise)
            answer = await bootstrap.join(
                manager,
                str(req.get("JoinToken") or ""),
                description.hostname or "",
                host_of(advertise),
                req.get("Availability") or "active",
                self.dir.certs,
                cluster_addr=advertise,
                etcd_peer_url=peer_url,
            )
            manager_role = answer.DataKey is not None
            if manager_role and self.config.etcd_endpoints:
                held = await self._swarm_in_external_etcd()
                if held != answer.SwarmID:
                    raise BadRequest(
                        f"the etcd cluster at {', '.join(self.config.etcd_endpoints)} holds "
                        f"{'swarm ' + held if held else 'no swarm'}, not this swarm "
                        f"({answer.SwarmID}): give shoald the swarm's etcd endpoints (then "
                        f"`docker node rm {answer.NodeID}` on a manager, and join again)"
                    )
            state = LocalState(
                node_id=answer.NodeID,
                swarm_id=answer.SwarmID,
                role="manager" if manager_role else "worker",
                advertise_addr=advertise,
                listen_addr=listen,
                managers=answer.Managers or [manager],
                etcd_cluster=answer.EtcdCluster,
                **(self._store_fields() if manager_role else {}),
            )
            if answer.DataKey is not None:  # wrapped once the swarm says autolock is on
                self.keys.create(answer.DataKey, None)
            self.dir.save(state)
            self.state = state
            try:
                await self._start_swarm(state)
            except BaseException:
                if manager_role:  # a manager that could not start: nothing half made stays
                    await self._stop_swarm()
                    self.dir.wipe()
                    self.keys.forget()
                    self.state = None
                raise

    async def leave(self, force: bool) -> None:
        # Once begun, a leave is carried through even if the client goes away meanwhile.
        await asyncio.shield(asyncio.ensure_future(self._leave(force)))

    async def _leave(self, force: bool) -> None:
        async with self._lock:
            if self.state is None:
                raise NotAcceptable("This node is not part of a swarm")
            if self._locked and not force:
                raise NotAcceptable(LOCKED_LEAVE)
            if self.state.role == "manager" and not force:  # workers leave without --force
                quorate = self.store is not None and self.store.quorate
                store = self.store if quorate else None
                raise NotAcceptable(controlapi_swarm.leave_refusal(
                    store, self.state.node_id, raft=not self.state.external_etcd
                ))  # fmt: skip
            node_id = self.state.node_id
            if self.state.role == "manager" and self.store is not None:
                if self.state.external_etcd:
                    await _erase_if_last(self.store, node_id)
                else:
                    await _leave_etcd_cluster(self.store.kv)
            started = asyncio.get_running_loop().time()
            networks = self.networks
            served = self._locked and networks is not None  # locked: only the plugin runs
            if networks is None:
                networks = self._node_networks(self.state)
            await self._stop_swarm()
            if not served:  # dockerd asks the plugin as containers and networks go
                await networks.serve()
            await self._remove_task_containers(node_id)
            await asyncio.to_thread(self.files.clear)
            if networks is not None:
                await networks.remove_engine_networks()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(networks.teardown(), STOP_TIMEOUT)
            self.networks = None
            self.dir.wipe()
            self.keys.forget()
            self._locked = self._removed = False
            self.state = None
            took = asyncio.get_running_loop().time() - started
            log.info("left the swarm in %.1f s", took)

    async def _remove_task_containers(self, node_id: str) -> None:
        """Best effort, as Docker's leave: all at once, each call bounded."""
        filters = json.dumps({"label": [f"{labels.NODE_ID}={node_id}"]})

        async def remove(cid: str) -> None:
            await self._engine.request(
                "DELETE",
                f"/containers/{cid}",
                params={"force": "1", "v": "1"},
                timeout=REMOVE_TIMEOUT,
            )

        try:
            containers = await self._engine.request(
                "GET", "/containers/json", params={"all": "1", "filters": filters},
                timeout=REMOVE_TIMEOUT,
            )  # fmt: skip
            results = await asyncio.gather(
                *(remove(c["Id"]) for c in containers or []), return_exceptions=True
            )
            for r in results:
                if isinstance(r, BaseException):
                    log.warning("removing a task container: %s", r)
        except Exception as e:  # noqa: BLE001 - best effort
            log.warning("removing task containers: %s", e)


def _this_manager(node: Node, addr: str) -> bool:
    """The restored manager's node object: a manager at its new address."""
    node.spec.role = "manager"
    node.manager_status = ManagerStatus(leader=False, reachability="reachable", addr=addr)
    return True


async def restore_snapshot(snapshot: bytes, data_dir: Path, name: str, peer_url: str) -> None:
    """etcd's own restore (`etcdctl snapshot restore`, Debian's etcd-client): a new
    one-member cluster's data directory from a snapshot."""
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=data_dir.parent) as tmp:
        path = Path(tmp) / "snapshot.db"
        path.write_bytes(snapshot)
        proc = await asyncio.create_subprocess_exec(
            shutil.which("etcdctl") or "/usr/bin/etcdctl", "snapshot", "restore", str(path),
            "--data-dir", str(data_dir), "--name", name,
            "--initial-cluster", f"{name}={peer_url}",
            "--initial-advertise-peer-urls", peer_url,
            env={**os.environ, "ETCDCTL_API": "3"},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise DaemonError(f"etcdctl snapshot restore failed: {out.decode(errors='replace')}")
    data_dir.chmod(0o700)


def _drop_manager_status(node: Node) -> bool:
    """A manager that is no longer an etcd member: no manager status (Docker shows its role
    still manager, its MANAGER STATUS empty)."""
    if node.manager_status is None:
        return False
    node.manager_status = None
    return True


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


async def _leave_etcd_cluster(kv: object) -> None:
    """A manager that leaves takes its member out of the etcd cluster first, so that the
    others no longer count it for their quorum (best effort: without a quorum it cannot)."""
    if not isinstance(kv, Etcd):
        return
    try:
        async with asyncio.timeout(5):
            others = [m for m in await kv.members() if m.id != await kv.member_id()]
            if others:
                await kv.remove_member(await kv.member_id())
                log.info("this manager's etcd member left the cluster")
    except Exception as e:  # noqa: BLE001 - leaving goes on
        log.warning("leaving the etcd cluster: %s", e)


async def _erase_if_last(store: MirroredStore, node_id: str) -> None:
    """The last manager of a swarm on an external etcd cluster leaves (`--force`): the
    swarm's keys go, as Docker's last manager takes the swarm's state with it."""
    if not isinstance(store.kv, Etcd) or not store.quorate:
        return
    if any(n.spec.role == "manager" and n.id != node_id for n in store.nodes()):
        return
    try:
        async with asyncio.timeout(5):
            await store.kv.delete_all()
        log.info("the last manager left: the swarm's keys are erased from the etcd cluster")
    except Exception as e:  # noqa: BLE001 - leaving goes on
        log.warning("erasing the swarm from the etcd cluster: %s", e)


PROMOTE_PERIOD = 1.0  # seconds between looks for learners to promote


async def _promote_learners(etcd: Etcd) -> None:
    """Every manager promotes the learners that caught up (a manager that joined starts as
    one): whichever manager let it join may be gone by then."""
    while True:
        try:
            for name in await etcd.promote_learners():
                log.info("etcd member %s promoted: it votes now", name)
        except Exception as e:  # noqa: BLE001 - no quorum now: the next round
            log.debug("promoting learners: %s", e)
        await asyncio.sleep(PROMOTE_PERIOD)


async def _wait_etcd(etcd: Etcd, timeout: float | None) -> None:
    """Until the member answers a linearizable read (None: however long it takes)."""
    deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
    while True:
        try:
            await etcd.connect()
            await etcd.status()
            return
        except Exception:  # noqa: BLE001 - still starting, or no quorum yet
            if deadline is not None and asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.1 if deadline is not None else 0.5)
