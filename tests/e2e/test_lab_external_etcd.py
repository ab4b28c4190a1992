"""Two managers and a worker on an external etcd cluster (`shoal lab up --external-etcd`:
three etcd members with TLS on the registry host, every shoald given `--etcd-endpoints`),
driven with the stock docker CLI.

A manager joins without an etcd member of its own; with the store's quorum outside the
managers, two managers survive the loss of one (on the managers' own members they could
not: one of two is no majority) — the survivor leads, takes writes, and the service
converges; the dead manager comes back by itself. A worker promoted becomes a manager and,
demoted, a worker again, with no etcd member anywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from halab import manager_status
from support import wait_for
from swarmlab import Lab, lab_up

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def lab(docker_cli: Callable[..., tuple[int, str, str]]) -> Iterator[Lab]:
    yield from lab_up("xe", docker_cli, 2, 1, "--external-etcd")


def statuses(lab: Lab, asking: str) -> dict[str, str]:
    return {h.removeprefix(f"{lab.name}-"): s for h, s in manager_status(lab.cli[asking]).items()}


def node_state(lab: Lab, asking: str, short: str) -> str:
    rc, out, _ = lab.cli[asking].run("node", "ls", "--format", "{{.Hostname}} {{.Status}}")
    rows = dict(line.split(" ", 1) for line in out.splitlines() if " " in line)
    return rows.get(lab.node(short), "") if rc == 0 else ""


def replicas(lab: Lab, asking: str, name: str) -> str:
    rc, out, _ = lab.cli[asking].run("service", "ls", "--filter", f"name={name}",
                                     "--format", "{{.Replicas}}")  # fmt: skip
    return out.strip() if rc == 0 else ""


def test_managers_on_the_external_cluster(lab: Lab) -> None:
    assert statuses(lab, "m1") == {"m1": "Leader", "m2": "Reachable"}
    m1 = lab.cli["m1"]
    m1.ok("service", "create", "-d", "--name", "web", "--replicas", "4", lab.whoami)
    wait_for(lambda: replicas(lab, "m1", "web") == "4/4", 90, what="4/4 on m1")
    for short in lab.nodes:  # no shoald runs an etcd member of its own
        assert not Path(lab.hosts.node(lab.node(short)).shoald_state, "swarm", "etcd").exists()


def test_one_of_two_managers_lost_the_other_leads_and_takes_writes(lab: Lab) -> None:
    lab.lab("kill", lab.node("m1"))
    m2 = lab.cli["m2"]
    wait_for(lambda: m2.run("service", "scale", "-d", "web=6", timeout=30)[0] == 0, 60,
             what="a scale accepted on m2", log=lambda: lab.log("m2"))  # fmt: skip
    wait_for(lambda: statuses(lab, "m2").get("m2") == "Leader", 60, what="m2 leads")
    wait_for(lambda: node_state(lab, "m2", "m1") == "Down", 60, what="m1 Down")
    assert statuses(lab, "m2")["m1"] == "Unreachable"
    # m1's tasks run elsewhere now: 6 running on m2 and w1.
    wait_for(lambda: replicas(lab, "m2", "web") == "6/6", 90, what="6/6 with m1 dead",
             log=lambda: lab.log("m2"))  # fmt: skip
    lab.lab("start", lab.node("m1"))
    wait_for(lambda: statuses(lab, "m2").get("m1") == "Reachable", 90, what="m1 back",
             log=lambda: lab.log("m1"))  # fmt: skip
    wait_for(lambda: replicas(lab, "m1", "web") == "6/6", 90, what="6/6 seen on m1")


def test_promote_and_demote_with_no_member_of_their_own(lab: Lab) -> None:
    m2 = lab.cli["m2"]
    m2.ok("node", "promote", lab.node("w1"))
    wait_for(lambda: statuses(lab, "m2").get("w1") == "Reachable", 90, what="w1 Reachable",
             log=lambda: lab.log("w1"))  # fmt: skip
    wait_for(lambda: lab.cli["w1"].run("node", "ls")[0] == 0, 30, what="w1 answers node ls")
    assert replicas(lab, "w1", "web") == "6/6"
    m2.ok("node", "demote", lab.node("w1"))
    wait_for(lambda: "w1" not in statuses(lab, "m2"), 60, what="w1 a worker again",
             log=lambda: lab.log("w1"))  # fmt: skip
    rc, _, err = lab.cli["w1"].run("node", "ls")
    assert rc != 0 and "This node is not a swarm manager" in err, err
