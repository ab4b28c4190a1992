"""Scheduler filters: can this task run on that node? (swarmkit `manager/scheduler/filter.go`)

Each filter is set up once per task group (`set_task`, which returns False when the filter
does not apply to the task and must be skipped), then checked against many nodes (`check`),
and explains its failures in swarmkit's exact words (`explain`), e.g.
"insufficient resources on 3 nodes".
"""

from __future__ import annotations

from typing import Any, Protocol

from shoal.api.constraints import Constraint, ConstraintError, node_matches, parse_constraints
from shoal.api.models import Task
from shoal.manager.scheduler.nodeinfo import Footprint, NodeInfo, footprint

__all__ = [
    "ConstraintFilter",
    "Filter",
    "HostPortFilter",
    "MaxReplicasFilter",
    "PlatformFilter",
    "PluginFilter",
    "ReadyFilter",
    "ResourceFilter",
    "default_filters",
]


class Filter(Protocol):
    def set_task(self, task: Task) -> bool:
        """Prepare for `task`; False means the filter does not apply and is skipped."""
        ...

    def check(self, node: NodeInfo) -> bool:
        """True if the task given to `set_task` can run on `node`."""
        ...

    def explain(self, nodes: int) -> str:
        """What failing on `nodes` nodes means, in swarmkit's words."""
        ...


def _on(nodes: int, what: str) -> str:
    return f"{what} on 1 node" if nodes == 1 else f"{what} on {nodes} nodes"


class ReadyFilter:
    """The node is up and accepts new tasks. Always applies, always first."""

    def set_task(self, task: Task) -> bool:
        return True

    def check(self, node: NodeInfo) -> bool:
        n = node.node
        return n.status.state == "ready" and n.spec.availability == "active"

    def explain(self, nodes: int) -> str:
        if nodes == 1:
            return "1 node not available for new tasks"
        return f"{nodes} nodes not available for new tasks"


class ResourceFilter:
    """The node has the task's reserved CPUs, memory and generic resources still free."""

    def __init__(self) -> None:
        self._fp: Footprint | None = None

    def set_task(self, task: Task) -> bool:
        fp = footprint(task)
        if not (fp.nano_cpus or fp.memory_bytes or fp.generic):
            return False
        self._fp = fp
        return True

    def check(self, node: NodeInfo) -> bool:
        fp = self._fp
        assert fp is not None
        if fp.nano_cpus > node.available_nano_cpus:
            return False
        if fp.memory_bytes > node.available_memory_bytes:
            return False
        if fp.generic:
            avail = node.available_generic
            for kind, amount in fp.generic:
                if amount > avail.get(kind, 0):
                    return False
        return True

    def explain(self, nodes: int) -> str:
        return _on(nodes, "insufficient resources")


# Network drivers every node has: the engine's built-ins, and overlay which shoal provides.
_BUILTIN_NETWORK_DRIVERS = frozenset({"overlay", "bridge", "host", "null", "ipvlan", "macvlan"})


def _field(obj: Any, key: str) -> Any:
    """A key of a Docker JSON object (the models keep these fields as dicts); None otherwise."""
    return obj.get(key) if isinstance(obj, dict) else None


class PluginFilter:
    """The node's engine has the volume, network and log-driver plugins the task uses."""

    def __init__(self) -> None:
        self._needs: list[tuple[str, str]] = []  # (plugin type, name)

    def set_task(self, task: Task) -> bool:
        needs: list[tuple[str, str]] = []
        c = task.spec.container_spec
        for m in (c.mounts if c is not None else None) or ():
            if m.type == "volume":
                config = m.volume_options.driver_config if m.volume_options else None
                drv = config.name if config is not None else None
                if drv and drv != "local":
                    needs.append(("Volume", drv))
        for att in task.networks_attachments or ():
            state = att.network().driver_state
            drv = state.name if state is not None else None
            if drv and drv not in _BUILTIN_NETWORK_DRIVERS:
                needs.append(("Network", drv))
        log = task.spec.log_driver
        name = _field(log, "Name")
        if name and name != "none":
            needs.append(("Log", name))
        self._needs = needs
        return bool(needs)

    @staticmethod
    def _exists(kind: str, name: str, plugins: list[dict[str, str]]) -> tuple[bool, bool]:
        """(a plugin of this type is listed, this plugin is listed)."""
        type_found = False
        for p in plugins:
            if p.get("Type") != kind:
                continue
            type_found = True
            pname = p.get("Name", "")
            if pname == name or pname == name + ":latest":
                return True, True
        return type_found, False

    def check(self, node: NodeInfo) -> bool:
        d = node.node.description
        if d is None or d.engine is None:
            return True  # no engine description: plugins not known, don't filter
        plugins = d.engine.plugins or []
        for kind, name in self._needs:
            type_found, exists = self._exists(kind, name, plugins)
            if exists:
                continue
            # An engine that lists no log drivers at all predates reporting them.
            if kind == "Log" and not type_found:
                continue
            return False
        return True

    def explain(self, nodes: int) -> str:
        return _on(nodes, "missing plugin")


