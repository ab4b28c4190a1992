"""Service VIPs and the routing mesh as nftables rulesets, and the transaction that turns what
a namespace holds into what it should hold. Pure: ``nft.py`` reads and writes the kernel.

Two kinds of ``table ip shoal``:

* **In every container sandbox joined to a shoal network on this node** (``sandbox``): the
  VIPs of the services on the sandbox's networks. The NAT happens in the client's own
  namespace, as Docker's IPVS does, so a backend sees the client's own address::

      map vips { type ipv4_addr : verdict }              VIP → goto vip-<service>-<network>
      chain output { type nat hook output priority -100; ip daddr vmap @vips }
      chain vip-<service>-<network12> { dnat to numgen random mod N map { 0 : ip, … } }

  any protocol and port to the VIP goes to the same port of one backend picked at random;
  conntrack keeps the flow there. A VIP without backends rejects (TCP reset, ICMP port
  unreachable) rather than leaving the client to time out.
* **In the host namespace of every node that has the ingress network** (``host``): the
  published ports, on every local address, from outside and from the host itself::

      map ports { type inet_proto . inet_service : verdict }     tcp . 80 → goto port-tcp-80
      chain prerouting / output { type nat hook …; fib daddr type local
                                  meta l4proto . th dport vmap @ports }
      chain port-tcp-80 { ct mark set ct mark | MESH | MASQ
                          meta l4proto tcp dnat to numgen random mod N map { … } : target }
      chain postrouting { type nat hook postrouting priority 100;
                          ct mark & MASQ == MASQ oifname "shoal-ingress" masquerade }
      chain input { type filter hook input priority 0;
                    iifname "shoal-ingress" ip daddr 127.0.0.0/8 ct status & dnat == 0 drop }

  Backends are the tasks' addresses on the ingress network, reached through the host's veth
  ``shoal-ingress`` into the ingress network's namespace; masquerade makes the replies come
  back through this node. A ``local`` port goes only to tasks on this node, to their
  gateway-bridge address (no masquerade: the task sees the client's address, and its
  replies take its default route, the same bridge, back); from the host's loopback it goes
  to their ingress address, masqueraded (``port-<proto>-<port>-lo``). The ct mark ``MESH``
  is what the one accept rule in dockerd's ``DOCKER-USER`` chain matches (``ingress.py``).

Identity of what is there: every rule carries a comment ending in a digest of its
expression, so reading the kernel back is comparing comments; a chain whose comments differ
from the wanted ones is flushed and filled again, a map's elements are added and deleted one
by one, all in one transaction per namespace (atomic: a packet sees the old ruleset or the
new one). A table whose maps or base chains are not as wanted is replaced whole, in the same
transaction. Nothing that matches is touched, so a restarted shoald changes nothing.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shoal.rpc.messages import Backend, Balancer, IngressPort, NetworkPlan, NetworkState

FAMILY = "ip"
TABLE = "shoal"
INGRESS_LINK = "shoal-ingress"  # the host's end of its veth into the ingress network
MESH_MARK = 0x10000000  # ct mark: a connection the mesh NATed (DOCKER-USER accepts it)
MASQ_MARK = 0x20000000  # ct mark: masquerade it out of the ingress link
LOOPBACK = "127.0.0.0/8"
NAT_PRIORITY = -100  # dstnat
SRCNAT_PRIORITY = 100
FILTER_PRIORITY = 0

Json = Any
Key = str | tuple[str, int]  # a map's key: an address, or (protocol, port)


@dataclass(frozen=True)
class Hook:
    """What makes a chain a base chain."""

    type: str  # nat | filter
    hook: str  # prerouting | output | postrouting | input
    prio: int
    policy: str = "accept"


@dataclass(frozen=True)
class Rule:
    comment: str  # "<what> #<digest of expr>": how a rule read back is recognised
    expr: str = ""  # canonical JSON of the expression list ("" when read back)


def rule(what: str, expr: list[Json]) -> Rule:
    text = json.dumps(expr, sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha1(text.encode()).hexdigest()[:12]
    return Rule(f"{what} #{digest}", text)


@dataclass(frozen=True)
class Chain:
    name: str
    rules: tuple[Rule, ...] = ()
    hook: Hook | None = None

    def comments(self) -> tuple[str, ...]:
        return tuple(r.comment for r in self.rules)


@dataclass(frozen=True)
class Map:
    name: str
    key: tuple[str, ...]  # nftables types: ("ipv4_addr",) or ("inet_proto", "inet_service")
    elements: Mapping[Key, str] = field(default_factory=dict)  # key → chain (goto)


@dataclass
class Ruleset:
    """One ``table ip shoal`` (wanted or read back)."""

    chains: dict[str, Chain] = field(default_factory=dict)
    maps: dict[str, Map] = field(default_factory=dict)

    def add(self, chain: Chain) -> None:
        self.chains[chain.name] = chain


# ---------------------------------------------------------------- expressions


def _match(left: Json, right: Json, op: str = "==") -> Json:
    return {"match": {"op": op, "left": left, "right": right}}


def _payload(protocol: str, name: str) -> Json:
    return {"payload": {"protocol": protocol, "field": name}}


def _meta(key: str) -> Json:
    return {"meta": {"key": key}}


def _ct(key: str) -> Json:
    return {"ct": {"key": key}}


def _prefix(cidr: str) -> Json:
    net = ipaddress.IPv4Network(cidr)
    return {"prefix": {"addr": str(net.network_address), "len": net.prefixlen}}


def _set_mark(bits: int) -> Json:
    return {"mangle": {"key": _ct("mark"), "value": {"|": [_ct("mark"), bits]}}}


def _has_mark(bits: int) -> Json:
    return _match({"&": [_ct("mark"), bits]}, bits)


def _pick(addresses: list[str]) -> Json:
    """numgen random mod N map { 0 : a0, 1 : a1, … }: one of the addresses per connection."""
    return {
        "map": {
            "key": {"numgen": {"mode": "random", "mod": len(addresses), "offset": 0}},
            "data": {"set": [[i, a] for i, a in enumerate(addresses)]},
        }
    }


def _dnat(addresses: list[str], port: int | None = None) -> Json:
    nat: Json = {"addr": _pick(addresses)}
    if port is not None:
        nat["port"] = port
    return {"dnat": nat}


def _reject(protocol: str | None) -> list[Rule]:
    """Refuse at once: a TCP reset (for TCP), else ICMP port unreachable."""
    tcp = rule(
        "no backend: reset", [_match(_meta("l4proto"), "tcp"), {"reject": {"type": "tcp reset"}}]
    )
    icmp = rule(
        "no backend: unreachable", [{"reject": {"type": "icmp", "expr": "port-unreachable"}}]
    )
    if protocol == "tcp":
        return [tcp]
    if protocol is not None:
        return [icmp]
    return [tcp, icmp]


def _vmap(key: Json, name: str) -> Json:
    return {"vmap": {"key": key, "data": f"@{name}"}}


# ---------------------------------------------------------------- sandboxes (VIPs)


def vip_chain(service_id: str, network_id: str) -> str:
    return f"vip-{service_id}-{network_id[:12]}"


def _backend_ips(backends: list[Backend]) -> list[str]:
    return sorted({b.ip for b in backends}, key=ipaddress.IPv4Address)


def sandbox_ruleset(state: NetworkState, networks: set[str]) -> Ruleset | None:
    """The VIPs a container on these networks reaches; None when there are none (no table)."""
    plans = {p.id: p for p in state.networks if p.id in networks}
    vips: dict[Key, str] = {}
    out = Ruleset()
    for b in sorted(state.balancers, key=lambda b: (b.network_id, b.service_id)):
        plan = plans.get(b.network_id)
        if plan is None or not b.vip or not _vip_in(plan, b.vip) or b.vip in vips:
            continue
        name = vip_chain(b.service_id, b.network_id)
        vips[b.vip] = name
        out.add(Chain(name, tuple(_vip_rules(b))))
    if not vips:
        return None
    out.maps["vips"] = Map("vips", ("ipv4_addr",), vips)
    dispatch = rule("service VIPs", [_vmap(_payload("ip", "daddr"), "vips")])
    out.add(Chain("output", (dispatch,), Hook("nat", "output", NAT_PRIORITY)))
    return out


def _vip_in(plan: NetworkPlan, vip: str) -> bool:
    """A VIP outside its network's subnet would take the container's default route (and
    source address): it is left out."""
    try:
        return ipaddress.IPv4Address(vip) in ipaddress.IPv4Network(plan.subnet)
    except ValueError:
        return False


def _vip_rules(b: Balancer) -> list[Rule]:
    ips = _backend_ips(b.backends)
    if not ips:
        return _reject(None)
    what = f"service {b.service_id} VIP {b.vip}: {len(ips)} backend(s)"
    return [rule(what, [_dnat(ips)])]


# ---------------------------------------------------------------- the host (routing mesh)


def ingress_plan(state: NetworkState) -> NetworkPlan | None:
    return next((p for p in state.networks if p.ingress), None)


def port_chain(protocol: str, published: int) -> str:
    return f"port-{protocol}-{published}"


def host_ruleset(
    state: NetworkState,
    underlay: str,
    gateways: Mapping[str, str],
    *,
    link: bool,
) -> Ruleset | None:
    """The host's table for the ingress network's published ports; None without an ingress
    network. ``gateways``: a local task's ingress address → its gateway-bridge address
    (``local`` ports go there); ``link``: the host has its ingress link (its address)."""
    plan = ingress_plan(state)
    if plan is None:
        return None
    out = Ruleset()
    ports: dict[Key, str] = {}
    for b in sorted(state.balancers, key=lambda b: b.service_id):
        if b.network_id != plan.id:
            continue
        for p in sorted(b.ports, key=lambda p: (p.protocol, p.published)):
            key = (p.protocol, p.published)
            if key in ports:
                continue  # published twice: the first service keeps it
            name = port_chain(*key)
            ports[key] = name
            for chain in _port_chains(name, b, p, underlay, gateways, link):
                out.add(chain)
    dispatch = rule(
        "published ports",
        [
            _match({"fib": {"result": "type", "flags": ["daddr"]}}, "local"),
            _vmap({"concat": [_meta("l4proto"), _payload("th", "dport")]}, "ports"),
        ],
    )
    out.maps["ports"] = Map("ports", ("inet_proto", "inet_service"), ports)
    out.add(Chain("prerouting", (dispatch,), Hook("nat", "prerouting", NAT_PRIORITY)))
    out.add(Chain("output", (dispatch,), Hook("nat", "output", NAT_PRIORITY)))
    masq = rule(
        "masquerade into the ingress network",
        [
            _has_mark(MASQ_MARK),
            _match(_meta("oifname"), INGRESS_LINK),
            {"masquerade": None},
        ],
    )
    out.add(Chain("postrouting", (masq,), Hook("nat", "postrouting", SRCNAT_PRIORITY)))
    # route_localnet on the ingress link lets loopback connections out (and their replies
    # in): nothing else may come in there for a loopback address (CVE-2020-8558's guard)
    guard = rule(
        "no loopback from the ingress network",
        [
            _match(_meta("iifname"), INGRESS_LINK),
            _match(_payload("ip", "daddr"), _prefix(LOOPBACK)),
            _match({"&": [_ct("status"), "dnat"]}, 0),
            {"drop": None},
        ],
    )
    out.add(Chain("input", (guard,), Hook("filter", "input", FILTER_PRIORITY)))
    return out


def _port_chains(
    name: str,
    b: Balancer,
    p: IngressPort,
    underlay: str,
    gateways: Mapping[str, str],
    link: bool,
) -> list[Chain]:
    proto = _match(_meta("l4proto"), p.protocol)
    where = f"service {b.service_id} {p.protocol}/{p.published} → {p.target}"
    if not p.local:
        ips = _backend_ips(b.backends) if link else []
        if not ips:
            return [Chain(name, tuple(_reject(p.protocol)))]
        rules = [
            rule("mesh connection", [_set_mark(MESH_MARK | MASQ_MARK)]),
            rule(f"{where}: {len(ips)} backend(s)", [proto, _dnat(ips, p.target)]),
        ]
        return [Chain(name, tuple(rules))]
    local = [x for x in _backend_ips(b.backends) if _is_local(b, x, underlay)]
    gws = sorted({gateways[x] for x in local if x in gateways}, key=ipaddress.IPv4Address)
    if not gws:
        return [Chain(name, tuple(_reject(p.protocol)))]
    rules = [rule("mesh connection", [_set_mark(MESH_MARK)])]
    chains = []
    if link:
        lo = f"{name}-lo"
        rules.append(
            rule(
                "from the host's loopback: through the ingress network",
                [_match(_payload("ip", "saddr"), _prefix(LOOPBACK)), {"goto": {"target": lo}}],
            )
        )
        lo_rules = [
            rule("mesh connection from loopback", [_set_mark(MASQ_MARK)]),
            rule(f"{where}: {len(local)} local backend(s)", [proto, _dnat(local, p.target)]),
        ]
        chains.append(Chain(lo, tuple(lo_rules)))
    rules.append(
        rule(
            f"{where}: {len(gws)} local backend(s), client address kept",
            [proto, _dnat(gws, p.target)],
        )
    )
    return [Chain(name, tuple(rules)), *chains]


def _is_local(b: Balancer, ip: str, underlay: str) -> bool:
    return any(x.ip == ip and x.node_addr == underlay for x in b.backends)


def local_port_backends(state: NetworkState, underlay: str) -> set[str]:
    """Ingress addresses of this node's tasks behind a ``local`` port: the ones whose
    gateway-bridge address the host table needs."""
    plan = ingress_plan(state)
    if plan is None:
        return set()
    return {
        x.ip
        for b in state.balancers
        if b.network_id == plan.id and any(p.local for p in b.ports)
        for x in b.backends
        if x.node_addr == underlay
    }


# ---------------------------------------------------------------- reading back


def parse(listing: list[Json]) -> Ruleset | None:
    """A table as ``nft -j list table ip shoal`` shows it (its ``nftables`` list); None when
    it holds no table."""
    objects = [o for o in listing if isinstance(o, dict)]
    if not any("table" in o for o in objects):
        return None
    out = Ruleset()
    rules: dict[str, list[Rule]] = {}
    hooks: dict[str, Hook | None] = {}
    for o in objects:
        if "chain" in o:
            c = o["chain"]
            hook = None
            if "hook" in c:
                hook = Hook(
                    c.get("type", ""), c["hook"], int(c.get("prio", 0)), c.get("policy", "accept")
                )
            hooks[c["name"]] = hook
            rules.setdefault(c["name"], [])
        elif "map" in o:
            m = o["map"]
            key = m.get("type")
            types = tuple(key) if isinstance(key, list) else (str(key),)
            if m.get("map") != "verdict":
                types = ("?",)  # not a verdict map: not ours, replaced
            out.maps[m["name"]] = Map(m["name"], types, _elements(m.get("elem") or []))
        elif "set" in o:
            s = o["set"]
            out.maps[s["name"]] = Map(s["name"], ("?",))
        elif "rule" in o:
            r = o["rule"]
            rules.setdefault(r["chain"], []).append(Rule(str(r.get("comment", ""))))
    for name, hook in hooks.items():
        out.add(Chain(name, tuple(rules.get(name, [])), hook))
    return out


def _elements(elem: list[Json]) -> dict[Key, str]:
    out: dict[Key, str] = {}
    for e in elem:
        if not isinstance(e, list) or len(e) != 2:
            continue
        key, verdict = e
        if isinstance(key, dict) and "concat" in key:
            proto, port = key["concat"]
            k: Key = (str(proto), int(port))
        else:
            k = str(key)
        target = ""
        if isinstance(verdict, dict):
            target = str((verdict.get("goto") or verdict.get("jump") or {}).get("target", ""))
        out[k] = target
    return out


# ---------------------------------------------------------------- the transaction


def _obj(kind: str, **fields: Json) -> Json:
    return {kind: {"family": FAMILY, "table": TABLE, **fields}}


def _key_json(key: Key) -> Json:
    return {"concat": list(key)} if isinstance(key, tuple) else key


def _elements_obj(name: str, elem: list[Json]) -> Json:
    return _obj("element", name=name, elem=elem)


def _elem(key: Key, chain: str) -> Json:
    return [_key_json(key), {"goto": {"target": chain}}]


def _chain_obj(c: Chain) -> Json:
    if c.hook is None:
        return _obj("chain", name=c.name)
    h = c.hook
    return _obj("chain", name=c.name, type=h.type, hook=h.hook, prio=h.prio, policy=h.policy)


def _rule_obj(chain: str, r: Rule) -> Json:
    return _obj("rule", chain=chain, comment=r.comment, expr=json.loads(r.expr))


def _map_obj(m: Map) -> Json:
    key: Json = list(m.key) if len(m.key) > 1 else m.key[0]
    return _obj("map", name=m.name, type=key, map="verdict")


def _table() -> Json:
    return {"table": {"family": FAMILY, "name": TABLE}}


def vips_changed(want: Ruleset | None, found: Ruleset | None) -> tuple[list[str], list[str]]:
    """The VIPs a sandbox's table gained and lost (``vipneigh.py`` settles them)."""

    def vips(r: Ruleset | None) -> set[str]:
        m = r.maps.get("vips") if r is not None else None
        return {str(k) for k in m.elements} if m is not None else set()

    now, before = vips(want), vips(found)
    return sorted(now - before), sorted(before - now)


