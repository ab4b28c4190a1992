"""Leader failover, step by step (``leader_failover.py``): on one lab of 3 managers + 2
workers per system, a service runs on the workers; each trial SIGKILLs the leader's host
(then, in the same trial, a non-leader manager's), and from the kill measures when a
``docker service scale`` sent to a surviving manager succeeds, when a survivor's
``GET /nodes`` (what ``docker node ls`` shows) names a new Leader, and whether any worker
was shown not Ready meanwhile; the host is started again and the trial ends when every
manager is Reachable and every node Ready."""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import threading
import time
from collections import Counter
from typing import Any

from kit.docker import (
    SERVICE,
    api_get,
    docker_cli,
    docker_ok,
    is_running,
    service_status,
    service_tasks,
)
from kit.lab import BenchLab, unique_name
from kit.poll import wait_running
from kit.report import fmt
from kit.runs import log

SYSTEMS = ("shoal", "docker")
KINDS = ("leader", "follower")


def view_of(nodes: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """hostname → {state, reach (managers), leader}: the columns of ``docker node ls``."""
    out = {}
    for n in nodes:
        ms = n.get("ManagerStatus") or {}
        out[n["Description"]["Hostname"]] = {
            "state": (n.get("Status") or {}).get("State"),
            "reach": ms.get("Reachability"),
            "leader": bool(ms.get("Leader")),
        }
    return out


def leader_in(view: dict[str, dict[str, Any]]) -> str | None:
    return next((h for h, v in view.items() if v["leader"]), None)


class NodesWatch(threading.Thread):
    """``GET /nodes`` on one manager every ``poll`` s (``timeout`` each) until stopped:
    samples of (t after t0, the view, or the error)."""

    def __init__(self, lab: BenchLab, node: str, t0: float, poll: float, timeout: float):
        super().__init__(daemon=True)
        self.lab, self.node, self.t0, self.poll, self.timeout = lab, node, t0, poll, timeout
        self.samples: list[tuple[float, float, Any]] = []  # (sent, answered, view | error)
        self.stop = threading.Event()

    def run(self) -> None:
        host = self.lab.api_of(self.node)
        while not self.stop.is_set():
            sent = time.monotonic() - self.t0
            try:
                got: Any = view_of(self.lab.nodes(host, timeout=self.timeout))
            except Exception as e:  # noqa: BLE001 — hangs and refusals are what we measure
                got = f"{type(e).__name__}: {str(e)[:160]}"
            self.samples.append((round(sent, 3), round(time.monotonic() - self.t0, 3), got))
            self.stop.wait(self.poll)


def scale_until_ok(
    host: str, replicas: int, t0: float, attempt_timeout: float, deadline: float
) -> dict[str, Any]:
    """``docker service scale -d web=N`` against host, each attempt killed after
    attempt_timeout s and retried at once, until one succeeds → when (after t0), attempts,
    the distinct errors."""
    attempts = 0
    errors: Counter[str] = Counter()
    while time.monotonic() < deadline:
        attempts += 1
        try:
            rc, out, err, _dt = docker_cli(
                host, "service", "scale", "-d", f"{SERVICE}={replicas}", timeout=attempt_timeout
            )
        except subprocess.TimeoutExpired:
            errors[f"no answer within {attempt_timeout}s"] += 1
            continue
        if rc == 0:
            return {"ok_s": round(time.monotonic() - t0, 3), "attempts": attempts,
                    "errors": dict(errors)}  # fmt: skip
        errors[(err.strip() or out.strip())[-200:]] += 1
        time.sleep(0.05)
    return {"ok_s": None, "attempts": attempts, "errors": dict(errors)}


def scaled_running(host: str, target: int, t0: float, args: argparse.Namespace) -> float | None:
    """Seconds after t0 until the service runs exactly the scaled count (the orchestrator
    and scheduler acted on the accepted scale): tasks desired and observed running, and
    ``ServiceStatus`` target/target."""
    while time.monotonic() - t0 < args.timeout:
        with contextlib.suppress(Exception):
            running = sum(1 for t in service_tasks(host, timeout=1.0) if is_running(t))
            if running == target and service_status(host, timeout=1.0) == (target, target):
                return round(time.monotonic() - t0, 3)
        time.sleep(0.1)
    return None


def current_view(lab: BenchLab, nodes: list[str]) -> dict[str, dict[str, Any]]:
    last: Exception | None = None
    for n in nodes:
        try:
            return view_of(lab.nodes(lab.api_of(n), timeout=5.0))
        except Exception as e:  # noqa: BLE001
            last = e
    raise RuntimeError(f"no manager answers GET /nodes: {last}")


def wait_whole(lab: BenchLab, via: str, timeout: float) -> float:
    """Seconds until ``via`` shows one Leader, every manager reachable, every node ready."""
    t0 = time.monotonic()
    last: Any = None
    while True:
        with contextlib.suppress(Exception):
            last = view_of(lab.nodes(lab.api_of(via), timeout=2.0))
            if (
                set(lab.all_nodes) <= set(last)
                and all(v["state"] == "ready" for v in last.values())
                and all(last[m]["reach"] == "reachable" for m in lab.managers)
                and sum(v["leader"] for v in last.values()) == 1
            ):
                return round(time.monotonic() - t0, 3)
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"cluster not whole after {timeout}s: {last}")
        time.sleep(0.2)


