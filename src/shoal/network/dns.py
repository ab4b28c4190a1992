"""Service discovery on the swarm's networks: which names a container sees, and the answer to
one DNS query. Pure (the servers are in ``dnsserver.py``).

Scoped like Docker's: a query is answered from the networks the *querying container* is on
(``visible``: found by its source address among this node's endpoints), so a service on a
network the container is not attached to does not resolve. On those networks a name is a
service (``web``), ``tasks.<service>``, an alias or a hostname — whatever the endpoints'
``names`` list — and ``<name>.<network name>`` restricts it to that network. Several
addresses are all answered, in a random order per answer; TTL 0, so a task that stops leaves
DNS with the state that says so.

A name that exists nowhere the container can see is NXDOMAIN when it looks like a swarm name
(one label, ``tasks.<one label>``, or a name of some other network); anything else goes to the
host's resolvers (``respond`` returns None: forward it). Answers carry the authoritative bit,
so dockerd's embedded resolver (which asks shoal as the container's DNS server) takes an
NXDOMAIN as final.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Iterable
from dataclasses import dataclass, field

from dnslib import QTYPE, RCODE, RR, A, DNSRecord

from shoal.rpc.messages import NetworkState

TTL = 0
UDP_PLAIN = 512  # the largest UDP answer without EDNS(0)
TCP_MAX = 65535


def normal(name: str) -> str:
    return name.lower().rstrip(".")


@dataclass
class Names:
    """Every network's names → addresses, and what else a query may be about."""

    by_network: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    network_names: dict[str, str] = field(default_factory=dict)  # network name → ID
    subnets: dict[str, ipaddress.IPv4Network] = field(default_factory=dict)
    everywhere: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, state: NetworkState) -> Names:
        names = cls()
        for plan in state.networks:
            names.by_network[plan.id] = {}
            names.network_names[normal(plan.name)] = plan.id
            names.subnets[plan.id] = ipaddress.IPv4Network(plan.subnet)
        for ep in state.endpoints:
            table = names.by_network.get(ep.network_id)
            if table is None:
                continue
            for n in ep.names:
                key = normal(n)
                if not key:
                    continue
                ips = table.setdefault(key, [])
                if ep.ip not in ips:
                    ips.append(ep.ip)
                names.everywhere.add(key)
        for b in state.balancers:  # in vip mode the service's name and aliases are its VIP's
            table = names.by_network.get(b.network_id)
            if table is None or not b.vip:
                continue
            for n in b.names:
                key = normal(n)
                if key:
                    table[key] = [b.vip]
                    names.everywhere.add(key)
        return names

    def lookup(self, networks: Iterable[str], name: str) -> list[str]:
        """Addresses of name on the given networks (``name.<network>``: on that one only)."""
        key = normal(name)
        nets = [n for n in networks if n in self.by_network]
        head, _, tail = key.rpartition(".")
        scoped = self.network_names.get(tail) if head else None
        if scoped in nets and head not in self.network_names:
            found = self.by_network[scoped].get(head, [])
            if found:
                return list(found)
        out: list[str] = []
        for n in sorted(nets):
            for ip in self.by_network[n].get(key, []):
                if ip not in out:
                    out.append(ip)
        return out

    def is_swarm_name(self, name: str) -> bool:
        """Whether an unknown name should end here (NXDOMAIN) rather than go upstream."""
        key = normal(name)
        if not key:
            return False
        if "." not in key or key in self.everywhere:
            return True
        first, _, rest = key.partition(".")
        if first == "tasks" and "." not in rest:
            return True
        head, _, tail = key.rpartition(".")
        return tail in self.network_names and (head in self.everywhere or "." not in head)

    def in_subnets(self, ip: str) -> bool:
        addr = ipaddress.IPv4Address(ip)
        return any(addr in net for net in self.subnets.values())


