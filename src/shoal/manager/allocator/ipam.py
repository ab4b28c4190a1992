"""Cluster-wide address management, pure: the swarm's address pools handed out as network
subnets, each network's addresses handed out to tasks and attached containers, and the VXLAN
IDs of networks. Rebuilt from the store when a leader starts; then kept by the allocator."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

IPNet = ipaddress.IPv4Network
FIRST_VNI = 4096  # Docker's overlay IDs start here (the ingress network, made first, has it)
DEFAULT_POOL = "10.0.0.0/8"
DEFAULT_SUBNET_SIZE = 24


class PoolExhausted(Exception):
    """No address, subnet or VXLAN ID left."""


class Subnets:
    """The swarm's default address pools, cut into subnets of `size` bits."""

    def __init__(self, pools: Iterable[str] | None, size: int | None) -> None:
        self.pools = [ipaddress.IPv4Network(p) for p in (pools or [DEFAULT_POOL])]
        self.size = size or DEFAULT_SUBNET_SIZE
        self.used: list[IPNet] = []

    def reserve(self, subnet: str) -> None:
        self.used.append(ipaddress.IPv4Network(subnet, strict=False))

    def release(self, subnet: str) -> None:
        net = ipaddress.IPv4Network(subnet, strict=False)
        if net in self.used:
            self.used.remove(net)

    def overlaps(self, subnet: str) -> IPNet | None:
        net = ipaddress.IPv4Network(subnet, strict=False)
        return next((u for u in self.used if u.overlaps(net)), None)

    def next(self) -> str:
        """The first subnet of the pools that overlaps nothing in use."""
        for pool in self.pools:
            for candidate in pool.subnets(new_prefix=max(self.size, pool.prefixlen)):
                if not any(candidate.overlaps(u) for u in self.used):
                    self.used.append(candidate)
                    return str(candidate)
        raise PoolExhausted("could not find an available, non-overlapping IPv4 address pool")


class Addresses:
    """One network's addresses: the network and broadcast addresses and the gateway are never
    handed out; with a range, only addresses inside it are."""

    def __init__(self, subnet: str, gateway: str, ip_range: str | None = None) -> None:
        self.net = ipaddress.IPv4Network(subnet, strict=False)
        self.range = ipaddress.IPv4Network(ip_range, strict=False) if ip_range else self.net
        self.gateway = ipaddress.IPv4Address(gateway)
        self.used: set[ipaddress.IPv4Address] = {self.gateway}
        self._next = int(self.range.network_address)

    def reserve(self, ip: str) -> None:
        self.used.add(ipaddress.IPv4Address(ip))

    def release(self, ip: str) -> None:
        addr = ipaddress.IPv4Address(ip)
        if addr != self.gateway:
            self.used.discard(addr)

    def allocate(self) -> str:
        """The next free address after the last one handed out (wrapping), so that an address
        just released is not reused at once."""
        first = int(self.range.network_address)
        last = int(self.range.broadcast_address)
        size = last - first + 1
        for step in range(size):
            n = first + (self._next - first + 1 + step) % size
            addr = ipaddress.IPv4Address(n)
            if addr in self.used or addr in (self.net.network_address, self.net.broadcast_address):
                continue
            self.used.add(addr)
            self._next = n
            return str(addr)
        raise PoolExhausted(f"no available IPv4 addresses on network {self.net}")

    @property
    def prefixlen(self) -> int:
        return self.net.prefixlen


def default_gateway(subnet: str) -> str:
    """The subnet's first host address, Docker's default gateway."""
    return str(next(ipaddress.IPv4Network(subnet, strict=False).hosts()))


class VNIs:
    def __init__(self) -> None:
        self.used: set[int] = set()

    def reserve(self, vni: int) -> None:
        self.used.add(vni)

    def release(self, vni: int) -> None:
        self.used.discard(vni)

    def next(self) -> int:
        vni = FIRST_VNI
        while vni in self.used:
            vni += 1
        if vni >= 1 << 24:
            raise PoolExhausted("no VXLAN ID left")
        self.used.add(vni)
        return vni
