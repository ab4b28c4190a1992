"""`docker stack deploy` on a `shoal lab` (1 manager + 2 workers, then a third worker) with
the stock docker CLI: seed J3's getstartedlab stack (the routing mesh on every node, several
tasks answering, a redeploy with more replicas that keeps the tasks it has, a node added and
the next redeploy reaching it); a redeploy changes only what changed in the file (replicas,
an image), `--prune` removes only the services that left it, `--resolve-image always` sees a
new image behind the same tag; `stack ls`, `stack services`, `stack ps`; `stack rm` leaves
nothing on any node and touches nothing of another stack or of a service outside stacks."""

from __future__ import annotations

import collections
import json
import re
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support import lab_cli, wait_for
from swarmlab import Lab

pytestmark = pytest.mark.e2e

IDLE = "trap 'exit 0' TERM; while :; do sleep 0.2; done"
NS = "com.docker.stack.namespace"


@pytest.fixture(scope="module")
def lab(docker_cli: Callable[..., tuple[int, str, str]]) -> Iterator[Lab]:
    name = "skst" + secrets.token_hex(3)
    try:
        up = lab_cli("up", "--name", name, "--managers", "1", "--workers", "2")
        assert up.returncode == 0, f"up failed:\n{up.stdout}\n{up.stderr}"
        yield Lab(name, docker_cli, ("m1", "w1", "w2"))
    finally:
        down = lab_cli("down", "--name", name)
        assert down.returncode == 0, down.stderr


def deploy(lab: Lab, tmp: Path, stack: str, compose: str, *options: str) -> str:
    path = tmp / f"{stack}-{secrets.token_hex(2)}.yml"
    path.write_text(compose)
    rc, out, err = lab.cli["m1"].run("stack", "deploy", *options, "-c", str(path), stack)
    assert rc == 0, f"{out}\n{err}\n{lab.log('m1')}"
    return out + err


def ps(lab: Lab, stack: str, *options: str) -> list[dict[str, Any]]:
    return lab.cli["m1"].json_lines("stack", "ps", "--no-trunc", *options, stack)


def running(lab: Lab, stack: str) -> dict[str, set[str]]:
    """Service name → the IDs of its running tasks."""
    found: dict[str, set[str]] = collections.defaultdict(set)
    for row in ps(lab, stack, "--filter", "desired-state=running"):
        if row["CurrentState"].startswith("Running"):
            found[row["Name"].rsplit(".", 1)[0]].add(row["ID"])
    return dict(found)


def services(lab: Lab, stack: str) -> dict[str, dict[str, Any]]:
    return {r["Name"]: r for r in lab.cli["m1"].json_lines("stack", "services", stack)}


def converged(lab: Lab, stack: str, want: dict[str, int]) -> Callable[[], Any]:
    def check() -> Any:
        got = {name: len(ids) for name, ids in running(lab, stack).items()}
        reps = {n: r["Replicas"] for n, r in services(lab, stack).items()}
        ok = got == want and all(reps[n] == f"{c}/{c}" for n, c in want.items())
        return ok or (got, reps)

    return lambda: check() is True


def wait_converged(lab: Lab, stack: str, want: dict[str, int], timeout: float = 120) -> None:
    wait_for(converged(lab, stack, want), timeout=timeout, interval=0.5,
             what=f"{stack} at {want}", log=lambda: lab.log("m1"))  # fmt: skip


def engine_cli(lab: Lab, short: str, *args: str) -> str:
    host = lab.lab("env", "--engine", lab.node(short)).strip().split("=", 1)[1]
    rc, out, err = lab.cli["m1"]._cli(host, *args)
    assert rc == 0, err
    return out


def stack_containers(lab: Lab, short: str, stack: str) -> list[str]:
    out = engine_cli(lab, short, "ps", "-aq", "--filter", f"label={NS}={stack}")
    return out.split()


def container_ids(lab: Lab, stack: str) -> dict[str, set[str]]:
    """Service name → the containers of its tasks, on every node's engine."""
    found: dict[str, set[str]] = collections.defaultdict(set)
    for short in lab.nodes:
        fmt = '{{.ID}} {{.Label "com.docker.swarm.service.name"}}'
        out = engine_cli(lab, short, "ps", "--no-trunc", "--filter", f"label={NS}={stack}",
                         "--format", fmt)  # fmt: skip
        for line in out.splitlines():
            cid, name = line.split()
            found[name].add(cid)
    return dict(found)


def hostname(body: str) -> str:
    found = re.search(r"^Hostname: (\S+)$", body, re.M)
    assert found, body
    return found.group(1)


def getstartedlab(image: str, replicas: int) -> str:
    """Get Started part 4's docker-compose.yml (seed J3), whoami standing in for the image."""
    return f"""
version: "3"
services:
  web:
    image: {image}
    deploy:
      replicas: {replicas}
      resources:
        limits:
          cpus: "0.1"
          memory: 50M
      restart_policy:
        condition: on-failure
    ports:
      - "4000:80"
    networks:
      - webnet
networks:
  webnet:
"""