def spec_replicas(host: str) -> int:
    svc = api_get(host, f"/services/{SERVICE}", 5.0)
    return int(svc["Spec"]["Mode"]["Replicated"]["Replicas"])


def one_kill(lab: BenchLab, args: argparse.Namespace, kind: str, k: int) -> dict[str, Any]:
    """Kill the leader's (or a non-leader manager's) host, measure, start it again."""
    view = current_view(lab, lab.managers)
    old = leader_in(view)
    if old is None:
        raise RuntimeError(f"no leader before the kill: {view}")
    followers = [m for m in lab.managers if m != old]
    victim = old if kind == "leader" else followers[k % len(followers)]
    survivors = [m for m in lab.managers if m != victim]
    target = args.replicas + 1 if spec_replicas(lab.api_of(survivors[0])) == args.replicas \
        else args.replicas  # fmt: skip
    out: dict[str, Any] = {"kind": kind, "victim": lab.short(victim), "old_leader": lab.short(old),
                           "scale_to": target, "scale_via": lab.short(survivors[0])}  # fmt: skip
    t0 = time.monotonic()
    watches = [NodesWatch(lab, s, t0, args.poll, args.poll_timeout) for s in survivors]
    for w in watches:
        w.start()
    lab.kill(victim)
    out["kill_s"] = round(time.monotonic() - t0, 3)
    out["scale"] = scale_until_ok(lab.api_of(survivors[0]), target, t0, args.attempt_timeout,
                                  t0 + args.timeout)  # fmt: skip
    out["scaled_running_s"] = scaled_running(lab.api_of(survivors[0]), target, t0, args)

    def new_leader_at(w: NodesWatch) -> float | None:
        return next((a for _s, a, v in w.samples if isinstance(v, dict)
                     and leader_in(v) not in (None, old)), None)  # fmt: skip

    while time.monotonic() - t0 < args.timeout:  # the leader kill: until a new Leader shows
        if kind == "follower" or any(new_leader_at(w) is not None for w in watches):
            break
        time.sleep(0.1)
    time.sleep(args.linger)
    for w in watches:
        w.stop.set()
    for w in watches:
        w.join(args.poll_timeout + 1)
    per: dict[str, Any] = {}
    workers_not_ready: Counter[str] = Counter()
    leaders_seen: Counter[str] = Counter()
    for w in watches:
        answered = [a for _s, a, v in w.samples if isinstance(v, dict)]
        errs = Counter(v for _s, _a, v in w.samples if isinstance(v, str))
        # the longest stretch without an answer: from one answered poll (or the kill) to the next
        marks = [0.0, *answered]
        gap = max((b - a for a, b in zip(marks, marks[1:], strict=False)), default=None)
        shown: list[tuple[float, str]] = []  # what `node ls` named Leader, when it changed
        for _s, a, v in w.samples:
            what = lab.short(leader_in(v) or "-") if isinstance(v, dict) else v[:60]
            if not shown or shown[-1][1] != what:
                shown.append((a, what))
        per[lab.short(w.node)] = {
            "leader_shown": shown,
            "new_leader_s": new_leader_at(w),
            "first_answer_s": answered[0] if answered else None,
            "longest_unanswered_s": round(gap, 3) if gap is not None else None,
            "polls": len(w.samples), "errors": dict(errs.most_common(4)),
        }  # fmt: skip
        for _s, _a, v in w.samples:
            if not isinstance(v, dict):
                continue
            leaders_seen[lab.short(leader_in(v) or "none")] += 1
            for h in lab.workers:
                st = (v.get(h) or {}).get("state")
                if st != "ready":
                    workers_not_ready[f"{lab.short(h)}:{st}"] += 1
    lead = [p["new_leader_s"] for p in per.values() if p["new_leader_s"] is not None]
    out.update(
        new_leader_s=min(lead) if lead else None,
        new_leader_all_s=max(lead) if len(lead) == len(per) else None,
        leaders_seen=dict(leaders_seen),
        leader_changed=any(k not in (lab.short(old), "none") for k in leaders_seen),
        workers_not_ready=dict(workers_not_ready),
        per_survivor=per,
    )
    t1 = time.monotonic()
    lab.start(victim)
    out["start_s"] = round(time.monotonic() - t1, 2)
    out["whole_again_s"] = round(out["start_s"] + wait_whole(lab, survivors[0], args.timeout), 3)
    wait_running(lab.api_of(survivors[0]), target, args.timeout, 0.3)
    log(f"  {kind} {out['victim']} killed (leader {out['old_leader']}): scale ok "
        f"{fmt(out['scale']['ok_s'])} ({out['scale']['attempts']} attempts), {target} running "
        f"{fmt(out['scaled_running_s'])}, new leader "
        f"{fmt(out['new_leader_s'])}, leader changed {out['leader_changed']}, workers not "
        f"ready {out['workers_not_ready'] or 'never'}; whole again {fmt(out['whole_again_s'])} "
        "after the start")  # fmt: skip
    return out


