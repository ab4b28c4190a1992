"""Builders for scheduler unit tests (Docker JSON in, models out)."""

from __future__ import annotations

from typing import Any

from shoal.api.models import Node, Task
from shoal.manager.scheduler import NodeInfo

GB = 1 << 30
CPU = 1_000_000_000


def node(
    nid: str,
    *,
    cpus: float = 4,
    mem: int = 8 * GB,
    labels: dict[str, str] | None = None,
    engine_labels: dict[str, str] | None = None,
    state: str = "ready",
    availability: str = "active",
    role: str = "worker",
    hostname: str | None = None,
    os: str = "linux",
    arch: str = "x86_64",
    addr: str = "10.0.0.1",
    plugins: list[dict[str, str]] | None = None,
    generic: list[dict[str, Any]] | None = None,
) -> Node:
    resources: dict[str, Any] = {"NanoCPUs": int(cpus * CPU), "MemoryBytes": mem}
    if generic:
        resources["GenericResources"] = generic
    engine: dict[str, Any] = {"EngineVersion": "24.0"}
    if engine_labels:
        engine["Labels"] = engine_labels
    if plugins is not None:
        engine["Plugins"] = plugins
    return Node.model_validate(
        {
            "ID": nid,
            "Spec": {"Labels": labels or {}, "Role": role, "Availability": availability},
            "Description": {
                "Hostname": hostname or f"host-{nid}",
                "Platform": {"Architecture": arch, "OS": os},
                "Resources": resources,
                "Engine": engine,
            },
            "Status": {"State": state, "Addr": addr},
        }
    )


def task(
    tid: str,
    service: str = "svc",
    *,
    cpus: float = 0,
    mem: int = 0,
    constraints: list[str] | None = None,
    spread: list[str] | None = None,
    max_replicas: int | None = None,
    platforms: list[dict[str, str]] | None = None,
    host_ports: list[int] | None = None,
    desired: str = "running",
    state: str = "pending",
    node_id: str | None = None,
    generic: list[dict[str, Any]] | None = None,
    log_driver: str | None = None,
) -> Task:
    spec: dict[str, Any] = {"ContainerSpec": {"Image": "busybox"}}
    if cpus or mem or generic:
        res: dict[str, Any] = {"NanoCPUs": int(cpus * CPU), "MemoryBytes": mem}
        if generic:
            res["GenericResources"] = generic
        spec["Resources"] = {"Reservations": res}
    placement: dict[str, Any] = {}
    if constraints:
        placement["Constraints"] = constraints
    if spread:
        placement["Preferences"] = [{"Spread": {"SpreadDescriptor": d}} for d in spread]
    if max_replicas:
        placement["MaxReplicas"] = max_replicas
    if platforms:
        placement["Platforms"] = platforms
    if placement:
        spec["Placement"] = placement
    if log_driver:
        spec["LogDriver"] = {"Name": log_driver}
    data: dict[str, Any] = {
        "ID": tid,
        "ServiceID": service,
        "Spec": spec,
        "Status": {"State": state},
        "DesiredState": desired,
    }
    if node_id:
        data["NodeID"] = node_id
    if host_ports:
        data["Endpoint"] = {
            "Ports": [
                {"Protocol": "tcp", "TargetPort": 80, "PublishedPort": p, "PublishMode": "host"}
                for p in host_ports
            ]
        }
    return Task.model_validate(data)


def infos(*nodes: Node) -> dict[str, NodeInfo]:
    return {n.id: NodeInfo(n) for n in nodes}


def tasks(n: int, service: str = "svc", prefix: str = "t", **kw: Any) -> list[Task]:
    return [task(f"{prefix}{i}", service, **kw) for i in range(n)]
