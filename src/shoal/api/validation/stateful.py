"""The pure parts of swarmkit's stateful checks: what an update may not change, and published
ports already taken by other services. Looking the other objects up is the caller's."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from shoal.api.errors import InvalidArgument, Unimplemented
from shoal.api.validation.daemon import _mode_kind
from shoal.api.validation.helpers import _list, _num, _obj, _text
from shoal.api.validation.swarmkit import _is_host_mode, _port_key


def _norm_networks(nets: Any) -> list[tuple[str, tuple[str, ...], tuple[tuple[str, str], ...]]]:
    out = []
    for n in map(_obj, _list(nets)):
        aliases = tuple(_list(n.get("Aliases")))
        opts = tuple(sorted(_obj(n.get("DriverOpts")).items()))
        out.append((_text(n.get("Target")), aliases, opts))
    return out


def check_service_update(current: Mapping[str, Any], new: Mapping[str, Any]) -> None:
    """swarmkit `UpdateService` refusals, for specs that passed `validate_service_spec`.

    `current` is the stored spec, `new` the request (both Docker JSON, network names already
    resolved to IDs). The caller checks secret/config existence between the network check and
    the mode check, as swarmkit does, if it wants the same precedence."""
    cur_top, new_top = _norm_networks(current.get("Networks")), _norm_networks(new.get("Networks"))
    cur_task = _norm_networks(_obj(current.get("TaskTemplate")).get("Networks"))
    new_task = _norm_networks(_obj(new.get("TaskTemplate")).get("Networks"))
    if (cur_top or new_top) and cur_top != new_top and cur_task == new_task:
        raise Unimplemented("networks must be migrated to TaskSpec before being changed")
    if _mode_kind(current) != _mode_kind(new):
        raise Unimplemented("service mode change is not allowed")
    # a nameless update gets a random name from the daemon, so it is a rename too
    if not new.get("Name") or new["Name"] != current.get("Name"):
        raise Unimplemented("renaming services is not supported")


def check_port_conflicts(
    spec: Mapping[str, Any], services: Iterable[Mapping[str, Any]], *, service_id: str = ""
) -> None:
    """swarmkit `checkPortConflicts`: `spec` (create, or update of `service_id`) against the
    other services, given as Docker JSON Service objects (`ID`, `Spec`, `Endpoint`)."""
    ingress: set[tuple[int, str]] = set()
    host: set[tuple[int, str]] = set()
    for pc in map(_obj, _list(_obj(spec.get("EndpointSpec")).get("Ports"))):
        if _num(pc.get("PublishedPort")):
            (host if _is_host_mode(pc) else ingress).add(_port_key(pc))
    if not ingress and not host:
        return
    for svc in services:
        sid = _text(svc.get("ID"))
        if service_id and sid == service_id:
            continue
        sspec = _obj(svc.get("Spec"))
        name = _text(sspec.get("Name"))
        ports = _list(_obj(sspec.get("EndpointSpec")).get("Ports"))
        ports = ports + _list(_obj(svc.get("Endpoint")).get("Ports"))
        for pc in map(_obj, ports):
            if not _num(pc.get("PublishedPort")):
                continue
            key = _port_key(pc)
            if _is_host_mode(pc):
                if key in ingress:
                    raise InvalidArgument(
                        f"port '{key[0]}' is already in use by service "
                        f"'{name}' ({sid}) as a host-published port"
                    )
            elif key in ingress or key in host:
                raise InvalidArgument(
                    f"port '{key[0]}' is already in use by service "
                    f"'{name}' ({sid}) as an ingress port"
                )
