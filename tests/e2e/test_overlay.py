"""Overlay networks across hosts, end to end on a `shoal lab` (1 manager, 2 workers) with the
stock docker CLI: services and plain containers on VXLAN segments, reached by address and by
name from other hosts; isolation; the way out (and none on `--internal`); `--network-add/-rm`;
DNS and forwarding entries following tasks and nodes; nothing left behind. Seed J5 exactly:
`docker run --name web --network my-net` on one host, fetched by name from another."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import docker
import pytest
from support import wait_for
from swarmlab import Lab, lab_up

from shoal.lab import procs

pytestmark = pytest.mark.e2e

NODES = ("m1", "w1", "w2")


@pytest.fixture(scope="module")
def lab(docker_cli: Callable[..., tuple[int, str, str]]) -> Iterator[Lab]:
    yield from lab_up("ov", docker_cli, managers=1, workers=2)


def shoal_netns(lab: Lab, short: str) -> list[str]:
    return [n for n in lab.host(short, "ip", "netns", "list").split() if n.startswith("shoal-")]


def test_services_and_containers_across_hosts(lab: Lab) -> None:
    m1 = lab.cli["m1"]
    m1.ok("network", "create", "-d", "overlay", "--attachable", "app")
    m1.create("web", "--replicas", "2", "--constraint", "node.role==worker",
              "--hostname", "web-{{.Task.Slot}}", "--network", "name=app,alias=site",
              lab.whoami)  # fmt: skip
    wait_for(lambda: len(lab.running("web")) == 2, timeout=60, what="web running", log=m1.log)
    ips = lab.task_ips("web", "app")
    assert len(set(ips.values())) == 2
    # From the manager (no task of web there), by name, tasks. name, alias, address, hostname.
    for url in ("http://web/", "http://tasks.web/", "http://site/",
                *(f"http://{ip}/" for ip in ips.values())):  # fmt: skip
        body = wait_for(lambda url=url: lab.fetch("m1", "app", url), timeout=20,
                        what=f"{url} from m1", log=m1.log)  # fmt: skip
        assert body.startswith("Hostname: web-"), body
    for slot in ("1", "2"):
        body = lab.fetch("m1", "app", f"http://web-{slot}/")
        assert body is not None and body.startswith(f"Hostname: web-{slot}\n"), body
    # `tasks.web` has every task's address.
    rc, out, _ = lab.run("m1", "--network", "app", lab.busybox, "nslookup", "tasks.web")
    assert rc == 0 and set(ips.values()) <= set(out.split()), out
    # Two interfaces inside: the overlay and the gateway bridge, and a way out through it.
    rc, out, _ = lab.run("w1", "--network", "app", lab.busybox, "ip", "-o", "-4", "addr")
    names = {line.split()[1] for line in out.splitlines()}
    assert rc == 0 and names == {"lo", "eth0", "eth1"}, out
    assert lab.fetch("w1", "app", f"http://{lab.registry}/v2/") is not None  # outside


def test_seed_j5_plain_containers_by_name(lab: Lab) -> None:
    """docker run --name=web --net=my-net on host0; wget http://web from host1."""
    lab.cli["m1"].ok("network", "create", "-d", "overlay", "--subnet", "10.0.9.0/24",
                     "--attachable", "my-net")  # fmt: skip
    w1 = lab.cli["w1"]
    w1.ok("run", "-d", "--name", "j5web", "--network", "my-net", lab.whoami)
    try:
        hostname = w1.ok("inspect", "--format", "{{.Config.Hostname}}", "j5web").strip()
        body = wait_for(lambda: lab.fetch("w2", "my-net", "http://j5web/"), timeout=20,
                        what="j5web by name from w2", log=w1.log)  # fmt: skip
        assert body.startswith(f"Hostname: {hostname}"), body
        (net,) = json.loads(lab.cli["w1"].ok("network", "inspect", "my-net"))
        assert net["Scope"] == "swarm" and net["Driver"] == "overlay"
        assert any(c["Name"] == "j5web" and c["IPv4Address"].startswith("10.0.9.")
                   for c in net["Containers"].values())  # fmt: skip
    finally:
        w1.ok("rm", "-f", "j5web")


