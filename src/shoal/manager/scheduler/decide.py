"""The pure scheduling decisions: which node gets each task, or why none can.

`schedule_group` places a group of identical tasks (one service, one spec); `fit_preassigned`
checks a task whose node was chosen by someone else (global services); `group_tasks` splits
a queue of unassigned tasks into such groups. Everything here is synchronous and does no
I/O: the caller (the scheduler loop) owns the NodeInfos, feeds them store events between
ticks, and writes the decisions back to the store.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from shoal.api.models import Task
from shoal.manager.scheduler.nodeinfo import NodeInfo, footprint
from shoal.manager.scheduler.pipeline import Pipeline, no_suitable_node
from shoal.manager.scheduler.spread import SpreadTree

__all__ = ["fit_preassigned", "group_tasks", "schedule_group"]


def schedule_group(
    tasks: list[Task],
    nodes: Mapping[str, NodeInfo],
    now: float,
    *,
    pipeline: Pipeline | None = None,
) -> tuple[dict[str, str], dict[str, str]]:
    """Choose a node for each task of a group of identical tasks.

    `tasks` must share service and spec (the first one is used to set up the filters);
    they are placed in list order. `nodes` maps node ID → NodeInfo for every node of the
    cluster. `now` (POSIX seconds) is used to count recent failures.

    Returns `(assigned, errors)`: task ID → node ID for the placed tasks, and task ID →
    `Status.Err` (`"no suitable node (…)"`) for the tasks no node can take. Every placed
    task is added to its NodeInfo (as given, still without NodeID) so that the next choice,
    and the next group, see its resources, host ports and counts. When the store later
    reports the assigned task, `add_task` it again (it is recognised by ID); if writing the
    decision fails, `remove_task` it from the node.
    """
    if not tasks:
        return {}, {}
    first = tasks[0]
    if pipeline is None:
        pipeline = Pipeline()
    pipeline.set_task(first)
    placement = first.spec.placement
    prefs = placement.preferences if placement is not None else None
    tree = SpreadTree(nodes.values(), first.service_id, prefs, pipeline, now)
    fp = footprint(first)
    assigned: dict[str, str] = {}
    placed = 0
    for t in tasks:
        ni = tree.place(t, fp)
        if ni is None:
            break
        assigned[t.id] = ni.node.id
        placed += 1
    errors: dict[str, str] = {}
    if placed < len(tasks):
        # No node fits any more: count, over every node, the first filter it fails.
        pipeline.reset()
        for ni in nodes.values():
            pipeline.process(ni)
        err = no_suitable_node(pipeline.explain())
        for t in tasks[placed:]:
            errors[t.id] = err
    return assigned, errors


def fit_preassigned(task: Task, node: NodeInfo, *, pipeline: Pipeline | None = None) -> str | None:
    """Check a task that already has its node (global services) against the filters.

    Returns None and adds the task to `node` if it fits; otherwise the explanation alone,
    e.g. "insufficient resources on 1 node" (swarmkit sets it as `Status.Err` and leaves
    the task pending on that node, without the "no suitable node" prefix).
    """
    if pipeline is None:
        pipeline = Pipeline()
    pipeline.set_task(task)
    if not pipeline.process(node):
        return pipeline.explain()
    node.add_task(task)
    return None


def group_tasks(tasks: Iterable[Task]) -> list[list[Task]]:
    """Split tasks into groups with the same service and an equal spec, keeping order."""
    by_service: dict[str, list[list[Task]]] = {}
    order: list[list[Task]] = []
    for t in tasks:
        groups = by_service.setdefault(t.service_id, [])
        for g in groups:
            if g[0].spec is t.spec or g[0].spec == t.spec:
                g.append(t)
                break
        else:
            g = [t]
            groups.append(g)
            order.append(g)
    return order
