#!/usr/bin/env python3
"""Node failure, side by side: shoal vs Docker's own swarm mode on identical lab hosts.

For each system, on a fresh ``shoal lab`` of 1 manager + ``--workers`` (3) workers
(``labkit.BenchLab``: shoal's swarm on a plain ``shoal lab up``; Docker's swarm mode with
``docker swarm init/join`` straight on the engines of a ``shoal lab up --no-swarm``), both
with their default settings:

1. the manager is drained; ``docker service create -d --name web --replicas 30
   <lab registry>/shoal-lab/whoami:1`` (image pre-pulled on the workers unless
   ``--no-prepull``); wait until 30 tasks run (10 per worker);
2. after ``--settle`` s, one worker host (the one with most tasks, or ``--victim w2``) is
   SIGKILLed as ``shoal lab kill NODE`` does it: every process on the host — dockerd,
   containerd, the containers, and shoald (idle beside Docker's swarm) — at once;
3. the manager's API (``GET /nodes``, ``GET /tasks``, ``GET /services?status=true``) and the
   surviving engines are polled every ``--poll`` s from the kill, recording when
      * the dead node is ``down``,
      * the first replacement task runs,
      * **30 tasks run again on live nodes** (tasks with desired and observed state
        ``running`` on a node other than the dead one — ``docker service ls`` alone cannot
        tell: both systems report the dead node's tasks as running until it is declared
        down, and Docker's keeps counting them afterwards, see the report),
      * the surviving engines run 30 task containers (the cross-check),
      * ``docker service ls`` (``ServiceStatus``) says 30/30 with the tasks replaced;
   and whether any other node was ever seen not ``ready`` (a false "down");
4. unless ``--no-restart``: the host is started again (``shoal lab start NODE``): when the
   node is ``ready`` again, and over ``--after-restart`` s whether more than 30 task
   containers ever run at once (a slot with two live tasks) and where they run;
5. ``shoal lab down``.

    python bench/node_failure.py [--rounds 3] [--only shoal|docker] [--json out.json]
                                 [--replicas 30] [--workers 3] [--victim w1] [--poll 0.2]
                                 [--no-restart] [--keep-logs DIR] [--keep-labs]

``--rounds`` interleaves the systems and reports medians with the spread. Needs root and
what ``shoal lab`` needs (``scripts/setup.sh``). See ``docs/design/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from labkit import (  # noqa: E402
    SERVICE,
    BenchLab,
    dig,
    docker_ok,
    exit_on_signals,
    fmt,
    is_running,
    log,
    machine_info,
    service_status,
    service_tasks,
    unique_name,
)

SYSTEMS = ("shoal", "docker")
NAMES = {"shoal": "shoal", "docker": "Docker swarm"}


# --------------------------------------------------------------------------- one system


def wait_running(lab: BenchLab, n: int, timeout: float, poll: float) -> float:
    """Seconds until n tasks run and `docker service ls` says n/n."""
    t0 = time.monotonic()
    while True:
        with contextlib.suppress(Exception):
            running = sum(1 for t in service_tasks(lab.api_host) if is_running(t))
            if running >= n and service_status(lab.api_host) == (n, n):
                return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"{n} tasks not running after {timeout}s")
        time.sleep(poll)


class Firsts:
    """When (seconds after t0) each condition was first seen."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}

    def see(self, key: str, cond: bool, now: float) -> None:
        if cond and key not in self.at:
            self.at[key] = round(now, 3)

    def get(self, key: str) -> float | None:
        return self.at.get(key)


TASK_STATES = ("new", "pending", "assigned", "accepted", "preparing", "ready", "starting",
               "running")  # fmt: skip


class StateTrace:
    """When the replacement tasks (IDs not in `old`) were first seen in each state."""

    def __init__(self, old: set[str]) -> None:
        self.old = old
        self.first: dict[str, dict[str, float]] = {}

    def poll(self, tasks: list[dict[str, Any]], now: float) -> None:
        for t in tasks:
            if t["ID"] in self.old or t.get("DesiredState") in ("shutdown", "remove"):
                continue
            seen = self.first.setdefault(t["ID"], {})
            state = (t.get("Status") or {}).get("State", "")
            if state in TASK_STATES:  # reaching X means having passed every state before X
                for st in TASK_STATES[: TASK_STATES.index(state) + 1]:
                    seen.setdefault(st, round(now, 3))

    def summary(self) -> dict[str, dict[str, Any]]:
        """Per state: when the first and the last replacement task were seen in it."""
        out: dict[str, dict[str, Any]] = {}
        for st in TASK_STATES:
            times = [v[st] for v in self.first.values() if st in v]
            if times:
                out[st] = {"first": min(times), "last": max(times), "count": len(times)}
        return out


