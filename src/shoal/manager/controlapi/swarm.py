"""The swarm object in the control API: inspect, update, rotate join tokens."""

from __future__ import annotations

from typing import Any

from shoal.api.errors import NOT_A_MANAGER, BadRequest, NotAcceptable, OutOfSequence
from shoal.api.models import Swarm, SwarmSpec
from shoal.api.validation import validate_cluster_spec
from shoal.ca.authority import der_of
from shoal.ca.tokens import new_token
from shoal.store.store import Store


def get(store: Store) -> Swarm:
    swarm = store.swarm()
    if swarm is None:
        raise NotAcceptable(NOT_A_MANAGER)
    return swarm


async def update(
    store: Store, version: int | None, body: Any, rotate_worker: bool, rotate_manager: bool
) -> Swarm:
    swarm = get(store)
    if not isinstance(body, dict):
        raise BadRequest("invalid JSON: the body must be a swarm spec object")
    validate_cluster_spec(body)
    if version != swarm.version.index:
        raise OutOfSequence()
    swarm = swarm.model_copy(deep=True)
    swarm.spec = SwarmSpec.from_api(body)
    if not swarm.spec.name:
        swarm.spec.name = "default"
    if rotate_worker or rotate_manager:
        ca_der = der_of((swarm.tls_info.trust_root or "").encode() if swarm.tls_info else b"")
        if rotate_worker:
            swarm.join_tokens.worker = new_token(ca_der)
        if rotate_manager:
            swarm.join_tokens.manager = new_token(ca_der)
    return await store.update(swarm)
