"""`docker stack deploy` scenarios whose objects shoal must answer as Docker's swarm mode does.

One list, imported by ``scripts/capture-docker-stacks`` (which runs it against Docker's own
swarm mode on a fresh isolated engine and writes ``tests/fixtures/docker-stacks/<name>.json``)
and by ``tests/e2e/test_stack_exact.py`` (which runs it against a one-node shoal swarm and
compares), in the manner of ``docker_scenarios`` / ``docker_objects``.

A scenario: setup commands (an external network, an external secret, a service holding a
port), then one ``docker stack deploy -c FILE STACK`` with the compose files of
``tests/fixtures/stacks/`` (the CLI runs there, ``DOCKER_API_VERSION`` pinned to 1.41), then,
once the stack's tasks settled, **recorded**:

* ``deploy`` — how the deploy ended: exit status, stdout with its lines sorted (the CLI creates
  services in Go map order, a new one each run), stderr's lines sorted (the same);
* ``left`` — the names of what carries the stack's label afterwards: services, networks,
  secrets, configs (what a failed deploy left behind);
* ``services`` — ``GET /services/{id}?insertDefaults=false`` (``docker service inspect``) of
  each of the stack's services, by name; ``networks`` — ``GET /networks/{id}`` (``docker
  network inspect``) of each network the stack made, then of the external ones; ``secrets``
  and ``configs`` — ``GET /secrets|configs/{id}`` of the stack's;
* ``task_errors`` (scenarios whose tasks must fail) — per service, the ``Status.State`` and
  ``Status.Err`` of its first task with an error (``Err``);
* ``redeploy`` — the same deploy run again, and whether that touched any task (``tasks_kept``);
* ``rm`` — ``docker stack rm STACK``: exit status and sorted stdout, then ``left`` again
  (``left_after_rm``).

**Masking**: ``docker_objects.mask`` (IDs, times, addresses), with the identities of this
stack named: ``<service-id-NAME>``, ``<network-id-NAME>``, ``<secret-id-NAME>``,
``<config-id-NAME>``; subnets and gateways of Docker's default address pool (``10.0.N.…``,
chosen in creation order) become ``<pool-subnet:str>``; a network's ``Containers`` becomes the
sorted list of its endpoints' ``Name``, Docker's load balancer's (``<network>-endpoint``) taken
out as ``LoadBalancerEndpoint``; ``Peers`` entries' ``Name``/``IP`` are masked, and so
is the VXLAN ID (``vxlanid_list``: the CLI creates the networks in Go map order too).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from docker_objects import API_VERSION, ScenarioError, _mask, get

STACKS = Path(__file__).resolve().parents[1] / "fixtures" / "stacks"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "docker-stacks"
NS = "com.docker.stack.namespace"
IDLE = "trap 'exit 0' TERM; while :; do sleep 0.2; done"


@dataclass(frozen=True)
class StackScenario:
    name: str
    stack: str
    files: tuple[str, ...]
    setup: tuple[tuple[str, ...], ...] = ()  # docker CLI commands run first (stdin: "x")
    teardown: tuple[tuple[str, ...], ...] = ()  # and after (best effort)
    task_errors: bool = False  # wait for and record failed tasks
    redeploy: bool = False
    about: str = ""

    @property
    def commands(self) -> list[list[str]]:
        deploy = ["docker", "stack", "deploy"]
        for f in self.files:
            deploy += ["-c", f]
        return [["docker", *c] for c in self.setup] + [[*deploy, self.stack]]


SCENARIOS: tuple[StackScenario, ...] = (
    StackScenario(
        "stack-full",
        "fx",
        ("full.yml",),
        setup=(
            ("network", "create", "-d", "overlay", "--attachable", "fx-outside"),
            ("secret", "create", "fx-outer-secret", "-"),
        ),
        teardown=(("network", "rm", "fx-outside"), ("secret", "rm", "fx-outer-secret")),
        redeploy=True,
        about="every field the docker CLI converts, in five services (replicated, global dnsrr, "
        "replicated-job, global-job, a plain one), three networks and an external one, secrets "
        "and configs (one a golang template), an external secret",
    ),
    StackScenario(
        "stack-bad-network",
        "fxn",
        ("bad-network.yml",),
        about="a service on an external network that does not exist",
    ),
    StackScenario(
        "stack-bad-secret",
        "fxs",
        ("bad-secret.yml",),
        about="a service using an external secret that does not exist",
    ),
    StackScenario(
        "stack-bad-volume-driver",
        "fxv",
        ("bad-volume-driver.yml",),
        task_errors=True,
        about="a named volume of a volume driver the engine does not have",
    ),
    StackScenario(
        "stack-encrypted",
        "fxe",
        ("encrypted.yml",),
        about="a network with driver_opts encrypted (IPsec)",
    ),
    StackScenario(
        "stack-port-conflict",
        "fxp",
        ("port-conflict.yml",),
        setup=(
            (
                "service",
                "create",
                "-d",
                "--name",
                "fx-taken",
                "--publish",
                "8090:80",
                "shoal-test/busybox:1",
                "sh",
                "-c",
                IDLE,
            ),
        ),  # fmt: skip
        teardown=(("service", "rm", "fx-taken"),),
        about="a service publishing a port a service outside the stack holds: the network and "
        "the secret are created, the service is not",
    ),
)
BY_NAME = {s.name: s for s in SCENARIOS}


# --------------------------------------------------------------------------- running


def cli(host: str, args: list[str] | tuple[str, ...], binary: str | None = None,
        input: str = "x") -> subprocess.CompletedProcess[str]:  # fmt: skip
    env = dict(os.environ, DOCKER_HOST=host, DOCKER_API_VERSION=API_VERSION)
    for var in ("DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"):
        env.pop(var, None)
    return subprocess.run(
        [binary or os.environ.get("SHOAL_TEST_DOCKER_CLI", "docker"), *args], env=env,
        input=input, capture_output=True, text=True, timeout=120, cwd=STACKS,
    )  # fmt: skip


def _label_filter(stack: str) -> str:
    return urllib.parse.quote(json.dumps({"label": {f"{NS}={stack}": True}}))


def stack_objects(host: str, stack: str) -> dict[str, list[dict[str, Any]]]:
    """kind → the objects labelled with the stack, sorted by name."""
    found = {}
    for kind in ("services", "networks", "secrets", "configs"):
        objs = get(host, f"/{kind}?filters={_label_filter(stack)}")
        found[kind] = sorted(objs, key=lambda o: o.get("Name") or o["Spec"]["Name"])
    return found


def left(host: str, stack: str) -> dict[str, list[str]]:
    return {
        kind: [o.get("Name") or o["Spec"]["Name"] for o in objs]
        for kind, objs in stack_objects(host, stack).items()
    }


def stack_tasks(host: str, stack: str) -> list[dict[str, Any]]:
    tasks: list[dict[str, Any]] = get(host, f"/tasks?filters={_label_filter(stack)}")
    return tasks


TERMINAL = {"complete", "failed", "rejected", "shutdown", "orphaned", "remove"}


def settled(tasks: list[dict[str, Any]], want_failure: bool) -> bool:
    states = [
        ((t.get("Status") or {}).get("State"), (t.get("Status") or {}).get("Err")) for t in tasks
    ]
    if want_failure:
        return any(s in ("failed", "rejected") or err for s, err in states)
    return all(s in ("running", *TERMINAL) or (s == "pending" and err) for s, err in states)


def wait_settled(host: str, stack: str, want_failure: bool, timeout: float) -> str | None:
    deadline = time.monotonic() + timeout
    while True:
        tasks = stack_tasks(host, stack)
        if settled(tasks, want_failure):
            break
        if time.monotonic() > deadline:
            states = sorted(str((t.get("Status") or {}).get("State")) for t in tasks)
            return f"{stack}: tasks not settled after {timeout:.0f}s: {states}"
        time.sleep(0.3)
    time.sleep(1.0)  # let the allocator and the agents' last writes land
    return None


def tasks_by_service(host: str, stack: str) -> dict[str, set[str]]:
    names = {s["ID"]: s["Spec"]["Name"] for s in stack_objects(host, stack)["services"]}
    found: dict[str, set[str]] = {n: set() for n in names.values()}
    for t in stack_tasks(host, stack):
        found[names.get(t["ServiceID"], "?")] = found.get(names.get(t["ServiceID"], "?"), set()) | {
            t["ID"]
        }
    return found


def ended(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    return {
        "exit_status": proc.returncode,
        "stdout": sorted(proc.stdout.splitlines()),
        "stderr": sorted(proc.stderr.splitlines()),
    }


def task_errors(host: str, stack: str, services: list[dict[str, Any]]) -> dict[str, Any]:
    by_service: dict[str, list[dict[str, Any]]] = {}
    for t in stack_tasks(host, stack):
        by_service.setdefault(t["ServiceID"], []).append(t)
    found = {}
    for s in services:
        failed = [t for t in by_service.get(s["ID"], []) if (t.get("Status") or {}).get("Err")]
        failed.sort(key=lambda t: t.get("CreatedAt", ""))
        if failed:
            status = failed[0]["Status"]
            found[s["Spec"]["Name"]] = {"State": status.get("State"), "Err": status.get("Err")}
    return found


def run(host: str, scenario: StackScenario, binary: str | None = None,
        timeout: float = 60.0) -> tuple[dict[str, Any], list[str]]:  # fmt: skip
    """Run the scenario against host: (raw recording, problems)."""
    problems: list[str] = []
    for args in scenario.setup:
        proc = cli(host, args, binary)
        if proc.returncode != 0:
            raise ScenarioError(f"`docker {' '.join(args)}`: {proc.stderr}")
    deploy = scenario.commands[-1][1:]
    rec: dict[str, Any] = {"deploy": ended(cli(host, deploy, binary))}
    rec["left"] = left(host, scenario.stack)
    if rec["left"]["services"]:
        problem = wait_settled(host, scenario.stack, scenario.task_errors, timeout)
        if problem:
            problems.append(problem)
    objs = stack_objects(host, scenario.stack)
    rec["services"] = [
        get(host, f"/services/{s['ID']}?insertDefaults=false") for s in objs["services"]
    ]
    externals = [args for args in scenario.setup if args[:2] == ("network", "create")]
    rec["networks"] = [get(host, f"/networks/{n['Id']}") for n in objs["networks"]] + [
        get(host, f"/networks/{args[-1]}") for args in externals
    ]
    rec["secrets"] = [get(host, f"/secrets/{s['ID']}") for s in objs["secrets"]]
    rec["configs"] = [get(host, f"/configs/{c['ID']}") for c in objs["configs"]]
    if scenario.task_errors:
        rec["task_errors"] = task_errors(host, scenario.stack, objs["services"])
    if scenario.redeploy:
        before = tasks_by_service(host, scenario.stack)
        again = ended(cli(host, deploy, binary))
        time.sleep(3.0)
        after = tasks_by_service(host, scenario.stack)
        kept = {name: before[name] == after.get(name) for name in sorted(before)}
        rec["redeploy"] = {**again, "tasks_kept": kept}
    return rec, problems


def remove(host: str, scenario: StackScenario, binary: str | None = None,
           rec: dict[str, Any] | None = None) -> None:  # fmt: skip
    """`docker stack rm` (recorded in `rec` if given), then the scenario's teardown."""
    proc = cli(host, ["stack", "rm", scenario.stack], binary)
    if rec is not None:
        rec["rm"] = {"exit_status": proc.returncode, "stdout": sorted(proc.stdout.splitlines())}
        deadline = time.monotonic() + 30
        while any(left(host, scenario.stack).values()) and time.monotonic() < deadline:
            time.sleep(0.3)  # networks go once their tasks' containers are gone
        rec["left_after_rm"] = left(host, scenario.stack)
    for _ in range(50):  # the networks of removed services go only once their tasks are gone
        if not any(left(host, scenario.stack).values()):
            break
        time.sleep(0.3)
        cli(host, ["stack", "rm", scenario.stack], binary)
    for args in scenario.teardown:
        for _ in range(20):
            if cli(host, args, binary).returncode == 0:
                break
            time.sleep(0.5)


