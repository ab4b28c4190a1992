"""The node's network data plane: swarm networks as VXLAN segments in network namespaces,
plugged into containers by dockerd through shoal's engine plugin, with DNS per network.
See docs/design/networking.md."""

from shoal.network.dataplane import DataPlane
from shoal.network.driver import Allocate, Release
from shoal.network.engine_network import engine_network_body
from shoal.network.kernel import KernelError
from shoal.network.names import DNS_ADDR, DRIVER, OPTION, PLUGIN_SOCKET, mac_for

__all__ = [
    "DNS_ADDR",
    "DRIVER",
    "OPTION",
    "PLUGIN_SOCKET",
    "Allocate",
    "DataPlane",
    "KernelError",
    "Release",
    "engine_network_body",
    "mac_for",
]
