"""Swarm networks as networks of the node's engine: shoal is the engine's network and IPAM
driver for them (`shoal.network`'s plugin). The engine network has the swarm network's name,
its subnet and gateway, and carries the swarm network's ID in its options; containers on it
resolve through dockerd's embedded resolver, which forwards what it does not know to shoal's
DNS at `DNS_ADDRESS` (set as the container's DNS server, reached over its overlay interface)."""

from __future__ import annotations

from typing import Any

DRIVER = "shoal"  # the plugin's name: /run/docker/plugins/shoal.sock
SWARM_ID_OPTION = "shoal.network"  # the engine network's option naming its swarm network
DNS_ADDRESS = "169.254.254.53"  # shoal's DNS, on every node's bridge of every swarm network


def create_body(
    name: str, swarm_id: str, subnet: str, gateway: str, *, internal: bool,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """`POST /networks/create` of the engine network that runs a swarm network here."""
    return {
        "Name": name,
        "CheckDuplicate": True,
        "Driver": DRIVER,
        "Internal": internal,
        "EnableIPv6": False,
        "IPAM": {
            "Driver": DRIVER,
            "Config": [{"Subnet": subnet, "Gateway": gateway}],
            "Options": {SWARM_ID_OPTION: swarm_id},
        },
        "Options": {SWARM_ID_OPTION: swarm_id},
        "Labels": {**(labels or {}), SWARM_ID_OPTION: swarm_id},
    }


def swarm_id_of(resource: dict[str, Any]) -> str | None:
    """The swarm network an engine network runs, if it is one of shoal's."""
    if resource.get("Driver") != DRIVER:
        return None
    return (resource.get("Options") or {}).get(SWARM_ID_OPTION) or None
