"""The swarm (moby `swarm.Swarm`): its spec (orchestration, raft, dispatcher, CA,
encryption), the trust root (`TLSInfo`, which every node reports too) and the join tokens."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from shoal.api.defaults import DEFAULT_ADDR_POOL
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
    with it, sealed, and shown only by `GET /swarm`. `UnlockKey` (SwarmKit's cluster
    `UnlockKeys`: `SWMKEY-1-…`, set while `AutoLockManagers` is on) is stored with it sealed
    too, and shown only by `GET /swarm/unlockkey`."""

    # `DefaultAddrPool` as Docker shows it: SwarmKit's built-in pool when `swarm init` sent
    # none (null: the 20.10 CLI, docker-py), "for CLI display"; null when it sent an empty
    # list (the 28.x CLI); else the pools it sent.
    GO_JSON = GoJSON(
        always={"TLSInfo": {}, "DefaultAddrPool": list(DEFAULT_ADDR_POOL)},
        nulls=frozenset({"DefaultAddrPool"}),
        never=frozenset({"UnlockKey"}),
    )

    spec: SwarmSpec = Field(default_factory=SwarmSpec)
    tls_info: TLSInfo | None = None
    root_rotation_in_progress: bool = False
    default_addr_pool: list[str] | None = None
    subnet_size: int | None = None
    data_path_port: int | None = None
    join_tokens: JoinTokens = Field(default_factory=JoinTokens)
    unlock_key: str | None = None

    def address_pools(self) -> list[str]:
        """Where overlay subnets come from: the pools `swarm init` was given, else
        SwarmKit's default (whether `DefaultAddrPool` shows it or null)."""
        return list(self.default_addr_pool or DEFAULT_ADDR_POOL)
