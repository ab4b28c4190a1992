#!/usr/bin/env python3
"""Convergence and scaling, side by side: shoal vs Docker's own swarm mode vs `docker run`.

One run of this script measures, one system after the other on this machine, each against
its own fresh, isolated dockerd (``shoal.testing.dockerd.IsolatedEngine``) with the test images:

* ``shoal``  — a shoald in front of the engine (started in the engine's namespaces, like a
  per-host shoald; ``--shoald-host-ns`` keeps it in ours) with its etcd child on free ports;
  ``docker swarm init --advertise-addr 127.0.0.1`` through shoald's socket.
* ``docker`` — Docker's own swarm mode in that engine (``docker swarm init`` on the engine).
* ``run``    — no orchestrator: N parallel ``docker run -d`` against the engine.

For the two swarms it times, with the stock docker CLI,

    docker service create -d --name web --replicas N shoal-test/whoami:1   → N/N running
    docker service scale -d web=M                                           → M/M running
    docker service rm web                                                   → 0 containers

where "running" is what ``docker service ls`` shows (``GET /services?status=true``,
``ServiceStatus.RunningTasks``, polled every ``--poll`` s); the number of running task
containers in the engine is polled beside it as a cross-check. For ``run`` it times N
parallel ``docker run -d`` until N containers run, then M-N more.

It also reports, with M tasks running: the RSS of shoald and of its etcd child (and of
dockerd/containerd of every engine), and the CPU they use over a few idle seconds.

    python bench/converge.py [--replicas 50] [--scale-to 100] [--only shoal|docker|run]
                             [--json results.json] [--rounds 3] [--trace-states]
                             [--nodes N [--no-prepull] [--keep-labs]]

``--nodes N`` runs the same comparison across hosts instead: each system on a fresh
``shoal lab`` of 1 manager (drained) + N workers (``labkit.BenchLab``): shoal's swarm on
``shoal lab up``, Docker's own swarm mode (``docker swarm init/join`` on the hosts' dockerd
sockets) on identical hosts of ``shoal lab up --no-swarm``, and for ``run`` the same
containers split evenly over the workers' engines with parallel ``docker run -d``. The
image is ``<lab registry>/shoal-lab/whoami:1``, pulled into the workers' engines
beforehand (``--no-prepull``: not). Defaults there: ``--replicas 150``, no scale phase
(give ``--scale-to``). Task containers are counted in every engine; every node is watched
for a false "down" while the tasks start; the RSS/CPU rows name the node (``shoald-m1``)
or sum the workers (``dockerd-workers``). Each lab is removed (``shoal lab down``) after
its system, also on failure.

``--rounds`` repeats the comparison with the systems interleaved and reports medians (the
machine may be shared: the spread is printed too); ``--trace-states`` also polls
``GET /tasks`` to show when the tasks reached each state (diagnostic, adds API load).

Needs root (it starts dockerds in namespaces), docker, dockerd, etcd, busybox-static
(``scripts/setup.sh``). Everything it starts is torn down at the end, also on failure or
Ctrl-C. See ``docs/design/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

SRC = Path(__file__).resolve().parent.parent / "src"
try:
    import shoal  # noqa: F401
except ImportError:
    sys.path.insert(0, str(SRC))

from shoal.testing.dockerd import IsolatedEngine, api_request  # noqa: E402
from shoal.testing.images import WHOAMI_1, ensure_test_images  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from labkit import (  # noqa: E402
    BenchLab,
    all_pids,
    cmdline_of,
    comm_of,
    cpu_seconds,
    exit_on_signals,
    ppid_of,
    proc_kb,
    unique_name,
    with_worker_sums,
)

SERVICE = "web"
SYSTEMS = ("shoal", "docker", "run")


# --------------------------------------------------------------------------- small helpers


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def docker_cli(host: str, *args: str, timeout: float = 120.0) -> tuple[int, str, str, float]:
    """Run the stock docker CLI against host → (rc, stdout, stderr, seconds)."""
    env = dict(os.environ, DOCKER_HOST=host)
    for var in ("DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"):
        env.pop(var, None)
    t0 = time.monotonic()
    p = subprocess.run(
        [os.environ.get("SHOAL_BENCH_DOCKER_CLI", "docker"), *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return p.returncode, p.stdout, p.stderr, time.monotonic() - t0


def docker_ok(host: str, *args: str, timeout: float = 120.0) -> tuple[str, float]:
    rc, out, err, dt = docker_cli(host, *args, timeout=timeout)
    if rc != 0:
        raise RuntimeError(f"docker {' '.join(args)} → rc {rc}: {err.strip() or out.strip()}")
    return out, dt


def api_json(host: str, path: str, timeout: float = 30.0) -> Any:
    status, body = api_request(host, "GET", path, timeout=timeout)
    if status != 200:
        raise RuntimeError(f"GET {path} → {status}: {body[:300]!r}")
    return json.loads(body)


def q(**params: Any) -> str:
    return urllib.parse.urlencode(
        {k: json.dumps(v) if isinstance(v, dict) else v for k, v in params.items()}
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def children(pid: int, name: str | None = None) -> list[int]:
    return [p for p in all_pids() if ppid_of(p) == pid and (name is None or comm_of(p) == name)]


def mib(kb: int | None) -> float | None:
    return None if kb is None else round(kb / 1024, 1)


# --------------------------------------------------------------------------- measurements


def service_running(api_host: str, name: str) -> tuple[int, int]:
    """(RunningTasks, DesiredTasks) of a service, as ``docker service ls`` shows them."""
    found = api_json(api_host, "/services?" + q(status="true", filters={"name": [name]}))
    for s in found:
        if s.get("Spec", {}).get("Name") == name:
            st = s.get("ServiceStatus") or {}
            return int(st.get("RunningTasks") or 0), int(st.get("DesiredTasks") or 0)
    return 0, 0


def engine_running(engine_hosts: str | Sequence[str], label: str | None) -> int:
    """Running containers in the engine(s) (optionally those of one swarm service)."""
    filters: dict[str, list[str]] = {"status": ["running"]}
    if label:
        filters["label"] = [label]
    hosts = [engine_hosts] if isinstance(engine_hosts, str) else engine_hosts
    return sum(len(api_json(h, "/containers/json?" + q(filters=filters))) for h in hosts)


class Poller:
    """Polls ``probe() → count`` every ``interval`` s and records when it reached targets."""

    def __init__(self, t0: float, probe: Callable[[], int], interval: float) -> None:
        self.t0, self.probe, self.interval = t0, probe, interval
        self.samples: list[tuple[float, int]] = []
        self.errors = 0

    def wait_for(
        self, done: Callable[[int], bool], timeout: float, extra: Callable[[int], None] | None
    ) -> float | None:
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


TASK_STATES = ("new", "pending", "assigned", "accepted", "preparing", "ready", "starting",
               "running")  # fmt: skip


class StateTrace:
    """When each task was first seen in each state (``--trace-states``: GET /tasks per poll)."""

    def __init__(self, api_host: str, t0: float) -> None:
        self.api_host, self.t0 = api_host, t0
        self.first: dict[str, dict[str, float]] = {}

    def poll(self) -> None:
        tasks = api_json(self.api_host, "/tasks?" + q(filters={"service": [SERVICE]}))
        now = round(time.monotonic() - self.t0, 3)
        for t in tasks:
            if t.get("DesiredState") != "running":
                continue
            seen = self.first.setdefault(t["ID"], {})
            state = (t.get("Status") or {}).get("State", "")
            if state in TASK_STATES:  # states are monotonic: reaching X means passing all < X
                for st in TASK_STATES[: TASK_STATES.index(state) + 1]:
                    seen.setdefault(st, now)

    def summary(self, new_only: set[str]) -> dict[str, dict[str, float | None]]:
        """Per state: when the first and the last of the phase's new tasks were seen in it."""
        out: dict[str, dict[str, float | None]] = {}
        for st in TASK_STATES:
            times = [v[st] for k, v in self.first.items() if k not in new_only and st in v]
            out[st] = {"first": min(times, default=None), "last": max(times, default=None),
                       "count": len(times)}  # fmt: skip
        return out


