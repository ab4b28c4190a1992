#!/usr/bin/env python3
"""`docker stack deploy`, side by side: shoal vs Docker's own swarm mode on identical lab hosts.

Per system, one ``shoal lab`` of 1 manager + ``--workers`` (2) workers (``kit.lab.BenchLab``;
the manager stays active: the J3 stack runs a task on every node), default settings, the lab
images pulled into every engine first. Then ``--rounds`` (1) rounds per system, interleaved:

1. ``docker stack deploy -c big.yml big``: ``--services`` (50) busybox services, 1 replica
   each; ``GET /services?status=true`` (the stack's label) polled every ``--poll`` (0.2) s until
   every service has its task running; ``docker stack rm big`` until no engine has a
   container of it;
2. seed J3's getstartedlab (whoami:1, limits cpus 0.1 / 50M, restart on-failure, network
   ``webnet``) with ``4000:80`` published in ``mode: host`` and one replica per node: from the
   deploy until ``GET http://<node>:4000/`` answers on every node (Docker's routing mesh needs
   IPVS, absent here, so this is the variant both swarms can run); ``stack rm``;
3. shoal only: the same stack as written (8 replicas behind the routing mesh) until :4000
   answers on every node.

    python bench/stack.py [--rounds 1] [--systems shoal,docker] [--services 50] [--workers 2]
                          [--json out.json] [--keep-logs DIR] [--keep-labs]

Needs root and what ``shoal lab`` needs. See ``docs/design/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import sys
import time
from typing import Any

from kit import runs
from kit.lab import BenchLab, unique_name
from reports.stack import print_report
from scenarios.stack import SYSTEMS, run_round, setup_lab


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--systems", default=",".join(SYSTEMS),
                   help="comma-separated, of: shoal, docker")  # fmt: skip
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--services", type=int, default=50)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--poll", type=float, default=0.2, help="poll interval in seconds")
    p.add_argument("--settle", type=float, default=2.0, help="seconds between phases")
    p.add_argument("--timeout", type=float, default=300.0, help="per-phase timeout in seconds")
    runs.add_lab_options(p, "the images")
    args = p.parse_args(argv)
    chosen = [s.strip() for s in args.systems.split(",") if s.strip()]
    bad = [s for s in chosen if s not in SYSTEMS]
    if bad:
        p.error(f"unknown system(s) {bad}; choose from {', '.join(SYSTEMS)}")
    args.system_list = [s for s in SYSTEMS if s in chosen]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    runs.exit_on_signals()
    systems = args.system_list
    params = ("services", "workers", "poll", "no_prepull")
    out = runs.run_record("stack", {k: getattr(args, k) for k in params}, runs.machine_info())
    rounds: dict[str, list[dict[str, Any]]] = {s: [] for s in systems}
    labs_info: dict[str, dict[str, Any]] = {}
    with contextlib.ExitStack() as stack:
        labs: dict[str, BenchLab] = {}
        for s in systems:
            lab = BenchLab(s, unique_name("sk", s), args.workers, keep=args.keep_labs,
                           log_level=args.shoald_log_level)  # fmt: skip
            stack.enter_context(lab)
            info = labs_info.setdefault(s, {"lab": lab.name})
            runs.log(f"── {s}: lab {lab.name}")
            runs.guarded(f"{s} lab", info, functools.partial(setup_lab, lab, args, info))
            if "error" not in info:
                labs[s] = lab
        for i in range(args.rounds):
            for s in systems:
                res = runs.new_round(s, i + 1)
                rounds[s].append(res)
                if s not in labs:
                    res["error"] = labs_info[s].get("error", "no lab")
                    continue
                runs.log(f"── {s} (round {i + 1}/{args.rounds})")
                t0 = time.monotonic()
                runs.guarded(s, res, functools.partial(run_round, labs[s], args, res))
                res["wall_s"] = round(time.monotonic() - t0, 2)
        for s, lab in labs.items():
            with contextlib.suppress(Exception):
                labs_info[s]["shoald_logs"] = lab.shoald_logs()
            if args.keep_logs:
                with contextlib.suppress(Exception):
                    lab.copy_logs(args.keep_logs, "stack")
    out["labs"] = labs_info
    out["rounds"] = rounds
    out["ratios_docker_over_shoal"] = print_report(rounds, args)
    out["machine"]["loadavg_after"] = os.getloadavg()
    runs.write_json(out, args.json, indent=1)
    return runs.exit_code(rounds)


if __name__ == "__main__":
    sys.exit(main())
