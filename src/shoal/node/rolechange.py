"""`docker node promote` / `demote` as the node carries them out: live, the swarm parts
stopped and started again in the other role, task containers kept."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil

from shoal.api.errors import DaemonError
from shoal.api.models import Node
from shoal.ca.tls import encrypt_key, write_certs
from shoal.manager.dispatcher.server import managers_of
from shoal.node import bootstrap
from shoal.node.addresses import host_of
from shoal.node.clusterstore import LEAVE_PATIENCE, leave_cluster
from shoal.node.parts import SwarmParts
from shoal.node.state import LocalState
from shoal.store.etcd import Etcd
from shoal.store.mirrored import MirroredStore

log = logging.getLogger(__name__)


class RoleChanges(SwarmParts):
    async def _follow_role(self, store: MirroredStore, node_id: str) -> None:
        """A manager demoted (`docker node demote`, on any manager) sees it in its store."""
        events = store.subscribe()
        try:
            while True:
                node = store.get(Node, node_id)
                if node is not None and node.spec.role == "worker":
                    self._on_role("worker")
                while not any(e.kind == "nodes" and e.id == node_id for e in await events.get()):
                    pass
        finally:
            store.unsubscribe(events)

    def _on_role(self, role: str) -> None:
        """The store gives this node another role: carried out apart from the swarm parts,
        which it stops and starts again."""
        if self._role_change is None or self._role_change.done():
            self._role_change = asyncio.create_task(self._change_role(role))

    async def _change_role(self, role: str) -> None:
        for attempt in range(5):
            try:
                async with self._lock:
                    state = self.state
                    if state is None or state.role == role or self._locked:
                        return
                    started = asyncio.get_running_loop().time()
                    if role == "manager":
                        await self._promote(state)
                    else:
                        await self._demote(state)
                    took = asyncio.get_running_loop().time() - started
                    log.info("this node is a %s now (%.2f s)", role, took)
                    return
            except Exception as e:  # noqa: BLE001 - a manager busy or away: again
                log.warning("becoming a %s (attempt %d): %s", role, attempt + 1, e)
                await asyncio.sleep(2)

    async def _promote(self, state: LocalState) -> None:
        """Worker → manager: a manager certificate, the data key and a learner member from a
        manager; the worker parts stop (task containers keep running) and the manager parts
        start, adopting them as after a restart."""
        addr = host_of(state.advertise_addr)
        answer, key_pem = await bootstrap.renew(
            state.managers, self.dir.certs, addr, state.advertise_addr,
            self._peer_url(state.advertise_addr),
        )  # fmt: skip
        if answer.DataKey is None:
            return  # demoted again meanwhile
        await self._stop_for_role_change()
        write_certs(self.dir.certs, answer.RootCA.encode(), answer.Certificate.encode(),
                    encrypt_key(key_pem, answer.DataKey))  # fmt: skip
        shutil.rmtree(self.dir.etcd, ignore_errors=True)
        self.keys.create(answer.DataKey, None)  # wrapped once it sees autolock is on
        state.role = "manager"
        fields = self._store_fields()
        state.external_etcd = fields["external_etcd"]
        state.etcd_endpoint = fields["etcd_endpoint"]
        state.etcd_cluster = answer.EtcdCluster
        state.managers = answer.Managers or state.managers
        self.dir.save(state)
        await self._start_swarm(state)

    async def _demote(self, state: LocalState) -> None:
        """Manager → worker: a worker certificate from another manager; leadership handed
        over; the etcd member taken out of the cluster; the manager parts stop, the etcd data
        and the data key go; the node comes back as a worker (task containers kept)."""
        store = self.store
        assert store is not None
        others = [a for a in managers_of(store) if a != state.advertise_addr]
        addr = host_of(state.advertise_addr)
        answer, key_pem = await bootstrap.renew(
            others, self.dir.certs, addr, state.advertise_addr, "", self.keys.data_key
        )
        if answer.DataKey is not None:
            return  # promoted again meanwhile
        if self._manager is not None and self._manager.is_leader:
            await self._manager.election.resign()  # the others campaign at once
        if not state.external_etcd:  # its own member hands over and leaves the cluster
            if isinstance(store.kv, Etcd):
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(store.kv.hand_over(), 2)
            await self._leave_etcd_cluster(store)
        await self._stop_for_role_change()
        write_certs(self.dir.certs, answer.RootCA.encode(), answer.Certificate.encode(), key_pem)
        shutil.rmtree(self.dir.etcd, ignore_errors=True)
        self.dir.data_key.unlink(missing_ok=True)
        self.keys.forget()
        state.role = "worker"
        state.etcd_endpoint = ""
        state.external_etcd = False
        state.etcd_cluster = {}
        state.managers = answer.Managers or others
        self.dir.save(state)
        await self._start_swarm(state)

    async def _leave_etcd_cluster(self, store: MirroredStore) -> None:
        """Out of the etcd cluster before the member stops: one stopped while still counted
        could cost the others their quorum for good (two managers, one demoted: the other
        alone is not a majority of two, and cannot remove it without one). Out means removed
        by this node or already by the leader's role loop."""
        deadline = asyncio.get_running_loop().time() + LEAVE_PATIENCE
        while not self._removed and not await leave_cluster(store.kv):
            if asyncio.get_running_loop().time() > deadline:
                raise DaemonError("the etcd member could not leave its cluster: not demoted yet")
            await asyncio.sleep(0.5)

    async def _stop_for_role_change(self) -> None:
        """Stop the swarm parts as for a restart: the session's manager is told, task
        containers and the node's networks stay."""
        if self.networks is not None and self.networks.agent is not None:
            await self.networks.agent.stopping()
        await self._stop_swarm()
        self._manager = None
