"""What every model shares: the base class with Docker's JSON names (the alias rules, Go's
case-insensitive field matching), the metadata of stored objects, and Docker's time format."""

from __future__ import annotations

import datetime as _dt
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
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


class Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=_alias, populate_by_name=True, extra="allow", validate_assignment=False
    )

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
        """Docker JSON: Docker's names, empty (None) fields left out like Go's omitempty."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")

    @classmethod
    def from_api(cls, data: Any) -> Self:
        return cls.model_validate(data)


def now() -> str:
    """The current time as the RFC 3339 (nanosecond) string Docker uses."""
    return format_time(_dt.datetime.now(_dt.UTC))


def timestamp(t: float) -> str:
    """POSIX seconds as the RFC 3339 (nanosecond) string Docker uses."""
    return format_time(_dt.datetime.fromtimestamp(t, _dt.UTC))


def format_time(t: _dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"


def parse_time(s: str) -> float:
    """RFC 3339 (up to nanoseconds) → POSIX seconds."""
    base, _, frac = s.rstrip("Z").partition(".")
    t = _dt.datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=_dt.UTC).timestamp()
    return t + (float("0." + frac) if frac else 0.0)


class Version(Model):
    index: int = 0


class Meta(Model):
    """ID, version and timestamps common to every stored object."""

    id: str = ""
    version: Version = Field(default_factory=Version)
    created_at: str | None = None
    updated_at: str | None = None
