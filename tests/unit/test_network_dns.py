"""Service discovery: what a container sees, and the answer to each kind of query."""

from __future__ import annotations

import random

from dnslib import EDNS0, QTYPE, RCODE, DNSRecord

from shoal.network.dns import LocalEndpoint, Names, failure, respond, visible
from shoal.network.dnsserver import nameservers
from shoal.rpc.messages import EndpointRecord, NetworkPlan, NetworkState

FRONT, BACK = "front" + "a" * 20, "back" + "b" * 21


def state() -> NetworkState:
    return NetworkState(
        networks=[
            NetworkPlan(id=FRONT, name="front", vni=1, subnet="10.1.0.0/24", gateway="10.1.0.1"),
            NetworkPlan(id=BACK, name="back", vni=2, subnet="10.2.0.0/24", gateway="10.2.0.1"),
        ],
        endpoints=[
            EndpointRecord(
                network_id=FRONT, ip="10.1.0.2", node_addr="n1", names=["web", "tasks.web"]
            ),
            EndpointRecord(
                network_id=FRONT, ip="10.1.0.3", node_addr="n2", names=["web", "tasks.web", "www"]
            ),
            EndpointRecord(network_id=FRONT, ip="10.1.0.9", node_addr="n1", names=["client"]),
            EndpointRecord(
                network_id=BACK, ip="10.2.0.2", node_addr="n2", names=["db", "tasks.db", "Web"]
            ),
            EndpointRecord(network_id=BACK, ip="10.2.0.9", node_addr="n1", names=["client"]),
        ],
    )


def ask(
    name: str, qtype: str = "A", networks: frozenset[str] = frozenset({FRONT}), **kw: object
) -> DNSRecord | None:
    packet = bytes(DNSRecord.question(name, qtype).pack())
    out = respond(packet, Names.of(state()), set(networks), **kw)  # type: ignore[arg-type]
    return DNSRecord.parse(out) if out is not None else None


def addrs(reply: DNSRecord | None) -> list[str]:
    assert reply is not None
    return [str(rr.rdata) for rr in reply.rr if rr.rtype == QTYPE.A]


def test_a_service_answers_all_its_addresses_authoritatively_with_ttl_0() -> None:
    reply = ask("web")
    assert reply is not None
    assert sorted(addrs(reply)) == ["10.1.0.2", "10.1.0.3"]
    assert reply.header.aa == 1 and reply.header.rcode == RCODE.NOERROR
    assert {rr.ttl for rr in reply.rr} == {0}
    assert sorted(addrs(ask("tasks.web."))) == ["10.1.0.2", "10.1.0.3"]
    assert addrs(ask("WWW")) == ["10.1.0.3"]


def test_the_order_of_addresses_changes_between_answers() -> None:
    rng = random.Random(7)
    orders = {tuple(addrs(ask("web", rng=rng))) for _ in range(20)}
    assert orders == {("10.1.0.2", "10.1.0.3"), ("10.1.0.3", "10.1.0.2")}


def test_names_are_scoped_to_the_networks_the_container_is_on() -> None:
    none = ask("db")
    assert none is not None and none.header.rcode == RCODE.NXDOMAIN and none.header.aa == 1
    assert addrs(ask("db", networks=frozenset({FRONT, BACK}))) == ["10.2.0.2"]
    # one name on two networks: both answers
    assert sorted(addrs(ask("web", networks=frozenset({FRONT, BACK})))) == [
        "10.1.0.2",
        "10.1.0.3",
        "10.2.0.2",
    ]
    # <name>.<network>: that network only
    assert addrs(ask("web.back", networks=frozenset({FRONT, BACK}))) == ["10.2.0.2"]
    hidden = ask("web.back", networks=frozenset({FRONT}))
    assert hidden is not None and hidden.header.rcode == RCODE.NXDOMAIN


def test_swarm_looking_names_end_here_others_go_upstream() -> None:
    for name in ("nothere", "tasks.nothere", "db", "nothere.front"):
        reply = ask(name)
        assert reply is not None and reply.header.rcode == RCODE.NXDOMAIN, name
    assert ask("example.com") is None
    assert ask("tasks.example.com") is None


def test_other_record_types_of_a_known_name_are_empty_answers() -> None:
    reply = ask("web", "AAAA")
    assert reply is not None and reply.header.rcode == RCODE.NOERROR and reply.rr == []
    assert ask("example.com", "AAAA") is None


def test_reverse_lookups_in_swarm_subnets_end_here() -> None:
    reply = ask("2.0.1.10.in-addr.arpa", "PTR")
    assert reply is not None and reply.header.rcode == RCODE.NXDOMAIN
    assert ask("1.1.168.192.in-addr.arpa", "PTR") is None


def test_a_large_answer_over_udp_is_truncated_unless_edns_allows_it() -> None:
    many = state()
    for i in range(10, 250):
        many.endpoints.append(
            EndpointRecord(network_id=FRONT, ip=f"10.1.0.{i}", node_addr="n2", names=["big"])
        )
    names = Names.of(many)
    q = DNSRecord.question("big")
    small = DNSRecord.parse(respond(bytes(q.pack()), names, {FRONT}))  # type: ignore[arg-type]
    assert small.header.tc == 1 and len(small.pack()) <= 512
    tcp = DNSRecord.parse(respond(bytes(q.pack()), names, {FRONT}, tcp=True))  # type: ignore[arg-type]
    assert tcp.header.tc == 0 and len(tcp.rr) == 240
    q.add_ar(EDNS0(udp_len=4096))
    edns = DNSRecord.parse(respond(bytes(q.pack()), names, {FRONT}))  # type: ignore[arg-type]
    assert edns.header.tc == 0 and len(edns.rr) == 240


def test_garbage_gets_formerr_or_nothing() -> None:
    assert respond(b"\x00\x01", Names(), {FRONT}) is None
    reply = respond(b"\x12\x34\x01\x00" + b"\x00\x05" + bytes(6) + b"\xff", Names(), {FRONT})
    assert reply is not None and reply[:2] == b"\x12\x34" and reply[3] & 0x0F == RCODE.FORMERR


def test_failure_is_servfail_for_the_same_question() -> None:
    q = DNSRecord.question("example.com")
    out = failure(bytes(q.pack()))
    assert out is not None
    reply = DNSRecord.parse(out)
    assert reply.header.id == q.header.id and reply.header.rcode == RCODE.SERVFAIL
    assert str(reply.q.qname) == "example.com."


def test_the_querying_container_sees_all_its_networks() -> None:
    local = [
        LocalEndpoint(FRONT, "10.1.0.9", "/var/run/docker/netns/abc"),
        LocalEndpoint(BACK, "10.2.0.9", "/var/run/docker/netns/abc"),
        LocalEndpoint(FRONT, "10.1.0.2", "/var/run/docker/netns/def"),
    ]
    assert visible(FRONT, "10.1.0.9", local) == {FRONT, BACK}
    assert visible(FRONT, "10.1.0.2", local) == {FRONT}
    assert visible(FRONT, "10.1.0.77", local) == {FRONT}  # unknown source: where it came in
    # the address exists on another network only: not this container
    assert visible(FRONT, "10.2.0.9", local) == {FRONT}


def test_resolv_conf_nameservers() -> None:
    text = (
        "# comment\nsearch lan\nnameserver 192.168.1.1\nnameserver 127.0.0.11\n"
        "nameserver fe80::1%eth0 # router\nnameserver 169.254.254.53\nnameserver 192.168.1.1\n"
        "options ndots:0\n"
    )
    assert nameservers(text) == ["192.168.1.1", "fe80::1"]
