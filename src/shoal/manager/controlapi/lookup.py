"""Docker's way of naming an object in a request: full ID, then exact name, then a unique ID
prefix; 404 when nothing matches, 400 when a name or prefix is ambiguous (moby's
`daemon/cluster/helpers.go`: `errdefs.InvalidParameter`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from shoal.api.errors import InvalidParameter, NotFound
from shoal.api.models import Meta

T = TypeVar("T", bound=Meta)


def resolve(
    ref: str,
    by_id: Callable[[str], T | None],
    objs: Iterable[T],
    name_of: Callable[[T], str | None],
    what: str,
) -> T:
    obj = by_id(ref)
    if obj is not None:
        return obj
    candidates = list(objs)
    named = [o for o in candidates if name_of(o) == ref]
    if len(named) == 1:
        return named[0]
    if len(named) > 1:
        raise InvalidParameter(f"{what} {ref} is ambiguous ({len(named)} matches found)")
    prefixed = [o for o in candidates if o.id.startswith(ref)]
    if len(prefixed) == 1:
        return prefixed[0]
    if len(prefixed) > 1:
        raise InvalidParameter(f"{what} {ref} is ambiguous ({len(prefixed)} matches found)")
    raise NotFound(f"{what} {ref} not found")