def wait_converge(
    api_host: str,
    engine_host: str | Sequence[str],
    target: int,
    t0: float,
    interval: float,
    timeout: float,
    trace: bool = False,
    old_tasks: set[str] | None = None,
    start: int = 0,
    watch: Callable[[float], None] | None = None,
) -> dict[str, Any]:
    """Poll the swarm API (and the engine(s) beside it) until target tasks run (from `start`);
    `watch(seconds)` is called after every poll (lab mode: are all nodes still ready?)."""
    label = f"com.docker.swarm.service.name={SERVICE}"
    engine_samples: list[tuple[float, int]] = []
    desired_seen: list[int] = []
    tracer = StateTrace(api_host, t0) if trace else None

    def probe() -> int:
        running, desired = service_running(api_host, SERVICE)
        desired_seen.append(desired)
        return running

    def beside(_: int) -> None:  # the engine's view, for the cross-check
        with contextlib.suppress(Exception):
            engine_samples.append(
                (round(time.monotonic() - t0, 3), engine_running(engine_host, label))
            )
        if tracer is not None:
            with contextlib.suppress(Exception):
                tracer.poll()
        if watch is not None:
            with contextlib.suppress(Exception):
                watch(time.monotonic() - t0)

    poller = Poller(t0, probe, interval)
    t_api = poller.wait_for(lambda n: n >= target, timeout, beside)
    t_engine = next((t for t, n in engine_samples if n >= target), None)
    extra: dict[str, Any] = {}
    if tracer is not None:
        extra["states"] = tracer.summary(old_tasks or set())
        extra["task_ids"] = sorted(tracer.first)
    return {
        **extra,
        "target": target,
        "seconds": t_api,
        "first_running_s": poller.first_at(lambda n: n > start),
        "half_running_s": poller.first_at(lambda n: n >= start + (target - start) / 2),
        "engine_containers_at_target_s": t_engine,
        "engine_containers_when_done": engine_samples[-1][1] if engine_samples else None,
        "desired_reported": desired_seen[-1] if desired_seen else None,
        "poll_errors": poller.errors,
        "polls": len(poller.samples),
        "samples": poller.samples,
        "timed_out": t_api is None,
    }


