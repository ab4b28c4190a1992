"""The `Swarm` section of `GET /info` (moby `swarm.Info`)."""

from __future__ import annotations

from typing import Any

from shoal.daemon import Daemon


def info(daemon: Daemon) -> dict[str, Any]:
    state = daemon.state
    if state is None:
        return {
            "NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive",
            "ControlAvailable": False, "Error": "", "RemoteManagers": None,
        }  # fmt: skip
    out: dict[str, Any] = {
        "NodeID": state.node_id,
        "NodeAddr": state.advertise_addr.rpartition(":")[0],
        "LocalNodeState": "active",
        "ControlAvailable": daemon.is_manager,
        "Error": "",
    }
    store = daemon.store
    if store is None:
        out["RemoteManagers"] = [{"NodeID": "", "Addr": a} for a in state.managers]
        return out
    nodes = list(store.nodes())
    managers = [n for n in nodes if n.manager_status is not None]
    out["RemoteManagers"] = [
        {"NodeID": n.id, "Addr": n.manager_status.addr} for n in managers if n.manager_status
    ]
    out["Nodes"] = len(nodes)
    out["Managers"] = len(managers)
    cluster = next(iter(store.objects("clusters")), None)
    if cluster is not None and daemon.is_manager:
        c = cluster.to_api()
        c.pop("JoinTokens", None)
        out["Cluster"] = c
    return out
