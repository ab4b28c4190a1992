"""What the kernel of one node should hold for its swarm networks, and the changes that get it
there from what it holds now. Pure: ``kernel.py`` reads the present and carries the changes out.

Per network (``desired``): a namespace ``shoal-<id>`` with the bridge ``br0`` holding the
network's gateway address and the DNS address, and the VXLAN device ``vxlan0`` (the plan's VNI,
the node's underlay address as local, UDP 4789, no learning, proxy ARP, the plan's MTU) on the
bridge; for every endpoint on another node a static forwarding entry (its MAC → that node's
underlay address) and a permanent neighbour entry (its IP → MAC) on ``vxlan0``. Nothing floods:
there is no all-zeros forwarding entry, so unknown destinations and broadcasts stay on the node.

``changes`` leaves alone everything that already matches — in particular the veths of running
containers, which no change ever names — so a restarted shoald re-derives the same kernel
state without touching a running container's connectivity.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from shoal.network.names import DNS_ADDR, VXLAN_PORT, mac_for, netns_name, network_alias
from shoal.rpc.messages import NetworkState


@dataclass(frozen=True)
class VxlanSpec:
    vni: int
    local: str  # the node's underlay address
    port: int = VXLAN_PORT
    mtu: int = 1450


@dataclass(frozen=True)
class NetworkLayout:
    """One network as this node's kernel should hold it."""

    network_id: str
    netns: str
    alias: str
    addresses: frozenset[str]  # CIDRs on the bridge
    vxlan: VxlanSpec
    fdb: dict[str, str] = field(default_factory=dict)  # MAC → underlay address of its node
    neighbours: dict[str, str] = field(default_factory=dict)  # IP → MAC


@dataclass
class VxlanFound:
    vni: int
    local: str | None
    port: int
    learning: bool
    proxy: bool
    mtu: int
    on_bridge: bool
    up: bool


@dataclass
class NetworkFound:
    """One of shoal's namespaces as the kernel holds it."""

    netns: str
    bridge: bool = False
    bridge_up: bool = False
    bridge_mtu: int = 0
    addresses: set[str] = field(default_factory=set)
    vxlan: VxlanFound | None = None
    fdb: dict[str, str] = field(default_factory=dict)
    neighbours: dict[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------- changes


@dataclass(frozen=True)
class Change:
    netns: str


@dataclass(frozen=True)
class CreateNetns(Change):
    pass


@dataclass(frozen=True)
class DeleteNetns(Change):
    pass


@dataclass(frozen=True)
class CreateBridge(Change):
    alias: str
    mtu: int


@dataclass(frozen=True)
class SetBridge(Change):
    """Bring the bridge up with this MTU."""

    mtu: int


@dataclass(frozen=True)
class AddAddress(Change):
    cidr: str


@dataclass(frozen=True)
class DeleteAddress(Change):
    cidr: str


@dataclass(frozen=True)
class DeleteVxlan(Change):
    pass


@dataclass(frozen=True)
class CreateVxlan(Change):
    network_id: str
    alias: str
    spec: VxlanSpec


@dataclass(frozen=True)
class SetVxlan(Change):
    """Put the VXLAN device on the bridge, up, with this MTU."""

    mtu: int


@dataclass(frozen=True)
class AddFdb(Change):
    mac: str
    dst: str


@dataclass(frozen=True)
class DeleteFdb(Change):
    mac: str
    dst: str


@dataclass(frozen=True)
class SetNeighbour(Change):
    ip: str
    mac: str


@dataclass(frozen=True)
class DeleteNeighbour(Change):
    ip: str


# ---------------------------------------------------------------- desired


def desired(state: NetworkState, underlay: str) -> dict[str, NetworkLayout]:
    """The layout of every network of the state, by namespace name."""
    remote: dict[str, dict[str, str]] = {}  # network → IP → node
    local: dict[str, set[str]] = {}
    for ep in sorted(state.endpoints, key=lambda e: (e.network_id, e.ip, e.node_addr)):
        if ep.node_addr == underlay:
            local.setdefault(ep.network_id, set()).add(ep.ip)
        else:
            remote.setdefault(ep.network_id, {}).setdefault(ep.ip, ep.node_addr)
    layouts: dict[str, NetworkLayout] = {}
    for plan in state.networks:
        subnet = ipaddress.IPv4Network(plan.subnet)
        here = local.get(plan.id, set())
        peers = {ip: node for ip, node in remote.get(plan.id, {}).items() if ip not in here}
        ns = netns_name(plan.id)
        layouts[ns] = NetworkLayout(
            network_id=plan.id,
            netns=ns,
            alias=network_alias(plan.id, plan.name),
            addresses=frozenset({f"{plan.gateway}/{subnet.prefixlen}", f"{DNS_ADDR}/32"}),
            vxlan=VxlanSpec(vni=plan.vni, local=underlay, mtu=plan.mtu),
            fdb={mac_for(ip): node for ip, node in peers.items()},
            neighbours={ip: mac_for(ip) for ip in peers},
        )
    return layouts


def vxlan_matches(found: VxlanFound, spec: VxlanSpec) -> bool:
    """Whether the device found can stay (else it is made anew: its entries go with it)."""
    return (
        found.vni == spec.vni
        and found.local == spec.local
        and found.port == spec.port
        and not found.learning
        and found.proxy
    )


def changes(want: dict[str, NetworkLayout], found: dict[str, NetworkFound]) -> list[Change]:
    """What turns the found namespaces into the wanted ones: namespaces of networks no longer
    wanted go first (with everything in them), then each wanted network in name order."""
    out: list[Change] = [DeleteNetns(ns) for ns in sorted(found) if ns not in want]
    for ns in sorted(want):
        out += network_changes(want[ns], found.get(ns))
    return out


def network_changes(want: NetworkLayout, found: NetworkFound | None) -> list[Change]:
    ns = want.netns
    out: list[Change] = []
    if found is None:
        out.append(CreateNetns(ns))
        found = NetworkFound(ns)
    mtu = want.vxlan.mtu
    if not found.bridge:
        out.append(CreateBridge(ns, want.alias, mtu))
        found.addresses = set()
    elif not found.bridge_up or found.bridge_mtu != mtu:
        out.append(SetBridge(ns, mtu))
    out += [DeleteAddress(ns, a) for a in sorted(found.addresses - want.addresses)]
    out += [AddAddress(ns, a) for a in sorted(want.addresses - found.addresses)]
    vx = found.vxlan
    if vx is not None and not vxlan_matches(vx, want.vxlan):
        out.append(DeleteVxlan(ns))
        vx = None
    fdb, neighbours = (found.fdb, found.neighbours) if vx is not None else ({}, {})
    if vx is None:
        out.append(CreateVxlan(ns, want.network_id, want.alias, want.vxlan))
    elif not (vx.on_bridge and vx.up and vx.mtu == mtu):
        out.append(SetVxlan(ns, mtu))
    for mac, dst in sorted(fdb.items()):
        if want.fdb.get(mac) != dst:
            out.append(DeleteFdb(ns, mac, dst))
    for mac, dst in sorted(want.fdb.items()):
        if fdb.get(mac) != dst:
            out.append(AddFdb(ns, mac, dst))
    out += [DeleteNeighbour(ns, ip) for ip in sorted(neighbours) if ip not in want.neighbours]
    for ip, mac in sorted(want.neighbours.items()):
        if neighbours.get(ip) != mac:
            out.append(SetNeighbour(ns, ip, mac))
    return out
