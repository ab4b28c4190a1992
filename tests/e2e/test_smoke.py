"""The shortest path through shoal: init, a service, its containers, removal."""

from __future__ import annotations

import json

import pytest
from support import wait_for

pytestmark = pytest.mark.e2e


def test_service_create_ls_rm(swarm, engine, docker_cli):  # type: ignore[no-untyped-def]
    rc, out, err = docker_cli(
        swarm.host, "service", "create", "--name", "smoke", "--replicas", "2", "shoal-test/whoami:1"
    )
    assert rc == 0, err + swarm.log_tail()
    assert "converged" in out + err
    rc, out, _ = docker_cli(swarm.host, "service", "ls")
    assert "smoke" in out and "2/2" in out
    rc, out, _ = docker_cli(engine.host, "ps", "--format", "{{.Names}} {{.Labels}}")
    names = [line for line in out.splitlines() if line.startswith("smoke.")]
    assert len(names) == 2
    assert "com.docker.swarm.service.name=smoke" in names[0]
    rc, out, err = docker_cli(swarm.host, "service", "rm", "smoke")
    assert rc == 0 and out.strip() == "smoke"

    def gone() -> bool:
        _, out, _ = docker_cli(engine.host, "ps", "-a", "--format", "{{.Names}}")
        return not any(n.startswith("smoke.") for n in out.split())

    wait_for(gone, what="containers removed")
    rc, out, _ = docker_cli(swarm.host, "service", "ls", "--format", "{{json .}}")
    assert not [json.loads(line) for line in out.splitlines()]
