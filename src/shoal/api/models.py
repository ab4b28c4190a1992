"""The Docker API's swarm types (moby `api/types/swarm`), one model layer for store, API and wire.

Attribute names are snake_case; the JSON names are exactly Docker's (PascalCase, with `ID`,
`TTY`, `DNSConfig`, … spelled as Docker spells them). Every model keeps fields it does not
declare (`extra="allow"`), so a spec round-trips byte for byte even where shoal does not act
on a field yet. Durations are integer nanoseconds, times RFC 3339 strings, bytes base64.
"""

from __future__ import annotations

import datetime as _dt
import json
from typing import Any, Self

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, PrivateAttr, model_validator
from pydantic.alias_generators import to_pascal

from shoal.api.defaults import TASK_DEFAULTS, merge_defaults
from shoal.api.states import TaskState

_SPECIAL = {
    "id": "ID",
    "node_id": "NodeID",
    "service_id": "ServiceID",
    "container_id": "ContainerID",
    "pid": "PID",
    "tty": "TTY",
    "dns_config": "DNSConfig",
    "nano_cpus": "NanoCPUs",
    "os": "OS",
    "addr": "Addr",
    "secret_id": "SecretID",
    "config_id": "ConfigID",
    "uid": "UID",
    "gid": "GID",
    "virtual_ips": "VirtualIPs",
    "ca_config": "CAConfig",
    "tls_info": "TLSInfo",
    "external_cas": "ExternalCAs",
    "url": "URL",
    "node_cert_expiry": "NodeCertExpiry",
    "signing_ca_cert": "SigningCACert",
    "signing_ca_key": "SigningCAKey",
    "container_status": "ContainerStatus",
    "up_to_date": "UpToDate",
}


def _alias(name: str) -> str:
    if name in _SPECIAL:
        return _SPECIAL[name]
    return to_pascal(name)


class _Names:
    def __init__(self, cls: type[BaseModel]) -> None:
        aliases = [f.alias or name for name, f in cls.model_fields.items()]
        self.exact = set(aliases) | set(cls.model_fields)
        self.folded = {a.lower(): a for a in aliases}


_NAMES: dict[type, _Names] = {}


def _names_of(cls: type[BaseModel]) -> _Names:
    names = _NAMES.get(cls)
    if names is None:
        names = _NAMES[cls] = _Names(cls)
    return names


class Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=_alias, populate_by_name=True, extra="allow", validate_assignment=False
    )

    @model_validator(mode="before")
    @classmethod
    def _any_case(cls, data: Any) -> Any:
        """Go's JSON decoder (and so dockerd) matches field names case-insensitively: a client
        that sends `HealthCheck` means `Healthcheck`."""
        if not isinstance(data, dict):
            return data
        names = _names_of(cls)
        if all(k in names.exact for k in data):
            return data
        out = {}
        for k, v in data.items():
            out[names.folded.get(k.lower(), k) if k not in names.exact else k] = v
        return out

    def to_api(self) -> dict[str, Any]:
        """Docker JSON: Docker's names, empty (None) fields left out like Go's omitempty."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")

    @classmethod
    def from_api(cls, data: Any) -> Self:
        return cls.model_validate(data)


def now() -> str:
    """The current time as the RFC 3339 (nanosecond) string Docker uses."""
    return format_time(_dt.datetime.now(_dt.UTC))


def timestamp(t: float) -> str:
    """POSIX seconds as the RFC 3339 (nanosecond) string Docker uses."""
    return format_time(_dt.datetime.fromtimestamp(t, _dt.UTC))


def format_time(t: _dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"


def parse_time(s: str) -> float:
    """RFC 3339 (up to nanoseconds) → POSIX seconds."""
    base, _, frac = s.rstrip("Z").partition(".")
    t = _dt.datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=_dt.UTC).timestamp()
    return t + (float("0." + frac) if frac else 0.0)


class Version(Model):
    index: int = 0


class Meta(Model):
    """ID, version and timestamps common to every stored object."""

    id: str = ""
    version: Version = Field(default_factory=Version)
    created_at: str | None = None
    updated_at: str | None = None


# ---------------------------------------------------------------- services and tasks


class Resources(Model):
    nano_cpus: int | None = None
    memory_bytes: int | None = None
    pids: int | None = None
    generic_resources: list[Any] | None = None


class ResourceRequirements(Model):
    limits: Resources | None = None
    reservations: Resources | None = None


class RestartPolicy(Model):
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


class Mount(Model):
    type: str | None = None
    source: str | None = None
    target: str | None = None
    read_only: bool | None = None
    consistency: str | None = None
    bind_options: dict[str, Any] | None = None
    volume_options: dict[str, Any] | None = None
    tmpfs_options: dict[str, Any] | None = None


class ContainerSpec(Model):
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
    secrets: list[dict[str, Any]] | None = None
    configs: list[dict[str, Any]] | None = None
    sysctls: dict[str, str] | None = None
    capability_add: list[str] | None = None
    capability_drop: list[str] | None = None
    ulimits: list[dict[str, Any]] | None = None


class NetworkAttachmentConfig(Model):
    target: str = ""
    aliases: list[str] | None = None
    driver_opts: dict[str, str] | None = None


class TaskSpec(Model):
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
    """A task spec's meaning as a string: equal strings, same tasks. Cached on the spec
    (specs are never changed in place once stored)."""
    if spec._canonical is None:
        full = merge_defaults(spec.to_api(), TASK_DEFAULTS)
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


class EndpointSpec(Model):
    mode: str | None = None
    ports: list[PortConfig] | None = None


class ServiceSpec(Model):
    name: str = ""
    labels: dict[str, str] | None = None
    task_template: TaskSpec = Field(default_factory=TaskSpec)
    mode: ServiceMode = Field(default_factory=ServiceMode)
    update_config: UpdateConfig | None = None
    rollback_config: UpdateConfig | None = None
    networks: list[NetworkAttachmentConfig] | None = None
    endpoint_spec: EndpointSpec | None = None


class Endpoint(Model):
    spec: EndpointSpec | None = None
    ports: list[PortConfig] | None = None
    virtual_ips: list[dict[str, Any]] | None = None


class UpdateStatus(Model):
    state: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    message: str | None = None


class JobIteration(Model):
    index: int = 0


class JobStatus(Model):
    job_iteration: JobIteration = Field(default_factory=JobIteration)
    last_execution: str | None = None


class ServiceStatus(Model):
    running_tasks: int = 0
    desired_tasks: int = 0
    completed_tasks: int = 0


class Service(Meta):
    spec: ServiceSpec = Field(default_factory=ServiceSpec)
    previous_spec: ServiceSpec | None = None
    endpoint: Endpoint | None = None  # the allocator's
    update_status: UpdateStatus | None = None
    service_status: ServiceStatus | None = None
    job_status: JobStatus | None = None

    def endpoint_allocated(self) -> bool:
        """The allocator has given the service the endpoint its current spec asks for."""
        want = self.spec.endpoint_spec or EndpointSpec(mode="vip")
        return self.endpoint is not None and self.endpoint.spec == want


class ContainerStatus(Model):
    container_id: str | None = None
    pid: int | None = None
    exit_code: int | None = None


class PortStatus(Model):
    ports: list[PortConfig] | None = None


class TaskStatus(Model):
    timestamp: str | None = None
    state: TaskState = TaskState.NEW
    message: str | None = None
    err: str | None = None
    container_status: ContainerStatus | None = None
    port_status: PortStatus | None = None


class Task(Meta):
    name: str | None = None
    labels: dict[str, str] | None = None
    spec: TaskSpec = Field(default_factory=TaskSpec)
    service_id: str = ""
    slot: int | None = None
    node_id: str | None = None
    status: TaskStatus = Field(default_factory=TaskStatus)
    desired_state: TaskState = TaskState.RUNNING
    networks_attachments: list[dict[str, Any]] | None = None
    job_iteration: JobIteration | None = None
    # As in SwarmKit, the allocator copies the service's endpoint onto each task. Kept in the
    # store for the scheduler and the agent; the Docker API's Task has no such field.
    endpoint: Endpoint | None = None

    def to_api(self) -> dict[str, Any]:
        data = super().to_api()
        data.pop("Endpoint", None)
        return data


# ---------------------------------------------------------------- nodes and the cluster


class NodeSpec(Model):
    name: str | None = None
    labels: dict[str, str] | None = None
    role: str = "worker"
    availability: str = "active"


class EngineDescription(Model):
    engine_version: str | None = None
    labels: dict[str, str] | None = None
    plugins: list[dict[str, str]] | None = None


class TLSInfo(Model):
    trust_root: str | None = None
    cert_issuer_subject: str | None = None
    cert_issuer_public_key: str | None = None


class NodeDescription(Model):
    hostname: str | None = None
    platform: Platform | None = None
    resources: Resources | None = None
    engine: EngineDescription | None = None
    tls_info: TLSInfo | None = None


class NodeStatus(Model):
    state: str = "unknown"
    message: str | None = None
    addr: str | None = None


class ManagerStatus(Model):
    leader: bool | None = None
    reachability: str | None = None
    addr: str | None = None


class Node(Meta):
    spec: NodeSpec = Field(default_factory=NodeSpec)
    description: NodeDescription | None = None
    status: NodeStatus = Field(default_factory=NodeStatus)
    manager_status: ManagerStatus | None = None


class OrchestrationConfig(Model):
    task_history_retention_limit: int | None = None


class RaftConfig(Model):
    snapshot_interval: int | None = None
    keep_old_snapshots: int | None = None
    log_entries_for_slow_followers: int | None = None
    election_tick: int | None = None
    heartbeat_tick: int | None = None


class DispatcherConfig(Model):
    heartbeat_period: int | None = None


class CAConfig(Model):
    node_cert_expiry: int | None = None
    external_cas: list[dict[str, Any]] | None = None
    signing_ca_cert: str | None = None
    signing_ca_key: str | None = None
    force_rotate: int | None = None


class EncryptionConfig(Model):
    auto_lock_managers: bool = False


class SwarmSpec(Model):
    name: str | None = None
    labels: dict[str, str] | None = None
    orchestration: OrchestrationConfig = Field(default_factory=OrchestrationConfig)
    raft: RaftConfig = Field(default_factory=RaftConfig)
    dispatcher: DispatcherConfig = Field(default_factory=DispatcherConfig)
    ca_config: CAConfig = Field(default_factory=CAConfig)
    task_defaults: dict[str, Any] | None = None
    encryption_config: EncryptionConfig = Field(default_factory=EncryptionConfig)


class JoinTokens(Model):
    worker: str = ""
    manager: str = ""


class Swarm(Meta):
    """The swarm object (moby `swarm.ClusterInfo` + `JoinTokens`). `JoinTokens` are stored
    with it, sealed, and shown only by `GET /swarm`."""

    spec: SwarmSpec = Field(default_factory=SwarmSpec)
    tls_info: TLSInfo | None = None
    root_rotation_in_progress: bool = False
    default_addr_pool: list[str] | None = None
    subnet_size: int | None = None
    data_path_port: int | None = None
    join_tokens: JoinTokens = Field(default_factory=JoinTokens)
