"""The swarm object in the control API: inspect, update, rotate join tokens, the unlock key
(autolock)."""

from __future__ import annotations

from typing import Any

from shoal.api.errors import NOT_A_MANAGER, BadRequest, NotAcceptable, OutOfSequence
from shoal.api.models import Swarm, SwarmSpec
from shoal.api.validation import validate_cluster_spec
from shoal.ca.authority import der_of
from shoal.ca.tokens import new_token
from shoal.store.seal import new_unlock_key
from shoal.store.store import Store


def get(store: Store) -> Swarm:
    swarm = store.swarm()
    if swarm is None:
        raise NotAcceptable(NOT_A_MANAGER)
    return swarm


def unlock_key(store: Store) -> str:
    """`GET /swarm/unlockkey`: the key while autolock is on, else "" (the CLI then says
    `no unlock key is set`)."""
    return get(store).unlock_key or ""


async def update(
    store: Store,
    version: int | None,
    body: Any,
    rotate_worker: bool,
    rotate_manager: bool,
    rotate_unlock: bool = False,
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
    # As SwarmKit: a key is made when autolock goes on or on rotation, dropped when it goes
    # off (rotating with autolock off does nothing); every manager then re-wraps its data key.
    if swarm.spec.encryption_config.auto_lock_managers:
        if rotate_unlock or not swarm.unlock_key:
            swarm.unlock_key = new_unlock_key()
    else:
        swarm.unlock_key = None
    return await store.update(swarm)


def leave_refusal(store: Store | None, node_id: str, raft: bool = True) -> str:
    """Why a manager may not leave without `--force`, in Docker's words (moby's `Leave`):
    the last manager erases the swarm; one whose leaving breaks the quorum says how many
    managers are left; the others the general warning. `store` None: no quorum now (the
    counts unknown, as Docker's without a leader). `raft` False: the managers are not the
    store's quorum (an external etcd cluster is), so only the last one is told more."""
    msg = "You are attempting to leave the swarm on a node that is participating as a manager. "
    if store is not None and not raft:
        if not any(n.spec.role == "manager" and n.id != node_id for n in store.nodes()):
            return msg + (
                "Removing the last manager erases all current state of the swarm. Use "
                "`--force` to ignore this message. "
            )
        return msg + "Use `--force` to suppress this message."
    if store is not None:
        statuses = {n.id: n.manager_status for n in store.nodes() if n.manager_status}
        reachable = len(
            [i for i, ms in statuses.items() if i == node_id or ms.reachability == "reachable"]
        )
        unreachable = len(statuses) - reachable
        if reachable - 2 <= unreachable:  # leaving loses the quorum
            if reachable == 1 and unreachable == 0:
                return msg + (
                    "Removing the last manager erases all current state of the swarm. Use "
                    "`--force` to ignore this message. "
                )
            msg += (
                f"Removing this node leaves {reachable - 1} managers out of "
                f"{reachable + unreachable}. Without a Raft quorum your swarm will be "
                "inaccessible. "
            )
    return msg + (
        "The only way to restore a swarm that has lost consensus is to reinitialize it with "
        "`--force-new-cluster`. Use `--force` to suppress this message."
    )
