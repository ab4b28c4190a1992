#!/usr/bin/env python3
"""Node failure, side by side: shoal vs Docker's own swarm mode on identical lab hosts.

For each system, on a fresh ``shoal lab`` of 1 manager + ``--workers`` (3) workers
(``kit.lab.BenchLab``: shoal's swarm on a plain ``shoal lab up``; Docker's swarm mode with
``docker swarm init/join`` straight on the engines of a ``shoal lab up --no-swarm``), both
with their default settings:

1. the manager is drained; ``docker service create -d --name web --replicas 30
   <lab registry>/shoal-lab/whoami:1`` (image pre-pulled on the workers unless
   ``--no-prepull``); wait until 30 tasks run (10 per worker);
2. after ``--settle`` s, one worker host (the one with most tasks, or ``--victim w2``) is
   SIGKILLed as ``shoal lab kill NODE`` does it: every process on the host — dockerd,
   containerd, the containers, and shoald (idle beside Docker's swarm) — at once;
3. the manager's API (``GET /nodes``, ``GET /tasks``, ``GET /services?status=true``) and the
   surviving engines are polled every ``--poll`` s from the kill, recording when
      * the dead node is ``down``,
      * the first replacement task runs,
      * **30 tasks run again on live nodes** (tasks with desired and observed state
        ``running`` on a node other than the dead one — ``docker service ls`` alone cannot
        tell: both systems report the dead node's tasks as running until it is declared
        down, and Docker's keeps counting them afterwards, see the report),
      * the surviving engines run 30 task containers (the cross-check),
      * ``docker service ls`` (``ServiceStatus``) says 30/30 with the tasks replaced;
   and whether any other node was ever seen not ``ready`` (a false "down");
4. unless ``--no-restart``: the host is started again (``shoal lab start NODE``): when the
   node is ``ready`` again, and over ``--after-restart`` s whether more than 30 task
   containers ever run at once (a slot with two live tasks) and where they run;
5. ``shoal lab down``.

    python bench/node_failure.py [--rounds 3] [--only shoal|docker] [--json out.json]
                                 [--replicas 30] [--workers 3] [--victim w1] [--poll 0.2]
                                 [--no-restart] [--keep-logs DIR] [--keep-labs]

``--rounds`` interleaves the systems and reports medians with the spread. Needs root and
what ``shoal lab`` needs (``scripts/setup.sh``). See ``docs/design/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import os
import sys

from kit import runs
from reports.node_failure import print_report
from scenarios.node_failure import SYSTEMS, run_system


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--replicas", type=int, default=30)
    p.add_argument("--workers", type=int, default=3)
    p.add_argument(
        "--victim", help="the worker to kill (w1, w2 …); default: the one with most tasks"
    )
    p.add_argument("--only", choices=SYSTEMS, action="append", help="only this system (repeatable)")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--poll", type=float, default=0.2, help="poll interval in seconds")
    p.add_argument("--settle", type=float, default=3.0, help="seconds between 30/30 and the kill")
    p.add_argument("--linger", type=float, default=2.0,
                   help="seconds to keep watching after recovery")  # fmt: skip
    p.add_argument("--timeout", type=float, default=120.0, help="per-phase timeout in seconds")
    p.add_argument("--no-restart", action="store_true", help="do not start the killed host again")
    p.add_argument("--after-restart", type=float, default=10.0,
                   help="seconds to watch after the restarted node is ready")  # fmt: skip
    runs.add_lab_options(p)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    runs.exit_on_signals()
    systems = [s for s in SYSTEMS if not args.only or s in args.only]
    params = ("replicas", "workers", "victim", "poll", "settle", "no_prepull", "no_restart")
    out = runs.run_record(
        "node_failure", {k: getattr(args, k) for k in params}, runs.machine_info()
    )
    rounds = runs.interleaved(systems, args.rounds, lambda s, res: run_system(s, args, res))
    out["rounds"] = rounds
    out["ratios_docker_over_shoal"] = print_report(rounds, args)
    out["machine"]["loadavg_after"] = os.getloadavg()
    runs.write_json(out, args.json)
    return runs.exit_code(rounds)


if __name__ == "__main__":
    sys.exit(main())
