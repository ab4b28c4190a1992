"""`shoal lab ls`: what each node of a lab is doing, asked of the machine and the daemons."""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from shoal.lab.api import ping
from shoal.lab.lab import Lab
from shoal.lab.node import LabNode
from shoal.lab.state import LabError, LabState, check_name, load
from shoal.lab.swarm import swarm_info


@dataclass
class LabNodeStatus:
    name: str
    role: str
    addr: str
    state: str  # running | stopped | killed | dockerd down | shoald down | host down
    swarm: str
    docker_host: str
    partitioned: bool
    note: str = ""  # e.g. why the join failed


def status(name: str) -> tuple[LabState, list[LabNodeStatus]]:
    st = load(check_name(name))
    if st is None:
        raise LabError(f"no lab {name!r} (see `shoal lab ls --all`)")
    lab = Lab(st)
    nodes = lab.nodes()

    def one(node: LabNode) -> LabNodeStatus:
        s = node.state
        host, dockerd = node.host_running, node.dockerd_running and ping(node.engine.host)
        shoald = node.shoald_running and ping(node.docker_host)
        if not host:
            state = "host down"
        elif dockerd and shoald:
            state = "running"
        elif not dockerd and not shoald:
            state = "stopped"
        else:
            state = "shoald down" if dockerd else "dockerd down"
        failed = s.swarm.startswith("join failed")
        swarm = "join failed" if failed else "-"
        if shoald:
            with contextlib.suppress(Exception):
                info = swarm_info(node.docker_host, timeout=3.0)
                local = info.get("LocalNodeState") or "inactive"
                if local == "active":
                    swarm = "manager" if info.get("ControlAvailable") else "worker"
                    failed = False
                elif not failed:
                    swarm = local
        if s.partitioned:
            state += ", partitioned"
        note = s.swarm if failed else ""
        return LabNodeStatus(
            s.name, s.role, s.addr, state, swarm, st.docker_host(s.name), s.partitioned, note
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        return st, list(pool.map(one, nodes))
