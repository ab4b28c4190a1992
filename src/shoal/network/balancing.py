"""Service VIPs and the routing mesh on one node: the tables of ``nat.py`` carried out in
the host namespace and in every container sandbox joined to a shoal network, the host's
ingress link and its ``DOCKER-USER`` rule (``ingress.py``).

What each namespace's ``table ip shoal`` holds is read from the kernel the first time it is
needed (at start: adoption — a restarted shoald reads, diffs and finds nothing to do) and
after any failure; in between it is what the last successful transaction left, so one
backend changing costs one small transaction per namespace that has the service, whatever
the number of services (the reading would be O(all of them)).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging

from pyroute2.netlink.exceptions import NetlinkError

from shoal.network import nat, netns, nft, vipneigh
from shoal.network.ingress import Ingress, LinkSpec
from shoal.network.kernel import Kernel, KernelError
from shoal.network.names import netns_name
from shoal.rpc.messages import NetworkState

log = logging.getLogger(__name__)

HOST = None  # the host namespace's key among the tables


class Balancing:
    def __init__(self, kernel: Kernel, underlay: str) -> None:
        self.underlay = underlay
        self.ingress = Ingress(kernel)
        self._tables: dict[str | None, nat.Ruleset | None] = {}
        self._gateways: dict[str, str] = {}  # sandbox → its gateway-bridge address
        self.missing: set[str] = set()  # local backends whose gateway address is not known yet
        self.waiting: set[str] = set()  # joined sandboxes whose namespace is not mounted yet

    async def apply(
        self, state: NetworkState, sandboxes: dict[str, set[str]], local: dict[str, str]
    ) -> dict[str, KernelError]:
        """The host's table and link, then every sandbox's table. ``sandboxes``: sandbox →
        the swarm networks it is joined to here; ``local``: a local endpoint's address on the
        ingress network → its sandbox. Returns the failures, by where."""
        failed: dict[str, KernelError] = {}
        plan = nat.ingress_plan(state)
        spec = None
        if plan is not None and state.ingress_address:
            spec = LinkSpec(
                netns_name(plan.id), _cidr(state.ingress_address, plan.subnet), plan.mtu
            )
        link = False
        try:
            link = await self.ingress.sync(spec)
        except (KernelError, OSError) as e:
            failed["ingress link"] = KernelError(str(e))
        gateways = await self._local_gateways(state, local)
        want = nat.host_ruleset(state, self.underlay, gateways, link=link)
        try:
            if want is not None:
                await self.ingress.sync_docker_user(True)
            await self._sync(HOST, want)
            if want is None:
                await self.ingress.sync_docker_user(False)
        except KernelError as e:
            failed["host table"] = e
        rulesets: dict[frozenset[str], nat.Ruleset | None] = {}  # by the sandbox's networks
        for sandbox in sorted(sandboxes):
            networks = frozenset(sandboxes[sandbox])
            if networks not in rulesets:
                rulesets[networks] = nat.sandbox_ruleset(state, set(networks))
            try:
                await self._sync(sandbox, rulesets[networks])
            except KernelError as e:
                failed[sandbox] = e
        for sandbox in [s for s in self._tables if s is not HOST and s not in sandboxes]:
            self.forget(sandbox)
        return failed

    async def sandbox(self, state: NetworkState, sandbox: str, networks: set[str]) -> None:
        """A sandbox joined or left a network: its table follows at once (read anew)."""
        self._tables.pop(sandbox, None)
        try:
            await self._sync(sandbox, nat.sandbox_ruleset(state, networks) if networks else None)
        except KernelError as e:
            log.error("service VIPs in %s: %s", sandbox, e)
        if not networks:
            self.forget(sandbox)

    def forget(self, sandbox: str) -> None:
        self._tables.pop(sandbox, None)
        self.waiting.discard(sandbox)
        self._gateways.pop(sandbox, None)

    async def teardown(self, sandboxes: list[str]) -> None:
        """Every table, the link, the DOCKER-USER rule: gone."""
        for where in [HOST, *sandboxes]:
            self._tables.pop(where, None)
            try:
                await self._sync(where, None)
            except KernelError as e:
                log.warning("teardown: %s", e)
        await self.ingress.sync(None)
        self.ingress.docker_user = None
        await self.ingress.sync_docker_user(False)
        self._tables.clear()
        self._gateways.clear()

    # ---------------------------------------------------------------- helpers

    async def _sync(self, where: str | None, want: nat.Ruleset | None) -> None:
        if where is not HOST and not netns.mounted(where):
            # dockerd joins a container before its namespace exists (runc makes it, then
            # dockerd mounts it at the sandbox key): the table waits for it (``waiting``)
            self._tables.pop(where, None)
            if want is not None:
                self.waiting.add(where)
            return
        fresh = where in self.waiting  # mounted since its Join: its container just started
        self.waiting.discard(where)
        found = self._tables[where] if where in self._tables else await self._read(where)
        commands = nat.transaction(want, found)
        if not commands:
            self._tables[where] = want
            return
        try:
            await nft.run(where, commands)
        except (KernelError, OSError) as e:
            self._tables.pop(where, None)
            if where is not HOST and isinstance(e, FileNotFoundError):
                return  # the sandbox went meanwhile
            raise KernelError(str(e)) from e
        self._tables[where] = want
        log.debug("nftables: %d command(s) in %s", len(commands), where or "the host")
        if where is not HOST:
            added, removed = nat.vips_changed(want, found)
            flows = fresh and found is None  # a flow may have begun before the table
            if added or removed:
                try:
                    await asyncio.to_thread(
                        netns.run_in, where, lambda: vipneigh.settle(added, removed, flows=flows)
                    )
                except (NetlinkError, OSError) as e:
                    log.warning("service VIPs in %s: neighbour entries: %s", where, e)

    async def _read(self, where: str | None) -> nat.Ruleset | None:
        try:
            return nat.parse(await nft.list_table(where, nat.FAMILY, nat.TABLE))
        except FileNotFoundError:
            return None  # a sandbox that is gone

    async def _local_gateways(self, state: NetworkState, local: dict[str, str]) -> dict[str, str]:
        """Local backends of ``local`` ports → their gateway-bridge addresses."""
        wanted = nat.local_port_backends(state, self.underlay)
        self.missing = set()
        if not wanted:
            return {}
        subnet = None
        out: dict[str, str] = {}
        for ip in sorted(wanted):
            sandbox = local.get(ip)
            if sandbox is None:
                self.missing.add(ip)
                continue
            gw = self._gateways.get(sandbox)
            if gw is None:
                if subnet is None:
                    subnet = await self.ingress.gateway_subnet()
                    if subnet is None:
                        self.missing |= wanted
                        return {}
                gw = await self.ingress.sandbox_address(sandbox, subnet)
                if gw is None:
                    self.missing.add(ip)
                    continue
                self._gateways[sandbox] = gw
            out[ip] = gw
        if self.missing:
            log.debug("routing mesh: no gateway-bridge address yet for %s", sorted(self.missing))
        return out


def _cidr(address: str, subnet: str) -> str:
    """The node's ingress address with a prefix length (the subnet's, if it came without)."""
    if "/" in address:
        return str(ipaddress.IPv4Interface(address))
    return f"{address}/{ipaddress.IPv4Network(subnet).prefixlen}"
