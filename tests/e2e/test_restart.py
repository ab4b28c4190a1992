"""shoald killed with SIGKILL and started again: nothing lost, nothing doubled."""

from __future__ import annotations

import json
import time

import pytest

pytestmark = pytest.mark.e2e


def wait_for(predicate, timeout=60.0, what="condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)
    return value


def task_containers(engine, docker_cli, service):  # type: ignore[no-untyped-def]
    _, out, _ = docker_cli(engine.host, "ps", "-a", "--filter",
                           f"label=com.docker.swarm.service.name={service}",
                           "--format", "{{.Names}} {{.State}}")
    return sorted(line.split() for line in out.splitlines())


def test_sigkill_and_restart_lose_nothing(swarm, engine, docker_cli):  # type: ignore[no-untyped-def]
    rc, _, err = docker_cli(swarm.host, "service", "create", "--name", "keep", "--replicas", "3",
                            "shoal-test/whoami:1")
    assert rc == 0, err
    before = task_containers(engine, docker_cli, "keep")
    assert len(before) == 3 and all(state == "running" for _, state in before)
    _, tasks_before, _ = docker_cli(swarm.host, "service", "ps", "-q", "keep")

    swarm.kill()
    # While shoald is down, one task container dies behind its back.
    victim = before[0][0]
    docker_cli(engine.host, "kill", victim)
    swarm.start()

    rc, out, _ = docker_cli(swarm.host, "node", "ls", "--format", "{{.Status}} {{.ManagerStatus}}")
    assert rc == 0 and out.split() == ["Ready", "Leader"] or wait_for(
        lambda: docker_cli(swarm.host, "node", "ls", "--format", "{{.ManagerStatus}}")[1].strip()
        == "Leader",
        what="leader again",
    )

    def converged():  # type: ignore[no-untyped-def]
        _, out, _ = docker_cli(swarm.host, "service", "ls", "--format", "{{.Name}} {{.Replicas}}")
        return out.split() == ["keep", "3/3"]

    def replaced():  # type: ignore[no-untyped-def]
        states = [s for _, s in task_containers(engine, docker_cli, "keep")]
        return states.count("running") == 3 and converged()

    wait_for(replaced, what="the killed task replaced")
    after = task_containers(engine, docker_cli, "keep")
    running = [name for name, state in after if state == "running"]
    assert len(running) == 3
    # The two untouched containers were adopted, not replaced.
    assert {n for n, _ in before[1:]} <= set(running)
    # The killed one's slot got a new task; the old task stays in the history.
    _, out, _ = docker_cli(swarm.host, "service", "ps", "--format", "{{.Name}} {{.CurrentState}}",
                           "keep")
    lines = out.splitlines()
    assert sum("Running" in line for line in lines) == 3
    assert any("Failed" in line for line in lines)
    assert set(tasks_before.split()) <= {
        t for t in docker_cli(swarm.host, "service", "ps", "-q", "keep")[1].split()
    }
    # One running container per slot, no duplicates.
    slots = [name.split(".")[1] for name in running]
    assert sorted(slots) == ["1", "2", "3"]

    # A clean stop and start works too, and the service is still there with its spec.
    swarm.stop()
    swarm.start()
    status, data = swarm.api("GET", "/v1.44/services/keep")
    assert status == 200 and json.loads(data)["Spec"]["Mode"]["Replicated"]["Replicas"] == 3
    wait_for(converged, what="3/3 after a clean restart")
    assert len([s for _, s in task_containers(engine, docker_cli, "keep") if s == "running"]) == 3
    docker_cli(swarm.host, "service", "rm", "keep")
