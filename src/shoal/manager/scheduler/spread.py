"""Spreading a task group over nodes: node ranking and the placement-preference tree.

Swarmkit (`scheduler.go` `nodeLess`, `nodeset.go` `tree`, `decision_tree.go`) ranks nodes for
a service by

1. recent failures of the service on the node, but only once a node has ≥ `MAX_FAILURES`
   of them within `MONITOR_FAILURES` (such a node goes last; more failures, further back);
2. fewer active tasks of the service;
3. fewer active tasks in total.

Placement preferences (`spread=node.labels.X`, `spread=engine.labels.X`) build a tree: one
level per preference, one branch per label value (nodes without the label share the ""
branch). Tasks are spread so that branch totals — the service's tasks already in the
branch plus those placed now — stay as even as possible; a branch whose nodes are all full
drops out and the rest share its part.

Swarmkit walks sorted node lists and computes per-branch quotas. This module makes the same
choices greedily, one task at a time, with heaps: at every tree level it descends into the
branch with the fewest tasks of the service, and in a leaf takes the best-ranked node. That
is exactly "water filling" (the most even spread reachable), costs O(log n) per task, and
only ever re-ranks the one node that just got a task. Filters are checked lazily when a node
comes to the top of its heap: a node's fitness changes only when a task is placed on it.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from typing import Any

from shoal.api.constraints import ENGINE_LABEL_PREFIX, NODE_LABEL_PREFIX
from shoal.api.models import Node, PlacementPreference, Task
from shoal.manager.scheduler.nodeinfo import MAX_FAILURES, Footprint, NodeInfo
from shoal.manager.scheduler.pipeline import Pipeline

__all__ = ["SpreadTree", "node_rank", "spread_getters"]

LabelGetter = Callable[[Node], str]


def node_rank(node: NodeInfo, service_id: str, now: float) -> tuple[int, int, int]:
    """Sort key equivalent to swarmkit's `nodeLess`: smaller is better."""
    failures = node.count_recent_failures(service_id, now) if node.recent_failures else 0
    return (
        failures if failures >= MAX_FAILURES else 0,
        node.active_tasks_count_by_service.get(service_id, 0),
        node.active_tasks_count,
    )


def _node_label(key: str) -> LabelGetter:
    def get(n: Node) -> str:
        return (n.spec.labels or {}).get(key, "")

    return get


def _engine_label(key: str) -> LabelGetter:
    def get(n: Node) -> str:
        d = n.description
        e = d.engine if d is not None else None
        return ((e.labels or {}) if e is not None else {}).get(key, "")

    return get


def spread_getters(prefs: Iterable[PlacementPreference] | None) -> list[LabelGetter]:
    """One label lookup per usable `spread` preference; others are ignored (as swarmkit)."""
    out: list[LabelGetter] = []
    for pref in prefs or ():
        desc = (pref.spread or {}).get("SpreadDescriptor", "")
        low = desc.lower()
        if len(desc) > len(NODE_LABEL_PREFIX) and low.startswith(NODE_LABEL_PREFIX):
            out.append(_node_label(desc[len(NODE_LABEL_PREFIX) :]))
        elif len(desc) > len(ENGINE_LABEL_PREFIX) and low.startswith(ENGINE_LABEL_PREFIX):
            out.append(_engine_label(desc[len(ENGINE_LABEL_PREFIX) :]))
    return out


class _Tree:
    """A subtree: `count` tasks of the service in it; children (by label value) or nodes."""

    __slots__ = ("count", "children", "heap")

    def __init__(self) -> None:
        self.count = 0
        self.children: dict[str, _Tree] | None = None
        # branch: (count, value, child) for children that may still have room
        # leaf:   (penalty, by_service, total, seq, NodeInfo), fitness checked on pop
        self.heap: list[tuple[Any, ...]] = []


class SpreadTree:
    """Chooses nodes, one task at a time, for a group of identical tasks of one service.

    `pipeline` must already be `set_task` for the group. Placing a task updates its NodeInfo
    (`add_task`) so resources, host ports and MaxReplicas count for the next choice.
    """

    def __init__(
        self,
        nodes: Iterable[NodeInfo],
        service_id: str,
        preferences: Iterable[PlacementPreference] | None,
        pipeline: Pipeline,
        now: float,
    ) -> None:
        self.service_id = service_id
        self.pipeline = pipeline
        self.now = now
        self.root = root = _Tree()
        sid = service_id
        # (penalty, tasks of the service, all tasks, seq, node): smaller is better
        entries = [
            (
                self._penalty(ni) if ni.recent_failures else 0,
                ni.active_tasks_count_by_service.get(sid, 0),
                ni.active_tasks_count,
                seq,
                ni,
            )
            for seq, ni in enumerate(nodes)
        ]
        self._seq = len(entries)
        getters = spread_getters(preferences)
        if not getters:
            root.heap = entries
            heapq.heapify(entries)
            return
        leaves: list[_Tree] = []
        for e in entries:
            by_service = e[1]
            t = root
            for get in getters:
                t.count += by_service
                if t.children is None:
                    t.children = {}
                value = get(e[4].node)
                child = t.children.get(value)
                if child is None:
                    child = t.children[value] = _Tree()
                t = child
            t.count += by_service
            if not t.heap:
                leaves.append(t)
            t.heap.append(e)
        for leaf in leaves:
            heapq.heapify(leaf.heap)
        self._link(root)

    def _penalty(self, ni: NodeInfo) -> int:
        failures = ni.count_recent_failures(self.service_id, self.now)
        return failures if failures >= MAX_FAILURES else 0

    def _link(self, t: _Tree) -> bool:
        """Fill branch heaps bottom-up; True if the subtree holds any node."""
        if t.children is None:
            return bool(t.heap)
        t.heap = [(c.count, v, c) for v, c in t.children.items() if self._link(c)]
        heapq.heapify(t.heap)
        return bool(t.heap)

    def place(self, task: Task, fp: Footprint | None = None) -> NodeInfo | None:
        """Put `task` on the best node that fits, or return None if no node fits any more."""
        process = self.pipeline.process
        sid = self.service_id
        while self.root.heap:
            # descend through the branches with the fewest tasks of the service
            path: list[tuple[_Tree, str, _Tree]] = []
            t = self.root
            while t.children is not None:
                if not t.heap:
                    break
                _count, value, child = heapq.heappop(t.heap)
                path.append((t, value, child))
                t = child
            chosen: NodeInfo | None = None
            if t.children is None:
                heap = t.heap
                while heap:
                    entry = heapq.heappop(heap)
                    if process(entry[4]):
                        chosen = entry[4]
                        break
            if chosen is not None:
                chosen.add_task(task, fp)
                # back in the heap with its new rank; its filters are re-checked when it
                # comes to the top again (the penalty does not change within a group)
                self._seq += 1
                heapq.heappush(
                    t.heap,
                    (
                        entry[0],
                        chosen.active_tasks_count_by_service.get(sid, 0),
                        chosen.active_tasks_count,
                        self._seq,
                        chosen,
                    ),
                )
                t.count += 1
                for parent, value, child in reversed(path):
                    parent.count += 1
                    if child.heap:
                        heapq.heappush(parent.heap, (child.count, value, child))
                return chosen
            # this leaf is full: drop it, put the branches above back, and retry
            for parent, value, child in reversed(path):
                if child.heap:
                    heapq.heappush(parent.heap, (child.count, value, child))
            if not path:
                return None
        return None
