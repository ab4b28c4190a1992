"""Nodes in the control API: inspect, update the user-owned spec, remove."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from shoal.api.errors import BadRequest, FailedPrecondition, OutOfSequence
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
    if spec.role == "worker" and node.spec.role == "manager":
        managers = [n for n in store.nodes() if n.spec.role == "manager"]
        if len(managers) <= 1:
            raise FailedPrecondition("attempting to demote the last manager of the swarm")
        if node.manager_status is not None and not can_remove_member(store.nodes(), node.id):
            raise FailedPrecondition(
                "can't remove member from the raft: this would result in a loss of quorum"
            )
    # Promotion is the role alone, as in SwarmKit: the node sees it on its session and joins
    # the managers (`ManagerStatus` stays null until its etcd member is added); a demoted
    # manager takes its member out of the cluster and comes back as a worker.
    node = node.model_copy(deep=True)
    node.spec = spec
    return await store.update(node)


def can_remove_member(nodes: Iterable[Node], node_id: str) -> bool:
    """Whether the managers left after taking `node_id` out would still be a quorum of the
    smaller cluster (SwarmKit's `CanRemoveMember`): the members are the nodes with a
    manager status; those that count are the reachable ones other than `node_id`. So an
    unreachable manager may go, and a reachable one may not while another is down."""
    members = [n for n in nodes if n.manager_status is not None]
    others = [
        n
        for n in members
        if n.id != node_id and n.manager_status and n.manager_status.reachability == "reachable"
    ]
    return len(others) >= (len(members) - 1) // 2 + 1


async def remove(store: Store, ref: str, force: bool) -> None:
    node = get(store, ref)
    if node.manager_status is not None:  # still an etcd member (SwarmKit: of the raft)
        raise FailedPrecondition(
            f"node {node.id} is a cluster manager and is a member of the raft cluster. "
            "It must be demoted to worker before removal"
        )
    if node.status.state != "down" and not force:
        raise FailedPrecondition(f"node {node.id} is not down and can't be removed")
    await store.delete(node)
