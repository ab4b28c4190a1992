"""Service VIPs and the routing mesh, end to end on a `shoal lab` (1 manager, 3 workers) with
the stock docker CLI: a service's name is its VIP and balances over its tasks on every host;
a published port answers on every node, the manager (which runs no task) included, from
other hosts and from the node itself; ports added and removed by `service update`; no
request lost while the service is updated and scaled; a dead node's tasks out of rotation;
the client's address kept on a `shoal.publish.local` port; a shoald restart that changes
nothing; nothing left on a node that leaves. Seed J3: `--publish 8080:80` with 3 replicas,
then `curl` on any node."""

from __future__ import annotations

import collections
import os
import re
import secrets
import signal
import time
import urllib.request
from collections.abc import Callable, Iterator

import pytest
from support import RequestLoop, lab_cli, wait_for
from swarmlab import Lab

from shoal.lab import procs

pytestmark = pytest.mark.e2e

NODES = ("m1", "w1", "w2", "w3")
WORKERS = ("w1", "w2", "w3")
PORT, ADDED, LOCAL = 8080, 8081, 8090


@pytest.fixture(scope="module")
def lab(docker_cli: Callable[..., tuple[int, str, str]]) -> Iterator[Lab]:
    name = "mesh" + secrets.token_hex(3)
    try:
        up = lab_cli("up", "--name", name, "--managers", "1", "--workers", "3")
        assert up.returncode == 0, f"up failed:\n{up.stdout}\n{up.stderr}"
        lab = Lab(name, docker_cli, NODES)
        m1 = lab.cli["m1"]
        m1.ok("network", "create", "-d", "overlay", "--attachable", "app")
        m1.converge("web", "--replicas", "3", "--constraint", "node.role==worker",
                    "--placement-pref", "spread=node.id", "--network", "app",
                    "--publish", f"{PORT}:80", lab.whoami)  # fmt: skip
        yield lab
    finally:
        down = lab_cli("down", "--name", name)
        assert down.returncode == 0, down.stderr


def get(url: str, timeout: float = 5.0) -> str:
    """From the test's own host (outside the lab hosts), a new connection each time."""
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        body: str = resp.read().decode()
        return body


def hostname(body: str) -> str:
    found = re.search(r"^Hostname: (\S+)$", body, re.M)
    assert found, body
    return found.group(1)


def remote_addr(body: str) -> str:
    found = re.search(r"^RemoteAddr: ([\d.]+)(:\d+)?$", body, re.M)
    assert found, body
    return found.group(1)


def task_hostnames(lab: Lab, service: str) -> set[str]:
    """The container IDs (whoami's hostname) of the service's running tasks, short."""
    out = set()
    for row in lab.running(service):
        task = lab.task_on(service, row["Node"].removeprefix(f"{lab.name}-"))
        out.add(task["Status"]["ContainerStatus"]["ContainerID"][:12])
    return out


def host_table(lab: Lab, short: str) -> str:
    return lab.host(short, "nft", "list", "table", "ip", "shoal")


def test_the_service_name_is_its_vip_and_balances(lab: Lab) -> None:
    m1 = lab.cli["m1"]
    vips = m1.ok("service", "inspect", "--format",
                 "{{range .Endpoint.VirtualIPs}}{{.Addr}} {{end}}", "web").split()  # fmt: skip
    app_vip = next(v.split("/")[0] for v in vips if not v.startswith("10.0.0."))
    assert lab.lookup("app", "web") == {app_vip}
    assert lab.lookup("app", "tasks.web") == set(lab.task_ips("web", "app").values())
    loop = "for i in $(seq 300); do timeout 5 wget -qO- http://web/; done"
    rc, out, err = m1.run("exec", lab.probe("app"), "sh", "-c", loop)
    assert rc == 0, err
    counts = collections.Counter(re.findall(r"^Hostname: (\S+)$", out, re.M))
    print(f"\nVIP from m1 (no task there): 300 requests → {dict(counts)}")
    assert sum(counts.values()) == 300 and set(counts) == task_hostnames(lab, "web"), counts
    assert all(n >= 60 for n in counts.values()), counts  # every task ≥ 20 %


