"""Every default shoal applies, in one place: SwarmKit's for absent spec fields (shown by
`insertDefaults=true`, as `docker service inspect` asks, and applied before task specs are
compared, so that a spec that spells a default out means the same as one that leaves it
away), and the swarm's settings at `swarm init`. Durations in nanoseconds."""

from __future__ import annotations

import copy
from typing import Any

SECOND = 1_000_000_000
STOP_GRACE_PERIOD = 10 * SECOND
RESTART_DELAY = 5 * SECOND
UPDATE_MONITOR = 5 * SECOND
HEARTBEAT_PERIOD = 1 * SECOND  # shoal's; Docker's is 5 s (DESIGN: a dead node's tasks move in 5 s)
TASK_HISTORY_RETENTION = 5

_UPDATE = {
    "Parallelism": 1, "FailureAction": "pause", "Monitor": UPDATE_MONITOR,
    "MaxFailureRatio": 0, "Order": "stop-first",
}  # fmt: skip
TASK_DEFAULTS: dict[str, Any] = {
    # (Runtime and Isolation: what Docker shows for a spec without them, which a client that
    # read the spec sends back on its next update.)
    "ContainerSpec": {"StopGracePeriod": STOP_GRACE_PERIOD, "Isolation": "default"},
    "Runtime": "container",
    "Resources": {"Limits": {}, "Reservations": {}},
    "RestartPolicy": {"Condition": "any", "Delay": RESTART_DELAY, "MaxAttempts": 0},
    "Placement": {},
}
SERVICE_DEFAULTS: dict[str, Any] = {
    "TaskTemplate": TASK_DEFAULTS,
    "UpdateConfig": _UPDATE,
    "RollbackConfig": {**_UPDATE, "FailureAction": "pause"},
    "EndpointSpec": {"Mode": "vip"},
}


def merge_defaults(value: Any, defaults: Any) -> Any:
    """Every absent field takes its default, however deep (what a spec means)."""
    if not isinstance(defaults, dict):
        return value if value not in (None, "") else defaults
    out = dict(value) if isinstance(value, dict) else {}
    for key, d in defaults.items():
        out[key] = merge_defaults(out.get(key), d)
    return out


def with_defaults(service: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(service)
    for key in ("Spec", "PreviousSpec"):
        if key in out:
            out[key] = merge_defaults(out[key], SERVICE_DEFAULTS)
    return out


# ---------------------------------------------------------------- the swarm

SWARM_DEFAULTS: dict[str, dict[str, Any]] = {
    "Orchestration": {"TaskHistoryRetentionLimit": TASK_HISTORY_RETENTION},
    "Raft": {"SnapshotInterval": 10000, "KeepOldSnapshots": 0,
             "LogEntriesForSlowFollowers": 500, "ElectionTick": 10, "HeartbeatTick": 1},
    "Dispatcher": {"HeartbeatPeriod": HEARTBEAT_PERIOD},
    "CAConfig": {"NodeCertExpiry": 7_776_000_000_000_000},
    "TaskDefaults": {},
    "EncryptionConfig": {"AutoLockManagers": False},
}  # fmt: skip


def swarm_spec(spec: dict[str, Any] | None) -> dict[str, Any]:
    """A spec from `swarm init` (Docker JSON): zero values take SwarmKit's defaults."""
    merged: dict[str, Any] = {"Name": "default", "Labels": {}}
    for key, defaults in SWARM_DEFAULTS.items():
        given = (spec or {}).get(key) or {}
        merged[key] = {**defaults, **{k: v for k, v in given.items() if v not in (None, 0, "")}}
    merged["Labels"] = (spec or {}).get("Labels") or {}
    return merged
