"""Global services, pure: one slot per eligible node (the slot is the node ID), each
reconciled by `slots.reconcile_slots`."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from shoal.api.models import Service, Task
from shoal.manager.orchestrator.plan import Plan
from shoal.manager.orchestrator.slots import NodeOk, reconcile_slots
from shoal.manager.orchestrator.times import NOT_SEEN, TaskTimes
from shoal.manager.orchestrator.update import Slot


def reconcile_global(
    service: Service,
    tasks: Iterable[Task],
    eligible: set[str],
    node_ok: NodeOk,
    now: float,
    times: TaskTimes = NOT_SEEN,
) -> Plan:
    slots: dict[Slot, list[Task]] = defaultdict(list)
    for t in tasks:
        slots[t.node_id or ""].append(t)
    return reconcile_slots(service, slots, node_ok, now, set(eligible), times)
