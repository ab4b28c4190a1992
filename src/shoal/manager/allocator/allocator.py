"""The allocator: gives networks their VXLAN ID and subnet, services their endpoint (VIPs,
published ports), every node an address on the ingress network, and new tasks an address on
each of their networks, then moves them to `pending`.

A service's `Endpoint` is: `Spec`, the endpoint spec it was allocated for (a service that
never had ports, nor networks in vip mode, keeps an empty one, as Docker shows it:
`allocated_endpoint_spec`);
`Ports`, the spec's with the ingress ports given as 0 allocated (`ports.PublishedPorts`);
`VirtualIPs`, one per network in vip mode, the ingress network's first when it publishes
ingress ports. Addresses of tasks that ended are free again at once (the task keeps showing
the address it had).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from shoal.api.models import (
    Attachment,
    Endpoint,
    Network,
    NetworkAttachment,
    PortConfig,
    Service,
    Task,
    allocated_endpoint_spec,
    endpoint_kept,
    is_ingress,
)
from shoal.api.naming import new_id
from shoal.api.states import TaskState
from shoal.manager.allocator.networks import NetworkAllocations, holds_addresses, vip_networks
from shoal.manager.allocator.ports import PortsExhausted, PublishedPorts
from shoal.store.store import Event, Store

log = logging.getLogger(__name__)

INGRESS_ENDPOINT = "ingress-sbox"  # a node's own attachment to the ingress network (Docker's)


def ingress_network(store: Store) -> Network | None:
    return next((n for n in store.networks() if n.spec.ingress), None)


def needs_endpoint(service: Service, ingress: str | None) -> bool:
    """The service's endpoint is not (yet) the one its spec asks for."""
    e = service.endpoint
    spec = service.spec.endpoint_spec
    networks = bool(service.spec.task_template.networks)
    if e is None or e.spec != allocated_endpoint_spec(spec, networks, kept=endpoint_kept(e)):
        return True
    vips = [str(v.get("NetworkID")) for v in e.virtual_ips or []]
    if vips != vip_networks(service, ingress):
        return True
    return not _ports_match((spec.ports if spec else None) or [], e.ports or [])


def _ports_match(wanted: list[PortConfig], have: list[PortConfig]) -> bool:
    if len(wanted) != len(have):
        return False
    for w, h in zip(wanted, have, strict=True):
        if w.model_copy(update={"published_port": None}) != h.model_copy(
            update={"published_port": None}
        ):
            return False
        if w.published_port and w.published_port != h.published_port:
            return False
        if is_ingress(w) and not h.published_port:
            return False
    return True


class Allocator:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.networks = NetworkAllocations(None)
        self.ports = PublishedPorts()

    async def run(self) -> None:
        queue = self.store.subscribe()
        try:
            while self.store.swarm() is None:  # (`swarm init` writes it after the store runs)
                await queue.get()
            self.networks = NetworkAllocations(self.store.swarm())
            services = list(self.store.services())
            self.networks.load(
                self.store.networks(), self.store.tasks(), self.store.attachments(), services
            )
            self.ports.load(services)
            await self.tick(list(self.store.networks()), services, list(self.store.tasks()))
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
            elif ev.kind in ("attachments", "services") and ev.new is None:
                self.networks.release(ev.id)  # (a service's: its VIPs)
                self.ports.release(ev.id)
            elif ev.kind == "networks" and ev.new is None and ev.old is not None:
                self.networks.forget(ev.old)

    async def tick(
        self, networks: list[Network], services: list[Service], tasks: list[Task]
    ) -> None:
        nets = {n.id: self.networks.allocate(n) for n in networks if not n.allocated()}
        fixed = {nid: change for nid, change in nets.items() if change is not None}
        if fixed:
            await self.store.modify(Network, fixed)
        ingress = ingress_network(self.store)
        ingress_id = ingress.id if ingress is not None else None
        fix = {}
        for s in services:
            if needs_endpoint(s, ingress_id) and (endpoint := self._endpoint(s, ingress_id)):
                fix[s.id] = _set_endpoint(endpoint)
        if fix:
            await self.store.modify(Service, fix)
        await self._node_attachments(ingress)
        by_id = {n.id: n for n in self.store.networks()}
        pending = {}
        for t in tasks:
            service = self.store.get(Service, t.service_id)
            if (
                t.status.state == TaskState.NEW
                and t.desired_state <= TaskState.COMPLETE  # (a job's task: complete)
                and service is not None
                and not needs_endpoint(service, ingress_id)
            ):
                attachments = self.networks.attach(t, service, by_id, ingress_id)
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

    def _endpoint(self, service: Service, ingress: str | None) -> Endpoint | None:
        """The endpoint the service's spec asks for now; None while a network it needs is not
        allocated yet, or nothing is free (logged)."""
        spec = service.spec.endpoint_spec
        networks = bool(service.spec.task_template.networks)
        vips = self.networks.vips(service, vip_networks(service, ingress))
        if vips is None:
            return None
        try:
            ports = self.ports.allocate(service)
        except PortsExhausted as e:
            log.warning("service %s: %s", service.spec.name, e)
            return None
        return Endpoint(
            spec=allocated_endpoint_spec(spec, networks, kept=endpoint_kept(service.endpoint)),
            ports=ports or None,
            virtual_ips=vips or None,
        )  # fmt: skip

    async def _node_attachments(self, ingress: Network | None) -> None:
        """Every node has an attachment to the ingress network (its own address there, from
        which the mesh reaches the tasks); a removed node's attachments go."""
        nodes = {n.id for n in self.store.nodes()}
        attachments = list(self.store.attachments())
        gone = [a for a in attachments if a.node_id not in nodes]
        for a in gone:
            await self.store.delete(a)
        if ingress is None:
            return
        have = {a.node_id for a in attachments if a.network_id == ingress.id}
        new = [
            Attachment(id=new_id(), node_id=n, network_id=ingress.id, endpoint=INGRESS_ENDPOINT)
            for n in sorted(nodes - have)
        ]
        if new:
            await self.store.create_all(new)


def _changed(events: list[Event], store: Store) -> tuple[list[Network], list[Service], list[Task]]:
    """What a batch of events gives the allocator to look at: new networks, changed
    services, new tasks — and, when a network got allocated, the services and tasks that
    may be waiting for it."""
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
        services.update({s.id: s for s in store.services()})
        tasks.update({t.id: t for t in store.tasks() if t.status.state == TaskState.NEW})
    return list(networks.values()), list(services.values()), list(tasks.values())


def _set_address(address: str) -> Callable[[Attachment], bool]:
    def apply(attachment: Attachment) -> bool:
        if attachment.address:
            return False
        attachment.address = address
        return True

    return apply


def _set_endpoint(endpoint: Endpoint) -> Callable[[Service], bool]:
    def apply(service: Service) -> bool:
        if service.endpoint == endpoint:
            return False
        service.endpoint = endpoint
        return True

    return apply


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
