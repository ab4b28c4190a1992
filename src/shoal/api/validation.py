"""Validation of swarm request bodies, with the exact answers Docker's own swarm mode gives.

Pure: no I/O. Inputs are the JSON bodies the docker CLI / docker-py send, decoded to plain
dicts (Docker field names; durations integer nanoseconds; any field may be absent or null).

Docker rejects a bad body at one of three places, and the answer differs by place:

1. the Go JSON decoder (type errors)           -> `InvalidParameter`, 400,
   `invalid JSON: json: cannot unmarshal number -1 into Go struct field
   ReplicatedService.Mode.Replicated.Replicas of type uint64`   (`check_json_types`)
2. moby's converters in `daemon/cluster`        -> `InvalidParameter`, 400, bare text
   (`invalid RestartCondition: "x"`, `mismatched Runtime and *Spec fields`, …)
3. swarmkit's control API                       -> `InvalidArgument`, 400, shown as
   `rpc error: code = InvalidArgument desc = <message>`; constraint parse errors come back
   as code `Unknown` (HTTP 500), update-only refusals as `Unimplemented` (HTTP 501).

`validate_*` run the three stages in Docker's order and raise the first error. Every error
is a `shoal.api.errors.ShoalError`: answer with `err.status` and `{"message": str(err)}`
(`str()` carries the `rpc error: …` prefix; `err.message` is the bare text). All 400s are
`InvalidArgument` (daemon-side ones the subclass `InvalidParameter`); `RPCUnknown` (500),
`Unimplemented` (501) and `DaemonError` (500) are not, so catch `ShoalError` to see them all.

Stateful checks (network, secret and config existence; name conflicts) belong to the caller;
`check_port_conflicts` and `check_service_update` are the pure parts of swarmkit's.
Sources and the rules are listed in docs/design/validation.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any

from shoal.api.constraints import ConstraintError, parse_constraints
from shoal.api.errors import (
    DaemonError,
    InvalidArgument,
    InvalidParameter,
    RPCUnknown,
    ShoalError,
    Unimplemented,
)

__all__ = [
    "DUMMY_CONTEXT",
    "DaemonError",
    "Expander",
    "InvalidArgument",
    "InvalidParameter",
    "RPCUnknown",
    "Unimplemented",
    "check_json_types",
    "check_port_conflicts",
    "check_service_update",
    "go_format_g",
    "go_quote",
    "is_valid_image_reference",
    "swarmkit_validate_service_spec",
    "validate_annotations",
    "validate_cluster_spec",
    "validate_config_or_secret_name",
    "validate_name",
    "validate_node_spec",
    "validate_service_spec",
]

# moby >= 23 prefixes decoder errors (httputils.ReadJSON); 20.10 sent the bare Go text.
JSON_ERROR_PREFIX = "invalid JSON: "

# ==================================================================== Go formatting


_GO_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    '"': '\\"',
    "\\": "\\\\",
}


def go_quote(s: str) -> str:
    """Go's `%q` of a string (strconv.Quote)."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\x{o:02x}")
        elif ch.isprintable() and not 0xD800 <= o <= 0xDFFF:
            out.append(ch)
        elif o < 0x10000:
            out.append(f"\\u{o:04x}")
        else:
            out.append(f"\\U{o:08x}")
    out.append('"')
    return "".join(out)


def go_format_g(x: float) -> str:
    """Go's `%g` of a float64: shortest digits, exponent form when the exponent is < -4
    or >= 6 (strconv 'g' with precision -1)."""
    if x == 0:
        return "0"
    sign, digits, exp = Decimal(repr(float(x))).normalize().as_tuple()
    ds = "".join(map(str, digits))
    nd, dp = len(ds), len(ds) + int(exp)
    neg = "-" if sign else ""
    e = dp - 1
    if e < -4 or e >= 6:
        mant = ds[0] + ("." + ds[1:] if nd > 1 else "")
        return f"{neg}{mant}e{'-' if e < 0 else '+'}{abs(e):02d}"
    if dp <= 0:
        return f"{neg}0.{'0' * -dp}{ds}"
    if dp >= nd:
        return f"{neg}{ds}{'0' * (dp - nd)}"
    return f"{neg}{ds[:dp]}.{ds[dp:]}"


