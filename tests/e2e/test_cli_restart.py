"""`shoald` killed with SIGKILL (its etcd with it) and started again: the swarm comes back from
etcd with no loss, the agent adopts the containers of current tasks (no duplicates, no
restarts), removes strays, notices what happened while it was down, and leaves other
containers alone. After a clean stop (SIGTERM) and start the services are still there and converge.
Checked with the stock docker CLI and on the engine.
Run with ``SHOAL_TEST_DOCKER_CLI=/usr/bin/docker`` for Debian's 20.10 client.
"""

from __future__ import annotations

import json
import secrets
import string
import time
from collections.abc import Callable
from typing import Any

import pytest
from support import BUSYBOX, WHOAMI, Cli, engine_containers, inspect, wait_for

pytestmark = pytest.mark.e2e


def started_at(engine: Any, cid: str) -> str:
    return inspect(engine, cid)["State"]["StartedAt"]


@pytest.fixture(scope="module")
def cli(swarm: Any, docker_cli: Any) -> Cli:
    return Cli(docker_cli, swarm.host, lambda: swarm.log_tail(60))


@pytest.fixture(scope="module")
def node_id(cli: Cli) -> str:
    return cli.ok("info", "--format", "{{.Swarm.NodeID}}").strip()


def restart(swarm: Any, docker_cli: Any, while_down: Callable[[], None] | None = None) -> None:
    swarm.kill()
    rc, _, _ = docker_cli(swarm.host, "service", "ls", timeout=30)
    assert rc != 0, "shoald still answering after SIGKILL"
    if while_down:
        while_down()
    swarm.start()


def snapshot(cli: Cli, engine: Any, node_id: str, services: list[str]) -> dict[str, Any]:
    """Everything that must survive a restart unchanged (ages like "3 seconds ago" left out)."""
    ctrs = engine_containers(engine, f"com.docker.swarm.node.id={node_id}")
    return {
        "services": sorted(
            (r["ID"], r["Name"], r["Mode"], r["Replicas"]) for r in cli.json_lines("service", "ls")
        ),
        "tasks": {
            s: sorted((t["ID"], t["Name"], t["DesiredState"], t["State"]) for t in cli.tasks(s))
            for s in services
        },
        "containers": sorted(
            (c["Id"], c["Names"][0], c["State"], started_at(engine, c["Id"])) for c in ctrs
        ),
    }


def test_sigkill_restart_loses_nothing(
    swarm: Any, cli: Cli, engine: Any, docker_cli: Any, node_id: str
) -> None:
    names = ["keep", "everywhere", "oneshot"]
    try:
        cli.create("keep", "--replicas", "3", WHOAMI)
        cli.create("everywhere", "--mode", "global", WHOAMI)
        cli.create("oneshot", "--mode", "replicated-job", "--replicas", "2", BUSYBOX, "true")

        def converged() -> bool:
            rows = {r["Name"]: r["Replicas"] for r in cli.json_lines("service", "ls")}
            return (
                rows.get("keep") == "3/3"
                and rows.get("everywhere") == "1/1"
                and "(2/2 completed)" in rows.get("oneshot", "")
            )

        wait_for(converged, what="all three services converged", log=cli.log)
        before = snapshot(cli, engine, node_id, names)
        assert len(before["containers"]) == 6, before["containers"]

        restart(swarm, docker_cli)
        assert cli.ok("info", "--format", "{{.Swarm.LocalNodeState}}").strip() == "active"
        wait_for(
            lambda: cli.json_lines("node", "ls")[0]["Status"] == "Ready",
            what="the node Ready again",
            log=cli.log,
        )
        # Unchanged now, and still unchanged a little later (no late duplicates or restarts).
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            after = snapshot(cli, engine, node_id, names)
            assert after == before, (
                f"state changed across the restart:\nbefore: {before}\n"
                f"after:  {after}\n--- shoald log ---\n{cli.log()}"
            )
            time.sleep(0.5)
        (row,) = cli.json_lines("node", "ls")
        assert (row["ID"], row["ManagerStatus"]) == (node_id, "Leader"), row

        # And it still works.
        keep_id = cli.ok("service", "inspect", "--format", "{{.ID}}", "keep").strip()
        cli.ok("service", "scale", "-d", "keep=4")
        wait_for(
            lambda: (
                len(engine_containers(engine, f"com.docker.swarm.service.id={keep_id}", all=False))
                == 4
            ),
            what="keep scaled to 4 after the restart",
            log=cli.log,
        )
    finally:
        cli.run("service", "rm", *names)


