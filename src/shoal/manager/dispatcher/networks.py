"""What each node's network data plane must know, computed from the store (pure): the swarm
networks it has — those of its tasks, and every attachable one — and every endpoint on them,
wherever it is, with the names it answers to in DNS while its task runs.

An endpoint on a node that is down is left out, so every other node drops its forwarding
entries as soon as the node is marked down; a task's names go once it stops running.
"""

from __future__ import annotations

from collections.abc import Iterable

from shoal.api import template
from shoal.api.models import Network, Node, Service, Task
from shoal.api.naming import container_name
from shoal.api.states import TaskState
from shoal.rpc.messages import EndpointRecord, NetworkPlan, NetworkState
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
    )


def has_endpoint(task: Task) -> bool:
    """The task holds its addresses and is, or may soon be, on a node."""
    return (
        task.status.state >= TaskState.ASSIGNED
        and task.status.state <= TaskState.RUNNING
        and task.desired_state <= TaskState.COMPLETE
        and bool(task.node_id)
    )


def task_names(
    task: Task, service: Service | None, network_id: str, node: Node | None = None
) -> list[str]:
    """Docker's names for a running task on one network: the service's name, `tasks.<name>`,
    the task's own name, its aliases on that network, and its hostname (`--hostname`,
    placeholders expanded as on its node)."""
    if task.status.state != TaskState.RUNNING:
        return []
    name = service.spec.name if service is not None else task.service_id
    names = [name, f"tasks.{name}", container_name(task, name)]
    for attachment in task.spec.networks or []:
        if attachment.target == network_id:
            names += attachment.aliases or []
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


def state_for(store: Store, node_id: str, all_endpoints: list[EndpointRecord]) -> NetworkState:
    """The node's `NetworkState`: its networks, and the endpoints on them."""
    wanted = {n.id for n in store.networks() if n.spec.attachable}
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
    return NetworkState(networks=plans, endpoints=sorted(mine, key=lambda e: (e.network_id, e.ip)))
