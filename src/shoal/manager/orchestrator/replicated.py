"""Replicated services, pure: slots 1..N, scaled up with the lowest free numbers and down in
SwarmKit's order; each slot is then reconciled by `slots.reconcile_slots`."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from shoal.api.models import Service, Task
from shoal.api.states import TaskState
from shoal.manager.orchestrator.plan import Plan, runnable
from shoal.manager.orchestrator.slots import NodeOk, occupied, reconcile_slots, slot_order
from shoal.manager.orchestrator.times import NOT_SEEN, TaskTimes
from shoal.manager.orchestrator.update import Slot


def replicas_of(service: Service) -> int:
    rep = service.spec.mode.replicated
    return 1 if rep is None or rep.replicas is None else rep.replicas


def reconcile_replicated(
    service: Service,
    tasks: Iterable[Task],
    node_ok: NodeOk,
    now: float,
    times: TaskTimes = NOT_SEEN,
) -> Plan:
    slots: dict[Slot, list[Task]] = defaultdict(list)
    for t in tasks:
        slots[t.slot or 0].append(t)
    want = wanted_slots(service, slots, node_ok)
    return reconcile_slots(service, slots, node_ok, now, want, times)


def wanted_slots(service: Service, slots: dict[Slot, list[Task]], node_ok: NodeOk) -> set[Slot]:
    """The slot numbers the service should have: the live ones, trimmed or topped up to the
    replica count. Scale-down removes slots whose tasks are not running first, then those on
    the nodes with the most tasks of the service, then the highest numbers."""
    replicas = replicas_of(service)
    live = {s for s, ts in slots.items() if s and occupied(ts, service)}
    if len(live) > replicas:
        # Each slot is the n-th copy on its node (lowest slot numbers first); removing the
        # highest copies first leaves the nodes balanced, as SwarmKit does.
        by_node: dict[str | None, list[Slot]] = defaultdict(list)
        for slot in live:
            ts = [t for t in slots[slot] if runnable(t)]
            by_node[ts[-1].node_id if ts else None].append(slot)
        rank = {
            slot: n
            for group in by_node.values()
            for n, slot in enumerate(sorted(group, key=slot_order), start=1)
        }

        def removal_order(slot: Slot) -> tuple[int, int, int]:
            running = any(
                runnable(t) and t.status.state == TaskState.RUNNING and node_ok(t.node_id)
                for t in slots[slot]
            )
            return (int(running), -rank[slot], -int(slot))

        ordered = sorted(live, key=removal_order)
        return set(ordered[len(live) - replicas :])
    wanted = set(live)
    n = 1
    while len(wanted) < replicas:
        if n not in wanted:
            wanted.add(n)
        n += 1
    return wanted
