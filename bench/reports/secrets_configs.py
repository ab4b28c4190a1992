"""Secrets and configs, the report: per system the medians (and spread) over the rounds, the
Docker / shoal time ratios, the checks of what the task containers saw, and shoald's notable
log lines; ``derive`` adds to each round what is computed from its own figures."""

from __future__ import annotations

import argparse
from typing import Any

from kit.report import NAMES, dig, median_rows, print_medians_note, print_table

from .converge import print_log_findings

ROWS: list[tuple[str, str, bool]] = [  # label, path, timing (spread + ratio)
    ("secret create ×N (CLI), total", "objects.create_cli.total_s", True),
    ("  per create p50", "objects.create_cli.p50_ms", True),
    ("  per create p99", "objects.create_cli.p99_ms", True),
    ("POST /secrets/create ×N (API), total", "objects.create_api.total_s", True),
    ("  per create p50", "objects.create_api.p50_ms", True),
    ("  per create p99", "objects.create_api.p99_ms", True),
    ("GET /secrets with N, p50", "objects.ls_api.p50_ms", True),
    ("`docker secret ls` with N, p50", "objects.ls_cli.p50_ms", True),
    ("GET /secrets/{name}, p50", "objects.inspect_api.p50_ms", True),
    ("config create (CLI), plain", "objects.config_create_plain_cli_s", True),
    ("config create --template-driver golang", "objects.config_create_template_cli_s", True),
    ("service create R → R/R running, plain", "services.plain.seconds", True),
    ("  … with K secrets + 2 configs", "services.secrets.seconds", True),
    ("  what the secrets and configs add", "derived.secrets_cost_s", False),
    ("  first task running, plain", "services.plain.first_running_s", True),
    ("  first task running, with secrets", "services.secrets.first_running_s", True),
    ("  `service create` returns (with secrets)", "services.secrets.cli_s", True),
    ("rotation → UpdateStatus completed, all on s0.v2", "rotation.completed_s", True),
    ("  → every task running with s0.v2", "rotation.all_new_running_s", True),
    ("  → first task running with s0.v2", "rotation.first_new_running_s", True),
    ("  all on s0.v2 → completed (the monitor)", "derived.monitor_wait_s", False),
    ("secret rm ×N (one CLI command), total", "remove.cli_total_s", True),
    ("DELETE /secrets/{id} ×N (API), total", "objects.rm_api.total_s", True),
    ("  per remove p50", "objects.rm_api.p50_ms", True),
    ("  tasks failed or rejected, with secrets", "services.secrets.tasks_failed", False),
    ("  tasks failed or rejected, rotation", "rotation.tasks_failed", False),
    ("service rm → 0 containers, plain", "services.plain.rm_s", True),
    ("  … with secrets (after the rotation)", "rotation.rm_s", True),
    ("swarm init", "swarm_init_s", True),
]
CPU_ROWS = (  # (label, path of a cpu_s dict)
    ("CPU-s during the N CLI creates", "objects.create_cli.cpu_s"),
    ("CPU-s during the N API creates", "objects.create_api.cpu_s"),
    ("CPU-s during the rotation", "rotation.cpu_s"),
)
PROCS = ("shoald", "etcd", "dockerd")


def derive(r: dict[str, Any]) -> None:
    """The secrets' cost (with − without) and the monitor's wait after the rotation."""
    d = r.setdefault("derived", {})
    a, b = dig(r, "services.secrets.seconds"), dig(r, "services.plain.seconds")
    if a is not None and b is not None:
        d["secrets_cost_s"] = round(a - b, 3)
    a, b = dig(r, "rotation.completed_s"), dig(r, "rotation.all_new_running_s")
    if a is not None and b is not None:
        d["monitor_wait_s"] = round(a - b, 3)


def print_report(
    rounds: dict[str, list[dict[str, Any]]], args: argparse.Namespace
) -> dict[str, Any]:
    """Print the table and the checks; → the Docker / shoal ratios by path."""
    systems = list(rounds)

    def label(text: str) -> str:
        return (text.replace("×N", f"×{args.secrets}").replace("with N", f"with {args.secrets}")
                .replace("R → R/R", f"{args.replicas} → {args.replicas}/{args.replicas}")
                .replace("K secrets", f"{args.service_secrets} secrets"))  # fmt: skip

    def unit(path: str) -> str:
        return " ms" if path.endswith("_ms") else "" if path.endswith("failed") else "s"

    rows, ratios = median_rows(rounds, ROWS, label, unit=unit)
    for text, path in CPU_ROWS:
        cells = [text]
        for s in systems:
            vals = [dig(r, path) for r in rounds[s] if not r.get("error")]
            first = next((v for v in vals if v), None) or {}
            cells.append(", ".join(f"{p} {first[p]:.2f}" for p in PROCS
                                   if first.get(p) is not None) or "—")  # fmt: skip
        if len(rows[0]) > len(systems) + 1:
            cells.append("")
        rows.append(cells)
    print_table(rows)
    print_medians_note(args.rounds)
    for s in systems:
        for r in rounds[s]:
            if r.get("error"):
                print(f"  {NAMES[s]:12} round {r['round']}: !! {r['error']}")
                continue
            f = dig(r, "services.secrets.files") or {}
            g = dig(r, "rotation.files") or {}
            print(f"  {NAMES[s]:12} round {r['round']}: a task's files: secret "
                  f"{'ok' if f.get('secret_ok') else '!!'}, other secrets "
                  f"{f.get('other_secrets_ok')}/{args.service_secrets - 1}, config "
                  f"{'ok' if f.get('config_ok') else '!!'}, template "
                  f"{'ok' if f.get('template_ok') else '!!'} {(f.get('template') or '')[:44]!r}…; "
                  f"after the rotation {g.get('secret_ok')}/{g.get('containers')} read s0.v2; "
                  f"UpdateStatus {dig(r, 'rotation.update_status_seen')}")  # fmt: skip
            for phase in ("services.secrets", "rotation"):
                for err in dig(r, f"{phase}.task_errors") or []:
                    print(f"    {phase.split('.')[-1]}: task failed: {err[:160]}")
    print_log_findings(rounds.get("shoal", []))
    print()
    return ratios
