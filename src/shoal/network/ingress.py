"""The host's side of the routing mesh: its link into the ingress network, the sysctls the
mesh needs, the one accept rule in dockerd's ``DOCKER-USER`` chain, and the gateway-bridge
addresses of local tasks (where ``local`` ports go).

* **The link**: a veth pair, ``shoal-ingress`` in the host namespace (the node's
  ``ingress_address``, MAC derived from it like every endpoint's, the plan's MTU, IPv6 off,
  ``route_localnet`` on so that connections from the host's loopback can be sent through
  it) and ``ve-host`` on the ingress network's bridge ``br0`` in its namespace. It goes
  with the ingress network (deleting the namespace deletes the pair).
* **DOCKER-USER**: dockerd sets the FORWARD policy to DROP, and an accept in another
  nftables base chain does not override a drop there. Packets the mesh DNATs from another
  host to a backend are forwarded (eth0 → ``shoal-ingress``, or → ``docker_gwbridge`` for a
  ``local`` port), so one rule goes first in ``DOCKER-USER``, the chain dockerd keeps for
  its users (through the ``iptables`` dockerd itself uses, nft or legacy)::

      -A DOCKER-USER -m connmark --mark 0x10000000/0x10000000 \
         -m comment --comment "shoal routing mesh" -j ACCEPT

  the ct mark set by the host table's port chains (``nat.MESH_MARK``): only connections the
  mesh made pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from typing import Any

from pyroute2 import AsyncIPRoute
from pyroute2.netlink.exceptions import NetlinkError

from shoal.network import netns
from shoal.network.kernel import IFF_UP, NETLINK_ROUTE, Kernel, KernelError, link_index
from shoal.network.names import BRIDGE, mac_for
from shoal.network.nat import INGRESS_LINK, MESH_MARK

log = logging.getLogger(__name__)

HOST_PEER = "ve-host"  # the other end, on the ingress network's bridge
LINK_ALIAS = "shoal ingress: the host's link into the routing mesh"
GATEWAY_BRIDGE = "docker_gwbridge"
USER_CHAIN = "DOCKER-USER"
RULE_COMMENT = "shoal routing mesh"
DOCKER_USER_RULE = [
    "-m", "connmark", "--mark", f"{MESH_MARK:#x}/{MESH_MARK:#x}",
    "-m", "comment", "--comment", RULE_COMMENT, "-j", "ACCEPT",
]  # fmt: skip
LINK_SYSCTLS = {
    f"net/ipv4/conf/{INGRESS_LINK}/route_localnet": "1",
    f"net/ipv6/conf/{INGRESS_LINK}/disable_ipv6": "1",
}


@dataclass(frozen=True)
class LinkSpec:
    netns: str  # the ingress network's namespace
    cidr: str  # the node's ingress address
    mtu: int

    @property
    def mac(self) -> str:
        return mac_for(self.cidr.split("/")[0])


@dataclass
class LinkFound:
    host: bool = False  # shoal-ingress exists
    peer: bool = False  # ve-host exists in the namespace, on br0, up
    addresses: set[str] = field(default_factory=set)
    mac: str = ""
    mtu: int = 0
    up: bool = False


def link_changes(want: LinkSpec | None, found: LinkFound) -> list[str]:
    """What to do: ``delete`` (the pair), ``create`` (anew), ``address`` (set the one
    address), ``set`` (MTU, up). Pure."""
    if want is None:
        return ["delete"] if found.host else []
    if not found.host or not found.peer or found.mac != want.mac:
        return (["delete"] if found.host else []) + ["create"]
    out = []
    if found.addresses != {want.cidr}:
        out.append("address")
    if found.mtu != want.mtu or not found.up:
        out.append("set")
    return out


class Ingress:
    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.docker_user: bool | None = None  # the rule is there (None: not looked)

    # ---------------------------------------------------------------- the link

    async def read(self, ns: str | None) -> LinkFound:
        host = self.kernel.host()
        found = LinkFound()
        idx = await host.link_lookup(ifname=INGRESS_LINK)
        if not idx:
            return found
        found.host = True
        link = await _one(await host.link("get", index=idx[0]))
        found.mac = str(link.get("address") or "")
        found.mtu = int(link.get("mtu") or 0)
        found.up = bool(link["flags"] & IFF_UP)
        async for a in await host.addr("dump", index=idx[0], family=socket.AF_INET):
            found.addresses.add(f"{a.get('address')}/{a['prefixlen']}")
        if ns is not None and ns in self.kernel.namespaces():
            ipr = self.kernel.ns(ns)
            peer = await ipr.link_lookup(ifname=HOST_PEER)
            br = await ipr.link_lookup(ifname=BRIDGE)
            if peer and br:
                p = await _one(await ipr.link("get", index=peer[0]))
                found.peer = p.get_attr("IFLA_MASTER") == br[0] and bool(p["flags"] & IFF_UP)
        return found

    async def sync(self, want: LinkSpec | None) -> bool:
        """Make the link as wanted; whether the host has it (with its address) now."""
        found = await self.read(want.netns if want else None)
        todo = link_changes(want, found)
        try:
            for step in todo:
                await self._step(step, want)
        except NetlinkError as e:
            raise KernelError(f"ingress link {INGRESS_LINK}: {todo}: {e}") from e
        if todo:
            log.info("routing mesh: ingress link %s: %s", INGRESS_LINK, ", ".join(todo))
        return want is not None

    async def _step(self, step: str, want: LinkSpec | None) -> None:
        host = self.kernel.host()
        if step == "delete":
            for idx in await host.link_lookup(ifname=INGRESS_LINK):
                with contextlib.suppress(NetlinkError):
                    await host.link("del", index=idx)
            return
        assert want is not None
        if step == "create":
            await self._create(want)
        elif step == "address":
            idx = await link_index(host, INGRESS_LINK)
            async for a in await host.addr("dump", index=idx, family=socket.AF_INET):
                with contextlib.suppress(NetlinkError):
                    await host.addr(
                        "del", index=idx, address=a.get("address"), prefixlen=a["prefixlen"]
                    )
            ip, _, plen = want.cidr.partition("/")
            await host.addr("add", index=idx, address=ip, prefixlen=int(plen))
        elif step == "set":
            idx = await link_index(host, INGRESS_LINK)
            await host.link("set", index=idx, mtu=want.mtu, state="up")

    async def _create(self, want: LinkSpec) -> None:
        host, ipr = self.kernel.host(), self.kernel.ns(want.netns)
        for idx in await ipr.link_lookup(ifname=HOST_PEER):
            with contextlib.suppress(NetlinkError):
                await ipr.link("del", index=idx)
        await host.link(
            "add",
            ifname=INGRESS_LINK,
            kind="veth",
            mtu=want.mtu,
            address=want.mac,
            peer={"ifname": HOST_PEER, "mtu": want.mtu},
        )
        fd = os.open(netns.path(want.netns, self.kernel.netns_dir), os.O_RDONLY | os.O_CLOEXEC)
        try:
            await host.link("set", index=await link_index(host, HOST_PEER), net_ns_fd=fd)
        finally:
            os.close(fd)
        br = await link_index(ipr, BRIDGE)
        peer = await link_index(ipr, HOST_PEER)
        await ipr.link("set", index=peer, master=br, ifalias=LINK_ALIAS, state="up")
        idx = await link_index(host, INGRESS_LINK)
        netns.sysctl(LINK_SYSCTLS)
        ip, _, plen = want.cidr.partition("/")
        await host.addr("add", index=idx, address=ip, prefixlen=int(plen))
        await host.link("set", index=idx, ifalias=LINK_ALIAS, state="up")
        _forwarding()

    # ---------------------------------------------------------------- DOCKER-USER

    async def sync_docker_user(self, wanted: bool) -> None:
        if self.docker_user is wanted:
            return
        await asyncio.to_thread(docker_user, wanted)
        self.docker_user = wanted

    # ---------------------------------------------------------------- local tasks

    async def gateway_subnet(self) -> ipaddress.IPv4Network | None:
        """The subnet of dockerd's gateway bridge on this host (None while it has none)."""
        host = self.kernel.host()
        idx = await host.link_lookup(ifname=GATEWAY_BRIDGE)
        if not idx:
            return None
        async for a in await host.addr("dump", index=idx[0], family=socket.AF_INET):
            return ipaddress.IPv4Interface(f"{a.get('address')}/{a['prefixlen']}").network
        return None

    @staticmethod
    async def sandbox_address(sandbox: str, subnet: ipaddress.IPv4Network) -> str | None:
        """The container's address in that subnet (its gateway-bridge address), read in its
        network namespace; None if it has none (yet) or the sandbox is gone."""
        try:
            sock = netns.socket_in(sandbox, socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_ROUTE)
        except OSError:
            return None
        ipr = AsyncIPRoute(use_socket=sock)
        try:
            async for a in await ipr.addr("dump", family=socket.AF_INET):
                ip = str(a.get("address") or "")
                if ip and ipaddress.IPv4Address(ip) in subnet:
                    return ip
            return None
        finally:
            with contextlib.suppress(Exception):
                ipr.close()
            with contextlib.suppress(Exception):
                sock.close()