# ==================================================================== 1. JSON types


class _T:
    """A Go type as encoding/json sees it (pointers are transparent)."""

    __slots__ = ("kind", "go", "elem", "fields", "lo", "hi")

    def __init__(
        self,
        kind: str,
        go: str,
        elem: _T | None = None,
        fields: dict[str, _T] | None = None,
        lo: int = 0,
        hi: int = 0,
    ) -> None:
        self.kind, self.go, self.elem, self.fields = kind, go, elem, fields
        self.lo, self.hi = lo, hi

    @property
    def name(self) -> str:  # reflect.Type.Name(): the bare struct name
        return self.go.rsplit(".", 1)[-1]


def _s(go: str = "string") -> _T:
    return _T("string", go)


def _int(go: str, bits: int = 64, signed: bool = True) -> _T:
    if signed:
        return _T("int", go, lo=-(1 << (bits - 1)), hi=(1 << (bits - 1)) - 1)
    return _T("int", go, lo=0, hi=(1 << bits) - 1)


def _slice(elem: _T, ptr: bool = False) -> _T:
    return _T("slice", "[]" + ("*" if ptr else "") + elem.go, elem=elem)


def _map(elem: _T) -> _T:
    return _T("map", "map[string]" + elem.go, elem=elem)


def _struct(go: str, fields: dict[str, _T]) -> _T:
    return _T("struct", go, fields=fields)


# fmt: off
_S, _B = _s(), _T("bool", "bool")
_I64, _INT, _DUR = _int("int64"), _int("int"), _int("time.Duration")
_U64, _U32 = _int("uint64", signed=False), _int("uint32", 32, False)
_MODE = _int("fs.FileMode", 32, False)
_F32 = _T("float32", "float32")
_BYTES = _T("bytes", "[]uint8")
_STRS, _LABELS = _slice(_S), _map(_S)
_DRIVER = _struct("swarm.Driver", {"Name": _S, "Options": _LABELS})
_PLATFORM = _struct("swarm.Platform", {"Architecture": _S, "OS": _S})
_NET_ATTACH = _struct("swarm.NetworkAttachmentConfig",
                      {"Target": _S, "Aliases": _STRS, "DriverOpts": _LABELS})
