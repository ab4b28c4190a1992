"""Placeholders in container specs, expanded per task as SwarmKit does (`--hostname
"{{.Node.Hostname}}-{{.Task.Slot}}"`, `--env "SLOT={{.Task.Slot}}"`, mount sources).

A small subset of Go templates: `{{.Path.To.Field}}` and `{{index .Service.Labels "key"}}`
over Service (ID, Name, Labels), Node (ID, Hostname, Platform.OS, Platform.Architecture)
and Task (ID, Name, Slot). Anything else is left as written (`expand`).

Secret and config payloads with `--template-driver golang` are expanded by `render`: the same
fields plus the functions `env`, `secret` and `config`; what it cannot do is an error there.
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


class TemplateError(ValueError):
    """A payload template that does not parse or does not execute (Go's words, in short)."""


_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)
_STRING = r'"((?:[^"\\]|\\.)*)"'
_CALL = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s+" + _STRING + r"$")
_INDEX_CALL = re.compile(r"^index\s+\.([A-Za-z.]+)\s+" + _STRING + r"$")
_PATH = re.compile(r"^\.([A-Za-z][A-Za-z0-9.]*)$")


def render(text: str, ctx: dict[str, Any], funcs: dict[str, Any]) -> str:
    """A secret's or config's payload with `--template-driver golang`, as SwarmKit expands
    it for one task: Go template actions over `ctx` (`{{.Service.Name}}`, `{{index
    .Service.Labels "k"}}`) and the functions in `funcs` called with one string
    (`{{env "HOME"}}`, `{{secret "target"}}`, `{{config "target"}}`), with `{{-`/`-}}` trimming
    the whitespace beside them. Other Go template constructs raise `TemplateError`."""
    out: list[str] = []
    pos = 0
    for m in _ACTION.finditer(text):
        before = text[pos : m.start()]
        out.append(before.rstrip() if m.group(1) else before)
        out.append(_execute(m.group(2).strip(), ctx, funcs))
        pos = m.end()
        if m.group(3):
            rest = text[pos:]
            pos += len(rest) - len(rest.lstrip())
    out.append(text[pos:])
    return "".join(out)


def _execute(action: str, ctx: dict[str, Any], funcs: dict[str, Any]) -> str:
    if action.startswith("/*") and action.endswith("*/"):
        return ""
    if m := _PATH.match(action):
        value = _lookup(ctx, m.group(1))
        if value is None:
            raise TemplateError(f"can't evaluate field {m.group(1).rsplit('.', 1)[-1]}")
        return _text(value)
    if m := _INDEX_CALL.match(action):
        mapping = _lookup(ctx, m.group(1))
        if not isinstance(mapping, dict):
            raise TemplateError(f"error calling index: can't index .{m.group(1)}")
        return _text(mapping.get(_unquote(m.group(2)), ""))
    if m := _CALL.match(action):
        name, arg = m.group(1), _unquote(m.group(2))
        if name not in funcs:
            raise TemplateError(f'function "{name}" not defined')
        try:
            return str(funcs[name](arg))
        except TemplateError:
            raise
        except Exception as e:  # noqa: BLE001 - the getter's own error, as Go wraps it
            raise TemplateError(f"error calling {name}: {e}") from None
    if m := re.fullmatch(_STRING, action):
        return _unquote(m.group(1))
    word = action.split()[0] if action.split() else action
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", word) and word not in funcs:
        raise TemplateError(f'function "{word}" not defined')
    raise TemplateError(f"unsupported template action {{{{{action}}}}}")


def _unquote(s: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), s)


def _text(value: Any) -> str:
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{v}" for k, v in sorted(value.items())) + "]"
    return str(value)
