"""Multi-node swarms end to end (issue 3, "Tests that must exist"): a `shoal lab` of 1 manager
+ 3 workers, driven with the real docker CLI through the manager's shoald.

One lab for the module (`shoal lab up --workers 3`, `down` at the end even on failure); the
tests share it and run in file order, but each one reads the state it starts from (which
worker runs what) instead of assuming what the previous one left. Containers are counted on
each host's own engine (`shoal lab env --engine NODE`), which is what "never two running
containers for one slot" is about; `docker service ps` on the manager is its view of it.

Timings of node failure (kill, partition) are printed, not asserted: `bench/node_failure`
holds the numbers.
"""

from __future__ import annotations

import json
import re
import secrets
import shlex
import shutil
import signal
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from support import Cli, lab_cli, live_counts, parse_time

from shoal.lab import procs
from shoal.lab.api import api_json
from shoal.lab.state import base_dir

pytestmark = pytest.mark.e2e

WORKERS = ("w1", "w2", "w3")
NODES = ("m1", *WORKERS)
REPLICAS = 12
WORKER_REFUSAL = (
    "This node is not a swarm manager. Worker nodes can't be used to view or modify cluster "
    "state. Please run this command on a manager node or promote the current node to a manager."
)
INVALID_TOKEN = (
    "Error response from daemon: rpc error: code = InvalidArgument desc = "
    "A valid join token is necessary to join this cluster"
)
RESTART_OUTAGE = 30.0  # at most, for the manager restart
DEADLINE = 30.0  # for anything the cluster should do within seconds (down after ~3.5 s)


# ---------------------------------------------------------------------- helpers


def wait_until(
    check: Callable[[], str | None],
    timeout: float = DEADLINE,
    what: str = "condition",
    log: Callable[[], str] | None = None,
    interval: float = 0.2,
) -> float:
    """Poll `check` (None = done, else what is still wrong) until done; returns the seconds
    it took. On timeout, fails with the last answer (and the logs)."""
    t0 = time.monotonic()
    while True:
        wrong = check()
        if wrong is None:
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            tail = f"\n{log()}" if log else ""
            raise AssertionError(
                f"timed out after {timeout:.0f}s waiting for {what}: {wrong}{tail}"
            )
        time.sleep(interval)


def slot_of(container: dict[str, Any]) -> str:
    """`web.3.<task id>` → `3` (the container's swarm task name)."""
    labels = container.get("Labels") or {}
    name = labels.get("com.docker.swarm.task.name") or container["Names"][0]
    return str(name).lstrip("/").rsplit(".", 2)[1]


def slot_of_task(row: dict[str, Any]) -> str:
    """`docker service ps` Name `web.3` → `3`."""
    return str(row["Name"]).rsplit(".", 1)[1]


