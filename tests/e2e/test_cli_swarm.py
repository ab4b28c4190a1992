"""`docker swarm …`, `docker info`, `docker node …` end to end with the stock docker CLI.

The module's shoald starts outside any swarm; the `init` fixture records what the CLI says
before and at `docker swarm init`. `test_leave_force` runs last (it leaves and re-inits).
Run with ``SHOAL_TEST_DOCKER_CLI=/usr/bin/docker`` for Debian's 20.10 client.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest
from support import NOT_MANAGER, SWARM_ID, WHOAMI, Cli, containers, wait_for

pytestmark = pytest.mark.e2e

TOKEN = re.compile(r"^SWMTKN-1-([0-9a-z]{50})-([0-9a-z]{25})$")


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def cli(shoald: Any, docker_cli: Any) -> Cli:
    return Cli(docker_cli, shoald.host, lambda: shoald.log_tail(40))


@pytest.fixture(scope="module")
def init(cli: Cli) -> dict[str, Any]:
    """What the CLI says before `swarm init`, and the result of `swarm init`."""
    result: dict[str, Any] = {
        "before_node_ls": cli.run("node", "ls"),
        "before_service_ls": cli.run("service", "ls"),
        "before_secret_ls": cli.run("secret", "ls"),
        "before_overlay": cli.run("network", "create", "-d", "overlay", "before"),
        "before_state": cli.ok("info", "--format", "{{.Swarm.LocalNodeState}}").strip(),
    }
    result["init"] = cli.run("swarm", "init", "--advertise-addr", "127.0.0.1")
    assert result["init"][0] == 0, result["init"]
    result["node_id"] = cli.ok("info", "--format", "{{.Swarm.NodeID}}").strip()
    return result


# --------------------------------------------------------------------------- init, info


def test_before_init(init: dict[str, Any]) -> None:
    assert init["before_state"] == "inactive"
    for key in ("before_node_ls", "before_service_ls", "before_secret_ls", "before_overlay"):
        rc, _, err = init[key]
        assert rc != 0 and NOT_MANAGER in err, (key, err)


def test_init_prints_join_command(init: dict[str, Any], cli: Cli) -> None:
    _, out, _ = init["init"]
    node_id = init["node_id"]
    assert SWARM_ID.match(node_id), node_id
    assert f"Swarm initialized: current node ({node_id}) is now a manager." in out, out
    assert "To add a worker to this swarm, run the following command:" in out, out
    m = re.search(r"^\s+docker swarm join --token (\S+) 127\.0\.0\.1:2377$", out, re.M)
    assert m, out
    assert TOKEN.match(m.group(1)), m.group(1)
    assert m.group(1) == cli.ok("swarm", "join-token", "-q", "worker").strip()
    assert "run 'docker swarm join-token manager'" in out, out
    # A second init is refused with Docker's wording.
    rc, _, err = cli.run("swarm", "init", "--advertise-addr", "127.0.0.1")
    assert rc != 0 and "This node is already part of a swarm." in err, err


def test_info_swarm_section(init: dict[str, Any], cli: Cli) -> None:
    text = cli.ok("info")
    section = text[text.index(" Swarm: ") :]
    for expected in (
        " Swarm: active",
        f"  NodeID: {init['node_id']}",
        "  Is Manager: true",
        "  Managers: 1",
        "  Nodes: 1",
        "  Orchestration:",
        "   Task History Retention Limit: 5",
        "  Raft:",
        "   Snapshot Interval:",
        "   Heartbeat Tick:",
        "   Election Tick:",
        "  Dispatcher:",
        "   Heartbeat Period:",
        "  CA Configuration:",
        "   Expiry Duration:",
        "  Node Address: 127.0.0.1",
        "  Manager Addresses:",
        "   127.0.0.1:2377",
    ):
        assert expected in section, f"{expected!r} missing from docker info:\n{section}"
    assert re.search(r"^  ClusterID: [0-9a-z]{25}$", section, re.M), section

    sw = json.loads(cli.ok("info", "--format", "{{json .Swarm}}"))
    assert sw["LocalNodeState"] == "active" and sw["ControlAvailable"] is True, sw
    assert (sw["Nodes"], sw["Managers"], sw["NodeAddr"]) == (1, 1, "127.0.0.1"), sw
    assert sw["RemoteManagers"] == [{"NodeID": init["node_id"], "Addr": "127.0.0.1:2377"}], sw
    spec = sw["Cluster"]["Spec"]
    assert spec["Name"] == "default"
    assert spec["Orchestration"]["TaskHistoryRetentionLimit"] == 5
    assert spec["Raft"]["ElectionTick"] > spec["Raft"]["HeartbeatTick"] > 0, spec["Raft"]
    assert spec["Dispatcher"]["HeartbeatPeriod"] > 0, spec["Dispatcher"]


# --------------------------------------------------------------------------- nodes


def test_node_ls(init: dict[str, Any], cli: Cli, engine: Any) -> None:
    table = cli.ok("node", "ls")
    hostname = cli.ok("info", "--format", "{{.Name}}").strip()
    assert re.search(
        rf"^{init['node_id']} \*\s+{re.escape(hostname)}\s+Ready\s+Active\s+Leader\s+\S+",
        table,
        re.M,
    ), table
    (row,) = cli.json_lines("node", "ls")
    assert row["Self"] is True and row["ManagerStatus"] == "Leader", row
    assert (row["Status"], row["Availability"]) == ("Ready", "Active"), row
    assert cli.ok("node", "ls", "-q").split() == [init["node_id"]]
    assert cli.ok("node", "ls", "-q", "--filter", "role=manager").split() == [init["node_id"]]
    assert cli.ok("node", "ls", "-q", "--filter", "role=worker").split() == []


def test_node_inspect(init: dict[str, Any], cli: Cli) -> None:
    hostname = cli.ok("info", "--format", "{{.Name}}").strip()
    pretty = cli.ok("node", "inspect", "self", "--pretty")
    for expected in (
        f"ID:\t\t\t{init['node_id']}",
        f"Hostname:              \t{hostname}",
        "State:\t\t\tReady",
        "Availability:         \tActive",
        "Address:\t\t127.0.0.1",
        "Leader:\t\tYes",
        "Address:\t\t127.0.0.1:2377",
        "Operating System:\tlinux",
        "Engine Version:",
    ):
        assert expected in pretty, f"{expected!r} not in:\n{pretty}"
    (node,) = json.loads(cli.ok("node", "inspect", "self"))
    assert node["ID"] == init["node_id"]
    assert node["Spec"]["Role"] == "manager" and node["Spec"]["Availability"] == "active"
    assert node["Description"]["Hostname"] == hostname
    assert node["ManagerStatus"] == {
        "Leader": True,
        "Reachability": "reachable",
        "Addr": "127.0.0.1:2377",
    }, node["ManagerStatus"]
    assert node["Status"]["State"] == "ready" and node["Status"]["Addr"] == "127.0.0.1"
    # By ID prefix and by hostname, as the CLI passes them through.
    assert (
        cli.ok("node", "inspect", "--format", "{{.ID}}", init["node_id"][:5]).strip()
        == init["node_id"]
    )
    assert cli.ok("node", "inspect", "--format", "{{.ID}}", hostname).strip() == init["node_id"]


def test_node_update_self(init: dict[str, Any], cli: Cli) -> None:
    """The issue's `docker node update --availability … --label-add k=v self`.

    The CLI resolves `self` only for `node inspect/ps`; `node update self` sends
    `GET /nodes/self`, which Docker's own daemon answers `node self not found`. The issue asks
    for it to work, so shoald must resolve `self` (when no node is named so) to this node."""
    try:
        assert (
            cli.ok(
                "node", "update", "--availability", "pause", "--label-add", "k=v", "self"
            ).strip()
            == "self"
        )
        spec = json.loads(cli.ok("node", "inspect", "--format", "{{json .Spec}}", "self"))
        assert spec["Availability"] == "pause" and spec["Labels"] == {"k": "v"}, spec
    finally:
        cli.run("node", "update", "--availability", "active", "--label-rm", "k", init["node_id"])


def test_node_labels_and_availability(init: dict[str, Any], cli: Cli) -> None:
    nid = init["node_id"]
    assert (
        cli.ok("node", "update", "--label-add", "zone=a", "--label-add", "ssd", nid).strip() == nid
    )
    spec = json.loads(cli.ok("node", "inspect", "--format", "{{json .Spec}}", nid))
    assert spec["Labels"] == {"zone": "a", "ssd": ""}, spec
    cli.ok("node", "update", "--label-rm", "zone", "--label-rm", "ssd", nid)
    rc, _, err = cli.run("node", "update", "--label-rm", "nope", nid)
    assert rc != 0 and "key nope doesn't exist in node's labels" in err, err
    for availability in ("pause", "drain", "active"):
        cli.ok("node", "update", "--availability", availability, nid)
        (row,) = cli.json_lines("node", "ls")
        assert row["Availability"] == availability.capitalize(), row
    spec = json.loads(cli.ok("node", "inspect", "--format", "{{json .Spec}}", nid))
    assert spec == {"Labels": {}, "Role": "manager", "Availability": "active"}, spec


def test_drain_pause_active_move_tasks(init: dict[str, Any], cli: Cli, engine: Any) -> None:
    nid = init["node_id"]
    sid = cli.ok("service", "create", "-d", "--name", "mover", "--replicas", "2", WHOAMI).strip()
    not_available = "no suitable node (1 node not available for new tasks)"
    try:
        wait_for(
            lambda: len(containers(engine, sid, all=False)) == 2, what="2 running", log=cli.log
        )
        first = {c["Id"] for c in containers(engine, sid)}

        # drain: the tasks leave the node; their replacements wait, explained.
        cli.ok("node", "update", "--availability", "drain", nid)
        wait_for(
            lambda: not containers(engine, sid, all=False),
            what="containers stopped after drain",
            log=cli.log,
        )

        def explained() -> list[dict[str, Any]]:
            tasks = cli.tasks("mover")
            return [
                t
                for t in tasks
                if t["DesiredState"] == "Running"
                and t["State"] == "Pending"
                and not_available in t["Error"]
            ]

        assert (
            len(wait_for(explained, what="2 pending tasks with the drain explanation", log=cli.log))
            == 2
        )

        def old_shut_down() -> list[dict[str, Any]]:
            old = [t for t in cli.tasks("mover") if t["DesiredState"] == "Shutdown"]
            return old if len(old) == 2 and {t["State"] for t in old} == {"Shutdown"} else []

        wait_for(old_shut_down, timeout=10, what="the drained tasks reported Shutdown", log=cli.log)
        assert cli.json_lines("service", "ls")[0]["Replicas"] == "0/2"

        # pause: nothing new is placed either.
        cli.ok("node", "update", "--availability", "pause", nid)
        time.sleep(0.5)
        assert not containers(engine, sid, all=False)
        assert len(explained()) == 2

        # active: the pending tasks run.
        cli.ok("node", "update", "--availability", "active", nid)
        wait_for(
            lambda: len(containers(engine, sid, all=False)) == 2,
            what="2 running again after active",
            log=cli.log,
        )
        assert not first & {c["Id"] for c in containers(engine, sid, all=False)}

        # pause with tasks running: they stay; a scale-up waits, explained.
        cli.ok("node", "update", "--availability", "pause", nid)
        running_before = {c["Id"] for c in containers(engine, sid, all=False)}
        cli.ok("service", "scale", "-d", "mover=3")
        (extra,) = wait_for(explained, what="mover.3 pending while paused", log=cli.log)
        assert extra["Name"] == "mover.3", extra
        assert {c["Id"] for c in containers(engine, sid, all=False)} == running_before
        cli.ok("node", "update", "--availability", "active", nid)
        wait_for(
            lambda: len(containers(engine, sid, all=False)) == 3,
            what="mover.3 running",
            log=cli.log,
        )

        node_ps = cli.json_lines("node", "ps", "self")
        assert len([r for r in node_ps if r["DesiredState"] == "Running"]) == 3, node_ps
    finally:
        cli.run("node", "update", "--availability", "active", nid)
        cli.run("service", "rm", "mover")


# --------------------------------------------------------------------------- join tokens


def test_join_tokens(init: dict[str, Any], cli: Cli) -> None:
    worker = cli.ok("swarm", "join-token", "-q", "worker").strip()
    manager = cli.ok("swarm", "join-token", "-q", "manager").strip()
    mw, mm = TOKEN.match(worker), TOKEN.match(manager)
    assert mw and mm, (worker, manager)
    assert mw.group(1) == mm.group(1), "both tokens pin the same root CA"
    assert mw.group(2) != mm.group(2)

    out = cli.ok("swarm", "join-token", "worker")
    assert "To add a worker to this swarm, run the following command:" in out, out
    assert f"docker swarm join --token {worker} 127.0.0.1:2377" in out, out
    out = cli.ok("swarm", "join-token", "manager")
    assert "To add a manager to this swarm, run the following command:" in out, out
    assert f"docker swarm join --token {manager} 127.0.0.1:2377" in out, out

    out = cli.ok("swarm", "join-token", "--rotate", "worker")
    assert "Successfully rotated worker join token." in out, out
    rotated = cli.ok("swarm", "join-token", "-q", "worker").strip()
    assert rotated != worker and TOKEN.match(rotated), (worker, rotated)
    assert rotated in out
    assert cli.ok("swarm", "join-token", "-q", "manager").strip() == manager

    new_manager = cli.ok("swarm", "join-token", "-q", "--rotate", "manager").strip()
    assert new_manager != manager and TOKEN.match(new_manager), new_manager
    assert cli.ok("swarm", "join-token", "-q", "manager").strip() == new_manager
    assert cli.ok("swarm", "join-token", "-q", "worker").strip() == rotated

    rc, _, err = cli.run("swarm", "join-token", "janitor")
    assert rc != 0 and "unknown role janitor" in err, err


# --------------------------------------------------------------------------- leave (last)


def test_engine_networks_pass_through(init: dict[str, Any], cli: Cli) -> None:
    """On a manager, the engine's own (local) networks still work through shoald."""
    cli.ok("network", "create", "-d", "bridge", "local-br")
    assert "local-br" in cli.ok("network", "ls", "--format", "{{.Name}}").split()
    cli.ok("network", "rm", "local-br")