@dataclass(frozen=True)
class LocalEndpoint:
    """An endpoint on this node, as the engine plugged it: its network, address, container."""

    network_id: str
    ip: str
    sandbox: str


def visible(arrived_on: str, source: str, local: Iterable[LocalEndpoint]) -> set[str]:
    """The networks the container that sent a query is on: all networks of the container that
    holds the source address on the network the query came in on (just that network if the
    source is no container shoal knows)."""
    local = list(local)
    sandbox = next(
        (e.sandbox for e in local if e.network_id == arrived_on and e.ip == source and e.sandbox),
        None,
    )
    if sandbox is None:
        return {arrived_on}
    return {e.network_id for e in local if e.sandbox == sandbox} | {arrived_on}


def respond(
    packet: bytes,
    names: Names,
    networks: set[str],
    *,
    tcp: bool = False,
    rng: random.Random | None = None,
) -> bytes | None:
    """The answer to a query from a container that sees `networks`, or None to forward it."""
    try:
        query = DNSRecord.parse(packet)
    except Exception:  # dnslib raises more than DNSError on bad input
        return _formerr(packet)
    if not query.questions or query.header.opcode != 0:
        reply = query.reply()
        reply.header.rcode = RCODE.NOTIMP if query.questions else RCODE.FORMERR
        return bytes(reply.pack())
    q = query.questions[0]
    qname = str(q.qname)
    if q.qtype == QTYPE.PTR:
        ip = _ptr_address(qname)
        if ip is None or not names.in_subnets(ip):
            return None
        return _rcode(query, RCODE.NXDOMAIN)
    ips = names.lookup(networks, qname)
    if not ips:
        return _rcode(query, RCODE.NXDOMAIN) if names.is_swarm_name(qname) else None
    reply = query.reply(ra=1, aa=1)
    if q.qtype in (QTYPE.A, QTYPE.ANY):
        shuffled = list(ips)
        (rng or random).shuffle(shuffled)
        for ip in shuffled:
            reply.add_answer(RR(q.qname, QTYPE.A, rdata=A(ip), ttl=TTL))
    # AAAA and the rest: the name exists, with no such records (NOERROR, no answer).
    return _fit(reply, _limit(query, tcp))


def _limit(query: DNSRecord, tcp: bool) -> int:
    if tcp:
        return TCP_MAX
    for rr in query.ar:
        if rr.rtype == QTYPE.OPT:
            return max(UDP_PLAIN, int(rr.rclass))
    return UDP_PLAIN


def _fit(reply: DNSRecord, limit: int) -> bytes:
    data = bytes(reply.pack())
    if len(data) <= limit:
        return data
    reply.header.tc = 1
    while reply.rr and len(data) > limit:
        reply.rr.pop()
        reply.set_header_qa()
        data = bytes(reply.pack())
    return data


def failure(packet: bytes) -> bytes | None:
    """SERVFAIL for a query no upstream resolver answered."""
    try:
        return _rcode(DNSRecord.parse(packet), RCODE.SERVFAIL, aa=0)
    except Exception:
        return _formerr(packet)


def _rcode(query: DNSRecord, rcode: int, aa: int = 1) -> bytes:
    reply = query.reply(ra=1, aa=aa)
    reply.header.rcode = rcode
    return bytes(reply.pack())


def _formerr(packet: bytes) -> bytes | None:
    if len(packet) < 12:
        return None
    # id, QR + the opcode and RD bits asked, FORMERR, no sections
    flags = 0x8000 | (packet[2] << 8 & 0x7900)
    return packet[:2] + (flags | int(RCODE.FORMERR)).to_bytes(2, "big") + bytes(8)


def _ptr_address(qname: str) -> str | None:
    labels = normal(qname).split(".")
    if labels[-2:] != ["in-addr", "arpa"] or len(labels) != 6:
        return None
    try:
        return str(ipaddress.IPv4Address(".".join(reversed(labels[:4]))))
    except ValueError:
        return None