_FILE_TARGET = {"Name": _S, "UID": _S, "GID": _S, "Mode": _MODE}
_MOUNT = _struct("mount.Mount", {
    "Type": _s("mount.Type"), "Source": _S, "Target": _S, "ReadOnly": _B,
    "Consistency": _s("mount.Consistency"),
    "BindOptions": _struct("mount.BindOptions", {
        "Propagation": _s("mount.Propagation"), "NonRecursive": _B, "CreateMountpoint": _B,
        "ReadOnlyNonRecursive": _B, "ReadOnlyForceRecursive": _B}),
    "VolumeOptions": _struct("mount.VolumeOptions", {
        "NoCopy": _B, "Labels": _LABELS, "Subpath": _S,
        "DriverConfig": _struct("mount.Driver", {"Name": _S, "Options": _LABELS})}),
    "ImageOptions": _struct("mount.ImageOptions", {"Subpath": _S}),
    "TmpfsOptions": _struct("mount.TmpfsOptions",
                            {"SizeBytes": _I64, "Mode": _MODE, "Options": _slice(_STRS)}),
    "ClusterOptions": _struct("mount.ClusterOptions", {}),
})
_CONTAINER = _struct("swarm.ContainerSpec", {
    "Image": _S, "Labels": _LABELS, "Command": _STRS, "Args": _STRS, "Hostname": _S,
    "Env": _STRS, "Dir": _S, "User": _S, "Groups": _STRS,
    "Privileges": _struct("swarm.Privileges", {
        "CredentialSpec": _struct("swarm.CredentialSpec",
                                  {"Config": _S, "File": _S, "Registry": _S}),
        "SELinuxContext": _struct("swarm.SELinuxContext", {
            "Disable": _B, "User": _S, "Role": _S, "Type": _S, "Level": _S}),
        "Seccomp": _struct("swarm.SeccompOpts",
                           {"Mode": _s("swarm.SeccompMode"), "Profile": _BYTES}),
        "AppArmor": _struct("swarm.AppArmorOpts", {"Mode": _s("swarm.AppArmorMode")}),
        "NoNewPrivileges": _B}),
    "Init": _B, "StopSignal": _S, "TTY": _B, "OpenStdin": _B, "ReadOnly": _B,
    "Mounts": _slice(_MOUNT), "StopGracePeriod": _DUR,
    "Healthcheck": _struct("v1.HealthcheckConfig", {
        "Test": _STRS, "Interval": _DUR, "Timeout": _DUR, "StartPeriod": _DUR,
        "StartInterval": _DUR, "Retries": _INT}),
    "Hosts": _STRS,
    "DNSConfig": _struct("swarm.DNSConfig",
                         {"Nameservers": _STRS, "Search": _STRS, "Options": _STRS}),
    "Secrets": _slice(_struct("swarm.SecretReference", {
        "File": _struct("swarm.SecretReferenceFileTarget", _FILE_TARGET),
        "SecretID": _S, "SecretName": _S}), ptr=True),
    "Configs": _slice(_struct("swarm.ConfigReference", {
        "File": _struct("swarm.ConfigReferenceFileTarget", _FILE_TARGET),
        "Runtime": _struct("swarm.ConfigReferenceRuntimeTarget", {}),
        "ConfigID": _S, "ConfigName": _S}), ptr=True),
    "Isolation": _s("container.Isolation"), "Sysctls": _LABELS,
    "CapabilityAdd": _STRS, "CapabilityDrop": _STRS,
    "Ulimits": _slice(_struct("units.Ulimit", {"Name": _S, "Hard": _I64, "Soft": _I64}),
                      ptr=True),
    "OomScoreAdj": _I64,
})
_GENERIC = _struct("swarm.GenericResource", {
    "NamedResourceSpec": _struct("swarm.NamedGenericResource", {"Kind": _S, "Value": _S}),
    "DiscreteResourceSpec": _struct("swarm.DiscreteGenericResource",
                                    {"Kind": _S, "Value": _I64})})
_TASK = _struct("swarm.TaskSpec", {
    "ContainerSpec": _CONTAINER,
    "PluginSpec": _struct("runtime.PluginSpec", {}),
    "NetworkAttachmentSpec": _struct("swarm.NetworkAttachmentSpec", {"ContainerID": _S}),
    "Resources": _struct("swarm.ResourceRequirements", {
        "Limits": _struct("swarm.Limit", {"NanoCPUs": _I64, "MemoryBytes": _I64, "Pids": _I64}),
        "Reservations": _struct("swarm.Resources", {
            "NanoCPUs": _I64, "MemoryBytes": _I64, "GenericResources": _slice(_GENERIC)})}),
    "RestartPolicy": _struct("swarm.RestartPolicy", {
        "Condition": _s("swarm.RestartPolicyCondition"), "Delay": _DUR, "MaxAttempts": _U64,
        "Window": _DUR}),
    "Placement": _struct("swarm.Placement", {
        "Constraints": _STRS,
        "Preferences": _slice(_struct("swarm.PlacementPreference", {
            "Spread": _struct("swarm.SpreadOver", {"SpreadDescriptor": _S})})),
        "MaxReplicas": _U64, "Platforms": _slice(_PLATFORM)}),
    "Networks": _slice(_NET_ATTACH), "LogDriver": _DRIVER, "ForceUpdate": _U64,
    "Runtime": _s("swarm.RuntimeType"),
})
_UPDATE = _struct("swarm.UpdateConfig", {
    "Parallelism": _U64, "Delay": _DUR, "FailureAction": _s("swarm.FailureAction"),
    "Monitor": _DUR, "MaxFailureRatio": _F32, "Order": _s("swarm.UpdateOrder")})
