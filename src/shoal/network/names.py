"""What shoal's network objects are called, on a host and towards the engine.

An operator recognises shoal's objects by these names (see docs/design/networking.md):

* a **network namespace** per swarm network, ``shoal-<first 12 of the network ID>``
  (``ip netns`` lists it), holding the network's bridge ``br0`` and VXLAN device ``vxlan0``,
  both with the ip-link alias ``shoal network <id> <name>``, and one veth end ``ve-<first
  12 of the endpoint ID>`` per local container (alias ``shoal endpoint <endpoint id>``);
* transient devices in the host namespace, between two steps of shoal's own work:
  ``shoalx<9>`` (a VXLAN device before it moves into its namespace) and ``shoale<9>`` (the
  container's end of a veth until dockerd moves it into the container, as ``eth0`` …);
* the engine plugin ``shoal`` (``/run/docker/plugins/shoal.sock``), the network and IPAM
  driver of the engine networks that carry the option ``shoal.network=<swarm network ID>``.

MAC addresses derive from IPv4 addresses (``02:42:`` + the four address bytes), as Docker's
own overlay driver does, so they never need to be distributed.
"""

from __future__ import annotations

import ipaddress

from shoal.engine import networks as engine_networks

# The engine plugin's name (network driver and IPAM driver), the option and label naming the
# swarm network, and shoal's DNS address: shared with the agent in `shoal.engine.networks`.
DRIVER = engine_networks.DRIVER
OPTION = engine_networks.SWARM_ID_OPTION
DNS_ADDR = engine_networks.DNS_ADDRESS
PLUGIN_SOCKET = f"/run/docker/plugins/{DRIVER}.sock"
ADDRESS_SPACE = "shoal"
DNS_PORT = 53
VXLAN_PORT = 4789  # IANA's VXLAN port

NETNS_DIR = "/run/netns"  # where `ip netns` keeps named namespaces
NETNS_PREFIX = "shoal-"
BRIDGE = "br0"
VXLAN = "vxlan0"
VETH_PREFIX = "ve-"  # host end of an endpoint's veth, inside the network's namespace
TEMP_VXLAN_PREFIX = "shoalx"  # host namespace, before moving in
PEER_PREFIX = "shoale"  # host namespace, until dockerd takes it
ALIAS_PREFIX = "shoal "

_IFNAMSIZ = 15  # a Linux interface name's longest


def netns_name(network_id: str) -> str:
    return NETNS_PREFIX + network_id[:12]


def is_netns(name: str) -> bool:
    return name.startswith(NETNS_PREFIX) and len(name) > len(NETNS_PREFIX)


def temp_vxlan_name(network_id: str) -> str:
    return _ifname(TEMP_VXLAN_PREFIX, network_id)


def veth_name(endpoint_id: str) -> str:
    return _ifname(VETH_PREFIX, endpoint_id)


def peer_name(endpoint_id: str) -> str:
    return _ifname(PEER_PREFIX, endpoint_id)


def is_host_leftover(ifname: str) -> bool:
    """A device of shoal's left in the host namespace (its work was interrupted)."""
    return ifname.startswith((TEMP_VXLAN_PREFIX, PEER_PREFIX))


def network_alias(network_id: str, name: str) -> str:
    return f"{ALIAS_PREFIX}network {network_id} {name}"


def endpoint_alias(endpoint_id: str) -> str:
    return f"{ALIAS_PREFIX}endpoint {endpoint_id}"


def mac_for(ip: str) -> str:
    """The MAC address of the endpoint holding ip: 02:42 and the address's four bytes."""
    packed = ipaddress.IPv4Address(ip).packed
    return "02:42:" + ":".join(f"{b:02x}" for b in packed)


def pool_id(network_id: str, subnet: str) -> str:
    """The IPAM pool of a swarm network, as dockerd passes it back on every address request."""
    return f"{network_id}/{subnet}"


def parse_pool_id(pool: str) -> tuple[str, str]:
    """(network ID, subnet) of a pool ID made by pool_id(); ValueError otherwise."""
    network_id, sep, subnet = pool.partition("/")
    if not sep or not network_id:
        raise ValueError(f"not a shoal address pool: {pool!r}")
    ipaddress.IPv4Network(subnet)  # ValueError if it is none
    return network_id, subnet


def _ifname(prefix: str, ident: str) -> str:
    return prefix + ident[: _IFNAMSIZ - len(prefix)]
