"""The daemon's configuration, and what the modules carrying a part of the daemon
(`rolechange.py`, `recovery.py`) share with it: its attributes and the few methods they call."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shoal.agent.files import TaskFiles
from shoal.engine.client import Engine
from shoal.manager.manager import Manager
from shoal.node.keys import LocalKeys
from shoal.node.networks import NodeNetworks
from shoal.node.state import LocalState, SwarmDir
from shoal.store.etcd import ClientTLS
from shoal.store.mirrored import MirroredStore

STOP_TIMEOUT = 10.0  # seconds the swarm parts get to stop (leave, shutdown)


@dataclass
class DaemonConfig:
    state_dir: Path
    exec_root: Path = Path("/run/shoal")  # what lives only while the host is up (tmpfs)
    engine_host: str = "unix:///var/run/docker.sock"
    etcd_client_port: int = 2379
    etcd_peer_port: int = 2380
    # An external etcd cluster instead of an embedded member (`--etcd-endpoints`).
    etcd_endpoints: list[str] = field(default_factory=list)
    etcd_tls: ClientTLS | None = None


class SwarmParts:
    config: DaemonConfig
    dir: SwarmDir
    keys: LocalKeys
    state: LocalState | None
    store: MirroredStore | None
    networks: NodeNetworks | None
    files: TaskFiles
    _engine: Engine
    _lock: asyncio.Lock
    _locked: bool
    _removed: bool  # this manager's etcd member was removed from its cluster
    _manager: Manager | None
    _role_change: asyncio.Task[None] | None

    async def _abandon_swarm(self) -> None:
        """A swarm that could not be made, joined or restored here: its parts stopped, nothing
        half made stays (local state, certificates, keys)."""
        await self._stop_swarm()
        self.dir.wipe()
        self.keys.forget()

    if TYPE_CHECKING:

        def control(self) -> MirroredStore: ...

        async def _start_swarm(
            self,
            state: LocalState,
            force_new_cluster: bool = False,
            patience: float | None = None,
        ) -> None: ...

        async def _stop_swarm(self) -> None: ...

        def _node_networks(self, state: LocalState) -> NodeNetworks: ...

        async def _force_new_cluster(self, req: dict[str, Any]) -> str: ...

        def _store_fields(self) -> dict[str, Any]: ...

        def _peer_url(self, advertise: str) -> str: ...
