"""The rolling update, one round step by step (``rolling_update.py``): the service on
``whoami:1``; the probers see every replica answering; ``service update`` to ``:2`` watched
from the API and by the probers until done; what was seen, per moment and per slot;
``service rm``. Also the labs' setup, once per system for all rounds."""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections import Counter
from typing import Any

from kit.docker import (
    SERVICE,
    api_get,
    docker_cli,
    docker_ok,
    is_running,
    service_tasks,
    task_containers,
)
from kit.lab import BenchLab
from kit.logs import LogMarks
from kit.poll import wait_gone, wait_running
from kit.report import fmt
from kit.runs import log

from .prober import Probers
from .serving import (
    NEW,
    OLD,
    dips,
    failures,
    probe_stats,
    serving_now,
    serving_series,
    task_serving,
)
from .update_watch import UpdateWatch, slot_medians, slot_report

SYSTEMS = ("shoal", "docker")


def check_probers(probers: Probers, args: argparse.Namespace, nodes: int) -> dict[str, Any]:
    """Wait until the probers see every replica answering the old version."""
    n = args.replicas
    t0 = time.monotonic()
    last: Counter[str] | None = None
    while time.monotonic() - t0 < args.serving_timeout:
        probers.check_alive()
        last = serving_now(probers.lines(), nodes)
        if last is not None and last[OLD] >= n:
            return {"ok": True, "after_s": round(time.monotonic() - t0, 2), "seen": dict(last)}
        time.sleep(0.1)
    return {"ok": False, "after_s": None, "seen": dict(last or {}),
            "probe": probe_stats(probers.lines())}  # fmt: skip


def task_container_info(lab: BenchLab) -> dict[str, Any]:
    """How one task container is set up (network, init): the same in both swarms?"""
    with contextlib.suppress(Exception):
        for node in lab.workers:
            cs = task_containers(lab.engine_host(node), timeout=10.0)
            if cs:
                c = api_get(lab.engine_host(node), f"/containers/{cs[0]['Id']}/json")
                return {
                    "NetworkMode": c["HostConfig"].get("NetworkMode"),
                    "Networks": sorted(c["NetworkSettings"].get("Networks") or {}),
                    "Init": c["HostConfig"].get("Init"),
                    "StopSignal": c["Config"].get("StopSignal"),
                    "StopTimeout": c["Config"].get("StopTimeout"),
                }
    return {}


def setup_lab(lab: BenchLab, args: argparse.Namespace, info: dict[str, Any]) -> None:
    lab.up()
    info.update(lab.timings)
    lab.wait_ready()
    lab.drain_managers()
    info["heartbeat_period_s"] = lab.heartbeat_period_s()
    if not args.no_prepull:
        info["prepull_s"] = lab.prepull(lab.image(f"whoami:{OLD}"))
        info["prepull_s"] += lab.prepull(lab.image(f"whoami:{NEW}"))


def log_marks(lab: BenchLab) -> LogMarks:
    """Marks at the end of every node's dockerd log, and shoald's (shoal's swarm)."""
    return LogMarks({
        f"{daemon}-{lab.short(n)}": path
        for n in lab.all_nodes
        for daemon, path in lab.log_files(n).items()
        if daemon == "dockerd" or (daemon == "shoald" and lab.system == "shoal")
    })  # fmt: skip


def remove_service(lab: BenchLab, timeout: float) -> float:
    """Seconds until no engine has a container of the service (any state)."""
    engines = [lab.engine_host(n) for n in lab.all_nodes]
    gone = wait_gone(engines, time.monotonic(), 0.25, timeout, call_timeout=5.0)
    if gone is None:
        raise TimeoutError(f"containers of {SERVICE} left after {timeout}s")
    return gone


