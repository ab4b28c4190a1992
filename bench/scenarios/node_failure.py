"""Node failure, step by step (``node_failure.py``): on a fresh lab, the service runs; the
worker with most tasks is SIGKILLed; the manager and the surviving engines are polled until
the node is down and its tasks run elsewhere; then the host is started again and watched
for a slot with two live tasks."""

from __future__ import annotations

import argparse
import contextlib
import time
from collections import Counter
from typing import Any

from kit.docker import SERVICE, docker_ok, is_running, service_status, service_tasks
from kit.lab import BenchLab, unique_name
from kit.poll import Firsts, StateTrace, wait_running
from kit.report import fmt
from kit.runs import log

SYSTEMS = ("shoal", "docker")
FAILURE_FIRSTS = ("down_s", "first_replacement_s", "replaced_s", "engines_s",
                  "service_ls_ok_s", "service_ls_dropped_s")  # fmt: skip


def _svc_running(s: dict[str, Any]) -> int | None:
    svc = s.get("svc")
    return int(svc.split("/")[0]) if svc else None


def watch_failure(
    lab: BenchLab, args: argparse.Namespace, victim: str, victim_id: str, victim_tasks: int,
    t0: float, old_tasks: set[str],
) -> dict[str, Any]:  # fmt: skip
    """Poll from the kill until the node is down and its tasks run elsewhere (+ --linger)."""
    n = args.replicas
    survivors = [x for x in lab.all_nodes if x != victim]
    firsts = Firsts()
    samples: list[dict[str, Any]] = []
    not_ready_others: Counter[str] = Counter()
    svc_seen: Counter[str] = Counter()
    errors = 0
    max_engines = 0
    done_at: float | None = None
    trace = StateTrace(  # the replacements
        lambda t: t["ID"] in old_tasks or t.get("DesiredState") in ("shutdown", "remove")
    )
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
        **{k: firsts.get(k) for k in FAILURE_FIRSTS},
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
    }


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
    """One round of one system on its own fresh lab, removed after it."""
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
            res["create_s"] = round(wait_running(lab.api_host, n, args.timeout, args.poll), 2)
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
