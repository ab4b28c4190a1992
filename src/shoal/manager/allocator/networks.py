"""The allocator's network state: which subnets, VXLAN IDs and addresses are in use, decided
here, written by the allocator loop. Decisions happen once (an address is taken when decided,
not when a write succeeds), so a retried write never takes a second address."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from shoal.api.models import (
    Attachment,
    Driver,
    IPAMConfig,
    IPAMOptions,
    Network,
    NetworkAttachment,
    Service,
    Swarm,
    Task,
)
from shoal.api.models.networks import VXLAN_ID_OPTION
from shoal.api.states import TaskState
from shoal.manager.allocator.ipam import (
    Addresses,
    PoolExhausted,
    Subnets,
    VNIs,
    default_gateway,
)

log = logging.getLogger(__name__)

Change = Callable[[Network], bool]


def publishes_ingress(service: Service) -> bool:
    spec = service.spec.endpoint_spec
    return spec is not None and spec.publishes_ingress()


def vip_networks(service: Service, ingress: str | None) -> list[str]:
    """The networks the service gets a VIP on: in vip mode (the default), each of its
    networks, and the ingress network when it publishes ingress ports; none in dnsrr mode."""
    spec = service.spec.endpoint_spec
    if spec is not None and spec.mode == "dnsrr":
        return []
    nets = [t.target for t in service.spec.task_template.networks or []]
    if ingress is not None and publishes_ingress(service):
        nets = [ingress, *nets]
    return list(dict.fromkeys(nets))


def holds_addresses(task: Task) -> bool:
    """A task keeps its addresses until it ended (or was told to go before it got a node)."""
    if task.status.state > TaskState.RUNNING:
        return False
    return not (task.desired_state > TaskState.COMPLETE and task.status.state < TaskState.ASSIGNED)


class NetworkAllocations:
    def __init__(self, swarm: Swarm | None) -> None:
        pools = swarm.default_addr_pool if swarm is not None else None
        size = swarm.subnet_size if swarm is not None else None
        self.subnets = Subnets(pools, size)
        self.vnis = VNIs()
        self.addresses: dict[str, Addresses] = {}  # network ID → its addresses
        # task, attachment or service (VIPs) ID → its (network ID, ip)
        self.held: dict[str, list[tuple[str, str]]] = {}

    def load(
        self,
        networks: Iterable[Network],
        tasks: Iterable[Task],
        attached: Iterable[Attachment],
        services: Iterable[Service] = (),
    ) -> None:
        for n in networks:
            if n.allocated():
                self._adopt(n)
        for s in services:
            for vip in (s.endpoint.virtual_ips if s.endpoint else None) or []:
                net_id, ip = str(vip.get("NetworkID") or ""), str(vip.get("Addr") or "")
                space = self.addresses.get(net_id)
                if space is not None and ip:
                    space.reserve(ip.split("/")[0])
                    self.held.setdefault(s.id, []).append((net_id, ip.split("/")[0]))
        for t in tasks:
            if holds_addresses(t):
                for att in t.networks_attachments or []:
                    self._hold(t.id, att)
        for a in attached:
            space = self.addresses.get(a.network_id)
            if a.address and space is not None:
                ip = a.address.split("/")[0]
                space.reserve(ip)
                self.held[a.id] = [(a.network_id, ip)]

    def _adopt(self, n: Network) -> None:
        conf = n.subnet()
        assert conf is not None and conf.subnet and conf.gateway and n.vni is not None
        self.subnets.reserve(conf.subnet)
        self.vnis.reserve(n.vni)
        self.addresses[n.id] = Addresses(conf.subnet, conf.gateway, conf.range)

    def _hold(self, task_id: str, att: NetworkAttachment) -> None:
        net_id = (att.network_ or {}).get("ID", "")
        space = self.addresses.get(net_id)
        for cidr in att.addresses or []:
            ip = cidr.split("/")[0]
            if space is not None:
                space.reserve(ip)
            self.held.setdefault(task_id, []).append((net_id, ip))

    # ------------------------------------------------------------------ networks

    def allocate(self, n: Network) -> Change | None:
        """The change that allocates network `n` (None: it cannot be, logged)."""
        given = (n.spec.ipam_options.configs if n.spec.ipam_options else None) or []
        try:
            if given and given[0].subnet:
                conf = given[0]
                clash = self.subnets.overlaps(conf.subnet or "")
                if clash is not None:
                    log.warning("network %s: subnet %s overlaps %s", n.name, conf.subnet, clash)
                    return None
                subnet = conf.subnet or ""
                self.subnets.reserve(subnet)
                gateway = conf.gateway or default_gateway(subnet)
                ip_range = conf.range
            else:
                subnet = self.subnets.next()
                gateway, ip_range = default_gateway(subnet), None
            vni = self.vnis.next()
        except PoolExhausted as e:
            log.warning("network %s: %s", n.name, e)
            return None
        self.addresses[n.id] = Addresses(subnet, gateway, ip_range)
        driver = (
            n.spec.driver_configuration.name if n.spec.driver_configuration else ""
        ) or "overlay"
        options = {VXLAN_ID_OPTION: str(vni)}
        ipam = IPAMOptions(
            driver=Driver(name="default"),
            configs=[IPAMConfig(subnet=subnet, range=ip_range, gateway=gateway)],
        )

        def apply(net: Network) -> bool:
            if net.allocated():
                return False
            net.driver_state = Driver(name=driver, options=options)
            net.ipam_options = ipam
            return True

        return apply

    def forget(self, n: Network) -> None:
        """The network was removed."""
        self.addresses.pop(n.id, None)
        conf = n.subnet()
        if conf is not None and conf.subnet:
            self.subnets.release(conf.subnet)
        if n.vni is not None:
            self.vnis.release(n.vni)

    # ------------------------------------------------------------------ tasks

    def attach(
        self, task: Task, service: Service, networks: dict[str, Network], ingress: str | None
    ) -> list[NetworkAttachment] | None:
        """The task's attachments, an address on each of its service's networks (the ingress
        network first when the service publishes ingress ports); None while a network is not
        allocated yet (ask again later). Decided once per task."""
        targets = [t.target for t in service.spec.task_template.networks or []]
        if ingress is not None and publishes_ingress(service):
            targets = [ingress, *targets]
        if not targets:
            return []
        nets = [networks.get(t) for t in dict.fromkeys(targets)]
        if any(n is None or n.id not in self.addresses for n in nets):
            return None
        held = dict(self.held.get(task.id, []))
        out = []
        for n in nets:
            assert n is not None
            space = self.addresses[n.id]
            if n.id not in held:
                try:
                    held[n.id] = space.allocate()
                except PoolExhausted as e:
                    log.warning("task %s: %s", task.id, e)
                    return None
                self.held.setdefault(task.id, []).append((n.id, held[n.id]))
            address = f"{held[n.id]}/{space.prefixlen}"
            out.append(
                NetworkAttachment.model_validate({"Network": n.to_api(), "Addresses": [address]})
            )
        return out

    def vips(self, service: Service, network_ids: list[str]) -> list[dict[str, str]] | None:
        """The service's VIPs (`Endpoint.VirtualIPs`) on these networks: those it has, new
        ones on networks it has none on; those on other networks are free again. None while
        a network is not allocated (or full, logged; nothing taken then)."""
        if any(n not in self.addresses for n in network_ids):
            return None
        had = dict(self.held.get(service.id, []))
        got: dict[str, str] = {}
        try:
            for net_id in network_ids:
                got[net_id] = had.get(net_id) or self.addresses[net_id].allocate()
        except PoolExhausted as e:
            log.warning("service %s: %s", service.spec.name, e)
            for net_id, ip in got.items():
                if had.get(net_id) != ip:
                    self.addresses[net_id].release(ip)
            return None
        for net_id, ip in had.items():
            if got.get(net_id) != ip and net_id in self.addresses:
                self.addresses[net_id].release(ip)
        self.held[service.id] = list(got.items())
        return [
            {"NetworkID": net_id, "Addr": f"{ip}/{self.addresses[net_id].prefixlen}"}
            for net_id, ip in got.items()
        ]

    def address_for(self, a: Attachment) -> str | None:
        """An attached container's address (CIDR), decided once; None while its network is
        not allocated (or full, logged)."""
        space = self.addresses.get(a.network_id)
        if space is None:
            return None
        held = self.held.get(a.id)
        if held:
            return f"{held[0][1]}/{space.prefixlen}"
        try:
            ip = space.allocate()
        except PoolExhausted as e:
            log.warning("attachment %s: %s", a.id, e)
            return None
        self.held[a.id] = [(a.network_id, ip)]
        return f"{ip}/{space.prefixlen}"

    def release(self, task_id: str) -> None:
        """The task (or attachment) ended or is gone: its addresses are free again."""
        for net_id, ip in self.held.pop(task_id, []):
            space = self.addresses.get(net_id)
            if space is not None:
                space.release(ip)
