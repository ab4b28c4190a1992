"""Chaos on 3 managers and 3 workers: a rolling update of 30 replicas (`whoami:1` →
`whoami:2`, stop-first, parallelism 3, a 2 s delay) while a random manager — the leader or
not — is SIGKILLed, and started again 2 s later, every 10 s for two minutes. Then the
service is exactly its spec (30 running tasks of `:2` in slots 1..30, one container each),
no slot ever had two running containers of different tasks when the worker engines were
sampled every second during the chaos and after, and nothing made before is lost (services,
secrets, networks)."""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.parse
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from halab import MANAGERS, answering, leader, manager_status
from support import parse_time, wait_for
from swarmlab import Lab, lab_up

from shoal.lab.api import api_json

pytestmark = pytest.mark.e2e

WORKERS = ("w1", "w2", "w3")
REPLICAS = 30
CHAOS = 120.0  # seconds of managers killed
PERIOD = 10.0  # seconds between kills
DOWN = 2.0  # seconds a killed manager stays down (the next kill does not wait for it to be
# reachable again: two may be out at once, the swarm without a quorum for a moment)
KEPT = ("kept-a", "kept-b")  # made before the chaos; must all be there after


@pytest.fixture(scope="module")
def lab(docker_cli: Callable[..., tuple[int, str, str]]) -> Iterator[Lab]:
    yield from lab_up("hc", docker_cli, managers=3, workers=3)


class Sampler:
    """Every second, the running containers of one service on every worker engine at once;
    a slot seen with two containers of different tasks is checked against the engines' start
    and finish times (the lab's hosts share one clock): it is a failure if they overlapped, or
    if that cannot be told any more."""

    def __init__(self, lab: Lab, service: str) -> None:
        self.lab, self.service = lab, service
        self.rounds = 0
        self.doubles: list[str] = []
        self.images: dict[str, str] = {}  # task ID → image, of every running task seen
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)
        self._pool = ThreadPoolExecutor(len(WORKERS))

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self._pool.shutdown()

    def _ps(self, short: str) -> list[tuple[str, str, dict[str, Any]]]:
        filters = json.dumps({"label": [f"com.docker.swarm.service.id={self.service}"]})
        path = f"/containers/json?filters={urllib.parse.quote(filters)}"
        status, body = api_json(self.lab.cli[short].host, "GET", path, timeout=10)
        assert status == 200, (short, status, body)
        return [(short, c["Id"], c) for c in body]

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self.sample()
            self._stop.wait(max(0.0, 1.0 - (time.monotonic() - started)))

    def sample(self) -> None:
        seen = [c for found in self._pool.map(self._ps, WORKERS) for c in found]
        self.rounds += 1
        by_slot: dict[int, dict[str, tuple[str, str]]] = defaultdict(dict)
        for short, cid, c in seen:
            labels = c["Labels"]
            task = labels["com.docker.swarm.task.id"]
            slot = int(labels["com.docker.swarm.task.name"].split(".")[1])
            by_slot[slot][task] = (short, cid)
            self.images[task] = c["Image"]
        for slot, tasks in by_slot.items():
            if len(tasks) > 1 and self._overlapped(list(tasks.values())):
                self.doubles.append(f"round {self.rounds}: slot {slot}: {tasks}")

    def _overlapped(self, found: list[tuple[str, str]]) -> bool:
        spans = []
        for short, cid in found:
            status, body = api_json(self.lab.cli[short].host, "GET", f"/containers/{cid}/json")
            if status != 200:
                return True  # gone: cannot tell, so count it
            state = body["State"]
            end = float("inf") if state["Running"] else parse_time(state["FinishedAt"])
            spans.append((parse_time(state["StartedAt"]), end))
        spans.sort()
        return any(b[0] < a[1] for a, b in zip(spans, spans[1:], strict=False))


def test_a_rolling_update_while_managers_die(lab: Lab) -> None:
    cli = answering(lab)
    v1, v2 = lab.whoami, lab.whoami.replace("whoami:1", "whoami:2")
    for name in KEPT:
        cli.ok("secret", "create", name, "-", input=f"{name}\n")
        cli.ok("network", "create", "-d", "overlay", name)
        cli.create(name, "--replicas", "0", "--network", name, "--secret", name, v1)
    service = cli.converge("rolled", "--replicas", str(REPLICAS),
                           "--constraint", "node.role==worker", "--update-parallelism", "3",
                           "--update-delay", "2s", "--update-order", "stop-first", v1)  # fmt: skip
    rng = random.Random()
    kills: list[str] = []
    with Sampler(lab, service) as sampler:
        wait_for(lambda: sampler.rounds >= 2, 10, what="the sampler going")
        cli.ok("service", "update", "-d", "--image", v2, "rolled")
        t0 = time.monotonic()
        while time.monotonic() - t0 < CHAOS:
            due = time.monotonic() + PERIOD
            dead = rng.choice(MANAGERS)
            role = "leader" if dead == leader(lab) else "follower"
            lab.lab("kill", lab.node(dead))
            time.sleep(DOWN)
            lab.lab("start", lab.node(dead))
            kills.append(f"{dead} ({role}) at {time.monotonic() - t0:.0f} s")
            time.sleep(max(0.0, due - time.monotonic()))
        print(f"\nkilled: {', '.join(kills)}")
        wait_for(lambda: sorted(manager_status(answering(lab)).values())
                 == ["Leader", "Reachable", "Reachable"], 60, interval=0.5,
                 what="three reachable managers")  # fmt: skip
        cli = answering(lab)

        def converged() -> bool:
            rows = cli.tasks("rolled", "--filter", "desired-state=running")
            running = [r for r in rows if r["State"] == "Running" and r["Image"].startswith(v2)]
            return len(running) == REPLICAS == len(rows)

        t1 = time.monotonic()
        wait_for(converged, 120, interval=1, what="30 running tasks of :2",
                 log=lambda: cli.ok("service", "ps", "rolled"))  # fmt: skip
        print(f"converged {time.monotonic() - t1:.1f} s after the last restart")
        time.sleep(3)  # sampled after, too
    print(f"{sampler.rounds} samples of {len(WORKERS)} engines")
    assert not sampler.doubles, "\n".join(sampler.doubles[:20])

    rows = cli.tasks("rolled", "--filter", "desired-state=running")
    assert sorted(int(r["Name"].rsplit(".", 1)[1]) for r in rows) == list(range(1, 31)), rows
    inspect = json.loads(cli.ok("service", "inspect", "rolled"))[0]
    assert inspect["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"].startswith(v2)
    assert inspect["Spec"]["Mode"]["Replicated"]["Replicas"] == REPLICAS
    engines = [c for short in WORKERS for c in sampler._ps(short)]
    slots = sorted(int(c["Labels"]["com.docker.swarm.task.name"].split(".")[1])
                   for _, _, c in engines)  # fmt: skip
    assert slots == list(range(1, 31)), slots  # one container per slot, on the engines too
    assert all(c["Image"].startswith(v2) for _, _, c in engines)
    for short in MANAGERS:  # nothing lost, as every manager answers
        m = lab.cli[short]
        for kind in ("service", "secret", "network"):
            names = set(m.ok(kind, "ls", "--format", "{{.Name}}").split())
            assert set(KEPT) <= names, (short, kind, names)
    cli.rm("rolled", *KEPT)
    cli.run("secret", "rm", *KEPT)
    cli.run("network", "rm", *KEPT)
