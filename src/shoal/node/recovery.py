"""A manager's ways back from the worst: `swarm init --force-new-cluster` on the survivor
of a lost quorum, `shoal swarm backup` while it runs, `shoal swarm restore` on a new host."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from shoal.api.errors import (
    ALREADY_IN_SWARM,
    NOT_A_MANAGER,
    NOT_A_MANAGER_WORKER,
    BadRequest,
    NotAcceptable,
    SwarmLocked,
)
from shoal.api.models import ManagerStatus, Node
from shoal.ca.authority import RootCA, issue, new_csr, new_key
from shoal.ca.tls import encrypt_key, write_certs
from shoal.manager import ca
from shoal.node import backup
from shoal.node.addresses import SWARM_PORT, advertise_address, host_of
from shoal.node.clusterstore import restore_snapshot
from shoal.node.parts import SwarmParts
from shoal.node.state import LocalState
from shoal.store.etcd import Etcd
from shoal.store.seal import new_unlock_key

log = logging.getLogger(__name__)


class Recovery(SwarmParts):
    async def _force_new_cluster(self, req: dict[str, Any]) -> str:
        """`swarm init --force-new-cluster` on a manager: its etcd member starts once with
        etcd's `--force-new-cluster` (a one-member cluster from its own data), the swarm
        parts start again, and the other managers lose their `ManagerStatus` (their node
        objects keep the manager role, as Docker's). Nothing else changes: same swarm, same
        node ID, tokens, services and tasks; the workers' containers run on."""
        async with self._lock:
            state = self.state
            if state is None:
                raise NotAcceptable(NOT_A_MANAGER)
            if self._locked:  # the data key is needed to read the state: unlock first
                raise SwarmLocked()
            if state.role != "manager":
                raise NotAcceptable(NOT_A_MANAGER_WORKER)
            if state.external_etcd:
                raise BadRequest(
                    "this swarm keeps its state in an external etcd cluster, whose quorum is "
                    "etcd's own: recover that cluster (etcd's --force-new-cluster on one of its "
                    "members) and the managers serve again"
                )
            given = req.get("AdvertiseAddr") or ""
            if given:
                wanted = advertise_address(given, req.get("ListenAddr") or state.listen_addr)
                if host_of(wanted) != host_of(state.advertise_addr):
                    raise BadRequest(
                        f"--force-new-cluster keeps this manager's address "
                        f"{host_of(state.advertise_addr)} (its certificate names it); "
                        f"{host_of(wanted)} was asked for"
                    )
            log.warning("--force-new-cluster: this manager becomes the only member of a new "
                        "etcd cluster with the swarm's data")  # fmt: skip
            await self._stop_swarm()
            state.etcd_cluster = {}
            self.dir.save(state)
            self._removed = False
            await self._start_swarm(state, force_new_cluster=True)
            assert self.store is not None
            await self.store.modify(Node, {
                n.id: _drop_manager_status
                for n in self.store.nodes()
                if n.id != state.node_id and n.manager_status is not None
            })  # fmt: skip
            log.info("new cluster forced: this manager is the only one")
            return state.node_id

    async def backup(self) -> tuple[bytes, str | None]:
        """`shoal swarm backup`: the backup file, and the key made for it (None: the swarm's
        unlock key opens it, autolock being on)."""
        store = self.control()
        swarm = store.swarm()
        if not isinstance(store.kv, Etcd) or swarm is None or self.keys.data_key is None:
            raise NotAcceptable(NOT_A_MANAGER)
        assert self.state is not None
        root = ca.load(store)
        made = None if swarm.unlock_key else new_unlock_key()
        key = swarm.unlock_key or made
        assert key is not None
        snapshot = await store.kv.snapshot()
        b = backup.make(self.state.swarm_id, self.state.node_id, self.keys.data_key, key,
                        made is None, root.cert_pem, root.key_pem, snapshot)  # fmt: skip
        log.info("backup taken (%d bytes of etcd snapshot)", len(snapshot))
        return backup.dump(b), made

    async def restore(self, data: bytes, key: str, req: dict[str, Any]) -> str:
        """`shoal swarm restore`: on a node outside any swarm, the backup's swarm with this
        node as its only manager, in the place (node ID) of the manager it was taken on."""
        return await asyncio.shield(asyncio.ensure_future(self._restore(data, key, req)))

    async def _restore(self, data: bytes, key: str, req: dict[str, Any]) -> str:
        async with self._lock:
            if self.state is not None:
                raise NotAcceptable(ALREADY_IN_SWARM)
            if self.config.etcd_endpoints:
                raise BadRequest(
                    "a restore makes this node the only manager of the swarm, on an etcd member "
                    "of its own: start shoald without --etcd-endpoints to restore here"
                )
            b = backup.load(data)
            data_key, ca_cert, ca_key = backup.open_backup(b, key)
            listen = req.get("ListenAddr") or f"0.0.0.0:{SWARM_PORT}"
            advertise = advertise_address(req.get("AdvertiseAddr") or "", listen)
            state = LocalState(
                node_id=b.node_id, swarm_id=b.swarm_id, role="manager",
                advertise_addr=advertise, listen_addr=listen,
                etcd_endpoint=f"127.0.0.1:{self.config.etcd_client_port}",
            )  # fmt: skip
            self.dir.wipe()
            root = RootCA(ca_cert, ca_key)
            node_key, key_pem = new_key()
            cert = issue(root, new_csr(node_key), state.node_id, "manager", state.swarm_id,
                         [host_of(advertise)])  # fmt: skip
            write_certs(self.dir.certs, root.cert_pem, cert, encrypt_key(key_pem, data_key))
            self.keys.create(data_key, key if b.autolock else None)
            peer_url = f"https://{host_of(advertise)}:{self.config.etcd_peer_port}"
            try:
                await restore_snapshot(b.snapshot, self.dir.etcd, state.node_id, peer_url)
                await self._start_swarm(state)
                assert self.store is not None
                addr = advertise
                await self.store.modify(Node, {
                    n.id: (lambda n: _this_manager(n, addr)) if n.id == state.node_id
                    else _drop_manager_status
                    for n in self.store.nodes()
                    if n.id == state.node_id or n.manager_status is not None
                })  # fmt: skip
            except BaseException:
                await self._abandon_swarm()
                raise
            self.dir.save(state)
            self.state = state
            log.info("swarm %s restored from a backup: this node is its only manager",
                     state.swarm_id)  # fmt: skip
            return state.node_id


def _this_manager(node: Node, addr: str) -> bool:
    """The restored manager's node object: a manager at its new address."""
    node.spec.role = "manager"
    node.manager_status = ManagerStatus(leader=False, reachability="reachable", addr=addr)
    return True


def _drop_manager_status(node: Node) -> bool:
    """A manager that is no longer an etcd member: no manager status (Docker shows its role
    still manager, its MANAGER STATUS empty)."""
    if node.manager_status is None:
        return False
    node.manager_status = None
    return True
