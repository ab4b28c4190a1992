"""`docker stack deploy`, the report: per system the medians (and spread) over the rounds and
the Docker / shoal time ratios."""

from __future__ import annotations

import argparse
from typing import Any

from kit.report import NAMES, dig, fmt, median_rows, print_medians_note, print_table

ROWS: list[tuple[str, str, bool]] = [  # label, path, timing (ratio)
    ("N services: deploy → all running", "many_all_running_s", True),
    ("N services: deploy → first running", "many_first_running_s", True),
    ("N services: `stack deploy` returns", "many_cli_s", True),
    ("N services: `stack rm` → no containers", "many_rm_s", True),
    ("J3 host mode: deploy → :4000 on every node", "j3_host_every_node_s", True),
    ("J3 host mode: deploy → :4000 on a first node", "j3_host_first_node_s", True),
    ("J3 host mode: `stack rm` → no containers", "j3_host_rm_s", True),
    ("J3 mesh, 8 replicas: deploy → :4000 on every node", "j3_mesh_every_node_s", True),
]


def print_report(
    rounds: dict[str, list[dict[str, Any]]], args: argparse.Namespace
) -> dict[str, Any]:
    rows, ratios = median_rows(rounds, ROWS, lambda t: t.replace("N ", f"{args.services} "))
    print_table(rows)
    print_medians_note(args.rounds)
    for s, rs in rounds.items():
        for r in rs:
            if r.get("error"):
                print(f"  {NAMES[s]:12} round {r['round']}: !! {r['error']}")
            else:
                print(f"  {NAMES[s]:12} round {r['round']}: {fmt(dig(r, 'many_all_running_s'))} | "
                      f"{fmt(dig(r, 'j3_host_every_node_s'))}")  # fmt: skip
    print()
    return ratios
