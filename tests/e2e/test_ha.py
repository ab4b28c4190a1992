"""Highly available managers on a `shoal lab` (3 managers, 2 workers), with the stock docker
CLI: the managers as `docker node ls` and `docker info` show them; the leader's host killed
in the middle of a scale, which ends with exactly the replicas asked for; seed J2's sequence
(one manager stopped: nothing changes; a second one: Docker's no-leader error on the
survivor while the tasks run on and a published port answers; both started again: the swarm
is back as it was); every manager stopped (the workers serve on); a manager whose state was
wiped, refused until the old one is removed; every host stopped and started."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
from support import Cli, wait_for
from swarmlab import Lab, lab_up

pytestmark = pytest.mark.e2e

MANAGERS = ("m1", "m2", "m3")
WORKERS = ("w1", "w2")
NO_LEADER = (
    "Error response from daemon: rpc error: code = Unknown desc = The swarm does not have a "
    "leader. It's possible that too few managers are online. Make sure more than half of the "
    "managers are online."
)
PORT = 8080
LEAVE = (
    "Error response from daemon: You are attempting to leave the swarm on a node that is "
    "participating as a manager. {}The only way to restore a swarm that has lost consensus is "
    "to reinitialize it with `--force-new-cluster`. Use `--force` to suppress this message."
)
QUORUM = (
    "Removing this node leaves 1 managers out of 3. Without a Raft quorum your swarm will be "
    "inaccessible. "
)


@pytest.fixture(scope="module")
def lab(docker_cli: Callable[..., tuple[int, str, str]]) -> Iterator[Lab]:
    yield from lab_up("ha", docker_cli, managers=3, workers=2)


def manager_status(cli: Cli) -> dict[str, str]:
    """Hostname → MANAGER STATUS of `docker node ls` (managers only)."""
    return {r["Hostname"]: r["ManagerStatus"] for r in cli.json_lines("node", "ls")
            if r["ManagerStatus"]}  # fmt: skip


def leader(lab: Lab, asking: str = "m1") -> str:
    """The short name of the leader's node, as `asking` sees it."""
    found = [h for h, s in manager_status(lab.cli[asking]).items() if s == "Leader"]
    assert len(found) == 1, found
    return found[0].removeprefix(f"{lab.name}-")


def answering(lab: Lab, among: tuple[str, ...], timeout: float = 30) -> Cli:
    """The CLI of a manager of `among` whose control calls work."""

    def one() -> Cli | None:
        for short in among:
            if lab.cli[short].run("node", "ls")[0] == 0:
                return lab.cli[short]
        return None

    found: Cli = wait_for(one, timeout, what=f"a manager of {among} answering")
    return found


def running_slots(cli: Cli, service: str) -> list[int]:
    rows = cli.tasks(service, "--filter", "desired-state=running")
    return [int(r["Name"].rsplit(".", 1)[1]) for r in rows if r["State"] == "Running"]


def engine_slots(lab: Lab, service: str) -> Counter[int]:
    """Running task containers of the service on every worker's engine, by slot."""
    slots: Counter[int] = Counter()
    for short in WORKERS:
        out = lab.cli[short].ok(
            "ps", "--filter", f"label=com.docker.swarm.service.name={service}",
            "--format", '{{.Label "com.docker.swarm.task.name"}}',
        )  # fmt: skip
        slots.update(int(name.split(".")[1]) for name in out.split())
    return slots


def test_managers_as_the_cli_shows_them(lab: Lab) -> None:
    m1 = lab.cli["m1"]
    status = manager_status(m1)
    assert sorted(status.values()) == ["Leader", "Reachable", "Reachable"], status
    info = json.loads(m1.ok("info", "--format", "{{json .Swarm}}"))
    assert (info["Managers"], info["Nodes"]) == (3, 5)
    assert sorted(r["Addr"] for r in info["RemoteManagers"]) == sorted(
        f"{lab.addr(m)}:2377" for m in MANAGERS
    )
    for short in MANAGERS:  # every manager sees the same leader
        assert leader(lab, short) == leader(lab)
    node = json.loads(m1.ok("node", "inspect", lab.node("m2")))[0]
    assert node["ManagerStatus"]["Addr"] == f"{lab.addr('m2')}:2377"
    assert node["ManagerStatus"]["Reachability"] == "reachable"


