"""Services in the control API: validate, write the spec, nothing else. The orchestrators
and the allocator do the rest from the store; a create or update answers once the allocator
has given the service its endpoint, so the version a client reads next is the one to update.

Registry credentials (the client's `X-Registry-Auth`) go with the spec they came with, as
moby's `daemon/cluster/services.go` keeps them: a create stores them; an update stores new
ones, or — when it sends none — keeps those of the current spec (`registryAuthFrom=spec`, the
default) or takes those of the previous one (`previous-spec`); a rollback goes back to the
previous spec's. They are no part of the task spec: new credentials restart no task."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Iterator
from typing import Any

from shoal.api.errors import (
    AlreadyExists,
    BadRequest,
    DaemonError,
    FailedPrecondition,
    InvalidArgument,
    NameTaken,
    NotFound,
    OutOfSequence,
)
from shoal.api.models import (
    JobIteration,
    JobStatus,
    ReplicatedService,
    Service,
    ServiceSpec,
    ServiceStatus,
    UpdateStatus,
    now,
)
from shoal.api.naming import new_id, random_name
from shoal.api.states import TaskState
from shoal.api.validation import (
    check_port_conflicts,
    check_service_update,
    validate_service_spec,
)
from shoal.manager.controlapi import networks, secrets
from shoal.manager.controlapi.filters import Filters
from shoal.manager.controlapi.lookup import resolve
from shoal.store.store import Events, Store

log = logging.getLogger(__name__)

ALLOCATION_WAIT = 2.0  # seconds a create/update waits for the allocator, at most
ENGINE_NETWORKS = ("bridge", "host", "none", "docker_gwbridge")


def get(store: Store, ref: str) -> Service:
    return resolve(
        ref, lambda id: store.get(Service, id), store.services(), lambda s: s.spec.name, "service"
    )


def parse_spec(store: Store, body: Any) -> ServiceSpec:
    if not isinstance(body, dict):
        raise BadRequest("invalid JSON: the body must be a service spec object")
    validate_service_spec(body)
    try:
        spec = ServiceSpec.from_api(body)
    except ValueError as e:
        raise InvalidArgument(f"invalid service spec: {e}") from e
    _resolve_networks(store, spec)
    if spec.endpoint_spec is not None and not spec.endpoint_spec.mode:
        spec.endpoint_spec.mode = "vip"  # moby's conversion: "" is SwarmKit's 0, VIP
    if spec.endpoint_spec is not None and spec.endpoint_spec.publishes_ingress():
        if not any(n.spec.ingress for n in store.networks()):
            raise FailedPrecondition(
                "service needs ingress network, but no ingress network is present"
            )
    mode = spec.mode
    if mode.replicated is None and mode.kind == "replicated":
        mode.replicated = ReplicatedService(replicas=1)
    elif mode.replicated is not None and mode.replicated.replicas is None:
        mode.replicated.replicas = 1
    job = mode.replicated_job
    if job is not None:  # Docker's defaults: one at a time, as many in all as at a time
        if job.max_concurrent is None:
            job.max_concurrent = 1
        if job.total_completions is None:
            job.total_completions = job.max_concurrent
    return spec


def _resolve_networks(store: Store, spec: ServiceSpec) -> None:
    """Networks by name, ID or ID prefix become IDs (stacks send names), in `TaskTemplate`
    (the deprecated `Spec.Networks` moves there, as moby does); only swarm networks will do."""
    if spec.networks and not spec.task_template.networks:
        spec.task_template.networks, spec.networks = spec.networks, None
    for attachment in spec.task_template.networks or []:
        found = networks.find(store, attachment.target)
        if found is None:
            if attachment.target in ENGINE_NETWORKS:
                raise InvalidArgument(
                    f"The network {attachment.target} cannot be used with services. Only "
                    "networks scoped to the swarm can be used, such as those created with the "
                    "overlay driver."
                )
            raise NotFound(f"network {attachment.target} not found")
        attachment.target = found.id


def _name_taken(store: Store, name: str, except_id: str | None = None) -> bool:
    return any(s.spec.name == name and s.id != except_id for s in store.services())


def _exists(name: str) -> AlreadyExists:
    return AlreadyExists(f"name conflicts with an existing object: service {name} already exists")


def _check_ports(store: Store, spec: ServiceSpec, service_id: str = "") -> None:
    """Only a spec that publishes ports is checked, against only the services that have some
    (as Docker JSON: the shared check's input)."""
    if spec.endpoint_spec is None or not spec.endpoint_spec.ports:
        return
    check_port_conflicts(
        spec.to_api(),
        (s.to_api() for s in store.services() if _has_ports(s)),
        service_id=service_id,
    )


def _has_ports(service: Service) -> bool:
    return bool(
        (service.spec.endpoint_spec and service.spec.endpoint_spec.ports)
        or (service.endpoint and service.endpoint.ports)
    )


async def create(store: Store, body: Any, registry_auth: str | None = None) -> Service:
    if isinstance(body, dict) and not body.get("Name"):
        body = {**body, "Name": random_name()}
    spec = parse_spec(store, body)
    _check_ports(store, spec)
    secrets.check_references(store, spec.task_template.container_spec)
    if _name_taken(store, spec.name):
        raise _exists(spec.name)
    service = Service(id=new_id(), spec=spec, registry_auth=registry_auth or None)
    if spec.mode.kind.endswith("job"):
        service.job_status = JobStatus(job_iteration=JobIteration(index=0), last_execution=now())
    events = store.subscribe()
    try:
        try:
            created = await store.create(service)
        except NameTaken:  # created meanwhile, through another manager
            raise _exists(spec.name) from None
        log.info("service %s (%s) created", spec.name, service.id)
        return await _allocated(store, events, created)
    finally:
        store.unsubscribe(events)


def _kept_auth(service: Service, auth_from: str) -> str | None:
    """The credentials an update that sends none goes on with (moby's `registryAuthFrom`)."""
    if auth_from in ("spec", ""):
        return service.registry_auth
    if auth_from == "previous-spec":
        if service.previous_spec is None:
            raise DaemonError("service does not have a previous spec")
        return service.previous_registry_auth
    raise DaemonError("unsupported registryAuthFrom value")


async def update(
    store: Store,
    ref: str,
    version: int | None,
    body: Any,
    rollback: bool = False,
    registry_auth: str | None = None,
    auth_from: str = "spec",
) -> Service:
    service = get(store, ref)
    if version is None:
        raise BadRequest("invalid service version: version must be given")
    if version != service.version.index:
        raise OutOfSequence()
    auth = registry_auth or _kept_auth(service, auth_from)
    service = service.model_copy(deep=True)
    if rollback:
        if service.previous_spec is None:
            raise FailedPrecondition(f"service {service.id} does not have a previous spec")
        spec = service.previous_spec
        service.previous_spec = service.spec
        auth = service.previous_registry_auth  # the previous spec's, whatever was sent
        service.update_status = UpdateStatus(
            state="rollback_started", started_at=now(), message="manually requested rollback"
        )
    else:
        spec = parse_spec(store, body)
        secrets.check_references(store, spec.task_template.container_spec)
        check_service_update(service.spec.to_api(), spec.to_api())
        _check_ports(store, spec, service.id)
        service.previous_spec = service.spec
        service.update_status = None
    service.spec = spec
    service.previous_registry_auth = service.registry_auth
    service.registry_auth = auth or None
    if spec.mode.kind.endswith("job"):  # SwarmKit: every update of a job runs it again
        index = service.job_status.job_iteration.index + 1 if service.job_status else 0
        service.job_status = JobStatus(
            job_iteration=JobIteration(index=index), last_execution=now()
        )
    events = store.subscribe()
    try:
        updated = await store.update(service)
        log.info(
            "service %s (%s) %s", spec.name, service.id, "rolled back" if rollback else "updated"
        )
        return await _allocated(store, events, updated)
    finally:
        store.unsubscribe(events)


async def _allocated(store: Store, events: Events, service: Service) -> Service:
    """The service once the allocator has given it the endpoint its spec asks for (at most
    `ALLOCATION_WAIT`: without a leader, as it was written)."""

    async def settled() -> None:
        while True:
            current = store.get(Service, service.id)
            if current is None or current.endpoint_allocated():
                return
            await events.get()

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(settled(), ALLOCATION_WAIT)
    return store.get(Service, service.id) or service


async def remove(store: Store, ref: str) -> None:
    service = get(store, ref)
    await store.delete(service)
    log.info("service %s (%s) removed", service.spec.name, service.id)


def statuses(store: Store, services: Iterable[Service]) -> Iterator[ServiceStatus]:
    """`status` of each service, the nodes looked at once."""
    up = _nodes_up(store)
    return (status(store, s, up) for s in services)


def _nodes_up(store: Store) -> set[str]:
    return {n.id for n in store.nodes() if n.status.state != "down"}


def status(store: Store, service: Service, up: set[str] | None = None) -> ServiceStatus:
    """`ServiceStatus` as `GET /services?status=true` shows it (SwarmKit's
    `ListServiceStatuses`): desired is the replica count of a replicated service, the
    `MaxConcurrent` of a replicated job, and for global services and jobs the tasks still
    wanted; a job counts only the tasks of its current iteration. Running tasks on nodes
    that are down or gone do not count (`up`: the IDs of the others, if known)."""
    if up is None:
        up = _nodes_up(store)
    mode = service.spec.mode
    kind = mode.kind
    desired = 0
    if kind == "replicated" and mode.replicated is not None:
        desired = mode.replicated.replicas or 0
    elif kind == "replicated-job" and mode.replicated_job is not None:
        desired = mode.replicated_job.max_concurrent or 1
    is_global = kind in ("global", "global-job")
    iteration = service.job_status.job_iteration.index if service.job_status else None
    running = completed = 0
    for t in store.tasks_of(service.id):
        state = t.status.state
        if iteration is not None:
            if t.job_iteration is None or t.job_iteration.index != iteration:
                continue
            if state == TaskState.COMPLETE:
                completed += 1
        if state == TaskState.RUNNING and t.node_id in up:
            running += 1
        if is_global and t.desired_state == TaskState.RUNNING:
            desired += 1
        if is_global and state != TaskState.COMPLETE and t.desired_state == TaskState.COMPLETE:
            desired += 1
    return ServiceStatus(running_tasks=running, desired_tasks=desired, completed_tasks=completed)


def list_services(store: Store, filters: Filters) -> list[Service]:
    filters.check({"id", "name", "label", "mode"})
    out = []
    for s in store.services():
        if not filters.match_prefix("id", s.id):
            continue
        if not filters.match_prefix("name", s.spec.name):
            continue
        if not filters.match_labels(s.spec.labels):
            continue
        if "mode" in filters and s.spec.mode.kind not in filters["mode"]:
            continue
        out.append(s)
    return out
