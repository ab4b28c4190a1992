"""The allocator: gives services their endpoint and moves new tasks to `pending`.

Host-mode published ports need no allocation: the service's `Endpoint.Ports` repeats them, and
its `Endpoint.Spec` records the endpoint spec they came with (a service without any keeps an
empty one, as Docker shows it: `allocated_endpoint_spec`). The ingress routing mesh and overlay
networks (VIPs, task addresses) are allocated here once shoal has networking; until then the
control API refuses specs that need them.
"""

from __future__ import annotations

from collections.abc import Callable

from shoal.api.models import Endpoint, EndpointSpec, Service, Task, allocated_endpoint_spec
from shoal.api.states import TaskState
from shoal.store.store import Event, Store


def endpoint_for(spec: EndpointSpec | None) -> Endpoint:
    spec = allocated_endpoint_spec(spec)
    ports = [p.model_copy() for p in spec.ports or []]
    return Endpoint(spec=spec, ports=ports or None)


def needs_endpoint(service: Service) -> bool:
    return service.endpoint != endpoint_for(service.spec.endpoint_spec)


class Allocator:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def run(self) -> None:
        queue = self.store.subscribe()
        try:
            await self.tick(list(self.store.services()), list(self.store.tasks()))
            while True:
                events = await queue.get()
                while not queue.empty():
                    events.extend(queue.get_nowait())
                services, tasks = _changed(events)
                await self.tick(services, tasks)
        finally:
            self.store.unsubscribe(queue)

    async def tick(self, services: list[Service], tasks: list[Task]) -> None:
        fix = {s.id: _allocate_endpoint for s in services if needs_endpoint(s)}
        if fix:
            await self.store.modify(Service, fix)
        pending = {}
        for t in tasks:
            service = self.store.get(Service, t.service_id)
            if (
                t.status.state == TaskState.NEW
                and t.desired_state <= TaskState.COMPLETE  # (a job's task: complete)
                and service is not None
                and not needs_endpoint(service)
            ):
                pending[t.id] = _to_pending(service.endpoint)
        if pending:
            await self.store.modify(Task, pending)


def _changed(events: list[Event]) -> tuple[list[Service], list[Task]]:
    services: dict[str, Service] = {}
    tasks: dict[str, Task] = {}
    for ev in events:
        if ev.new is None:
            continue
        if ev.kind == "services":
            services[ev.id] = ev.new
        elif ev.kind == "tasks" and ev.new.status.state == TaskState.NEW:
            tasks[ev.id] = ev.new
    return list(services.values()), list(tasks.values())


def _allocate_endpoint(service: Service) -> bool:
    service.endpoint = endpoint_for(service.spec.endpoint_spec)
    return True


def _to_pending(endpoint: Endpoint | None) -> Callable[[Task], bool]:
    def apply(task: Task) -> bool:
        if task.status.state != TaskState.NEW:
            return False
        task.status.state = TaskState.PENDING
        task.status.message = "pending task scheduling"
        task.endpoint = endpoint
        return True

    return apply