def test_the_leader_killed_during_a_scale(lab: Lab) -> None:
    """SIGKILL the leader's host while 60 replicas are being started: another manager
    leads, writes go through again, and the service ends with exactly 60 running tasks in
    slots 1..60, one container each."""
    dead = leader(lab)
    survivors = tuple(m for m in MANAGERS if m != dead)
    cli = lab.cli[survivors[0]]
    cli.create("scaled", "--replicas", "0", "--constraint", "node.role==worker",
               lab.busybox, "sleep", "3600")  # fmt: skip
    try:
        cli.ok("service", "scale", "-d", "scaled=60")
        t0 = time.monotonic()
        lab.lab("kill", lab.node(dead))
        cli = answering(lab, survivors)
        wait_for(lambda: cli.run("service", "scale", "-d", "scaled=60")[0] == 0, 30,
                 what="a write accepted after the leader died")  # fmt: skip
        print(f"\nwrites accepted again {time.monotonic() - t0:.2f} s after the kill")
        wait_for(lambda: len(running_slots(cli, "scaled")) == 60, 120, what="60 running")
        assert sorted(running_slots(cli, "scaled")) == list(range(1, 61))
        assert leader(lab, survivors[0]) in survivors
        slots = engine_slots(lab, "scaled")
        twice = {slot: n for slot, n in slots.items() if n != 1}
        assert sorted(slots) == list(range(1, 61)) and not twice, (
            twice,
            cli.ok("service", "ps", "--no-trunc", "scaled"),
            [lab.cli[w].ok("ps", "-a", "--no-trunc") for w in WORKERS],
        )
        # No worker was taken for down because the leader changed.
        rows = {r["Hostname"]: r["Status"] for r in cli.json_lines("node", "ls")}
        assert all(rows[lab.node(w)] == "Ready" for w in WORKERS), rows
    finally:
        lab.lab("start", lab.node(dead))
        answering(lab, MANAGERS).rm("scaled")
    wait_for(lambda: manager_status(lab.cli[dead]).get(lab.node(dead)) == "Reachable"
             or manager_status(lab.cli[dead]).get(lab.node(dead)) == "Leader", 60,
             what=f"{dead} back")  # fmt: skip


def test_seed_j2_managers_stopped_one_by_one(lab: Lab) -> None:
    """One manager down changes nothing; two of three down: every control call on the
    survivor answers Docker's no-leader error, while the tasks run on and the published
    port answers on every node; both back: recovered by itself, nothing lost."""
    cli = answering(lab, MANAGERS)
    cli.converge("web", "--replicas", "4", "--constraint", "node.role==worker",
                 "--publish", f"{PORT}:80", lab.whoami)  # fmt: skip
    before = sorted(r["ID"] for r in cli.tasks("web", "--filter", "desired-state=running"))
    first, second, survivor = "m1", "m2", "m3"
    cli = lab.cli[survivor]
    assert cli.run("swarm", "leave")[2].strip() == LEAVE.format("")
    try:
        lab.lab("stop", lab.node(first))
        wait_for(lambda: cli.run("service", "ls")[0] == 0, 30, what="served with one down")
        assert "Hostname:" in lab.http("w1", PORT)
        wait_for(lambda: manager_status(cli)[lab.node(first)] == "Unreachable", 30,
                 what=f"{first} unreachable")  # fmt: skip
        assert cli.run("swarm", "leave")[2].strip() == LEAVE.format(QUORUM)

        lab.lab("stop", lab.node(second))
        t0 = time.monotonic()
        wait_for(lambda: cli.run("service", "ls")[2].strip() == NO_LEADER, 10,
                 what="the no-leader error on the survivor")  # fmt: skip
        print(f"\nno-leader error {time.monotonic() - t0:.2f} s after the second stop")
        for args in (("node", "ls"), ("service", "create", lab.busybox),
                     ("secret", "ls")):  # fmt: skip
            rc, _, err = cli.run(*args)
            assert (rc, err.strip()) == (1, NO_LEADER), args
        info = json.loads(cli.ok("info", "--format", "{{json .Swarm}}"))
        assert info["Error"] == NO_LEADER.removeprefix("Error response from daemon: ")
        assert info["ControlAvailable"] is True and "Managers" not in info
        for short in ("w1", "w2", survivor):  # the mesh answers everywhere
            assert "Hostname:" in lab.http(short, PORT), short
        assert sum(engine_slots(lab, "web").values()) == 4  # the tasks run on
    finally:
        lab.lab("start", lab.node(first))
        lab.lab("start", lab.node(second))
    cli = answering(lab, MANAGERS)
    wait_for(lambda: sorted(manager_status(cli).values()) == ["Leader", "Reachable",
             "Reachable"], 60, what="three managers again")  # fmt: skip
    after = sorted(r["ID"] for r in cli.tasks("web", "--filter", "desired-state=running"))
    assert after == before  # nothing restarted, nothing lost
    rows = {r["Hostname"]: r["Status"] for r in cli.json_lines("node", "ls")}
    assert set(rows.values()) == {"Ready"}, rows
    cli.rm("web")


