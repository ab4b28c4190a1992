"""The network data plane for real, without the control plane: two ``shoal lab`` hosts, each
running a ``DataPlane`` (and so the engine plugin) from a state file (``shoal.testing.netlab``),
their dockerds creating the engine networks and containers the way shoal's agent will.

The world of the module (one lab, 1 manager + 1 worker, no swarm):

* ``front`` (10.31.0.0/24, attachable): ``web`` (whoami) on A at .10; ``client`` (busybox
  httpd on 8080) on B at .20; ``both`` on B at .21, also on ``back``;
* ``back`` (10.32.0.0/24): ``db`` (busybox httpd) on A at .10; ``both`` at .21;
* ``twin`` (10.31.0.0/24 too — another segment with the same addresses): ``twinpeer`` on A at
  .10 (the address of ``web`` on front), ``twin`` on B at .30;
* ``closed`` (internal, 10.34.0.0/24): ``closed`` on A at .10.

The hosts' resolv.conf for the data plane names a stub resolver on A (nothing goes further).
No test sends a packet to an address outside the lab.
"""

from __future__ import annotations

import json
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from dnslib import QTYPE, RCODE, DNSRecord
from support import lab_cli

from shoal.lab.lab import Lab
from shoal.lab.state import load
from shoal.network import netns
from shoal.network.names import DNS_ADDR, mac_for, netns_name
from shoal.rpc.messages import EndpointRecord, NetworkPlan, NetworkState
from shoal.testing.netlab import NetError, NetNode

pytestmark = pytest.mark.e2e

FRONT = NetworkPlan(
    id="front" + "0" * 20, name="front", vni=4101, subnet="10.31.0.0/24", gateway="10.31.0.1",
    attachable=True,
)  # fmt: skip
BACK = NetworkPlan(
    id="back" + "0" * 21, name="back", vni=4102, subnet="10.32.0.0/24", gateway="10.32.0.1"
)
TWIN = NetworkPlan(
    id="twin" + "0" * 21, name="twin", vni=4103, subnet="10.31.0.0/24", gateway="10.31.0.1"
)
CLOSED = NetworkPlan(
    id="closed" + "0" * 19, name="closed", vni=4104, subnet="10.34.0.0/24", gateway="10.34.0.1",
    internal=True,
)  # fmt: skip
PLANS = [FRONT, BACK, TWIN, CLOSED]
STUB_ANSWER = "192.0.2.80"  # what the stub resolver answers (nothing is ever sent there)


@dataclass
class Box:
    """A container of the world: where it runs, its networks and addresses, its names."""

    name: str
    host: str  # "a" | "b"
    image: str  # "whoami" | "busybox"
    nets: list[tuple[NetworkPlan, str]]
    names: list[str] = field(default_factory=list)


BOXES = [
    Box("web", "a", "whoami", [(FRONT, "10.31.0.10")], ["web", "tasks.web", "www"]),
    Box("db", "a", "busybox", [(BACK, "10.32.0.10")], ["db", "tasks.db"]),
    Box("client", "b", "busybox", [(FRONT, "10.31.0.20")], ["client"]),
    Box("both", "b", "busybox", [(FRONT, "10.31.0.21"), (BACK, "10.32.0.21")], ["both"]),
    Box("twinpeer", "a", "busybox", [(TWIN, "10.31.0.10")], ["twinpeer"]),
    Box("twin", "b", "busybox", [(TWIN, "10.31.0.30")], ["twin"]),
    Box("closed", "a", "busybox", [(CLOSED, "10.34.0.10")], ["closed"]),
]
BOX = {b.name: b for b in BOXES}