def run_round(lab: BenchLab, args: argparse.Namespace, res: dict[str, Any]) -> None:
    n, par = args.replicas, args.parallelism
    threshold = n - par
    api = lab.api_host
    img_old, img_new = lab.image(f"whoami:{OLD}"), lab.image(f"whoami:{NEW}")
    try:
        docker_ok(api, "service", "create", "-d", "--name", SERVICE, "--replicas", str(n),
                  "--init", "--update-parallelism", str(par), "--update-delay", "0s",
                  "--update-order", "stop-first", img_old)  # fmt: skip
        res["create_s"] = round(wait_running(api, n, args.timeout, args.poll), 2)
        ids = lab.node_ids()
        host_of = {v: lab.short(k) for k, v in ids.items()}
        spread = Counter(host_of.get(t.get("NodeID") or "", "?")
                         for t in service_tasks(api) if is_running(t))  # fmt: skip
        res["spread"] = dict(sorted(spread.items()))
        on_managers = sum(spread.get(lab.short(m), 0) for m in lab.managers)
        if on_managers:
            log(f"  !! {on_managers} tasks on the (drained) manager: the probers do not see them")
        res["task_container"] = task_container_info(lab)
        probers = Probers(lab, lab.workers, args)
        probers.start()
        marks = log_marks(lab)
        try:
            res["prober_check"] = check_probers(probers, args, len(lab.workers))
            if not res["prober_check"]["ok"]:
                log(f"  !! probers did not see {n} serving {OLD!r} before the update: "
                    f"{res['prober_check']}")  # fmt: skip
            time.sleep(args.baseline)
            t0 = time.monotonic()
            wall0 = time.time()
            rc, out, err, cli_s = docker_cli(api, "service", "update", "-d", "--image", img_new,
                                             SERVICE)  # fmt: skip
            if rc != 0:
                raise RuntimeError(f"docker service update → rc {rc}: {err.strip()}")
            res["cli_s"] = round(cli_s, 3)
            watch = UpdateWatch(api, t0, wall0, n)
            done_at: float | None = None
            new_serving_at: float | None = None
            while True:
                watch.poll()
                probers.check_alive()
                now = time.monotonic() - t0
                sv = serving_now(probers.lines(), len(lab.workers))
                if new_serving_at is None and sv is not None and sv[NEW] >= n and not sv[OLD]:
                    new_serving_at = now
                if done_at is None and "completed_s" in watch.firsts.at and new_serving_at:
                    done_at = now
                if done_at is not None and now >= done_at + args.linger:
                    break
                if now > args.timeout:
                    log(f"  !! update not done after {args.timeout}s")
                    break
                time.sleep(args.poll)
            end = time.monotonic() - t0
        finally:
            probers.stop()
        lines = probers.lines()
        res["api"] = watch.summary()
        res["log_lines"] = marks.notable()
        series = serving_series(lines, len(lab.workers), t0)
        serving = task_serving(lines, t0)
        last_new = [r["first"] for r in serving.values() if r["v"] == NEW]
        res["serving"] = {
            "all_new_serving_s": (round(min(p[0] for p in series if p[3] >= n and p[2] == 0), 3)
                                  if any(p[3] >= n and p[2] == 0 for p in series) else None),
            "last_new_first_answer_s": max(last_new) if last_new else None,
            "update": dips(series, 0.0, end, threshold),
            "update_filled": dips(serving_series(lines, len(lab.workers), t0, fill=True),
                                  0.0, end, threshold),
            "below_all": dips(series, 0.0, end, n),
            "baseline": dips(series, -args.baseline, 0.0, n),
            "threshold": threshold,
            "probe": probe_stats(lines),
        }  # fmt: skip
        res["probe_failures"] = failures(lines, t0)
        res["slots"] = slot_report(watch.tasks, serving)
        gaps = [r["gap_s"] for r in res["slots"] if r["gap_s"] is not None]
        res["serving"]["slot_gap_median_s"] = round(statistics.median(gaps), 3) if gaps else None
        res["serving"]["slot_gap_max_s"] = max(gaps) if gaps else None
        res["serving"]["slot_medians"] = slot_medians(res["slots"], par)
        res["series"] = series
        a, s = res["api"], res["serving"]
        log(f"  update: completed {fmt(a.get('completed_s'))}, last :2 running "
            f"{fmt(a.get('all_new_running_s'))}, 20 serving :2 {fmt(s['all_new_serving_s'])}; "
            f"serving min {s['update']['min']}, longest < {threshold}: "
            f"{fmt(s['update']['longest_s'])} (at {s['update']['longest_at']})")  # fmt: skip
    finally:
        rc, _, err, _ = docker_cli(api, "service", "rm", SERVICE)
        if rc != 0 and "not found" not in err:
            log(f"  docker service rm: {err.strip()}")
        with contextlib.suppress(Exception):
            res["rm_s"] = round(remove_service(lab, args.timeout), 2)
        time.sleep(args.settle)