def test_changes_while_down(
    swarm: Any, cli: Cli, engine: Any, docker_cli: Any, node_id: str
) -> None:
    sid = cli.create("heal", "--replicas", "2", "--restart-delay", "200ms", WHOAMI)
    bogus = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(25))
    stray_name = f"heal.7.{bogus}"
    bystander = f"bystander-{bogus[:8]}"
    label = f"com.docker.swarm.service.id={sid}"
    try:
        wait_for(
            lambda: len(engine_containers(engine, label, all=False)) == 2,
            what="heal running",
            log=cli.log,
        )
        victim = engine_containers(engine, label)[0]
        victim_task = victim["Labels"]["com.docker.swarm.task.id"]
        survivor = next(c for c in engine_containers(engine, label) if c["Id"] != victim["Id"])
        survivor_started = started_at(engine, survivor["Id"])

        def meanwhile() -> None:
            rc, _, err = docker_cli(engine.host, "kill", victim["Id"])
            assert rc == 0, err
            # A container that looks like one of our tasks, but is no task of the swarm.
            rc, _, err = docker_cli(
                engine.host,
                "run",
                "-d",
                "--name",
                stray_name,
                "--label",
                f"com.docker.swarm.node.id={node_id}",
                "--label",
                f"com.docker.swarm.service.id={sid}",
                "--label",
                "com.docker.swarm.service.name=heal",
                "--label",
                f"com.docker.swarm.task.id={bogus}",
                "--label",
                f"com.docker.swarm.task.name={stray_name}",
                WHOAMI,
            )
            assert rc == 0, err
            # A container that has nothing to do with the swarm.
            rc, _, err = docker_cli(engine.host, "run", "-d", "--name", bystander, WHOAMI)
            assert rc == 0, err

        restart(swarm, docker_cli, meanwhile)

        def stray_gone() -> bool:
            rc, _, _ = docker_cli(engine.host, "inspect", stray_name)
            return rc != 0

        wait_for(stray_gone, what="the stray container removed", log=cli.log)

        def healed() -> list[dict[str, Any]]:
            tasks = cli.tasks("heal")
            live = [t for t in tasks if t["DesiredState"] == "Running" and t["State"] == "Running"]
            return tasks if len(live) == 2 and victim_task not in {t["ID"] for t in live} else []

        tasks = wait_for(healed, what="the task killed while shoald was down replaced", log=cli.log)
        old = next(t for t in tasks if t["ID"] == victim_task)
        assert (old["DesiredState"], old["State"]) == ("Shutdown", "Failed"), old
        assert sorted(t["Name"] for t in tasks if t["State"] == "Running") == ["heal.1", "heal.2"]
        live = engine_containers(engine, label, all=False)
        assert len(live) == 2 and survivor["Id"] in {c["Id"] for c in live}, live
        assert started_at(engine, survivor["Id"]) == survivor_started, "survivor was restarted"
        rc, out, _ = docker_cli(engine.host, "inspect", "--format", "{{.State.Running}}", bystander)
        assert (rc, out.strip()) == (0, "true"), "a non-swarm container was touched"
    finally:
        cli.run("service", "rm", "heal")
        docker_cli(engine.host, "rm", "-f", stray_name, bystander)


def test_sigkill_during_scale_up(swarm: Any, cli: Cli, engine: Any, docker_cli: Any) -> None:
    sid = cli.create("burst", WHOAMI)
    label = f"com.docker.swarm.service.id={sid}"
    try:
        wait_for(
            lambda: engine_containers(engine, label, all=False), what="burst.1 running", log=cli.log
        )
        cli.ok("service", "scale", "-d", "burst=8")
        time.sleep(0.3)  # let the orchestrator and the agent be mid-way
        restart(swarm, docker_cli)

        wait_for(
            lambda: len(engine_containers(engine, label, all=False)) == 8,
            timeout=45,
            what="8 burst containers running",
            log=cli.log,
        )
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            ctrs = engine_containers(engine, label)
            tasks = [t for t in cli.tasks("burst") if t["DesiredState"] == "Running"]
            assert len(ctrs) == 8, f"{len(ctrs)} containers for 8 replicas: " + str(
                sorted(c["Names"][0] for c in ctrs)
            )
            assert sorted(t["Name"] for t in tasks) == [f"burst.{i}" for i in range(1, 9)], tasks
            assert {c["Labels"]["com.docker.swarm.task.id"] for c in ctrs} == {
                t["ID"] for t in tasks
            }
            time.sleep(0.5)
    finally:
        cli.run("service", "rm", "burst")


def test_clean_stop_and_start(swarm: Any, cli: Cli, engine: Any) -> None:
    """shoald stopped cleanly (SIGTERM) and started again: the service is still there with its
    spec and converges with the same number of running containers."""
    sid = cli.create("calm", "--replicas", "3", WHOAMI)
    label = f"com.docker.swarm.service.id={sid}"

    def running() -> list[dict[str, Any]]:
        return [c for c in engine_containers(engine, label) if c["State"] == "running"]

    try:
        wait_for(lambda: len(running()) == 3, what="3 calm containers running", log=cli.log)
        status, data = swarm.api("GET", "/v1.44/services/calm")
        assert status == 200, data
        spec = json.loads(data)["Spec"]

        swarm.stop()
        swarm.start()
        status, data = swarm.api("GET", "/v1.44/services/calm")
        assert status == 200, data
        service = json.loads(data)
        assert service["ID"] == sid and service["Spec"] == spec, (spec, service)
        assert service["Spec"]["Mode"]["Replicated"]["Replicas"] == 3
        wait_for(
            lambda: cli.service_row("calm")["Replicas"] == "3/3",
            timeout=60,
            what="3/3 after a clean restart",
            log=cli.log,
        )
        assert len(running()) == 3, running()
    finally:
        cli.rm("calm")
