"""API latency, the report: per system p50 / p99 of each request, to the leader and to a
follower, and the Docker / shoal ratios."""

from __future__ import annotations

import argparse
from typing import Any

from kit.report import NAMES, dig, fmt, print_table, ratio

ROWS = (
    ("GET /services?status=true", "services"),
    ("GET /tasks", "tasks"),
    ("POST /services/{id}/update (scale)", "update"),
)
EXTRA = (
    ("services × replicas", "", ""),
    ("`GET /services` / `GET /tasks` body", "", ""),
    ("create the services (sequential API)", "create.total_s", "s"),
    ("… → every task running", "all_running_s", "s"),
    ("task containers per worker", "containers_per_worker", ""),
)


def print_report(rounds: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> dict:
    systems = list(rounds)
    res = {s: (rounds[s][0] if rounds[s] else {}) for s in systems}
    both = {"shoal", "docker"} <= set(systems)
    rows = [["", *[f"{NAMES[s]} p50 / p99" for s in systems],
             *(["Docker / shoal p50 / p99"] if both else [])]]  # fmt: skip
    ratios: dict[str, Any] = {}
    for label, key in ROWS:
        for role in ("leader", "follower"):
            cells = [f"{label}, {role}"]
            r = {s: dig(res[s], f"results.{key}.{role}") or {} for s in systems}
            for s in systems:
                p50, p99 = r[s].get("p50_ms"), r[s].get("p99_ms")
                cells.append(f"{fmt(p50, ' ms')} / {fmt(p99, ' ms')}")
            if both:
                rr = [ratio(r["docker"].get(p), r["shoal"].get(p)) for p in ("p50_ms", "p99_ms")]
                ratios[f"{key}.{role}"] = rr
                cells.append(" / ".join(fmt(x, "×") for x in rr))
            rows.append(cells)
    for label, path, unit in EXTRA:
        cells = [label]
        for s in systems:
            if label.startswith("services ×"):
                cells.append(f"{args.services} × {args.replicas}")
            elif label.startswith("`GET"):
                cells.append(f"{dig(res[s], 'results.services.leader.bytes')} / "
                             f"{dig(res[s], 'results.tasks.leader.bytes')} B")  # fmt: skip
            else:
                v = dig(res[s], path)
                cells.append(", ".join(f"{k}:{x}" for k, x in v.items()) if isinstance(v, dict)
                             else fmt(v, unit))  # fmt: skip
        if both:
            cells.append("")
        rows.append(cells)
    print_table(rows)
    print(f"{args.samples} reads and {args.write_samples} scale changes per request kind and "
          "manager, one after the other; Docker / shoal > 1: shoal faster\n")  # fmt: skip
    for s in systems:
        if res[s].get("error"):
            print(f"!! {s}: {res[s]['error']}")
        for key in ("update.leader", "update.follower"):
            errs = dig(res[s], f"results.{key}.errors")
            if errs:
                print(f"{NAMES[s]} {key} failures: {errs}")
    return ratios
