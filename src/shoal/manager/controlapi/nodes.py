"""Nodes in the control API: inspect, update the user-owned spec, remove."""

from __future__ import annotations

from typing import Any

from shoal.api.errors import BadRequest, FailedPrecondition, OutOfSequence, Unimplemented
from shoal.api.models import Node, NodeSpec
from shoal.api.validation import validate_node_spec
from shoal.manager.controlapi.filters import Filters
from shoal.manager.controlapi.lookup import resolve
from shoal.store.store import Store


def node_name(n: Node) -> str | None:
    return n.spec.name or (n.description.hostname if n.description else None)


def get(store: Store, ref: str) -> Node:
    return resolve(ref, lambda id: store.get(Node, id), store.nodes(), node_name, "node")


def list_nodes(store: Store, filters: Filters) -> list[Node]:
    filters.check({"id", "name", "label", "node.label", "membership", "role"})
    out = []
    for n in store.nodes():
        if not filters.match_prefix("id", n.id):
            continue
        if not filters.match_prefix("name", node_name(n) or ""):
            continue
        engine_labels = (
            n.description.engine.labels if n.description and n.description.engine else None
        )
        if not filters.match_labels(engine_labels):
            continue
        if not filters.match_labels(n.spec.labels, "node.label"):
            continue
        if not filters.match_exact("role", n.spec.role):
            continue
        if "membership" in filters and "accepted" not in filters["membership"]:
            continue
        out.append(n)
    return out


async def update(store: Store, ref: str, version: int | None, body: Any) -> Node:
    node = get(store, ref)
    if not isinstance(body, dict):
        raise BadRequest("invalid JSON: the body must be a node spec object")
    validate_node_spec(body)
    if version != node.version.index:
        raise OutOfSequence()
    spec = NodeSpec.from_api(body)
    if spec.role != node.spec.role:
        managers = [n for n in store.nodes() if n.spec.role == "manager"]
        if spec.role == "worker" and len(managers) <= 1:
            raise FailedPrecondition("attempting to demote the last manager of the swarm")
        if spec.role == "manager":
            raise Unimplemented(
                "promoting nodes to managers is not supported by this shoal version yet"
            )
    node = node.model_copy(deep=True)
    node.spec = spec
    return await store.update(node)


async def remove(store: Store, ref: str, force: bool) -> None:
    node = get(store, ref)
    if node.spec.role == "manager" or (node.manager_status is not None):
        raise FailedPrecondition(
            f"node {node.id} is a cluster manager and is a member of the raft cluster. "
            "It must be demoted to worker before removal"
        )
    if node.status.state != "down" and not force:
        raise FailedPrecondition(f"node {node.id} is not down and can't be removed")
    await store.delete(node)
