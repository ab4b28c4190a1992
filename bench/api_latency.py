#!/usr/bin/env python3
"""API latency with many services, side by side: shoal vs Docker's own swarm mode on
identical lab hosts.

Per system, one ``shoal lab`` of ``--managers`` (3) managers + ``--workers`` (2) workers
(``kit.lab.BenchLab``, as ``leader_failover.py``), default settings:

1. ``--services`` (200) services ``lat0000`` … of ``--replicas`` (2) tasks each, created
   one after the other through ``POST /services/create`` on the leader: the lab's
   ``busybox:1`` idling (``sh -c 'trap "exit 0" TERM; sleep 86400 & wait'``), constrained to
   the workers; wait until every task runs (``ServiceStatus.RunningTasks`` summed);
2. one request at a time, on the leader, then on a follower: ``GET /services?status=true``
   and ``GET /tasks`` ``--samples`` (200) times each (after ``--warmup`` (5)); then, on the
   leader, ``--write-samples`` (100) ``POST /services/{id}/update?version=V`` — a scale
   change of the next service to ``--replicas`` + 1 (the ``GET /services/{id}`` for the
   version is not timed) —, a wait until the new tasks run and ``--settle`` s, and the same
   on the follower, scaling them back. Wall time of each request on the manager's unix
   socket, p50 / p99 / max;
3. ``shoal lab down``.

    python bench/api_latency.py [--services 200] [--replicas 2] [--samples 200]
                                [--write-samples 100] [--only shoal|docker] [--json out.json]

2,000 tasks (200 × 10) are more containers than the two workers of a 2-vCPU machine can
start and keep in reasonable time; the default is 200 × 2 = 400. See
``docs/design/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import os
import sys

from kit import runs
from reports.api_latency import print_report
from scenarios.api_latency import SYSTEMS, run_system


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--services", type=int, default=200)
    p.add_argument("--replicas", type=int, default=2)
    p.add_argument("--samples", type=int, default=200, help="requests per read and manager")
    p.add_argument("--write-samples", type=int, default=100,
                   help="scale changes per manager")  # fmt: skip
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--managers", type=int, default=3)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--only", choices=SYSTEMS, action="append", help="only this system (repeatable)")
    p.add_argument("--settle", type=float, default=5.0,
                   help="seconds between every task running and the first read")  # fmt: skip
    p.add_argument("--timeout", type=float, default=600.0, help="per-phase timeout in seconds")
    runs.add_lab_options(p)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    runs.exit_on_signals()
    systems = [s for s in SYSTEMS if not args.only or s in args.only]
    params = ("services", "replicas", "samples", "write_samples", "warmup", "managers",
              "workers", "no_prepull")  # fmt: skip
    out = runs.run_record("api_latency", {k: getattr(args, k) for k in params}, runs.machine_info())
    rounds = runs.interleaved(systems, 1, lambda s, res: run_system(s, args, res))
    out["rounds"] = rounds
    out["ratios_docker_over_shoal"] = print_report(rounds, args)
    out["machine"]["loadavg_after"] = os.getloadavg()
    runs.write_json(out, args.json)
    return runs.exit_code(rounds)


if __name__ == "__main__":
    sys.exit(main())
