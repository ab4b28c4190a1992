"""The node's network data plane: what shoald runs for its swarm networks.

``DataPlane`` holds it together — the kernel's namespaces, bridges, VXLAN devices and their
forwarding entries (``apply``: diffed against what the host has), the engine plugin that
dockerd calls to plug each container in (``start``), a DNS server per network, and the
services' VIPs and published ports in nftables (``balancing.py``: the host's table, and each
joined container's as it starts). shoald
makes one per node::

    plane = DataPlane(underlay="10.0.0.5", state_dir="/var/lib/shoal/network",
                      allocate=..., release=...)
    await plane.start()          # serve dockerd (the plugin socket)
    await plane.apply(state)     # every NetworkState from the manager, in full
    ...
    await plane.close()          # shoald stops: the kernel keeps everything, containers too
    await plane.teardown()       # the node leaves the swarm: everything of shoal's goes

A restart is ``start`` + ``apply`` with the same state: nothing that matches is touched, so
running containers keep their connectivity. ``start`` applies the last state applied before
(kept in ``state_dir``) at once, so DNS answers and dockerd's joins work again before the
manager has sent anything; only while no shoald runs do DNS queries go unanswered and
dockerd's plugin calls wait (it retries them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os

from shoal.network import netns
from shoal.network.balancing import Balancing
from shoal.network.dns import LocalEndpoint, Names, failure, respond, visible
from shoal.network.dnsserver import Forwarder, NetworkDns
from shoal.network.driver import Allocate, Driver, DriverTable, Release
from shoal.network.kernel import Kernel, KernelError
from shoal.network.layout import Change, CreateNetns, DeleteNetns, changes, desired
from shoal.network.names import NETNS_DIR, PLUGIN_SOCKET, netns_name, veth_name
from shoal.network.plugin import PluginServer
from shoal.rpc.messages import NetworkPlan, NetworkState

log = logging.getLogger(__name__)

TABLE_FILE = "engine-endpoints.json"
STATE_FILE = "network-state.json"  # the last state applied
RETRY_DELAY = 1.0  # seconds before the balancing is tried again (see DataPlane._again)
RETRIES = 30
SANDBOX_POLL = 0.005  # seconds between looks for a joined container's namespace
SANDBOX_WAIT = 30.0  # seconds a joined container's namespace is waited for


class DataPlane:
    def __init__(
        self,
        underlay: str,
        state_dir: str,
        *,
        allocate: Allocate | None = None,
        release: Release | None = None,
        plugin_socket: str = PLUGIN_SOCKET,
        resolv_conf: str = "/etc/resolv.conf",
        netns_dir: str = NETNS_DIR,
    ) -> None:
        self.underlay = underlay
        self.state_dir = state_dir
        self.netns_dir = netns_dir
        self.kernel = Kernel(netns_dir)
        self.table = DriverTable.load(os.path.join(state_dir, TABLE_FILE))
        self.state_file = os.path.join(state_dir, STATE_FILE)
        self.driver = Driver(self, self.table, allocate, release)
        self.plugin = PluginServer(self.driver, plugin_socket)
        self.forwarder = Forwarder(resolv_conf)
        self.state = NetworkState()
        self.names = Names()
        self._plans: dict[str, NetworkPlan] = {}
        self._dns: dict[str, NetworkDns] = {}
        self._lock = asyncio.Lock()
        self.balancing = Balancing(self.kernel, underlay)
        self._retry: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Apply the last state applied (if any), forget joins whose container went while
        shoald was away, serve dockerd."""
        last = self._load_state()
        if last is not None:
            await self.apply(last)
        async with self._lock:
            await self._forget_gone_containers()
        await self.plugin.start()

    async def apply(self, state: NetworkState) -> None:
        """Make the kernel (and DNS) match the state: networks no longer in it go, new ones
        come, forwarding and neighbour entries follow the endpoints. Each network is its own
        step: one that fails (raised at the end, as KernelError) does not hold the others
        back, and the next apply tries it again."""
        async with self._lock:
            want = desired(state, self.underlay)
            todo = changes(want, await self.kernel.read_all())
            failed: dict[str, KernelError] = {}
            for ns, steps in _by_namespace(todo):
                if isinstance(steps[0], DeleteNetns | CreateNetns):
                    await self._stop_dns(ns)
                try:
                    await self.kernel.carry_out(steps)
                except KernelError as e:
                    log.error("network data plane: %s", e)
                    failed[ns] = e
            self.state = state
            self._plans = {p.id: p for p in state.networks}
            for where, err in (await self._apply_balancing()).items():
                log.error("network data plane: %s: %s", where, err)
                failed[where] = err
            self.names = Names.of(state)  # after the VIPs: a name never leads to a VIP not NATed
            for layout in want.values():
                if layout.netns not in self._dns and layout.netns not in failed:
                    server = NetworkDns(
                        layout.network_id, netns.path(layout.netns, self.netns_dir), self._answer
                    )
                    await server.start()
                    self._dns[layout.netns] = server
            if todo:
                log.info("network data plane: %d change(s) for %d network(s)", len(todo), len(want))
            if failed:
                raise KernelError("; ".join(str(e) for e in failed.values()))
            self._save_state(state)

    async def close(self) -> None:
        """Stop serving (shoald stops); the kernel keeps the networks and containers theirs
        (and the VIPs and published ports: they keep answering while shoald is away)."""
        self._cancel_retry()
        self._cancel_watch()
        await self.plugin.close()
        async with self._lock:
            for ns in list(self._dns):
                await self._stop_dns(ns)
            self.kernel.close()

    async def teardown(self) -> None:
        """Remove everything shoal added on this host: namespaces (with their devices),
        devices left in the host namespace, the plugin socket and the driver's table."""
        self._cancel_retry()
        self._cancel_watch()
        await self.plugin.close()
        async with self._lock:
            for ns in list(self._dns):
                await self._stop_dns(ns)
            await self.balancing.teardown(sorted(self._sandboxes()))
            for ns in self.kernel.namespaces() + self.kernel.leftovers():
                self.kernel.forget(ns)
                netns.delete(ns, self.netns_dir)
            await self.kernel.remove_host_leftovers()
            self.kernel.close()
            self.table.networks.clear()
            self.table.endpoints.clear()
            self.table.allocated.clear()
            self.table.remove()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.state_file)
            self.state, self._plans, self.names = NetworkState(), {}, Names()

    # ---------------------------------------------------------------- for the driver

    def plan(self, network_id: str) -> NetworkPlan | None:
        return self._plans.get(network_id)

    async def plug(self, network_id: str, endpoint_id: str) -> str:
        async with self._lock:
            plan = self._plans.get(network_id)
            if plan is None:
                raise RuntimeError(f"network {network_id} is not on this node")
            return await self.kernel.plug(netns_name(network_id), endpoint_id, plan.mtu)

    async def unplug(self, network_id: str | None, endpoint_id: str) -> None:
        async with self._lock:
            await self.kernel.unplug(netns_name(network_id) if network_id else None, endpoint_id)

    async def sandbox_changed(self, sandbox: str) -> None:
        """A container joined or left one of its shoal networks (dockerd's Join / Leave):
        its VIPs follow before dockerd goes on (on Join: before the container's process)."""
        async with self._lock:
            networks = self._sandboxes().get(sandbox, set())
            await self.balancing.sandbox(self.state, sandbox, networks)
        self._watch_sandboxes()

    def _watch_sandboxes(self) -> None:
        if self.balancing.waiting and (self._watch is None or self._watch.done()):
            self._watch = asyncio.get_running_loop().create_task(self._await_sandboxes())

    async def _await_sandboxes(self) -> None:
        """Joined containers' namespaces, looked for until mounted: dockerd mounts one after
        the Join, just before the container's process starts, so the VIPs are there within
        milliseconds of it (a container never started is given up after SANDBOX_WAIT)."""
        loop = asyncio.get_running_loop()
        since: dict[str, float] = {}
        while self.balancing.waiting:
            await asyncio.sleep(SANDBOX_POLL)
            now = loop.time()
            ready = []
            for sandbox in list(self.balancing.waiting):
                if netns.mounted(sandbox):
                    ready.append(sandbox)
                elif now - since.setdefault(sandbox, now) > SANDBOX_WAIT:
                    self.balancing.waiting.discard(sandbox)
            if ready:
                async with self._lock:
                    joined = self._sandboxes()
                    for sandbox in ready:
                        await self.balancing.sandbox(
                            self.state, sandbox, joined.get(sandbox, set())
                        )

    # ---------------------------------------------------------------- VIPs and the mesh

    def _sandboxes(self) -> dict[str, set[str]]:
        """Joined sandboxes → their swarm networks on this node (the state's)."""
        out: dict[str, set[str]] = {}
        for e in self.table.endpoints.values():
            if e.sandbox and e.network_id in self._plans:
                out.setdefault(e.sandbox, set()).add(e.network_id)
        return out

    async def _apply_balancing(self) -> dict[str, KernelError]:
        failed = await self.balancing.apply(self.state, self._sandboxes(), self._local_on_ingress())
        self._watch_sandboxes()
        self._cancel_retry()
        if self.balancing.missing or failed:
            self._retry = asyncio.get_running_loop().create_task(self._again())
        return failed

    async def _again(self, tries: int = RETRIES) -> None:
        """Local tasks whose gateway-bridge address was not there yet (dockerd adds that
        interface just after the Join), or a failure: the balancing is tried again."""
        for _ in range(tries):
            await asyncio.sleep(RETRY_DELAY)
            async with self._lock:
                failed = await self.balancing.apply(
                    self.state, self._sandboxes(), self._local_on_ingress()
                )
            if not failed and not self.balancing.missing:
                return

    def _local_on_ingress(self) -> dict[str, str]:
        ingress = next((p.id for p in self.state.networks if p.ingress), None)
        return {
            e.ip: e.sandbox
            for e in self.table.endpoints.values()
            if e.sandbox and e.network_id == ingress
        }

    def _cancel_retry(self) -> None:
        task, self._retry = self._retry, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    def _cancel_watch(self) -> None:
        task, self._watch = self._watch, None
        if task is not None:
            task.cancel()

    # ---------------------------------------------------------------- DNS

    def local_endpoints(self) -> list[LocalEndpoint]:
        return [
            LocalEndpoint(e.network_id, e.ip, e.sandbox)
            for e in self.table.endpoints.values()
            if e.sandbox
        ]

    async def _answer(self, network_id: str, source: str, packet: bytes, tcp: bool) -> bytes | None:
        networks = visible(network_id, source, self.local_endpoints())
        reply = respond(packet, self.names, networks, tcp=tcp)
        if reply is not None:
            return reply
        upstream = await self.forwarder.forward(packet, tcp)
        return upstream if upstream is not None else failure(packet)

    def _load_state(self) -> NetworkState | None:
        try:
            with open(self.state_file) as f:
                return NetworkState.model_validate_json(f.read())
        except FileNotFoundError:
            return None
        except ValueError:
            log.warning("network data plane: %s is damaged, not applied", self.state_file)
            return None

    def _save_state(self, state: NetworkState) -> None:
        os.makedirs(self.state_dir, exist_ok=True)
        tmp = f"{self.state_file}.tmp"
        with open(tmp, "w") as f:
            f.write(state.model_dump_json())
        os.replace(tmp, self.state_file)

    async def _stop_dns(self, ns: str) -> None:
        server = self._dns.pop(ns, None)
        if server is not None:
            await server.close()

    async def _forget_gone_containers(self) -> None:
        """A joined endpoint whose veth is gone lost its container while shoald was away
        (dockerd's Leave found nobody): it is no longer joined."""
        present = set(self.kernel.namespaces())
        plugged: dict[str, set[str]] = {}
        changed = False
        for endpoint_id, entry in self.table.endpoints.items():
            if not entry.sandbox:
                continue
            ns = netns_name(entry.network_id)
            if ns not in plugged:
                plugged[ns] = await self.kernel.plugged(ns) if ns in present else set()
            if veth_name(endpoint_id) not in plugged[ns]:
                entry.sandbox, entry.dns_route = "", False
                changed = True
        if changed:
            self.table.save()


def _by_namespace(todo: list[Change]) -> list[tuple[str, list[Change]]]:
    """The changes in their order, grouped by namespace (each namespace's run is one step)."""
    groups: list[tuple[str, list[Change]]] = []
    for change in todo:
        if groups and groups[-1][0] == change.netns:
            groups[-1][1].append(change)
        else:
            groups.append((change.netns, [change]))
    return groups