def test_getstartedlab(lab: Lab, tmp_path: Path) -> None:
    out = deploy(lab, tmp_path, "getstartedlab", getstartedlab(lab.whoami, 5))
    assert "Creating network getstartedlab_webnet" in out
    assert "Creating service getstartedlab_web" in out
    wait_converged(lab, "getstartedlab", {"getstartedlab_web": 5})
    row = services(lab, "getstartedlab")["getstartedlab_web"]
    assert row["Ports"] == "*:4000->80/tcp", row
    spec = json.loads(lab.cli["m1"].ok("service", "inspect", "getstartedlab_web"))[0]["Spec"]
    assert spec["TaskTemplate"]["Resources"]["Limits"] == {"NanoCPUs": 100000000,
                                                            "MemoryBytes": 52428800}  # fmt: skip
    assert spec["TaskTemplate"]["RestartPolicy"]["Condition"] == "on-failure"
    # every node answers :4000, and requests from one node reach several tasks
    for short in lab.nodes:
        seen = collections.Counter(hostname(lab.http(short, 4000)) for _ in range(12))
        print(f"\n:4000 from {short}: {dict(seen)}")
        assert len(seen) >= 2, (short, seen)
    before = running(lab, "getstartedlab")["getstartedlab_web"]
    deploy(lab, tmp_path, "getstartedlab", getstartedlab(lab.whoami, 8))
    wait_converged(lab, "getstartedlab", {"getstartedlab_web": 8})
    after = running(lab, "getstartedlab")["getstartedlab_web"]
    assert before < after, "a redeploy with more replicas must keep the tasks it has"
    nodes = {r["Node"] for r in ps(lab, "getstartedlab", "--filter", "desired-state=running")}
    assert nodes == {lab.node(s) for s in lab.nodes}, nodes
    # a third worker joins; the next redeploy spreads onto it
    up = lab_cli("up", "--name", lab.name, "--managers", "1", "--workers", "3")
    assert up.returncode == 0, f"{up.stdout}\n{up.stderr}"
    wait_for(
        lambda: (
            "Ready" in lab.cli["m1"].ok("node", "ls", "--filter", f"name={lab.node('w3')}")
        ),  # fmt: skip
        what="w3 ready",
        timeout=60,
    )
    lab.nodes = (*lab.nodes, "w3")  # for the tests after this one
    deploy(lab, tmp_path, "getstartedlab", getstartedlab(lab.whoami, 12))
    wait_converged(lab, "getstartedlab", {"getstartedlab_web": 12})
    rows = ps(lab, "getstartedlab", "--filter", "desired-state=running")
    on_w3 = [r for r in rows if r["Node"] == lab.node("w3")]
    print(f"\nafter the redeploy to 12: {len(on_w3)} task(s) on the new node")
    assert on_w3, rows
    assert after < {r["ID"] for r in rows}
    lab.cli["m1"].ok("stack", "rm", "getstartedlab")
    wait_for(
        lambda: not any(stack_containers(lab, s, "getstartedlab") for s in lab.nodes),  # fmt: skip
        what="getstartedlab's containers gone",
        timeout=60,
    )


def app(image_b: str, busybox: str, moving: str, replicas_a: int = 2, with_c: bool = True) -> str:
    c = f"""
  c:
    image: {busybox}
    command: ["sh", "-c", "{IDLE}"]
""" if with_c else ""  # fmt: skip
    return f"""
version: "3.8"
services:
  a:
    image: {busybox}
    command: ["sh", "-c", "{IDLE}"]
    deploy: {{replicas: {replicas_a}}}
  b:
    image: {image_b}
    ports: ["8085:80"]
  d:
    image: {moving}
{c}"""


