"""A `shoal lab` swarm for end-to-end tests: the docker CLI of every node, its shoald log,
commands and HTTP requests on the lab hosts, and what the tests ask of services and networks."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from support import Cli, lab_cli

from shoal.lab.lab import Lab as LabState
from shoal.lab.state import load


def lab_up(
    prefix: str,
    docker_cli: Callable[..., tuple[int, str, str]],
    managers: int,
    workers: int,
    *options: str,
) -> Iterator[Lab]:
    """A fresh lab of `managers` + `workers` (named `<prefix><random>`; more `shoal lab up`
    options) for a module's tests, removed afterwards, whatever happened (`yield from` it in a
    module-scoped fixture)."""
    name = prefix + secrets.token_hex(3)
    nodes = [f"m{i}" for i in range(1, managers + 1)] + [f"w{i}" for i in range(1, workers + 1)]
    try:
        up = lab_cli("up", "--name", name, "--managers", str(managers), "--workers", str(workers),
                     *options)  # fmt: skip
        assert up.returncode == 0, f"up failed:\n{up.stdout}\n{up.stderr}"
        yield Lab(name, docker_cli, nodes)
    finally:
        down = lab_cli("down", "--name", name)
        assert down.returncode == 0, down.stderr


class Lab:
    def __init__(
        self, name: str, docker_cli: Callable[..., tuple[int, str, str]], nodes: Iterable[str]
    ) -> None:
        self.name = name
        self.nodes = tuple(nodes)
        self.cli = {s: Cli(docker_cli, self._env(s), lambda s=s: self.log(s)) for s in self.nodes}
        self.hosts = LabState(load(name))
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

    def http(self, short: str, port: int, path: str = "/", to: str = "127.0.0.1") -> str:
        """GET http://to:port/path from inside lab host `short`; the body (200 only)."""
        status, body = self.hosts.node(self.node(short)).host.http_get(port, path, host=to)
        assert status == 200, (short, to, port, status, body)
        return body

    def run(self, short: str, *args: str, timeout: float = 60) -> tuple[int, str, str]:
        """`docker run --rm --init ARGS` through that node's shoald (with an init, busybox's
        `timeout` can stop what it runs: nothing is PID 1 but the init)."""
        return self.cli[short].run("run", "--rm", "--init", *args, timeout=timeout)

    def fetch(self, short: str, network: str, url: str) -> str | None:
        rc, out, _ = self.run(short, "--network", network, self.busybox,
                              "timeout", "10", "wget", "-qO-", url)  # fmt: skip
        return out if rc == 0 else None

    def shoald_pid(self, short: str) -> int:
        state = json.loads(open(f"/var/lib/shoal-lab/{self.name}/lab.json").read())
        pid: int = state["nodes"][self.node(short)]["shoald_pid"]
        return pid

    def addr(self, short: str) -> str:
        return self.lab("ip", self.node(short)).strip()

    def netns(self, network: str) -> str:
        """The namespace of a swarm network on every node (`shoal-<ID prefix>`)."""
        net_id = self.cli["m1"].ok("network", "inspect", "--format", "{{.Id}}", network).strip()
        return f"shoal-{net_id[:12]}"

    def fdb(self, short: str, network: str) -> set[str]:
        """The node addresses in `short`'s forwarding entries of `network`'s VXLAN device."""
        out = self.host(short, "ip", "netns", "exec", self.netns(network),
                        "bridge", "fdb", "show", "dev", "vxlan0")  # fmt: skip
        return {line.split(" dst ")[1].split()[0] for line in out.splitlines() if " dst " in line}

    def probe(self, network: str) -> str:
        """A long-running container on m1 on `network`, to ask from (`docker exec`)."""
        name = f"probe-{network}"
        if self.cli["m1"].run("inspect", name)[0] != 0:
            self.cli["m1"].ok("run", "-d", "--init", "--name", name, "--network", network,
                              self.busybox, "sleep", "3600")  # fmt: skip
        return name

    def lookup(self, network: str, name: str) -> set[str]:
        """The addresses `name` resolves to on `network`, asked from m1's probe."""
        rc, out, _ = self.cli["m1"].run("exec", self.probe(network), "nslookup", name)
        answer = out.split("Name:", 1)[1] if rc == 0 and "Name:" in out else ""
        return {line.split()[-1] for line in answer.splitlines() if line.startswith("Address")}

    def wget(self, network: str, url: str) -> str | None:
        """`url` fetched from m1's probe."""
        rc, out, _ = self.cli["m1"].run("exec", self.probe(network),
                                        "timeout", "5", "wget", "-qO-", url)  # fmt: skip
        return out if rc == 0 else None

    def task_on(self, service: str, short: str) -> dict[str, Any]:
        """`docker inspect` of a running task of `service` on node `short`."""
        row = next(r for r in self.running(service) if r["Node"] == self.node(short))
        task: dict[str, Any] = json.loads(self.cli["m1"].ok("inspect", row["ID"]))[0]
        return task

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