def test_overlay_networks_in_the_cli(init: dict[str, Any], cli: Cli) -> None:
    """`docker network create -d overlay` / ls / inspect / rm with the stock CLI, and its
    refusals in Docker's words (the data plane is tested on labs)."""
    net_id = cli.ok(
        "network", "create", "-d", "overlay", "--subnet", "10.44.0.0/24", "--attachable",
        "--label", "team=a", "appnet",
    ).strip()  # fmt: skip
    assert SWARM_ID.match(net_id), net_id
    rows = {r["Name"]: r for r in cli.json_lines("network", "ls")}
    assert rows["appnet"]["Driver"] == "overlay" and rows["appnet"]["Scope"] == "swarm"
    assert rows["appnet"]["ID"] == net_id[:12]
    assert {"bridge", "host", "none"} <= set(rows)  # the engine's own, beside it
    (inspected,) = json.loads(cli.ok("network", "inspect", "appnet"))
    assert inspected["Id"] == net_id and inspected["Attachable"] is True
    assert inspected["IPAM"]["Config"] == [{"Subnet": "10.44.0.0/24", "Gateway": "10.44.0.1"}]
    assert inspected["Labels"] == {"team": "a"}
    assert json.loads(cli.ok("network", "inspect", net_id[:6]))[0]["Name"] == "appnet"
    auto = cli.ok("network", "create", "-d", "overlay", "autonet").strip()
    (a,) = json.loads(cli.ok("network", "inspect", auto))
    assert a["IPAM"]["Config"][0]["Subnet"].startswith("10.0.")
    for args, text in (
        (["network", "create", "-d", "overlay", "appnet"],
         "network with name appnet already exists"),
        (["network", "create", "-d", "overlay", "--subnet", "10.44.0.128/25", "x"],
         "Pool overlaps with other one on this address space"),
        (["network", "create", "-d", "overlay", "--subnet", "10.45.0.0/24", "--gateway",
          "10.46.0.1", "x"], "no matching subnet for gateway 10.46.0.1"),  # the CLI checks
        (["network", "inspect", "nonesuch"], "nonesuch"),
    ):  # fmt: skip
        rc, _, err = cli.run(*args)
        assert rc != 0 and text in err, (args, err)
    cli.ok("service", "create", "-d", "--name", "netuser", "--network", "appnet", WHOAMI)
    spec = json.loads(cli.ok("service", "inspect", "netuser"))[0]["Spec"]
    assert spec["TaskTemplate"]["Networks"] == [{"Target": net_id}]
    rc, _, err = cli.run("network", "rm", "appnet")
    assert rc != 0 and "network appnet is in use by service" in err, err
    cli.ok("service", "rm", "netuser")
    wait_for(lambda: cli.run("network", "rm", "appnet")[0] == 0, timeout=30,
             what="appnet removed once unused", log=cli.log)  # fmt: skip
    cli.ok("network", "rm", "autonet")
    names = cli.ok("network", "ls", "--format", "{{.Name}}").split()
    assert "appnet" not in names and "autonet" not in names


