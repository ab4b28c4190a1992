"""The rolling update, the report: per system the medians (and spread) over the rounds, the
Docker / shoal time ratios, a line per round, and the daemons' WARNING/ERROR lines during
the update; ``derive`` adds to each round what is computed from its own figures."""

from __future__ import annotations

import argparse
from typing import Any

from kit.report import NAMES, dig, fmt, median_rows, print_medians_note, print_table

ROWS: list[tuple[str, str, bool]] = [  # label, path, timing (ratio)
    ("update → 20 on :2 + UpdateStatus completed", "api.completed_s", True),
    ("update → last :2 task running (API)", "api.all_new_running_s", True),
    ("update → 20 answering :2 (probers)", "serving.all_new_serving_s", True),
    ("update → first :2 task running", "api.first_new_running_s", True),
    ("last :2 running → completed", "derived.monitor_wait_s", False),
    ("UpdateStatus StartedAt → CompletedAt", "derived.status_span_s", True),
    ("`service update -d` returns", "cli_s", False),
    ("longest moment < 18 answering", "serving.update.longest_s", False),
    ("time < 18 answering, in all", "serving.update.total_s", False),
    ("fewest answering during the update", "serving.update.min", False),
    ("  … not counting probe false negatives", "serving.update_filled.longest_s", False),
    ("  … fewest answering", "serving.update_filled.min", False),
    ("longest moment < 20 answering", "serving.below_all.longest_s", False),
    ("slot gap: old's last → new's first answer, median", "serving.slot_gap_median_s", True),
    ("slot gap, max", "serving.slot_gap_max_s", False),
    ("slot: new task created → old silent", "serving.slot_medians.old_silent_s", False),
    ("slot: new task created → running", "serving.slot_medians.new_running_s", False),
    ("slot: new task created → answering", "serving.slot_medians.new_answering_s", False),
    ("last slot's new task created", "serving.slot_medians.last_created_s", True),
    ("a :2 task running → next one created", "serving.slot_medians.reaction_s", False),
    ("baseline (2 s before): fewest answering", "serving.baseline.min", False),
    ("probe sweep period, median", "serving.probe.period_median_s", False),
    ("create 0→20 running", "create_s", True),
    ("service rm → no containers", "rm_s", True),
]


def derive(r: dict[str, Any]) -> None:
    """The 5 s monitor wait (completed − last :2 running) and UpdateStatus's own span."""
    a = r.get("api") or {}
    d = r.setdefault("derived", {})
    if a.get("completed_s") is not None and a.get("all_new_running_s") is not None:
        d["monitor_wait_s"] = round(a["completed_s"] - a["all_new_running_s"], 3)
    if a.get("status_completed_at_s") is not None and a.get("status_started_at_s") is not None:
        d["status_span_s"] = round(a["status_completed_at_s"] - a["status_started_at_s"], 3)


def print_report(
    rounds: dict[str, list[dict[str, Any]]], args: argparse.Namespace
) -> dict[str, Any]:
    """Print the table, a line per round and the log lines; → the Docker / shoal ratios."""
    n, thr = args.replicas, args.replicas - args.parallelism
    systems = list(rounds)

    def label(text: str) -> str:
        text = text.replace("< 18", f"< {thr}").replace("< 20", f"< {n}")
        return text.replace("20 ", f"{n} ").replace("0→20", f"0→{n}")

    rows, ratios = median_rows(
        rounds, ROWS, label, unit=lambda path: "s" if not path.endswith(".min") else "",
        spread_spec="g", spread_all=True,
    )  # fmt: skip
    print_table(rows)
    print_medians_note(args.rounds)
    print(
        "per round: completed | last :2 running | all answering :2 | longest < "
        f"{thr} | fewest | prober saw {n} before | probe false negatives"
    )
    for s in systems:
        for r in rounds[s]:
            if r.get("error"):
                print(f"  {NAMES[s]:12} round {r['round']}: !! {r['error']}")
                continue
            pc = r.get("prober_check") or {}
            print(f"  {NAMES[s]:12} round {r['round']}: {fmt(dig(r, 'api.completed_s'))} | "
                  f"{fmt(dig(r, 'api.all_new_running_s'))} | "
                  f"{fmt(dig(r, 'serving.all_new_serving_s'))} | "
                  f"{fmt(dig(r, 'serving.update.longest_s'))} "
                  f"{dig(r, 'serving.update.intervals') or ''} | "
                  f"{dig(r, 'serving.update.min')} | "
                  f"{'yes' if pc.get('ok') else 'NO ' + str(pc.get('seen'))} | "
                  f"{dig(r, 'serving.probe.flaps') or 'none'}")  # fmt: skip
    print()
    for s in systems:
        for r in rounds[s]:
            for node, lines in (r.get("log_lines") or {}).items():
                print(f"{NAMES[s]} round {r['round']}, {node} during the update "
                      f"({len(lines)} WARNING/ERROR lines):")  # fmt: skip
                for ln in lines[:5]:
                    print(f"    {ln[:160]}")
    print()
    return ratios
