"""The kinds of stored objects, their keys, and their encoding (with sealed fields).

Keys are `/shoal/<kind>/<id>` → the object's Docker JSON without `Version` (the version is
the key's etcd `mod_revision`). Fields listed in `SEALED` (dotted JSON paths) are replaced by
a sealed copy before the object is written (`{"Sealed": "<AES-GCM>"}`) and opened again when
it is read.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from shoal.api.models import Attachment, Config, Meta, Network, Node, Secret, Service, Swarm, Task
from shoal.store.seal import Sealer

PREFIX = "/shoal/"
# Every key shoal writes starts with this (`/shoal/`, `/shoal-leader`, `/shoal-sessions/`):
# the mirror watches it all so that its revision keeps up with etcd's.
WATCH_PREFIX = "/shoal"
KINDS: dict[str, type[Meta]] = {
    "swarm": Swarm,
    "nodes": Node,
    "services": Service,
    "tasks": Task,
    "networks": Network,
    "attachments": Attachment,
    "secrets": Secret,
    "configs": Config,
}
_KIND_OF: dict[type[Meta], str] = {cls: kind for kind, cls in KINDS.items()}
SEALED: dict[str, tuple[str, ...]] = {  # JSON paths, dotted
    "swarm": ("JoinTokens", "UnlockKey"),
    "services": ("RegistryAuth", "PreviousRegistryAuth"),  # the clients' registry credentials
    "secrets": ("Spec.Data",),
    "configs": ("Spec.Data",),  # no payload is plaintext in etcd
}
SENSITIVE = "sensitive/"  # `/shoal/sensitive/<name>`: sealed values that are not objects

T = TypeVar("T", bound=Meta)


NAMED = frozenset({"services", "networks", "secrets", "configs"})  # names unique per kind
NAMES = "names/"  # `/shoal/names/<kind>/<name>` → the ID of the object of that name


def key_of(kind: str, id: str) -> str:
    return f"{PREFIX}{kind}/{id}"


def name_key(obj: Meta) -> str | None:
    """The key that holds `obj`'s name for it, if its kind's names are unique: written in
    the transaction that creates it, so that two creates of one name cannot both succeed."""
    kind = kind_of(type(obj))
    name = getattr(getattr(obj, "spec", None), "name", "")
    return f"{PREFIX}{NAMES}{kind}/{name}" if kind in NAMED and name else None


def kind_of(cls: type[Meta]) -> str:
    try:
        return _KIND_OF[cls]
    except KeyError:
        raise TypeError(f"{cls.__name__} is not a stored kind") from None


def encode(obj: Meta, sealer: Sealer) -> bytes:
    kind = kind_of(type(obj))
    data = obj.model_dump(by_alias=True, exclude_none=True, mode="json")
    data.pop("Version", None)
    for path in SEALED.get(kind, ()):
        parent, name = _parent(data, path)
        if parent is not None and name in parent:
            plain = json.dumps(parent[name], separators=(",", ":")).encode()
            parent[name] = {"Sealed": sealer.seal(plain, key_of(kind, obj.id)).decode()}
    return json.dumps(data, separators=(",", ":")).encode()


def decode(kind: str, id: str, value: bytes, revision: int, sealer: Sealer) -> Meta:
    cls = KINDS[kind]
    sealed = SEALED.get(kind)
    if sealed:
        data: dict[str, Any] = json.loads(value)
        for path in sealed:
            parent, name = _parent(data, path)
            box = parent.get(name) if parent is not None else None
            if parent is not None and isinstance(box, dict) and "Sealed" in box:
                parent[name] = json.loads(sealer.open(box["Sealed"].encode(), key_of(kind, id)))
        obj = cls.model_validate(data)
    else:
        obj = cls.model_validate_json(value)
    obj.version.index = revision
    return obj


def _parent(data: dict[str, Any], path: str) -> tuple[dict[str, Any] | None, str]:
    """The object holding the field a dotted path names (None if there is none), and the
    field's name."""
    *steps, name = path.split(".")
    parent: Any = data
    for step in steps:
        parent = parent.get(step) if isinstance(parent, dict) else None
    return (parent if isinstance(parent, dict) else None), name