def test_a_published_port_answers_on_every_node(lab: Lab) -> None:
    expected = task_hostnames(lab, "web")
    seen: collections.Counter[str] = collections.Counter()
    for short in NODES:  # m1 runs no task of web
        addr = lab.addr(short)
        for _ in range(10):
            seen[hostname(get(f"http://{addr}:{PORT}/"))] += 1
        seen[hostname(lab.http(short, PORT))] += 1  # the node itself, on its loopback
        seen[hostname(lab.http("w1", PORT, to=addr))] += 1  # from another node
    print(f"\nmesh: {dict(seen)}")
    assert set(seen) == expected, seen
    # the mesh hides the client: a task sees the ingress address of the node it came through
    seen_from = remote_addr(get(f"http://{lab.addr('m1')}:{PORT}/cgi-bin/whoami"))
    assert seen_from.startswith("10.0.0."), seen_from


def test_publish_add_and_rm(lab: Lab) -> None:
    m1 = lab.cli["m1"]
    m1.ok("service", "update", "--publish-add", f"{ADDED}:80", "web")
    for short in NODES:
        addr = lab.addr(short)
        wait_for(lambda addr=addr: get(f"http://{addr}:{ADDED}/"), timeout=20,
                 what=f"{ADDED} on {short}", log=m1.log)  # fmt: skip
    assert m1.service_row("web")["Ports"] == f"*:{PORT}-{ADDED}->80/tcp"  # the CLI's range
    m1.ok("service", "update", "--publish-rm", "80", "web")  # by target port: both go
    for short in NODES:
        for port in (PORT, ADDED):
            chain = f"port-tcp-{port}"
            wait_for(lambda short=short, chain=chain: chain not in host_table(lab, short),
                     timeout=20, what=f"{port} gone from {short}")  # fmt: skip
            with pytest.raises(OSError):
                get(f"http://{lab.addr(short)}:{port}/", timeout=3)
    m1.ok("service", "update", "--publish-add", f"{PORT}:80", "web")
    for short in NODES:
        addr = lab.addr(short)
        wait_for(lambda addr=addr: get(f"http://{addr}:{PORT}/"), timeout=20,
                 what=f"{PORT} on {short} again", log=m1.log)  # fmt: skip


def test_no_request_fails_while_the_service_is_updated_and_scaled(lab: Lab) -> None:
    m1 = lab.cli["m1"]
    m1_addr = lab.addr("m1")
    with RequestLoop(lambda: hostname(get(f"http://{m1_addr}:{PORT}/")), 0.01) as mesh:
        m1.ok("service", "update", "--force", "--update-parallelism", "1",
              "--update-delay", "0s", "--update-monitor", "1s", "web")  # fmt: skip
        m1.ok("service", "scale", "web=6")
        m1.ok("service", "scale", "web=1")
        m1.ok("service", "scale", "web=3")
        time.sleep(0.5)
    print(f"\nrolling update, scale 3→6→1→3 under load: {mesh.ok} requests, "
          f"{len(mesh.failed)} failed, over {len(mesh.seen)} tasks")  # fmt: skip
    assert mesh.failed == [], mesh.failed[:5]
    assert mesh.ok > 50 and len(mesh.seen) > 3, mesh.seen