def worker_containers(lab: Lab) -> dict[str, str]:
    """Task container ID → StartedAt on every worker's engine."""
    out = {}
    for short in WORKERS:
        ids = lab.cli[short].ok("ps", "-q", "--no-trunc", "--filter",
                                "label=com.docker.swarm.task.id").split()  # fmt: skip
        for cid in ids:
            out[cid] = lab.cli[short].ok("inspect", "--format", "{{.State.StartedAt}}", cid)
    return out


def test_every_manager_stopped_the_workers_serve_on(lab: Lab) -> None:
    """With all three managers down, the workers' tasks keep running and the published port
    keeps answering on the workers; the managers back, nothing restarts."""
    cli = answering(lab, MANAGERS)
    cli.converge("steady", "--replicas", "4", "--constraint", "node.role==worker",
                 "--publish", f"{PORT + 1}:80", lab.whoami)  # fmt: skip
    before = worker_containers(lab)
    try:
        for short in MANAGERS:
            lab.lab("stop", lab.node(short))
        for short in WORKERS:
            assert "Hostname:" in lab.http(short, PORT + 1), short
        assert worker_containers(lab) == before
    finally:
        for short in MANAGERS:
            lab.lab("start", lab.node(short))
    cli = answering(lab, MANAGERS, timeout=60)
    wait_for(lambda: cli.service_row("steady")["Replicas"] == "4/4", 60, what="steady 4/4")
    assert worker_containers(lab) == before  # not one task restarted
    cli.rm("steady")


def test_a_manager_without_its_state_is_refused_until_removed(lab: Lab) -> None:
    """A manager's host that comes back with its state wiped is outside the swarm; joining
    it again is refused until the old manager is demoted and removed (its etcd member would
    otherwise be counted twice), then it joins."""
    cli = answering(lab, ("m1", "m2"))
    old_id = json.loads(cli.ok("node", "inspect", lab.node("m3")))[0]["ID"]
    token = cli.ok("swarm", "join-token", "-q", "manager").strip()
    lab.lab("stop", lab.node("m3"))
    state = lab.hosts.node(lab.node("m3")).shoald_state
    lab.host("m3", "rm", "-rf", f"{state}/swarm")
    lab.lab("start", lab.node("m3"))
    m3 = lab.cli["m3"]
    assert m3.ok("info", "--format", "{{.Swarm.LocalNodeState}}").strip() == "inactive"
    join = ("swarm", "join", "--token", token, "--advertise-addr", lab.addr("m3"),
            f"{lab.addr('m1')}:2377")  # fmt: skip
    rc, _, err = m3.run(*join)
    assert rc != 0 and f"docker node demote {old_id}" in err and "docker node rm" in err, err
    cli.ok("node", "demote", old_id)
    wait_for(lambda: cli.run("node", "rm", old_id)[0] == 0, 30, what="the old manager removed")
    m3.ok(*join)
    wait_for(lambda: sorted(manager_status(cli).values()) == ["Leader", "Reachable",
             "Reachable"], 60, what="three managers again")  # fmt: skip


def test_every_host_stopped_and_started(lab: Lab) -> None:
    """The whole cluster stopped (every host, managers and workers) and started again: the
    swarm is back as it was, its services running as specified."""
    cli = answering(lab, MANAGERS)
    cli.converge("again", "--replicas", "3", "--constraint", "node.role==worker", lab.busybox,
                 "sleep", "3600")  # fmt: skip
    services = cli.json_lines("service", "ls")
    hosts = MANAGERS + WORKERS
    for short in hosts:
        lab.lab("stop", lab.node(short))
    for short in hosts:
        lab.lab("start", lab.node(short))
    cli = answering(lab, MANAGERS, timeout=90)
    wait_for(lambda: cli.service_row("again")["Replicas"] == "3/3", 90, what="again 3/3")
    assert [(s["ID"], s["Name"]) for s in cli.json_lines("service", "ls")] == [
        (s["ID"], s["Name"]) for s in services
    ]
    wait_for(lambda: {r["Status"] for r in cli.json_lines("node", "ls")} == {"Ready"}, 60,
             what="every node ready")  # fmt: skip
    cli.rm("again")
