"""Everything that is not swarm goes through shoald to the local engine: `docker run/ps/logs/
exec/images …` with the stock CLI pointed at shoald's socket. Exercises the proxy's plain
requests, streams (logs -f, attach) and connection upgrades (exec, run -i).
Run with ``SHOAL_TEST_DOCKER_CLI=/usr/bin/docker`` for Debian's 20.10 client.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from support import BUSYBOX, Cli

pytestmark = pytest.mark.e2e

IDLE = 'echo started; echo oops >&2; trap "exit 0" TERM; while :; do sleep 0.2; done'


@pytest.fixture(scope="module")
def cli(shoald: Any, docker_cli: Any) -> Cli:
    return Cli(docker_cli, shoald.host, lambda: shoald.log_tail(40), timeout=60.0)


@pytest.fixture(scope="module")
def engine_cli(engine: Any, docker_cli: Any) -> Cli:
    """The same CLI talking to the engine directly: what the proxy must agree with."""
    return Cli(docker_cli, engine.host, lambda: engine.log_tail(40), timeout=60.0)


@pytest.fixture
def idle(cli: Cli) -> Iterator[str]:
    """A running busybox container created through shoald; its name."""
    name = f"proxy-idle-{time.monotonic_ns()}"
    cli.ok("run", "-d", "--name", name, BUSYBOX, "sh", "-c", IDLE)
    yield name
    cli.run("rm", "-f", name)


def test_version_and_ping(cli: Cli, engine_cli: Cli) -> None:
    out = cli.ok("version", "--format", "{{.Server.APIVersion}} {{.Server.Os}}")
    assert out.split() == ["1.44", "linux"], out
    assert cli.ok("info", "--format", "{{.Name}}") == engine_cli.ok("info", "--format", "{{.Name}}")


def test_run_rm_echo(cli: Cli) -> None:
    rc, out, err = cli.run("run", "--rm", BUSYBOX, "echo", "hi")
    assert (rc, out) == (0, "hi\n"), (rc, out, err)
    # The exit status and both streams come back through the attach.
    rc, out, err = cli.run("run", "--rm", BUSYBOX, "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (rc, out, err) == (3, "out\n", "err\n"), (rc, out, err)


def test_run_interactive_stdin(cli: Cli) -> None:
    text = "".join(f"line {i}\n" for i in range(200))
    rc, out, err = cli.run("run", "--rm", "-i", BUSYBOX, "cat", input=text)
    assert rc == 0 and out == text, (rc, out[-200:], err)


def test_ps_logs_inspect(cli: Cli, engine_cli: Cli, idle: str) -> None:
    rows = [
        json.loads(line)
        for line in cli.ok("ps", "--filter", f"name={idle}", "--format", "{{json .}}").splitlines()
    ]
    assert len(rows) == 1 and rows[0]["Names"] == idle and rows[0]["Image"] == BUSYBOX, rows
    assert rows[0]["State"] == "running", rows
    assert cli.ok("ps", "-q", "--no-trunc", "--filter", f"name={idle}") == engine_cli.ok(
        "ps", "-q", "--no-trunc", "--filter", f"name={idle}"
    )

    def logged() -> tuple[int, str, str]:
        return cli.run("logs", idle)

    deadline = time.monotonic() + 10
    while (res := logged())[1] != "started\n" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert res == (0, "started\n", "oops\n"), res
    rc, out, _ = cli.run("logs", "-t", idle)
    assert rc == 0 and out.split(" ", 1)[1] == "started\n" and out[:4].isdigit(), out
    (info,) = json.loads(cli.ok("inspect", idle))
    assert info["Name"] == f"/{idle}" and info["State"]["Running"] is True


def test_exec(cli: Cli, idle: str) -> None:
    rc, out, err = cli.run("exec", idle, "echo", "hi")
    assert (rc, out) == (0, "hi\n"), (rc, out, err)
    rc, out, err = cli.run("exec", idle, "sh", "-c", "echo to-err >&2; exit 4")
    assert (rc, out, err) == (4, "", "to-err\n"), (rc, out, err)
    rc, out, err = cli.run("exec", "-i", idle, "sh", "-c", "tr a-z A-Z", input="shout\n")
    assert (rc, out) == (0, "SHOUT\n"), (rc, out, err)
    rc, out, _ = cli.run("exec", "-w", "/etc", "-e", "X=y", idle, "sh", "-c", 'echo "$PWD $X"')
    assert (rc, out) == (0, "/etc y\n"), out


def test_logs_follow_until_exit(cli: Cli) -> None:
    name = f"proxy-counter-{time.monotonic_ns()}"
    cli.ok(
        "run",
        "-d",
        "--name",
        name,
        BUSYBOX,
        "sh",
        "-c",
        "for i in 1 2 3 4 5; do echo n$i; sleep 0.3; done",
    )
    try:
        started = time.monotonic()
        rc, out, err = cli.run("logs", "-f", name, timeout=30)
        assert rc == 0 and out.split() == ["n1", "n2", "n3", "n4", "n5"], (rc, out, err)
        assert time.monotonic() - started >= 0.5, "logs -f returned before the container ended"
        assert cli.ok("wait", name).strip() == "0"
    finally:
        cli.run("rm", "-f", name)


def test_images(cli: Cli, engine_cli: Cli) -> None:
    images = cli.ok("images", "--format", "{{.Repository}}:{{.Tag}}").split()
    for image in ("shoal-test/busybox:1", "shoal-test/whoami:1", "shoal-test/whoami:2"):
        assert image in images, images
    # Same content as the engine's own answer (images created in the same second: any order).
    assert sorted(cli.ok("images", "-q", "--no-trunc").split()) == sorted(
        engine_cli.ok("images", "-q", "--no-trunc").split()
    )
    (info,) = json.loads(cli.ok("image", "inspect", BUSYBOX))
    assert BUSYBOX in info["RepoTags"]
    rc, _, err = cli.run("image", "inspect", "no-such/image:1")
    assert rc != 0 and "no-such/image:1" in err, err


def test_container_lifecycle(cli: Cli, engine_cli: Cli) -> None:
    name = f"proxy-life-{time.monotonic_ns()}"
    cid = cli.ok("create", "--name", name, BUSYBOX, "sh", "-c", IDLE).strip()
    try:
        cli.ok("start", name)
        assert engine_cli.ok("inspect", "--format", "{{.State.Status}}", cid).strip() == "running"
        cli.ok("stop", "-t", "5", name)
        assert engine_cli.ok("inspect", "--format", "{{.State.Status}}", cid).strip() == "exited"
        assert cli.ok("rm", name).strip() == name
        rc, _, _ = engine_cli.run("inspect", cid)
        assert rc != 0, "container still exists on the engine after `docker rm` via shoald"
    finally:
        cli.run("rm", "-f", name)
