"""`docker node promote` / `docker node demote` on a running `shoal lab` (3 managers, 1
worker), with the stock docker CLI: a worker promoted becomes a Reachable manager keeping its
task containers, demoted it runs tasks as a worker again; Docker's refusals (the last manager,
the loss of quorum, `node rm` of a manager); the leader demoted: another leads, writes go on."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

import pytest
from halab import manager_status
from support import wait_for
from swarmlab import Lab, lab_up
from test_ha import answering, leader

pytestmark = pytest.mark.e2e

MANAGERS = ("m1", "m2", "m3")
FAILED = "Error response from daemon: rpc error: code = FailedPrecondition desc = "
WORKER_ERROR = "This node is not a swarm manager. Worker nodes can't be used"


@pytest.fixture(scope="module")
def lab(docker_cli: Callable[..., tuple[int, str, str]]) -> Iterator[Lab]:
    yield from lab_up("hr", docker_cli, managers=3, workers=1)


def containers(lab: Lab, short: str) -> dict[str, str]:
    """Task container ID → StartedAt on a node's engine."""
    code, out, err = lab.cli[short].run("ps", "-q", "--filter", "label=com.docker.swarm.task.id")
    assert code == 0, err
    ids = out.split()
    if not ids:
        return {}
    code, out, err = lab.cli[short].run("inspect", *ids)
    assert code == 0, err
    return {c["Id"]: c["State"]["StartedAt"] for c in json.loads(out)}


def statuses(lab: Lab, asking: str) -> dict[str, str]:
    return {h.removeprefix(f"{lab.name}-"): s for h, s in manager_status(lab.cli[asking]).items()}


def test_promote_a_worker_and_demote_it_back(lab: Lab) -> None:
    m1 = lab.cli["m1"]
    m1.ok("service", "create", "-d", "--name", "web", "--replicas", "4",
          "--constraint", "node.role==worker", lab.busybox, "sleep", "1d")  # fmt: skip
    wait_for(lambda: len(containers(lab, "w1")) == 4, 60, what="4 tasks on w1")
    before = containers(lab, "w1")
    t0 = time.monotonic()
    out = m1.ok("node", "promote", lab.node("w1"))
    assert out.strip() == f"Node {lab.node('w1')} promoted to a manager in the swarm."
    wait_for(lambda: statuses(lab, "m1").get("w1") == "Reachable", 60, what="w1 Reachable")
    print(f"\npromote → Reachable {time.monotonic() - t0:.2f} s")
    assert len(statuses(lab, "m1")) == 4
    wait_for(lambda: lab.cli["w1"].run("node", "ls")[0] == 0, 30, what="w1 answers node ls")
    assert containers(lab, "w1") == before  # same containers, not restarted
    info = json.loads(lab.cli["w1"].ok("info", "--format", "{{json .Swarm}}"))
    assert info["ControlAvailable"] is True and info["Managers"] == 4

    t0 = time.monotonic()
    out = m1.ok("node", "demote", lab.node("w1"))
    assert out.strip() == f"Manager {lab.node('w1')} demoted in the swarm."
    wait_for(lambda: "w1" not in statuses(lab, "m1"), 30, what="w1 not a manager")
    print(f"demote → 3 managers {time.monotonic() - t0:.2f} s")
    wait_for(lambda: WORKER_ERROR in lab.cli["w1"].run("node", "ls")[2], 30, what="w1 worker")
    assert containers(lab, "w1") == before
    m1.ok("service", "scale", "-d", "web=5")
    wait_for(lambda: len(containers(lab, "w1")) == 5, 60, what="a 5th task on w1, a worker")
    info = json.loads(m1.ok("info", "--format", "{{json .Swarm}}"))
    assert info["Managers"] == 3
    m1.ok("service", "rm", "web")


def test_node_rm_of_a_manager_is_refused_even_with_force(lab: Lab) -> None:
    m2 = lab.cli["m1"].ok("node", "inspect", "--format", "{{.ID}}", lab.node("m2")).strip()
    for args in (("node", "rm", lab.node("m2")), ("node", "rm", "--force", lab.node("m2"))):
        code, _, err = lab.cli["m1"].run(*args)
        assert code == 1
        assert err.strip() == (
            f"{FAILED}node {m2} is a cluster manager and is a member of the raft cluster. "
            "It must be demoted to worker before removal"
        )


def test_demote_refused_when_it_would_lose_the_quorum(lab: Lab) -> None:
    lab.lab("stop", lab.node("m3"))
    try:
        wait_for(lambda: statuses(lab, "m1").get("m3") == "Unreachable", 30, what="m3 away")
        for short in ("m2", "m1"):  # a follower, and whichever leads
            code, _, err = lab.cli["m1"].run("node", "demote", lab.node(short))
            assert code == 1
            assert err.strip() == (
                f"{FAILED}can't remove member from the raft: this would result in a loss of quorum"
            )
        assert len(statuses(lab, "m1")) == 3
    finally:
        lab.lab("start", lab.node("m3"))
    wait_for(lambda: statuses(lab, "m1").get("m3") == "Reachable", 60, what="m3 back")


def test_demote_the_leader_then_down_to_the_last_manager(lab: Lab) -> None:
    first = leader(lab)
    others = [m for m in MANAGERS if m != first]
    asking = others[0]
    t0 = time.monotonic()
    lab.cli[asking].ok("node", "demote", lab.node(first))

    def new_leader() -> str | None:
        try:
            found = leader(lab, asking)
        except AssertionError:
            return None
        return found if found != first else None

    second = wait_for(new_leader, 30, what="another leader")
    print(f"\nleader demoted → {second} leads after {time.monotonic() - t0:.2f} s")
    cli = answering(lab, tuple(others))
    cli.ok("service", "create", "-d", "--name", "after", lab.busybox, "sleep", "1d")
    wait_for(lambda: first not in statuses(lab, asking), 30, what="old leader not a manager")
    # Two managers left: one more may go, then the last one may not.
    last = second
    gone = next(m for m in others if m != last)
    lab.cli[last].ok("node", "demote", lab.node(gone))
    wait_for(lambda: list(statuses(lab, last)) == [last], 30, what="one manager left")
    code, _, err = lab.cli[last].run("node", "demote", lab.node(last))
    assert code == 1
    assert err.strip() == f"{FAILED}attempting to demote the last manager of the swarm"
    # Promoted back to three.
    for short in (first, gone):
        lab.cli[last].ok("node", "promote", lab.node(short))
    wait_for(lambda: sorted(statuses(lab, last).values()).count("Reachable") == 2, 60,
             what="3 managers again")  # fmt: skip
    lab.cli[last].ok("service", "rm", "after")
