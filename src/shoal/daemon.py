"""One `shoald`: the node's swarm membership and everything that runs for it.

Outside a swarm the daemon only proxies the local engine. `swarm init` (or, on restart, the
saved local state) starts the swarm parts in one task group: the etcd member, the store
mirror, the manager (leader loops), the dispatcher and this node's agent. `swarm leave`
cancels the group and wipes the swarm state.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import shutil
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from shoal.agent.agent import Agent, describe
from shoal.agent.engine import Engine
from shoal.agent.remote import RemoteSession
from shoal.agent.remote import join as join_swarm
from shoal.api.errors import (
    ALREADY_IN_SWARM,
    NOT_A_MANAGER,
    NOT_A_MANAGER_WORKER,
    BadRequest,
    NotAcceptable,
    rpc,
)
from shoal.api.models import (
    Cluster,
    ManagerStatus,
    Node,
    NodeSpec,
    NodeStatus,
    TLSInfo,
)
from shoal.api.naming import new_id
from shoal.etcd.member import Member, MemberConfig
from shoal.manager.ca.authority import RootCA, issue, new_csr, new_key, new_root_ca
from shoal.manager.ca.tokens import new_token
from shoal.manager.controlapi.cluster import with_defaults
from shoal.manager.dispatcher.dispatcher import Dispatcher
from shoal.manager.dispatcher.server import make_cluster_app, server_context
from shoal.manager.manager import Manager
from shoal.store.etcd import Etcd
from shoal.store.store import Store

log = logging.getLogger(__name__)

SWARM_PORT = 2377


@dataclass
class DaemonConfig:
    state_dir: Path
    engine_host: str = "unix:///var/run/docker.sock"
    etcd_client_port: int = 2379
    etcd_peer_port: int = 2380


@dataclass
class LocalState:
    """What this node remembers of its swarm across restarts (`<state-dir>/swarm/state.json`)."""

    node_id: str
    cluster_id: str
    role: str
    advertise_addr: str
    listen_addr: str
    etcd_endpoint: str = ""
    managers: list[str] = field(default_factory=list)  # cluster-port addresses, for workers


class Daemon:
    def __init__(self, config: DaemonConfig) -> None:
        self.config = config
        self.engine = Engine(config.engine_host)
        self.state: LocalState | None = None
        self.store: Store | None = None
        self.manager: Manager | None = None
        self.dispatcher: Dispatcher | None = None
        self._group: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    # ------------------------------------------------------------------ paths and state

    @property
    def swarm_dir(self) -> Path:
        return self.config.state_dir / "swarm"

    def _state_file(self) -> Path:
        return self.swarm_dir / "state.json"

    def _load_state(self) -> LocalState | None:
        try:
            return LocalState(**json.loads(self._state_file().read_text()))
        except FileNotFoundError:
            return None

    def _save_state(self, state: LocalState) -> None:
        self.swarm_dir.mkdir(parents=True, exist_ok=True)
        tmp = self._state_file().with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(state), indent=2))
        tmp.replace(self._state_file())

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self.state = self._load_state()
        if self.state is not None:
            await self._start_swarm(self.state)

    async def stop(self) -> None:
        await self._stop_swarm()
        await self.engine.close()

    @property
    def active(self) -> bool:
        return self.state is not None

    @property
    def is_manager(self) -> bool:
        return self.state is not None and self.state.role == "manager"

    def require_manager(self) -> Store:
        if self.state is not None and not self.is_manager:
            raise NotAcceptable(NOT_A_MANAGER_WORKER)
        if self.store is None:
            raise NotAcceptable(NOT_A_MANAGER)
        return self.store

    @property
    def certs_dir(self) -> Path:
        return self.swarm_dir / "certs"

    async def _start_swarm(self, state: LocalState) -> None:
        ready = asyncio.Event()
        run = (
            self._run_manager(state, ready) if state.role == "manager" else self._run_worker(state)
        )
        if state.role != "manager":
            ready.set()
        self._group = asyncio.create_task(run)
        waiter = asyncio.create_task(ready.wait())
        done, _ = await asyncio.wait({waiter, self._group}, return_when=asyncio.FIRST_COMPLETED)
        if self._group in done:
            waiter.cancel()
            self._group.result()  # raises what went wrong

    async def _run_manager(self, state: LocalState, ready: asyncio.Event) -> None:
        member = Member(
            MemberConfig(
                data_dir=self.swarm_dir / "etcd",
                name=state.node_id,
                client_port=self.config.etcd_client_port,
                peer_port=self.config.etcd_peer_port,
            )
        )
        etcd = Etcd(state.etcd_endpoint)
        store = self.store = Store(etcd)
        manager = self.manager = Manager(store, state.node_id)
        dispatcher = self.dispatcher = Dispatcher(store)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(member.run())
            await member.started.wait()
            await _wait_etcd(etcd)
            tg.create_task(store.run())
            await store.synced.wait()
            ready.set()
            tg.create_task(manager.run())
            tg.create_task(dispatcher.run())
            tg.create_task(self._serve_cluster_port(state, store, dispatcher))
            agent = Agent(
                self.engine,
                state.node_id,
                lambda d: dispatcher.register(state.node_id, d, host_of(state.advertise_addr)),
            )
            tg.create_task(agent.run())

    async def _run_worker(self, state: LocalState) -> None:
        async def connect(description: Any) -> Any:
            return await RemoteSession.connect(
                state.node_id, state.managers, self.certs_dir, description,
                host_of(state.advertise_addr), self.engine,
            )  # fmt: skip

        await Agent(self.engine, state.node_id, connect).run()

    async def _serve_cluster_port(self, state: LocalState, store: Store, dispatcher: Any) -> None:
        """2377/tcp: joins and agent sessions, TLS with this manager's node certificate."""
        certs = self.certs_dir
        ctx = server_context(
            str(certs / "node.crt"), str(certs / "node.key"), str(certs / "ca.crt")
        )
        runner = web.AppRunner(make_cluster_app(store, dispatcher, self.root_ca), access_log=None)
        await runner.setup()
        host, _, port = state.listen_addr.rpartition(":")
        site = web.TCPSite(runner, host or "0.0.0.0", int(port or SWARM_PORT), ssl_context=ctx)
        try:
            await site.start()
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    async def _stop_swarm(self) -> None:
        group, self._group = self._group, None
        if group is not None:
            group.cancel()
            with contextlib.suppress(BaseException):
                await group
        if self.store is not None:
            with contextlib.suppress(Exception):
                await self.store.etcd.close()
        self.store = self.manager = self.dispatcher = None

    # ------------------------------------------------------------------ swarm init / leave

    async def init(self, req: dict[str, Any]) -> str:
        async with self._lock:
            if self.state is not None:
                raise NotAcceptable(ALREADY_IN_SWARM)
            if req.get("ForceNewCluster"):
                raise BadRequest("--force-new-cluster needs an existing swarm on this node")
            listen = req.get("ListenAddr") or f"0.0.0.0:{SWARM_PORT}"
            advertise = advertise_address(req.get("AdvertiseAddr") or "", listen)
            availability = req.get("Availability") or "active"
            if availability not in ("active", "pause", "drain"):
                raise BadRequest(rpc("InvalidArgument", f"invalid availability {availability!r}"))
            node_id = new_id()
            state = LocalState(
                node_id=node_id,
                cluster_id=new_id(),
                role="manager",
                advertise_addr=advertise,
                listen_addr=listen,
                etcd_endpoint=f"127.0.0.1:{self.config.etcd_client_port}",
            )
            if self.swarm_dir.exists():
                shutil.rmtree(self.swarm_dir)
            description = await describe(self.engine)
            ca = new_root_ca()
            key, key_pem = new_key()
            cert = issue(ca, new_csr(key), node_id, "manager", state.cluster_id)
            self._write_certs(ca.cert_pem, cert, key_pem)
            await self._start_swarm(state)
            try:
                await self._bootstrap(state, req, description, availability, ca)
            except BaseException:
                await self._stop_swarm()
                shutil.rmtree(self.swarm_dir, ignore_errors=True)
                raise
            self._save_state(state)
            self.state = state
            return node_id

    def _write_certs(self, ca_pem: bytes, cert_pem: bytes, key_pem: bytes) -> None:
        certs = self.certs_dir
        certs.mkdir(parents=True, exist_ok=True)
        certs.chmod(0o700)
        (certs / "ca.crt").write_bytes(ca_pem)
        (certs / "node.crt").write_bytes(cert_pem)
        key_file = certs / "node.key"
        key_file.touch(mode=0o600)
        key_file.write_bytes(key_pem)

    async def _bootstrap(
        self, state: LocalState, req: dict[str, Any], description: Any, availability: str,
        ca: RootCA,
    ) -> None:  # fmt: skip
        assert self.store is not None
        subject, key = ca.issuer_info()
        cluster = Cluster(
            id=state.cluster_id,
            spec=with_defaults(req.get("Spec")),
            tls_info=TLSInfo(
                trust_root=ca.cert_pem.decode(), cert_issuer_subject=subject,
                cert_issuer_public_key=key,
            ),
            default_addr_pool=req.get("DefaultAddrPool") or ["10.0.0.0/8"],
            subnet_size=req.get("SubnetSize") or 24,
            data_path_port=req.get("DataPathPort") or 4789,
        )  # fmt: skip
        cluster.join_tokens.worker = new_token(ca.der)
        cluster.join_tokens.manager = new_token(ca.der)
        await self.store.put_extra("ca/root", json.dumps(
            {"cert": ca.cert_pem.decode(), "key": ca.key_pem.decode()}
        ).encode())  # fmt: skip
        await self.store.create(cluster)
        description.tls_info = cluster.tls_info
        node = Node(
            id=state.node_id,
            spec=NodeSpec(role="manager", availability=availability, labels={}),
            description=description,
            status=NodeStatus(state="ready", addr=host_of(state.advertise_addr)),
            manager_status=ManagerStatus(
                leader=False, reachability="reachable", addr=state.advertise_addr
            ),
        )
        await self.store.create(node)

    async def join(self, req: dict[str, Any]) -> None:
        async with self._lock:
            if self.state is not None:
                raise NotAcceptable(ALREADY_IN_SWARM)
            remotes = [a for a in req.get("RemoteAddrs") or [] if a]
            if not remotes:
                raise BadRequest("at least 1 RemoteAddr is required to join")
            manager = remotes[0] if ":" in remotes[0] else f"{remotes[0]}:{SWARM_PORT}"
            listen = req.get("ListenAddr") or f"0.0.0.0:{SWARM_PORT}"
            given = req.get("AdvertiseAddr") or _route_address(host_of(manager)) or ""
            advertise = advertise_address(given, listen)
            description = await describe(self.engine)
            if self.swarm_dir.exists():
                shutil.rmtree(self.swarm_dir)
            answer = await join_swarm(
                manager,
                str(req.get("JoinToken") or ""),
                description.hostname or "",
                host_of(advertise),
                req.get("Availability") or "active",
                self.certs_dir,
            )
            state = LocalState(
                node_id=answer["NodeID"],
                cluster_id=answer["ClusterID"],
                role="worker",
                advertise_addr=advertise,
                listen_addr=listen,
                managers=answer.get("Managers") or [manager],
            )
            self._save_state(state)
            self.state = state
            await self._start_swarm(state)

    def root_ca(self) -> RootCA:
        store = self.require_manager()
        raw = store.extra("ca/root")
        if raw is None:
            raise NotAcceptable(NOT_A_MANAGER)
        data = json.loads(raw)
        return RootCA(data["cert"].encode(), data["key"].encode())

    async def leave(self, force: bool) -> None:
        async with self._lock:
            if self.state is None:
                raise NotAcceptable("This node is not part of a swarm")
            if self.is_manager and not force:  # workers leave without --force
                raise NotAcceptable(
                    "You are attempting to leave the swarm on a node that is participating as "
                    "a manager. Removing the last manager erases all current state of the "
                    "swarm. Use `--force` to ignore this message."
                )
            node_id = self.state.node_id
            await self._stop_swarm()
            await self._remove_task_containers(node_id)
            shutil.rmtree(self.swarm_dir, ignore_errors=True)
            self.state = None

    async def _remove_task_containers(self, node_id: str) -> None:
        filters = json.dumps({"label": [f"com.docker.swarm.node.id={node_id}"]})
        try:
            containers = await self.engine.request(
                "GET", "/containers/json", params={"all": "1", "filters": filters}
            )
            for c in containers or []:
                await self.engine.request("DELETE", f"/containers/{c['Id']}", params={"force": "1"})
        except Exception as e:  # noqa: BLE001 - best effort, as Docker's leave
            log.warning("removing task containers: %s", e)


