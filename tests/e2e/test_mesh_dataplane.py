"""Service VIPs and the routing mesh for real, without the control plane: three ``shoal lab``
hosts, each running a ``DataPlane`` from a state file (``shoal.testing.netlab``) with
``Balancer`` s written here, containers run by the hosts' dockerds on shoal's networks.

The world of the module (one lab, 1 manager + 2 workers, no swarm; hosts a, b, c):

* ``app`` (10.51.0.0/24, attachable): ``web1`` on a at .11, ``web2`` on b at .12, ``web3`` on c
  at .13 (whoami, and a UDP "whoami" on 5353 beside it); ``client`` (busybox) on c at .20;
* ``ingress`` (10.60.0.0/24, the mesh's network): ``web1`` at .11, ``web2`` at .12; the hosts
  at .2, .3, .4 (their ``ingress_address``); c has no backend there;
* service ``web``: VIP 10.51.0.2 on app (backends web1-3, the name ``web``); on ingress the
  published ports 8080/tcp → 80, 5353/udp → 5353 and 8081/tcp → 80 ``local`` (backends web1,
  web2); service ``none``: VIP 10.51.0.3 and 8082/tcp, no backends.

Every request goes between the lab's hosts (or inside one).
"""

from __future__ import annotations

import collections
import re
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from support import RequestLoop, lab_cli

from shoal.lab.lab import Lab
from shoal.lab.state import load
from shoal.network import netns
from shoal.network.names import DNS_ADDR
from shoal.rpc.messages import (
    Backend,
    Balancer,
    EndpointRecord,
    IngressPort,
    NetworkPlan,
    NetworkState,
)
from shoal.testing.netlab import NetNode

pytestmark = pytest.mark.e2e

APP = NetworkPlan(
    id="app" + "0" * 22, name="app", vni=4301, subnet="10.51.0.0/24", gateway="10.51.0.1",
    attachable=True,
)  # fmt: skip
INGRESS = NetworkPlan(
    id="ingress" + "0" * 18, name="ingress", vni=4300, subnet="10.60.0.0/24",
    gateway="10.60.0.1", ingress=True,
)  # fmt: skip
PLANS = [APP, INGRESS]
WEB, NONE = "web" + "0" * 22, "none" + "0" * 21
VIP, VIP_NONE, INGRESS_VIP = "10.51.0.2", "10.51.0.3", "10.60.0.250"
HOST_INGRESS = {"a": "10.60.0.2", "b": "10.60.0.3", "c": "10.60.0.4"}
UDP_PORT = 5353
MESH, LOCAL, NOBODY = 8080, 8081, 8082

UDP_WHOAMI = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[2])))
while True:
    data, peer = s.recvfrom(2048)
    s.sendto(f"{sys.argv[1]} {peer[0]}".encode(), peer)