def watch_failure(
    lab: BenchLab, args: argparse.Namespace, victim: str, victim_id: str, victim_tasks: int,
    t0: float, old_tasks: set[str],
) -> dict[str, Any]:  # fmt: skip
    """Poll from the kill until the node is down and its tasks run elsewhere (+ --linger)."""
    n = args.replicas
    survivors = [x for x in [*lab.managers, *lab.workers] if x != victim]
    firsts = Firsts()
    samples: list[dict[str, Any]] = []
    not_ready_others: Counter[str] = Counter()
    svc_seen: Counter[str] = Counter()
    errors = 0
    max_engines = 0
    done_at: float | None = None
    trace = StateTrace(old_tasks)
    while True:
        now = time.monotonic() - t0
        s: dict[str, Any] = {"t": round(now, 3)}
        try:
            nodes = lab.nodes()
            states = {x["ID"]: (x.get("Status") or {}).get("State") for x in nodes}
            s["victim"] = states.get(victim_id)
            for x in nodes:
                host = x["Description"]["Hostname"]
                st = (x.get("Status") or {}).get("State")
                if x["ID"] != victim_id and st != "ready":
                    not_ready_others[f"{lab.short(host)}:{st}"] += 1
        except Exception:  # noqa: BLE001 — a busy manager may time out; keep polling
            errors += 1
        try:
            tasks = service_tasks(lab.api_host)
            s["elsewhere"] = sum(1 for t in tasks if is_running(t) and t.get("NodeID") != victim_id)
            s["desired"] = sum(1 for t in tasks if t.get("DesiredState") == "running")
            trace.poll(tasks, time.monotonic() - t0)
        except Exception:  # noqa: BLE001
            errors += 1
        try:
            r, d = service_status(lab.api_host)
            s["svc"] = f"{r}/{d}"
            svc_seen[s["svc"]] += 1
        except Exception:  # noqa: BLE001
            errors += 1
        per = lab.containers_by_node(survivors)
        s["engines"] = sum(v for v in per.values() if v is not None)
        max_engines = max(max_engines, s["engines"])
        samples.append(s)
        now = time.monotonic() - t0
        firsts.see("down_s", s.get("victim") == "down", now)
        firsts.see("first_replacement_s", s.get("elsewhere", 0) > n - victim_tasks, now)
        firsts.see("replaced_s", s.get("elsewhere", 0) >= n, now)
        firsts.see("engines_s", s["engines"] >= n, now)
        firsts.see(
            "service_ls_ok_s", s.get("svc") == f"{n}/{n}" and s.get("elsewhere", 0) >= n, now
        )
        firsts.see("service_ls_dropped_s", _svc_running(s) is not None and _svc_running(s) < n, now)
        if done_at is None and all(firsts.get(k) is not None
                                   for k in ("down_s", "replaced_s", "engines_s")):  # fmt: skip
            done_at = now
        if done_at is not None and now >= done_at + args.linger:
            break
        if now > args.timeout:
            break
        time.sleep(args.poll)
    last = samples[-1]
    return {
        **{k: firsts.get(k) for k in ("down_s", "first_replacement_s", "replaced_s",
                                      "engines_s", "service_ls_ok_s", "service_ls_dropped_s")},
        "timed_out": firsts.get("replaced_s") is None or firsts.get("down_s") is None,
        "replacement_states": trace.summary(),
        "service_ls_seen": dict(svc_seen),
        "service_ls_final": last.get("svc"),
        "engines_final": last.get("engines"),
        "engines_max": max_engines,
        "other_nodes_not_ready": dict(not_ready_others),
        "poll_errors": errors,
        "polls": len(samples),
        "samples": samples,
    }  # fmt: skip


def _svc_running(s: dict[str, Any]) -> int | None:
    svc = s.get("svc")
    return int(svc.split("/")[0]) if svc else None


