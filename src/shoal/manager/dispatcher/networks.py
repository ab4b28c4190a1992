"""What each node's network data plane must know, computed from the store (pure): the swarm
networks it has — those of its tasks, every attachable one, the ingress network — every
endpoint on them, wherever it is, with the names it answers to in DNS while its task runs,
and the services balanced on them (their VIPs, their ingress ports, their tasks in rotation).

An endpoint on a node that is down is left out, so every other node drops its forwarding
entries as soon as the node is marked down; a task's names go, and it leaves every rotation,
once it is told to stop (its forwarding entries stay while it still runs: flows to it finish).
"""

from __future__ import annotations

from collections.abc import Iterable

from shoal.api import template
from shoal.api.labels import LOCAL_PORTS_LABEL
from shoal.api.models import Network, Node, Service, Task
from shoal.api.naming import container_name
from shoal.api.states import TaskState
from shoal.rpc.messages import (
    Backend,
    Balancer,
    EndpointRecord,
    IngressPort,
    NetworkPlan,
    NetworkState,
)
from shoal.store.store import Store

MTU = 1450  # a 1500-byte underlay minus VXLAN's 50


def plan_of(network: Network) -> NetworkPlan | None:
    conf = network.subnet()
    if network.vni is None or conf is None or not conf.subnet or not conf.gateway:
        return None  # not allocated yet
    return NetworkPlan(
        id=network.id,
        name=network.name,
        vni=network.vni,
        subnet=conf.subnet,
        gateway=conf.gateway,
        internal=bool(network.spec.internal),
        attachable=bool(network.spec.attachable),
        mtu=MTU,
        labels=network.spec.labels or {},
        ingress=bool(network.spec.ingress),
    )


def has_endpoint(task: Task) -> bool:
    """The task holds its addresses and is, or may soon be, on a node: until it ended, or,
    told to stop before it runs, at once."""
    return (
        TaskState.ASSIGNED <= task.status.state <= TaskState.RUNNING
        and (task.desired_state <= TaskState.COMPLETE or task.status.state == TaskState.RUNNING)
        and bool(task.node_id)
    )


def serving(task: Task) -> bool:
    """The task gets traffic (names, rotations): running (healthy, where it has a
    healthcheck: it is `running` only then) and not told to stop."""
    return task.status.state == TaskState.RUNNING and task.desired_state <= TaskState.COMPLETE


def ingress_ports(service: Service) -> list[IngressPort]:
    """The ports the routing mesh publishes for the service (as allocated)."""
    endpoint = service.endpoint
    return [
        IngressPort(
            protocol=p.protocol or "tcp",  # type: ignore[arg-type]
            published=p.published_port,
            target=p.target_port or 0,
            local=p.published_port in local_ports(service),
        )
        for p in (endpoint.ports if endpoint is not None else None) or []
        if (p.publish_mode or "ingress") == "ingress" and p.published_port
    ]


def local_ports(service: Service) -> set[int]:
    """Published ports whose traffic stays on the receiving node, the client's address kept
    (the service label `LOCAL_PORTS_LABEL`: published port numbers, comma-separated)."""
    raw = (service.spec.labels or {}).get(LOCAL_PORTS_LABEL, "")
    return {int(p) for p in raw.replace(" ", "").split(",") if p.isdigit()}


def in_rotation(store: Store, task: Task) -> bool:
    """Is the task a backend of some balancer (its service has a VIP or an ingress port)?"""
    service = store.get(Service, task.service_id)
    if service is None or service.endpoint is None:
        return False
    return bool(service.endpoint.virtual_ips) or bool(ingress_ports(service))


def task_names(
    task: Task, service: Service | None, network_id: str, node: Node | None = None
) -> list[str]:
    """Docker's names for a running task on one network: the service's name, `tasks.<name>`,
    the task's own name, its aliases on that network, and its hostname (`--hostname`,
    placeholders expanded as on its node)."""
    if not serving(task):
        return []
    name = service.spec.name if service is not None else task.service_id
    aliases = service_aliases(service, task, network_id)
    names = [] if vip_of(service, network_id) else [name, *aliases]  # else: the VIP's names
    names += [f"tasks.{name}", *(f"tasks.{a}" for a in aliases), container_name(task, name)]
    spec = task.spec.container_spec
    if spec is not None and spec.hostname:
        labels = service.spec.labels if service is not None else None
        ctx = template.for_task(task, name, labels, node.description if node else None)
        hostname = template.expand(spec.hostname, ctx)
        if "{{" not in hostname:
            names.append(hostname)
    return list(dict.fromkeys(names))


