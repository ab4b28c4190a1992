"""Services (moby `swarm.Service`) and the task spec they carry: container, resources,
placement, restart and update policies, mode, endpoint; when two task specs mean the same."""

from __future__ import annotations

import json
from typing import Any

from pydantic import AliasChoices, Field, PrivateAttr

from shoal.api.defaults import TASK_DEFAULTS, merge_defaults
from shoal.api.models.base import GoJSON, Meta, Model
from shoal.api.models.mounts import Mount
from shoal.api.models.secrets import ConfigReference, SecretReference


class Resources(Model):
    nano_cpus: int | None = None
    memory_bytes: int | None = None
    pids: int | None = None
    generic_resources: list[Any] | None = None


class ResourceRequirements(Model):
    limits: Resources | None = None
    reservations: Resources | None = None


class RestartPolicy(Model):
    GO_JSON = GoJSON(always={"Condition": "any", "MaxAttempts": 0})

    condition: str | None = None  # none | on-failure | any
    delay: int | None = None
    max_attempts: int | None = None
    window: int | None = None


class PlacementPreference(Model):
    spread: dict[str, str] | None = None


class Platform(Model):
    architecture: str | None = None
    os: str | None = None


class Placement(Model):
    constraints: list[str] | None = None
    preferences: list[PlacementPreference] | None = None
    max_replicas: int | None = None
    platforms: list[Platform] | None = None


class Healthcheck(Model):
    test: list[str] | None = None
    interval: int | None = None
    timeout: int | None = None
    retries: int | None = None
    start_period: int | None = None
    start_interval: int | None = None


class ContainerSpec(Model):
    GO_JSON = GoJSON(
        always={"Isolation": "default"},
        omitempty=frozenset({"TTY", "OpenStdin", "ReadOnly"}),
        # `Privileges` is kept as sent, but Docker 20.10 (API 1.41) has no `NoNewPrivileges`,
        # which the 28.x CLI sends as false: left out at false, as Docker shows it
        inner={"Privileges": GoJSON(omitempty=frozenset({"NoNewPrivileges"}))},
    )

    image: str | None = None
    labels: dict[str, str] | None = None
    command: list[str] | None = None
    args: list[str] | None = None
    hostname: str | None = None
    env: list[str] | None = None
    dir: str | None = None
    user: str | None = None
    groups: list[str] | None = None
    init: bool | None = None
    tty: bool | None = None
    open_stdin: bool | None = None
    read_only: bool | None = None
    mounts: list[Mount] | None = None
    stop_signal: str | None = None
    stop_grace_period: int | None = None
    healthcheck: Healthcheck | None = None
    hosts: list[str] | None = None
    dns_config: dict[str, Any] | None = None
    secrets: list[SecretReference] | None = None
    configs: list[ConfigReference] | None = None
    sysctls: dict[str, str] | None = None
    capability_add: list[str] | None = None
    capability_drop: list[str] | None = None
    ulimits: list[dict[str, Any]] | None = None


class NetworkAttachmentConfig(Model):
    target: str = ""
    aliases: list[str] | None = None
    driver_opts: dict[str, str] | None = None


class TaskSpec(Model):
    GO_JSON = GoJSON(always={"ForceUpdate": 0})

    _canonical: str | None = PrivateAttr(default=None)

    container_spec: ContainerSpec | None = None
    resources: ResourceRequirements | None = None
    restart_policy: RestartPolicy | None = None
    placement: Placement | None = None
    networks: list[NetworkAttachmentConfig] | None = None
    log_driver: dict[str, Any] | None = None
    force_update: int | None = None
    runtime: str | None = None


def _strip(value: Any) -> Any:
    """Drop empty values (None, {}, [], "", 0, False) so that specs that say the same thing
    in different words (an absent field, an empty object, an explicit zero) compare equal."""
    if isinstance(value, dict):
        out = {k: _strip(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, {}, [], "", 0, False)}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def canonical(spec: TaskSpec) -> str:
    """A task spec's meaning as a string: equal strings, same tasks — every absent field at
    its default (`TASK_DEFAULTS`, with what Docker's API shows for it), empty ones dropped.
    Cached on the spec (specs are never changed in place once stored)."""
    if spec._canonical is None:
        full = merge_defaults(
            spec.model_dump(by_alias=True, exclude_none=True, mode="json"), TASK_DEFAULTS
        )
        spec._canonical = json.dumps(_strip(full), sort_keys=True)
    return spec._canonical


def same_task_spec(a: TaskSpec, b: TaskSpec) -> bool:
    return a is b or canonical(a) == canonical(b)


class ReplicatedService(Model):
    replicas: int | None = None


class ReplicatedJob(Model):
    max_concurrent: int | None = None
    total_completions: int | None = None


