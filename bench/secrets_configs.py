#!/usr/bin/env python3
"""Secrets and configs, side by side: shoal vs Docker's own swarm mode, one engine each.

One run of this script measures, one system after the other on this machine, each against
its own fresh, isolated dockerd (``shoal.testing.dockerd.IsolatedEngine``) with the test
images, as ``converge.py`` does:

* ``shoal``  — a shoald in front of the engine (in the engine's namespaces; its etcd child on
  free ports), ``docker swarm init --advertise-addr 127.0.0.1`` through shoald's socket;
* ``docker`` — Docker's own swarm mode in the engine (``docker swarm init`` on the engine).

With the stock docker CLI and the Engine API (``/v1.41``), each round:

1. ``docker secret create bench-NNNN <file>`` of ``--secrets`` (100) secrets of
   ``--payload`` (1024) bytes, one after the other: the total and p50/p99 per create;
   ``GET /secrets`` (and ``docker secret ls``, ``GET /secrets/{name}``) with the N secrets;
   the same N creates through ``POST /secrets/create`` and their ``DELETE``s (no CLI start-up
   in these); ``docker config create`` of two plain configs and one
   ``--template-driver golang`` config.
2. ``docker service create -d --name web --replicas R`` (20) of ``shoal-test/busybox:1``
   (``sh -c 'trap "exit 0" TERM; while :; do sleep 0.2; done'``) without secrets → R/R in
   ``docker service ls``, ``service rm`` → no container; then the same service with
   ``--service-secrets`` K (5) secrets ``s0…`` and 2 configs (``/etc/app.conf`` and the
   template ``/etc/app.tmpl``) → R/R. One container's files are read (``docker exec cat``):
   the secrets, the config, the rendered template.
3. Rotation: ``docker secret create s0.v2``; ``docker service update -d --secret-rm s0
   --secret-add source=s0.v2,target=s0 --update-parallelism 5 --update-delay 0s web``; the
   clock runs until ``UpdateStatus.State`` is ``completed`` (this update's) and all R tasks
   run with ``s0.v2`` (``GET /tasks`` + ``GET /services/web`` every ``--poll`` s); then
   every task container's ``/run/secrets/s0`` is read (must be ``s0.v2``'s payload).
   ``service rm`` → no container.
4. ``docker secret rm bench-0000 … bench-NNNN`` (one command, not in use): the total.

Ratios are Docker / shoal times (> 1: shoal is faster). ``--rounds`` repeats everything with
the systems interleaved and reports medians (min–max); ``--json`` writes every round.

    python bench/secrets_configs.py [--secrets 100] [--payload 1024] [--replicas 20]
                                    [--service-secrets 5] [--parallelism 5] [--only shoal|docker]
                                    [--rounds 1] [--json out.json] [--keep-logs DIR]

Needs root, docker, dockerd, etcd, busybox-static (``scripts/setup.sh``). Everything it
starts is torn down after each system, also on failure, Ctrl-C and SIGTERM. See
``docs/design/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from kit import runs
from reports.secrets_configs import derive, print_report
from scenarios.secrets_configs import RUNNERS, SYSTEMS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--secrets", type=int, default=100, help="secrets created and removed (N)")
    p.add_argument("--payload", type=int, default=1024, help="bytes per secret")
    p.add_argument("--replicas", type=int, default=20)
    p.add_argument("--service-secrets", type=int, default=5, help="secrets of the service (K)")
    p.add_argument("--parallelism", type=int, default=5, help="--update-parallelism (rotation)")
    p.add_argument("--only", choices=SYSTEMS, action="append", help="only this system (repeatable)")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--json", help="write the results (every round) to this file")
    p.add_argument("--ls-samples", type=int, default=20,
                   help="GET /secrets (and GET /secrets/{name}) calls timed")  # fmt: skip
    p.add_argument("--ls-cli-samples", type=int, default=5, help="`docker secret ls` runs timed")
    p.add_argument("--no-api-creates", dest="api_creates", action="store_false",
                   help="skip the N creates and removes through the Engine API")  # fmt: skip
    p.add_argument("--poll", type=float, default=0.15, help="poll interval in seconds")
    p.add_argument("--timeout", type=float, default=300.0, help="per-phase timeout in seconds")
    p.add_argument("--settle", type=float, default=1.0, help="pause between the phases")
    p.add_argument(
        "--shoald-host-ns",
        action="store_true",
        help="run shoald in this (root) network namespace instead of the engine's",
    )
    p.add_argument("--shoald-log-level", default="info")
    p.add_argument("--keep-logs", metavar="DIR", help="copy shoald's and etcd's logs into DIR")
    a = p.parse_args(argv)
    if a.service_secrets < 1 or a.secrets < 1 or a.replicas < 1:
        p.error("--secrets, --service-secrets and --replicas must be ≥ 1")
    return a


def one_round(system: str, args: argparse.Namespace, res: dict[str, Any]) -> None:
    try:
        RUNNERS[system](args, res)
    finally:
        derive(res)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    runs.exit_on_signals()
    systems = [s for s in SYSTEMS if not args.only or s in args.only]
    params = ("secrets", "payload", "replicas", "service_secrets", "parallelism", "ls_samples",
              "ls_cli_samples", "api_creates", "poll")  # fmt: skip
    out = runs.run_record(
        "secrets_configs", {k: getattr(args, k) for k in params}, runs.machine_info(etcd=True)
    )
    rounds = runs.interleaved(
        systems, args.rounds, lambda s, res: one_round(s, args, res), done=", torn down"
    )
    out["rounds"] = rounds
    out["ratios_docker_over_shoal"] = print_report(rounds, args)
    out["machine"]["loadavg_after"] = os.getloadavg()
    runs.write_json(out, args.json)
    return runs.exit_code(rounds)


if __name__ == "__main__":
    sys.exit(main())
