"""Stage 3: swarmkit's control API (`validateServiceSpec` and its parts, template expansion),
and `validate_service_spec`, the three stages of a service create or update in Docker's order."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from shoal.api.constraints import ConstraintError, parse_constraints
from shoal.api.errors import InvalidArgument, RPCUnknown
from shoal.api.validation.daemon import _daemon_service, _mode_kind
from shoal.api.validation.goformat import go_format_g, go_quote
from shoal.api.validation.helpers import _list, _num, _obj, _text
from shoal.api.validation.jsontypes import check_json_types
from shoal.api.validation.names import is_valid_image_reference, validate_name

_MS = 1_000_000  # swarmkit minimumDuration, 1ms
_EXPAND = re.compile(
    r"\{\{\s*\.(Service\.ID|Service\.Name|Node\.ID|Node\.Hostname|"
    r"Node\.Platform\.OS|Node\.Platform\.Architecture|Task\.ID|Task\.Name|"
    r"Task\.Slot)\s*\}\}"
)
# the dummy task swarmkit expands templates against when validating (validateContainerSpec)
DUMMY_CONTEXT = {
    "Service.ID": "serviceid",
    "Service.Name": "servicename",
    "Node.ID": "nodeid",
    "Node.Hostname": "nodeHostname",
    "Node.Platform.OS": "os",
    "Node.Platform.Architecture": "architecture",
    "Task.ID": "",
    "Task.Name": "taskname",
    "Task.Slot": "1",
}


def _validate_resources(r: Mapping[str, Any] | None) -> None:
    if r is None:
        return
    cpus, mem = _num(r.get("NanoCPUs")), _num(r.get("MemoryBytes"))
    if cpus != 0 and cpus < 1e6:
        raise InvalidArgument(
            f"invalid cpu value {go_format_g(cpus / 1e9)}: "
            f"Must be at least {go_format_g(1e6 / 1e9)}"
        )
    if mem != 0 and mem < 4 * 1024 * 1024:
        raise InvalidArgument(f"invalid memory value {mem}: Must be at least 4MiB")


def _validate_restart(rp: Mapping[str, Any] | None) -> None:
    if rp is None:
        return
    if rp.get("Delay") is not None and _num(rp["Delay"]) < 0:
        raise InvalidArgument("TaskSpec: restart-delay cannot be negative")
    if rp.get("Window") is not None and _num(rp["Window"]) < 0:
        raise InvalidArgument("TaskSpec: restart-window cannot be negative")


def _validate_placement(p: Mapping[str, Any] | None) -> None:
    if p is None:
        return
    try:
        parse_constraints(_text(c) for c in _list(p.get("Constraints")))
    except ConstraintError as e:  # returned unwrapped by swarmkit: gRPC code Unknown
        raise RPCUnknown(e.message) from None


def _validate_refs(cs: Mapping[str, Any]) -> None:
    """swarmkit `validateSecretRefsSpec` and `validateConfigRefsSpec`."""
    targets: dict[str, str] = {}
    for ref in map(_obj, _list(cs.get("Secrets"))):
        name = _text(ref.get("SecretName"))
        if not ref.get("SecretID") or not name:
            raise InvalidArgument("malformed secret reference")
        if ref.get("File") is None:
            raise InvalidArgument("malformed secret reference, no target provided")
        fname = _text(ref["File"].get("Name"))
        if not fname:
            raise InvalidArgument(
                "malformed file secret reference, invalid target file name provided"
            )
        if fname in targets:
            raise InvalidArgument(
                f"secret references '{targets[fname]}' and '{name}' "
                f"have a conflicting target: '{fname}'"
            )
        targets[fname] = name

    cred = _obj(_obj(cs.get("Privileges")).get("CredentialSpec"))
    cred_config, cred_found = _text(cred.get("Config")), False
    targets = {}
    for ref in map(_obj, _list(cs.get("Configs"))):
        name = _text(ref.get("ConfigName"))
        if not ref.get("ConfigID") or not name:
            raise InvalidArgument("malformed config reference")
        if ref.get("File") is None and ref.get("Runtime") is None:
            raise InvalidArgument("malformed config reference, no target provided")
        if ref.get("File") is not None:
            fname = _text(ref["File"].get("Name"))
            if not fname:
                raise InvalidArgument(
                    "malformed file config reference, invalid target file name provided"
                )
            if fname in targets:
                raise InvalidArgument(
                    f"config references '{targets[fname]}' and '{name}' "
                    f"have a conflicting target: '{fname}'"
                )
            targets[fname] = name
        elif ref.get("ConfigID") == cred_config:
            cred_found = True
    if cred_config and not cred_found:
        raise InvalidArgument(
            f"CredentialSpec references config '{cred_config}', but that "
            "config isn't in config references with RuntimeTarget"
        )


def _validate_healthcheck(hc: Mapping[str, Any] | None) -> None:
    if hc is None:
        return
    for field in ("Interval", "Timeout", "StartPeriod", "StartInterval"):
        d = _num(hc.get(field))
        if d != 0 and d < _MS:
            raise InvalidArgument(f"ContainerSpec: {field} in HealthConfig cannot be less than 1ms")
    if _num(hc.get("Retries")) < 0:
        raise InvalidArgument("ContainerSpec: Retries in HealthConfig cannot be negative")


Expander = Callable[[str], str]
"""Expands one Go-template string against swarmkit's validation context (`DUMMY_CONTEXT`), or
raises an exception whose str() is Go's text/template error."""


