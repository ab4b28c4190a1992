"""Swarm networks in the control API: validate, write the spec; the allocator gives each its
VXLAN ID and, where the user gave none, a subnet from the swarm's address pool. A create
answers once that is done, so `docker network inspect` right after shows the subnet."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from typing import Any

from shoal.api.errors import (
    AlreadyExists,
    BadRequest,
    FailedPrecondition,
    Forbidden,
    InvalidArgument,
    NameTaken,
    NotFound,
)
from shoal.api.models import Network, Node, Service, spec_from_create
from shoal.api.naming import new_id
from shoal.api.states import TaskState
from shoal.manager.controlapi.filters import Filters
from shoal.manager.controlapi.lookup import resolve
from shoal.store.store import Store

log = logging.getLogger(__name__)

PREDEFINED = ("bridge", "host", "none")
ALLOCATION_WAIT = 2.0  # seconds a create waits for the allocator, at most


def get(store: Store, ref: str) -> Network:
    return resolve(ref, lambda id: store.get(Network, id), store.networks(), lambda n: n.name,
                   "network")  # fmt: skip


def find(store: Store, ref: str) -> Network | None:
    """The swarm network `ref` names (ID, name, ID prefix), or None."""
    try:
        return get(store, ref)
    except NotFound:
        return None


def list_networks(store: Store, filters: Filters) -> list[Network]:
    filters.check({"id", "name", "label", "driver", "scope", "type", "dangling"})
    out = []
    for n in store.networks():
        if not filters.match_prefix("id", n.id) or not filters.match_prefix("name", n.name):
            continue
        if not filters.match_labels(n.spec.labels):
            continue
        driver = (
            n.spec.driver_configuration.name if n.spec.driver_configuration else ""
        ) or "overlay"
        if not filters.match_exact("driver", driver):
            continue
        if "scope" in filters and "swarm" not in filters["scope"]:
            continue
        if "type" in filters and "custom" not in filters["type"]:
            continue
        out.append(n)
    return out


def validate(store: Store, body: Any) -> Network:
    if not isinstance(body, dict):
        raise BadRequest("invalid JSON: the body must be a network create request")
    name = body.get("Name") or ""
    if not name:
        raise InvalidArgument("meta: name must be provided")
    if name in PREDEFINED:
        raise Forbidden(f"{name} is a pre-defined network and cannot be created")
    labels = body.get("Labels") or {}
    if "com.docker.swarm.internal" in labels:
        raise Forbidden(
            "label com.docker.swarm.internal is for predefined internal networks and cannot be "
            "applied by users"
        )
    if body.get("EnableIPv6"):
        raise InvalidArgument("IPv6 overlay networks are not supported by this shoal version yet")
    if (body.get("Options") or {}).get("encrypted") is not None:
        raise InvalidArgument(
            "encrypted overlay networks are not supported here: this kernel has neither IPsec "
            "(ESP with AEAD ciphers) nor WireGuard; create the network without --opt encrypted"
        )
    spec = spec_from_create(body)
    if spec.ingress:  # `docker network create --ingress`: one of them, never attachable
        present = next((n for n in store.networks() if n.spec.ingress), None)
        if present is not None:
            raise AlreadyExists(f"ingress network ({present.id}) is already present")
        if spec.attachable:
            raise InvalidArgument("ingress network cannot be attachable")
    ipam = spec.ipam_options
    if ipam is not None:
        if ipam.driver is not None and ipam.driver.name not in ("", "default"):
            raise InvalidArgument("invalid IPAM specified")
        for conf in ipam.configs or []:
            _check_ipam_config(conf.subnet or "", conf.range, conf.gateway)
            _check_overlaps(store, conf.subnet or "")
    if any(n.name == name for n in store.networks()):
        raise AlreadyExists(f"network {name} already exists")
    return Network(id=new_id(), spec=spec)


def _check_ipam_config(subnet: str, ip_range: str | None, gateway: str | None) -> None:
    """swarmkit's `validateIPAMConfiguration`, with its messages."""
    try:
        net = ipaddress.ip_network(subnet, strict=False)
    except ValueError:
        raise InvalidArgument(f"ipam configuration: invalid subnet {subnet}") from None
    if net.version != 4:
        raise InvalidArgument("IPv6 overlay networks are not supported by this shoal version yet")
    if ip_range:
        try:
            start = ipaddress.ip_network(ip_range, strict=False).network_address
        except ValueError:
            raise InvalidArgument(f"ipam configuration: invalid range {ip_range}") from None
        if start not in net:
            raise InvalidArgument(
                f"ipam configuration: subnet {subnet} does not contain range {ip_range}"
            )
    if gateway:
        try:
            ip = ipaddress.ip_address(gateway)
        except ValueError:
            raise InvalidArgument(f"ipam configuration: invalid gateway {gateway}") from None
        if ip not in net:
            raise InvalidArgument(
                f"ipam configuration: subnet {subnet} does not contain gateway {gateway}"
            )


