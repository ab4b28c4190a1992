"""`docker swarm init --force-new-cluster` on the last manager of a lost quorum (3 managers,
2 workers, two managers killed): the swarm comes back with that manager alone, everything in
it intact, no task container on the workers restarted; an old manager started afterwards
refuses to serve and says why."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator

import pytest
from support import Cli, wait_for
from swarmlab import Lab, lab_up

pytestmark = pytest.mark.e2e

MANAGERS = ("m1", "m2", "m3")
WORKERS = ("w1", "w2")
NO_LEADER = "The swarm does not have a leader."


@pytest.fixture(scope="module")
def lab(docker_cli: Callable[..., tuple[int, str, str]]) -> Iterator[Lab]:
    yield from lab_up("fnc", docker_cli, managers=3, workers=2)


def worker_containers(lab: Lab) -> dict[str, str]:
    """Container ID → StartedAt of the task containers on the workers."""
    out = {}
    for short in WORKERS:
        cli = lab.cli[short]
        ids = cli.ok("ps", "-q", "--no-trunc", "--filter",
                     "label=com.docker.swarm.service.name=web").split()  # fmt: skip
        for cid in ids:
            out[cid] = cli.ok("inspect", "--format", "{{.State.StartedAt}}", cid).strip()
    return out


def test_force_new_cluster_on_the_survivor(lab: Lab) -> None:
    cli: Cli = lab.cli["m1"]
    wait_for(lambda: cli.run("node", "ls")[0] == 0, 30, what="m1 answering")
    node_id = json.loads(cli.ok("info", "--format", "{{json .Swarm}}"))["NodeID"]
    cli.converge("web", "--replicas", "4", "--constraint", "node.role==worker", lab.busybox,
                 "sleep", "3600")  # fmt: skip
    cli.ok("secret", "create", "s1", "-", input="the secret")
    token = cli.ok("swarm", "join-token", "-q", "worker").strip()
    before = worker_containers(lab)
    assert len(before) == 4

    # on a worker: refused in Docker's words
    rc, _, err = lab.cli["w1"].run("swarm", "init", "--force-new-cluster")
    assert rc == 1 and "Worker nodes can't be used" in err, err

    lab.lab("kill", lab.node("m2"))
    lab.lab("kill", lab.node("m3"))
    wait_for(lambda: NO_LEADER in cli.run("service", "ls")[2], 30, what="quorum lost")

    out = cli.ok("swarm", "init", "--force-new-cluster", "--advertise-addr", lab.addr("m1"))
    assert f"Swarm initialized: current node ({node_id}) is now a manager." in out
    # same swarm: same tokens, same services and secrets
    assert cli.ok("swarm", "join-token", "-q", "worker").strip() == token
    assert cli.service_row("web")["Replicas"] == "4/4"
    assert [r["Name"] for r in cli.json_lines("secret", "ls")] == ["s1"]
    # writes work
    cli.ok("secret", "create", "s2", "-", input="after")
    cli.ok("network", "create", "-d", "overlay", "after")
    # the old managers keep their role, without manager status (as Docker's)
    nodes = {r["Hostname"]: r for r in cli.json_lines("node", "ls")}
    for short in ("m2", "m3"):
        row = nodes[lab.node(short)]
        assert row["ManagerStatus"] == "", row
        role = cli.ok("node", "inspect", "--format", "{{.Spec.Role}}", lab.node(short)).strip()
        assert role == "manager"
    assert nodes[lab.node("m1")]["ManagerStatus"] == "Leader"
    info = json.loads(cli.ok("info", "--format", "{{json .Swarm}}"))
    assert info["Managers"] == 1 and info["Nodes"] == 5, info
    # the workers come back to this manager; no container of theirs restarted
    wait_for(lambda: all(nodes_status(cli)[lab.node(w)] == "Ready" for w in WORKERS), 60,
             what="workers ready")  # fmt: skip
    assert worker_containers(lab) == before
    assert cli.service_row("web")["Replicas"] == "4/4"
    # A dead old manager, no etcd member now, is removed once Down (as Docker allows).
    wait_for(lambda: nodes_status(cli)[lab.node("m3")] == "Down", 60, what="m3 Down")
    cli.ok("node", "rm", lab.node("m3"))
    assert lab.node("m3") not in nodes_status(cli)

    # An old manager started again does not disturb the new cluster: it refuses, and says so.
    lab.lab("start", lab.node("m2"))
    old = lab.cli["m2"]
    wait_for(lambda: "was removed from the swarm" in old.run("node", "ls")[2], 60,
             what="the old manager refusing")  # fmt: skip
    assert "docker swarm leave --force" in json.loads(
        old.ok("info", "--format", "{{json .Swarm}}"))["Error"]  # fmt: skip
    cli.ok("secret", "create", "s3", "-", input="still")
    info = json.loads(cli.ok("info", "--format", "{{json .Swarm}}"))
    assert info["Managers"] == 1, info
    assert worker_containers(lab) == before
    # leave --force and a new join make it a manager again
    old.ok("swarm", "leave", "--force")
    mtoken = cli.ok("swarm", "join-token", "-q", "manager").strip()
    old.ok("swarm", "join", "--token", mtoken, f"{lab.addr('m1')}:2377")
    wait_for(lambda: json.loads(cli.ok("info", "--format", "{{json .Swarm}}")).get("Managers")
             == 2, 60, what="two managers")  # fmt: skip
    assert re.search(r"s3", cli.ok("secret", "ls"))


def nodes_status(cli: Cli) -> dict[str, str]:
    return {r["Hostname"]: r["Status"] for r in cli.json_lines("node", "ls")}