def test_networks_are_isolated_and_internal_has_no_way_out(lab: Lab) -> None:
    m1 = lab.cli["m1"]
    m1.ok("network", "create", "-d", "overlay", "--attachable", "other")
    m1.ok("network", "create", "-d", "overlay", "--attachable", "--internal", "closed")
    ips = lab.task_ips("web", "app")
    ip = next(iter(ips.values()))
    assert lab.fetch("w2", "other", f"http://{ip}/") is None  # another segment
    rc, out, _ = lab.run("w2", "--network", "other", lab.busybox, "nslookup", "web")
    assert "Address" not in out.split("127.0.0.11")[-1], out  # web is not a name there
    assert lab.fetch("w1", "closed", f"http://{lab.registry}/v2/") is None
    rc, out, _ = lab.run("w1", "--network", "closed", lab.busybox, "ip", "-o", "-4", "addr")
    assert {line.split()[1] for line in out.splitlines()} == {"lo", "eth0"}, out


def test_network_add_and_rm_on_a_running_service(lab: Lab) -> None:
    m1 = lab.cli["m1"]
    rc, out, err = m1.run("service", "update", "--network-add", "other", "web", timeout=120)
    assert rc == 0, err
    wait_for(lambda: len(lab.task_ips("web", "other")) == 2, timeout=60,
             what="web on other", log=m1.log)  # fmt: skip
    assert wait_for(lambda: lab.fetch("w1", "other", "http://web/"), timeout=20,
                    what="web on other by name")  # fmt: skip
    rc, out, err = m1.run("service", "update", "--network-rm", "other", "web", timeout=120)
    assert rc == 0, err
    wait_for(lambda: not lab.task_ips("web", "other") and len(lab.running("web")) == 2,
             timeout=60, what="web off other", log=m1.log)  # fmt: skip
    wait_for(lambda: lab.fetch("w1", "other", "http://web/") is None, timeout=20,
             what="web gone from other's DNS")  # fmt: skip


def test_a_stopped_task_leaves_dns(lab: Lab) -> None:
    m1 = lab.cli["m1"]
    before = set(lab.task_ips("web", "app").values())
    m1.ok("service", "scale", "-d", "web=1")

    def answers() -> set[str]:
        rc, out, _ = lab.run("m1", "--network", "app", lab.busybox, "nslookup", "tasks.web")
        return {w for w in out.split()[4:] if w.count(".") == 3} if rc == 0 else set()

    wait_for(lambda: len(answers()) == 1, timeout=20, what="one address left", log=m1.log)
    assert answers() < before
    m1.ok("service", "scale", "-d", "web=2")
    wait_for(lambda: len(lab.running("web")) == 2, timeout=60, what="web back to 2")


def test_a_killed_task_leaves_dns(lab: Lab) -> None:
    """The task's address goes from `tasks.web` once its container dies (its replacement has
    another: addresses are handed out round the subnet); its own name goes with it."""
    task = lab.task_on("web", "w1")
    ip = lab.task_ips("web", "app")[task["ID"]]
    name = f"web.{task['Slot']}.{task['ID']}"
    assert wait_for(lambda: ip in lab.lookup("app", "tasks.web"), timeout=20, what="in DNS")
    assert lab.lookup("app", name) == {ip}
    t0 = time.monotonic()
    lab.cli["w1"].ok("kill", task["Status"]["ContainerStatus"]["ContainerID"])
    wait_for(lambda: ip not in lab.lookup("app", "tasks.web"), timeout=20, interval=0.05,
             what=f"{ip} out of tasks.web", log=lab.cli["m1"].log)  # fmt: skip
    print(f"a killed task left DNS {time.monotonic() - t0:.2f} s after `docker kill` returned")
    assert not lab.lookup("app", name)
    wait_for(lambda: len(lab.running("web")) == 2, timeout=60, what="web replaced")
    assert wait_for(lambda: lab.wget("app", "http://web/"), timeout=20, what="web again")


