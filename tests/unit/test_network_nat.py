"""The VIP and routing-mesh rulesets and the transactions between them (pure)."""

from __future__ import annotations

from typing import Any

from shoal.network import nat
from shoal.rpc.messages import Backend, Balancer, IngressPort, NetworkPlan, NetworkState

APP = NetworkPlan(id="a" * 25, name="app", vni=4097, subnet="10.0.1.0/24", gateway="10.0.1.1")
INGRESS = NetworkPlan(
    id="i" * 25, name="ingress", vni=4096, subnet="10.0.0.0/24", gateway="10.0.0.1", ingress=True
)
HERE, THERE = "192.168.1.10", "192.168.1.11"


def state(web_backends: list[str], *, local: bool = False, more: bool = False) -> NetworkState:
    def backends(prefix: str, ips: list[str]) -> list[Backend]:
        return [
            Backend(task_id=f"t{ip}", ip=f"{prefix}.{ip}", node_addr=HERE if ip == "5" else THERE)
            for ip in ips
        ]

    balancers = [
        Balancer(service_id="web", network_id=APP.id, vip="10.0.1.2", names=["web"],
                 backends=backends("10.0.1", web_backends)),
        Balancer(service_id="web", network_id=INGRESS.id, vip="10.0.0.2",
                 ports=[IngressPort(published=8080, target=80, local=local),
                        IngressPort(protocol="udp", published=53, target=5353)],
                 backends=backends("10.0.0", web_backends)),
    ]  # fmt: skip
    if more:
        balancers.append(Balancer(service_id="db", network_id=APP.id, vip="10.0.1.3"))
    return NetworkState(networks=[APP, INGRESS], balancers=balancers, ingress_address="10.0.0.9/24")


def listing(r: nat.Ruleset) -> list[Any]:
    """The ruleset as ``nft -j list table ip shoal`` would show it."""
    out: list[Any] = [{"metainfo": {}}, {"table": {"family": "ip", "name": "shoal"}}]
    for m in r.maps.values():
        elem = [[nat._key_json(k), {"goto": {"target": v}}] for k, v in m.elements.items()]
        key = list(m.key) if len(m.key) > 1 else m.key[0]
        out.append({"map": {"name": m.name, "type": key, "map": "verdict", "elem": elem}})
    for c in r.chains.values():
        chain: dict[str, Any] = {"name": c.name}
        if c.hook:
            chain |= {"type": c.hook.type, "hook": c.hook.hook, "prio": c.hook.prio,
                      "policy": c.hook.policy}  # fmt: skip
        out.append({"chain": chain})
        out += [{"rule": {"chain": c.name, "comment": x.comment, "expr": []}} for x in c.rules]
    return out


def ops(commands: list[Any]) -> list[tuple[str, str, str]]:
    """(verb, kind, name) of each command."""
    out = []
    for cmd in commands:
        ((verb, obj),) = cmd.items()
        ((kind, body),) = obj.items()
        out.append((verb, kind, body.get("name") or body.get("chain", "")))
    return out


def test_a_sandbox_gets_the_vips_of_its_networks_only() -> None:
    r = nat.sandbox_ruleset(state(["5", "6"], more=True), {APP.id})
    assert r is not None
    assert r.maps["vips"].elements == {
        "10.0.1.2": nat.vip_chain("web", APP.id),
        "10.0.1.3": nat.vip_chain("db", APP.id),
    }
    (pick,) = r.chains[nat.vip_chain("web", APP.id)].rules
    assert '"mod":2' in pick.expr and "10.0.1.5" in pick.expr and "10.0.1.6" in pick.expr
    # a VIP without backends refuses at once (TCP reset, ICMP unreachable)
    assert [x.comment.split(" #")[0] for x in r.chains[nat.vip_chain("db", APP.id)].rules] == [
        "no backend: reset", "no backend: unreachable",
    ]  # fmt: skip
    assert nat.sandbox_ruleset(state(["5"]), {INGRESS.id}) is not None  # ingress VIP too
    assert nat.sandbox_ruleset(state(["5"]), set()) is None


def test_a_vip_outside_its_subnet_is_left_out() -> None:
    s = state(["5"])
    s.balancers[0].vip = "10.9.9.9"
    r = nat.sandbox_ruleset(s, {APP.id})
    assert r is None


