"""Placeholders in container specs, expanded per task as SwarmKit does (`--hostname
"{{.Node.Hostname}}-{{.Task.Slot}}"`, `--env "SLOT={{.Task.Slot}}"`, mount sources).

A small subset of Go templates: `{{.Path.To.Field}}` and `{{index .Service.Labels "key"}}`
over Service (ID, Name, Labels), Node (ID, Hostname, Platform.OS, Platform.Architecture)
and Task (ID, Name, Slot). Anything else is left as written.
"""

from __future__ import annotations

import re
from typing import Any

from shoal.api.models import NodeDescription, Task
from shoal.api.naming import container_name

_FIELD = re.compile(r"\{\{\s*\.([A-Za-z.]+)\s*\}\}")
_INDEX = re.compile(r'\{\{\s*index\s+\.([A-Za-z.]+)\s+"([^"]*)"\s*\}\}')


def context(
    task_id: str,
    task_name: str,
    slot: int | None,
    service_id: str,
    service_name: str,
    service_labels: dict[str, str] | None,
    node_id: str | None,
    node_hostname: str | None = None,
    node_os: str | None = None,
    node_arch: str | None = None,
) -> dict[str, Any]:
    return {
        "Service": {"ID": service_id, "Name": service_name, "Labels": service_labels or {}},
        "Node": {
            "ID": node_id or "",
            "Hostname": node_hostname or "",
            "Platform": {"OS": node_os or "", "Architecture": node_arch or ""},
        },
        "Task": {"ID": task_id, "Name": task_name, "Slot": "" if slot is None else str(slot)},
    }


def for_task(
    task: Task,
    service_name: str,
    service_labels: dict[str, str] | None = None,
    node: NodeDescription | None = None,
) -> dict[str, Any]:
    """The context of one task, on the node described by `node` (when known)."""
    platform = node.platform if node is not None else None
    return context(
        task.id, container_name(task, service_name), task.slot, task.service_id,
        service_name, service_labels, task.node_id,
        node.hostname if node is not None else None,
        platform.os if platform is not None else None,
        platform.architecture if platform is not None else None,
    )  # fmt: skip


def _lookup(ctx: dict[str, Any], path: str) -> Any:
    value: Any = ctx
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def expand(text: str, ctx: dict[str, Any]) -> str:
    if "{{" not in text:
        return text

    def field(m: re.Match[str]) -> str:
        value = _lookup(ctx, m.group(1))
        return m.group(0) if value is None or isinstance(value, dict) else str(value)

    def index(m: re.Match[str]) -> str:
        mapping = _lookup(ctx, m.group(1))
        if not isinstance(mapping, dict):
            return m.group(0)
        return str(mapping.get(m.group(2), ""))

    return _FIELD.sub(field, _INDEX.sub(index, text))