def test_a_shoald_restart_keeps_every_containers_connectivity(lab: Lab) -> None:
    """shoald on a worker killed (SIGKILL) and started again: its containers keep their
    interfaces (nothing re-plumbed) and are reached by address while it is away, and by name
    once it is back; its tasks are the same ones."""
    w1 = lab.cli["w1"]
    task = lab.task_on("web", "w1")
    ip = lab.task_ips("web", "app")[task["ID"]]
    cid = task["Status"]["ContainerStatus"]["ContainerID"]
    fmt = '{{.State.StartedAt}} {{(index .NetworkSettings.Networks "app").EndpointID}}'
    before = w1.ok("inspect", "--format", fmt, cid)
    ports = lab.host("w1", "ip", "netns", "exec", lab.netns("app"), "ip", "-o", "link", "show",
                     "master", "br0")  # fmt: skip
    tasks = {r["ID"] for r in lab.running("web")}
    pid = lab.shoald_pid("w1")
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not procs.alive(pid), timeout=10, what="shoald gone")
    assert lab.wget("app", f"http://{ip}/") is not None  # the kernel forwards on its own
    lab.lab("start", lab.node("w1"))
    wait_for(lambda: lab.wget("app", f"http://web-{task['Slot']}/"), timeout=30,
             what="the task by name after the restart", log=w1.log)  # fmt: skip
    assert w1.ok("inspect", "--format", fmt, cid) == before
    assert lab.host("w1", "ip", "netns", "exec", lab.netns("app"), "ip", "-o", "link", "show",
                    "master", "br0") == ports  # fmt: skip
    assert {r["ID"] for r in lab.running("web")} == tasks


def test_a_killed_node_leaves_every_forwarding_table(lab: Lab) -> None:
    """Every process of w2 killed: once the manager marks it down, no other node forwards
    to it; it comes back after a start."""
    m1 = lab.cli["m1"]
    w2 = lab.addr("w2")
    wait_for(lambda: w2 in lab.fdb("m1", "app") and w2 in lab.fdb("w1", "app"), timeout=30,
             what="w2's endpoints in the forwarding tables", log=m1.log)  # fmt: skip
    lab.lab("kill", lab.node("w2"))

    def down() -> bool:
        state = m1.ok("node", "inspect", "--format", "{{.Status.State}}", lab.node("w2"))
        return state.strip() == "down"

    wait_for(down, timeout=60, interval=0.05, what="w2 down", log=m1.log)
    t_down = time.monotonic()
    for short in ("m1", "w1"):
        wait_for(lambda short=short: w2 not in lab.fdb(short, "app"), timeout=20,
                 interval=0.05, what=f"w2 out of {short}'s forwarding table")  # fmt: skip
    print(f"a killed node left the forwarding tables {time.monotonic() - t_down:.2f} s after "
          "`docker node inspect` first said down")  # fmt: skip
    assert wait_for(lambda: lab.wget("app", "http://web/"), timeout=60, what="web on w1")
    lab.lab("start", lab.node("w2"))
    wait_for(lambda: not down(), timeout=60, what="w2 back", log=m1.log)
    wait_for(lambda: len(lab.running("web")) == 2, timeout=60, what="web at 2")


def test_docker_py_network_calls(lab: Lab) -> None:
    client = docker.DockerClient(base_url=lab.cli["m1"].host)
    ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet="10.0.77.0/24")])
    net = client.networks.create("pynet", driver="overlay", attachable=True, ipam=ipam,
                                 labels={"team": "py"})  # fmt: skip
    try:
        assert [n.id for n in client.networks.list(names=["pynet"])] == [net.id]
        assert client.networks.list(filters={"label": "team=py"})[0].name == "pynet"
        got = client.networks.get("pynet")
        assert got.attrs["Scope"] == "swarm" and got.attrs["Attachable"] is True
        assert got.attrs["IPAM"]["Config"][0]["Subnet"] == "10.0.77.0/24"
        service = client.services.create(lab.whoami, name="pyweb", networks=["pynet"])
        wait_for(lambda: len(lab.running("pyweb")) == 1, timeout=60, what="pyweb running")
        (task,) = service.tasks(filters={"desired-state": "running"})
        (attachment,) = task["NetworksAttachments"]
        assert attachment["Addresses"][0].startswith("10.0.77.")
        body = client.containers.run(lab.busybox, ["wget", "-qO-", "http://pyweb/"],
                                     network="pynet", remove=True)  # fmt: skip
        assert body.startswith(b"Hostname: ")
        with pytest.raises(docker.errors.APIError) as busy:
            net.remove()
        assert "is in use" in str(busy.value)
        service.remove()
        wait_for(lambda: _removed(net), timeout=30, what="pynet removed")
        assert client.networks.list(names=["pynet"]) == []
    finally:
        client.close()


