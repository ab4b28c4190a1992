"""Leader failover, the report: per system and kind of kill (the leader's host, a
non-leader manager's host), p50 / p99 / max over the trials, the Docker / shoal ratios of
the p50s, and what was seen (leaders, workers not Ready, errors the clients got)."""

from __future__ import annotations

import argparse
from collections import Counter
from typing import Any

from kit.report import NAMES, dig, fmt, percentile, print_table, ratio

ROWS: list[tuple[str, str, str]] = [  # kind, label, path in a trial
    ("leader", "`service scale` to a survivor succeeds", "scale.ok_s"),
    ("leader", "… attempts until then", "scale.attempts"),
    ("leader", "… the scaled count running", "scaled_running_s"),
    ("leader", "a survivor's `node ls` shows a new Leader", "new_leader_s"),
    ("leader", "… both survivors show it", "new_leader_all_s"),
    ("leader", "longest wait for a `GET /nodes` answer", "longest_unanswered_s"),
    ("leader", "host started → all Reachable/Ready", "whole_again_s"),
    ("follower", "`service scale` to a survivor succeeds", "scale.ok_s"),
    ("follower", "… attempts until then", "scale.attempts"),
    ("follower", "… the scaled count running", "scaled_running_s"),
    ("follower", "longest wait for a `GET /nodes` answer", "longest_unanswered_s"),
    ("follower", "host started → all Reachable/Ready", "whole_again_s"),
]
COUNTS = ("scale.attempts",)


def _value(t: dict[str, Any], path: str) -> Any:
    if path == "longest_unanswered_s":
        gaps = [p.get("longest_unanswered_s") for p in (t.get("per_survivor") or {}).values()]
        gaps = [g for g in gaps if g is not None]
        return max(gaps) if gaps else None
    return dig(t, path)


def trial_values(res: dict[str, Any], kind: str, path: str) -> list[float]:
    vals = [_value(t, path) for t in res.get("trials") or [] if t["kind"] == kind]
    return [v for v in vals if isinstance(v, int | float) and not isinstance(v, bool)]


def stats(vals: list[float]) -> dict[str, Any]:
    return {"n": len(vals), "p50": percentile(vals, 50), "p99": percentile(vals, 99),
            "max": max(vals) if vals else None}  # fmt: skip


def print_report(rounds: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> dict:
    """Print the tables; → per system the stats by kind and path, and the p50 ratios."""
    systems = list(rounds)
    res = {s: (rounds[s][0] if rounds[s] else {}) for s in systems}
    both = {"shoal", "docker"} <= set(systems)
    summary: dict[str, Any] = {s: {} for s in systems}
    summary["ratios_p50_docker_over_shoal"] = {}
    head = ["", *[f"{NAMES[s]} p50 / p99 / max" for s in systems]]
    rows = [head + (["Docker / shoal (p50)"] if both else [])]
    current = None
    for kind, label, path in ROWS:
        if kind != current:
            current = kind
            title = ("leader's host killed" if kind == "leader"
                     else "a non-leader manager's host killed")  # fmt: skip
            rows.append([f"[{title}, from the kill]", *[""] * (len(rows[0]) - 1)])
        cells = [f"  {label}"]
        st_by: dict[str, Any] = {}
        for s in systems:
            st = stats(trial_values(res[s], kind, path))
            st_by[s] = st
            summary[s][f"{kind}.{path}"] = st
            unit = "" if path in COUNTS else "s"
            cells.append(" / ".join(fmt(round(st[x], 1) if unit == "" and st[x] is not None
                                        else st[x], unit) for x in ("p50", "p99", "max"))
                         + f" (n={st['n']})")  # fmt: skip
        if both:
            r = None if path in COUNTS else ratio(st_by["docker"]["p50"], st_by["shoal"]["p50"])
            summary["ratios_p50_docker_over_shoal"][f"{kind}.{path}"] = r
            cells.append(fmt(r, "×"))
        rows.append(cells)
    print_table(rows)
    print(f"trials: {args.trials} per kind; p99 of so few trials is close to the maximum\n")
    for s in systems:
        r = res[s]
        if r.get("error"):
            print(f"!! {s}: {r['error']}")
        for kind in ("leader", "follower"):
            ts = [t for t in r.get("trials") or [] if t["kind"] == kind]
            if not ts:
                continue
            changed = sum(1 for t in ts if t.get("leader_changed"))
            notready: Counter[str] = Counter()
            errs: Counter[str] = Counter()
            for t in ts:
                notready.update(t.get("workers_not_ready") or {})
                errs.update((t.get("scale") or {}).get("errors") or {})
            summary[s][f"{kind}.leader_changed_trials"] = changed
            summary[s][f"{kind}.workers_not_ready"] = dict(notready)
            print(f"{NAMES[s]}, {kind} killed: leader changed in {changed}/{len(ts)} trials; "
                  f"workers shown not Ready (polls): {dict(notready) or 'never'}")  # fmt: skip
            for msg, c in errs.most_common(4):
                print(f"    scale attempt failed {c}×: {msg[:160]}")
    print()
    return summary