def _check_overlaps(store: Store, subnet: str) -> None:
    wanted = ipaddress.ip_network(subnet, strict=False)
    for n in store.networks():
        used = n.subnet()
        if used is not None and used.subnet:
            if wanted.overlaps(ipaddress.ip_network(used.subnet, strict=False)):
                raise InvalidArgument(
                    f"invalid pool request: Pool overlaps with other one on this address "
                    f"space: {subnet} overlaps {used.subnet} of network {n.name}"
                )


async def create(store: Store, body: Any) -> Network:
    network = validate(store, body)
    events = store.subscribe()
    try:
        try:
            await store.create(network)
        except NameTaken:  # created meanwhile, through another manager
            raise AlreadyExists(f"network {network.name} already exists") from None
        log.info("network %s (%s) created", network.name, network.id)

        async def allocated() -> None:
            while True:
                current = store.get(Network, network.id)
                if current is None or current.allocated():
                    return
                await events.get()

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(allocated(), ALLOCATION_WAIT)
    finally:
        store.unsubscribe(events)
    return store.get(Network, network.id) or network


def peers(store: Store, network: Network) -> list[dict[str, str]]:
    """The nodes the network runs on (`docker network inspect`'s `Peers`): those with a task
    or an attached container on it."""
    node_ids = {a.node_id for a in store.attachments() if a.network_id == network.id}
    for t in store.tasks():
        if (
            t.node_id
            and t.desired_state <= TaskState.COMPLETE
            and any(
                (a.network_ or {}).get("ID") == network.id for a in t.networks_attachments or []
            )
        ):
            node_ids.add(t.node_id)
    out = []
    for node_id in sorted(node_ids):
        node = store.get(Node, node_id)
        if node is not None and node.status.addr:
            name = (node.description.hostname if node.description else None) or node_id
            out.append({"Name": name, "IP": node.status.addr})
    return out


def in_use(store: Store, network: Network) -> str | None:
    """Why the network cannot be removed (swarmkit's words), or None: a service uses it, or
    a task that still runs; the ingress network, a service that publishes ingress ports."""
    if network.spec.ingress:
        for s in store.services():
            if s.spec.endpoint_spec is not None and s.spec.endpoint_spec.publishes_ingress():
                return f"ingress network cannot be removed because service {s.id} depends on it"
        return None
    for s in store.services():
        if network.id in targets(s):
            return f"network {network.name} is in use by service {s.id}"
    services = {s.id for s in store.services()}
    for t in store.tasks():
        # swarmkit: a task that is, and is meant to be, running at most. A task whose service
        # is gone is not counted: the orchestrator is about to shut it down (swarmkit's does
        # it at once, in memory; `docker stack rm` removes the networks right after the
        # services), and the node removes the network once its containers are gone
        if (
            t.service_id in services
            and t.desired_state <= TaskState.RUNNING
            and t.status.state <= TaskState.RUNNING
            and any(
                (a.network_ or {}).get("ID") == network.id for a in t.networks_attachments or []
            )
        ):
            return f"network {network.name} is in use by task {t.id}"
    return None


def targets(service: Service) -> set[str]:
    """The network IDs a service's tasks are attached to."""
    nets = service.spec.task_template.networks or service.spec.networks or []
    return {n.target for n in nets}


async def remove(store: Store, ref: str) -> None:
    network = get(store, ref)
    refused = in_use(store, network)
    if refused is not None:
        raise FailedPrecondition(refused)
    await store.delete(network)
    log.info("network %s (%s) removed", network.name, network.id)


async def prune(store: Store, filters: Filters) -> list[str]:
    """Remove the swarm networks no service or task uses; their names."""
    gone = []
    for n in list_networks(store, filters):
        if not n.spec.ingress and in_use(store, n) is None:
            await store.delete(n)
            gone.append(n.name)
    return gone