def watch_restart(
    lab: BenchLab, args: argparse.Namespace, victim: str, victim_id: str
) -> dict[str, Any]:
    """Start the killed host again; is it ready, and does any slot get two live tasks?"""
    n = args.replicas
    t0 = time.monotonic()
    lab.start(victim)
    out: dict[str, Any] = {"start_s": round(time.monotonic() - t0, 2)}
    firsts = Firsts()
    max_total = max_victim = 0
    samples: list[dict[str, Any]] = []
    while True:
        now = time.monotonic() - t0
        s: dict[str, Any] = {"t": round(now, 3)}
        with contextlib.suppress(Exception):
            s["victim"] = next(
                (x.get("Status") or {}).get("State") for x in lab.nodes() if x["ID"] == victim_id
            )
        with contextlib.suppress(Exception):
            tasks = service_tasks(lab.api_host)
            s["api_running"] = sum(1 for t in tasks if is_running(t))
        with contextlib.suppress(Exception):
            r, d = service_status(lab.api_host)
            s["svc"] = f"{r}/{d}"
        per = lab.containers_by_node()
        s["per_node"] = {lab.short(k): v for k, v in per.items()}
        s["engines"] = sum(v for v in per.values() if v is not None)
        max_total = max(max_total, s["engines"])
        max_victim = max(max_victim, per.get(victim) or 0)
        samples.append(s)
        firsts.see("ready_s", s.get("victim") == "ready", time.monotonic() - t0)
        ready = firsts.get("ready_s")
        if ready is not None and now >= ready + args.after_restart:
            break
        if now > args.timeout:
            break
        time.sleep(args.poll)
    last = samples[-1]
    out.update(
        ready_s=firsts.get("ready_s"),
        engines_max=max_total,
        on_restarted_node_max=max_victim,
        duplicates=max_total > n,
        engines_final=last.get("engines"),
        per_node_final=last.get("per_node"),
        api_running_final=last.get("api_running"),
        service_ls_final=last.get("svc"),
        samples=samples,
    )
    return out


def run_system(system: str, args: argparse.Namespace, res: dict[str, Any]) -> None:
    n = args.replicas
    lab = BenchLab(system, unique_name("nf", system), args.workers, keep=args.keep_labs,
                   log_level=args.shoald_log_level)  # fmt: skip
    res["lab"] = lab.name
    with lab:
        try:
            lab.up()
            res.update(lab.timings)
            lab.wait_ready()
            lab.drain_managers()
            res["heartbeat_period_s"] = lab.heartbeat_period_s()
            image = lab.image("whoami:1")
            if not args.no_prepull:
                res["prepull_s"] = lab.prepull(image)
            docker_ok(lab.api_host, "service", "create", "-d", "--name", SERVICE,
                      "--replicas", str(n), image)  # fmt: skip
            res["create_s"] = round(wait_running(lab, n, args.timeout, args.poll), 2)
            tasks = service_tasks(lab.api_host)
            old_tasks = {t["ID"] for t in tasks}
            ids = lab.node_ids()
            host_of = {v: k for k, v in ids.items()}
            spread = Counter(
                host_of.get(t.get("NodeID") or "", "?") for t in tasks if is_running(t)
            )
            res["spread"] = {lab.short(h): c for h, c in sorted(spread.items())}
            log(f"  {n}/{n} running after {res['create_s']}s, spread {res['spread']}; "
                f"heartbeat period {res['heartbeat_period_s']}s")  # fmt: skip
            time.sleep(args.settle)

            victim = (
                f"{lab.name}-{args.victim}"
                if args.victim
                else max(lab.workers, key=lambda w: (spread.get(w, 0), -lab.workers.index(w)))
            )
            victim_id = ids[victim]
            res["victim"] = lab.short(victim)
            res["victim_tasks"] = spread.get(victim, 0)
            t_kill = time.monotonic()
            lab.kill(victim)
            res["kill_s"] = round(time.monotonic() - t_kill, 3)
            log(f"  {res['victim']} ({res['victim_tasks']} tasks) killed "
                f"({res['kill_s']}s); watching")  # fmt: skip
            res["failure"] = watch_failure(lab, args, victim, victim_id, res["victim_tasks"],
                                           t_kill, old_tasks)  # fmt: skip
            f = res["failure"]
            log(
                f"  node down {fmt(f['down_s'])}, {n}/{n} running again {fmt(f['replaced_s'])} "
                f"(engines {fmt(f['engines_s'])}); docker service ls: {f['service_ls_final']}"
            )
            if f["timed_out"]:
                raise TimeoutError(f"not recovered after {args.timeout}s")
            if not args.no_restart:
                res["restart"] = watch_restart(lab, args, victim, victim_id)
                r = res["restart"]
                log(f"  restarted: ready after {fmt(r['ready_s'])}; task containers max "
                    f"{r['engines_max']} (on it: max {r['on_restarted_node_max']}), final "
                    f"{r['per_node_final']}")  # fmt: skip
        finally:  # before `shoal lab down` removes them
            with contextlib.suppress(Exception):
                res["shoald_logs"] = lab.shoald_logs() if lab.state else {}
            if args.keep_logs and lab.state:
                lab.copy_logs(args.keep_logs, f"round{res.get('round', 1)}")