def run_system(system: str, args: argparse.Namespace, res: dict[str, Any]) -> None:
    """Every trial of one system on its own fresh lab, removed after it."""
    lab = BenchLab(system, unique_name("lf", system), args.workers, keep=args.keep_labs,
                   log_level=args.shoald_log_level, managers=args.managers)  # fmt: skip
    res["lab"] = lab.name
    with lab:
        try:
            lab.up()
            res.update(lab.timings)
            lab.wait_ready(120)
            res["heartbeat_period_s"] = lab.heartbeat_period_s()
            res["whole_s"] = wait_whole(lab, lab.managers[0], args.timeout)
            image = lab.image("whoami:1")
            if not args.no_prepull:
                res["prepull_s"] = lab.prepull(image)
            docker_ok(lab.api_host, "service", "create", "-d", "--name", SERVICE,
                      "--replicas", str(args.replicas), "--constraint", "node.role==worker",
                      image)  # fmt: skip
            res["create_s"] = round(wait_running(lab.api_host, args.replicas, args.timeout, 0.3), 2)
            log(f"  {args.replicas} running on the workers after {res['create_s']}s")
            res["trials"] = []
            for k in range(args.trials):
                for kind in KINDS:
                    time.sleep(args.settle)
                    r = one_kill(lab, args, kind, k)
                    r["trial"] = k + 1
                    res["trials"].append(r)
        finally:  # before `shoal lab down` removes them
            with contextlib.suppress(Exception):
                res["shoald_logs"] = lab.shoald_logs() if lab.state else {}
            if args.keep_logs and lab.state:
                lab.copy_logs(args.keep_logs, "run")