async def _wait_etcd(etcd: Etcd, timeout: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            await etcd.connect()
            await etcd.status()
            return
        except Exception:  # noqa: BLE001 - still starting
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.1)


def host_of(addr: str) -> str:
    host, _, _ = addr.rpartition(":")
    return host.strip("[]") or addr


def advertise_address(given: str, listen: str) -> str:
    """Docker's rules: an address (port defaults to the listen port, 2377), an interface name,
    or — when nothing is given — the address of the interface holding the default route."""
    port = listen.rpartition(":")[2] or str(SWARM_PORT)
    if given:
        host, sep, p = given.rpartition(":")
        if sep and p.isdigit() and host:
            given, port = host, p
        try:
            ipaddress.ip_address(given.strip("[]"))
            return f"{given}:{port}"
        except ValueError:
            addr = _interface_address(given)
            if addr is None:
                raise BadRequest(
                    f"advertise address must be a non-zero IP address or network interface "
                    f"(with optional port number): {given!r}"
                ) from None
            return f"{addr}:{port}"
    host = listen.rpartition(":")[0]
    if host and host not in ("0.0.0.0", "::", "[::]"):
        return f"{host}:{port}"
    addr = _default_route_address()
    if addr is None:
        raise BadRequest(
            "could not choose an IP address to advertise since this system does not have "
            "a default route"
        )
    return f"{addr}:{port}"


def _default_route_address() -> str | None:
    return _route_address("192.0.2.1")


def _route_address(dest: str) -> str | None:
    """The local address the kernel would use towards `dest`. A UDP "connect" sends nothing."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect((dest, 9))
            addr: str = s.getsockname()[0]
            return addr
        except OSError:
            return None


def _interface_address(name: str) -> str | None:
    import fcntl
    import struct

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            packed = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", name[:15].encode()))
        except OSError:
            return None
    return socket.inet_ntoa(packed[20:24])