class Lab:
    """The module's lab: node names, sockets, the manager's CLI, logs, per-engine counts."""

    def __init__(self, name: str, docker_cli: Callable[..., tuple[int, str, str]]) -> None:
        self.name = name
        self.dir = base_dir() / name
        self.docker_cli = docker_cli
        self.hosts = {s: self._env(s) for s in NODES}
        self.engines = {s: self._env(s, "--engine") for s in NODES}
        self.addrs = {s: self.lab("ip", self.node(s)).strip() for s in NODES}
        self.registry = self.lab("registry", "--name", name).strip()
        self.whoami = f"{self.registry}/shoal-lab/whoami:1"
        self.busybox = f"{self.registry}/shoal-lab/busybox:1"
        self.manager = Cli(docker_cli, self.hosts["m1"], lambda: self.logs("m1"))
        self.ids: dict[str, str] = {}
        self.gone: set[str] = set()  # workers removed from the swarm for good
        self.replicas = REPLICAS
        self.web_id = ""

    # ------------------------------------------------------------ the lab command

    def lab(self, *args: str) -> str:
        proc = lab_cli(*args)
        assert proc.returncode == 0, (
            f"`shoal lab {shlex.join(args)}` exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        )
        return proc.stdout

    def _env(self, short: str, *flags: str) -> str:
        out = self.lab("env", self.node(short), *flags).strip()
        assert out.startswith("export DOCKER_HOST=unix://"), out
        return out.split("=", 1)[1]

    def action(self, verb: str, short: str) -> float:
        t0 = time.monotonic()
        self.lab(verb, self.node(short))
        return time.monotonic() - t0

    def node(self, short: str) -> str:
        return f"{self.name}-{short}"

    def live_workers(self) -> list[str]:
        return [w for w in WORKERS if w not in self.gone]

    # ------------------------------------------------------------ logs

    def log_tail(self, short: str, lines: int = 40) -> str:
        try:
            text = (self.dir / self.node(short) / "shoald.log").read_text(errors="replace")
        except OSError as e:
            return f"({e})"
        return "\n".join(text.splitlines()[-lines:])

    def logs(self, *shorts: str) -> str:
        return "\n".join(
            f"--- {self.node(s)}/shoald.log ---\n{self.log_tail(s)}" for s in shorts or NODES
        )

    # ------------------------------------------------------------ docker

    def cli(self, short: str) -> Cli:
        return Cli(self.docker_cli, self.hosts[short], lambda: self.logs("m1", short))

    def node_id(self, short: str) -> str:
        out = self.cli(short).ok("info", "--format", "{{.Swarm.NodeID}}").strip()
        assert out, f"{self.node(short)} has no swarm node ID"
        return out

    def node_rows(self) -> list[dict[str, Any]]:
        return self.manager.json_lines("node", "ls")

    def statuses(self) -> dict[str, str]:
        """node ID → `Ready`/`Down`/… as `docker node ls` shows it."""
        return {r["ID"].rstrip(" *"): r["Status"] for r in self.node_rows()}

    def status(self, short: str) -> str:
        return self.statuses().get(self.ids[short], "(not listed)")

    def running_tasks(self, service: str = "web") -> list[dict[str, Any]]:
        """Tasks the manager wants running and sees running."""
        rows = self.manager.tasks(service, "--filter", "desired-state=running")
        return [r for r in rows if r["State"] == "Running"]

    def per_node(self, service: str = "web") -> Counter[str]:
        return Counter(r["Node"] for r in self.running_tasks(service))

    def busiest_worker(self) -> str:
        """The live worker running the most `web` tasks."""
        counts = self.per_node()
        return max(self.live_workers(), key=lambda w: counts[self.node(w)])

    def containers(self, short: str, service_id: str) -> list[dict[str, Any]] | None:
        """The running containers of a service on one host's engine (None: no answer)."""
        filters = json.dumps({"label": [f"com.docker.swarm.service.id={service_id}"]})
        try:
            status, body = api_json(
                self.engines[short],
                "GET",
                f"/containers/json?filters={urllib.parse.quote(filters)}",
                timeout=5.0,
            )
        except OSError:
            return None
        return body if status == 200 and isinstance(body, list) else None

    def slots(self, service_id: str, shorts: tuple[str, ...] = NODES) -> dict[str, list[str]]:
        """slot → the nodes running a container for it, over the hosts' engines."""
        out: dict[str, list[str]] = {}
        for s in shorts:
            for c in self.containers(s, service_id) or []:
                out.setdefault(slot_of(c), []).append(s)
        return out

    def container_ids(self, short: str, service_id: str) -> set[str]:
        return {c["Id"] for c in self.containers(short, service_id) or []}


class DoubleWatch:
    """Samples every host's engine in the background and records each moment a slot of the
    service has more than one running container across the cluster."""

    def __init__(self, lab: Lab, service_id: str) -> None:
        self.lab, self.service_id = lab, service_id
        self.t0 = time.monotonic()
        self.samples = 0
        self.doubles: list[tuple[float, dict[str, list[str]]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            slots = self.lab.slots(self.service_id)
            self.samples += 1
            twice = {slot: nodes for slot, nodes in slots.items() if len(nodes) > 1}
            if twice:
                self.doubles.append((time.monotonic() - self.t0, twice))
            self._stop.wait(0.1)

    def doubles_after(self, t: float) -> list[tuple[float, dict[str, list[str]]]]:
        return [d for d in self.doubles if d[0] > t]

    def __enter__(self) -> DoubleWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def say(capsys: pytest.CaptureFixture[str], text: str) -> None:
    with capsys.disabled():
        print(f"\n    [multinode] {text}", flush=True)


# ---------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def lab(
    docker_cli: Callable[..., tuple[int, str, str]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Lab]:
    name = "mn" + secrets.token_hex(3)
    try:
        up = lab_cli("up", "--name", name, "--managers", "1", "--workers", "3")
        assert up.returncode == 0, f"up failed (rc={up.returncode}):\n{up.stdout}\n{up.stderr}"
        the_lab = Lab(name, docker_cli)
        for s in NODES:
            the_lab.ids[s] = the_lab.node_id(s)
        yield the_lab
    finally:
        keep = tmp_path_factory.mktemp(f"{name}-logs")
        for log in (base_dir() / name).glob("*/shoald.log"):
            shutil.copy(log, keep / f"{log.parent.name}.shoald.log")
        down = lab_cli("down", "--name", name)
        assert down.returncode == 0, f"down failed:\n{down.stdout}\n{down.stderr}"


@pytest.fixture(scope="module")
def web(lab: Lab) -> str:
    """The manager drained, then `web`: 12 replicas of whoami:1 over the three workers."""
    lab.manager.ok("node", "update", "--availability", "drain", lab.node("m1"))
    lab.web_id = lab.manager.create(
        "web", "--replicas", str(REPLICAS), "--stop-grace-period", "2s", lab.whoami
    )
    return lab.web_id


def web_running(lab: Lab, on: tuple[str, ...]) -> Callable[[], str | None]:
    """Check: the manager sees exactly `lab.replicas` tasks running, one per slot, all on the
    nodes `on`; and those nodes' engines run exactly one container per slot."""

    def check() -> str | None:
        tasks = lab.running_tasks()
        hosts = {lab.node(s) for s in on}
        where = Counter(t["Node"] for t in tasks)
        if len(tasks) != lab.replicas or set(where) - hosts:
            return f"manager: {len(tasks)} running tasks, per node {dict(where)}"
        slots = Counter(slot_of_task(t) for t in tasks)
        if len(slots) != lab.replicas:
            return f"manager: slots running twice: {[s for s, n in slots.items() if n > 1]}"
        engines = lab.slots(lab.web_id, on)
        if len(engines) != lab.replicas or any(len(n) != 1 for n in engines.values()):
            return f"engines of {on}: slot → nodes {engines}"
        return None

    return check


def no_web_containers(lab: Lab, short: str) -> Callable[[], str | None]:
    def check() -> str | None:
        left = lab.containers(short, lab.web_id)
        if left is None:
            return f"{lab.node(short)}'s engine does not answer"
        return f"{len(left)} web containers still running on {short}" if left else None

    return check


def no_running_task_on(lab: Lab, short: str) -> Callable[[], str | None]:
    """The manager shows none of the node's tasks of `web` as running any more (its
    superseded tasks were shut down and reported so)."""

    def check() -> str | None:
        rows = [r for r in lab.manager.tasks("web") if r["Node"] == lab.node(short)]
        live = [r for r in rows if r["State"] == "Running" or r["DesiredState"] == "Running"]
        if live:
            return "still running on {}: {}".format(
                short, [(r["Name"], r["DesiredState"], r["CurrentState"]) for r in live]
            )
        return None

    return check


def node_is(lab: Lab, short: str, state: str) -> Callable[[], str | None]:
    def check() -> str | None:
        got = lab.status(short)
        return None if got == state else f"{lab.node(short)} is {got}"

    return check


# ---------------------------------------------------------------------- tests


def test_all_nodes_ready(lab: Lab) -> None:
    def check() -> str | None:
        rows = lab.node_rows()
        got = {(r["Hostname"], r["Status"]) for r in rows}
        want = {(lab.node(s), "Ready") for s in NODES}
        return None if got == want and len(rows) == 4 else f"node ls: {sorted(got)}"

    wait_until(check, what="4 Ready nodes", log=lab.logs)
    rows = {r["Hostname"]: r for r in lab.node_rows()}
    assert rows[lab.node("m1")]["ManagerStatus"] == "Leader"
    for w in WORKERS:
        row = rows[lab.node(w)]
        assert row["ManagerStatus"] == "", row
        assert row["Availability"] == "Active", row
        assert row["ID"].rstrip(" *") == lab.ids[w]
        assert re.match(r"^\d+\.\d+", row["EngineVersion"]), row
    # Each worker's own view: part of the same swarm, as a worker, with m1 as its manager.
    cluster = lab.manager.ok("info", "--format", "{{.Swarm.Cluster.ID}}").strip()
    assert cluster
    for w in WORKERS:
        info = json.loads(lab.cli(w).ok("info", "--format", "{{json .Swarm}}"))
        assert info["LocalNodeState"] == "active", info
        assert info["ControlAvailable"] is False, info
        assert info["NodeAddr"] == lab.addrs[w], info
        assert [m["Addr"] for m in info.get("RemoteManagers") or []] == [
            f"{lab.addrs['m1']}:2377"
        ], info


def test_worker_refuses_control_plane_calls(lab: Lab) -> None:
    worker = lab.cli("w2")
    for args in (("service", "ls"), ("node", "ls"), ("service", "create", lab.whoami)):
        rc, out, err = worker.run(*args)
        assert rc != 0, f"`docker {' '.join(args)}` on a worker succeeded:\n{out}"
        assert f"Error response from daemon: {WORKER_REFUSAL}" in err, (args, err)


def test_role_constraints_choose_the_manager_or_the_workers(lab: Lab) -> None:
    """`node.role==manager` runs only on m1, `node.role==worker` only on the workers (m1 is
    still active here: the `web` fixture drains it later)."""
    try:
        lab.manager.create("on-mgr", "--replicas", "3", "--constraint", "node.role==manager",
                           lab.whoami)  # fmt: skip
        lab.manager.create("on-wrk", "--replicas", "6", "--constraint", "node.role==worker",
                           lab.whoami)  # fmt: skip
        for name, count in (("on-mgr", 3), ("on-wrk", 6)):
            wait_until(
                lambda name=name, count=count: None
                if len(lab.running_tasks(name)) == count
                else f"{len(lab.running_tasks(name))} of {name} running",
                timeout=60, what=f"{count} {name} running", log=lab.logs,
            )  # fmt: skip
        assert set(lab.per_node("on-mgr")) == {lab.node("m1")}
        assert set(lab.per_node("on-wrk")) == {lab.node(w) for w in WORKERS}
    finally:
        lab.manager.rm("on-mgr", "on-wrk")


def test_replicas_spread_over_the_workers(lab: Lab, web: str) -> None:
    rows = {r["Hostname"]: r["Availability"] for r in lab.node_rows()}
    assert rows[lab.node("m1")] == "Drain"
    wait_until(web_running(lab, WORKERS), timeout=60, what="12 web tasks running", log=lab.logs)
    assert lab.per_node() == {lab.node(w): 4 for w in WORKERS}
    assert {s: len(lab.containers(s, web) or []) for s in NODES} == {
        "m1": 0, "w1": 4, "w2": 4, "w3": 4
    }  # fmt: skip


def test_service_logs_from_several_nodes(lab: Lab, web: str) -> None:
    script = 'echo "hello from $NODE"; echo "second line from $NODE"; exec sleep 3600'
    lab.manager.create(
        "chatty", "--mode", "global", "--stop-grace-period", "1s",
        "--env", "NODE={{.Node.Hostname}}", lab.busybox, "sh", "-c", script,
    )  # fmt: skip
    try:
        workers = {lab.node(w) for w in lab.live_workers()}

        def running() -> str | None:
            where = {r["Node"] for r in lab.running_tasks("chatty")}
            return None if where == workers else f"chatty running on {sorted(where)}"

        wait_until(running, timeout=60, what="chatty on every worker", log=lab.logs)
        seen: dict[str, set[str]] = {}
        last = ""

        def logged() -> str | None:
            nonlocal last
            rc, out, err = lab.manager.run("service", "logs", "chatty", timeout=30)
            last = f"rc={rc}\n{out}\n{err}"
            seen.clear()
            for line in out.splitlines():
                prefix, sep, text = line.partition("|")
                m = re.search(r"@(\S+)\s*$", prefix)
                if sep and m:
                    seen.setdefault(m.group(1), set()).add(text.strip())
            return None if set(seen) >= workers else f"lines from {sorted(seen)}"

        wait_until(logged, timeout=30, what="log lines from every worker", log=lab.logs)
        for node in workers:
            assert seen[node] == {f"hello from {node}", f"second line from {node}"}, last
    finally:
        lab.manager.rm("chatty")


def test_rolling_update_and_rollback_across_the_workers(lab: Lab, web: str) -> None:
    """web (12 replicas over 3 workers) goes from whoami:1 to :2 with parallelism 2 and delay
    0.5 s, then back with `docker service rollback` (parallelism 1): the CLI converges both
    times; from every worker's container start and stop times, never more than 2 (then 1)
    slots are out of service; from the tasks' own times, a new task is created only 0.5 s
    after the latest one came up; at the end every slot runs exactly one container, of the
    expected image."""
    workers = lab.live_workers()
    wait_until(web_running(lab, tuple(workers)), what="web converged", log=lab.logs)
    v2 = lab.whoami.replace(":1", ":2")
    update = ["--update-parallelism", "2", "--update-delay", "500ms", "--update-monitor", "1s"]
    for args, image, parallelism in (
        (["update", *update, "--image", v2], v2, 2),
        (["rollback"], lab.whoami, 1),
    ):
        since = time.time()
        rc, out, err = lab.manager.run("service", *args, "web", timeout=240)
        assert rc == 0 and "converged" in out + err, f"exit {rc}\n{out}\n{err}\n{lab.logs()}"
        wait_until(web_running(lab, tuple(workers)), what="web converged", log=lab.logs)
        spans = [span for w in workers for span in _spans(lab, w, web)]
        fewest, _ = live_counts(spans, since)
        assert fewest >= lab.replicas - parallelism, (args, fewest)
        running = [c for w in workers for c in lab.containers(w, web) or []]
        assert len(running) == lab.replicas
        assert all(c["Image"].split("@")[0] == image for c in running), [
            c["Image"] for c in running
        ]
        if args[0] == "update":
            _check_delay(lab, v2, 0.5)


def test_global_service_update_goes_node_by_node(lab: Lab, web: str) -> None:
    """A global service updated with parallelism 1: its task on each worker is replaced in
    place, one node at a time (never two workers without a task of it)."""
    workers = lab.live_workers()
    gid = lab.manager.create("glob", "--mode", "global", "--update-monitor", "1s", lab.whoami)
    try:

        def on_every_worker() -> str | None:
            where = {r["Node"] for r in lab.running_tasks("glob")}
            want = {lab.node(w) for w in workers}
            return None if where == want else f"glob running on {sorted(where)}"

        wait_until(on_every_worker, timeout=60, what="glob on every worker", log=lab.logs)
        since = time.time()
        v2 = lab.whoami.replace(":1", ":2")
        rc, out, err = lab.manager.run("service", "update", "--image", v2, "glob", timeout=180)
        assert rc == 0 and "converged" in out + err, f"exit {rc}\n{out}\n{err}\n{lab.logs()}"
        wait_until(on_every_worker, what="glob on every worker again", log=lab.logs)
        spans = [span for w in workers for span in _spans(lab, w, gid)]
        assert live_counts(spans, since)[0] >= len(workers) - 1
        for w in workers:
            (c,) = lab.containers(w, gid) or [{"Image": "(none)"}]
            assert c["Image"].split("@")[0] == v2, (w, c["Image"])
    finally:
        lab.manager.rm("glob")


def _check_delay(lab: Lab, image: str, delay: float) -> None:
    """Every task of `image` but the first batch was created at least `delay` after the
    latest earlier one of them came up (its running status timestamp)."""
    filters = urllib.parse.quote(json.dumps({"service": ["web"]}))
    status, tasks = api_json(lab.hosts["m1"], "GET", f"/tasks?filters={filters}")
    assert status == 200, tasks
    new = sorted(
        (t for t in tasks if t["Spec"]["ContainerSpec"]["Image"].split("@")[0] == image),
        key=lambda t: parse_time(t["CreatedAt"]),
    )
    assert len(new) == lab.replicas, [t["Slot"] for t in new]
    first = parse_time(new[0]["CreatedAt"])
    for t in new:
        created = parse_time(t["CreatedAt"])
        if created - first < 0.1:
            continue  # the first batch
        came_up = [
            parse_time(o["Status"]["Timestamp"])
            for o in new
            if parse_time(o["CreatedAt"]) < created and o["Status"]["State"] == "running"
        ]
        assert came_up and created - max(came_up) >= delay - 0.05, (
            f"slot {t['Slot']} created {created - max(came_up or [0]):.2f}s after the latest "
            f"earlier one came up"
        )


def _spans(lab: Lab, short: str, service_id: str) -> list[tuple[float, float]]:
    """(started, finished) of every container of the service on one engine, ever."""
    label = f"com.docker.swarm.service.id={service_id}"
    filters = urllib.parse.quote(json.dumps({"label": [label]}))
    status, ctrs = api_json(lab.engines[short], "GET", f"/containers/json?all=1&filters={filters}")
    assert status == 200, ctrs
    out = []
    for c in ctrs:
        status, info = api_json(lab.engines[short], "GET", f"/containers/{c['Id']}/json")
        if status != 200:
            continue  # removed meanwhile (task history trimmed)
        st = info["State"]
        end = float("inf") if st["Running"] else parse_time(st["FinishedAt"])
        out.append((parse_time(st["StartedAt"]), end))
    return out


def test_killed_worker_is_down_and_its_tasks_move_then_it_comes_back(
    lab: Lab, web: str, capsys: pytest.CaptureFixture[str]
) -> None:
    victim = lab.busiest_worker()
    others = tuple(w for w in lab.live_workers() if w != victim)
    assert lab.per_node()[lab.node(victim)] > 0, "the victim runs no task: nothing to move"
    with DoubleWatch(lab, web) as watch:
        kill_s = lab.action("kill", victim)
        down = wait_until(node_is(lab, victim, "Down"), what=f"{victim} Down", log=lab.logs)
        moved = wait_until(web_running(lab, others), what=f"web running on {others}", log=lab.logs)
        say(capsys, f"kill {victim} ({kill_s:.1f}s): node Down after {down:.1f}s, "
            f"all {lab.replicas} running on {others} after {down + moved:.1f}s")  # fmt: skip

        lab.action("start", victim)
        ready = wait_until(
            node_is(lab, victim, "Ready"), what=f"{victim} Ready again", log=lab.logs
        )
        wait_until(
            no_running_task_on(lab, victim),
            what=f"{victim}'s superseded tasks shut down",
            log=lambda: lab.logs("m1", victim),
        )
        wait_until(no_web_containers(lab, victim), what=f"no web container on {victim}")
        wait_until(web_running(lab, others), what="web converged", log=lab.logs)
        say(capsys, f"start {victim}: Ready after {ready:.1f}s")
    assert watch.samples > 10
    assert not watch.doubles, f"a slot ran twice across the cluster: {watch.doubles[:5]}"


def test_partitioned_worker_is_down_and_converges_after_heal(
    lab: Lab, web: str, capsys: pytest.CaptureFixture[str]
) -> None:
    victim = lab.busiest_worker()
    others = tuple(w for w in lab.live_workers() if w != victim)
    kept = lab.container_ids(victim, web)
    assert kept, "the victim runs no container: nothing to move"
    healed = False
    try:
        lab.action("partition", victim)
        down = wait_until(node_is(lab, victim, "Down"), what=f"{victim} Down", log=lab.logs)
        moved = wait_until(web_running(lab, others), what=f"web running on {others}", log=lab.logs)
        say(capsys, f"partition {victim}: node Down after {down:.1f}s, "
            f"all {lab.replicas} running on {others} after {down + moved:.1f}s")  # fmt: skip
        still = len(lab.containers(victim, web) or [])
        say(
            capsys,
            f"{victim} partitioned: {still} of its {len(kept)} web containers still "
            "running on its engine",
        )
        with DoubleWatch(lab, web) as watch:
            lab.action("heal", victim)
            healed = True
            ready = wait_until(
                node_is(lab, victim, "Ready"), what=f"{victim} Ready again", log=lab.logs
            )
            wait_until(
                no_running_task_on(lab, victim),
                what=f"{victim}'s superseded tasks shut down",
                log=lambda: lab.logs("m1", victim),
            )
            gone = wait_until(
                no_web_containers(lab, victim),
                what=f"{victim}'s superseded containers stopped",
                log=lambda: lab.logs("m1", victim),
            )
            wait_until(web_running(lab, others), what="web converged", log=lab.logs)
            converged = time.monotonic() - watch.t0
            # A few more samples once converged: no slot comes back twice.
            n = watch.samples
            wait_until(lambda: None if watch.samples >= n + 10 else "sampling", timeout=20)
        say(capsys, f"heal {victim}: Ready after {ready:.1f}s, its {len(kept)} superseded "
            f"containers gone after {ready + gone:.1f}s")  # fmt: skip
        assert not watch.doubles_after(converged), (
            f"a slot ran twice after convergence: {watch.doubles_after(converged)[:5]}"
        )
    finally:
        if not healed:
            lab.action("heal", victim)


def test_agents_reconnect_after_the_manager_restarts(
    lab: Lab, web: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The manager's shoald stopped (SIGTERM) and started again (`shoal lab start`): every
    worker's agent loses its session and registers anew (its node object is written again:
    its version moves); its tasks are the same ones, not replaced, and no slot runs twice.

    The manager's shoald stays away until every agent has been refused often enough to be
    backing off at its longest (8 s: the 8th "agent session:" error in its log) — as after
    any restart that takes more than a few seconds — and comes back right after such a
    refusal; at most RESTART_OUTAGE seconds if the logs say something else. Docker gives the
    nodes a manager finds when it starts twice the normal grace to come back (swarmkit's
    `gracePeriodMultiplierUnknown`), more than its agents' longest back-off."""
    workers = lab.live_workers()
    wait_until(web_running(lab, tuple(workers)), what="web converged", log=lab.logs)
    tasks = {r["ID"]: r["Node"] for r in lab.running_tasks()}
    before = {w: lab.container_ids(w, web) for w in workers}
    versions = {w: _node_version(lab, w) for w in workers}
    drops = {w: _count_lines(lab, w, "agent session:") for w in workers}
    m1_lines = _log_lines(lab, "m1")
    pid = json.loads((lab.dir / "lab.json").read_text())["nodes"][lab.node("m1")]["shoald_pid"]
    assert procs.alive(pid), pid
    with DoubleWatch(lab, web) as watch:
        t0 = time.monotonic()
        procs.kill(pid, signal.SIGTERM)
        wait_until(
            lambda: "still running" if procs.alive(pid) else None,
            what="the manager's shoald to exit",
            log=lambda: lab.logs("m1"),
        )

        def backing_off() -> str | None:
            n = {w: _count_lines(lab, w, "agent session:") - drops[w] for w in workers}
            return None if min(n.values()) >= 8 else f"session errors logged: {n}"

        try:
            wait_until(backing_off, timeout=RESTART_OUTAGE - (time.monotonic() - t0), interval=0.05)
        except AssertionError:
            pass  # the logs say something else: the outage is just RESTART_OUTAGE long
        outage = time.monotonic() - t0
        started = lab.action("start", "m1")

        def all_back() -> str | None:
            st = lab.statuses()
            bad = {
                w: (st.get(lab.ids[w]), _node_version(lab, w))
                for w in workers
                if st.get(lab.ids[w]) != "Ready" or _node_version(lab, w) <= versions[w]
            }
            return (
                f"not registered again (status, version): {bad}; before {versions}" if bad else None
            )

        back = wait_until(all_back, what="every worker registered again", log=lab.logs)
        wait_until(web_running(lab, tuple(workers)), what="web converged", log=lab.logs)
    say(capsys, f"manager's shoald away for {outage:.1f}s, start {started:.1f}s: "
        f"every worker registered again {back:.1f}s later")  # fmt: skip
    for w in workers:
        assert _count_lines(lab, w, "agent session:") > drops[w], (
            f"{w}'s agent did not notice the manager going away\n" + lab.logs(w)
        )
    problems = []
    downs = [
        line for line in _log_lines(lab, "m1")[len(m1_lines) :] if "missed its heartbeats" in line
    ]
    if downs:
        problems.append("the restarted manager marked nodes down:\n  " + "\n  ".join(downs))
    after = {r["ID"]: r["Node"] for r in lab.running_tasks()}
    if after != tasks:
        problems.append(
            f"{len(set(tasks) - set(after))} of {len(tasks)} tasks were replaced; running per "
            f"node before {dict(Counter(tasks.values()))}, after {dict(Counter(after.values()))}"
        )
    now = {w: lab.container_ids(w, web) for w in workers}
    if now != before:
        counts = [{w: len(c) for w, c in x.items()} for x in (before, now)]
        problems.append(f"containers per node before {counts[0]}, after {counts[1]}")
    if watch.doubles:
        problems.append(
            f"a slot ran twice across the cluster in {len(watch.doubles)} of {watch.samples} "
            f"samples, e.g. {watch.doubles[:3]}"
        )
    assert not problems, "\n".join(problems) + "\n" + lab.logs()


def _log_lines(lab: Lab, short: str) -> list[str]:
    try:
        return (lab.dir / lab.node(short) / "shoald.log").read_text(errors="replace").splitlines()
    except OSError:
        return []


def _node_version(lab: Lab, short: str) -> int:
    rc, out, _ = lab.manager.run(
        "node", "inspect", "--format", "{{.Version.Index}}", lab.ids[short]
    )
    return int(out.strip()) if rc == 0 and out.strip().isdigit() else -1


def _count_lines(lab: Lab, short: str, needle: str) -> int:
    try:
        text = (lab.dir / lab.node(short) / "shoald.log").read_text(errors="replace")
    except OSError:
        return 0
    return sum(needle in line for line in text.splitlines())


def test_drain_pause_active(lab: Lab, web: str) -> None:
    workers = lab.live_workers()
    wait_until(web_running(lab, tuple(workers)), what="web converged", log=lab.logs)
    node = lab.busiest_worker()
    host = lab.node(node)
    others = tuple(w for w in workers if w != node)
    mine = {r["ID"] for r in lab.running_tasks() if r["Node"] == host}
    containers = lab.container_ids(node, web)
    assert mine and len(containers) == len(mine)

    def availability() -> str:
        return {r["Hostname"]: r["Availability"] for r in lab.node_rows()}[host]

    # pause: its tasks stay, new ones go elsewhere.
    lab.manager.ok("node", "update", "--availability", "pause", host)
    assert availability() == "Pause"
    lab.replicas += 3
    lab.manager.ok("service", "update", "-d", "--replicas", str(lab.replicas), "web")
    wait_until(web_running(lab, tuple(workers)), what="web scaled up", log=lab.logs)
    assert {r["ID"] for r in lab.running_tasks() if r["Node"] == host} == mine
    assert lab.container_ids(node, web) == containers
    assert lab.status(node) == "Ready"

    # drain: its tasks move away.
    lab.manager.ok("node", "update", "--availability", "drain", host)
    assert availability() == "Drain"
    wait_until(web_running(lab, others), what=f"web drained off {node}", log=lab.logs)
    wait_until(no_web_containers(lab, node), what=f"no web container left on {node}")
    rows = [r for r in lab.manager.tasks("web") if r["ID"] in mine]
    assert all(r["DesiredState"] == "Shutdown" and r["State"] != "Running" for r in rows), rows

    # active: it takes new tasks again (the least loaded worker gets the new replicas).
    lab.manager.ok("node", "update", "--availability", "active", host)
    assert availability() == "Active"
    before = {r["ID"] for r in lab.running_tasks()}
    lab.replicas += 3
    lab.manager.ok("service", "update", "-d", "--replicas", str(lab.replicas), "web")
    wait_until(web_running(lab, tuple(workers)), what="web scaled up again", log=lab.logs)
    new = [r for r in lab.running_tasks() if r["ID"] not in before]
    assert len(new) == 3 and {r["Node"] for r in new} == {host}, new
    assert len(lab.containers(node, web) or []) == 3


def test_rotated_worker_token_is_refused_to_a_new_join(lab: Lab, web: str) -> None:
    node = "w1"
    old = lab.manager.ok("swarm", "join-token", "-q", "worker").strip()
    manager_token = lab.manager.ok("swarm", "join-token", "-q", "manager").strip()
    out = lab.manager.ok("swarm", "join-token", "--rotate", "worker")
    assert "Successfully rotated worker join token." in out, out
    new = lab.manager.ok("swarm", "join-token", "-q", "worker").strip()
    assert new != old and new.startswith("SWMTKN-1-") and new in out
    # The same CA digest, another secret; the manager token is left alone.
    assert new.split("-")[2] == old.split("-")[2] and new.split("-")[3] != old.split("-")[3]
    assert lab.manager.ok("swarm", "join-token", "-q", "manager").strip() == manager_token
    # Nodes already in the swarm are not affected.
    for w in lab.live_workers():
        assert lab.status(w) == "Ready", (w, lab.statuses())

    worker = lab.cli(node)
    old_id = lab.ids[node]
    worker.ok("swarm", "leave")
    state = worker.ok("info", "--format", "{{.Swarm.LocalNodeState}}").strip()
    assert state == "inactive"
    wait_until(node_is(lab, node, "Down"), what=f"{node}'s old node Down", log=lab.logs)
    remote = f"{lab.addrs['m1']}:2377"
    join = ("swarm", "join", "--advertise-addr", lab.addrs[node])

    rc, out, err = worker.run(*join, "--token", old, remote)
    assert rc != 0, f"a join with the rotated token succeeded:\n{out}"
    assert INVALID_TOKEN in err, err
    assert worker.ok("info", "--format", "{{.Swarm.LocalNodeState}}").strip() == "inactive"
    # A made-up secret with the right digest is refused the same way.
    forged = "-".join([*old.split("-")[:3], "0" * 25])
    rc, out, err = worker.run(*join, "--token", forged, remote)
    assert rc != 0 and INVALID_TOKEN in err, (rc, out, err)

    out = worker.ok(*join, "--token", new, remote)
    assert "This node joined a swarm as a worker." in out, out
    lab.ids[node] = lab.node_id(node)
    assert lab.ids[node] != old_id
    wait_until(node_is(lab, node, "Ready"), what=f"{node} Ready as a new node", log=lab.logs)
    lab.manager.ok("node", "rm", old_id)  # the old node is down: no --force needed
    hosts = Counter(r["Hostname"] for r in lab.node_rows())
    assert hosts == Counter({lab.node(s): 1 for s in NODES if s not in lab.gone}), hosts
    wait_until(web_running(lab, tuple(lab.live_workers())), what="web converged", log=lab.logs)


def test_removed_live_node_cannot_come_back(
    lab: Lab, web: str, capsys: pytest.CaptureFixture[str]
) -> None:
    workers = lab.live_workers()
    wait_until(web_running(lab, tuple(workers)), what="web converged", log=lab.logs)
    node = lab.busiest_worker()
    others = tuple(w for w in workers if w != node)
    node_id = lab.ids[node]
    assert lab.per_node()[lab.node(node)] > 0
    refused = f"refused session of node {node_id}"
    rc, out, err = lab.manager.run("node", "rm", lab.node(node))
    assert rc != 0 and f"node {node_id} is not down and can't be removed" in err, (rc, out, err)

    lab.manager.ok("node", "rm", "--force", lab.node(node))
    lab.gone.add(node)
    assert node_id not in lab.statuses()
    # Its agent loses its session and is refused when it tries again (its certificate names
    # a node that no longer exists); the replacements of its tasks run on the others.
    wait_until(
        lambda: None if _count_lines(lab, "m1", refused) else "no refusal yet",
        what=f"the manager refusing {node}'s session",
        log=lambda: lab.logs("m1", node),
    )
    wait_until(web_running(lab, others), what=f"web running on {others}", log=lab.logs)
    assert node_id not in lab.statuses()
    assert lab.node(node) not in {r["Hostname"] for r in lab.node_rows()}
    state = lab.cli(node).ok("info", "--format", "{{.Swarm.LocalNodeState}}").strip()
    say(
        capsys,
        f"{node} removed: its shoald says LocalNodeState={state}; "
        f"{len(lab.containers(node, web) or [])} web containers still running on its engine",
    )

    # A fresh shoald on that host, with the same certificate, is refused too.
    n = _count_lines(lab, "m1", refused)
    lab.action("kill", node)
    lab.action("start", node)
    wait_until(
        lambda: None if _count_lines(lab, "m1", refused) > n else "no new refusal yet",
        what=f"the manager refusing the restarted {node}",
        log=lambda: lab.logs("m1", node),
    )
    assert node_id not in lab.statuses()
    assert lab.node(node) not in {r["Hostname"] for r in lab.node_rows()}
    wait_until(web_running(lab, others), what=f"web still on {others}", log=lab.logs)
    assert not lab.containers(node, web), "the removed node runs web containers again"