def _simple_expand(s: str) -> str:
    """Fallback expander: plain `{{.X.Y}}` field references only, never fails."""
    return _EXPAND.sub(lambda g: DUMMY_CONTEXT[g.group(1)], s)


def _expand_map(expand: Expander, m: Any) -> None:
    for k, v in _obj(m).items():
        try:
            expand(_text(v))
        except Exception as e:
            raise ValueError(f"expanding map entry {go_quote(k)}={go_quote(_text(v))}: {e}") from e


def _expanded_mount_targets(cs: Mapping[str, Any], expand: Expander | None) -> list[str]:
    """swarmkit `template.ExpandContainerSpec` (env, mounts, hostname, in that order) with its
    error wrapping; returns the expanded mount targets."""
    if expand is None:
        return [_simple_expand(_text(_obj(m).get("Target"))) for m in _list(cs.get("Mounts"))]
    step = "expanding env failed"
    try:
        for entry in map(_text, _list(cs.get("Env"))):
            if "=" in entry:
                try:
                    expand(entry.split("=", 1)[1])
                except Exception as e:
                    raise ValueError(f"expanding env {go_quote(entry)}: {e}") from e
        step, targets = "expanding mounts failed", []
        for m in map(_obj, _list(cs.get("Mounts"))):
            for field in ("Source", "Target"):
                try:
                    value = expand(_text(m.get(field)))
                except Exception as e:
                    raise ValueError(
                        f"expanding mount {field.lower()} {go_quote(_text(m.get(field)))}: {e}"
                    ) from e
            targets.append(value)
            vol = m.get("VolumeOptions")
            if vol is not None:
                try:
                    _expand_map(expand, vol.get("Labels"))
                except ValueError as e:
                    raise ValueError(f"expanding volume labels: {e}") from e
                try:
                    _expand_map(expand, _obj(vol.get("DriverConfig")).get("Options"))
                except ValueError as e:
                    raise ValueError(f"expanding volume driver config: {e}") from e
        step = "expanding hostname failed"
        expand(_text(cs.get("Hostname")))
    except Exception as e:
        raise InvalidArgument(f"{step}: {e}") from None
    return targets


def _validate_container(cs: Mapping[str, Any], expand: Expander | None) -> None:
    """swarmkit `validateContainerSpec`: templates, image, duplicate mounts, healthcheck."""
    targets = _expanded_mount_targets(cs, expand)
    image = _text(cs.get("Image"))
    if not image:
        raise InvalidArgument("ContainerSpec: image reference must be provided")
    if not is_valid_image_reference(image):
        raise InvalidArgument(f"ContainerSpec: {go_quote(image)} is not a valid repository/tag")
    seen: set[str] = set()
    for target in targets:
        if target in seen:
            raise InvalidArgument(f"ContainerSpec: duplicate mount point: {target}")
        seen.add(target)
    _validate_healthcheck(cs.get("Healthcheck"))


