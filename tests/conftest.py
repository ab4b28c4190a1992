"""Shared fixtures.

* ``engine`` (session): a real dockerd in its own network/UTS/mount namespaces
  (``shoal.testing.dockerd.IsolatedEngine``) with the test images (``shoal.testing.images``) built.
  Its API socket ``engine.host`` works from any namespace; published ports of its
  containers are reached from inside its namespace (``engine.http_get(port, path)``,
  ``engine.run_in_ns([...])``).
* ``docker_cli`` (session): ``docker_cli(host, *args, input=None, timeout=120)`` →
  ``(rc, stdout, stderr)``, running the docker client chosen by ``SHOAL_TEST_DOCKER_CLI``
  (default ``docker`` from PATH) with ``DOCKER_HOST=host``.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator

import pytest

from shoal.testing.dockerd import IsolatedEngine
from shoal.testing.images import ensure_test_images
from shoal.testing.shoald import Shoald

DockerCLI = Callable[..., tuple[int, str, str]]


def docker_cli(
    host: str, *args: str, input: str | None = None, timeout: float = 120.0
) -> tuple[int, str, str]:
    """Run the docker CLI against host; returns (returncode, stdout, stderr)."""
    binary = os.environ.get("SHOAL_TEST_DOCKER_CLI", "docker")
    env = dict(os.environ, DOCKER_HOST=host)
    for var in ("DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"):
        env.pop(var, None)
    proc = subprocess.run(
        [binary, *args],
        env=env,
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(name="docker_cli", scope="session")
def docker_cli_fixture() -> DockerCLI:
    return docker_cli


@pytest.fixture(scope="session")
def engine() -> Iterator[IsolatedEngine]:
    """A real, isolated dockerd with the shoal-test/* images; stopped after the session."""
    eng = IsolatedEngine(hostname="shoal-test-engine").start()
    try:
        ensure_test_images(eng.host)
        yield eng
    finally:
        eng.stop()


@pytest.fixture(scope="module")
def shoald(engine: IsolatedEngine) -> Iterator[Shoald]:
    """A real shoald inside the engine's namespaces ("that host"), outside any swarm."""
    daemon = Shoald(engine).start()
    try:
        yield daemon
    finally:
        if daemon.proc is not None:
            docker_cli(daemon.host, "swarm", "leave", "--force", timeout=60)
        log = daemon.log_tail(200)
        daemon.cleanup()
        if os.environ.get("SHOAL_TEST_DEBUG"):
            print(log)


@pytest.fixture(scope="module")
def swarm(shoald: Shoald) -> Shoald:
    """`shoald` after `docker swarm init`: a one-node swarm."""
    rc, out, err = docker_cli(shoald.host, "swarm", "init", "--advertise-addr", "127.0.0.1")
    assert rc == 0, err + shoald.log_tail()
    return shoald
