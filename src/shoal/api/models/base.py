"""What every model shares: the base class with Docker's JSON names (the alias rules, Go's
case-insensitive field matching), how Docker's Go types write that JSON (`GoJSON`), the
metadata of stored objects, and Docker's time format."""

from __future__ import annotations

import base64
import copy
import datetime as _dt
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Self, Union, get_args, get_origin

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, model_validator
from pydantic.alias_generators import to_pascal

_SPECIAL = {
    "id": "ID",
    "node_id": "NodeID",
    "service_id": "ServiceID",
    "container_id": "ContainerID",
    "pid": "PID",
    "tty": "TTY",
    "dns_config": "DNSConfig",
    "nano_cpus": "NanoCPUs",
    "os": "OS",
    "addr": "Addr",
    "secret_id": "SecretID",
    "config_id": "ConfigID",
    "uid": "UID",
    "gid": "GID",
    "virtual_ips": "VirtualIPs",
    "ca_config": "CAConfig",
    "tls_info": "TLSInfo",
    "external_cas": "ExternalCAs",
    "url": "URL",
    "node_cert_expiry": "NodeCertExpiry",
    "signing_ca_cert": "SigningCACert",
    "signing_ca_key": "SigningCAKey",
    "container_status": "ContainerStatus",
    "up_to_date": "UpToDate",
    "ipv6_enabled": "IPv6Enabled",
    "ipam_options": "IPAMOptions",
    "network_id": "NetworkID",
}


def _alias(name: str) -> str:
    if name in _SPECIAL:
        return _SPECIAL[name]
    return to_pascal(name)


class _Names:
    def __init__(self, cls: type[BaseModel]) -> None:
        aliases = [f.alias or name for name, f in cls.model_fields.items()]
        self.exact = set(aliases) | set(cls.model_fields)
        self.folded = {a.lower(): a for a in aliases}


_NAMES: dict[type, _Names] = {}


def _names_of(cls: type[BaseModel]) -> _Names:
    names = _NAMES.get(cls)
    if names is None:
        names = _NAMES[cls] = _Names(cls)
    return names


@dataclass(frozen=True)
class GoJSON:
    """How Docker writes a type's JSON where the model, which leaves out what it does not hold
    (None), would write it otherwise — Go's `encoding/json` rules and what moby's conversion
    from SwarmKit's types fills in (`daemon/cluster/convert`), declared once per model:

    * `always`: fields Docker always writes (no `omitempty`, or filled in by the conversion),
      with the value Docker shows when the model holds none;
    * `omitempty`: fields Docker leaves out at their zero value (0, "", false, empty);
    * `nulls`: list fields Docker writes as null when empty (an empty list that crossed
      SwarmKit's gRPC arrives nil);
    * `never`: fields Docker's type does not have (shoal keeps them for itself);
    * `inner`: rules for a field's object that hold only in this place (a service's
      `TaskTemplate` shows `Runtime`, a task's `Spec` never does).

    Besides, floats are written as Go writes them: `0` and `1`, not `0.0` and `1.0`.
    Only `to_api()` applies these; the store keeps what the model holds."""

    always: Mapping[str, Any] = field(default_factory=dict)
    omitempty: frozenset[str] = frozenset()
    nulls: frozenset[str] = frozenset()
    never: frozenset[str] = frozenset()
    inner: Mapping[str, GoJSON] = field(default_factory=dict)

    def apply(self, data: dict[str, Any]) -> None:
        for k in self.never:
            data.pop(k, None)
        for k in self.omitempty:
            if k in data and not data[k]:
                del data[k]
        for k, v in self.always.items():
            if data.get(k) is None:
                data[k] = copy.deepcopy(v)
        for k in self.nulls:
            if data.get(k) == []:
                data[k] = None


@dataclass(frozen=True)
class _Plan:
    """A model class's `GoJSON`, its float fields, and its fields' model classes whose own
    plans have something to do (computed once per class)."""

    rules: GoJSON
    floats: tuple[str, ...]
    children: tuple[tuple[str, _Plan, bool], ...]  # (JSON name, plan, a list of them)

    def apply(self, data: dict[str, Any]) -> dict[str, Any]:
        self.rules.apply(data)
        for k in self.floats:
            v = data.get(k)
            if isinstance(v, float) and v.is_integer():
                data[k] = int(v)
        for k, plan, many in self.children:
            v = data.get(k)
            if many and isinstance(v, list):
                for item in v:
                    if isinstance(item, dict):
                        plan.apply(item)
            elif isinstance(v, dict):
                plan.apply(v)
        for k, rules in self.rules.inner.items():
            v = data.get(k)
            if isinstance(v, dict):
                rules.apply(v)
        return data


