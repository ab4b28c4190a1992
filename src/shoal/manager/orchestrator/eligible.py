"""Which nodes may hold a service's tasks, as the orchestrators see it (the scheduler checks
the rest: resources, ports, readiness)."""

from __future__ import annotations

from collections.abc import Iterable

from shoal.api.constraints import constraints_match
from shoal.api.models import Node, Service


def node_usable(node: Node) -> bool:
    """A node whose tasks stay where they are: not down, not drained."""
    return node.status.state != "down" and node.spec.availability != "drain"


def eligible_nodes(service: Service, nodes: Iterable[Node]) -> set[str]:
    """Nodes a global service (or global job) runs one task on."""
    placement = service.spec.task_template.placement
    constraints = (placement.constraints if placement else None) or []
    return {n.id for n in nodes if node_usable(n) and constraints_match(constraints, n)}