def test_no_key_or_token_secret_in_plaintext_in_etcd(
    init: dict[str, Any], cli: Cli, shoald: Any
) -> None:
    """The root CA's private key and the join tokens' secrets are sealed before they reach
    etcd: none of them is anywhere in its data directory (database, WAL, snapshots), not even
    the tokens replaced by a rotation."""
    tokens = [cli.ok("swarm", "join-token", "-q", role).strip() for role in ("worker", "manager")]
    cli.ok("swarm", "join-token", "--rotate", "worker")
    tokens.append(cli.ok("swarm", "join-token", "-q", "worker").strip())
    assert len(set(tokens)) == 3
    secrets = [TOKEN.match(t).group(2).encode() for t in tokens]  # type: ignore[union-attr]
    etcd_dir = shoald.state_dir / "swarm" / "etcd"
    files = [f for f in etcd_dir.rglob("*") if f.is_file()]
    assert any(f.suffix == ".wal" for f in files) and any(f.name == "db" for f in files)
    # The swarm's objects are there in plaintext (so the search can find things)...
    blob = b"".join(f.read_bytes() for f in files)
    assert init["node_id"].encode() in blob
    # ...but no private key and no token secret.
    assert b"PRIVATE KEY" not in blob
    for secret in secrets:
        assert secret not in blob


