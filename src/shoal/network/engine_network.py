"""The engine's side of a swarm network: the body the agent sends to the local engine's
``POST /networks/create``, and how the driver finds the swarm network again in what dockerd
passes it. Both sides use this module, so they agree.

The engine network has the swarm network's name; shoal is its network driver and its IPAM
driver; the swarm network's ID travels as the option ``shoal.network`` (a driver option,
which dockerd hands to ``CreateNetwork`` under ``com.docker.network.generic``, and an IPAM
option, which it hands to ``RequestPool``) and as a label of the same name (so the agent
finds the engine networks it made: ``GET /networks?filters={"label":["shoal.network"]}``).
dockerd gives the engine network an ID of its own: the engine has no way to be told one.
"""

from __future__ import annotations

from typing import Any

from shoal.engine.networks import create_body
from shoal.network.names import OPTION
from shoal.rpc.messages import NetworkPlan

GENERIC = "com.docker.network.generic"  # where dockerd puts a network's driver options


def engine_network_body(plan: NetworkPlan) -> dict[str, Any]:
    """``POST /networks/create`` for the engine network of a swarm network on this node (the
    one body, `shoal.engine.networks.create_body`, which the agent uses too)."""
    return create_body(
        plan.name, plan.id, plan.subnet, plan.gateway, internal=plan.internal, labels=plan.labels
    )


def network_of_create(options: dict[str, Any] | None) -> str | None:
    """The swarm network ID in a ``NetworkDriver.CreateNetwork`` request's Options."""
    options = options or {}
    generic = options.get(GENERIC)
    if isinstance(generic, dict) and isinstance(generic.get(OPTION), str):
        return str(generic[OPTION])
    value = options.get(OPTION)
    return value if isinstance(value, str) else None


def network_of_pool(options: dict[str, Any] | None) -> str | None:
    """The swarm network ID in an ``IpamDriver.RequestPool`` request's Options."""
    value = (options or {}).get(OPTION)
    return value if isinstance(value, str) and value else None