def wait_gone(
    engine_host: str | Sequence[str], t0: float, interval: float, timeout: float
) -> float | None:
    label = f"com.docker.swarm.service.name={SERVICE}"
    hosts = [engine_host] if isinstance(engine_host, str) else engine_host

    def probe() -> int:
        return sum(
            len(api_json(h, "/containers/json?" + q(all="1", filters={"label": [label]})))
            for h in hosts
        )

    return Poller(t0, probe, interval).wait_for(lambda n: n == 0, timeout, None)


def wait_node_ready(api_host: str, timeout: float = 60.0) -> float:
    t0 = time.monotonic()
    while True:
        with contextlib.suppress(Exception):
            nodes = api_json(api_host, "/nodes")
            if nodes and all(
                n.get("Status", {}).get("State") == "ready"
                and n.get("Spec", {}).get("Availability") == "active"
                for n in nodes
            ):
                return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            raise RuntimeError(f"swarm node not ready after {timeout}s")
        time.sleep(0.1)


def idle_cpu(pids: dict[str, int | None], seconds: float) -> dict[str, float | None]:
    """CPU use (% of one core) of each pid over `seconds`."""
    before = {k: cpu_seconds(p) for k, p in pids.items()}
    time.sleep(seconds)
    out: dict[str, float | None] = {}
    for k, p in pids.items():
        a, b = before[k], cpu_seconds(p)
        out[k] = None if a is None or b is None else round(100 * (b - a) / seconds, 1)
    return out


def engine_pids(engine: IsolatedEngine) -> dict[str, int | None]:
    containerd = next(iter(children(engine.pid or 0, "containerd")), None)
    return {"dockerd": engine.pid, "containerd": containerd}


def swarm_scenario(
    res: dict[str, Any],
    api_host: str,
    engine_hosts: Sequence[str],
    args: argparse.Namespace,
    pids_of: Callable[[], dict[str, int | None]],
    image: str = WHOAMI_1,
    watch: Callable[[float], None] | None = None,
) -> None:
    """create N → N running; scale to M → M running; measure; rm → 0 containers (into res).

    engine_hosts: the engines whose task containers are counted (the cross-check);
    pids_of(): the processes whose CPU and memory are measured."""
    pids = pids_of()
    cpu0 = {k: cpu_seconds(p) for k, p in pids.items()}
    t0 = time.monotonic()
    out, res["create_cli_s"] = docker_ok(
        api_host, "service", "create", "-d", "--name", SERVICE,
        "--replicas", str(args.replicas), image,
    )  # fmt: skip
    log(f"  service create returned after {res['create_cli_s']:.2f}s; waiting for {args.replicas}")
    res["create"] = wait_converge(
        api_host, engine_hosts, args.replicas, t0, args.poll, args.timeout, args.trace_states,
        watch=watch,
    )  # fmt: skip
    cpu1 = {k: cpu_seconds(p) for k, p in pids.items()}
    res["create"]["cpu_s"] = cpu_delta(cpu0, cpu1)
    if res["create"]["timed_out"]:
        raise TimeoutError(f"{args.replicas} tasks not running after {args.timeout}s")
    log(f"  {args.replicas}/{args.replicas} running after {res['create']['seconds']:.2f}s")

    if args.scale_to > args.replicas:
        t1 = time.monotonic()
        _, res["scale_cli_s"] = docker_ok(
            api_host, "service", "scale", "-d", f"{SERVICE}={args.scale_to}"
        )
        res["scale"] = wait_converge(
            api_host, engine_hosts, args.scale_to, t1, args.poll, args.timeout, args.trace_states,
            set(res["create"].get("task_ids") or ()), start=args.replicas, watch=watch,
        )  # fmt: skip
        res["scale"]["cpu_s"] = cpu_delta(cpu1, {k: cpu_seconds(p) for k, p in pids.items()})
        if res["scale"]["timed_out"]:
            raise TimeoutError(f"{args.scale_to} tasks not running after {args.timeout}s")
        log(f"  {args.scale_to}/{args.scale_to} running after {res['scale']['seconds']:.2f}s")

    time.sleep(args.settle)
    res["resources"] = resources(pids_of(), args.idle)
    rc, out, _, _ = docker_cli(api_host, "service", "ls")
    res["service_ls"] = out.strip()
    res["engine_containers_running"] = engine_running(engine_hosts, None)
    label = f"com.docker.swarm.service.name={SERVICE}"
    if len(engine_hosts) > 1:
        res["per_engine"] = {  # …/<lab>-w1/engine/docker.sock → w1
            h.rsplit("/", 3)[-3].rsplit("-", 1)[-1]: engine_running(h, label) for h in engine_hosts
        }
    with contextlib.suppress(Exception):  # the task containers are alike in both swarms?
        c = next(
            c
            for h in engine_hosts
            for c in api_json(h, "/containers/json?" + q(filters={"label": [label]}))
        )
        res["task_container"] = {
            "name": (c.get("Names") or ["?"])[0],
            "network_mode": (c.get("HostConfig") or {}).get("NetworkMode"),
            "networks": sorted((c.get("NetworkSettings") or {}).get("Networks") or {}),
        }

    t2 = time.monotonic()
    _, res["rm_cli_s"] = docker_ok(api_host, "service", "rm", SERVICE)
    res["rm_seconds"] = wait_gone(engine_hosts, t2, args.poll, args.timeout)
    log(f"  service rm → 0 containers after {fmt(res['rm_seconds'])}")


