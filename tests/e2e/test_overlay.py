"""Overlay networks across hosts, end to end on a `shoal lab` (1 manager, 2 workers) with the
stock docker CLI: services and plain containers on VXLAN segments, reached by address and by
name from other hosts; isolation; the way out (and none on `--internal`); `--network-add/-rm`;
DNS and forwarding entries following tasks and nodes; nothing left behind. Seed J5 exactly:
`docker run --name web --network my-net` on one host, fetched by name from another."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from support import Cli, lab_cli, wait_for

pytestmark = pytest.mark.e2e

NODES = ("m1", "w1", "w2")


class Lab:
    def __init__(self, name: str, docker_cli: Callable[..., tuple[int, str, str]]) -> None:
        self.name = name
        self.cli = {s: Cli(docker_cli, self._env(s), lambda s=s: self.log(s)) for s in NODES}
        self.registry = self.lab("registry", "--name", name).strip()
        self.whoami = f"{self.registry}/shoal-lab/whoami:1"
        self.busybox = f"{self.registry}/shoal-lab/busybox:1"

    def lab(self, *args: str) -> str:
        proc = lab_cli(*args)
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
        return proc.stdout

    def node(self, short: str) -> str:
        return f"{self.name}-{short}"

    def _env(self, short: str) -> str:
        return self.lab("env", self.node(short)).strip().split("=", 1)[1]

    def log(self, short: str) -> str:
        proc = lab_cli("exec", self.node(short), "--", "tail", "-n", "40",
                       f"/var/lib/shoal-lab/{self.name}/{self.node(short)}/shoald.log")  # fmt: skip
        return proc.stdout

    def host(self, short: str, *cmd: str) -> str:
        """A command on the lab host itself (its namespaces)."""
        proc = lab_cli("exec", self.node(short), "--", *cmd)
        return proc.stdout

    def run(self, short: str, *args: str, timeout: float = 60) -> tuple[int, str, str]:
        """`docker run --rm --init ARGS` through that node's shoald (with an init, busybox's
        `timeout` can stop what it runs: nothing is PID 1 but the init)."""
        return self.cli[short].run("run", "--rm", "--init", *args, timeout=timeout)

    def fetch(self, short: str, network: str, url: str) -> str | None:
        rc, out, _ = self.run(short, "--network", network, self.busybox,
                              "timeout", "10", "wget", "-qO-", url)  # fmt: skip
        return out if rc == 0 else None

    def running(self, service: str) -> list[dict[str, Any]]:
        rows = self.cli["m1"].tasks(service, "--filter", "desired-state=running")
        return [r for r in rows if r["State"] == "Running"]

    def task_ips(self, service: str, network: str) -> dict[str, str]:
        """Task ID → address on `network` (from `docker inspect` of the tasks)."""
        out = {}
        for row in self.running(service):
            task = json.loads(self.cli["m1"].ok("inspect", row["ID"]))[0]
            for att in task.get("NetworksAttachments") or []:
                if att["Network"]["Spec"]["Name"] == network:
                    out[task["ID"]] = att["Addresses"][0].split("/")[0]
        return out


@pytest.fixture(scope="module")
def lab(docker_cli: Callable[..., tuple[int, str, str]]) -> Iterator[Lab]:
    name = "ov" + secrets.token_hex(3)
    try:
        up = lab_cli("up", "--name", name, "--managers", "1", "--workers", "2")
        assert up.returncode == 0, f"up failed:\n{up.stdout}\n{up.stderr}"
        yield Lab(name, docker_cli)
    finally:
        down = lab_cli("down", "--name", name)
        assert down.returncode == 0, down.stderr


def shoal_netns(lab: Lab, short: str) -> list[str]:
    return [n for n in lab.host(short, "ip", "netns", "list").split() if n.startswith("shoal-")]


def test_services_and_containers_across_hosts(lab: Lab) -> None:
    m1 = lab.cli["m1"]
    m1.ok("network", "create", "-d", "overlay", "--attachable", "app")
    m1.create("web", "--replicas", "2", "--constraint", "node.role==worker",
              "--network", "name=app,alias=site", lab.whoami)  # fmt: skip
    wait_for(lambda: len(lab.running("web")) == 2, timeout=60, what="web running", log=m1.log)
    ips = lab.task_ips("web", "app")
    assert len(set(ips.values())) == 2
    # From the manager (no task of web there), by name, tasks. name, alias, address.
    for url in ("http://web/", "http://tasks.web/", "http://site/",
                *(f"http://{ip}/" for ip in ips.values())):  # fmt: skip
        body = wait_for(lambda url=url: lab.fetch("m1", "app", url), timeout=20,
                        what=f"{url} from m1", log=m1.log)  # fmt: skip
        assert body.startswith("Hostname: "), body
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


def test_removal_leaves_nothing_on_any_host(lab: Lab) -> None:
    m1 = lab.cli["m1"]
    before = {s: shoal_netns(lab, s) for s in NODES}
    assert any(before.values())
    m1.rm("web")
    for net in ("app", "other", "closed", "my-net"):
        wait_for(lambda net=net: m1.run("network", "rm", net)[0] == 0, timeout=30,
                 what=f"network {net} removed", log=m1.log)  # fmt: skip
    for s in NODES:
        wait_for(lambda s=s: not shoal_netns(lab, s), timeout=20,
                 what=f"no shoal namespace on {s}", log=lab.cli[s].log)  # fmt: skip
        links = lab.host(s, "ip", "-o", "link")
        assert "shoal" not in links, links
        names = lab.cli[s].ok("network", "ls", "--format", "{{.Driver}}").split()
        assert "overlay" not in names and "shoal" not in names
    time.sleep(0.1)