def test_redeploys_prune_resolve_image_ls_ps_rm(lab: Lab, tmp_path: Path) -> None:
    m1 = lab.cli["m1"]
    moving = f"{lab.registry}/shoal-lab/moving:1"
    m1.ok("pull", lab.whoami)
    m1.ok("tag", lab.whoami, moving)
    m1.ok("push", moving)
    whoami2 = lab.whoami.replace("whoami:1", "whoami:2")
    # what must stay untouched: a service outside stacks, another stack
    m1.ok("service", "create", "-d", "--name", "outsider", lab.busybox, "sh", "-c", IDLE)
    deploy(lab, tmp_path, "other", f"""
version: "3.8"
services:
  o:
    image: {lab.busybox}
    command: ["sh", "-c", "{IDLE}"]
""")  # fmt: skip
    wait_converged(lab, "other", {"other_o": 1})
    out = deploy(lab, tmp_path, "app", app(lab.whoami, lab.busybox, moving))
    assert "Creating network app_default" in out
    want = {"app_a": 2, "app_b": 1, "app_c": 1, "app_d": 1}
    wait_converged(lab, "app", want)
    untouched = (running(lab, "other"), {r["ID"] for r in m1.tasks("outsider")})

    stacks = {r["Name"]: r["Services"] for r in m1.json_lines("stack", "ls")}
    assert stacks == {"app": "4", "other": "1"}, stacks
    rows = services(lab, "app")
    assert rows["app_b"]["Ports"] == "*:8085->80/tcp" and rows["app_a"]["Ports"] == "", rows
    assert rows["app_a"]["Replicas"] == "2/2" and rows["app_a"]["Mode"] == "replicated"
    all_rows = ps(lab, "app")
    assert all(re.fullmatch(r"[0-9a-z]{25}", r["ID"]) for r in all_rows), all_rows
    assert {r["Name"].rsplit(".", 1)[0] for r in all_rows} == set(want)

    # more replicas of a: only a changes; b, c, d keep their tasks and containers
    tasks0, containers0 = running(lab, "app"), container_ids(lab, "app")
    deploy(lab, tmp_path, "app", app(lab.whoami, lab.busybox, moving, replicas_a=3))
    wait_converged(lab, "app", {**want, "app_a": 3})
    tasks1, containers1 = running(lab, "app"), container_ids(lab, "app")
    assert tasks0["app_a"] < tasks1["app_a"]
    for name in ("app_b", "app_c", "app_d"):
        assert tasks1[name] == tasks0[name] and containers1[name] == containers0[name], name

    # another image for b: b is updated (a new task), the others are not
    deploy(lab, tmp_path, "app", app(whoami2, lab.busybox, moving, replicas_a=3))
    wait_for(lambda: running(lab, "app").get("app_b", set()) - tasks1["app_b"], timeout=90,
             what="b updated", log=lambda: lab.log("m1"))  # fmt: skip
    wait_converged(lab, "app", {**want, "app_a": 3})
    tasks2 = running(lab, "app")
    assert tasks2["app_b"].isdisjoint(tasks1["app_b"])
    spec_b = json.loads(m1.ok("service", "inspect", "app_b"))[0]["Spec"]
    assert spec_b["TaskTemplate"]["ContainerSpec"]["Image"].startswith(whoami2)
    for name in ("app_a", "app_c", "app_d"):
        assert tasks2[name] == tasks1[name], name

    # --prune: c left the file and goes; nothing else does
    out = deploy(lab, tmp_path, "app", app(whoami2, lab.busybox, moving, 3, with_c=False),
                 "--prune")  # fmt: skip
    assert "Removing service app_c" in out, out
    wait_converged(lab, "app", {"app_a": 3, "app_b": 1, "app_d": 1})
    tasks3 = running(lab, "app")
    assert all(tasks3[n] == tasks2[n] for n in ("app_a", "app_b", "app_d"))

    # --resolve-image always: a new image behind the same tag redeploys d
    m1.ok("pull", whoami2)
    m1.ok("tag", whoami2, moving)
    m1.ok("push", moving)
    deploy(lab, tmp_path, "app", app(whoami2, lab.busybox, moving, 3, with_c=False),
           "--resolve-image", "always")  # fmt: skip
    wait_for(lambda: running(lab, "app").get("app_d", set()) - tasks3["app_d"], timeout=90,
             what="d redeployed", log=lambda: lab.log("m1"))  # fmt: skip
    tasks4 = running(lab, "app")
    assert all(tasks4[n] == tasks3[n] for n in ("app_a", "app_b")), (tasks3, tasks4)
    digest = engine_cli(lab, "m1", "image", "inspect", "--format", "{{index .RepoDigests 0}}",
                        whoami2).strip().split("@")[1]  # fmt: skip
    spec_d = json.loads(m1.ok("service", "inspect", "app_d"))[0]["Spec"]
    assert spec_d["TaskTemplate"]["ContainerSpec"]["Image"] == f"{moving}@{digest}"

    # stack rm: nothing of app on any node; other and outsider untouched
    rc, out, err = m1.run("stack", "rm", "app")
    assert rc == 0, err
    assert sorted(out.splitlines()) == [
        "Removing network app_default", "Removing service app_a", "Removing service app_b",
        "Removing service app_d",
    ], out  # fmt: skip
    wait_for(
        lambda: not any(stack_containers(lab, s, "app") for s in lab.nodes),
        what="app's containers gone from every engine",
        timeout=60,
    )
    label = f"label={NS}=app"
    for kind in ("service", "network", "secret", "config"):
        assert m1.ok(kind, "ls", "-q", "--filter", label).strip() == "", kind
    assert (running(lab, "other"), {r["ID"] for r in m1.tasks("outsider")}) == untouched
    rc, _, err = m1.run("stack", "ps", "app")
    assert rc == 1 and "nothing found in stack: app" in err, err
    lab.cli["m1"].ok("stack", "rm", "other")
    m1.rm("outsider")