async def _one(result: Any) -> Any:
    """The one message of a netlink "get" (a list, or an async iterator of one)."""
    if isinstance(result, list | tuple):
        return result[0]
    return [x async for x in result][0]


def _forwarding() -> None:
    """The mesh forwards: dockerd turns IPv4 forwarding on, and so does shoal if it is off."""
    path = "/proc/sys/net/ipv4/ip_forward"
    with contextlib.suppress(OSError):
        with open(path) as f:
            on = f.read().strip() == "1"
        if not on:
            log.warning("routing mesh: IPv4 forwarding was off: turned on")
            with open(path, "w") as f:
                f.write("1")


def _iptables(*args: str) -> subprocess.CompletedProcess[str] | None:
    ipt = shutil.which("iptables")
    if ipt is None:
        return None
    return subprocess.run([ipt, "-w", *args], capture_output=True, text=True, timeout=30)


def docker_user(wanted: bool) -> None:
    """The mesh's accept rule first in DOCKER-USER (wanted), or gone (every copy of it)."""
    check = _iptables("-C", USER_CHAIN, *DOCKER_USER_RULE)
    if check is None:
        if wanted:
            log.warning("routing mesh: no iptables: forwarded mesh traffic is not accepted")
        return
    present = check.returncode == 0
    if wanted and not present:
        _iptables("-N", USER_CHAIN)  # dockerd makes it too (and keeps what is in it)
        done = _iptables("-I", USER_CHAIN, "1", *DOCKER_USER_RULE)
        if done is not None and done.returncode != 0:
            raise KernelError(f"iptables -I {USER_CHAIN}: {done.stderr.strip()}")
        log.info("routing mesh: accept rule added to %s", USER_CHAIN)
    elif not wanted and present:
        for _ in range(10):
            gone = _iptables("-D", USER_CHAIN, *DOCKER_USER_RULE)
            if gone is None or gone.returncode != 0:
                break
        log.info("routing mesh: accept rule removed from %s", USER_CHAIN)
