#!/usr/bin/env python3
"""Convergence and scaling, side by side: shoal vs Docker's own swarm mode vs `docker run`.

One run of this script measures, one system after the other on this machine, each against
its own fresh, isolated dockerd (``shoal.testing.dockerd.IsolatedEngine``) with the test images:

* ``shoal``  — a shoald (``shoal.testing.shoald.Shoald``) in front of the engine (started in
  the engine's namespaces, like a per-host shoald; ``--shoald-host-ns`` keeps it in ours)
  with its etcd child on free ports;
  ``docker swarm init --advertise-addr 127.0.0.1`` through shoald's socket.
* ``docker`` — Docker's own swarm mode in that engine (``docker swarm init`` on the engine).
* ``run``    — no orchestrator: N parallel ``docker run -d`` against the engine.

For the two swarms it times, with the stock docker CLI,

    docker service create -d --name web --replicas N shoal-test/whoami:1   → N/N running
    docker service scale -d web=M                                           → M/M running
    docker service rm web                                                   → 0 containers

where "running" is what ``docker service ls`` shows (``GET /services?status=true``,
``ServiceStatus.RunningTasks``, polled every ``--poll`` s); the number of running task
containers in the engine is polled beside it as a cross-check. For ``run`` it times N
parallel ``docker run -d`` until N containers run, then M-N more.

It also reports, with M tasks running: the RSS of shoald and of its etcd child (and of
dockerd/containerd of every engine), and the CPU they use over a few idle seconds.

    python bench/converge.py [--replicas 50] [--scale-to 100] [--only shoal|docker|run]
                             [--json results.json] [--rounds 3] [--trace-states]
                             [--nodes N [--no-prepull] [--keep-labs]]

``--nodes N`` runs the same comparison across hosts instead: each system on a fresh
``shoal lab`` of 1 manager (drained) + N workers (``kit.lab.BenchLab``): shoal's swarm on
``shoal lab up``, Docker's own swarm mode (``docker swarm init/join`` on the hosts' dockerd
sockets) on identical hosts of ``shoal lab up --no-swarm``, and for ``run`` the same
containers split evenly over the workers' engines with parallel ``docker run -d``. The
image is ``<lab registry>/shoal-lab/whoami:1``, pulled into the workers' engines
beforehand (``--no-prepull``: not). Defaults there: ``--replicas 150``, no scale phase
(give ``--scale-to``). Task containers are counted in every engine; every node is watched
for a false "down" while the tasks start; the RSS/CPU rows name the node (``shoald-m1``)
or sum the workers (``dockerd-workers``). Each lab is removed (``shoal lab down``) after
its system, also on failure.

``--rounds`` repeats the comparison with the systems interleaved and reports medians (the
machine may be shared: the spread is printed too); ``--trace-states`` also polls
``GET /tasks`` to show when the tasks reached each state (diagnostic, adds API load).

Needs root (it starts dockerds in namespaces), docker, dockerd, etcd, busybox-static
(``scripts/setup.sh``). Everything it starts is torn down at the end, also on failure or
Ctrl-C. See ``docs/design/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import os
import sys

from kit import runs
from reports.converge import median_of, print_report, summarise
from scenarios.converge_systems import LAB_RUNNERS, RUNNERS, SYSTEMS

from shoal.testing.images import WHOAMI_1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--replicas", type=int, help="default 50; 150 with --nodes")
    p.add_argument("--scale-to", type=int, help="default 100; with --nodes: no scaling")
    p.add_argument(
        "--nodes",
        type=int,
        default=0,
        metavar="N",
        help="on `shoal lab`s of N workers + 1 drained manager instead of one engine",
    )
    p.add_argument(
        "--only",
        choices=SYSTEMS,
        action="append",
        help="measure only this system (repeatable); default: all three",
    )
    p.add_argument("--json", help="write the results as JSON to this file")
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="repeat the whole comparison (systems interleaved); report medians",
    )
    p.add_argument("--poll", type=float, default=0.15, help="poll interval in seconds")
    p.add_argument("--timeout", type=float, default=300.0, help="per-phase timeout in seconds")
    p.add_argument(
        "--settle",
        type=float,
        default=1.0,
        help="pause after setup and before the resource measurement",
    )
    p.add_argument(
        "--idle",
        type=float,
        default=5.0,
        help="seconds over which idle CPU is measured with all tasks running (0: skip)",
    )
    p.add_argument(
        "--shoald-host-ns",
        action="store_true",
        help="run shoald in this (root) network namespace instead of the engine's",
    )
    p.add_argument("--shoald-log-level", default="info")
    p.add_argument(
        "--trace-states",
        action="store_true",
        help="also GET /tasks every poll and report when tasks reached each state "
        "(diagnostic: adds API load)",
    )
    p.add_argument("--keep-logs", metavar="DIR", help="copy shoald's log into DIR")
    p.add_argument("--keep-labs", action="store_true", help="--nodes: leave the labs up")
    p.add_argument(
        "--no-prepull",
        action="store_true",
        help="--nodes: do not pull the image into the workers' engines beforehand",
    )
    a = p.parse_args(argv)  # fmt: skip
    if a.replicas is None:
        a.replicas = 150 if a.nodes else 50
    if a.scale_to is None:
        a.scale_to = a.replicas if a.nodes else 100
    if a.scale_to < a.replicas:
        p.error("--scale-to must be ≥ --replicas")
    return a


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    runs.exit_on_signals()
    systems = [s for s in SYSTEMS if not args.only or s in args.only]
    params = {"replicas": args.replicas, "scale_to": args.scale_to, "poll_s": args.poll,
              "nodes": args.nodes, "prepull": args.nodes > 0 and not args.no_prepull,
              "image": "<lab registry>/shoal-lab/whoami:1" if args.nodes else WHOAMI_1}  # fmt: skip
    out = runs.run_record("converge", params, runs.machine_info(etcd=True, commit=False))
    runners = LAB_RUNNERS if args.nodes else RUNNERS
    rounds = runs.interleaved(
        systems, args.rounds, lambda s, res: runners[s](args, res), done=", torn down"
    )
    results = {s: median_of(rs) for s, rs in rounds.items()}
    ratios = summarise(results)
    out["results"] = results  # per system; numbers are medians over the rounds
    out["rounds"] = rounds
    out["ratios"] = ratios
    out["machine"]["loadavg_after"] = os.getloadavg()
    print_report(results, ratios, args, rounds)
    runs.write_json(out, args.json)
    return runs.exit_code(rounds)


if __name__ == "__main__":
    sys.exit(main())
