"""Pollers: a count sampled until it reaches a target, the first time each condition held,
when tasks were first seen in each state, and the waits for a service to run or be gone."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from typing import Any

from .docker import count_containers, is_running, service_status, service_tasks

TASK_STATES = ("new", "pending", "assigned", "accepted", "preparing", "ready", "starting",
               "running")  # fmt: skip


class Poller:
    """Polls ``probe() → count`` every ``interval`` s and records when it reached targets."""

    def __init__(self, t0: float, probe: Callable[[], int], interval: float) -> None:
        self.t0, self.probe, self.interval = t0, probe, interval
        self.samples: list[tuple[float, int]] = []
        self.errors = 0

    def wait_for(
        self, done: Callable[[int], bool], timeout: float, extra: Callable[[int], None] | None
    ) -> float | None:
        """Seconds after t0 until done(count) (None: timed out); extra(count) after each
        poll (-1: the probe failed)."""
        deadline = self.t0 + timeout
        while True:
            try:
                n = self.probe()
            except Exception:  # noqa: BLE001 — a busy daemon may time out; keep polling
                self.errors += 1
                n = -1
            now = time.monotonic() - self.t0
            self.samples.append((round(now, 3), n))
            if extra:
                extra(n)
            if n >= 0 and done(n):
                return now
            if time.monotonic() > deadline:
                return None
            time.sleep(self.interval)

    def first_at(self, pred: Callable[[int], bool]) -> float | None:
        return next((t for t, n in self.samples if n >= 0 and pred(n)), None)


class Firsts:
    """When (seconds after t0) each condition was first seen."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}

    def see(self, key: str, cond: bool, now: float) -> None:
        if cond and key not in self.at:
            self.at[key] = round(now, 3)

    def get(self, key: str) -> float | None:
        return self.at.get(key)


class StateTrace:
    """When each task (but those ``skip`` says) was first seen in each state."""

    def __init__(self, skip: Callable[[dict[str, Any]], bool]) -> None:
        self.skip = skip
        self.first: dict[str, dict[str, float]] = {}

    def poll(self, tasks: list[dict[str, Any]], now: float) -> None:
        for t in tasks:
            if self.skip(t):
                continue
            seen = self.first.setdefault(t["ID"], {})
            state = (t.get("Status") or {}).get("State", "")
            if state in TASK_STATES:  # reaching X means having passed every state before X
                for st in TASK_STATES[: TASK_STATES.index(state) + 1]:
                    seen.setdefault(st, round(now, 3))

    def summary(
        self, exclude: set[str] | frozenset[str] = frozenset(), empty: bool = False
    ) -> dict[str, dict[str, Any]]:
        """Per state: when the first and the last task (but those in exclude) were seen in
        it, and how many; ``empty``: also the states no task was seen in."""
        out: dict[str, dict[str, Any]] = {}
        for st in TASK_STATES:
            times = [v[st] for k, v in self.first.items() if k not in exclude and st in v]
            if times or empty:
                out[st] = {"first": min(times, default=None), "last": max(times, default=None),
                           "count": len(times)}  # fmt: skip
        return out


def wait_running(api_host: str, n: int, timeout: float, poll: float) -> float:
    """Seconds until n tasks run and `docker service ls` says n/n."""
    t0 = time.monotonic()
    while True:
        with contextlib.suppress(Exception):
            running = sum(1 for t in service_tasks(api_host) if is_running(t))
            if running >= n and service_status(api_host) == (n, n):
                return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"{n} tasks not running after {timeout}s")
        time.sleep(poll)


def wait_gone(
    engine_hosts: Sequence[str], t0: float, interval: float, timeout: float, call_timeout: float
) -> float | None:
    """Seconds after t0 until no engine has a container of the service, in any state (None:
    not within timeout). An engine that does not answer counts as not done."""

    def left() -> int:
        return count_containers(engine_hosts, every_state=True, timeout=call_timeout)

    return Poller(t0, left, interval).wait_for(lambda n: n == 0, timeout, None)