def cpu_delta(a: dict[str, float | None], b: dict[str, float | None]) -> dict[str, float | None]:
    return with_worker_sums({
        k: None if a.get(k) is None or b.get(k) is None else round(b[k] - a[k], 2)  # type: ignore[operator]
        for k in b
    })  # fmt: skip


def resources(pids: dict[str, int | None], idle_s: float) -> dict[str, Any]:
    out: dict[str, Any] = {"pids": pids}
    out["rss_mib"] = with_worker_sums({k: mib(proc_kb(p, "VmRSS")) for k, p in pids.items()})
    out["peak_rss_mib"] = with_worker_sums({k: mib(proc_kb(p, "VmHWM")) for k, p in pids.items()})
    out["cpu_total_s"] = {k: cpu_seconds(p) for k, p in pids.items()}
    if idle_s > 0:
        out["idle_cpu_pct"] = with_worker_sums(idle_cpu(pids, idle_s))
        out["idle_window_s"] = idle_s
    return out


# --------------------------------------------------------------------------- the three systems


def new_engine(stack: contextlib.ExitStack, label: str) -> IsolatedEngine:
    t0 = time.monotonic()
    eng = IsolatedEngine(hostname=f"bench-{label}")
    stack.callback(eng.stop)
    eng.start()
    ensure_test_images(eng.host)
    log(f"  engine {eng.name} up with test images in {time.monotonic() - t0:.2f}s")
    return eng