_SERVICE = _struct("swarm.ServiceSpec", {
    "Name": _S, "Labels": _LABELS, "TaskTemplate": _TASK,
    "Mode": _struct("swarm.ServiceMode", {
        "Replicated": _struct("swarm.ReplicatedService", {"Replicas": _U64}),
        "Global": _struct("swarm.GlobalService", {}),
        "ReplicatedJob": _struct("swarm.ReplicatedJob",
                                 {"MaxConcurrent": _U64, "TotalCompletions": _U64}),
        "GlobalJob": _struct("swarm.GlobalJob", {})}),
    "UpdateConfig": _UPDATE, "RollbackConfig": _UPDATE, "Networks": _slice(_NET_ATTACH),
    "EndpointSpec": _struct("swarm.EndpointSpec", {
        "Mode": _s("swarm.ResolutionMode"),
        "Ports": _slice(_struct("swarm.PortConfig", {
            "Name": _S, "Protocol": _s("swarm.PortConfigProtocol"), "TargetPort": _U32,
            "PublishedPort": _U32, "PublishMode": _s("swarm.PortConfigPublishMode")}))}),
})
_NODE = _struct("swarm.NodeSpec", {"Name": _S, "Labels": _LABELS, "Role": _s("swarm.NodeRole"),
                                   "Availability": _s("swarm.NodeAvailability")})
_SPEC = _struct("swarm.Spec", {
    "Name": _S, "Labels": _LABELS,
    "Orchestration": _struct("swarm.OrchestrationConfig", {"TaskHistoryRetentionLimit": _I64}),
    "Raft": _struct("swarm.RaftConfig", {
        "SnapshotInterval": _U64, "KeepOldSnapshots": _U64, "LogEntriesForSlowFollowers": _U64,
        "ElectionTick": _INT, "HeartbeatTick": _INT}),
    "Dispatcher": _struct("swarm.DispatcherConfig", {"HeartbeatPeriod": _DUR}),
    "CAConfig": _struct("swarm.CAConfig", {
        "NodeCertExpiry": _DUR,
        "ExternalCAs": _slice(_struct("swarm.ExternalCA", {
            "Protocol": _s("swarm.ExternalCAProtocol"), "URL": _S, "Options": _LABELS,
            "CACert": _S}), ptr=True),
        "SigningCACert": _S, "SigningCAKey": _S, "ForceRotate": _U64}),
    "TaskDefaults": _struct("swarm.TaskDefaults", {"LogDriver": _DRIVER}),
    "EncryptionConfig": _struct("swarm.EncryptionConfig", {"AutoLockManagers": _B}),
})
_SCHEMAS = {
    "ServiceSpec": _SERVICE,
    "NodeSpec": _NODE,
    "Spec": _SPEC,
    "InitRequest": _struct("swarm.InitRequest", {
        "ListenAddr": _S, "AdvertiseAddr": _S, "DataPathAddr": _S, "DataPathPort": _U32,
        "ForceNewCluster": _B, "Spec": _SPEC, "AutoLockManagers": _B,
        "Availability": _s("swarm.NodeAvailability"), "DefaultAddrPool": _STRS,
        "SubnetSize": _U32}),
    "JoinRequest": _struct("swarm.JoinRequest", {
        "ListenAddr": _S, "AdvertiseAddr": _S, "DataPathAddr": _S, "RemoteAddrs": _STRS,
        "JoinToken": _S, "Availability": _s("swarm.NodeAvailability")}),
}
# fmt: on
_MAX_F32 = 3.4028234663852886e38


def _json_kind_ok(t: _T, v: Any) -> bool:
    k = t.kind
    if k == "struct" or k == "map":
        return isinstance(v, dict)
    if k == "slice":
        return isinstance(v, list)
    if k == "string":
        return isinstance(v, str)
    if k == "bytes":
        return isinstance(v, str | list)
    if k == "bool":
        return isinstance(v, bool)
    if isinstance(v, bool) or not isinstance(v, int | float):
        return False
    if k == "int":
        return isinstance(v, int) and t.lo <= v <= t.hi
    return abs(v) <= _MAX_F32  # float32


