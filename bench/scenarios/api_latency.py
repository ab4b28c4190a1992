"""API latency, step by step (``api_latency.py``): on one lab of 3 managers + 2 workers per
system, ``--services`` services of ``--replicas`` busybox tasks each run on the workers;
then ``GET /services?status=true``, ``GET /tasks`` and ``POST /services/{id}/update`` (a
scale change) are each sent ``--samples`` times, one after the other, to the leader and to
a follower, and every request's wall time is kept."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import time
from typing import Any

from kit.docker import count_containers
from kit.lab import BenchLab, unique_name
from kit.report import percentile
from kit.runs import log

from scenarios.leader_failover import current_view, leader_in, wait_whole
from shoal.lab.api import api_json, api_request

SYSTEMS = ("shoal", "docker")
READS = (("services", "/services?status=true"), ("tasks", "/tasks"))
# A task that idles without a process per second and stops at once on SIGTERM.
COMMAND = ["sh", "-c", "trap 'exit 0' TERM; sleep 86400 & wait"]


def spec(name: str, image: str, replicas: int) -> dict[str, Any]:
    return {
        "Name": name,
        "Labels": {"bench": "api_latency"},
        "TaskTemplate": {
            "ContainerSpec": {"Image": image, "Command": COMMAND},
            "Placement": {"Constraints": ["node.role==worker"]},
        },
        "Mode": {"Replicated": {"Replicas": replicas}},
    }


def create_services(host: str, image: str, n: int, replicas: int) -> dict[str, float]:
    t0 = time.monotonic()
    times = []
    for i in range(n):
        t1 = time.monotonic()
        status, body = api_json(host, "POST", "/services/create",
                                spec(f"lat{i:04d}", image, replicas), timeout=30)  # fmt: skip
        times.append(time.monotonic() - t1)
        if status != 201:
            raise RuntimeError(f"service create {i} → {status}: {str(body)[:300]}")
    return {"total_s": round(time.monotonic() - t0, 2), "p50_ms": ms(percentile(times, 50)),
            "p99_ms": ms(percentile(times, 99))}  # fmt: skip


def ms(v: float | None) -> float | None:
    return None if v is None else round(v * 1000, 2)


def running_total(host: str) -> tuple[int, int]:
    status, body = api_request(host, "GET", "/services?status=true", timeout=30)
    if status != 200:
        raise RuntimeError(f"GET /services → {status}")
    svcs = json.loads(body)
    st = [s.get("ServiceStatus") or {} for s in svcs]
    return sum(int(x.get("RunningTasks") or 0) for x in st), len(svcs)


def wait_all_running(host: str, want: int, timeout: float) -> float:
    t0 = time.monotonic()
    last: Any = None
    while True:
        with contextlib.suppress(Exception):
            last = running_total(host)
            if last[0] >= want:
                return round(time.monotonic() - t0, 2)
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"{want} tasks not running after {timeout}s: {last}")
        time.sleep(1.0)


def summary(times: list[float], sizes: list[int], fails: int) -> dict[str, Any]:
    return {"n": len(times), "p50_ms": ms(percentile(times, 50)),
            "p99_ms": ms(percentile(times, 99)), "max_ms": ms(max(times) if times else None),
            "mean_ms": ms(sum(times) / len(times) if times else None),
            "bytes": sizes[-1] if sizes else None, "failed": fails}  # fmt: skip


def measure_read(host: str, path: str, samples: int, warmup: int) -> dict[str, Any]:
    times: list[float] = []
    sizes: list[int] = []
    fails = 0
    for i in range(warmup + samples):
        t0 = time.monotonic()
        status, body = api_request(host, "GET", path, timeout=30)
        dt = time.monotonic() - t0
        if status != 200:
            fails += 1
            continue
        if i >= warmup:
            times.append(dt)
            sizes.append(len(body))
    return summary(times, sizes, fails)


def measure_writes(
    host: str, ids: list[str], samples: int, start: int, replicas: int, up: bool
) -> dict[str, Any]:
    """One scale change per sample, each to the next service (round-robin from start):
    ``GET /services/{id}`` for its version (not timed), then the timed
    ``POST /services/{id}/update?version=V`` with replicas + 1 (``up``) or back."""
    times: list[float] = []
    fails = 0
    errors: list[str] = []
    for k in range(samples):
        sid = ids[(start + k) % len(ids)]
        status, svc = api_json(host, "GET", f"/services/{sid}", timeout=30)
        if status != 200:
            fails += 1
            continue
        sp = svc["Spec"]
        sp["Mode"]["Replicated"]["Replicas"] = replicas + 1 if up else replicas
        version = svc["Version"]["Index"]
        t0 = time.monotonic()
        status, body = api_json(host, "POST", f"/services/{sid}/update?version={version}", sp,
                                timeout=30)  # fmt: skip
        dt = time.monotonic() - t0
        if status != 200:
            fails += 1
            errors.append(f"{status}: {str(body)[:150]}")
            continue
        times.append(dt)
    out = summary(times, [], fails)
    out["errors"] = errors[:5]
    return out


def run_system(system: str, args: argparse.Namespace, res: dict[str, Any]) -> None:
    """One system on its own fresh lab, removed after it."""
    lab = BenchLab(system, unique_name("al", system), args.workers, keep=args.keep_labs,
                   log_level=args.shoald_log_level, managers=args.managers)  # fmt: skip
    res["lab"] = lab.name
    want = args.services * args.replicas
    with lab:
        try:
            lab.up()
            res.update(lab.timings)
            lab.wait_ready(120)
            wait_whole(lab, lab.managers[0], 120)
            image = lab.image("busybox:1")
            if not args.no_prepull:
                res["prepull_s"] = lab.prepull(image)
            view = current_view(lab, lab.managers)
            leader = leader_in(view)
            assert leader is not None
            follower = next(m for m in lab.managers if m != leader)
            res["leader"], res["follower"] = lab.short(leader), lab.short(follower)
            t0 = time.monotonic()
            res["create"] = create_services(lab.api_of(leader), image, args.services,
                                            args.replicas)  # fmt: skip
            log(f"  {args.services} services created in {res['create']['total_s']}s "
                f"(p50 {res['create']['p50_ms']} ms); waiting for {want} tasks")  # fmt: skip
            wait_all_running(lab.api_of(leader), want, args.timeout)
            res["all_running_s"] = round(time.monotonic() - t0, 2)
            res["containers_per_worker"] = {  # every running container there is a task's
                lab.short(w): count_containers(lab.engine_host(w), label=None, timeout=10)
                for w in lab.workers
            }
            log(f"  {want} tasks running after {res['all_running_s']}s: "
                f"{res['containers_per_worker']}")  # fmt: skip
            time.sleep(args.settle)
            _st, svcs = api_json(lab.api_of(leader), "GET", "/services", timeout=30)
            ids = sorted(s["ID"] for s in svcs if (s["Spec"].get("Labels") or {}).get("bench"))
            res["results"] = {}
            roles = (("leader", leader), ("follower", follower))
            for role, node in roles:  # the reads first, on a quiet cluster
                host = lab.api_of(node)
                for name, path in READS:
                    r = measure_read(host, path, args.samples, args.warmup)
                    res["results"].setdefault(name, {})[role] = r
                    log(f"  GET {path} on the {role}: p50 {r['p50_ms']} ms, p99 {r['p99_ms']} "
                        f"ms ({r['bytes']} bytes)")  # fmt: skip
            for k, (role, node) in enumerate(roles):
                # the leader scales the first `write_samples` services up, the follower back
                # down; between the two, the cluster converges again
                r = measure_writes(lab.api_of(node), ids, args.write_samples, 0, args.replicas,
                                   up=(k == 0))  # fmt: skip
                res["results"].setdefault("update", {})[role] = r
                log(f"  POST /services/{{id}}/update on the {role}: p50 {r['p50_ms']} ms, "
                    f"p99 {r['p99_ms']} ms, failed {r['failed']}")  # fmt: skip
                if k == 0:
                    t1 = time.monotonic()
                    wait_all_running(lab.api_of(leader), want + args.write_samples, args.timeout)
                    res["scaled_up_running_s"] = round(time.monotonic() - t1, 2)
                    time.sleep(args.settle)
            res["loadavg_end"] = list(os.getloadavg())
        finally:  # before `shoal lab down` removes them
            with contextlib.suppress(Exception):
                res["shoald_logs"] = lab.shoald_logs() if lab.state else {}
            if args.keep_logs and lab.state:
                lab.copy_logs(args.keep_logs, "run")
