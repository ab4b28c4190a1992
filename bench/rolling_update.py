#!/usr/bin/env python3
"""Rolling update, side by side: shoal vs Docker's own swarm mode on identical lab hosts.

Per system, one ``shoal lab`` of 1 manager (drained) + ``--workers`` (3) workers
(``kit.lab.BenchLab``: shoal's swarm on a plain ``shoal lab up``; Docker's swarm mode with
``docker swarm init/join`` straight on the engines of a ``shoal lab up --no-swarm``), both
labs up for the whole run, default settings. ``whoami:1`` and ``:2`` are pulled into every
worker's engine first. Then ``--rounds`` (3) rounds per system, interleaved (shoal, Docker,
shoal, …), each:

1. ``docker service create -d --name web --replicas 20 --init --update-parallelism 2
   --update-delay 0s --update-order stop-first <registry>/shoal-lab/whoami:1``; wait until
   20 tasks run (``GET /tasks``) and ``docker service ls`` says 20/20;
2. one **prober** per worker host starts *inside the host's network namespace*
   (``nsenter --net``; the task containers' bridge addresses are only reachable there): every
   ``--probe-interval`` (0.1) s it lists the engine's running containers labelled
   ``com.docker.swarm.service.name=web`` and sends each ``GET /version`` on port 80 of its
   bridge address (raw asyncio, ``--probe-timeout`` 0.3 s), printing one JSON line per sweep
   (``{t, node, s: [[task id, version] …], x: [[task id, why] …]}``, ``t`` on the machine's
   monotonic clock). The coordinator merges the hosts' latest sweeps into "replicas serving"
   over time. **Validity check**: before the update the probers must see 20 serving ``1``
   (reported if not), and ``--baseline`` (2) s of quiet probing is kept to show the probe's
   own noise;
3. the clock starts; ``docker service update -d --image …/whoami:2 web`` (``-d``: the CLI
   does not poll). ``GET /tasks`` and ``GET /services/web`` are polled every ``--poll`` (0.2)
   s until 20 tasks run ``:2`` and ``UpdateStatus.State`` is ``completed`` (**total update
   time**), and the probers have seen 20 serving ``2``; also recorded: when the last ``:2``
   task was first seen running, the tasks' own timestamps, per slot when the old task was told
   to stop, stopped answering, and when the new one answered;
4. serving during the update: the minimum number of replicas answering, and **the longest
   moment with fewer than 18** (replicas − parallelism) answering, and the time below 18 in all;
5. ``docker service rm web`` until no engine has a container of it; ``--settle`` (2) s.

    python bench/rolling_update.py [--rounds 3] [--systems shoal,docker] [--json out.json]
                                   [--replicas 20] [--parallelism 2] [--workers 3]
                                   [--keep-logs DIR] [--keep-labs]

Needs root and what ``shoal lab`` needs (``scripts/setup.sh``). See
``docs/design/benchmarks.md``. ``rolling_update.py probe …`` is the prober itself (started by
the benchmark, not meant to be run by hand).
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
from reports.rolling_update import derive, print_report
from scenarios.prober import probe_main
from scenarios.rolling_update import SYSTEMS, run_round, setup_lab


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--systems", default=",".join(SYSTEMS),
                   help="comma-separated, of: shoal, docker")  # fmt: skip
    p.add_argument("--only", choices=SYSTEMS, action="append",
                   help="only this system (repeatable; as node_failure.py)")  # fmt: skip
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--replicas", type=int, default=20)
    p.add_argument("--parallelism", type=int, default=2, help="--update-parallelism")
    p.add_argument("--workers", type=int, default=3)
    p.add_argument("--poll", type=float, default=0.2, help="API poll interval in seconds")
    p.add_argument("--probe-interval", type=float, default=0.1)
    p.add_argument("--probe-timeout", type=float, default=0.3)
    p.add_argument("--baseline", type=float, default=2.0,
                   help="seconds of probing before the update (the probe's own noise)")  # fmt: skip
    p.add_argument("--serving-timeout", type=float, default=30.0,
                   help="how long the probers may take to see every replica answering")  # fmt: skip
    p.add_argument("--linger", type=float, default=1.0,
                   help="seconds to keep watching after the update is done")  # fmt: skip
    p.add_argument("--settle", type=float, default=2.0, help="seconds between rounds")
    p.add_argument("--timeout", type=float, default=180.0, help="per-phase timeout in seconds")
    runs.add_lab_options(p, "the images")
    args = p.parse_args(argv)
    chosen = args.only or [s.strip() for s in args.systems.split(",") if s.strip()]
    bad = [s for s in chosen if s not in SYSTEMS]
    if bad:
        p.error(f"unknown system(s) {bad}; choose from {', '.join(SYSTEMS)}")
    args.system_list = [s for s in SYSTEMS if s in chosen]
    return args


def one_round(lab: BenchLab, args: argparse.Namespace, res: dict[str, Any]) -> None:
    run_round(lab, args, res)
    derive(res)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    runs.exit_on_signals()
    systems = args.system_list
    params = ("replicas", "parallelism", "workers", "poll", "probe_interval", "probe_timeout",
              "baseline", "no_prepull")  # fmt: skip
    out = runs.run_record(
        "rolling_update", {k: getattr(args, k) for k in params}, runs.machine_info()
    )
    rounds: dict[str, list[dict[str, Any]]] = {s: [] for s in systems}
    labs_info: dict[str, dict[str, Any]] = {}
    with contextlib.ExitStack() as stack:  # both labs up for the whole run
        labs: dict[str, BenchLab] = {}
        for s in systems:
            lab = BenchLab(s, unique_name("ru", s), args.workers, keep=args.keep_labs,
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
                runs.guarded(s, res, functools.partial(one_round, labs[s], args, res))
                res["wall_s"] = round(time.monotonic() - t0, 2)
        for s, lab in labs.items():  # before `shoal lab down` removes them
            with contextlib.suppress(Exception):
                labs_info[s]["shoald_logs"] = lab.shoald_logs()
            if args.keep_logs:
                with contextlib.suppress(Exception):
                    lab.copy_logs(args.keep_logs, "rolling")
    out["labs"] = labs_info
    out["rounds"] = rounds
    out["ratios_docker_over_shoal"] = print_report(rounds, args)
    out["machine"]["loadavg_after"] = os.getloadavg()
    runs.write_json(out, args.json, indent=1)
    return runs.exit_code(rounds)


if __name__ == "__main__":
    if sys.argv[1:2] == ["probe"]:
        sys.exit(probe_main(sys.argv[2:]))
    sys.exit(main())
