"""Helpers shared by the end-to-end tests (``from support import …``).

pytest's default ("prepend") import mode puts this directory on ``sys.path`` when it collects
the test files here, the way ``tests/unit`` files import ``test_orchestrator_helpers``.
"""

from __future__ import annotations

import collections
import json
import os
import re
import shlex
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

BUSYBOX = "shoal-test/busybox:1"
WHOAMI = "shoal-test/whoami:1"
NOT_MANAGER = (
    'This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" '
    "to connect this node to swarm and try again."
)
SWARM_ID = re.compile(r"^[0-9a-z]{25}$")  # node, service and task IDs


def wait_for(
    predicate: Callable[[], Any],
    timeout: float = 30.0,
    interval: float = 0.2,
    what: str = "condition",
    log: Callable[[], str] | None = None,
) -> Any:
    """Poll predicate until it returns something truthy; fail with the last value seen."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() > deadline:
            tail = f"\n--- shoald log ---\n{log()}" if log else ""
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what}; last: {last!r}" + tail
            )
        time.sleep(interval)


def parse_time(ts: str) -> float:
    """Docker's RFC 3339 nano timestamps → epoch seconds."""
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z$", ts)
    assert m, ts
    base = datetime.fromisoformat(m.group(1) + "+00:00").timestamp()
    return base + float("0" + (m.group(2) or ".0"))


def live_counts(intervals: list[tuple[float, float]], since: float) -> tuple[int, int]:
    """(fewest, most) containers running at once after each start or stop since `since`."""
    events = sorted({t for span in intervals for t in span if since <= t < float("inf")})
    counts = [sum(1 for a, b in intervals if a <= t < b) for t in events]
    return min(counts), max(counts)


class Cli:
    """The docker CLI pointed at one daemon; failures carry the daemon's log tail.

    ``timeout`` is the default time limit of one command."""

    def __init__(
        self,
        docker_cli: Callable[..., tuple[int, str, str]],
        host: str,
        log: Callable[[], str],
        timeout: float = 90.0,
    ) -> None:
        self._cli, self.host, self.log, self.timeout = docker_cli, host, log, timeout

    def run(
        self, *args: str, timeout: float | None = None, input: str | None = None
    ) -> tuple[int, str, str]:
        timeout = self.timeout if timeout is None else timeout
        try:
            return self._cli(self.host, *args, timeout=timeout, input=input)
        except subprocess.TimeoutExpired:
            pytest.fail(
                f"`docker {shlex.join(args)}` still running after {timeout}s\n"
                f"--- shoald log ---\n{self.log()}"
            )

    def ok(self, *args: str, timeout: float | None = None, input: str | None = None) -> str:
        rc, out, err = self.run(*args, timeout=timeout, input=input)
        assert rc == 0, (
            f"`docker {shlex.join(args)}` exited {rc}\nstdout:\n{out}\nstderr:\n{err}"
            f"\n--- shoald log ---\n{self.log()}"
        )
        return out

    def json_lines(self, *args: str) -> list[dict[str, Any]]:
        out = self.ok(*args, "--format", "{{json .}}")
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def tasks(self, service: str, *filters: str) -> list[dict[str, Any]]:
        """`docker service ps --no-trunc` rows (ID, Name, DesiredState, CurrentState, Error…),
        with State, the first word of CurrentState. Name without the table's ` \\_ ` indent of
        older tasks of a slot (the 28.x and 20.10 clients leave it out of JSON anyway)."""
        rows = self.json_lines("service", "ps", "--no-trunc", *filters, service)
        for row in rows:
            row["Name"] = row["Name"].replace("\\_", "").strip()
            row["State"] = row["CurrentState"].split(" ")[0]
        return rows

    def service_row(self, name: str) -> dict[str, Any]:
        rows = [r for r in self.json_lines("service", "ls") if r["Name"] == name]
        assert len(rows) == 1, rows
        return rows[0]

    def create(self, name: str, *args: str) -> str:
        """`service create -d`; returns the new service's ID."""
        out = self.ok("service", "create", "-d", "--name", name, *args)
        sid = out.strip().splitlines()[-1]
        assert SWARM_ID.match(sid), out
        return sid

    def converge(self, name: str, *args: str) -> str:
        """`service create` without -d (a 1 s monitor period keeps the CLI's wait short):
        exits 0 once converged; returns the new service's ID."""
        rc, out, err = self.run("service", "create", "--name", name, "--update-monitor", "1s",
                                *args)  # fmt: skip
        assert rc == 0 and "converged" in out + err, f"{out}\n{err}\n{self.log()}"
        sid = out.strip().splitlines()[0]
        assert SWARM_ID.match(sid), out
        return sid

    def rm(self, *names: str) -> None:
        self.run("service", "rm", *names)


def engine_containers(engine: Any, label: str, all: bool = True) -> list[dict[str, Any]]:
    """The engine's containers with one label (``key=value`` or ``key``)."""
    filters = json.dumps({"label": [label]})
    status, body = engine.api(
        "GET", f"/containers/json?all={int(all)}&filters={urllib.parse.quote(filters)}"
    )
    assert status == 200, body
    return json.loads(body)


def containers(engine: Any, service_id: str, all: bool = True) -> list[dict[str, Any]]:
    """The engine's containers of one service (by the standard swarm label)."""
    return engine_containers(engine, f"com.docker.swarm.service.id={service_id}", all)


def inspect(engine: Any, cid: str) -> dict[str, Any]:
    """The engine's `docker inspect` of one container."""
    status, body = engine.api("GET", f"/containers/{cid}/json")
    assert status == 200, body
    return json.loads(body)


def lab_cli(*args: str, timeout: float = 240.0) -> subprocess.CompletedProcess[str]:
    """`shoal lab ARGS…`, with no DOCKER_* variables leaking in from the caller."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    return subprocess.run(
        [sys.executable, "-m", "shoal.cli.main", "lab", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        stdin=subprocess.DEVNULL,
    )


class RequestLoop:
    """`fn()` in a loop on a thread until stopped (each call a new connection, `pause`
    seconds apart, 20,000 at most): what the answers were, counted (`seen`), and how each
    failure ended (`failed`). A context manager."""

    def __init__(self, fn: Callable[[], str], pause: float = 0.0) -> None:
        self.fn = fn
        self.pause = pause
        self.seen: collections.Counter[str] = collections.Counter()
        self.failed: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set() and self.ok + len(self.failed) < 20000:
            try:
                self.seen[self.fn()] += 1
            except Exception as e:  # counted: the test fails on any
                self.failed.append(repr(e))
            time.sleep(self.pause)

    def __enter__(self) -> RequestLoop:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(30)

    @property
    def ok(self) -> int:
        return sum(self.seen.values())
