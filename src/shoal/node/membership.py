"""This node in and out of a swarm: `docker swarm init` (on the managers' own etcd members or
an external cluster), `docker swarm join` with a worker or a manager token, `docker swarm
leave` (its task containers, networks and swarm state removed)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from shoal.agent.agent import describe
from shoal.api import labels
from shoal.api.errors import (
    ALREADY_IN_SWARM,
    LOCKED_LEAVE,
    BadRequest,
    Conflict,
    DaemonError,
    InvalidArgument,
    NotAcceptable,
)
from shoal.api.models import Network, ingress_spec
from shoal.api.naming import new_id
from shoal.ca.authority import issue, new_csr, new_key, new_root_ca
from shoal.ca.tls import encrypt_key, write_certs
from shoal.manager import ca
from shoal.manager.controlapi import swarm as controlapi_swarm
from shoal.node import bootstrap
from shoal.node.addresses import SWARM_PORT, advertise_address, host_of, route_address
from shoal.node.clusterstore import erase_if_last, leave_cluster, wait_answering
from shoal.node.parts import STOP_TIMEOUT, SwarmParts
from shoal.node.state import LocalState
from shoal.store.etcd import Etcd
from shoal.store.seal import Sealer

log = logging.getLogger(__name__)

AVAILABILITIES = ("active", "pause", "drain")
EXTERNAL_ETCD_TIMEOUT = 10.0  # seconds an external etcd cluster may take to answer
SWARM_KEYS = "/shoal/swarm/"
LEAVE_TRIES = 10  # `leave --force`: tries to take the etcd member out first
REMOVE_TIMEOUT = 15.0  # seconds for each engine call removing task containers on leave


class SwarmMembership(SwarmParts):
    async def _swarm_in_external_etcd(self) -> str | None:
        """The ID of the swarm the external etcd cluster holds, if any (before this node
        makes or joins one there)."""
        etcd = Etcd(self.config.etcd_endpoints, tls=self.config.etcd_tls)
        try:
            await wait_answering(etcd, EXTERNAL_ETCD_TIMEOUT)
            _, kvs = await etcd.load(SWARM_KEYS)
        except Exception as e:  # noqa: BLE001 - said in the user's terms
            raise DaemonError(
                f"the etcd cluster at {', '.join(self.config.etcd_endpoints)} does not "
                f"answer: {e or type(e).__name__}"
            ) from e
        finally:
            with contextlib.suppress(Exception):
                await etcd.close()
        return kvs[0].key.removeprefix(SWARM_KEYS) if kvs else None

    async def init(self, req: dict[str, Any]) -> str:
        if self.state is not None and req.get("ForceNewCluster"):
            return await asyncio.shield(asyncio.ensure_future(self._force_new_cluster(req)))
        async with self._lock:
            if self.state is not None:
                raise NotAcceptable(ALREADY_IN_SWARM)
            # Outside a swarm `--force-new-cluster` changes nothing (as Docker's): a new swarm.
            listen = req.get("ListenAddr") or f"0.0.0.0:{SWARM_PORT}"
            advertise = advertise_address(req.get("AdvertiseAddr") or "", listen)
            availability = req.get("Availability") or "active"
            if availability not in AVAILABILITIES:
                raise InvalidArgument(f"invalid availability {availability!r}")
            state = LocalState(
                node_id=new_id(),
                swarm_id=new_id(),
                role="manager",
                advertise_addr=advertise,
                listen_addr=listen,
                **self._store_fields(),
            )
            if state.external_etcd:
                held = await self._swarm_in_external_etcd()
                if held is not None:
                    raise Conflict(
                        f"the etcd cluster at {', '.join(self.config.etcd_endpoints)} holds "
                        f"swarm {held} already: join it (docker swarm join), or make this "
                        "swarm on another etcd cluster"
                    )
            self.dir.wipe()
            description = await describe(self._engine)
            root = new_root_ca()
            swarm, node = bootstrap.new_swarm(state, req, description, availability, root)
            key, key_pem = new_key()
            cert = issue(root, new_csr(key), state.node_id, "manager", state.swarm_id,
                         [host_of(advertise)])  # fmt: skip
            _, data_key = Sealer.new()
            write_certs(self.dir.certs, root.cert_pem, cert, encrypt_key(key_pem, data_key))
            self.keys.create(data_key, swarm.unlock_key)
            await self._start_swarm(state)
            try:
                assert self.store is not None
                await ca.save(self.store, root)
                await self.store.create(swarm)
                await self.store.create(node)
                await self.store.create(Network(id=new_id(), spec=ingress_spec()))
            except BaseException:
                await self._abandon_swarm()
                raise
            self.dir.save(state)
            self.state = state
            return state.node_id

    def _store_fields(self) -> dict[str, Any]:
        """Where a manager made here keeps the swarm: its own member (on loopback) or the
        external cluster of `--etcd-endpoints`."""
        if self.config.etcd_endpoints:
            return {"external_etcd": True, "etcd_endpoint": ""}
        loopback = f"127.0.0.1:{self.config.etcd_client_port}"
        return {"external_etcd": False, "etcd_endpoint": loopback}

    def _peer_url(self, advertise: str) -> str:
        """Where this manager's own etcd member would listen for its peers ("" on an
        external cluster: there is no member of its own)."""
        if self.config.etcd_endpoints:
            return ""
        return f"https://{host_of(advertise)}:{self.config.etcd_peer_port}"

    async def join(self, req: dict[str, Any]) -> None:
        await asyncio.shield(asyncio.ensure_future(self._join(req)))

    async def _join(self, req: dict[str, Any]) -> None:
        async with self._lock:
            if self.state is not None:
                raise NotAcceptable(ALREADY_IN_SWARM)
            remotes = [a for a in req.get("RemoteAddrs") or [] if a]
            if not remotes:
                raise BadRequest("at least 1 RemoteAddr is required to join")
            manager = remotes[0] if ":" in remotes[0] else f"{remotes[0]}:{SWARM_PORT}"
            listen = req.get("ListenAddr") or f"0.0.0.0:{SWARM_PORT}"
            given = req.get("AdvertiseAddr") or route_address(host_of(manager)) or ""
            advertise = advertise_address(given, listen)
            description = await describe(self._engine)
            self.dir.wipe()
            peer_url = self._peer_url(advertise)
            answer = await bootstrap.join(
                manager,
                str(req.get("JoinToken") or ""),
                description.hostname or "",
                host_of(advertise),
                req.get("Availability") or "active",
                self.dir.certs,
                cluster_addr=advertise,
                etcd_peer_url=peer_url,
            )
            manager_role = answer.DataKey is not None
            if manager_role and self.config.etcd_endpoints:
                held = await self._swarm_in_external_etcd()
                if held != answer.SwarmID:
                    raise BadRequest(
                        f"the etcd cluster at {', '.join(self.config.etcd_endpoints)} holds "
                        f"{'swarm ' + held if held else 'no swarm'}, not this swarm "
                        f"({answer.SwarmID}): give shoald the swarm's etcd endpoints (then "
                        f"`docker node rm {answer.NodeID}` on a manager, and join again)"
                    )
            state = LocalState(
                node_id=answer.NodeID,
                swarm_id=answer.SwarmID,
                role="manager" if manager_role else "worker",
                advertise_addr=advertise,
                listen_addr=listen,
                managers=answer.Managers or [manager],
                etcd_cluster=answer.EtcdCluster,
                **(self._store_fields() if manager_role else {}),
            )
            if answer.DataKey is not None:  # wrapped once the swarm says autolock is on
                self.keys.create(answer.DataKey, None)
            self.dir.save(state)
            self.state = state
            try:
                await self._start_swarm(state)
            except BaseException:
                if manager_role:  # a manager that could not start
                    await self._abandon_swarm()
                    self.state = None
                raise

    async def leave(self, force: bool) -> None:
        # Once begun, a leave is carried through even if the client goes away meanwhile.
        await asyncio.shield(asyncio.ensure_future(self._leave(force)))

    async def _leave(self, force: bool) -> None:
        async with self._lock:
            if self.state is None:
                raise NotAcceptable("This node is not part of a swarm")
            if self._locked and not force:
                raise NotAcceptable(LOCKED_LEAVE)
            if self.state.role == "manager" and not force:  # workers leave without --force
                quorate = self.store is not None and self.store.quorate
                store = self.store if quorate else None
                raise NotAcceptable(controlapi_swarm.leave_refusal(
                    store, self.state.node_id, raft=not self.state.external_etcd
                ))  # fmt: skip
            node_id = self.state.node_id
            if self.state.role == "manager" and self.store is not None:
                if self.state.external_etcd:
                    await erase_if_last(self.store, node_id)
                else:  # a few tries (a member that joined moments ago), then it goes anyway
                    for _ in range(LEAVE_TRIES):
                        if await leave_cluster(self.store.kv):
                            break
                        await asyncio.sleep(0.5)
            started = asyncio.get_running_loop().time()
            networks = self.networks
            served = self._locked and networks is not None  # locked: only the plugin runs
            if networks is None:
                networks = self._node_networks(self.state)
            await self._stop_swarm()
            if not served:  # dockerd asks the plugin as containers and networks go
                await networks.serve()
            await self._remove_task_containers(node_id)
            await asyncio.to_thread(self.files.clear)
            if networks is not None:
                await networks.remove_engine_networks()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(networks.teardown(), STOP_TIMEOUT)
            self.networks = None
            self.dir.wipe()
            self.keys.forget()
            self._locked = self._removed = False
            self.state = None
            took = asyncio.get_running_loop().time() - started
            log.info("left the swarm in %.1f s", took)

    async def _remove_task_containers(self, node_id: str) -> None:
        """Best effort, as Docker's leave: all at once, each call bounded."""
        filters = json.dumps({"label": [f"{labels.NODE_ID}={node_id}"]})

        async def remove(cid: str) -> None:
            await self._engine.request(
                "DELETE",
                f"/containers/{cid}",
                params={"force": "1", "v": "1"},
                timeout=REMOVE_TIMEOUT,
            )

        try:
            containers = await self._engine.request(
                "GET", "/containers/json", params={"all": "1", "filters": filters},
                timeout=REMOVE_TIMEOUT,
            )  # fmt: skip
            results = await asyncio.gather(
                *(remove(c["Id"]) for c in containers or []), return_exceptions=True
            )
            for r in results:
                if isinstance(r, BaseException):
                    log.warning("removing a task container: %s", r)
        except Exception as e:  # noqa: BLE001 - best effort
            log.warning("removing task containers: %s", e)
