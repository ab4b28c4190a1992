"""The `Swarm` section of `GET /info` (moby `swarm.Info`)."""

from __future__ import annotations

from typing import Any

from shoal.api.errors import SWARM_LOCKED, NoLeader
from shoal.api.models import Swarm
from shoal.dockerapi.node import LocalNode


def info(node: LocalNode) -> dict[str, Any]:
    membership = node.membership
    if membership is None:
        return {
            "NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive",
            "ControlAvailable": False, "Error": "", "RemoteManagers": None,
        }  # fmt: skip
    if node.locked:  # as Docker's locked manager: no node ID, no remotes, the error
        return {
            "NodeID": "", "NodeAddr": membership.advertise_addr.rpartition(":")[0],
            "LocalNodeState": "locked", "ControlAvailable": False, "Error": SWARM_LOCKED,
            "RemoteManagers": None,
        }  # fmt: skip
    manager = membership.role == "manager"
    out: dict[str, Any] = {
        "NodeID": membership.node_id,
        "NodeAddr": membership.advertise_addr.rpartition(":")[0],
        "LocalNodeState": "active",
        "ControlAvailable": manager,
        "Error": "",
    }
    if not manager:
        out["RemoteManagers"] = [{"NodeID": "", "Addr": a} for a in membership.managers]
        return out
    try:
        store = node.control()
    except NoLeader as e:
        # As Docker's manager without a quorum: still a manager, the error said, the managers
        # it knows of, no counts, a zero cluster object.
        out["Error"] = str(e)
        out["RemoteManagers"] = node.known_managers()
        zero = Swarm().to_api()
        zero.pop("JoinTokens", None)
        out["Cluster"] = zero
        return out
    nodes = list(store.nodes())
    managers = [n for n in nodes if n.manager_status is not None]
    out["RemoteManagers"] = node.known_managers()
    out["Nodes"] = len(nodes)
    out["Managers"] = len(managers)
    swarm = store.swarm()
    if swarm is not None:
        data = swarm.to_api()
        data.pop("JoinTokens", None)
        out["Cluster"] = data
    return out
