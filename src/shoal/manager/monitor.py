"""The leader's node monitor: nodes that no manager serves go down, managers are reachable
or not.

A node is served while some manager's dispatcher holds its session (its claim, see
`shoal.manager.dispatcher.claims`). One that has had no claim for a heartbeat grace is
marked down — the node of a manager that died, once its agents had the grace to reconnect
to another manager, and nodes that never came back after the leader started (they get
`STARTUP_GRACE` first: their agents may be waiting out a reconnect back-off). A leader
change marks nothing down by itself: nodes whose sessions live on keep their state.

A manager is `reachable` while its own node is claimed (its agent's session with its own
dispatcher, under its own lease: alive and in touch with a quorum), else `unreachable`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from shoal.api.models import Node
from shoal.manager.dispatcher.dispatcher import down, grace, heartbeat_period
from shoal.store.store import Change, Store

log = logging.getLogger(__name__)

STARTUP_GRACE = 10.0  # seconds, beyond the agents' longest reconnect back-off

Holders = Callable[[], Awaitable[dict[str, str]]]


def unserved(
    nodes: list[Node], held: set[str], since: dict[str, float], now: float, limit: float
) -> list[str]:
    """The nodes to mark down (pure): not down, unclaimed since more than `limit` seconds.
    `since` (node → when it was first seen unclaimed) is kept up to date."""
    out = []
    for node in nodes:
        if node.status.state == "down" or node.id in held:
            since.pop(node.id, None)
            continue
        first = since.setdefault(node.id, now)
        if now - first > limit:
            out.append(node.id)
    return out


def reachability(node: Node, held: set[str]) -> str | None:
    """A manager's reachability as its claim says, or None if it is right already."""
    if node.manager_status is None:
        return None
    wanted = "reachable" if node.id in held else "unreachable"
    return None if node.manager_status.reachability == wanted else wanted


class NodeMonitor:
    def __init__(
        self, store: Store, holders: Holders, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.holders = holders
        self.clock = clock

    async def run(self) -> None:
        since: dict[str, float] = {}
        start = self.clock()
        for node in self.store.nodes():  # the startup grace, for what is unclaimed now
            since[node.id] = start + STARTUP_GRACE - grace(self.store)
        while True:
            await asyncio.sleep(heartbeat_period(self.store) / 2)
            try:
                held = set(await self.holders())
            except Exception as e:  # noqa: BLE001 - no quorum: nothing can be written either
                log.debug("node monitor: %s", e)
                continue
            nodes = list(self.store.nodes())
            changes: dict[str, Change[Node]] = {}
            for node_id in unserved(nodes, held, since, self.clock(), grace(self.store)):
                log.warning("node %s has no session with any manager: down", node_id)
                changes[node_id] = down
            for node in nodes:
                wanted = reachability(node, held)
                if wanted is not None and node.id not in changes:
                    changes[node.id] = _reachability(wanted)
            if changes:
                await self.store.modify(Node, changes)


def _reachability(wanted: str) -> Change[Node]:
    def change(node: Node) -> bool:
        if node.manager_status is None or node.manager_status.reachability == wanted:
            return False
        node.manager_status.reachability = wanted
        return True

    return change
