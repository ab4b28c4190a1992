"""The swarm (cluster) object in the control API: inspect, update, rotate join tokens."""

from __future__ import annotations

from typing import Any

from shoal.api.errors import NOT_A_MANAGER, BadRequest, Conflict, NotAcceptable, rpc
from shoal.api.models import Cluster, ClusterSpec
from shoal.api.validation import validate_cluster_spec
from shoal.manager.ca.tokens import new_token
from shoal.store.store import Store

DEFAULTS: dict[str, dict[str, Any]] = {
    "Orchestration": {"TaskHistoryRetentionLimit": 5},
    "Raft": {"SnapshotInterval": 10000, "KeepOldSnapshots": 0,
             "LogEntriesForSlowFollowers": 500, "ElectionTick": 10, "HeartbeatTick": 1},
    "Dispatcher": {"HeartbeatPeriod": 1_000_000_000},
    "CAConfig": {"NodeCertExpiry": 7_776_000_000_000_000},
    "TaskDefaults": {},
    "EncryptionConfig": {"AutoLockManagers": False},
}  # fmt: skip


def get(store: Store) -> Cluster:
    cluster = next(iter(store.objects("clusters")), None)
    if cluster is None:
        raise NotAcceptable(NOT_A_MANAGER)
    return cluster  # type: ignore[no-any-return]


def with_defaults(spec: dict[str, Any] | None) -> ClusterSpec:
    """A spec from `swarm init`: zero values take SwarmKit's defaults."""
    merged: dict[str, Any] = {"Name": "default", "Labels": {}}
    for key, defaults in DEFAULTS.items():
        given = (spec or {}).get(key) or {}
        merged[key] = {**defaults, **{k: v for k, v in given.items() if v not in (None, 0, "")}}
    merged["Labels"] = (spec or {}).get("Labels") or {}
    return ClusterSpec.from_api(merged)


async def update(
    store: Store,
    version: int | None,
    body: Any,
    rotate_worker: bool,
    rotate_manager: bool,
    ca_der: bytes,
) -> Cluster:
    cluster = get(store)
    if not isinstance(body, dict):
        raise BadRequest("invalid JSON: the body must be a swarm spec object")
    validate_cluster_spec(body)
    if version != cluster.version.index:
        raise Conflict(rpc("Unknown", "update out of sequence"))
    cluster = cluster.model_copy(deep=True)
    cluster.spec = ClusterSpec.from_api(body)
    if not cluster.spec.name:
        cluster.spec.name = "default"
    if rotate_worker:
        cluster.join_tokens.worker = new_token(ca_der)
    if rotate_manager:
        cluster.join_tokens.manager = new_token(ca_der)
    return await store.update(cluster)