def _removed(net: Any) -> bool:
    try:
        net.remove()
        return True
    except docker.errors.APIError:
        return False


def test_bad_input(lab: Lab) -> None:
    """Docker's answers, and nothing half-made."""
    m1 = lab.cli["m1"]
    before = m1.ok("network", "ls", "--format", "{{.ID}} {{.Name}}")
    m1.ok("network", "create", "-d", "overlay", "--subnet", "10.0.88.0/24", "bad-base")
    cases = [
        (("--subnet", "10.0.88.128/25", "x1"), "Pool overlaps with other one on this address"),
        (("--subnet", "10.0.89.0/24", "--gateway", "10.0.90.1", "x2"),
         "no matching subnet for gateway 10.0.90.1"),  # the CLI's own check
        (("--opt", "encrypted", "x3"), "encrypted overlay networks are not supported here"),
        (("bad-base",), "network with name bad-base already exists"),
    ]  # fmt: skip
    for args, message in cases:
        rc, _, err = m1.run("network", "create", "-d", "overlay", *args)
        assert rc != 0 and message in err, (args, err)
    rc, _, err = m1.run("service", "create", "-d", "--name", "nowhere", "--network", "nowhere",
                        lab.whoami)  # fmt: skip
    assert rc != 0 and "network nowhere not found" in err, err
    m1.create("closed-user", "--constraint", f"node.hostname=={lab.node('w1')}",
              "--network", "bad-base", lab.whoami)  # fmt: skip
    wait_for(lambda: lab.running("closed-user"), timeout=60, what="closed-user running")
    denied = (
        "Could not attach to network bad-base: rpc error: code = PermissionDenied desc = "
        "network bad-base not manually attachable"
    )
    for short in ("m1", "w1"):  # m1: no task on it; w1: the engine has it for the task
        rc, _, err = lab.run(short, "--network", "bad-base", lab.busybox, "true")
        assert rc != 0 and denied in err, (short, err)
    rc, _, err = m1.run("network", "rm", "bad-base")
    assert rc != 0 and "network bad-base is in use by service" in err, err
    m1.rm("closed-user")
    wait_for(lambda: m1.run("network", "rm", "bad-base")[0] == 0, timeout=30,
             what="bad-base removed", log=m1.log)  # fmt: skip
    assert m1.ok("network", "ls", "--format", "{{.ID}} {{.Name}}") == before


def test_removal_leaves_nothing_on_any_host(lab: Lab) -> None:
    m1 = lab.cli["m1"]
    before = {s: shoal_netns(lab, s) for s in NODES}
    assert any(before.values())
    m1.rm("web")
    m1.ok("rm", "-f", "probe-app")
    for net in ("app", "other", "closed", "my-net"):
        wait_for(lambda net=net: m1.run("network", "rm", net)[0] == 0, timeout=30,
                 what=f"network {net} removed", log=m1.log)  # fmt: skip
    ingress = "shoal-" + m1.ok("network", "inspect", "-f", "{{.ID}}", "ingress").strip()[:12]
    for s in NODES:
        # the ingress network stays (the routing mesh), and nothing else of shoal's
        wait_for(lambda s=s: shoal_netns(lab, s) == [ingress], timeout=20,
                 what=f"only the ingress namespace on {s}", log=lab.cli[s].log)  # fmt: skip
        links = [x for x in lab.host(s, "ip", "-o", "link").splitlines() if "shoal" in x]
        assert len(links) == 1 and ": shoal-ingress@" in links[0], links
        names = lab.cli[s].ok("network", "ls", "--format", "{{.Name}} {{.Driver}}").splitlines()
        assert [n for n in names if n.split()[1] in ("overlay", "shoal")] == ["ingress overlay"]
    time.sleep(0.1)