class ServiceMode(Model):
    replicated: ReplicatedService | None = None
    global_: dict[str, Any] | None = Field(
        default=None, alias="Global", validation_alias=AliasChoices("Global", "global_")
    )
    replicated_job: ReplicatedJob | None = None
    global_job: dict[str, Any] | None = None

    @property
    def kind(self) -> str:
        if self.global_ is not None:
            return "global"
        if self.replicated_job is not None:
            return "replicated-job"
        if self.global_job is not None:
            return "global-job"
        return "replicated"


class UpdateConfig(Model):
    GO_JSON = GoJSON(
        always={"Parallelism": 0, "FailureAction": "pause", "MaxFailureRatio": 0,
                "Order": "stop-first"},
        omitempty=frozenset({"Delay", "Monitor"}),
    )  # fmt: skip

    parallelism: int | None = None
    delay: int | None = None
    failure_action: str | None = None
    monitor: int | None = None
    max_failure_ratio: float | None = None
    order: str | None = None


class PortConfig(Model):
    name: str | None = None
    protocol: str | None = None
    target_port: int | None = None
    published_port: int | None = None
    publish_mode: str | None = None


def is_ingress(port: PortConfig) -> bool:
    """Published through the routing mesh (the default mode)."""
    return (port.publish_mode or "ingress") == "ingress"


class EndpointSpec(Model):
    mode: str | None = None
    ports: list[PortConfig] | None = None

    def publishes_ingress(self) -> bool:
        return any(is_ingress(p) for p in self.ports or [])


class ServiceSpec(Model):
    GO_JSON = GoJSON(
        always={"Labels": {}}, inner={"TaskTemplate": GoJSON(always={"Runtime": "container"})}
    )

    name: str = ""
    labels: dict[str, str] | None = None
    task_template: TaskSpec = Field(default_factory=TaskSpec)
    mode: ServiceMode = Field(default_factory=ServiceMode)
    update_config: UpdateConfig | None = None
    rollback_config: UpdateConfig | None = None
    networks: list[NetworkAttachmentConfig] | None = None
    endpoint_spec: EndpointSpec | None = None


def allocated_endpoint_spec(
    spec: EndpointSpec | None, networks: bool = False, *, kept: bool = False
) -> EndpointSpec:
    """The endpoint spec the allocator records for a service (`Endpoint.Spec`) and copies
    onto its tasks: the service's own once it has something to allocate (published ports,
    or networks in vip mode: VIPs) and from then on (`kept`: it has an allocated endpoint —
    SwarmKit copies the spec at every allocation, so a service whose ports all went shows
    `{"Mode": "vip"}`); else none, as SwarmKit's allocator leaves such a service alone
    (Docker shows `"Endpoint": {"Spec": {}}`, for `--endpoint-mode dnsrr` on networks too)."""
    if spec is None:
        return EndpointSpec()
    vips = networks and (spec.mode or "vip") == "vip"
    return spec if spec.ports or vips or kept else EndpointSpec()


def endpoint_kept(endpoint: Endpoint | None) -> bool:
    """The service was allocated an endpoint (not the empty one of a service left alone)."""
    return endpoint is not None and endpoint.spec is not None and endpoint.spec != EndpointSpec()


class Endpoint(Model):
    GO_JSON = GoJSON(always={"Spec": {}})

    spec: EndpointSpec | None = None
    ports: list[PortConfig] | None = None
    virtual_ips: list[dict[str, Any]] | None = None


class UpdateStatus(Model):
    state: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    message: str | None = None


class JobIteration(Model):
    GO_JSON = GoJSON(omitempty=frozenset({"Index"}))

    index: int = 0


class JobStatus(Model):
    job_iteration: JobIteration = Field(default_factory=JobIteration)
    last_execution: str | None = None


class ServiceStatus(Model):
    running_tasks: int = 0
    desired_tasks: int = 0
    completed_tasks: int = 0


class Service(Meta):
    """A service. Its registry credentials — the client's `X-Registry-Auth` of the create or
    update that wrote `spec` (and of the one before, with `previous_spec`) — are stored with
    it, sealed, and never shown (moby keeps them in the spec's `PullOptions`, which the API
    never shows either); the dispatcher hands them only to the nodes that run its tasks."""

    GO_JSON = GoJSON(
        always={"Endpoint": {}}, never=frozenset({"RegistryAuth", "PreviousRegistryAuth"})
    )

    spec: ServiceSpec = Field(default_factory=ServiceSpec)
    previous_spec: ServiceSpec | None = None
    endpoint: Endpoint | None = None  # the allocator's
    update_status: UpdateStatus | None = None
    service_status: ServiceStatus | None = None
    job_status: JobStatus | None = None
    registry_auth: str | None = None
    previous_registry_auth: str | None = None

    def endpoint_allocated(self) -> bool:
        """The allocator has given the service the endpoint its current spec asks for."""
        networks = bool(self.spec.task_template.networks)
        kept = endpoint_kept(self.endpoint)
        want = allocated_endpoint_spec(self.spec.endpoint_spec, networks, kept=kept)
        return self.endpoint is not None and self.endpoint.spec == want
