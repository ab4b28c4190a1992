"""Every default shoal applies, in one place: SwarmKit's for absent spec fields (shown by
`insertDefaults=true`, as `docker service inspect --pretty` asks, and applied before task
specs are compared, so that a spec that spells a default out means the same as one that
leaves it away), and the swarm's settings at `swarm init`. Durations in nanoseconds. (What
Docker's API always writes, defaults or not, is each model's `GO_JSON`.)"""

from __future__ import annotations

import copy
from typing import Any

SECOND = 1_000_000_000
STOP_GRACE_PERIOD = 10 * SECOND
RESTART_DELAY = 5 * SECOND
UPDATE_MONITOR = 5 * SECOND
HEARTBEAT_PERIOD = 1 * SECOND  # shoal's; Docker's is 5 s (DESIGN: a dead node's tasks move in 5 s)
TASK_HISTORY_RETENTION = 5
DEFAULT_ADDR_POOL = ("10.0.0.0/8",)  # SwarmKit's, when `swarm init` names none

_UPDATE = {
    "Parallelism": 1, "FailureAction": "pause", "Monitor": UPDATE_MONITOR,
    "MaxFailureRatio": 0, "Order": "stop-first",
}  # fmt: skip
CONTAINER_DEFAULTS: dict[str, Any] = {"StopGracePeriod": STOP_GRACE_PERIOD, "DNSConfig": {}}
TASK_DEFAULTS: dict[str, Any] = {
    # (Runtime and Isolation: what Docker shows for a spec without them, which a client that
    # read the spec sends back on its next update.)
    "ContainerSpec": {**CONTAINER_DEFAULTS, "Isolation": "default"},
    "Runtime": "container",
    "Resources": {},
    "RestartPolicy": {"Condition": "any", "Delay": RESTART_DELAY, "MaxAttempts": 0},
    "Placement": {},
}
_INSERTED = ("Resources", "RestartPolicy", "Placement", "UpdateConfig", "RollbackConfig")
SERVICE_DEFAULTS: dict[str, Any] = {
    "TaskTemplate": TASK_DEFAULTS,
    "UpdateConfig": _UPDATE,
    "RollbackConfig": _UPDATE,
}


def merge_defaults(value: Any, defaults: Any) -> Any:
    """Every absent field takes its default, however deep (what a spec means)."""
    if not isinstance(defaults, dict):
        return value if value not in (None, "") else defaults
    out = dict(value) if isinstance(value, dict) else {}
    for key, d in defaults.items():
        out[key] = merge_defaults(out.get(key), d)
    return out


def insert_defaults(spec: dict[str, Any]) -> dict[str, Any]:
    """A service spec (Docker JSON) as `insertDefaults=true` shows it, SwarmKit's
    `InterpolateService`: the container's absent fields take their defaults, and an absent
    resources, restart policy, placement, update or rollback config takes the default one
    whole (a restart policy that names only its condition stays so). The endpoint spec is
    left as it is."""
    out = copy.deepcopy(spec)
    task = out.setdefault("TaskTemplate", {})
    for obj, defaults in ((out, SERVICE_DEFAULTS), (task, TASK_DEFAULTS)):
        for key in _INSERTED:
            if key in defaults and obj.get(key) is None:
                obj[key] = copy.deepcopy(defaults[key])
    container = task.get("ContainerSpec")
    if container is not None:
        for key, default in CONTAINER_DEFAULTS.items():
            if container.get(key) is None:
                container[key] = copy.deepcopy(default)
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