def _walk(t: _T, v: Any, struct: str | None, path: tuple[str, ...]) -> str | None:
    """First Go decoding error for `v` as `t`, in document order; None if it decodes."""
    if v is None:
        return None
    if not _json_kind_ok(t, v):
        if isinstance(v, bool):
            what = "bool"
        elif isinstance(v, int | float):
            what = f"number {v}" if t.kind in ("int", "float32") else "number"
        elif isinstance(v, str):
            what = "string"
        else:
            what = "object" if isinstance(v, dict) else "array"
        if struct is None:
            return f"json: cannot unmarshal {what} into Go value of type {t.go}"
        return (
            f"json: cannot unmarshal {what} into Go struct field "
            f"{struct}.{'.'.join(path)} of type {t.go}"
        )
    if t.kind == "struct":
        assert t.fields is not None
        for key, item in v.items():
            ft = t.fields.get(key)
            if ft is not None and (err := _walk(ft, item, t.name, (*path, key))):
                return err
    elif t.kind in ("map", "slice"):
        assert t.elem is not None
        for item in v.values() if t.kind == "map" else v:
            if err := _walk(t.elem, item, struct, path):
                return err
    return None


def check_json_types(kind: str, body: Any) -> None:
    """Reject what Go's encoding/json would refuse to decode into the Docker type `kind`
    ("ServiceSpec", "NodeSpec", "Spec", "InitRequest", "JoinRequest"), with its message.
    Unknown fields and nulls are accepted, as Go does. Keys match exactly (Go would also
    accept other letter cases)."""
    err = _walk(_SCHEMAS[kind], body, None, ())
    if err:
        raise InvalidParameter(JSON_ERROR_PREFIX + err)


# ==================================================================== names, images

# swarmkit `isValidDNSName` ^[a-zA-Z0-9](?:[-_]*[A-Za-z0-9]+)*$, rewritten without nested
# quantifiers (same language; Python's backtracking would be exponential on the original).
_DNS_NAME = re.compile(r"[a-zA-Z0-9]+(?:[-_]+[a-zA-Z0-9]+)*")
_CONFIG_SECRET_NAME = re.compile(r"[a-zA-Z0-9]+(?:[a-zA-Z0-9\-_.]*[a-zA-Z0-9])?")


def validate_name(name: str | None) -> None:
    """swarmkit `validateAnnotations` on a service (or network) name."""
    if not name:
        raise InvalidArgument("meta: name must be provided")
    if not _DNS_NAME.fullmatch(name):
        raise InvalidArgument("name must be valid as a DNS name component")
    if len(name) > 63:
        raise InvalidArgument("name must be 63 characters or fewer")


def validate_annotations(annotations: Mapping[str, Any] | None) -> None:
    """swarmkit `validateAnnotations`: `{"Name": …, "Labels": …}` (labels are not checked)."""
    validate_name((annotations or {}).get("Name"))


def validate_config_or_secret_name(name: str | None) -> None:
    """swarmkit `validateConfigOrSecretAnnotations`."""
    if not name:
        raise InvalidArgument("name must be provided")
    if len(name) > 64 or not _CONFIG_SECRET_NAME.fullmatch(name):
        raise InvalidArgument(
            "invalid name, only 64 [a-zA-Z0-9-_.] characters allowed, "
            "and the start and end character must be [a-zA-Z0-9]"
        )


# distribution/reference grammar (Go RE2: \w is ASCII)
_ALNUM = r"[a-z0-9]+"
_PATH_COMPONENT = _ALNUM + r"(?:(?:[._]|__|[-]+)" + _ALNUM + ")*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = r"(?:" + _DOMAIN_COMPONENT + r"(?:\." + _DOMAIN_COMPONENT + r")*|\[(?:[a-fA-F0-9:]+)\])"
_NAME = r"(?:" + _HOST + r"(?::[0-9]+)?/)?" + _PATH_COMPONENT + r"(?:/" + _PATH_COMPONENT + ")*"
_REFERENCE = re.compile(
    r"(" + _NAME + r")(?::([\w][\w.-]{0,127}))?"
    r"(?:@([A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}))?",
    re.ASCII,
)
_IDENTIFIER = re.compile(r"[a-f0-9]{64}")
_DIGEST_HEX = {"sha256": 64, "sha384": 96, "sha512": 128}
_LOWER_HEX = re.compile(r"[a-f0-9]+")