def transaction(want: Ruleset | None, found: Ruleset | None) -> list[Json]:
    """The nftables commands (one transaction) that make ``found`` into ``want``; [] when they
    match. ``None``: no table."""
    if want is None:
        return [{"delete": _table()}] if found is not None else []
    if found is not None and not _same_frame(want, found):
        return [{"delete": _table()}, *_create(want)]
    if found is None:
        return _create(want)
    cmds: list[Json] = []
    for name, c in want.chains.items():  # new chains first: elements and rules may name them
        if name not in found.chains:
            cmds.append({"add": _chain_obj(c)})
    for name, c in want.chains.items():
        old = found.chains.get(name)
        if old is not None and old.comments() == c.comments():
            continue
        if old is not None:
            cmds.append({"flush": _obj("chain", name=name)})
        cmds += [{"add": _rule_obj(name, r)} for r in c.rules]
    for name, m in want.maps.items():
        have = found.maps[name].elements
        gone = [k for k, v in have.items() if m.elements.get(k) != v]
        new = [k for k, v in m.elements.items() if have.get(k) != v]
        if gone:
            elem = [_key_json(k) for k in _sorted(gone)]
            cmds.append({"delete": _elements_obj(name, elem)})
        if new:
            elem = [_elem(k, m.elements[k]) for k in _sorted(new)]
            cmds.append({"add": _elements_obj(name, elem)})
    for name in sorted(found.chains):  # after the elements and rules that went to them
        if name not in want.chains:
            cmds.append({"flush": _obj("chain", name=name)})
    for name in sorted(found.chains):
        if name not in want.chains:
            cmds.append({"delete": _obj("chain", name=name)})
    return cmds


def _same_frame(want: Ruleset, found: Ruleset) -> bool:
    """Same maps (name and type) and, for every chain of both, the same hook."""
    if {n: m.key for n, m in want.maps.items()} != {n: m.key for n, m in found.maps.items()}:
        return False
    return all(
        c.hook == found.chains[n].hook for n, c in want.chains.items() if n in found.chains
    ) and all(c.hook is None for n, c in found.chains.items() if n not in want.chains)


def _create(want: Ruleset) -> list[Json]:
    cmds: list[Json] = [{"add": _table()}]
    cmds += [{"add": _map_obj(m)} for m in want.maps.values()]
    cmds += [{"add": _chain_obj(c)} for c in want.chains.values()]
    for c in want.chains.values():
        cmds += [{"add": _rule_obj(c.name, r)} for r in c.rules]
    for m in want.maps.values():
        if m.elements:
            elem = [_elem(k, m.elements[k]) for k in _sorted(m.elements)]
            cmds.append({"add": _elements_obj(m.name, elem)})
    return cmds


def _sorted(keys: Any) -> list[Key]:
    return sorted(keys, key=lambda k: (isinstance(k, tuple), str(k)))
