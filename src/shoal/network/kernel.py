"""The node's kernel through netlink (pyroute2): read shoal's namespaces into ``layout``'s
``NetworkFound``, carry out ``layout``'s changes, plug and unplug endpoints' veths.

Thin on purpose: what to change is decided in ``layout``; here each change is one or two
netlink requests. One netlink socket per namespace, made inside it (``netns.socket_in``) and
driven from shoald's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
from typing import Any

from pyroute2 import AsyncIPRoute
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl import ndmsg

from shoal.network import netns
from shoal.network.layout import (
    AddAddress,
    AddFdb,
    Change,
    CreateBridge,
    CreateNetns,
    CreateVxlan,
    DeleteAddress,
    DeleteFdb,
    DeleteNeighbour,
    DeleteNetns,
    DeleteVxlan,
    NetworkFound,
    SetBridge,
    SetNeighbour,
    SetVxlan,
    VxlanFound,
)
from shoal.network.names import (
    BRIDGE,
    NETNS_DIR,
    VXLAN,
    endpoint_alias,
    is_host_leftover,
    is_netns,
    peer_name,
    temp_vxlan_name,
    veth_name,
)

log = logging.getLogger(__name__)

NETLINK_ROUTE = 0
IFF_UP = 1
PERMANENT = ndmsg.states["permanent"]
NTF_SELF = 2
# In each network's namespace: no IPv6 (no link-local addresses, no router solicitations on
# the segment), and bridged frames skip netfilter (nothing filters there; conntrack on the
# bridge would cost throughput).
NETNS_SYSCTLS = {
    "net/ipv6/conf/all/disable_ipv6": "1",
    "net/ipv6/conf/default/disable_ipv6": "1",
    "net/bridge/bridge-nf-call-iptables": "0",
    "net/bridge/bridge-nf-call-ip6tables": "0",
    "net/bridge/bridge-nf-call-arptables": "0",
}
VNI_BUSY_WAIT = 3.0  # a deleted namespace's VXLAN device goes asynchronously; its VNI with it


class KernelError(RuntimeError):
    pass


class Kernel:
    """Netlink in the host namespace and in shoal's network namespaces."""

    def __init__(self, netns_dir: str = NETNS_DIR) -> None:
        self.netns_dir = netns_dir
        self._host: AsyncIPRoute | None = None
        self._ns: dict[str, AsyncIPRoute] = {}

    # ---------------------------------------------------------------- sockets

    def host(self) -> AsyncIPRoute:
        if self._host is None:
            self._host = AsyncIPRoute()
        return self._host

    def ns(self, name: str) -> AsyncIPRoute:
        ipr = self._ns.get(name)
        if ipr is None:
            sock = netns.socket_in(
                netns.path(name, self.netns_dir),
                socket.AF_NETLINK,
                socket.SOCK_DGRAM,
                NETLINK_ROUTE,
            )
            ipr = self._ns[name] = AsyncIPRoute(use_socket=sock)
        return ipr

    def forget(self, name: str) -> None:
        """Close the namespace's netlink socket (it holds the namespace alive)."""
        ipr = self._ns.pop(name, None)
        if ipr is not None:
            with contextlib.suppress(Exception):
                ipr.close()
            with contextlib.suppress(Exception):
                ipr.use_socket.close()

    def close(self) -> None:
        for name in list(self._ns):
            self.forget(name)
        if self._host is not None:
            with contextlib.suppress(Exception):
                self._host.close()
            self._host = None

    # ---------------------------------------------------------------- reading

    def namespaces(self) -> list[str]:
        """shoal's namespaces (names that are only left-over files are not)."""
        return [
            n
            for n in netns.listed(self.netns_dir)
            if is_netns(n) and netns.exists(n, self.netns_dir)
        ]

    def leftovers(self) -> list[str]:
        """shoal's names in the namespace directory with no namespace mounted."""
        return [
            n
            for n in netns.listed(self.netns_dir)
            if is_netns(n) and not netns.exists(n, self.netns_dir)
        ]

    async def read(self, name: str) -> NetworkFound:
        ipr = self.ns(name)
        found = NetworkFound(name)
        links = [link async for link in await ipr.link("dump")]
        by_name = {link.get("ifname"): link for link in links}
        br = by_name.get(BRIDGE)
        if br is not None and _kind(br) == "bridge":
            found.bridge = True
            found.bridge_up = bool(br["flags"] & IFF_UP)
            found.bridge_mtu = int(br.get("mtu") or 0)
            async for a in await ipr.addr("dump", index=br["index"], family=socket.AF_INET):
                found.addresses.add(f"{a.get('address')}/{a['prefixlen']}")
        vx = by_name.get(VXLAN)
        if vx is not None and _kind(vx) == "vxlan":
            data = vx.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_DATA")
            found.vxlan = VxlanFound(
                vni=int(data.get_attr("IFLA_VXLAN_ID") or 0),
                local=data.get_attr("IFLA_VXLAN_LOCAL"),
                port=int(data.get_attr("IFLA_VXLAN_PORT") or 0),
                learning=bool(data.get_attr("IFLA_VXLAN_LEARNING")),
                proxy=bool(data.get_attr("IFLA_VXLAN_PROXY")),
                mtu=int(vx.get("mtu") or 0),
                on_bridge=br is not None and vx.get_attr("IFLA_MASTER") == br["index"],
                up=bool(vx["flags"] & IFF_UP),
            )
            async for f in await ipr.fdb("dump", ifindex=vx["index"]):
                dst = f.get_attr("NDA_DST")
                if dst and f["ifindex"] == vx["index"]:
                    found.fdb[f.get_attr("NDA_LLADDR")] = dst
            async for n in await ipr.neigh("dump", ifindex=vx["index"], family=socket.AF_INET):
                if n["state"] & PERMANENT and n["ifindex"] == vx["index"]:
                    found.neighbours[n.get_attr("NDA_DST")] = n.get_attr("NDA_LLADDR")
        return found

    async def read_all(self) -> dict[str, NetworkFound]:
        return {name: await self.read(name) for name in self.namespaces()}

    # ---------------------------------------------------------------- changing

    async def carry_out(self, changes: list[Change]) -> None:
        for change in changes:
            try:
                await self._one(change)
            except NetlinkError as e:
                raise KernelError(f"{change}: {e}") from e

    async def _one(self, c: Change) -> None:
        ns = c.netns
        if isinstance(c, DeleteNetns):
            self.forget(ns)
            netns.delete(ns, self.netns_dir)
        elif isinstance(c, CreateNetns):
            self.forget(ns)  # a socket into a namespace someone deleted by hand
            path = netns.create(ns, self.netns_dir)
            netns.sysctl_in(path, NETNS_SYSCTLS)
            ipr = self.ns(ns)
            await ipr.link("set", index=await link_index(ipr, "lo"), state="up")
        elif isinstance(c, CreateBridge):
            ipr = self.ns(ns)
            await ipr.link("add", ifname=BRIDGE, kind="bridge", mtu=c.mtu)
            idx = await link_index(ipr, BRIDGE)
            await ipr.link("set", index=idx, ifalias=c.alias, state="up")
        elif isinstance(c, SetBridge):
            ipr = self.ns(ns)
            await ipr.link("set", index=await link_index(ipr, BRIDGE), mtu=c.mtu, state="up")
        elif isinstance(c, AddAddress | DeleteAddress):
            ipr = self.ns(ns)
            addr, _, plen = c.cidr.partition("/")
            op = "add" if isinstance(c, AddAddress) else "del"
            await ipr.addr(
                op, index=await link_index(ipr, BRIDGE), address=addr, prefixlen=int(plen)
            )
        elif isinstance(c, DeleteVxlan):
            ipr = self.ns(ns)
            await ipr.link("del", index=await link_index(ipr, VXLAN))
        elif isinstance(c, CreateVxlan):
            await self._create_vxlan(c)
        elif isinstance(c, SetVxlan):
            ipr = self.ns(ns)
            br = await link_index(ipr, BRIDGE)
            await ipr.link(
                "set", index=await link_index(ipr, VXLAN), master=br, mtu=c.mtu, state="up"
            )
        elif isinstance(c, AddFdb):
            ipr = self.ns(ns)
            vx = await link_index(ipr, VXLAN)
            await ipr.fdb(
                "append", ifindex=vx, lladdr=c.mac, dst=c.dst, state=PERMANENT, flags=NTF_SELF
            )
        elif isinstance(c, DeleteFdb):
            ipr = self.ns(ns)
            vx = await link_index(ipr, VXLAN)
            with _gone_ok():
                await ipr.fdb("del", ifindex=vx, lladdr=c.mac, dst=c.dst, flags=NTF_SELF)
        elif isinstance(c, SetNeighbour):
            ipr = self.ns(ns)
            vx = await link_index(ipr, VXLAN)
            await ipr.neigh(
                "replace",
                dst=c.ip,
                lladdr=c.mac,
                ifindex=vx,
                state=PERMANENT,
                family=socket.AF_INET,
            )
        elif isinstance(c, DeleteNeighbour):
            ipr = self.ns(ns)
            vx = await link_index(ipr, VXLAN)
            with _gone_ok():
                await ipr.neigh("del", dst=c.ip, ifindex=vx, family=socket.AF_INET)
        else:  # pragma: no cover - every change is handled above
            raise KernelError(f"unknown change {c!r}")

    async def _create_vxlan(self, c: CreateVxlan) -> None:
        """Made in the host namespace, so its UDP socket is on the underlay, then moved (and
        renamed) into the network's namespace — as Docker's overlay driver does."""
        host = self.host()
        temp = temp_vxlan_name(c.network_id)
        await self._delete_host_link(temp)
        deadline = asyncio.get_running_loop().time() + VNI_BUSY_WAIT
        while True:
            try:
                await host.link(
                    "add",
                    ifname=temp,
                    kind="vxlan",
                    vxlan_id=c.spec.vni,
                    vxlan_local=c.spec.local,
                    vxlan_port=c.spec.port,
                    vxlan_learning=0,
                    vxlan_proxy=1,
                    vxlan_l2miss=0,
                    vxlan_l3miss=0,
                    vxlan_udp_csum=0,  # as Docker's overlay: the inner packet has its own
                    mtu=c.spec.mtu,
                )
                break
            except NetlinkError as e:
                if e.code != errno.EEXIST or asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.05)  # the VNI of a namespace being deleted
        idx = await link_index(host, temp)
        fd = os.open(netns.path(c.netns, self.netns_dir), os.O_RDONLY | os.O_CLOEXEC)
        try:
            await host.link("set", index=idx, net_ns_fd=fd, ifname=VXLAN)
        finally:
            os.close(fd)
        ipr = self.ns(c.netns)
        vx = await link_index(ipr, VXLAN)
        br = await link_index(ipr, BRIDGE)
        await ipr.link("set", index=vx, master=br, ifalias=c.alias, state="up")

    # ---------------------------------------------------------------- endpoints

    async def plug(self, ns: str, endpoint_id: str, mtu: int) -> str:
        """A veth pair for an endpoint: one end on the network's bridge (in its namespace),
        the other left in the host namespace for dockerd to move into the container.
        Returns the name of that other end. Made anew if a previous attempt left parts."""
        host, ipr = self.host(), self.ns(ns)
        mine, theirs = veth_name(endpoint_id), peer_name(endpoint_id)
        await self._delete_host_link(theirs)
        await self._delete_host_link(mine)
        for idx in await ipr.link_lookup(ifname=mine):
            with _gone_ok():
                await ipr.link("del", index=idx)
        await host.link(
            "add", ifname=mine, kind="veth", mtu=mtu, peer={"ifname": theirs, "mtu": mtu}
        )
        try:
            fd = os.open(netns.path(ns, self.netns_dir), os.O_RDONLY | os.O_CLOEXEC)
            try:
                await host.link("set", index=await link_index(host, mine), net_ns_fd=fd)
            finally:
                os.close(fd)
            br = await link_index(ipr, BRIDGE)
            await ipr.link(
                "set",
                index=await link_index(ipr, mine),
                master=br,
                ifalias=endpoint_alias(endpoint_id),
                state="up",
            )
        except BaseException:
            await self._delete_host_link(theirs)
            raise
        return theirs

    async def unplug(self, ns: str | None, endpoint_id: str) -> None:
        """Remove an endpoint's veth wherever its ends are (gone already is fine)."""
        await self._delete_host_link(peer_name(endpoint_id))
        await self._delete_host_link(veth_name(endpoint_id))
        if ns is not None and ns in self.namespaces():
            ipr = self.ns(ns)
            for idx in await ipr.link_lookup(ifname=veth_name(endpoint_id)):
                with _gone_ok():
                    await ipr.link("del", index=idx)

    async def plugged(self, ns: str) -> set[str]:
        """Names of the endpoint veths in a namespace (each one a container still there)."""
        ipr = self.ns(ns)
        return {
            str(link.get("ifname"))
            async for link in await ipr.link("dump")
            if str(link.get("ifname") or "").startswith(veth_name(""))
        }

    async def host_leftovers(self) -> list[str]:
        return [
            str(link.get("ifname"))
            async for link in await self.host().link("dump")
            if is_host_leftover(str(link.get("ifname") or ""))
        ]

    async def remove_host_leftovers(self) -> None:
        for name in await self.host_leftovers():
            await self._delete_host_link(name)

    # ---------------------------------------------------------------- helpers

    async def _delete_host_link(self, name: str) -> None:
        host = self.host()
        for idx in await host.link_lookup(ifname=name):
            with _gone_ok():
                await host.link("del", index=idx)


async def link_index(ipr: AsyncIPRoute, name: str) -> int:
    """The index of the device of that name (KernelError: none)."""
    found = await ipr.link_lookup(ifname=name)
    if not found:
        raise KernelError(f"no device {name}")
    return int(found[0])


def _kind(link: Any) -> str | None:
    info = link.get_attr("IFLA_LINKINFO")
    return info.get_attr("IFLA_INFO_KIND") if info is not None else None


@contextlib.contextmanager
def _gone_ok() -> Any:
    try:
        yield
    except NetlinkError as e:
        if e.code not in (errno.ENOENT, errno.ENODEV, errno.ESRCH, errno.EADDRNOTAVAIL):
            raise