# --------------------------------------------------------------------------- report


def median_rounds(rounds: list[dict[str, Any]], path: str) -> float | None:
    vals = [dig(r, path) for r in rounds if not r.get("error")]
    nums = [v for v in vals if isinstance(v, int | float) and not isinstance(v, bool)]
    return round(statistics.median(nums), 3) if nums else None


ROWS: list[tuple[str, str, bool]] = [  # label, path, timing (show spread + ratio)
    ("heartbeat period (default)", "heartbeat_period_s", False),
    ("node Down after the kill", "failure.down_s", True),
    ("replacement tasks created", "failure.replacement_states.new.first", True),
    ("  … all assigned to a node", "failure.replacement_states.assigned.last", True),
    ("first replacement running", "failure.first_replacement_s", True),
    ("30/30 running again (API tasks)", "failure.replaced_s", True),
    ("30 running in the engines", "failure.engines_s", True),
    ("`service ls` says 30/30, replaced", "failure.service_ls_ok_s", True),
    ("`service ls` shows the loss", "failure.service_ls_dropped_s", True),
    ("restart: node ready again", "restart.ready_s", True),
    ("create 0→30 (before the kill)", "create_s", True),
    ("lab up (+ Docker swarm init/join)", "lab_up_s", False),
]


def print_report(
    rounds: dict[str, list[dict[str, Any]]], args: argparse.Namespace
) -> dict[str, Any]:
    n = args.replicas
    systems = list(rounds)
    header = ["", *[NAMES[s] for s in systems]]
    if {"shoal", "docker"} <= set(systems):
        header.append("Docker / shoal")
    rows = [header]
    ratios: dict[str, Any] = {}
    for label, path, timing in ROWS:
        label = label.replace("30", str(n))
        cells = [label]
        meds = {}
        for s in systems:
            med = median_rounds(rounds[s], path)
            meds[s] = med
            each = [dig(r, path) for r in rounds[s] if not r.get("error")]
            each = [v for v in each if isinstance(v, int | float)]
            cell = fmt(med)
            if timing and len(each) > 1:
                cell += f" ({min(each):.2f}–{max(each):.2f})"
            cells.append(cell)
        if len(header) > len(systems) + 1:
            d, sh = meds.get("docker"), meds.get("shoal")
            rat = round(d / sh, 2) if timing and d and sh else None
            ratios[path] = rat
            cells.append(fmt(rat, "×"))
        rows.append(cells)
    # Non-numeric findings, first round with them.
    for label, key in (
        ("`service ls` after recovery", "failure.service_ls_final"),
        ("other nodes seen not ready", "failure.other_nodes_not_ready"),
        ("restart: task containers max", "restart.engines_max"),
        ("restart: max on the restarted node", "restart.on_restarted_node_max"),
        ("restart: final per node", "restart.per_node_final"),
        ("spread before the kill", "spread"),
    ):
        cells = [label]
        for s in systems:
            vals = [dig(r, key) for r in rounds[s] if not r.get("error")]
            uniq = []
            for v in vals:
                if v not in uniq:
                    uniq.append(v)
            cells.append(" | ".join(_short(v) for v in uniq) if uniq else "—")
        if len(header) > len(systems) + 1:
            cells.append("")
        rows.append(cells)
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(header))]
    print()
    for i, row in enumerate(rows):
        print("  ".join(c.ljust(w) if j == 0 else c.rjust(w)
                        for j, (c, w) in enumerate(zip(row, widths, strict=True))))  # fmt: skip
        if i == 0:
            print("  ".join("-" * w for w in widths))
    print()
    if args.rounds > 1:
        print(f"medians over {args.rounds} rounds (min–max in brackets); Docker / shoal: time "
              "ratio, > 1: shoal faster\n")  # fmt: skip
    for s in systems:
        for r in rounds[s]:
            if r.get("error"):
                print(f"!! {s} round {r['round']}: {r['error']}")
    for r in rounds.get("shoal", []):
        logs = r.get("shoald_logs") or {}
        noisy = {k: v for k, v in logs.items() if v.get("notable")}
        if noisy:
            print(f"\nshoald logs, round {r['round']} (WARNING/ERROR, most frequent first):")
            for node, info in noisy.items():
                print(f"  {node}: {info['lines']} lines {info['levels']}")
                for msg, count in info["notable"][:6]:
                    print(f"    {count:4}× {msg[:150]}")
    print()
    return ratios