"""


@dataclass
class Box:
    name: str
    host: str
    image: str
    nets: list[tuple[NetworkPlan, str]]


BOXES = [
    Box("web1", "a", "whoami", [(APP, "10.51.0.11"), (INGRESS, "10.60.0.11")]),
    Box("web2", "b", "whoami", [(APP, "10.51.0.12"), (INGRESS, "10.60.0.12")]),
    Box("web3", "c", "whoami", [(APP, "10.51.0.13")]),
    Box("client", "c", "busybox", [(APP, "10.51.0.20")]),
]
BOX = {b.name: b for b in BOXES}


def ip_of(box: str, plan: NetworkPlan) -> str:
    return next(ip for p, ip in BOX[box].nets if p.id == plan.id)


class World:
    def __init__(self, lab_name: str) -> None:
        self.lab = Lab(load(lab_name))  # type: ignore[arg-type]
        self.registry = self.lab.state.registry_addr
        hosts = {"a": "m1", "b": "w1", "c": "w2"}
        self.nodes = {k: NetNode(self.lab.node(f"{lab_name}-{s}")) for k, s in hosts.items()}
        self.backends: dict[str, list[str]] = {"web": ["web1", "web2", "web3"]}
        self.mesh: list[str] = ["web1", "web2"]
        self.with_none = True
        self.extra: list[str] = []  # addresses of containers run on c by a test, on app
        self.udp: list[subprocess.Popen[str]] = []

    def addr(self, host: str) -> str:
        return self.nodes[host].addr

    def backend(self, box: str, plan: NetworkPlan) -> Backend:
        node = self.nodes[BOX[box].host].addr
        return Backend(task_id=f"task-{box}", ip=ip_of(box, plan), node_addr=node)

    def state(self, host: str) -> NetworkState:
        endpoints = [
            EndpointRecord(
                network_id=plan.id, ip=ip, node_addr=self.addr(box.host),
                names=[box.name, "tasks.web"] if box.name.startswith("web") else [box.name],
                task_id=f"task-{box.name}",
            )
            for box in BOXES
            for plan, ip in box.nets
        ]  # fmt: skip
        endpoints += [
            EndpointRecord(network_id=INGRESS.id, ip=ip, node_addr=self.addr(k))
            for k, ip in HOST_INGRESS.items()
        ]
        endpoints += [
            EndpointRecord(network_id=APP.id, ip=ip, node_addr=self.addr("c")) for ip in self.extra
        ]
        balancers = [
            Balancer(
                service_id=WEB, network_id=APP.id, vip=VIP, names=["web"],
                backends=[self.backend(b, APP) for b in self.backends["web"]],
            ),
            Balancer(
                service_id=WEB, network_id=INGRESS.id, vip=INGRESS_VIP,
                ports=[
                    IngressPort(published=MESH, target=80),
                    IngressPort(protocol="udp", published=UDP_PORT, target=UDP_PORT),
                    IngressPort(published=LOCAL, target=80, local=True),
                ],
                backends=[self.backend(b, INGRESS) for b in self.mesh],
            ),
        ]  # fmt: skip
        if self.with_none:
            balancers += [
                Balancer(service_id=NONE, network_id=APP.id, vip=VIP_NONE),
                Balancer(
                    service_id=NONE, network_id=INGRESS.id,
                    ports=[IngressPort(published=NOBODY, target=80)],
                ),
            ]  # fmt: skip
        return NetworkState(
            networks=PLANS, endpoints=endpoints, balancers=balancers,
            ingress_address=f"{HOST_INGRESS[host]}/24",
        )  # fmt: skip

    def publish(self) -> None:
        """The state to every node; returns once all applied it."""
        gens = {k: n.set_state(self.state(k)) for k, n in self.nodes.items()}
        for k, n in self.nodes.items():
            n.wait_applied(gens[k])

    def image(self, kind: str) -> str:
        return f"{self.registry}/shoal-lab/{kind}:1"

    def run_box(self, box: Box) -> None:
        node = self.nodes[box.host]
        first, ip = box.nets[0]
        args = ["create", "--name", box.name, "--hostname", box.name, "--network", first.name]
        args += ["--ip", ip, "--dns", DNS_ADDR]
        if box.image == "whoami":
            args += [self.image("whoami"), "/serve"]
        else:
            args += [self.image("busybox"), "sleep", "3600"]
        node.ok(*args)
        for plan, ip in box.nets[1:]:
            node.ok("network", "connect", "--ip", ip, plan.name, box.name)
        node.ok("start", box.name)
        if box.image == "whoami":
            argv = [sys.executable, "-c", UDP_WHOAMI, box.name, str(UDP_PORT)]
            self.udp.append(node.in_container_netns(box.name, argv))

    def exec(self, box: str, cmd: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        return self.nodes[BOX[box].host].docker("exec", box, "sh", "-c", cmd, timeout=timeout)

    def out(self, box: str, cmd: str) -> str:
        proc = self.exec(box, cmd)
        assert proc.returncode == 0, (
            f"{box}: {cmd}: rc={proc.returncode}\n{proc.stdout}{proc.stderr}"
        )
        return proc.stdout

    def get(self, host: str, to: str, port: int, path: str = "/hostname") -> str:
        """An HTTP request from inside host (its own namespace) to to:port; the body."""
        status, body = self.nodes[host].node.host.http_get(port, path, host=to, timeout=5)
        assert status == 200, (status, body)
        return body

    def get_vip(self, path: str = "/hostname") -> str:
        """An HTTP request from inside the client container's namespace to the VIP."""
        pid = self.nodes["c"].container_pid("client")
        s = netns.socket_in(f"/proc/{pid}/ns/net", socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.settimeout(5)
            s.connect((VIP, 80))
            s.sendall(f"GET {path} HTTP/1.0\r\nHost: web\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        finally:
            s.close()
        head, _, body = data.decode(errors="replace").partition("\r\n\r\n")
        assert head.startswith("HTTP/1.") and " 200 " in head.splitlines()[0], head
        return body

    def udp_ask(self, sock: socket.socket, to: str, port: int = UDP_PORT) -> str:
        sock.settimeout(3)
        sock.sendto(b"who", (to, port))
        return sock.recv(2048).decode()

    def host_udp(self, host: str) -> socket.socket:
        return self.nodes[host].node.host.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def box_udp(self, box: str) -> socket.socket:
        pid = self.nodes[BOX[box].host].container_pid(box)
        return netns.socket_in(f"/proc/{pid}/ns/net", socket.AF_INET, socket.SOCK_DGRAM)

    def nft(self, host: str) -> str:
        return self.nodes[host].sh("nft list table ip shoal").stdout

    def refused(self, host: str, to: str, port: int) -> str:
        """How a TCP connection from host to to:port fails (it must)."""
        s = self.nodes[host].node.host.socket()
        s.settimeout(5)
        try:
            s.connect((to, port))
        except OSError as e:
            return type(e).__name__
        finally:
            s.close()
        raise AssertionError(f"{host} → {to}:{port} was accepted")


def hostnames(bodies: list[str]) -> collections.Counter[str]:
    return collections.Counter(b.strip() for b in bodies)


def whoami(body: str) -> dict[str, str]:
    return dict(re.findall(r"^(Hostname|RemoteAddr): (\S+)$", body, re.M))


def make_world(lab_name: str) -> World:
    w = World(lab_name)
    for key, node in w.nodes.items():
        node.set_state(w.state(key))
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
    name = "e2emesh" + secrets.token_hex(3)
    up = lab_cli("up", "--name", name, "--managers", "1", "--workers", "2", "--no-swarm")
    w = None
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        w = make_world(name)
        yield w
    finally:
        for proc in w.udp if w else []:
            proc.kill()
        down = lab_cli("down", "--name", name)
        assert down.returncode == 0, down.stderr


# ---------------------------------------------------------------------- VIPs


def test_the_vip_balances_over_backends_on_three_hosts(world: World) -> None:
    out = world.out(
        "client", f"for i in $(seq 300); do timeout 3 wget -qO- http://{VIP}/hostname; done"
    )
    counts = hostnames(out.splitlines())
    print(f"\nVIP: 300 requests from client on c: {dict(counts)}")
    assert sum(counts.values()) == 300, counts
    assert set(counts) == {"web1", "web2", "web3"}, counts
    assert all(n >= 60 for n in counts.values()), counts  # each ≥ 20 %


def test_the_vip_by_name_and_the_client_address_is_kept(world: World) -> None:
    assert world.out("client", "timeout 3 wget -qO- http://web/hostname").strip().startswith("web")
    seen = whoami(world.out("client", f"timeout 3 wget -qO- http://{VIP}/cgi-bin/whoami"))
    assert seen["RemoteAddr"] == ip_of("client", APP), seen
    # the NAT is in the client's own namespace: a table of shoal's there, none in the host's
    c = world.nodes["c"]
    pid = c.container_pid("client")
    table = c.sh(f"nsenter --net=/proc/{pid}/ns/net nft list table ip shoal").stdout
    assert f"{VIP} : goto vip-{WEB}-{APP.id[:12]}" in table, table
    assert "numgen random mod 3" in table, table


def test_a_vip_without_backends_refuses_at_once(world: World) -> None:
    proc = world.exec("client", f"timeout 5 wget -qO- http://{VIP_NONE}/ 2>&1")
    assert proc.returncode != 0
    assert "refused" in proc.stdout, proc.stdout


def test_a_container_started_with_docker_run_reaches_the_vip_at_once(world: World) -> None:
    """Its first connection, made as the process starts (before shoal could have seen its
    namespace), goes through the VIP too."""
    c = world.nodes["c"]
    world.extra = [f"10.51.0.{30 + i}" for i in range(5)]
    world.publish()  # the other hosts know where to send the answers
    for i in range(5):
        out = c.ok(
            "run", "--rm", "--init", "--network", "app", "--ip", f"10.51.0.{30 + i}",
            "--dns", DNS_ADDR, world.image("busybox"),
            "timeout", "5", "wget", "-qO-", f"http://{VIP}/hostname",
        )  # fmt: skip
        assert out.strip() in {"web1", "web2", "web3"}, out


def test_udp_through_the_vip(world: World) -> None:
    s = world.box_udp("client")
    try:
        answers = [world.udp_ask(s, VIP) for _ in range(12)]
    finally:
        s.close()
    names = {a.split()[0] for a in answers}
    assert names <= {"web1", "web2", "web3"} and names, answers
    # a datagram flow stays on its backend (same socket, same port: one conntrack entry)
    assert len(names) == 1, answers
    assert all(a.split()[1] == ip_of("client", APP) for a in answers), answers


# ---------------------------------------------------------------------- the mesh


def test_the_mesh_answers_on_a_host_without_backends(world: World) -> None:
    c = world.addr("c")
    seen = [world.get("c", "127.0.0.1", MESH) for _ in range(30)]
    seen += [world.get("c", c, MESH) for _ in range(30)]  # the host itself, its own address
    seen += [world.get("a", c, MESH) for _ in range(30)]  # another host
    counts = hostnames(seen)
    print(f"\nmesh via c (no backend there): {dict(counts)}")
    assert set(counts) == {"web1", "web2"}, counts
    assert "shoal routing mesh" in world.nodes["c"].sh("iptables-save").stdout


def test_the_mesh_answers_on_every_host_from_everywhere(world: World) -> None:
    for src in "abc":
        for dst in "abc":
            body = world.get(src, world.addr(dst), MESH)
            assert body.strip() in {"web1", "web2"}, (src, dst, body)
        assert world.get(src, "localhost", MESH).strip() in {"web1", "web2"}


def test_the_mesh_hides_the_client_address(world: World) -> None:
    seen = whoami(world.get("b", world.addr("c"), MESH, "/cgi-bin/whoami"))
    assert seen["RemoteAddr"] == HOST_INGRESS["c"], seen  # masqueraded by c, into the mesh


def test_a_local_port_keeps_the_client_address(world: World) -> None:
    a = world.addr("a")
    for src in ("b", "c"):
        for _ in range(10):
            seen = whoami(world.get(src, a, LOCAL, "/cgi-bin/whoami"))
            assert seen == {"Hostname": "web1", "RemoteAddr": world.addr(src)}, seen
    # and from a itself: by its address, and from its loopback
    assert whoami(world.get("a", a, LOCAL, "/cgi-bin/whoami"))["Hostname"] == "web1"
    assert world.get("a", "127.0.0.1", LOCAL).strip() == "web1"
    assert world.get("b", "127.0.0.1", LOCAL).strip() == "web2"


def test_a_local_port_refuses_where_no_backend_runs(world: World) -> None:
    assert world.refused("a", world.addr("c"), LOCAL) == "ConnectionRefusedError"
    assert world.refused("c", "127.0.0.1", LOCAL) == "ConnectionRefusedError"


def test_a_port_without_backends_refuses(world: World) -> None:
    assert world.refused("b", world.addr("a"), NOBODY) == "ConnectionRefusedError"


def test_udp_through_the_mesh(world: World) -> None:
    names = collections.Counter()
    for src, dst in [("b", world.addr("c")), ("c", "127.0.0.1"), ("a", world.addr("b"))]:
        for _ in range(8):
            s = world.host_udp(src)  # a new socket: a new flow, balanced anew
            try:
                answer = world.udp_ask(s, dst)
            finally:
                s.close()
            name, peer = answer.split()
            names[name] += 1
            assert peer == HOST_INGRESS[dst_key(world, dst, src)], (src, dst, answer)
    assert set(names) == {"web1", "web2"}, names


def dst_key(world: World, dst: str, src: str) -> str:
    """The host that received a request sent by src to dst."""
    if dst.startswith("127."):
        return src
    return next(k for k in "abc" if world.addr(k) == dst)


# ---------------------------------------------------------------------- changes


def test_no_request_fails_while_backends_come_and_go(world: World) -> None:
    c = world.addr("c")
    mesh = RequestLoop(lambda: world.get("b", c, MESH).strip())
    vip = RequestLoop(lambda: world.get_vip().strip())
    try:
        with mesh, vip:
            for i in range(10):
                gone = ["web1", "web2"][i % 2]
                world.mesh = [b for b in ["web1", "web2"] if b != gone]
                world.backends["web"] = [b for b in ["web1", "web2", "web3"] if b != gone]
                world.publish()
                # from now on, no new connection goes to the backend that left
                after = [world.get("a", c, MESH) for _ in range(5)]
                assert gone not in hostnames(after), (gone, after)
                world.mesh = ["web1", "web2"]
                world.backends["web"] = ["web1", "web2", "web3"]
                world.publish()
    finally:
        world.mesh = ["web1", "web2"]
        world.backends["web"] = ["web1", "web2", "web3"]
        world.publish()
    print(f"\nwhile backends changed: mesh {mesh.ok} ok {dict(mesh.seen)}; VIP {vip.ok} ok")
    assert mesh.failed == [] and vip.failed == [], (mesh.failed[:5], vip.failed[:5])
    assert mesh.ok > 20 and vip.ok > 20
    assert set(mesh.seen) == {"web1", "web2"}


def test_a_backend_added_gets_connections_at_once(world: World) -> None:
    try:
        world.mesh = ["web1"]
        world.publish()
        assert set(hostnames([world.get("b", world.addr("c"), MESH) for _ in range(10)])) == {
            "web1"
        }
        world.mesh = ["web1", "web2"]
        world.publish()
        seen = hostnames([world.get("b", world.addr("c"), MESH) for _ in range(40)])
        assert set(seen) == {"web1", "web2"}, seen
    finally:
        world.mesh = ["web1", "web2"]
        world.publish()


def test_a_restart_keeps_published_ports_and_vips_answering(world: World) -> None:
    before = {k: world.nft(k) for k in "abc"}
    c = world.addr("c")
    mesh = RequestLoop(lambda: world.get("b", c, MESH).strip())
    vip = RequestLoop(lambda: world.get_vip().strip())
    with mesh, vip:
        time.sleep(1.0)
        for node in world.nodes.values():
            node.kill()
        time.sleep(2.0)  # no data plane anywhere meanwhile
        for node in world.nodes.values():
            node.start()
        time.sleep(1.0)
    print(f"\nrestart: mesh {mesh.ok} ok, VIP {vip.ok} ok")
    assert mesh.failed == [] and vip.failed == [], (mesh.failed[:5], vip.failed[:5])
    assert mesh.ok > 10 and vip.ok > 10
    # adopted, not rebuilt: the same rules with the same handles
    after = {k: world.nft(k) for k in "abc"}
    assert after == before


def test_a_service_that_goes_takes_its_rules_with_it(world: World) -> None:
    world.with_none = False
    try:
        world.publish()
        for k in "abc":
            table = world.nft(k)
            assert f"port-tcp-{NOBODY}" not in table and "port-tcp-8080" in table, table
        pid = world.nodes["c"].container_pid("client")
        table = world.nodes["c"].sh(f"nsenter --net=/proc/{pid}/ns/net nft list table ip shoal")
        assert NONE not in table.stdout and WEB in table.stdout, table.stdout
        assert world.refused("b", world.addr("a"), NOBODY) == "ConnectionRefusedError"
    finally:
        world.with_none = True
        world.publish()


# ---------------------------------------------------------------------- the end


def test_teardown_leaves_nothing_of_shoals(world: World) -> None:
    for proc in world.udp:
        proc.kill()
    for node in world.nodes.values():
        names = [b.name for b in BOXES if world.nodes[b.host] is node]
        node.ok("rm", "-f", *names)
        for plan in PLANS:
            node.ok("network", "rm", plan.name)
    for node in world.nodes.values():
        proc = node.teardown()
        assert proc.returncode == 0, proc.stdout + proc.stderr
    for key, node in world.nodes.items():
        ruleset = node.sh("nft list ruleset").stdout
        assert "shoal" not in ruleset, (key, ruleset)
        assert "shoal" not in node.sh("iptables-save").stdout, key
        assert "shoal" not in node.sh("ip -o link").stdout, key
        assert "shoal" not in node.sh("ip netns").stdout, key
