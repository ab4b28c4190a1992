#!/usr/bin/env python3
"""Leader failover, side by side: shoal vs Docker's own swarm mode on identical lab hosts.

Per system, one ``shoal lab`` of ``--managers`` (3) managers + ``--workers`` (2) workers
(``kit.lab.BenchLab``: shoal's swarm on a plain ``shoal lab up --managers 3``; Docker's swarm
mode with ``docker swarm init`` on m1's engine and ``docker swarm join`` of the others — the
managers with the manager token — on a ``shoal lab up --no-swarm``), default settings. The
managers keep their default availability; the service is constrained to the workers:

1. ``docker service create -d --name web --replicas 10 --constraint node.role==worker
   <lab registry>/shoal-lab/whoami:1``; wait until 10 run;
2. ``--trials`` (default 5, or ``SHOAL_BENCH_FAILOVER_TRIALS``) trials, each of two kills:
   a. **the leader's host** is SIGKILLed as ``shoal lab kill NODE`` does it. From the kill:
      ``docker service scale -d web=N`` (11 and 10 in turn) against a surviving manager,
      each attempt killed after ``--attempt-timeout`` (2) s and retried at once, until one
      succeeds, and when the scaled count runs; ``GET /nodes`` (what ``docker node ls``
      shows) on every survivor every ``--poll`` (0.2) s, ``--poll-timeout`` (1) s each:
      when a new Leader shows, how long no answer came, whether a worker is ever shown not
      Ready (until ``--linger`` (8) s after the new Leader);
   b. **a non-leader manager's host**, the same: the scale, and whether the Leader changes;
   after each kill the host is started again (``shoal lab start NODE``) and the trial goes
   on when every manager is Reachable and every node Ready (that time is reported too);
3. ``shoal lab down``.

    python bench/leader_failover.py [--trials 5] [--only shoal|docker] [--json out.json]
                                    [--replicas 10] [--managers 3] [--workers 2]
                                    [--keep-logs DIR] [--keep-labs]

Reports p50 / p99 / max over the trials and the Docker / shoal ratios of the p50s. Needs
root and what ``shoal lab`` needs. See ``docs/design/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import os
import sys

from kit import runs
from reports.leader_failover import print_report
from scenarios.leader_failover import SYSTEMS, run_system


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int,
                   default=int(os.environ.get("SHOAL_BENCH_FAILOVER_TRIALS", "5")),
                   help="trials (each: the leader killed, then a non-leader manager); "
                        "default 5 or $SHOAL_BENCH_FAILOVER_TRIALS")  # fmt: skip
    p.add_argument("--replicas", type=int, default=10)
    p.add_argument("--managers", type=int, default=3)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--only", choices=SYSTEMS, action="append", help="only this system (repeatable)")
    p.add_argument("--poll", type=float, default=0.2, help="GET /nodes interval in seconds")
    p.add_argument("--poll-timeout", type=float, default=1.0, help="client timeout of a GET /nodes")
    p.add_argument("--attempt-timeout", type=float, default=2.0,
                   help="client timeout of one `docker service scale` attempt")  # fmt: skip
    p.add_argument(
        "--linger",
        type=float,
        default=8.0,
        help="seconds to keep watching after the new Leader (workers shown not Ready?)",
    )
    p.add_argument("--settle", type=float, default=2.0, help="seconds before each kill")
    p.add_argument("--timeout", type=float, default=120.0, help="per-phase timeout in seconds")
    runs.add_lab_options(p)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    runs.exit_on_signals()
    systems = [s for s in SYSTEMS if not args.only or s in args.only]
    params = ("trials", "replicas", "managers", "workers", "poll", "poll_timeout",
              "attempt_timeout", "linger", "no_prepull")  # fmt: skip
    out = runs.run_record(
        "leader_failover", {k: getattr(args, k) for k in params}, runs.machine_info()
    )
    rounds = runs.interleaved(systems, 1, lambda s, res: run_system(s, args, res))
    out["rounds"] = rounds
    out["summary"] = print_report(rounds, args)
    out["machine"]["loadavg_after"] = os.getloadavg()
    runs.write_json(out, args.json)
    return runs.exit_code(rounds)


if __name__ == "__main__":
    sys.exit(main())