def test_a_local_port_keeps_the_client_address(lab: Lab) -> None:
    """Label `shoal.publish.local=<port>`: that port goes only to tasks on the node that got
    the connection, and they see the client's own address (no masquerade)."""
    m1 = lab.cli["m1"]
    m1.converge("edge", "--mode", "global", "--constraint", "node.role==worker",
                "--label", f"shoal.publish.local={LOCAL}",
                "--publish", f"{LOCAL}:80", lab.whoami)  # fmt: skip
    try:
        for short in WORKERS:
            addr = lab.addr(short)
            body = wait_for(lambda addr=addr: get(f"http://{addr}:{LOCAL}/cgi-bin/whoami"),
                            timeout=20, what=f"{LOCAL} on {short}")  # fmt: skip
            mine = lab.task_on("edge", short)["Status"]["ContainerStatus"]["ContainerID"][:12]
            for _ in range(5):
                body = get(f"http://{addr}:{LOCAL}/cgi-bin/whoami")
                assert hostname(body) == mine, body  # only the node's own task
                assert not remote_addr(body).startswith("10.0.0."), body  # the client's own
            # from the node itself, on loopback too
            assert hostname(lab.http(short, LOCAL)) == mine
        with pytest.raises(OSError):  # the manager has no task of edge: nothing to answer
            get(f"http://{lab.addr('m1')}:{LOCAL}/", timeout=3)
    finally:
        m1.rm("edge")
    for short in NODES:  # the service gone: its port is gone from every node
        wait_for(lambda short=short: f"port-tcp-{LOCAL}" not in host_table(lab, short),
                 timeout=20, what=f"{LOCAL} gone from {short}")  # fmt: skip


def test_a_shoald_restart_keeps_the_ports_answering(lab: Lab) -> None:
    def dispatch() -> str:  # the host table's base chain, with its rule handles
        return lab.host("w1", "nft", "-a", "list", "chain", "ip", "shoal", "prerouting")

    before = dispatch()
    tasks = {r["ID"] for r in lab.running("web")}
    w1 = lab.addr("w1")
    with RequestLoop(lambda: hostname(get(f"http://{w1}:{PORT}/")), 0.01) as mesh:
        time.sleep(0.5)
        pid = lab.shoald_pid("w1")
        os.kill(pid, signal.SIGTERM)  # a restart: shoald tells the manager it comes back
        wait_for(lambda: not procs.alive(pid), timeout=10, what="shoald gone")
        time.sleep(1.0)  # no shoald on w1 meanwhile
        lab.lab("start", lab.node("w1"))
        wait_for(lambda: lab.cli["w1"].run("info")[0] == 0, timeout=30, what="w1's shoald")
        time.sleep(2.0)
    print(f"\nshoald restart on w1 under load: {mesh.ok} requests, {len(mesh.failed)} failed")
    assert mesh.failed == [], mesh.failed[:5]
    assert dispatch() == before  # adopted as it was, not rebuilt
    assert {r["ID"] for r in lab.running("web")} == tasks  # the node stayed up: no task moved


def test_a_dead_node_leaves_the_rotation(lab: Lab) -> None:
    m1 = lab.cli["m1"]
    dead_ip = lab.task_ips("web", "ingress")[lab.task_on("web", "w3")["ID"]]
    lab.lab("kill", lab.node("w3"))

    def down() -> bool:
        state = m1.ok("node", "inspect", "--format", "{{.Status.State}}", lab.node("w3"))
        return state.strip() == "down"

    wait_for(down, timeout=60, interval=0.05, what="w3 down", log=m1.log)
    t_down = time.monotonic()
    for short in ("m1", "w1", "w2"):
        wait_for(lambda short=short: dead_ip not in host_table(lab, short), timeout=20,
                 interval=0.05, what=f"w3's task out of {short}'s rotation")  # fmt: skip
    print(f"\na dead node's task left every rotation {time.monotonic() - t_down:.2f} s after "
          "`docker node inspect` first said down")  # fmt: skip
    bodies = [get(f"http://{lab.addr('m1')}:{PORT}/") for _ in range(30)]
    assert len(bodies) == 30


def test_a_node_that_leaves_keeps_nothing(lab: Lab) -> None:
    w2 = lab.cli["w2"]
    assert "shoal routing mesh" in lab.host("w2", "iptables-save")
    w2.ok("swarm", "leave", "--force")
    assert "table ip shoal" not in lab.host("w2", "nft", "list", "tables")
    assert "shoal" not in lab.host("w2", "iptables-save")
    assert "shoal" not in lab.host("w2", "ip", "-o", "link")
    assert "shoal-" not in lab.host("w2", "ip", "netns", "list")
