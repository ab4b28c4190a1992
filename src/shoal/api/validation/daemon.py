"""Stage 2: moby's converters in `daemon/cluster` (`ServiceSpecToGRPC` and its parts) and the
runtime checks of `Cluster.CreateService`; bare-text `InvalidParameter` answers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shoal.api.errors import DaemonError, InvalidParameter
from shoal.api.validation.goformat import go_quote
from shoal.api.validation.helpers import _list, _obj, _text, _version_ge

_MOUNT_TYPES = {"BIND", "VOLUME", "TMPFS", "NPIPE", "CLUSTER"}  # swarmkit's enum (no IMAGE)
_PROPAGATIONS = {"RPRIVATE", "PRIVATE", "RSHARED", "SHARED", "RSLAVE", "SLAVE"}
_FAILURE_ACTIONS = {"", "pause", "continue", "rollback"}
_UPDATE_ORDERS = {"", "stop-first", "start-first"}


def _daemon_container(cs: Mapping[str, Any]) -> None:
    """moby `containerToGRPC`."""
    priv = cs.get("Privileges")
    if priv is not None and priv.get("CredentialSpec") is not None:
        cred = priv["CredentialSpec"]
        opts = [f'"{k.lower()}"' for k in ("Config", "File", "Registry") if cred.get(k)]
        if not opts:
            raise InvalidParameter(
                'invalid CredentialSpec: must either provide "file", '
                '"registry", or "config" for credential spec'
            )
        if len(opts) == 2:
            raise InvalidParameter(
                f"invalid CredentialSpec: cannot specify both {opts[0]} "
                f"and {opts[1]} credential specs"
            )
        if len(opts) > 2:
            raise InvalidParameter(
                f"invalid CredentialSpec: cannot specify both "
                f"{', '.join(opts[:-1])}, and {opts[-1]} credential specs"
            )
    for ref in _list(cs.get("Configs")):
        ref = _obj(ref)
        has_file, has_runtime = ref.get("File") is not None, ref.get("Runtime") is not None
        if not has_file and not has_runtime:
            raise InvalidParameter("invalid Config: either File or Runtime should be set")
        if has_file and has_runtime:
            raise InvalidParameter("invalid Config: cannot specify both File and Runtime")
    for m in _list(cs.get("Mounts")):
        m = _obj(m)
        mtype = _text(m.get("Type"))
        if mtype and mtype.upper() not in _MOUNT_TYPES:
            raise InvalidParameter(f"invalid MountType: {go_quote(mtype)}")
        bind = m.get("BindOptions")
        if bind is not None:
            prop = _text(bind.get("Propagation"))
            if prop and prop.upper() not in _PROPAGATIONS:
                raise InvalidParameter(f"invalid MountPropagation: {go_quote(prop)}")


def _daemon_update_config(uc: Mapping[str, Any] | None) -> None:
    """moby `updateConfigToGRPC`."""
    if uc is None:
        return
    action = _text(uc.get("FailureAction"))
    if action not in _FAILURE_ACTIONS:
        raise InvalidParameter(f"unrecognized update failure action {action}")
    order = _text(uc.get("Order"))
    if order not in _UPDATE_ORDERS:
        raise InvalidParameter(f"unrecognized update order {order}")


def _daemon_service(spec: Mapping[str, Any], api_version: str | None) -> None:
    """moby `convert.ServiceSpecToGRPC` plus the runtime checks of `Cluster.CreateService`."""
    tt = _obj(spec.get("TaskTemplate"))
    mode = _obj(spec.get("Mode"))
    res = tt.get("Resources")
    if res is not None and api_version is not None and _version_ge(api_version, "1.52"):
        # SwapBytes exists from API 1.52 (moby 29); older requests have it stripped.
        limits = res.get("Limits")
        if res.get("SwapBytes") is not None and (limits is None or not limits.get("MemoryBytes")):
            raise InvalidParameter("memory swap provided, but no memory-limit was set")
    runtime = _text(tt.get("Runtime"))
    plugin = False
    if runtime in ("", "container"):
        if tt.get("ContainerSpec") is None:
            raise InvalidParameter("mismatched Runtime and *Spec fields")
        _daemon_container(tt["ContainerSpec"])
    elif runtime == "plugin":
        if tt.get("PluginSpec") is None:
            raise InvalidParameter("mismatched Runtime and *Spec fields")
        if mode.get("Replicated") is not None:
            raise InvalidParameter("plugins must not use replicated mode")
        plugin = True
    else:
        raise InvalidParameter("unsupported runtime")
    restart = tt.get("RestartPolicy")
    if restart is not None:
        cond = _text(restart.get("Condition"))
        if cond not in ("", "none", "on-failure", "any"):
            raise InvalidParameter(f"invalid RestartCondition: {go_quote(cond)}")
    _daemon_update_config(spec.get("UpdateConfig"))
    _daemon_update_config(spec.get("RollbackConfig"))
    ep = spec.get("EndpointSpec")
    if ep is not None:
        ep_mode = _text(ep.get("Mode"))
        if ep_mode not in ("", "vip", "dnsrr"):
            raise InvalidParameter(f"invalid resolution mode: {go_quote(ep_mode)}")
    modes = sum(mode.get(k) is not None for k in ("Replicated", "ReplicatedJob", "GlobalJob"))
    modes += plugin or mode.get("Global") is not None
    if modes > 1:
        raise InvalidParameter("must specify only one service mode")
    if plugin:  # shoal, like a non-experimental dockerd, runs no plugin services
        raise DaemonError('runtime type "plugin" only supported in experimental')


def _mode_kind(spec: Mapping[str, Any]) -> str:
    """The service mode after the daemon's defaulting (`Mode: {}` is replicated)."""
    mode = _obj(spec.get("Mode"))
    if _text(_obj(spec.get("TaskTemplate")).get("Runtime")) == "plugin":
        return "Global"
    for kind in ("Global", "GlobalJob", "ReplicatedJob"):
        if mode.get(kind) is not None:
            return kind
    return "Replicated"
