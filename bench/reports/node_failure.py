"""Node failure, the report: per system the medians (and spread) over the rounds, the
Docker / shoal time ratios, the non-numeric findings and shoald's notable log lines."""

from __future__ import annotations

import argparse
from typing import Any

from kit.report import dig, median_rows, print_medians_note, print_table

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
FINDINGS = (  # non-numeric, the rounds' distinct values
    ("`service ls` after recovery", "failure.service_ls_final"),
    ("other nodes seen not ready", "failure.other_nodes_not_ready"),
    ("restart: task containers max", "restart.engines_max"),
    ("restart: max on the restarted node", "restart.on_restarted_node_max"),
    ("restart: final per node", "restart.per_node_final"),
    ("spread before the kill", "spread"),
)


def _short(v: Any) -> str:
    if isinstance(v, dict):
        return ", ".join(f"{k}:{x}" for k, x in v.items()) or "none"
    return str(v)


def print_report(
    rounds: dict[str, list[dict[str, Any]]], args: argparse.Namespace
) -> dict[str, Any]:
    """Print the table and the findings; → the Docker / shoal ratios by path."""
    n = args.replicas
    systems = list(rounds)
    rows, ratios = median_rows(rounds, ROWS, lambda text: text.replace("30", str(n)))
    for label, key in FINDINGS:
        cells = [label]
        for s in systems:
            uniq: list[Any] = []
            for v in (dig(r, key) for r in rounds[s] if not r.get("error")):
                if v not in uniq:
                    uniq.append(v)
            cells.append(" | ".join(_short(v) for v in uniq) if uniq else "—")
        if len(rows[0]) > len(systems) + 1:  # the ratio column
            cells.append("")
        rows.append(cells)
    print_table(rows)
    print_medians_note(args.rounds)
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
