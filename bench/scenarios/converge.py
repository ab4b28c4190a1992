"""Convergence and scaling, the phases (``converge.py``): on a swarm, ``service create`` → N
running, ``service scale`` → M running, the resources, ``service rm`` → 0 containers; with
no orchestrator, N and then M − N parallel ``docker run -d``. Each system's setup around
them is in ``converge_systems``."""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kit.docker import (
    SERVICE,
    count_containers,
    docker_cli,
    docker_ok,
    service_status,
    service_tasks,
    task_containers,
)
from kit.poll import Poller, StateTrace, wait_gone
from kit.procs import cpu_delta, cpu_now, resources
from kit.report import fmt
from kit.runs import log

from shoal.testing.images import WHOAMI_1

API_TIMEOUT = 30.0  # per API call: a busy daemon may be slow to answer
PidsOf = Callable[[], dict[str, int | None]]


def wait_converge(
    api_host: str,
    engine_hosts: Sequence[str],
    target: int,
    t0: float,
    args: argparse.Namespace,
    old_tasks: set[str] | None = None,
    start: int = 0,
    watch: Callable[[float], None] | None = None,
) -> dict[str, Any]:
    """Poll the swarm API (and the engines beside it) until target tasks run (from `start`);
    `watch(seconds)` is called after every poll (lab mode: are all nodes still ready?)."""
    engine_samples: list[tuple[float, int]] = []
    desired_seen: list[int] = []
    tracer = StateTrace(lambda t: t.get("DesiredState") != "running") if args.trace_states else None

    def probe() -> int:
        running, desired = service_status(api_host, API_TIMEOUT)
        desired_seen.append(desired)
        return running

    def beside(_: int) -> None:  # the engines' view, for the cross-check
        with contextlib.suppress(Exception):
            now = round(time.monotonic() - t0, 3)
            engine_samples.append((now, count_containers(engine_hosts, timeout=API_TIMEOUT)))
        if tracer is not None:
            with contextlib.suppress(Exception):
                tasks = service_tasks(api_host, API_TIMEOUT)
                tracer.poll(tasks, time.monotonic() - t0)
        if watch is not None:
            with contextlib.suppress(Exception):
                watch(time.monotonic() - t0)

    poller = Poller(t0, probe, args.poll)
    t_api = poller.wait_for(lambda n: n >= target, args.timeout, beside)
    t_engine = next((t for t, n in engine_samples if n >= target), None)
    extra: dict[str, Any] = {}
    if tracer is not None:
        extra["states"] = tracer.summary(old_tasks or set(), empty=True)
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


def swarm_phases(
    res: dict[str, Any],
    api_host: str,
    engine_hosts: Sequence[str],
    args: argparse.Namespace,
    pids_of: PidsOf,
    image: str = WHOAMI_1,
    watch: Callable[[float], None] | None = None,
) -> None:
    """create N → N running; scale to M → M running; measure; rm → 0 containers (into res).

    engine_hosts: the engines whose task containers are counted (the cross-check);
    pids_of(): the processes whose CPU and memory are measured."""
    pids = pids_of()
    cpu0 = cpu_now(pids)
    t0 = time.monotonic()
    out, res["create_cli_s"] = docker_ok(
        api_host, "service", "create", "-d", "--name", SERVICE,
        "--replicas", str(args.replicas), image,
    )  # fmt: skip
    log(f"  service create returned after {res['create_cli_s']:.2f}s; waiting for {args.replicas}")
    res["create"] = wait_converge(api_host, engine_hosts, args.replicas, t0, args, watch=watch)
    cpu1 = cpu_now(pids)
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
            api_host, engine_hosts, args.scale_to, t1, args,
            set(res["create"].get("task_ids") or ()), start=args.replicas, watch=watch,
        )  # fmt: skip
        res["scale"]["cpu_s"] = cpu_delta(cpu1, cpu_now(pids))
        if res["scale"]["timed_out"]:
            raise TimeoutError(f"{args.scale_to} tasks not running after {args.timeout}s")
        log(f"  {args.scale_to}/{args.scale_to} running after {res['scale']['seconds']:.2f}s")

    time.sleep(args.settle)
    res["resources"] = resources(pids_of(), args.idle)
    rc, out, _, _ = docker_cli(api_host, "service", "ls")
    res["service_ls"] = out.strip()
    res["engine_containers_running"] = count_containers(
        engine_hosts, label=None, timeout=API_TIMEOUT
    )
    if len(engine_hosts) > 1:
        res["per_engine"] = {  # …/<lab>-w1/engine/docker.sock → w1
            h.rsplit("/", 3)[-3].rsplit("-", 1)[-1]: count_containers(h, timeout=API_TIMEOUT)
            for h in engine_hosts
        }
    with contextlib.suppress(Exception):  # the task containers are alike in both swarms?
        c = next(c for h in engine_hosts for c in task_containers(h, API_TIMEOUT))
        res["task_container"] = {
            "name": (c.get("Names") or ["?"])[0],
            "network_mode": (c.get("HostConfig") or {}).get("NetworkMode"),
            "networks": sorted((c.get("NetworkSettings") or {}).get("Networks") or {}),
        }

    t2 = time.monotonic()
    _, res["rm_cli_s"] = docker_ok(api_host, "service", "rm", SERVICE)
    res["rm_seconds"] = wait_gone(engine_hosts, t2, args.poll, args.timeout, API_TIMEOUT)
    log(f"  service rm → 0 containers after {fmt(res['rm_seconds'])}")


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
    cpu0 = cpu_now(pids)
    t0 = time.monotonic()
    jobs = [host for host, n in plan for _ in range(n)]
    with ThreadPoolExecutor(max_workers=max(len(jobs), 1)) as pool:
        results = list(pool.map(lambda h: docker_cli(h, "run", "-d", image), jobs))
    cli_done = time.monotonic() - t0
    failed = [r[2].strip() for r in results if r[0] != 0]
    poller = Poller(
        t0, lambda: count_containers(count_on, label=None, timeout=API_TIMEOUT), args.poll
    )
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
        "cpu_s": cpu_delta(cpu0, cpu_now(pids)),
    }


def run_phases(
    res: dict[str, Any],
    engines: Sequence[str],
    pids_of: PidsOf,
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