def is_valid_image_reference(image: str) -> bool:
    """Would `reference.ParseNormalizedNamed(image)` (distribution/reference) accept it?"""
    if len(image) > 1024 or _IDENTIFIER.fullmatch(image):
        return False
    i = image.find("/")
    head = image[:i]
    if i == -1 or (
        not any(c in head for c in ".:") and head != "localhost" and head.lower() == head
    ):
        domain, remainder = "docker.io", image
    else:
        domain, remainder = head, image[i + 1 :]
    if domain == "index.docker.io":
        domain = "docker.io"
    if domain == "docker.io" and "/" not in remainder:
        remainder = "library/" + remainder
    remote = remainder.split(":", 1)[0]
    if remote.lower() != remote:
        return False
    m = _REFERENCE.fullmatch(domain + "/" + remainder)
    if m is None or len(m.group(1)) > 255:
        return False
    digest = m.group(3)
    if digest:
        algorithm, _, hexpart = digest.partition(":")
        want = _DIGEST_HEX.get(algorithm)
        if want is None or len(hexpart) != want or not _LOWER_HEX.fullmatch(hexpart):
            return False
    return True


# ==================================================================== helpers


def _obj(v: Any) -> Mapping[str, Any]:
    return v if isinstance(v, Mapping) else {}


def _list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else []


def _text(v: Any) -> str:
    return v if isinstance(v, str) else ""


def _num(v: Any) -> int | float:
    return v if isinstance(v, int | float) and not isinstance(v, bool) else 0


def _version_ge(v: str, want: str) -> bool:
    def parts(s: str) -> tuple[int, ...]:
        return tuple(int(p) if p.isdigit() else 0 for p in s.split("."))

    return parts(v) >= parts(want)


# ==================================================================== 2. daemon converters

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


# ==================================================================== 3. swarmkit controlapi

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


# ==================================================================== stateful parts, pure


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


# ==================================================================== nodes, cluster


def validate_node_spec(spec: Any) -> None:
    """`POST /nodes/{id}/update`: JSON types, then moby `NodeSpecToGRPC` (Role and
    Availability are required). swarmkit's `validateNodeSpec` only rejects a nil spec."""
    check_json_types("NodeSpec", spec)
    spec = _obj(spec)
    role = _text(spec.get("Role"))
    if role.upper() not in ("WORKER", "MANAGER"):
        raise InvalidParameter(f"invalid Role: {go_quote(role)}")
    availability = _text(spec.get("Availability"))
    if availability.upper() not in ("ACTIVE", "PAUSE", "DRAIN"):
        raise InvalidParameter(f"invalid Availability: {go_quote(availability)}")


def validate_cluster_spec(spec: Any, *, init: bool = False) -> None:
    """`POST /swarm/update` (default) or the `Spec` of `POST /swarm/init` (`init=True`).

    Zero durations mean "keep the current value" and are not checked. At init Docker applies
    the spec after the swarm exists and reports a failure as a plain 500
    `error updating cluster settings: …`; shoal may check first, the text is the same."""
    if init:
        check_json_types("InitRequest", {"Spec": spec})
    else:
        check_json_types("Spec", spec)
    spec = _obj(spec)
    if _text(spec.get("Name")) not in ("", "default"):
        raise InvalidParameter('swarm spec must be named "default"')
    try:
        ca = _obj(spec.get("CAConfig"))
        for ext in map(_obj, _list(ca.get("ExternalCAs"))):
            protocol = _text(ext.get("Protocol"))
            if protocol.upper() != "CFSSL":
                raise InvalidParameter(f"invalid protocol: {go_quote(protocol)}")
        expiry = _num(ca.get("NodeCertExpiry"))
        if expiry != 0 and expiry < 3600 * 10**9:
            raise InvalidArgument("minimum certificate expiry time is: 1h0m0s")
        if _num(_obj(spec.get("Dispatcher")).get("HeartbeatPeriod")) < 0:
            raise InvalidArgument("heartbeat time period cannot be a negative duration")
    except ShoalError as e:
        if init:
            raise DaemonError(f"error updating cluster settings: {e}") from None
        raise