def test_leave_force(init: dict[str, Any], cli: Cli, engine: Any) -> None:
    cluster = cli.ok("info", "--format", "{{.Swarm.Cluster.ID}}").strip()
    sid = cli.ok("service", "create", "-d", "--name", "left-behind", WHOAMI).strip()
    wait_for(lambda: containers(engine, sid, all=False), what="left-behind running", log=cli.log)
    rc, _, err = cli.run("swarm", "leave")
    assert rc != 0 and "--force" in err, "leaving the last manager must need --force: " + err

    out = cli.ok("swarm", "leave", "--force")
    assert "Node left the swarm." in out, out
    assert cli.ok("info", "--format", "{{.Swarm.LocalNodeState}}").strip() == "inactive"
    rc, _, err = cli.run("node", "ls")
    assert rc != 0 and NOT_MANAGER in err, err
    wait_for(
        lambda: not containers(engine, sid), what="the swarm's containers removed", log=cli.log
    )

    # A fresh swarm: new cluster, nothing of the old one.
    cli.ok("swarm", "init", "--advertise-addr", "127.0.0.1")
    assert cli.ok("info", "--format", "{{.Swarm.Cluster.ID}}").strip() != cluster
    assert cli.ok("service", "ls", "-q").split() == []
    assert len(cli.ok("node", "ls", "-q").split()) == 1
