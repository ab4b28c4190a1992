"""The lab's swarm: ``swarm init`` on the first manager, ``swarm join`` for the others.

Through each node's shoald socket, as ``docker swarm init/join`` would. Other managers join
one at a time (each changes the etcd membership), workers together. A failed join is
recorded in the node's state (``swarm``: ``join failed: …``) and returned, never hidden.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from shoal.lab.api import api_json, error_message
from shoal.lab.node import LabNode
from shoal.lab.state import LabError


def swarm_info(docker_host: str, timeout: float = 5.0) -> dict[str, Any]:
    status, info = api_json(docker_host, "GET", "/info", timeout=timeout)
    if status != 200 or not isinstance(info, dict):
        raise LabError(f"GET /info: HTTP {status}: {error_message(info)}")
    swarm: dict[str, Any] = info.get("Swarm") or {}
    return swarm


def make_swarm(
    managers: list[LabNode],
    workers: list[LabNode],
    save: Callable[[], None],
    progress: Callable[[str], None],
) -> list[str]:
    """``swarm init`` on the first manager unless it is in a swarm; then the joins. Returns
    the errors (failed joins), which are also recorded in the nodes' state (`save` writes
    it)."""
    errors: list[str] = []
    first = managers[0]
    info = swarm_info(first.docker_host)
    if info.get("LocalNodeState") != "active":
        status, answer = api_json(
            first.docker_host,
            "POST",
            "/swarm/init",
            {"ListenAddr": "0.0.0.0:2377", "AdvertiseAddr": first.state.addr},
            timeout=60.0,
        )
        if status != 200:
            raise LabError(f"swarm init on {first.state.name}: {error_message(answer)}")
        first.state.swarm = "init"
        progress(f"{first.state.name}: swarm initialised, advertising {first.state.addr}:2377")
    save()
    status, sw = api_json(first.docker_host, "GET", "/swarm", timeout=10.0)
    if status != 200:
        raise LabError(f"GET /swarm on {first.state.name}: {error_message(sw)}")
    tokens = sw.get("JoinTokens") or {}
    remote = f"{first.state.addr}:2377"

    def join(node: LabNode, token: str) -> None:
        try:
            if swarm_info(node.docker_host).get("LocalNodeState") in ("active", "pending"):
                return
            status, answer = api_json(
                node.docker_host,
                "POST",
                "/swarm/join",
                {
                    "ListenAddr": "0.0.0.0:2377",
                    "AdvertiseAddr": node.state.addr,
                    "RemoteAddrs": [remote],
                    "JoinToken": token,
                },
                timeout=120.0,
            )
            if status != 200:
                raise LabError(f"HTTP {status}: {error_message(answer)}")
        except Exception as e:  # noqa: BLE001 - recorded and reported
            node.state.swarm = f"join failed: {e}"
            errors.append(f"{node.state.name}: swarm join failed: {e}")
            progress(f"{node.state.name}: swarm join FAILED: {e}")
        else:
            node.state.swarm = "joined"
            progress(f"{node.state.name}: joined the swarm")
        save()

    for m in managers[1:]:  # one at a time: each changes the etcd membership
        join(m, tokens.get("Manager", ""))
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda w: join(w, tokens.get("Worker", "")), workers))
    return errors