def _short(v: Any) -> str:
    if isinstance(v, dict):
        return ", ".join(f"{k}:{x}" for k, x in v.items()) or "none"
    return str(v)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--replicas", type=int, default=30)
    p.add_argument("--workers", type=int, default=3)
    p.add_argument(
        "--victim", help="the worker to kill (w1, w2 …); default: the one with most tasks"
    )
    p.add_argument("--only", choices=SYSTEMS, action="append", help="only this system (repeatable)")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--poll", type=float, default=0.2, help="poll interval in seconds")
    p.add_argument("--settle", type=float, default=3.0, help="seconds between 30/30 and the kill")
    p.add_argument("--linger", type=float, default=2.0,
                   help="seconds to keep watching after recovery")  # fmt: skip
    p.add_argument("--timeout", type=float, default=120.0, help="per-phase timeout in seconds")
    p.add_argument("--no-restart", action="store_true", help="do not start the killed host again")
    p.add_argument("--after-restart", type=float, default=10.0,
                   help="seconds to watch after the restarted node is ready")  # fmt: skip
    p.add_argument("--no-prepull", action="store_true",
                   help="do not pull the image into the workers' engines beforehand")  # fmt: skip
    p.add_argument("--json", help="write the results (every round, every sample) to this file")
    p.add_argument("--keep-logs", metavar="DIR", help="copy shoald/dockerd/etcd logs into DIR")
    p.add_argument("--keep-labs", action="store_true", help="leave the labs up (debugging)")
    p.add_argument("--shoald-log-level", default="", help="SHOAL_LAB_LOG_LEVEL for the labs")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    exit_on_signals()
    systems = [s for s in SYSTEMS if not args.only or s in args.only]
    out: dict[str, Any] = {
        "benchmark": "node_failure",
        "params": {k: getattr(args, k) for k in ("replicas", "workers", "victim", "poll",
                                                 "settle", "no_prepull", "no_restart")},
        "machine": machine_info(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }  # fmt: skip
    rounds: dict[str, list[dict[str, Any]]] = {s: [] for s in systems}
    for i in range(args.rounds):
        for s in systems:
            log(f"── {s}" + (f" (round {i + 1}/{args.rounds})" if args.rounds > 1 else ""))
            t0 = time.monotonic()
            res: dict[str, Any] = {"system": s, "round": i + 1, "loadavg": os.getloadavg()}
            rounds[s].append(res)
            try:
                run_system(s, args, res)
            except Exception as e:  # noqa: BLE001 — report it, go on
                log(f"  {s} failed: {type(e).__name__}: {e}")
                res["error"] = f"{type(e).__name__}: {e}"
            res["wall_s"] = round(time.monotonic() - t0, 2)
            log(f"  {s} done (wall {res['wall_s']}s)")
    out["rounds"] = rounds
    out["ratios_docker_over_shoal"] = print_report(rounds, args)
    out["machine"]["loadavg_after"] = os.getloadavg()
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=str) + "\n")
        log(f"results written to {args.json}")
    return 1 if any(r.get("error") for rs in rounds.values() for r in rs) else 0


if __name__ == "__main__":
    sys.exit(main())
