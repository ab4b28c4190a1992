"""`insertDefaults=true`: a service spec with SwarmKit's defaults filled into absent fields, as
`docker service inspect` shows it."""

from __future__ import annotations

import copy
from typing import Any

_UPDATE = {
    "Parallelism": 1, "FailureAction": "pause", "Monitor": 5_000_000_000,
    "MaxFailureRatio": 0, "Order": "stop-first",
}  # fmt: skip
SERVICE_DEFAULTS: dict[str, Any] = {
    "TaskTemplate": {
        "ContainerSpec": {"StopGracePeriod": 10_000_000_000},
        "Resources": {"Limits": {}, "Reservations": {}},
        "RestartPolicy": {"Condition": "any", "Delay": 5_000_000_000, "MaxAttempts": 0},
        "Placement": {},
    },
    "UpdateConfig": _UPDATE,
    "RollbackConfig": {**_UPDATE, "FailureAction": "pause"},
    "EndpointSpec": {"Mode": "vip"},
}


def _merge(value: Any, defaults: Any) -> Any:
    if not isinstance(defaults, dict):
        return value if value not in (None, "") else defaults
    out = dict(value) if isinstance(value, dict) else {}
    for key, d in defaults.items():
        out[key] = _merge(out.get(key), d)
    return out


def with_defaults(service: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(service)
    for key in ("Spec", "PreviousSpec"):
        if key in out:
            out[key] = _merge(out[key], SERVICE_DEFAULTS)
    return out