# --------------------------------------------------------------------------- masking

VNI = "com.docker.network.driver.overlay.vxlanid_list"
POOL = re.compile(r"^10\.0\.\d+\.\d+(/\d+)?$")


def identities(rec: dict[str, Any]) -> dict[str, str]:
    names: dict[str, str] = {}
    kinds = (("services", "service", "ID"), ("networks", "network", "Id"),
             ("secrets", "secret", "ID"), ("configs", "config", "ID"))  # fmt: skip
    for kind, key, id_key in kinds:
        for obj in rec.get(kind) or []:
            name = obj.get("Name") or obj["Spec"]["Name"]
            if obj.get(id_key):
                names[obj[id_key]] = f"<{key}-id-{name}>"
    return names


def _network(net: dict[str, Any]) -> dict[str, Any]:
    net = dict(net)
    if isinstance(net.get("Containers"), dict):
        names = sorted(str(c.get("Name")) for c in net["Containers"].values())
        lb = f"{net.get('Name')}-endpoint"  # Docker's load-balancer sandbox on the network
        if lb in names:
            names.remove(lb)
            net["LoadBalancerEndpoint"] = lb
        net["Containers"] = names
    options = net.get("Options")
    if isinstance(options, dict) and VNI in options:
        net["Options"] = {**options, VNI: "<vni:str>"}
    if isinstance(net.get("Peers"), list):
        net["Peers"] = [{k: f"<peer-{k.lower()}:str>" for k in p} for p in net["Peers"]]
    return net


def _pool(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: "<pool-subnet:str>"
            if k in ("Subnet", "Gateway") and isinstance(v, str) and POOL.match(v)
            else _pool(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_pool(v) for v in value]
    return value


def mask(rec: dict[str, Any]) -> dict[str, Any]:
    names = identities(rec)
    rec = dict(rec, networks=[_network(n) for n in rec.get("networks") or []])
    return {k: _mask(_pool(v), (), names) for k, v in rec.items()}


def fixture_path(name: str) -> Path:
    return FIXTURES / f"{name}.json"