class Shoald:
    """A shoald in front of an engine (in the engine's namespaces unless told otherwise)."""

    def __init__(
        self, engine: IsolatedEngine, workdir: str, in_engine_ns: bool, log_level: str
    ) -> None:
        self.engine = engine
        self.dir = workdir
        self.host = f"unix://{workdir}/docker.sock"
        self.log_path = os.path.join(workdir, "shoald.log")
        self.state_dir = os.path.join(workdir, "state")
        self.in_engine_ns = in_engine_ns
        self.log_level = log_level
        self.proc: subprocess.Popen[bytes] | None = None
        self.etcd_pids: set[int] = set()

    def start(self) -> None:
        argv = [
            sys.executable, "-m", "shoal",
            "--state-dir", self.state_dir,
            "--host", self.host,
            "--engine", self.engine.host,
            "--etcd-client-port", str(free_port()),
            "--etcd-peer-port", str(free_port()),
            "--log-level", self.log_level,
        ]  # fmt: skip
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(SRC), *filter(None, [os.environ.get("PYTHONPATH")])]
        )
        with open(self.log_path, "ab") as out:
            kw: dict[str, Any] = dict(
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                start_new_session=True,
            )  # fmt: skip
            # nsenter execs the command (no --fork): the Popen pid is shoald's.
            self.proc = (
                self.engine.popen_in_ns(argv, **kw)
                if self.in_engine_ns
                else (subprocess.Popen(argv, **kw))
            )
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"shoald exited with {self.proc.returncode}:\n{self.tail()}")
            with contextlib.suppress(OSError, Exception):
                if api_request(self.host, "GET", "/_ping", timeout=2)[0] == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"shoald not answering /_ping:\n{self.tail()}")
            time.sleep(0.05)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def etcd_pid(self) -> int | None:
        found = children(self.pid or 0, "etcd")
        self.etcd_pids.update(found)
        return found[0] if found else None

    def tail(self, n: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(Path(self.log_path).read_text(errors="replace").splitlines()[-n:])
        return ""

    def stop(self) -> None:
        if self.proc is None:
            return
        self.etcd_pid()  # remember etcd before shoald goes (it runs in its own session)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                log("  shoald ignored SIGTERM for 15s: SIGKILL")
                self.proc.kill()
                self.proc.wait(timeout=5)
        # Anything still running from our directory (etcd, whatever shoald left behind).
        for pid in all_pids():
            if pid in self.etcd_pids or self.dir + "/" in cmdline_of(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def log_findings(self) -> dict[str, Any]:
        lines = Path(self.log_path).read_text(errors="replace").splitlines()
        levels: dict[str, int] = {}
        notable: dict[str, int] = {}
        for ln in lines:
            parts = ln.split(" ", 4)
            lvl = parts[2] if len(parts) > 3 else "?"
            levels[lvl] = levels.get(lvl, 0) + 1
            if lvl in ("WARNING", "ERROR", "CRITICAL") or "Traceback" in ln:
                msg = parts[4] if len(parts) > 4 else ln
                key = msg[:160]
                notable[key] = notable.get(key, 0) + 1
        etcd_log = Path(self.state_dir, "swarm", "etcd.log")
        etcd_notable: dict[str, int] = {}
        with contextlib.suppress(OSError):
            for ln in etcd_log.read_text(errors="replace").splitlines():
                # zap (JSON) or capnslog ("<date> <time> W | pkg: message") lines
                if any(m in ln for m in ('"level":"warn"', '"level":"error"', " W | ", " E | ")):
                    key = ln.split(" | ", 1)[-1][:160]
                    etcd_notable[key] = etcd_notable.get(key, 0) + 1
        etcd_warn = sum(etcd_notable.values())
        top = sorted(notable.items(), key=lambda kv: -kv[1])[:15]
        etcd_top = sorted(etcd_notable.items(), key=lambda kv: -kv[1])[:10]
        return {"lines": len(lines), "levels": levels, "notable": top, "etcd_warnings": etcd_warn,
                "etcd_notable": etcd_top}  # fmt: skip


def run_shoal(args: argparse.Namespace, res: dict[str, Any]) -> None:
    with contextlib.ExitStack() as stack:
        eng = new_engine(stack, "shoal")
        workdir = tempfile.mkdtemp(prefix="shoal-bench-")
        stack.callback(shutil.rmtree, workdir, True)
        shoald = Shoald(eng, workdir, not args.shoald_host_ns, args.shoald_log_level)
        stack.callback(shoald.stop)
        t0 = time.monotonic()
        shoald.start()
        res["shoald_start_s"] = round(time.monotonic() - t0, 3)
        _, res["swarm_init_s"] = docker_ok(
            shoald.host, "swarm", "init", "--advertise-addr", "127.0.0.1"
        )
        res["node_ready_after_init_s"] = wait_node_ready(shoald.host)
        log(f"  shoald up in {res['shoald_start_s']}s, swarm init {res['swarm_init_s']:.2f}s")
        time.sleep(args.settle)
        try:
            swarm_scenario(
                res, shoald.host, [eng.host], args,
                lambda: {"shoald": shoald.pid, "etcd": shoald.etcd_pid(), **engine_pids(eng)},
            )  # fmt: skip
        finally:
            with contextlib.suppress(Exception):
                res["shoald_log"] = shoald.log_findings()
            if args.keep_logs:
                dst = Path(args.keep_logs)
                dst.mkdir(parents=True, exist_ok=True)
                tag = f"-round{res.get('round', 1)}"
                with contextlib.suppress(OSError):
                    shutil.copy(shoald.log_path, dst / f"shoald{tag}.log")
                with contextlib.suppress(OSError):
                    shutil.copy(Path(shoald.state_dir, "swarm", "etcd.log"), dst / f"etcd{tag}.log")


def run_docker_swarm(args: argparse.Namespace, res: dict[str, Any]) -> None:
    with contextlib.ExitStack() as stack:
        eng = new_engine(stack, "docker")
        _, res["swarm_init_s"] = docker_ok(
            eng.host, "swarm", "init", "--advertise-addr", "127.0.0.1"
        )
        res["node_ready_after_init_s"] = wait_node_ready(eng.host)
        log(f"  swarm init {res['swarm_init_s']:.2f}s")
        time.sleep(args.settle)
        swarm_scenario(res, eng.host, [eng.host], args, lambda: engine_pids(eng))


def parallel_runs(
    plan: Sequence[tuple[str, int]],
    already: int,
    count_on: Sequence[str],
    pids: dict[str, int | None],
    image: str,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """`n` parallel `docker run -d image` against each (engine, n) of plan, all at once; then
    poll the engines in count_on until already + Σn containers run."""
    total = sum(n for _, n in plan)
    cpu0 = {k: cpu_seconds(p) for k, p in pids.items()}
    t0 = time.monotonic()
    jobs = [host for host, n in plan for _ in range(n)]
    with ThreadPoolExecutor(max_workers=max(len(jobs), 1)) as pool:
        results = list(pool.map(lambda h: docker_cli(h, "run", "-d", image), jobs))
    cli_done = time.monotonic() - t0
    failed = [r[2].strip() for r in results if r[0] != 0]
    poller = Poller(t0, lambda: engine_running(count_on, None), args.poll)
    t = poller.wait_for(lambda k: k >= already + total, args.timeout, None)
    return {
        "target": already + total,
        "seconds": t,
        "all_cli_returned_s": cli_done,
        "cli_seconds_median": statistics.median(r[3] for r in results),
        "cli_seconds_max": max(r[3] for r in results),
        "failed": len(failed),
        "failures": failed[:5],
        "timed_out": t is None,
        "cpu_s": cpu_delta(cpu0, {k: cpu_seconds(p) for k, p in pids.items()}),
    }


def run_batches(
    res: dict[str, Any],
    engines: Sequence[str],
    pids_of: Callable[[], dict[str, int | None]],
    image: str,
    args: argparse.Namespace,
) -> None:
    """N containers spread evenly over the engines, then M-N more (into res)."""

    def spread(n: int) -> list[tuple[str, int]]:
        k = len(engines)
        return [(h, n // k + (1 if i < n % k else 0)) for i, h in enumerate(engines)]

    pids = pids_of()
    res["create"] = parallel_runs(spread(args.replicas), 0, engines, pids, image, args)
    if res["create"]["timed_out"]:
        raise TimeoutError(f"{args.replicas} containers not running after {args.timeout}s")
    log(f"  {args.replicas} containers running after {res['create']['seconds']:.2f}s")
    if args.scale_to > args.replicas:
        res["scale"] = parallel_runs(
            spread(args.scale_to - args.replicas), args.replicas, engines, pids, image, args
        )
        if res["scale"]["timed_out"]:
            raise TimeoutError(f"{args.scale_to} containers not running after {args.timeout}s")
        log(f"  {args.scale_to} containers running after {res['scale']['seconds']:.2f}s")
    time.sleep(args.settle)
    res["resources"] = resources(pids_of(), args.idle)


def run_parallel(args: argparse.Namespace, res: dict[str, Any]) -> None:
    with contextlib.ExitStack() as stack:
        eng = new_engine(stack, "run")
        time.sleep(args.settle)
        run_batches(res, [eng.host], lambda: engine_pids(eng), WHOAMI_1, args)


# --------------------------------------------------------------------------- --nodes N: a lab


class NodeWatch:
    """Lab mode: every poll, is every node still `ready`? (A false "down" under load.)"""

    def __init__(self, lab: BenchLab, res: dict[str, Any]) -> None:
        self.lab = lab
        self.seen: dict[str, float] = res.setdefault("nodes_not_ready", {})
        self.last = 0.0

    def __call__(self, now: float) -> None:
        if time.monotonic() - self.last < 0.5:  # at most 2 GET /nodes a second
            return
        self.last = time.monotonic()
        for n in self.lab.nodes():
            state = (n.get("Status") or {}).get("State")
            if state != "ready":
                key = f"{self.lab.short(n['Description']['Hostname'])}:{state}"
                self.seen.setdefault(key, round(now, 2))


def lab_runner(system: str) -> Callable[[argparse.Namespace, dict[str, Any]], None]:
    def run(args: argparse.Namespace, res: dict[str, Any]) -> None:
        lab = BenchLab(
            "plain" if system == "run" else system, unique_name("cv", system), args.nodes,
            keep=args.keep_labs, log_level=args.shoald_log_level,
        )  # fmt: skip
        res["lab"] = lab.name
        with lab:
            try:
                lab.up()
                res.update(lab.timings)
                image = lab.image("whoami:1")
                if not args.no_prepull:
                    res["prepull_s"] = lab.prepull(image)
                workers = [lab.engine_host(w) for w in lab.workers]
                if system == "run":
                    time.sleep(args.settle)
                    run_batches(res, workers, lab.pids, image, args)
                    return
                lab.wait_ready()
                lab.drain_managers()
                res["heartbeat_period_s"] = lab.heartbeat_period_s()
                time.sleep(args.settle)
                engines = [*workers, *(lab.engine_host(m) for m in lab.managers)]
                swarm_scenario(
                    res, lab.api_host, engines, args, lab.pids, image, NodeWatch(lab, res)
                )
            finally:  # before `shoal lab down` removes them
                if system == "shoal":
                    with contextlib.suppress(Exception):
                        res["shoald_logs"] = lab.shoald_logs()
                if args.keep_logs and lab.state:
                    lab.copy_logs(args.keep_logs, f"round{res.get('round', 1)}")

    return run


RUNNERS: dict[str, Callable[[argparse.Namespace, dict[str, Any]], None]] = {
    "shoal": run_shoal,
    "docker": run_docker_swarm,
    "run": run_parallel,
}
LAB_RUNNERS = {s: lab_runner(s) for s in SYSTEMS}  # --nodes N


# --------------------------------------------------------------------------- report


def fmt(v: Any, unit: str = "s") -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.1f}{unit}" if unit.endswith(("MiB", "%")) else f"{v:.2f}{unit}"
    return f"{v}{unit}"


def ratio(other: float | None, shoal: float | None) -> float | None:
    if not other or not shoal:
        return None
    return round(other / shoal, 2)


def summarise(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    def get(system: str, phase: str) -> float | None:
        r = results.get(system, {})
        return (r.get(phase) or {}).get("seconds")

    ratios: dict[str, Any] = {}
    for other in ("docker", "run"):
        if other in results and "shoal" in results:
            ratios[f"{other}_over_shoal"] = {
                "create": ratio(get(other, "create"), get("shoal", "create")),
                "scale": ratio(get(other, "scale"), get("shoal", "scale")),
            }
    return ratios


PROCS = (  # rows of the resource table, when measured: single engine, then lab (--nodes)
    "shoald", "shoald-m1", "shoald-workers", "etcd", "dockerd", "dockerd-m1",
    "dockerd-workers", "containerd", "containerd-m1", "containerd-workers",
)  # fmt: skip


def print_report(
    results: dict[str, dict[str, Any]],
    ratios: dict[str, Any],
    args: argparse.Namespace,
    rounds: dict[str, list[dict[str, Any]]],
) -> None:
    n, m = args.replicas, args.scale_to
    names = {"shoal": "shoal", "docker": "Docker swarm", "run": "docker run ×N"}

    def phase(name: str, key: str) -> Callable[[dict[str, Any]], Any]:
        return lambda r: (r.get(name) or {}).get(key)

    def res(kind: str, proc: str) -> Callable[[dict[str, Any]], Any]:
        return lambda r: ((r.get("resources") or {}).get(kind) or {}).get(proc)

    def cli_returned(r: dict[str, Any]) -> Any:
        return r.get("create_cli_s", (r.get("create") or {}).get("all_cli_returned_s"))

    spec: list[tuple[str, Callable[[dict[str, Any]], Any], str]] = [
        (f"0 → {n} running", phase("create", "seconds"), "s"),
        (f"{n} → {m} running", phase("scale", "seconds"), "s"),
        ("  first task running", phase("create", "first_running_s"), "s"),
        (f"  {n // 2} running", phase("create", "half_running_s"), "s"),
        (f"  {n + 1} running (after scale)", phase("scale", "first_running_s"), "s"),
        (f"  {n + (m - n) // 2} running (after scale)", phase("scale", "half_running_s"), "s"),
        ("  create CLI returned", cli_returned, "s"),
        ("  scale CLI returned", lambda r: r.get("scale_cli_s"), "s"),
        ("service rm → 0 containers", lambda r: r.get("rm_seconds"), "s"),
        ("swarm init", lambda r: r.get("swarm_init_s"), "s"),
        ("lab up (+ Docker's swarm init/join)", lambda r: r.get("lab_up_s"), "s"),
    ]
    for kind, label, unit in (("rss_mib", "RSS", " MiB"), ("idle_cpu_pct", "idle CPU", " %")):
        for proc in PROCS:
            if any(res(kind, proc)(r) is not None for r in results.values()):
                spec.append((f"{label} {proc} @ {m} tasks", res(kind, proc), unit))

    def cpu(proc: str) -> Callable[[dict[str, Any]], Any]:
        def get(r: dict[str, Any]) -> Any:
            a, b = (((r.get(ph) or {}).get("cpu_s") or {}).get(proc) for ph in ("create", "scale"))
            if a is None and b is None:
                return None
            return fmt(a, "") if args.scale_to <= args.replicas else f"{fmt(a, '')} + {fmt(b, '')}"

        return get

    for proc in PROCS:
        if any(cpu(proc)(r) is not None for r in results.values()):
            phases = "create" if args.scale_to <= args.replicas else "create + scale"
            spec.append((f"CPU-s {proc}, {phases}", cpu(proc), ""))
    rows = [("", *[names[s] for s in results])]
    for label, get, unit in spec:
        if all(get(r) is None for r in results.values()):
            continue  # e.g. no scale phase
        cells = []
        for s, r in results.items():
            cell = fmt(get(r), unit)
            each = [get(x) for x in rounds[s]]
            each = [v for v in each if isinstance(v, int | float)]
            if unit == "s" and len(each) > 1:  # the spread over the rounds
                cell += f" ({min(each):.2f}–{max(each):.2f})"
            cells.append(cell)
        rows.append((label, *cells))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    print()
    for i, row in enumerate(rows):
        cells = [
            c.ljust(w) if j == 0 else c.rjust(w)
            for j, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        print("  ".join(cells))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    print()
    if args.rounds > 1:
        print(f"medians over {args.rounds} rounds (min–max in brackets)\n")
    for key, label in (
        ("docker_over_shoal", "Docker swarm / shoal"),
        ("run_over_shoal", "run / shoal"),
    ):
        if key in ratios:
            r = ratios[key]
            print(f"{label:21} create {fmt(r['create'], '×')}  scale {fmt(r['scale'], '×')}"
                  "  (time ratio; > 1: shoal faster)")  # fmt: skip
    for s, r in results.items():
        if r.get("error"):
            print(f"!! {s}: {r['error']}")
    for s, rs in rounds.items():
        for r in rs:
            if r.get("per_engine"):
                print(f"{names[s]} round {r['round']}: task containers per engine "
                      f"{r['per_engine']}; nodes seen not ready: "
                      f"{r.get('nodes_not_ready') or 'none'}")  # fmt: skip
    for r in rounds.get("shoal", []):
        for node, info in (r.get("shoald_logs") or {}).items():
            if info.get("notable"):
                print(f"\nshoald log {node} (round {r['round']}): {info['lines']} lines "
                      f"{info['levels']}")  # fmt: skip
                for msg, count in info["notable"][:8]:
                    print(f"  {count:5}× {msg[:150]}")
        sh = r.get("shoald_log")
        if sh:
            print(f"\nshoald log (round {r['round']}): {sh['lines']} lines {sh['levels']}; "
                  f"etcd warnings: {sh['etcd_warnings']}")  # fmt: skip
            for msg, count in sh["notable"]:
                print(f"  {count:5}× {msg}")
            for msg, count in sh.get("etcd_notable", []):
                print(f"  {count:5}× etcd: {msg}")
    print()


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--replicas", type=int, help="default 50; 150 with --nodes")
    p.add_argument("--scale-to", type=int, help="default 100; with --nodes: no scaling")
    p.add_argument(
        "--nodes",
        type=int,
        default=0,
        metavar="N",
        help="on `shoal lab`s of N workers + 1 drained manager instead of one engine",
    )
    p.add_argument(
        "--only",
        choices=SYSTEMS,
        action="append",
        help="measure only this system (repeatable); default: all three",
    )
    p.add_argument("--json", help="write the results as JSON to this file")
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="repeat the whole comparison (systems interleaved); report medians",
    )
    p.add_argument("--poll", type=float, default=0.15, help="poll interval in seconds")
    p.add_argument("--timeout", type=float, default=300.0, help="per-phase timeout in seconds")
    p.add_argument(
        "--settle",
        type=float,
        default=1.0,
        help="pause after setup and before the resource measurement",
    )
    p.add_argument(
        "--idle",
        type=float,
        default=5.0,
        help="seconds over which idle CPU is measured with all tasks running (0: skip)",
    )
    p.add_argument(
        "--shoald-host-ns",
        action="store_true",
        help="run shoald in this (root) network namespace instead of the engine's",
    )
    p.add_argument("--shoald-log-level", default="info")
    p.add_argument(
        "--trace-states",
        action="store_true",
        help="also GET /tasks every poll and report when tasks reached each state "
        "(diagnostic: adds API load)",
    )
    p.add_argument("--keep-logs", metavar="DIR", help="copy shoald's log into DIR")
    p.add_argument("--keep-labs", action="store_true", help="--nodes: leave the labs up")
    p.add_argument(
        "--no-prepull",
        action="store_true",
        help="--nodes: do not pull the image into the workers' engines beforehand",
    )
    a = p.parse_args(argv)  # fmt: skip
    if a.replicas is None:
        a.replicas = 150 if a.nodes else 50
    if a.scale_to is None:
        a.scale_to = a.replicas if a.nodes else 100
    if a.scale_to < a.replicas:
        p.error("--scale-to must be ≥ --replicas")
    return a


def machine_info() -> dict[str, Any]:
    def ver(cmd: list[str]) -> str:
        with contextlib.suppress(Exception):
            return (
                subprocess.run(cmd, capture_output=True, text=True, timeout=10)
                .stdout.strip()
                .splitlines()[0]
            )
        return "?"

    return {
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "docker_cli": ver(["docker", "--version"]),
        "dockerd": ver(["dockerd", "--version"]),
        "etcd": ver(["etcd", "--version"]),
        "loadavg_before": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    exit_on_signals()
    systems = [s for s in SYSTEMS if not args.only or s in args.only]
    out: dict[str, Any] = {
        "benchmark": "converge",
        "params": {"replicas": args.replicas, "scale_to": args.scale_to, "poll_s": args.poll,
                   "nodes": args.nodes, "prepull": args.nodes > 0 and not args.no_prepull,
                   "image": "<lab registry>/shoal-lab/whoami:1" if args.nodes else WHOAMI_1},
        "machine": machine_info(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }  # fmt: skip
    rounds: dict[str, list[dict[str, Any]]] = {s: [] for s in systems}
    for i in range(args.rounds):
        for s in systems:  # interleaved, so that a noisy minute hits every system alike
            log(f"── {s}" + (f" (round {i + 1}/{args.rounds})" if args.rounds > 1 else ""))
            t0 = time.monotonic()
            res: dict[str, Any] = {"system": s, "round": i + 1, "loadavg": os.getloadavg()}
            rounds[s].append(res)
            try:
                (LAB_RUNNERS if args.nodes else RUNNERS)[s](args, res)
            except Exception as e:  # noqa: BLE001 — report it, go on with the next system
                log(f"  {s} failed: {type(e).__name__}: {e}")
                res["error"] = f"{type(e).__name__}: {e}"
            res["wall_s"] = round(time.monotonic() - t0, 2)
            log(f"  {s} done (wall {res['wall_s']}s, torn down)")
    results = {s: median_of(rs) for s, rs in rounds.items()}
    ratios = summarise(results, args)
    out["results"] = results  # per system; numbers are medians over the rounds
    out["rounds"] = rounds
    out["ratios"] = ratios
    out["machine"]["loadavg_after"] = os.getloadavg()
    print_report(results, ratios, args, rounds)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=str) + "\n")
        log(f"results written to {args.json}")
    return 1 if any(r.get("error") for rs in rounds.values() for r in rs) else 0


# Not averaged: the first round's.
VERBATIM = {"shoald_log", "shoald_logs", "nodes_not_ready", "pids", "states", "round", "loadavg"}


def median_of(rounds: list[dict[str, Any]], top: bool = True) -> dict[str, Any]:
    """One result shaped like a round's: numbers are medians over the rounds that have them,
    anything else is the first round's (lists: samples, traces)."""
    ok = [r for r in rounds if not r.get("error")] or rounds
    out: dict[str, Any] = {}
    for key in dict.fromkeys(k for r in ok for k in r):
        vals = [r[key] for r in ok if key in r]
        nums = [v for v in vals if isinstance(v, int | float) and not isinstance(v, bool)]
        if key in VERBATIM:
            out[key] = vals[0]
        elif vals and all(isinstance(v, dict) for v in vals):
            out[key] = median_of(vals, top=False)
        elif nums and len(nums) == len(vals):
            med = statistics.median(nums)
            out[key] = round(med, 3) if isinstance(med, float) else med
        else:
            out[key] = vals[0]
    if top:
        errors = [r["error"] for r in rounds if r.get("error")]
        if errors:
            out["error"] = "; ".join(errors)
        out["rounds"] = len(rounds)
    return out


if __name__ == "__main__":
    sys.exit(main())