# ---------------------------------------------------------------- constraints


class ConstraintFilter:
    """The node satisfies the task's `Placement.Constraints`."""

    def __init__(self) -> None:
        self._constraints: list[Constraint] = []

    def set_task(self, task: Task) -> bool:
        p = task.spec.placement
        if p is None or not p.constraints:
            return False
        try:
            self._constraints = parse_constraints(p.constraints)
        except ConstraintError:
            return False  # validated by the API; a bad one disables the filter (swarmkit)
        return True

    def check(self, node: NodeInfo) -> bool:
        return node_matches(self._constraints, node.node)

    def explain(self, nodes: int) -> str:
        return _on(nodes, "scheduling constraints not satisfied")


_ARCH_ALIASES = {"x86_64": "amd64", "aarch64": "arm64"}


class PlatformFilter:
    """The node's OS/architecture is one of the task's `Placement.Platforms`."""

    def __init__(self) -> None:
        self._platforms: list[tuple[str, str]] = []  # (arch, os), "" = any

    def set_task(self, task: Task) -> bool:
        p = task.spec.placement
        if p is None or not p.platforms:
            return False
        self._platforms = [
            (_ARCH_ALIASES.get(pl.architecture or "", pl.architecture or ""), pl.os or "")
            for pl in p.platforms
        ]
        return True

    def check(self, node: NodeInfo) -> bool:
        d = node.node.description
        np = d.platform if d is not None else None
        if np is None:
            return False
        arch = _ARCH_ALIASES.get(np.architecture or "", np.architecture or "")
        os_ = np.os or ""
        return any((a == "" or a == arch) and (o == "" or o == os_) for a, o in self._platforms)

    def explain(self, nodes: int) -> str:
        return _on(nodes, "unsupported platform")


class HostPortFilter:
    """None of the task's host-mode published ports is already used on the node."""

    def __init__(self) -> None:
        self._ports: tuple[tuple[str, int], ...] = ()

    def set_task(self, task: Task) -> bool:
        fp = footprint(task)
        self._ports = fp.host_ports
        return bool(self._ports)

    def check(self, node: NodeInfo) -> bool:
        used = node.used_host_ports
        return not any(p in used for p in self._ports)

    def explain(self, nodes: int) -> str:
        return _on(nodes, "host-mode port already in use")


class MaxReplicasFilter:
    """The node runs fewer than `Placement.MaxReplicas` active tasks of the service."""

    def __init__(self) -> None:
        self._service_id = ""
        self._max = 0

    def set_task(self, task: Task) -> bool:
        p = task.spec.placement
        if p is None or not p.max_replicas or p.max_replicas <= 0:
            return False
        self._service_id = task.service_id
        self._max = p.max_replicas
        return True

    def check(self, node: NodeInfo) -> bool:
        return node.active_tasks_count_by_service.get(self._service_id, 0) < self._max

    def explain(self, nodes: int) -> str:
        return "max replicas per node limit exceed"  # sic, swarmkit's text, no count


def default_filters() -> list[Filter]:
    """Swarmkit's filters in swarmkit's order (readiness first)."""
    return [
        ReadyFilter(),
        ResourceFilter(),
        PluginFilter(),
        ConstraintFilter(),
        PlatformFilter(),
        HostPortFilter(),
        MaxReplicasFilter(),
    ]