def endpoints(store: Store, tasks: Iterable[Task], nodes: dict[str, Node]) -> list[EndpointRecord]:
    """Every endpoint of every task and attached container on a node that is up."""
    out = []
    for a in store.attachments():
        node = nodes.get(a.node_id)
        if a.address and node is not None and node.status.state != "down" and node.status.addr:
            out.append(
                EndpointRecord(
                    network_id=a.network_id, ip=a.address.split("/")[0],
                    node_addr=node.status.addr, names=a.names or [],
                )
            )  # fmt: skip
    for t in tasks:
        if not t.networks_attachments or not has_endpoint(t):
            continue
        node = nodes.get(t.node_id or "")
        if node is None or node.status.state == "down" or not node.status.addr:
            continue
        service = store.get(Service, t.service_id)
        for att in t.networks_attachments:
            net_id = (att.network_ or {}).get("ID", "")
            for cidr in att.addresses or []:
                out.append(
                    EndpointRecord(
                        network_id=net_id,
                        ip=cidr.split("/")[0],
                        node_addr=node.status.addr,
                        names=task_names(t, service, net_id, node),
                        task_id=t.id,
                    )
                )
    return out


def state_for(
    store: Store,
    node_id: str,
    all_endpoints: list[EndpointRecord],
    all_balancers: list[Balancer] | None = None,
) -> NetworkState:
    """The node's `NetworkState`: its networks, the endpoints and balancers on them, and its
    own address on the ingress network."""
    wanted = {n.id for n in store.networks() if n.spec.attachable or n.spec.ingress}
    for t in store.tasks_on(node_id):
        if has_endpoint(t):
            wanted.update((a.network_ or {}).get("ID", "") for a in t.networks_attachments or [])
    plans = []
    for net_id in sorted(wanted):
        network = store.get(Network, net_id)
        plan = plan_of(network) if network is not None else None
        if plan is not None:
            plans.append(plan)
    ids = {p.id for p in plans}
    mine = [e for e in all_endpoints if e.network_id in ids]
    ingress = next((p.id for p in plans if p.ingress), None)
    address = next(
        (a.address for a in store.attachments()
         if a.node_id == node_id and a.network_id == ingress and a.address),
        "",
    ) if ingress else ""  # fmt: skip
    return NetworkState(
        networks=plans,
        endpoints=sorted(mine, key=lambda e: (e.network_id, e.ip)),
        balancers=[b for b in all_balancers or [] if b.network_id in ids],
        ingress_address=address or "",
    )


def service_aliases(service: Service | None, task: Task, network_id: str) -> list[str]:
    """The aliases the task's service has on the network (`--network name=N,alias=A`)."""
    out: list[str] = []
    for attachment in task.spec.networks or []:
        if attachment.target == network_id:
            out += attachment.aliases or []
    return out


def vip_of(service: Service | None, network_id: str) -> str:
    """The service's virtual IP on the network (no prefix length), "" for none."""
    endpoint = service.endpoint if service is not None else None
    for vip in (endpoint.virtual_ips if endpoint is not None else None) or []:
        if vip.get("NetworkID") == network_id and vip.get("Addr"):
            return str(vip["Addr"]).split("/")[0]
    return ""


def balancers(store: Store, tasks: Iterable[Task], nodes: dict[str, Node]) -> list[Balancer]:
    """Every service balanced on a network: its VIP there (and on the ingress network its
    ports), and its tasks in rotation — serving, on a node that is up."""
    by_service: dict[str, list[Task]] = {}
    for t in tasks:
        node = nodes.get(t.node_id or "")
        if serving(t) and node is not None and node.status.state != "down" and node.status.addr:
            by_service.setdefault(t.service_id, []).append(t)
    out = []
    for service in store.services():
        endpoint = service.endpoint
        if endpoint is None or not endpoint.virtual_ips:
            continue
        ports = ingress_ports(service)
        for vip in endpoint.virtual_ips:
            net_id = str(vip.get("NetworkID") or "")
            network = store.get(Network, net_id)
            if network is None or not vip.get("Addr"):
                continue
            ingress = bool(network.spec.ingress)
            backends = [
                Backend(task_id=t.id, ip=ip, node_addr=nodes[t.node_id or ""].status.addr or "")
                for t in by_service.get(service.id, [])
                if (ip := address_on(t, net_id))
            ]
            aliases = [] if ingress else vip_aliases(service, net_id)
            out.append(
                Balancer(
                    service_id=service.id, network_id=net_id,
                    vip=str(vip["Addr"]).split("/")[0],
                    names=[] if ingress else [service.spec.name, *aliases],
                    ports=ports if ingress else [],
                    backends=sorted(backends, key=lambda b: b.ip),
                )
            )  # fmt: skip
    return sorted(out, key=lambda b: (b.network_id, b.service_id))


def vip_aliases(service: Service, network_id: str) -> list[str]:
    out: list[str] = []
    for attachment in service.spec.task_template.networks or service.spec.networks or []:
        if attachment.target == network_id:
            out += attachment.aliases or []
    return out


def address_on(task: Task, network_id: str) -> str:
    for att in task.networks_attachments or []:
        if (att.network_ or {}).get("ID") == network_id and att.addresses:
            return att.addresses[0].split("/")[0]
    return ""
