"""A container's first packets to a VIP, before its ``table ip shoal`` was there.

dockerd joins a container to its networks before runc has made its namespace, and starts
the process right after mounting it: a connection the process opens in those first
milliseconds left un-NATed — a conntrack entry without NAT, and its SYN queued on a
neighbour lookup of the VIP that nobody answers (the kernel does not retransmit a packet
still queued, so the connection would fail after 3 s with "No route to host"). When a VIP
comes into a sandbox's table, then, in the sandbox:

1. (in a table just made) the conntrack entries towards it that were not NATed go, so the
   next packet of those flows is NATed anew (a TCP SYN is retransmitted after 1 s: the
   connection succeeds);
2. the VIP gets a permanent neighbour entry (``mac_for(vip)``, a MAC nobody has), which
   sends the queued packet on its way to nowhere and spares every later lookup.

When a VIP leaves the table its neighbour entry goes (the address may be a task's later).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket

from pyroute2 import Conntrack, IPRoute
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.nfnetlink.nfctsocket import NFCTAttrTuple

from shoal.network.names import mac_for

log = logging.getLogger(__name__)

NUD_PERMANENT = 0x80


def settle(added: list[str], removed: list[str], *, flows: bool) -> None:
    """Run inside the sandbox's namespace (``netns.run_in``). ``flows``: look for un-NATed
    flows too — only when the sandbox's table is new (its container just started): reading
    a namespace's conntrack table costs about 1 ms per entry, and a container running for a
    while holds thousands. (A VIP new to a running container is in its table before DNS
    names it.)"""
    if added and flows:
        _forget_unnated(set(added))
    with IPRoute() as ipr:
        links = _links_by_subnet(ipr)
        for vip in added:
            index = _link_for(links, vip)
            if index is not None:
                ipr.neigh(
                    "replace", dst=vip, lladdr=mac_for(vip), ifindex=index, state=NUD_PERMANENT
                )
        for vip in removed:
            index = _link_for(links, vip)
            if index is not None:
                with contextlib.suppress(NetlinkError):
                    ipr.neigh("del", dst=vip, ifindex=index)


def _links_by_subnet(ipr: IPRoute) -> list[tuple[ipaddress.IPv4Network, int]]:
    out = []
    for a in ipr.addr("dump", family=socket.AF_INET):
        net = ipaddress.IPv4Interface(f"{a.get('address')}/{a['prefixlen']}").network
        out.append((net, int(a["index"])))
    return out


def _link_for(links: list[tuple[ipaddress.IPv4Network, int]], vip: str) -> int | None:
    ip = ipaddress.IPv4Address(vip)
    return next((index for net, index in links if ip in net and net.prefixlen < 32), None)


def _forget_unnated(vips: set[str]) -> None:
    ct = Conntrack()
    try:
        for entry in list(ct.dump()):
            orig, reply = entry.get_attr("CTA_TUPLE_ORIG"), entry.get_attr("CTA_TUPLE_REPLY")
            oip, proto = orig.get_attr("CTA_TUPLE_IP"), orig.get_attr("CTA_TUPLE_PROTO")
            dst = oip.get_attr("CTA_IP_V4_DST")
            if dst not in vips or reply.get_attr("CTA_TUPLE_IP").get_attr("CTA_IP_V4_SRC") != dst:
                continue  # not towards a VIP, or NATed
            tuple_orig = NFCTAttrTuple(
                saddr=oip.get_attr("CTA_IP_V4_SRC"), daddr=dst,
                proto=proto.get_attr("CTA_PROTO_NUM"),
                sport=proto.get_attr("CTA_PROTO_SRC_PORT"),
                dport=proto.get_attr("CTA_PROTO_DST_PORT"),
            )  # fmt: skip
            with contextlib.suppress(NetlinkError):
                ct.entry("del", tuple_orig=tuple_orig)
                log.info("a flow to VIP %s began before its NAT: forgotten, to be NATed", dst)
    finally:
        ct.close()
