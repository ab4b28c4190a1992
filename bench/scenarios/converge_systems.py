"""Convergence and scaling, each system's setup around the phases of ``converge``: a fresh
isolated engine with a shoald in front (``shoal``), in Docker's swarm mode (``docker``) or
alone (``run``); or with ``--nodes N`` a fresh ``BenchLab`` of 1 drained manager + N
workers, watched for a node that is not ``ready`` while the tasks start."""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable
from typing import Any

from kit.docker import docker_ok
from kit.engine import bench_shoald, engine_pids, new_engine, wait_node_ready
from kit.lab import BenchLab, unique_name
from kit.logs import keep_shoald_logs
from kit.runs import log

from shoal.testing.images import WHOAMI_1

from .converge import run_phases, swarm_phases

SYSTEMS = ("shoal", "docker", "run")
Runner = Callable[[argparse.Namespace, dict[str, Any]], None]


def run_shoal(args: argparse.Namespace, res: dict[str, Any]) -> None:
    with contextlib.ExitStack() as stack:
        eng = new_engine(stack, "shoal")
        shoald = bench_shoald(
            stack, eng, host_ns=args.shoald_host_ns, log_level=args.shoald_log_level
        )
        t0 = time.monotonic()
        shoald.start(timeout=60.0)
        res["shoald_start_s"] = round(time.monotonic() - t0, 3)
        _, res["swarm_init_s"] = docker_ok(
            shoald.host, "swarm", "init", "--advertise-addr", "127.0.0.1"
        )
        res["node_ready_after_init_s"] = wait_node_ready(shoald.host)
        log(f"  shoald up in {res['shoald_start_s']}s, swarm init {res['swarm_init_s']:.2f}s")
        time.sleep(args.settle)
        etcd_log = shoald.state_dir / "swarm" / "etcd.log"
        try:
            swarm_phases(
                res, shoald.host, [eng.host], args,
                lambda: {"shoald": shoald.proc.pid if shoald.proc else None,
                         "etcd": shoald.etcd_pid(), **engine_pids(eng)},
            )  # fmt: skip
        finally:
            keep_shoald_logs(res, shoald.log, etcd_log, args.keep_logs)


def run_docker_swarm(args: argparse.Namespace, res: dict[str, Any]) -> None:
    with contextlib.ExitStack() as stack:
        eng = new_engine(stack, "docker")
        _, res["swarm_init_s"] = docker_ok(
            eng.host, "swarm", "init", "--advertise-addr", "127.0.0.1"
        )
        res["node_ready_after_init_s"] = wait_node_ready(eng.host)
        log(f"  swarm init {res['swarm_init_s']:.2f}s")
        time.sleep(args.settle)
        swarm_phases(res, eng.host, [eng.host], args, lambda: engine_pids(eng))


def run_parallel(args: argparse.Namespace, res: dict[str, Any]) -> None:
    with contextlib.ExitStack() as stack:
        eng = new_engine(stack, "run")
        time.sleep(args.settle)
        run_phases(res, [eng.host], lambda: engine_pids(eng), WHOAMI_1, args)


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


def lab_runner(system: str) -> Runner:
    """--nodes N: the system on a fresh lab, removed after it."""

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
                    run_phases(res, workers, lab.pids, image, args)
                    return
                lab.wait_ready()
                lab.drain_managers()
                res["heartbeat_period_s"] = lab.heartbeat_period_s()
                time.sleep(args.settle)
                engines = [*workers, *(lab.engine_host(m) for m in lab.managers)]
                swarm_phases(res, lab.api_host, engines, args, lab.pids, image, NodeWatch(lab, res))
            finally:  # before `shoal lab down` removes them
                if system == "shoal":
                    with contextlib.suppress(Exception):
                        res["shoald_logs"] = lab.shoald_logs()
                if args.keep_logs and lab.state:
                    lab.copy_logs(args.keep_logs, f"round{res.get('round', 1)}")

    return run


RUNNERS: dict[str, Runner] = {
    "shoal": run_shoal,
    "docker": run_docker_swarm,
    "run": run_parallel,
}
LAB_RUNNERS = {s: lab_runner(s) for s in SYSTEMS}  # --nodes N
