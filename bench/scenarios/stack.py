"""`docker stack deploy`, step by step (``stack.py``): a stack of ``--services`` (50) busybox
services of 1 replica each, from the deploy until every one runs (``docker stack services``
shows 1/1 for all, i.e. ``ServiceStatus`` of ``GET /services?status=true``), then
``docker stack rm`` until no engine has a container of it; seed J3's getstartedlab stack
(whoami on a network ``webnet``, limits, restart on-failure, port 4000) until ``:4000``
answers on every node, in its host-mode variant (one task per node, the port published in
``mode: host``: Docker's routing mesh needs IPVS, absent here) on both swarms, and on shoal
also as written (8 replicas behind the routing mesh)."""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from kit.docker import api_get, count_containers, docker_cli, q
from kit.lab import BenchLab
from kit.runs import log

SYSTEMS = ("shoal", "docker")
NS = "com.docker.stack.namespace"
IDLE = "trap 'exit 0' TERM; while :; do sleep 0.2; done"


def many(image: str, n: int) -> str:
    services = "".join(
        f"""  s{i:02d}:
    image: {image}
    command: ["sh", "-c", "{IDLE}"]
    deploy: {{replicas: 1}}
"""
        for i in range(1, n + 1)
    )
    return f'version: "3.8"\nservices:\n{services}'


def getstartedlab(image: str, replicas: int, host_mode: bool) -> str:
    port = (
        "      - {target: 80, published: 4000, protocol: tcp, mode: host}"
        if host_mode
        else '      - "4000:80"'
    )
    return f"""version: "3"
services:
  web:
    image: {image}
    deploy:
      replicas: {replicas}
      resources:
        limits: {{cpus: "0.1", memory: 50M}}
      restart_policy: {{condition: on-failure}}
    ports:
{port}
    networks: [webnet]
networks:
  webnet:
"""


def stack_status(api: str, stack: str) -> tuple[int, int]:
    """(services whose tasks all run, services) of the stack, as `stack services` shows."""
    found = api_get(api, "/services?" + q(status="true", filters={"label": [f"{NS}={stack}"]}))
    done = sum(
        1
        for s in found
        if (st := s.get("ServiceStatus") or {}).get("DesiredTasks")
        and st.get("RunningTasks") == st.get("DesiredTasks")
    )
    return done, len(found)


def deploy(api: str, stack: str, compose: str) -> float:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d, "stack.yml")
        path.write_text(compose)
        rc, _, err, secs = docker_cli(api, "stack", "deploy", "-c", str(path), stack)
    if rc != 0:
        raise RuntimeError(f"docker stack deploy {stack} → rc {rc}: {err.strip()}")
    return secs


def answers(addr: str) -> bool:
    with contextlib.suppress(Exception):
        with urllib.request.urlopen(f"http://{addr}:4000/", timeout=1.0) as resp:
            return resp.status == 200
    return False


def remove(lab: BenchLab, stack: str, timeout: float) -> float:
    """`docker stack rm` → seconds until no engine has a container of the stack."""
    t0 = time.monotonic()
    rc, _, err, _ = docker_cli(lab.api_host, "stack", "rm", stack)
    if rc != 0:
        raise RuntimeError(f"docker stack rm {stack}: {err.strip()}")
    engines = [lab.engine_host(n) for n in lab.all_nodes]
    while count_containers(engines, label=f"{NS}={stack}", every_state=True):
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"containers of {stack} left after {timeout}s")
        time.sleep(0.25)
    took = time.monotonic() - t0
    for _ in range(40):  # the stack's networks go after its tasks
        rc, out, _, _ = docker_cli(lab.api_host, "network", "ls", "-q", "--filter",
                                   f"label={NS}={stack}")  # fmt: skip
        if not out.strip():
            break
        docker_cli(lab.api_host, "stack", "rm", stack)
        time.sleep(0.5)
    return took


def setup_lab(lab: BenchLab, args: argparse.Namespace, info: dict[str, Any]) -> None:
    lab.up()
    info.update(lab.timings)
    lab.wait_ready()
    if not args.no_prepull:
        info["prepull_s"] = lab.prepull(lab.image("busybox:1"), lab.all_nodes)
        info["prepull_s"] += lab.prepull(lab.image("whoami:1"), lab.all_nodes)


def run_many(lab: BenchLab, args: argparse.Namespace, res: dict[str, Any]) -> None:
    api, n = lab.api_host, args.services
    t0 = time.monotonic()
    res["many_cli_s"] = round(deploy(api, "big", many(lab.image("busybox:1"), n)), 2)
    first = None
    while True:
        done, total = stack_status(api, "big")
        now = time.monotonic() - t0
        if done and first is None:
            first = now
        if total == n and done == n:
            break
        if now > args.timeout:
            raise TimeoutError(f"{done}/{n} services running after {args.timeout}s")
        time.sleep(args.poll)
    res["many_all_running_s"] = round(now, 2)
    res["many_first_running_s"] = round(first or now, 2)
    log(f"  {n} services: CLI {res['many_cli_s']}s, all running {res['many_all_running_s']}s")
    res["many_rm_s"] = round(remove(lab, "big", args.timeout), 2)


def run_j3(lab: BenchLab, args: argparse.Namespace, res: dict[str, Any], key: str,
           replicas: int, host_mode: bool) -> None:  # fmt: skip
    api = lab.api_host
    addrs = [lab.addr(n) for n in lab.all_nodes]
    t0 = time.monotonic()
    res[f"{key}_cli_s"] = round(
        deploy(api, "getstartedlab", getstartedlab(lab.image("whoami:1"), replicas, host_mode)), 2
    )
    seen: dict[str, float] = {}
    while len(seen) < len(addrs):
        for a in addrs:
            if a not in seen and answers(a):
                seen[a] = round(time.monotonic() - t0, 2)
        if time.monotonic() - t0 > args.timeout:
            raise TimeoutError(f":4000 answers on {sorted(seen)} only after {args.timeout}s")
        time.sleep(args.poll)
    res[f"{key}_every_node_s"] = max(seen.values())
    res[f"{key}_first_node_s"] = min(seen.values())
    log(f"  J3 ({key}): :4000 on every node after {res[f'{key}_every_node_s']}s")
    res[f"{key}_rm_s"] = round(remove(lab, "getstartedlab", args.timeout), 2)


def run_round(lab: BenchLab, args: argparse.Namespace, res: dict[str, Any]) -> None:
    run_many(lab, args, res)
    time.sleep(args.settle)
    run_j3(lab, args, res, "j3_host", len(lab.all_nodes), host_mode=True)
    if lab.system == "shoal":
        time.sleep(args.settle)
        run_j3(lab, args, res, "j3_mesh", 8, host_mode=False)
    res["tasks_on"] = json.loads(json.dumps(lab.containers_by_node()))
