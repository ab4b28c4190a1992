"""Convergence and scaling, the report: per system the medians over the rounds (each
round's shape kept), the time ratios against shoal, the printed table and findings."""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from typing import Any

from kit.report import NAMES as BOTH
from kit.report import fmt, print_table, ratio

NAMES = {**BOTH, "run": "docker run ×N"}
# Not averaged: the first round's.
VERBATIM = {"shoald_log", "shoald_logs", "nodes_not_ready", "pids", "states", "round", "loadavg"}
PROCS = (  # rows of the resource table, when measured: single engine, then lab (--nodes)
    "shoald", "shoald-m1", "shoald-workers", "etcd", "dockerd", "dockerd-m1",
    "dockerd-workers", "containerd", "containerd-m1", "containerd-workers",
)  # fmt: skip
Getter = Callable[[dict[str, Any]], Any]


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


def summarise(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Docker swarm / shoal and run / shoal, for the create and the scale phase."""

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


def table_spec(
    args: argparse.Namespace, results: dict[str, dict[str, Any]]
) -> list[tuple[str, Getter, str]]:
    """The table's rows: label, how to read the value from a result, unit."""
    n, m = args.replicas, args.scale_to

    def phase(name: str, key: str) -> Getter:
        return lambda r: (r.get(name) or {}).get(key)

    def res(kind: str, proc: str) -> Getter:
        return lambda r: ((r.get("resources") or {}).get(kind) or {}).get(proc)

    def cli_returned(r: dict[str, Any]) -> Any:
        return r.get("create_cli_s", (r.get("create") or {}).get("all_cli_returned_s"))

    spec: list[tuple[str, Getter, str]] = [
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

    def cpu(proc: str) -> Getter:
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
    return spec


def print_report(
    results: dict[str, dict[str, Any]],
    ratios: dict[str, Any],
    args: argparse.Namespace,
    rounds: dict[str, list[dict[str, Any]]],
) -> None:
    rows = [("", *[NAMES[s] for s in results])]
    for label, get, unit in table_spec(args, results):
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
    print_table(rows)
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
                print(f"{NAMES[s]} round {r['round']}: task containers per engine "
                      f"{r['per_engine']}; nodes seen not ready: "
                      f"{r.get('nodes_not_ready') or 'none'}")  # fmt: skip
    print_log_findings(rounds.get("shoal", []))
    print()


def print_log_findings(rounds: list[dict[str, Any]]) -> None:
    """shoald's notable log lines (per lab node, or the single shoald's with etcd's)."""
    for r in rounds:
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