_PLANS: dict[type, _Plan | None] = {}


def _field_type(annotation: Any) -> tuple[Any, bool]:
    """`X | None` → (X, False); `list[X] | None` → (X, True)."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _field_type(args[0])
        return None, False
    if get_origin(annotation) is list:
        (item,) = get_args(annotation) or (None,)
        return _field_type(item)[0], True
    return annotation, False


def _plan_of(cls: type[Model]) -> _Plan | None:
    """None when neither the class nor any model below it has a rule (nothing to walk)."""
    if cls in _PLANS:
        return _PLANS[cls]
    _PLANS[cls] = None  # (no model contains itself; this ends the walk if one ever did)
    floats, children = [], []
    for name, f in cls.model_fields.items():
        kind, many = _field_type(f.annotation)
        key = f.alias or name
        if kind is float:
            floats.append(key)
        elif isinstance(kind, type) and issubclass(kind, Model):
            child = _plan_of(kind)
            if child is not None:
                children.append((key, child, many))
    rules = cls.GO_JSON
    plan = None
    if floats or children or rules != GoJSON():
        plan = _Plan(rules, tuple(floats), tuple(children))
    _PLANS[cls] = plan
    return plan


class Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=_alias, populate_by_name=True, extra="allow", validate_assignment=False
    )
    GO_JSON: ClassVar[GoJSON] = GoJSON()

    @model_validator(mode="before")
    @classmethod
    def _any_case(cls, data: Any) -> Any:
        """Go's JSON decoder (and so dockerd) matches field names case-insensitively: a client
        that sends `HealthCheck` means `Healthcheck`."""
        if not isinstance(data, dict):
            return data
        names = _names_of(cls)
        if all(k in names.exact for k in data):
            return data
        out = {}
        for k, v in data.items():
            out[names.folded.get(k.lower(), k) if k not in names.exact else k] = v
        return out

    def to_api(self) -> dict[str, Any]:
        """The JSON Docker's API shows: Docker's names, empty (None) fields left out, and
        each model's `GO_JSON` rules (what Docker always writes, or never)."""
        data = self.model_dump(by_alias=True, exclude_none=True, mode="json")
        plan = _plan_of(type(self))
        return data if plan is None else plan.apply(data)

    @classmethod
    def from_api(cls, data: Any) -> Self:
        return cls.model_validate(data)


def _from_base64(value: Any) -> Any:
    return base64.b64decode(value, validate=True) if isinstance(value, str) else value


# Bytes, which Docker's JSON writes in standard base64 (Go's `[]byte`).
Base64Bytes = Annotated[
    bytes,
    BeforeValidator(_from_base64),
    PlainSerializer(lambda b: base64.b64encode(b).decode(), return_type=str, when_used="json"),
]


def now() -> str:
    """The current time as Docker writes times."""
    return format_time(_dt.datetime.now(_dt.UTC))


def timestamp(t: float) -> str:
    """POSIX seconds as Docker writes times."""
    return format_time(_dt.datetime.fromtimestamp(t, _dt.UTC))


def format_time(t: _dt.datetime) -> str:
    """As Go writes a `time.Time` (RFC 3339 with nanoseconds, Go's `RFC3339Nano`): in UTC
    with `Z`, the fraction without trailing zeros and none on a whole second
    (`2016-06-07T21:07:31.29Z`, `2016-06-07T21:07:31Z`)."""
    t = t.astimezone(_dt.UTC)
    fraction = f".{t.microsecond:06d}".rstrip("0").rstrip(".")
    return (
        f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}"
        f"{fraction}Z"
    )


def parse_time(s: str) -> float:
    """RFC 3339 (up to nanoseconds) → POSIX seconds."""
    base, _, frac = s.rstrip("Z").partition(".")
    t = _dt.datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=_dt.UTC).timestamp()
    return t + (float("0." + frac) if frac else 0.0)


class Version(Model):
    GO_JSON = GoJSON(omitempty=frozenset({"Index"}))

    index: int = 0


class Meta(Model):
    """ID, version and timestamps common to every stored object. Fields a model keeps in the
    store that are no part of its Docker JSON (a task's `Endpoint`, a service's registry
    credentials — sealed there, see `shoal.store.kinds.SEALED`) are its `GO_JSON.never`:
    `to_api()` leaves them out, so no API answer shows them."""

    id: str = ""
    version: Version = Field(default_factory=Version)
    created_at: str | None = None
    updated_at: str | None = None