def test_the_host_table_publishes_every_port_through_the_ingress_link() -> None:
    r = nat.host_ruleset(state(["5", "6"]), HERE, {}, link=True)
    assert r is not None
    assert r.maps["ports"].elements == {
        ("tcp", 8080): "port-tcp-8080",
        ("udp", 53): "port-udp-53",
    }
    assert {n for n, c in r.chains.items() if c.hook} == {
        "prerouting", "output", "postrouting", "input",
    }  # fmt: skip
    rules = r.chains["port-tcp-8080"].rules
    assert '"port":80' in rules[-1].expr and "10.0.0.6" in rules[-1].expr
    assert nat.host_ruleset(NetworkState(networks=[APP]), HERE, {}, link=True) is None
    # no link yet (no ingress address): the ports refuse rather than hang
    r = nat.host_ruleset(state(["5"]), HERE, {}, link=False)
    assert r is not None and "no backend" in r.chains["port-tcp-8080"].rules[0].comment


def test_a_local_port_goes_to_this_nodes_tasks_by_their_gateway_address() -> None:
    s = state(["5", "6"], local=True)  # .5 is here, .6 elsewhere
    assert nat.local_port_backends(s, HERE) == {"10.0.0.5"}
    r = nat.host_ruleset(s, HERE, {"10.0.0.5": "172.18.0.3"}, link=True)
    assert r is not None
    main = r.chains["port-tcp-8080"].rules
    assert "172.18.0.3" in main[-1].expr and "10.0.0.6" not in main[-1].expr
    # marked for DOCKER-USER's accept, not for masquerade: the client's address is kept
    assert (
        str(nat.MESH_MARK) in main[0].expr
        and str(nat.MESH_MARK | nat.MASQ_MARK) not in main[0].expr
    )
    lo = r.chains["port-tcp-8080-lo"].rules  # from the host's loopback: via the ingress link
    assert "10.0.0.5" in lo[-1].expr
    # no local task: refused
    r = nat.host_ruleset(s, THERE, {}, link=True)
    assert r is not None and "no backend" in r.chains["port-tcp-8080"].rules[0].comment


def test_what_matches_is_left_alone() -> None:
    want = nat.sandbox_ruleset(state(["5", "6"]), {APP.id})
    assert want is not None
    assert nat.transaction(want, nat.parse(listing(want))) == []
    host = nat.host_ruleset(state(["5", "6"]), HERE, {}, link=True)
    assert host is not None
    assert nat.transaction(host, nat.parse(listing(host))) == []
    assert nat.parse([{"metainfo": {}}]) is None


def test_one_backend_changing_rewrites_one_chain() -> None:
    before = nat.sandbox_ruleset(state(["5", "6"]), {APP.id})
    after = nat.sandbox_ruleset(state(["5"]), {APP.id})
    assert before is not None and after is not None
    chain = nat.vip_chain("web", APP.id)
    assert ops(nat.transaction(after, nat.parse(listing(before)))) == [
        ("flush", "chain", chain), ("add", "rule", chain),
    ]  # fmt: skip


def test_a_service_that_goes_takes_its_element_and_chain() -> None:
    before = nat.sandbox_ruleset(state(["5"], more=True), {APP.id})
    after = nat.sandbox_ruleset(state(["5"]), {APP.id})
    assert before is not None and after is not None
    chain = nat.vip_chain("db", APP.id)
    assert ops(nat.transaction(after, nat.parse(listing(before)))) == [
        ("delete", "element", "vips"), ("flush", "chain", chain), ("delete", "chain", chain),
    ]  # fmt: skip
    assert nat.vips_changed(after, before) == ([], ["10.0.1.3"])
    assert nat.vips_changed(before, None) == (["10.0.1.2", "10.0.1.3"], [])


def test_a_table_not_as_wanted_is_replaced_whole_and_none_deletes_it() -> None:
    want = nat.sandbox_ruleset(state(["5"]), {APP.id})
    assert want is not None
    odd = listing(want)
    for o in odd:
        if "chain" in o and o["chain"]["name"] == "output":
            o["chain"]["prio"] = 0  # someone changed the base chain
    cmds = nat.transaction(want, nat.parse(odd))
    assert ops(cmds)[0] == ("delete", "table", "shoal") and ops(cmds)[1] == (
        "add",
        "table",
        "shoal",
    )
    assert ops(nat.transaction(None, want)) == [("delete", "table", "shoal")]
    assert nat.transaction(None, None) == []
