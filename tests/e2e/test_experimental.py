"""An engine started with `--experimental` is reported so through shoald (`/_ping`'s header
and `/version`), so the CLI lets `docker checkpoint …` through to the engine; one without
it is not. (On this machine's kernel CRIU itself cannot dump: Debian's criu 3.17 fails its
vDSO check, so `checkpoint create` gets the engine's CRIU error rather than a checkpoint.)"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from support import BUSYBOX, Cli

from shoal.testing.dockerd import IsolatedEngine
from shoal.testing.images import ensure_test_images
from shoal.testing.shoald import Shoald

pytestmark = pytest.mark.e2e

REFUSED = "only supported on a Docker daemon with experimental features enabled"


@pytest.fixture(scope="module")
def experimental_cli(docker_cli: Any) -> Iterator[Cli]:
    engine = IsolatedEngine(hostname="shoal-test-experimental", extra_args=["--experimental"])
    engine.start()
    daemon = None
    try:
        ensure_test_images(engine.host, (BUSYBOX,))
        daemon = Shoald(engine).start()
        yield Cli(docker_cli, daemon.host, lambda: daemon.log_tail(40) if daemon else "")
    finally:
        if daemon is not None:
            daemon.cleanup()
        engine.stop()


def test_experimental_engine_is_reported(experimental_cli: Cli) -> None:
    cli = experimental_cli
    assert cli.ok("version", "--format", "{{.Server.Experimental}}").strip() == "true"
    cli.ok("run", "-d", "--name", "ckpt", BUSYBOX, "sleep", "1000")
    try:
        assert cli.ok("checkpoint", "ls", "ckpt").split() == ["CHECKPOINT", "NAME"]
        rc, _, err = cli.run("checkpoint", "create", "ckpt", "cp1")
        assert REFUSED not in err, err
        if rc == 0:  # a kernel where CRIU works
            assert "cp1" in cli.ok("checkpoint", "ls", "ckpt")
        else:
            assert "Error response from daemon" in err and "criu" in err.lower(), err
    finally:
        cli.run("rm", "-f", "ckpt")


def test_plain_engine_is_not(shoald: Any, docker_cli: Any) -> None:
    cli = Cli(docker_cli, shoald.host, lambda: shoald.log_tail(40))
    assert cli.ok("version", "--format", "{{.Server.Experimental}}").strip() == "false"
    rc, _, err = cli.run("checkpoint", "ls", "anything")
    assert rc != 0 and REFUSED in err, err
