"""Stage 1: what Go's encoding/json refuses to decode into Docker's request types, with its
message (a table of the Go types of moby's `api/types`)."""

from __future__ import annotations

from typing import Any

from shoal.api.errors import InvalidParameter

# moby >= 23 prefixes decoder errors (httputils.ReadJSON); 20.10 sent the bare Go text.
JSON_ERROR_PREFIX = "invalid JSON: "


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
