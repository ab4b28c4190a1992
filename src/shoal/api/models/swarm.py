"""The swarm (moby `swarm.Swarm`): its spec (orchestration, raft, dispatcher, CA,
encryption), the trust root (`TLSInfo`, which every node reports too) and the join tokens."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from shoal.api.models.base import GoJSON, Meta, Model


class TLSInfo(Model):
    trust_root: str | None = None
    cert_issuer_subject: str | None = None
    cert_issuer_public_key: str | None = None


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
    GO_JSON = GoJSON(always={"Labels": {}})

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

    GO_JSON = GoJSON(always={"TLSInfo": {}})

    spec: SwarmSpec = Field(default_factory=SwarmSpec)
    tls_info: TLSInfo | None = None
    root_rotation_in_progress: bool = False
    default_addr_pool: list[str] | None = None
    subnet_size: int | None = None
    data_path_port: int | None = None
    join_tokens: JoinTokens = Field(default_factory=JoinTokens)
