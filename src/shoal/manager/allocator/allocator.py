"""The allocator: gives networks their VXLAN ID and subnet, services their endpoint, and new
tasks an address on each of their networks, then moves them to `pending`.

Host-mode published ports need no allocation: the service's `Endpoint.Ports` repeats them, and
its `Endpoint.Spec` records the endpoint spec they came with (a service without any keeps an
empty one, as Docker shows it: `allocated_endpoint_spec`). VIPs and the ingress routing mesh
come with shoal's routing mesh; until then the control API refuses specs that need them.
Addresses of tasks that ended are free again at once (the task keeps showing the address it
had).
"""

from __future__ import annotations

from collections.abc import Callable

from shoal.api.models import (
    Attachment,
    Endpoint,
    EndpointSpec,
    Network,
    NetworkAttachment,
    Service,
    Task,
    allocated_endpoint_spec,
)
from shoal.api.states import TaskState
from shoal.manager.allocator.networks import NetworkAllocations, holds_addresses
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
        self.networks = NetworkAllocations(store.swarm())

    async def run(self) -> None:
        queue = self.store.subscribe()
        try:
            self.networks.load(self.store.networks(), self.store.tasks(), self.store.attachments())
            await self.tick(
                list(self.store.networks()), list(self.store.services()), list(self.store.tasks())
            )
            while True:
                events = await queue.get()
                while not queue.empty():
                    events.extend(queue.get_nowait())
                self._release(events)
                await self.tick(*_changed(events, self.store))
        finally:
            self.store.unsubscribe(queue)

    def _release(self, events: list[Event]) -> None:
        for ev in events:
            if ev.kind == "tasks" and (ev.new is None or not holds_addresses(ev.new)):
                self.networks.release(ev.id)
            elif ev.kind == "attachments" and ev.new is None:
                self.networks.release(ev.id)
            elif ev.kind == "networks" and ev.new is None and ev.old is not None:
                self.networks.forget(ev.old)

    async def tick(
        self, networks: list[Network], services: list[Service], tasks: list[Task]
    ) -> None:
        nets = {n.id: self.networks.allocate(n) for n in networks if not n.allocated()}
        fixed = {nid: change for nid, change in nets.items() if change is not None}
        if fixed:
            await self.store.modify(Network, fixed)
        fix = {s.id: _allocate_endpoint for s in services if needs_endpoint(s)}
        if fix:
            await self.store.modify(Service, fix)
        by_id = {n.id: n for n in self.store.networks()}
        pending = {}
        for t in tasks:
            service = self.store.get(Service, t.service_id)
            if (
                t.status.state == TaskState.NEW
                and t.desired_state <= TaskState.COMPLETE  # (a job's task: complete)
                and service is not None
                and not needs_endpoint(service)
            ):
                attachments = self.networks.attach(t, service, by_id)
                if attachments is not None:
                    pending[t.id] = _to_pending(service.endpoint, attachments)
        if pending:
            await self.store.modify(Task, pending)
        addresses = {
            a.id: _set_address(address)
            for a in self.store.attachments()
            if not a.address and (address := self.networks.address_for(a)) is not None
        }
        if addresses:
            await self.store.modify(Attachment, addresses)


def _changed(events: list[Event], store: Store) -> tuple[list[Network], list[Service], list[Task]]:
    """What a batch of events gives the allocator to look at: new networks, changed
    services, new tasks — and, when a network got allocated, the tasks waiting for it."""
    networks: dict[str, Network] = {}
    services: dict[str, Service] = {}
    tasks: dict[str, Task] = {}
    for ev in events:
        if ev.new is None:
            continue
        if ev.kind == "networks":
            networks[ev.id] = ev.new
        elif ev.kind == "services":
            services[ev.id] = ev.new
        elif ev.kind == "tasks" and ev.new.status.state == TaskState.NEW:
            tasks[ev.id] = ev.new
    if networks:
        tasks.update({t.id: t for t in store.tasks() if t.status.state == TaskState.NEW})
    return list(networks.values()), list(services.values()), list(tasks.values())


def _set_address(address: str) -> Callable[[Attachment], bool]:
    def apply(attachment: Attachment) -> bool:
        if attachment.address:
            return False
        attachment.address = address
        return True

    return apply


def _allocate_endpoint(service: Service) -> bool:
    service.endpoint = endpoint_for(service.spec.endpoint_spec)
    return True


def _to_pending(
    endpoint: Endpoint | None, attachments: list[NetworkAttachment]
) -> Callable[[Task], bool]:
    def apply(task: Task) -> bool:
        if task.status.state != TaskState.NEW:
            return False
        task.status.state = TaskState.PENDING
        task.status.message = "pending task scheduling"
        task.endpoint = endpoint
        task.networks_attachments = attachments or None
        return True

    return apply
