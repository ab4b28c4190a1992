"""What a node remembers of its swarm across restarts, under `<state-dir>/swarm/`:
`state.json` (membership), `certs/` (CA, node certificate and key — a manager's encrypted
with the data key), `data.key` (the swarm's data key, managers only: wrapped with the unlock
key while autolock is on, see `node/keys.py`) and `etcd/` (the member's data, managers only)."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class LocalState:
    node_id: str
    swarm_id: str
    role: str  # manager | worker
    advertise_addr: str  # host:port of the cluster port
    listen_addr: str
    etcd_endpoint: str = ""  # the embedded member's client address (loopback)
    external_etcd: bool = False  # a manager on the external cluster of `--etcd-endpoints`
    managers: list[str] = field(default_factory=list)  # cluster-port addresses, for workers
    # A manager that joined: the etcd cluster its member first started in (name → peer URL).
    etcd_cluster: dict[str, str] = field(default_factory=dict)


class SwarmDir:
    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "swarm"

    @property
    def certs(self) -> Path:
        return self.path / "certs"

    @property
    def data_key(self) -> Path:
        return self.path / "data.key"

    @property
    def network(self) -> Path:
        """The network data plane's own state (its driver's endpoints, the last state)."""
        return self.path / "network"

    @property
    def etcd(self) -> Path:
        return self.path / "etcd"

    @property
    def _state_file(self) -> Path:
        return self.path / "state.json"

    def load(self) -> LocalState | None:
        try:
            return LocalState(**json.loads(self._state_file.read_text()))
        except FileNotFoundError:
            return None

    def save(self, state: LocalState) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        tmp = self._state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(state), indent=2))
        tmp.replace(self._state_file)

    def wipe(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