class World:
    def __init__(self, lab_name: str) -> None:
        self.lab = Lab(load(lab_name))  # type: ignore[arg-type]
        st = self.lab.state
        self.gateway = st.gateway  # the lab bridge, in the root namespace: "outside"
        self.registry = st.registry_addr
        a, b = (self.lab.node(f"{lab_name}-{s}") for s in ("m1", "w1"))
        resolv = f"{a.dir}/netplane-resolv.conf"
        with open(resolv, "w") as f:
            f.write(f"nameserver {a.state.addr}\n")
        self.nodes = {"a": NetNode(a, resolv), "b": NetNode(b, resolv)}
        self.removed: set[str] = set()  # boxes left out of the state
        self.extra: list[EndpointRecord] = []  # endpoints of containers outside BOXES
        self.extra_plans: list[NetworkPlan] = []

    def state(self) -> NetworkState:
        endpoints = [
            EndpointRecord(
                network_id=plan.id, ip=ip, node_addr=self.nodes[box.host].addr, names=box.names
            )
            for box in BOXES
            if box.name not in self.removed
            for plan, ip in box.nets
        ]
        return NetworkState(networks=PLANS + self.extra_plans, endpoints=endpoints + self.extra)

    def publish(self) -> float:
        """The state to both nodes; seconds until both applied it."""
        t0 = time.monotonic()
        state = self.state()
        gens = {k: n.set_state(state) for k, n in self.nodes.items()}
        for k, n in self.nodes.items():
            n.wait_applied(gens[k])
        return time.monotonic() - t0

    def image(self, kind: str) -> str:
        return f"{self.registry}/shoal-lab/{kind}:1"

    def node(self, box: str) -> NetNode:
        return self.nodes[BOX[box].host]

    def run_box(self, box: Box) -> None:
        node = self.nodes[box.host]
        first, ip = box.nets[0]
        args = ["create", "--name", box.name, "--hostname", box.name, "--network", first.name]
        args += ["--ip", ip, "--dns", DNS_ADDR]
        if box.image == "whoami":
            args += [self.image("whoami"), "/serve"]
        else:
            serve = "mkdir -p /www && hostname > /www/index.html && httpd -f -p 8080 -h /www"
            args += [self.image("busybox"), "sh", "-c", serve]
        node.ok(*args)
        for plan, ip in box.nets[1:]:
            node.ok("network", "connect", "--ip", ip, plan.name, box.name)
        node.ok("start", box.name)

    def exec(self, box: str, cmd: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        return self.node(box).docker("exec", box, "sh", "-c", cmd, timeout=timeout)

    def out(self, box: str, cmd: str) -> str:
        proc = self.exec(box, cmd)
        assert proc.returncode == 0, (
            f"{box}: {cmd}: rc={proc.returncode}\n{proc.stdout}{proc.stderr}"
        )
        return proc.stdout

    def dns(self, box: str, name: str, qtype: str = "A", timeout: float = 2.0) -> DNSRecord:
        """Ask shoal's DNS server from inside the container's network namespace (its address,
        so its scope) — as dockerd's embedded resolver forwards, without docker exec."""
        pid = self.node(box).container_pid(box)
        s = netns.socket_in(f"/proc/{pid}/ns/net", socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.settimeout(timeout)
            q = DNSRecord.question(name, qtype)
            s.sendto(bytes(q.pack()), (DNS_ADDR, 53))
            return DNSRecord.parse(s.recv(65535))
        finally:
            s.close()


def a_records(reply: DNSRecord) -> list[str]:
    return sorted(str(rr.rdata) for rr in reply.rr if rr.rtype == QTYPE.A)


def make_world(lab_name: str) -> World:
    """Data planes, stub resolver, engine networks and containers on a lab that is up."""
    w = World(lab_name)
    a = w.nodes["a"]
    stub = [
        sys.executable,
        "-m",
        "shoal.testing.dnsstub",
        "--listen",
        a.addr,
        "--answer",
        STUB_ANSWER,
    ]
    a.node.host.spawn(stub, f"{a.dir}/dnsstub.log", a.env())
    for node in w.nodes.values():
        node.set_state(w.state())
        node.start()
        for kind in ("busybox", "whoami"):
            node.ok("pull", w.image(kind))
        for plan in PLANS:
            node.create_network(plan)
    for box in BOXES:
        w.run_box(box)
    return w


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    name = "e2enet" + secrets.token_hex(3)
    up = lab_cli("up", "--name", name, "--managers", "1", "--workers", "1", "--no-swarm")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        yield make_world(name)
    finally:
        down = lab_cli("down", "--name", name)
        assert down.returncode == 0, down.stderr


# ---------------------------------------------------------------------- interfaces


def test_a_container_has_the_overlay_and_the_gateway_bridge(world: World) -> None:
    addrs = world.out("client", "ip -o -4 addr show; ip -o link show eth0; ip route")
    lines = addrs.splitlines()
    eth0 = next(x for x in lines if " eth0 " in x and "inet " in x)
    eth1 = next(x for x in lines if " eth1 " in x and "inet " in x)
    assert "10.31.0.20/24" in eth0
    assert "172.18." in eth1  # dockerd's docker_gwbridge
    link = next(x for x in lines if "eth0@" in x)
    assert mac_for("10.31.0.20") in link and "mtu 1450" in link
    assert any(x.startswith("default via 172.18.0.1 dev eth1") for x in lines), addrs
    assert any(x.startswith(f"{DNS_ADDR} dev eth0") for x in lines), addrs
    assert "nameserver 127.0.0.11" in world.out("client", "cat /etc/resolv.conf")


def test_a_second_shoal_network_has_no_second_dns_route(world: World) -> None:
    out = world.out("both", "ip -o -4 addr show; ip route")
    assert "10.31.0.21/24" in out and "10.32.0.21/24" in out
    routes = [x.split() for x in out.splitlines() if x.startswith(DNS_ADDR)]
    assert len(routes) == 1, out  # on one of its shoal interfaces (dockerd numbers them)
    dev = routes[0][routes[0].index("dev") + 1]
    assert any(f" {dev}    inet 10.3" in x or f" {dev} inet 10.3" in x for x in out.splitlines()), (
        out
    )


def test_the_network_namespace_is_what_an_operator_expects(world: World) -> None:
    b = world.nodes["b"]
    assert netns_name(FRONT.id) in b.sh("ip netns").stdout
    links = b.in_network(FRONT.id, "ip -d -o link").stdout
    vxlan = next(x for x in links.splitlines() if " vxlan0" in x)
    assert f"vxlan id {FRONT.vni} local {b.addr}" in vxlan and "nolearning proxy" in vxlan
    assert "dstport 4789" in vxlan and "mtu 1450" in vxlan and "noudpcsum" in vxlan
    assert f"alias shoal network {FRONT.id} front" in vxlan.replace("\\", "")
    addrs = b.in_network(FRONT.id, "ip -o -4 addr show dev br0").stdout
    assert "10.31.0.1/24" in addrs and f"{DNS_ADDR}/32" in addrs
    # forwarding entries: exactly the other node's endpoints, no flooding entry
    a = world.nodes["a"].addr
    assert b.fdb(FRONT.id) == {mac_for("10.31.0.10"): a}
    neigh = b.in_network(FRONT.id, "ip neigh show dev vxlan0").stdout
    assert f"10.31.0.10 lladdr {mac_for('10.31.0.10')} PERMANENT" in neigh
    # nothing of shoal's in the host namespace but what dockerd moved into containers
    assert "shoal" not in b.sh("ip -o link").stdout


# ---------------------------------------------------------------------- reaching each other


def test_containers_on_two_hosts_fetch_each_other_by_ip_and_by_name(world: World) -> None:
    for url in ("http://10.31.0.10/hostname", "http://web/hostname", "http://tasks.web/hostname"):
        assert world.out("client", f"timeout 5 wget -qO- {url}").strip() == "web", url
    for url in ("http://10.31.0.20:8080/", "http://client:8080/"):
        assert world.out("web", f"timeout 5 wget -qO- {url}").strip() == "client", url
    assert world.out("both", "timeout 5 wget -qO- http://db:8080/").strip() == "db"


def test_the_way_out_is_the_gateway_bridge_except_on_an_internal_network(world: World) -> None:
    world.out("client", f"ping -c 1 -W 3 {world.gateway}")
    assert world.exec("closed", f"ping -c 1 -W 1 {world.gateway}").returncode != 0
    closed = world.out("closed", "ip route; ip -o link")
    assert "default" not in closed and "eth1" not in closed, closed
    assert world.out("closed", "timeout 5 wget -qO- http://10.34.0.10:8080/").strip() == "closed"


def test_networks_are_isolated_even_with_the_same_addresses(world: World) -> None:
    # twin's 10.31.0.10 is twinpeer, not web
    assert world.out("twin", "timeout 5 wget -qO- http://10.31.0.10:8080/").strip() == "twinpeer"
    assert world.exec("twin", "timeout 2 wget -qO- http://10.31.0.10/hostname").returncode != 0
    assert world.exec("client", "ping -c 1 -W 1 10.31.0.30").returncode != 0
    assert world.exec("twin", "ping -c 1 -W 1 10.31.0.20").returncode != 0
    b = world.nodes["b"]
    assert b.fdb(TWIN.id) == {mac_for("10.31.0.10"): world.nodes["a"].addr}
    assert mac_for("10.31.0.20") not in world.nodes["a"].fdb(TWIN.id)


# ---------------------------------------------------------------------- DNS


def test_dns_answers_from_the_networks_of_the_querying_container(world: World) -> None:
    assert a_records(world.dns("client", "web")) == ["10.31.0.10"]
    assert a_records(world.dns("client", "www")) == ["10.31.0.10"]
    hidden = world.dns("client", "db")
    assert hidden.header.rcode == RCODE.NXDOMAIN and hidden.header.aa
    assert a_records(world.dns("both", "db")) == ["10.32.0.10"]
    assert a_records(world.dns("both", "web")) == ["10.31.0.10"]
    assert world.dns("twin", "web").header.rcode == RCODE.NXDOMAIN
    assert a_records(world.dns("twin", "twinpeer")) == ["10.31.0.10"]
    # through dockerd's embedded resolver, as programs in the container ask
    assert "10.32.0.10" in world.out("both", "nslookup db")
    assert world.exec("client", "nslookup db").returncode != 0


def test_other_names_go_to_the_hosts_resolvers(world: World) -> None:
    assert a_records(world.dns("client", "outside.example")) == [STUB_ANSWER]
    assert world.dns("client", "missing.example").header.rcode == RCODE.NXDOMAIN
    assert STUB_ANSWER in world.out("client", "nslookup outside.example")
    # an internal network's container resolves too (it cannot go there)
    assert a_records(world.dns("closed", "outside.example")) == [STUB_ANSWER]


def test_dns_over_tcp(world: World) -> None:
    pid = world.node("client").container_pid("client")
    s = netns.socket_in(f"/proc/{pid}/ns/net", socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.settimeout(3)
        s.connect((DNS_ADDR, 53))
        q = bytes(DNSRecord.question("tasks.web").pack())
        s.sendall(len(q).to_bytes(2, "big") + q)
        size = int.from_bytes(s.recv(2), "big")
        data = b""
        while len(data) < size:
            data += s.recv(size - len(data))
        assert a_records(DNSRecord.parse(data)) == ["10.31.0.10"]
    finally:
        s.close()


# ---------------------------------------------------------------------- attached containers


def test_a_container_without_an_address_gets_one_from_the_allocator(world: World) -> None:
    """A plain `docker run --network` on an attachable network: dockerd asks for an address,
    the allocator gives one (here the runner's, standing in for the manager); once the
    state has the new endpoint (the manager's job), the other host reaches it."""
    b = world.nodes["b"]
    name = "attached"
    b.ok(
        "run", "-d", "--name", name, "--network", "front", "--dns", DNS_ADDR,
        world.image("busybox"), "sh", "-c", "hostname > /index.html; httpd -f -p 8080 -h /",
    )  # fmt: skip
    try:
        assert b.allocated() == {FRONT.id: ["10.31.0.2"]}
        out = b.ok("exec", name, "ip", "-o", "link", "show", "eth0")
        assert mac_for("10.31.0.2") in out
        world.extra.append(
            EndpointRecord(network_id=FRONT.id, ip="10.31.0.2", node_addr=b.addr, names=[name])
        )
        world.publish()
        assert world.out("web", f"timeout 5 wget -qO- http://{name}:8080/").strip() != ""
    finally:
        b.docker("rm", "-f", name)
        world.extra.clear()
        world.publish()
    assert b.allocated().get(FRONT.id, []) == []  # given back when the container went


# ---------------------------------------------------------------------- state changes


def test_a_removed_endpoint_leaves_dns_and_the_other_hosts_fdb_within_a_second(
    world: World,
) -> None:
    b = world.nodes["b"]
    web_mac = mac_for("10.31.0.10")
    assert web_mac in b.fdb(FRONT.id)
    world.removed.add("web")
    try:
        t0 = time.monotonic()
        state = world.state()
        for node in world.nodes.values():
            node.set_state(state)
        gone_dns = gone_fdb = None
        while (gone_dns is None or gone_fdb is None) and time.monotonic() - t0 < 5:
            if gone_dns is None and world.dns("client", "web").header.rcode == RCODE.NXDOMAIN:
                gone_dns = time.monotonic() - t0
            if gone_fdb is None and web_mac not in b.fdb(FRONT.id):
                gone_fdb = time.monotonic() - t0
        assert gone_dns is not None and gone_dns < 1.0, gone_dns
        assert gone_fdb is not None and gone_fdb < 1.0, gone_fdb
        assert "10.31.0.10 " not in b.in_network(FRONT.id, "ip neigh show dev vxlan0").stdout
        print(
            f"\nweb left DNS after {gone_dns * 1000:.0f} ms, B's FDB after {gone_fdb * 1000:.0f} ms"
        )
    finally:
        world.removed.discard("web")
        world.publish()
    assert world.out("client", "timeout 5 wget -qO- http://web/hostname").strip() == "web"


def test_a_network_that_cannot_be_made_holds_no_other_back(world: World) -> None:
    """A network whose VXLAN device the kernel refuses (its VNI is another network's) fails
    alone: the same state's other changes are made, and the next state clears it."""
    bad = NetworkPlan(
        id="aaabad" + "0" * 19,
        name="bad",
        vni=FRONT.vni,
        subnet="10.35.0.0/24",
        gateway="10.35.0.1",
    )
    a = world.nodes["a"]
    twin_mac = mac_for("10.31.0.30")
    assert twin_mac in a.fdb(TWIN.id)
    world.extra_plans.append(bad)
    world.removed.add("twin")
    try:
        with pytest.raises(NetError, match="File exists"):
            world.publish()
        assert twin_mac not in a.fdb(TWIN.id)  # applied beside the failure
        assert world.out("client", "timeout 5 wget -qO- http://web/hostname").strip() == "web"
    finally:
        world.extra_plans.clear()
        world.removed.discard("twin")
        world.publish()
    assert twin_mac in a.fdb(TWIN.id)
    assert netns_name(bad.id) not in a.sh("ip netns").stdout


def _links(node: NetNode, plan: NetworkPlan) -> list[str]:
    """ifindex, name and MAC of every device in the network's namespace."""
    out = node.in_network(plan.id, "ip -o link").stdout
    links = []
    for line in out.splitlines():
        words = line.split()
        mac = words[words.index("link/ether") + 1] if "link/ether" in words else ""
        links.append(f"{words[0]} {words[1]} {mac}")
    return sorted(links)


def test_a_restart_of_the_data_plane_keeps_running_containers_connected(world: World) -> None:
    before = {k: [_links(n, p) for p in PLANS] for k, n in world.nodes.items()}
    fdb_before = world.nodes["b"].fdb(FRONT.id)
    # 15 s of pings (every 50 ms) and HTTP requests (every 100 ms) from B's client to web on A,
    # by address; name lookups beside them; both data planes killed and started meanwhile.
    # Lost: nothing but DNS answers while shoal's DNS server is down (dockerd's resolver and
    # the client retry, so lookups through them are only late).
    results: dict[str, subprocess.CompletedProcess[str]] = {}

    def run(key: str, cmd: str) -> None:
        results[key] = world.exec("client", cmd, timeout=90)

    http_loop = (
        "ok=0; bad=0; i=0; while [ $i -lt 150 ]; do "
        "if timeout 2 wget -qO /dev/null http://10.31.0.10/hostname; then ok=$((ok+1)); "
        "else bad=$((bad+1)); fi; i=$((i+1)); sleep 0.1; done; echo ok=$ok bad=$bad"
    )
    dns_loop = (
        "ok=0; bad=0; i=0; while [ $i -lt 60 ]; do "
        "if nslookup web >/dev/null 2>&1; then ok=$((ok+1)); else bad=$((bad+1)); fi; "
        "i=$((i+1)); sleep 0.2; done; echo ok=$ok bad=$bad"
    )
    unanswered: list[float] = []  # when a direct query (every 50 ms, 200 ms to answer) got none
    stop = threading.Event()

    def ask() -> None:
        while not stop.is_set():
            t = time.monotonic()
            try:
                world.dns("client", "web", timeout=0.2)
            except OSError:
                unanswered.append(t)
            stop.wait(0.05)

    threads = [
        threading.Thread(target=ask),
        threading.Thread(target=run, args=("ping", "ping -q -i 0.05 -c 300 10.31.0.10")),
        threading.Thread(target=run, args=("http", http_loop)),
        threading.Thread(target=run, args=("dns", dns_loop)),
    ]
    for t in threads:
        t.start()
    time.sleep(2.0)
    t_kill = time.monotonic()
    for node in world.nodes.values():
        node.kill()
    time.sleep(1.0)
    for node in world.nodes.values():
        node.start()
    down = time.monotonic() - t_kill
    for t in threads[1:]:
        t.join(120)
    stop.set()
    threads[0].join(5)
    summary = {k: (v.stdout.strip().splitlines() or [""])[-2:] for k, v in results.items()}
    gap = unanswered[-1] - unanswered[0] + 0.25 if unanswered else 0.0
    print(
        f"\nrestart: data planes down {down:.2f} s; {json.dumps(summary)}; direct DNS queries "
        f"unanswered: {len(unanswered)}, for {gap:.2f} s"
    )
    assert " 0% packet loss" in results["ping"].stdout, results["ping"].stdout
    assert "bad=0" in results["http"].stdout, results["http"].stdout
    assert "bad=0" in results["dns"].stdout, results["dns"].stdout
    assert gap < down + 0.5, (gap, down)
    # nothing in the namespaces was made anew (same devices, same MACs), same entries
    assert {k: [_links(n, p) for p in PLANS] for k, n in world.nodes.items()} == before
    assert world.nodes["b"].fdb(FRONT.id) == fdb_before
    # new containers plug in as before
    assert world.out("client", "timeout 5 wget -qO- http://web/hostname").strip() == "web"


# ---------------------------------------------------------------------- the end


def test_teardown_leaves_nothing_of_shoals(world: World) -> None:
    for node in world.nodes.values():
        names = [b.name for b in BOXES if world.nodes[b.host] is node]
        node.ok("rm", "-f", *names)
        for plan in PLANS:
            node.ok("network", "rm", plan.name)
    for node in world.nodes.values():
        proc = node.teardown()
        assert proc.returncode == 0, proc.stdout + proc.stderr
    for key, node in world.nodes.items():
        assert "shoal" not in node.sh("ip netns").stdout, key
        links = node.sh("ip -o link").stdout
        assert "shoal" not in links and " ve-" not in links, links
        assert node.sh("ls /run/docker/plugins").stdout.strip() == "", key
        # the VXLAN devices' socket (port 4789 = 0x12B5) goes once the kernel has cleaned up
        # the deleted namespaces, which it does in the background
        deadline = time.monotonic() + 5
        while ":12B5 " in node.sh("cat /proc/net/udp").stdout.upper():
            assert time.monotonic() < deadline, f"{key}: a VXLAN socket stays"
            time.sleep(0.1)
        assert not node.sh(f"ls {node.dir}/engine-endpoints.json 2>/dev/null").stdout
