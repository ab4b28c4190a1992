"""Tasks in the control API: read-only for users."""

from __future__ import annotations

from shoal.api.models import Service, Task, up_to_date
from shoal.api.naming import task_name
from shoal.manager.controlapi.filters import Filters
from shoal.manager.controlapi.lookup import resolve
from shoal.store.store import Store


def get(store: Store, ref: str) -> Task:
    return resolve(ref, lambda id: store.get(Task, id), store.tasks(), lambda t: None, "task")


def display_name(store: Store, task: Task) -> str:
    service = store.get(Service, task.service_id)
    name = service.spec.name if service else task.service_id
    return task_name(name, task.slot, task.node_id, task.id).rsplit(".", 1)[0]


def list_tasks(store: Store, filters: Filters) -> list[Task]:
    filters.check({"id", "name", "service", "node", "label", "desired-state", "_up-to-date"})
    if "service" in filters:
        wanted: set[str] = set()
        for ref in filters["service"]:
            wanted.update(
                s.id for s in store.services() if s.id.startswith(ref) or s.spec.name == ref
            )
        candidates = [t for sid in wanted for t in store.tasks_of(sid)]
    else:
        candidates = list(store.tasks())
    nodes = {}
    if "node" in filters:
        for ref in filters["node"]:
            for n in store.nodes():
                if (
                    n.id.startswith(ref)
                    or n.spec.name == ref
                    or (n.description is not None and n.description.hostname == ref)
                ):
                    nodes[n.id] = n
    out = []
    for t in candidates:
        if not filters.match_prefix("id", t.id):
            continue
        if "node" in filters and t.node_id not in nodes:
            continue
        if "desired-state" in filters and t.desired_state not in filters["desired-state"]:
            continue
        service = store.get(Service, t.service_id)
        if "label" in filters and not filters.match_labels(
            service.spec.labels if service else None
        ):
            continue
        if "name" in filters and not filters.match_prefix("name", display_name(store, t)):
            continue
        if "_up-to-date" in filters:
            if service is None or not up_to_date(t, service):
                continue
        out.append(t)
    return out
