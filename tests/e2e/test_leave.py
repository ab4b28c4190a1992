"""`docker swarm leave --force` finishes within seconds whatever the node is doing: tasks
starting, image pulls hanging on a registry that never answers, containers running."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest
from support import BUSYBOX, Cli, containers, wait_for

pytestmark = pytest.mark.e2e

LEAVE_LIMIT = 20.0  # the CLI is given this long; a hang fails the test


@pytest.fixture(scope="module")
def cli(swarm: Any, docker_cli: Any) -> Cli:
    return Cli(docker_cli, swarm.host, lambda: swarm.log_tail(60))


def test_leave_while_pulls_hang_and_tasks_run(
    cli: Cli, swarm: Any, engine: Any, docker_cli: Any
) -> None:
    # A "registry" in the engine's network namespace that accepts connections and never
    # answers: every pull of its images hangs.
    silent = engine.socket(socket.AF_INET, socket.SOCK_STREAM)
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    port = silent.getsockname()[1]
    try:
        image = f"127.0.0.1:{port}/nothing/here:1"
        cli.create("stuck", "--replicas", "4", "--no-resolve-image", image)
        cli.create("busy", "--replicas", "3", BUSYBOX, "sleep", "1000")
        wait_for(
            lambda: len([t for t in cli.tasks("busy") if t["State"] == "Running"]) == 3,
            timeout=60, what="busy running", log=cli.log,
        )  # fmt: skip
        preparing = [t for t in cli.tasks("stuck") if t["State"] in ("Preparing", "Assigned")]
        assert preparing, cli.tasks("stuck")  # the pulls are pending
        service_id = cli.ok("service", "inspect", "--format", "{{.ID}}", "busy").strip()
        rc, out, err = docker_cli(swarm.host, "swarm", "leave", "--force", timeout=LEAVE_LIMIT)
        assert rc == 0, (out, err, swarm.log_tail(60))
        assert "Node left the swarm." in out
        state = cli.ok("info", "--format", "{{.Swarm.LocalNodeState}}").strip()
        assert state == "inactive"
        assert containers(engine, service_id) == []  # its task containers are gone
    finally:
        silent.close()
    # And the node can start a swarm again.
    rc, _, err = docker_cli(swarm.host, "swarm", "init", "--advertise-addr", "127.0.0.1")
    assert rc == 0, err
    time.sleep(0.5)
