"""Secrets and configs in the control API (swarmkit `controlapi/secret.go`, `config.go`):
create, list, get, update (labels only), remove (refused while a service refers to it).

The two differ only in their name, their size limit, and what a service's container spec
calls its references to them; `SECRETS` and `CONFIGS` say so, and every function takes one.
The payload is sealed by the store (`shoal.store.kinds.SEALED`) before it reaches etcd.
"""

from __future__ import annotations

import base64
import binascii
import logging
import posixpath
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from shoal.api.errors import (
    AlreadyExists,
    BadRequest,
    InvalidArgument,
    NameTaken,
    RPCUnknown,
)
from shoal.api.models import (
    SECRETS_DIR,
    Config,
    ConfigSpec,
    ContainerSpec,
    Payload,
    Secret,
    SecretSpec,
    Service,
    secret_path,
)
from shoal.api.naming import new_id
from shoal.api.validation import validate_config_or_secret_name
from shoal.manager.controlapi.filters import Filters
from shoal.manager.controlapi.lookup import resolve
from shoal.store.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Kind:
    what: str  # "secret" | "config"
    cls: type[Secret] | type[Config]
    spec: type[SecretSpec] | type[ConfigSpec]
    max_size: int  # bytes: a payload is smaller
    all: Callable[[Store], Iterable[Payload]]
    refs: Callable[[ContainerSpec], list[str]]  # the IDs a container spec refers to


SECRETS = Kind(
    "secret", Secret, SecretSpec, 500 * 1024, lambda s: s.secrets(),
    lambda cs: [r.secret_id for r in cs.secrets or []],
)  # fmt: skip
CONFIGS = Kind(
    "config", Config, ConfigSpec, 1000 * 1024, lambda s: s.configs(),
    lambda cs: [r.config_id for r in cs.configs or []],
)  # fmt: skip


def get(store: Store, kind: Kind, ref: str) -> Payload:
    found: Payload = resolve(
        ref, lambda id: store.get(kind.cls, id), kind.all(store), lambda o: o.name, kind.what
    )
    return found


def list_all(store: Store, kind: Kind, filters: Filters) -> list[Payload]:
    filters.check({"id", "name", "names", "label"})
    out = []
    for obj in kind.all(store):
        if not filters.match_prefix("id", obj.id) or not filters.match_prefix("name", obj.name):
            continue
        if not filters.match_exact("names", obj.name):
            continue
        if not filters.match_labels(obj.spec.labels):
            continue
        out.append(obj)
    return sorted(out, key=lambda o: o.id)


def _spec(kind: Kind, body: Any) -> SecretSpec | ConfigSpec:
    if not isinstance(body, dict):
        raise BadRequest(f"invalid JSON: the body must be a {kind.what} spec object")
    data = body.get("Data")
    if data is not None and not isinstance(data, str):
        raise BadRequest(
            f"json: cannot unmarshal {type(data).__name__} into Go struct field "
            f"{kind.what.capitalize()}Spec.Data of type []uint8"
        )
    try:
        raw = base64.b64decode(data or "", validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("illegal base64 data at input byte 0") from None
    dropped = ("Data",) if kind is SECRETS else ("Data", "Driver")  # a config has no driver
    try:
        spec = kind.spec.from_api({k: v for k, v in body.items() if k not in dropped})
    except ValueError as e:
        raise BadRequest(f"invalid {kind.what} spec: {e}") from e
    spec.data = raw
    return spec


def validate(store: Store, kind: Kind, body: Any) -> Payload:
    spec = _spec(kind, body)
    validate_config_or_secret_name(spec.name)
    driver = getattr(spec, "driver", None)
    if driver is not None and driver.name:
        # No secret store plugins here: Docker's answer for a plugin it does not have.
        raise RPCUnknown(f'plugin "{driver.name}" not found')
    size = len(spec.data or b"")
    if size == 0 or size >= kind.max_size:
        raise InvalidArgument(
            f"{kind.what} data must be larger than 0 and less than {kind.max_size} bytes"
        )
    if any(o.name == spec.name for o in kind.all(store)):
        raise AlreadyExists(f"{kind.what} {spec.name} already exists")
    obj: Payload = kind.cls(id=new_id(), spec=spec)  # type: ignore[arg-type]
    return obj


async def create(store: Store, kind: Kind, body: Any) -> Payload:
    obj = validate(store, kind, body)
    try:
        created = await store.create(obj)
    except NameTaken:  # created meanwhile, through another manager
        raise AlreadyExists(f"{kind.what} {obj.name} already exists") from None
    log.info("%s %s (%s) created", kind.what, obj.name, obj.id)
    return created


async def update(store: Store, kind: Kind, ref: str, version: int | None, body: Any) -> Payload:
    """Only the labels may change (swarmkit `UpdateSecret`/`UpdateConfig`)."""
    current = get(store, kind, ref)
    spec = _spec(kind, body)
    if version is None:
        raise BadRequest(f"invalid {kind.what} version")
    if version != current.version.index:
        raise RPCUnknown("update out of sequence")
    kept = current.spec
    if spec.name != kept.name or (spec.data and spec.data != kept.data):
        raise InvalidArgument("only updates to Labels are allowed")
    changed = current.model_copy(deep=True)
    changed.spec.labels = spec.labels
    return await store.update(changed)


def users(store: Store, kind: Kind, obj: Payload) -> list[Service]:
    return [
        s for s in store.services()
        if s.spec.task_template.container_spec is not None
        and obj.id in kind.refs(s.spec.task_template.container_spec)
    ]  # fmt: skip


async def remove(store: Store, kind: Kind, ref: str) -> None:
    obj = get(store, kind, ref)
    using = users(store, kind, obj)
    if using:
        names = ", ".join(s.spec.name for s in sorted(using, key=lambda s: s.id))
        plural = "s" if len(using) > 1 else ""
        raise InvalidArgument(
            f"{kind.what} '{obj.name}' is in use by the following service{plural}: {names}"
        )
    await store.delete(obj)
    log.info("%s %s (%s) removed", kind.what, obj.name, obj.id)


def check_references(store: Store, cs: ContainerSpec | None) -> None:
    """swarmkit `checkSecretExistence` and `checkConfigExistence`: every reference names a
    secret (config) that exists, by its ID and its current name. And, shoal's own refusal, a
    relative secret target stays in `/run/secrets` (Docker would put `../../etc/x` at
    `/etc/x`: an absolute target says that plainly)."""
    if cs is None:
        return
    for ref in cs.secrets or []:
        target = ref.file.name if ref.file is not None else ""
        path = posixpath.normpath(secret_path(target))
        if not target.startswith("/") and not path.startswith(SECRETS_DIR + "/"):
            raise InvalidArgument(
                f"malformed file secret reference, invalid target file name provided: "
                f"{target} leaves {SECRETS_DIR} (give an absolute target to put the secret "
                f"elsewhere)"
            )
    for kind, refs in (
        (SECRETS, [(r.secret_id, r.secret_name) for r in cs.secrets or []]),
        (CONFIGS, [(r.config_id, r.config_name) for r in cs.configs or []]),
    ):
        missing = []
        for id, name in refs:
            found = store.get(kind.cls, id)
            if found is None or found.name != name:
                missing.append(name)
        if missing:
            what = kind.what + ("s" if len(missing) > 1 else "")
            raise InvalidArgument(f"{what} not found: {', '.join(missing)}")