def _validate_mode(spec: Mapping[str, Any]) -> None:
    mode = _obj(spec.get("Mode"))
    kind = _mode_kind(spec)
    if kind == "Replicated" and _num(_obj(mode.get("Replicated")).get("Replicas")) < 0:
        raise InvalidArgument("Number of replicas must be non-negative")
    if kind == "ReplicatedJob":
        job = _obj(mode.get("ReplicatedJob"))
        if _num(job.get("MaxConcurrent")) < 0:
            raise InvalidArgument("Maximum concurrent jobs must not be negative")
        if _num(job.get("TotalCompletions")) < 0:
            raise InvalidArgument("Total completed jobs must not be negative")


def _validate_update(uc: Mapping[str, Any] | None) -> None:
    if uc is None:
        return
    if _num(uc.get("Delay")) < 0:
        raise InvalidArgument("TaskSpec: update-delay cannot be negative")
    if _num(uc.get("Monitor")) < 0:
        raise InvalidArgument("TaskSpec: update-monitor cannot be negative")
    ratio = _num(uc.get("MaxFailureRatio"))
    if ratio < 0 or ratio > 1:
        raise InvalidArgument(
            "TaskSpec: update-maxfailureratio cannot be less than 0 or bigger than 1"
        )


def _port_key(pc: Mapping[str, Any]) -> tuple[int, str]:
    """(published port, protocol) with the daemon's enum mapping: unknown means tcp."""
    proto = _text(pc.get("Protocol")).lower()
    return int(_num(pc.get("PublishedPort"))), proto if proto in ("udp", "sctp") else "tcp"


def _is_host_mode(pc: Mapping[str, Any]) -> bool:
    return _text(pc.get("PublishMode")).upper() == "HOST"  # anything else means ingress


def _validate_endpoint(ep: Mapping[str, Any] | None) -> None:
    if ep is None:
        return
    dnsrr = _text(ep.get("Mode")).upper() == "DNSRR"
    seen: set[tuple[int, str]] = set()
    for pc in map(_obj, _list(ep.get("Ports"))):
        if dnsrr and not _is_host_mode(pc):
            raise InvalidArgument(
                "EndpointSpec: port published with ingress mode can't be used with dnsrr mode"
            )
        if not _num(pc.get("PublishedPort")):
            continue
        key = _port_key(pc)
        if key in seen:
            raise InvalidArgument("EndpointSpec: duplicate published ports provided")
        seen.add(key)


def swarmkit_validate_service_spec(
    spec: Mapping[str, Any], *, check_name: bool = True, expand: Expander | None = None
) -> None:
    """swarmkit `validateServiceSpec` on a spec the daemon has already accepted.

    `check_name=False` skips the name checks (the daemon gives a nameless service a random
    valid name before swarmkit sees it)."""
    if check_name:
        validate_name(_text(spec.get("Name")))
    tt = _obj(spec.get("TaskTemplate"))
    res = _obj(tt.get("Resources"))
    _validate_resources(res.get("Limits"))
    _validate_resources(res.get("Reservations"))
    _validate_restart(tt.get("RestartPolicy"))
    _validate_placement(tt.get("Placement"))
    cs = tt.get("ContainerSpec")
    runtime = _text(tt.get("Runtime"))
    if runtime in ("", "container"):
        if cs is None:
            raise InvalidArgument("TaskSpec: missing runtime")
        _validate_refs(cs)
        _validate_container(cs, expand)
    _validate_mode(spec)
    if _mode_kind(spec) in ("ReplicatedJob", "GlobalJob"):
        if spec.get("UpdateConfig") is not None:
            raise InvalidArgument("Jobs may not have an update config")
    else:
        _validate_update(spec.get("UpdateConfig"))  # RollbackConfig is not checked
    _validate_endpoint(spec.get("EndpointSpec"))


def validate_service_spec(
    spec: Any, *, api_version: str | None = None, expand: Expander | None = None
) -> None:
    """Everything Docker checks in `POST /services/create` (and `…/update`) before it looks at
    the store: JSON types, the daemon's conversion, swarmkit's `validateServiceSpec`."""
    check_json_types("ServiceSpec", spec)
    spec = _obj(spec)  # a JSON null decodes to the zero spec
    _daemon_service(spec, api_version)
    name = _text(spec.get("Name"))
    swarmkit_validate_service_spec(spec, check_name=bool(name), expand=expand)
