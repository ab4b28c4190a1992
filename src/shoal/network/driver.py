"""The engine plugin's protocol (libnetwork's remote network driver and IPAM driver, as
dockerd 20.10 speaks it): one method per request, over ``Plumbing`` (what the data plane does
on the host) and a small ``DriverTable`` of what dockerd told us, kept in a file so a
restarted shoald still knows the engine's networks and endpoints.

What dockerd asks, and what shoal answers (docs/design/networking.md has the whole exchange):

* ``RequestPool`` carries the IPAM option ``shoal.network``: the pool ID names the swarm
  network (``<network id>/<subnet>``), so every address request says which network it is for.
* ``RequestAddress`` answers the preferred address when dockerd passes one — a task's, which
  the agent sets as ``IPAMConfig.IPv4Address`` to what the manager allocated; the gateway's
  (the plan's gateway) — and otherwise awaits ``allocate(network_id, hint)`` (a plain
  ``docker run --network`` on an attachable network); ``ReleaseAddress`` calls
  ``release(network_id, ip)`` for exactly the addresses ``allocate`` gave.
* ``CreateEndpoint`` answers the MAC derived from the address; ``Join`` plugs a veth into the
  network's bridge and returns its other end (dockerd moves it into the container as
  ``ethN``) and, for the first shoal network of a container only, the connected route to the
  DNS address (libnetwork adds each returned route with "create, exclusive": the same
  destination on a second interface fails the container's start, "error setting interface
  … routes to [169.254.254.53/32]: file exists").
* No gateway is returned, so dockerd attaches ``docker_gwbridge`` itself (the way out, with
  masquerade) — except on ``Internal`` networks.

Every method is idempotent: dockerd retries, and shoald may have restarted in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from shoal.network.engine_network import network_of_create, network_of_pool
from shoal.network.names import ADDRESS_SPACE, DNS_ADDR, mac_for, parse_pool_id, pool_id
from shoal.rpc.messages import NetworkPlan

log = logging.getLogger(__name__)

GATEWAY_REQUEST = "com.docker.network.gateway"  # RequestAddressType of the gateway's request
CONNECTED = 1  # RouteType: a connected route (no next hop)

# allocate(network_id, hint) → an address; hint: the options dockerd passed (often empty)
Allocate = Callable[[str, Mapping[str, str]], Awaitable[str]]
Release = Callable[[str, str], Awaitable[None]]


def error_field(method: str) -> str:
    """Where libnetwork reads a plugin's failure: `Err` for the network driver API, `Error`
    for the IPAM API (an IPAM answer with `Err` reads as success, "No address returned")."""
    return "Error" if method.startswith("IpamDriver.") else "Err"


class DriverError(Exception):
    """Answered to dockerd as {"Err": message}: it shows it to the user."""


class Plumbing(Protocol):
    def plan(self, network_id: str) -> NetworkPlan | None: ...

    async def plug(self, network_id: str, endpoint_id: str) -> str: ...

    async def unplug(self, network_id: str | None, endpoint_id: str) -> None: ...

    async def sandbox_changed(self, sandbox: str) -> None: ...


@dataclass
class EndpointEntry:
    network_id: str  # the swarm network
    ip: str
    mac: str
    sandbox: str = ""  # dockerd's SandboxKey while joined
    dns_route: bool = False  # its interface carries the route to the DNS address


@dataclass
class DriverTable:
    """What dockerd told the driver, by the engine's IDs; saved after every change."""

    networks: dict[str, str] = field(default_factory=dict)  # engine network → swarm network
    endpoints: dict[str, EndpointEntry] = field(default_factory=dict)
    allocated: dict[str, list[str]] = field(default_factory=dict)  # network → allocate()'s
    path: str | None = None

    @classmethod
    def load(cls, path: str | None) -> DriverTable:
        table = cls(path=path)
        if path is None or not os.path.exists(path):
            return table
        with open(path) as f:
            data = json.load(f)
        table.networks = dict(data.get("networks", {}))
        table.endpoints = {k: EndpointEntry(**v) for k, v in data.get("endpoints", {}).items()}
        table.allocated = {k: list(v) for k, v in data.get("allocated", {}).items()}
        return table

    def save(self) -> None:
        if self.path is None:
            return
        data = {
            "networks": self.networks,
            "endpoints": {k: asdict(v) for k, v in self.endpoints.items()},
            "allocated": self.allocated,
        }
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        tmp = f"{self.path}.tmp"
        with open(tmp, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
        os.replace(tmp, self.path)

    def remove(self) -> None:
        if self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)


class Driver:
    def __init__(
        self,
        plumbing: Plumbing,
        table: DriverTable,
        allocate: Allocate | None = None,
        release: Release | None = None,
    ) -> None:
        self.plumbing = plumbing
        self.table = table
        self.allocate = allocate
        self.release = release
        self._lock = asyncio.Lock()
        self._methods: dict[str, Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]] = {
            "Plugin.Activate": self.activate,
            "NetworkDriver.GetCapabilities": self.capabilities,
            "NetworkDriver.CreateNetwork": self.create_network,
            "NetworkDriver.DeleteNetwork": self.delete_network,
            "NetworkDriver.AllocateNetwork": _empty,
            "NetworkDriver.FreeNetwork": _empty,
            "NetworkDriver.CreateEndpoint": self.create_endpoint,
            "NetworkDriver.DeleteEndpoint": self.delete_endpoint,
            "NetworkDriver.EndpointOperInfo": self.endpoint_info,
            "NetworkDriver.Join": self.join,
            "NetworkDriver.Leave": self.leave,
            "NetworkDriver.DiscoverNew": _empty,
            "NetworkDriver.DiscoverDelete": _empty,
            "NetworkDriver.ProgramExternalConnectivity": _empty,
            "NetworkDriver.RevokeExternalConnectivity": _empty,
            "IpamDriver.GetCapabilities": self.ipam_capabilities,
            "IpamDriver.GetDefaultAddressSpaces": self.address_spaces,
            "IpamDriver.RequestPool": self.request_pool,
            "IpamDriver.ReleasePool": _empty,
            "IpamDriver.RequestAddress": self.request_address,
            "IpamDriver.ReleaseAddress": self.release_address,
        }

    def knows(self, method: str) -> bool:
        return method in self._methods

    async def call(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        """The answer to one request; DriverError becomes the error field of the method's API
        (`error_field`). KeyError if unknown."""
        try:
            return await self._methods[method](body)
        except DriverError as e:
            return {error_field(method): str(e)}

    # ---------------------------------------------------------------- handshake

    async def activate(self, _: dict[str, Any]) -> dict[str, Any]:
        return {"Implements": ["NetworkDriver", "IpamDriver"]}

    async def capabilities(self, _: dict[str, Any]) -> dict[str, Any]:
        return {"Scope": "local", "ConnectivityScope": "global"}

    async def ipam_capabilities(self, _: dict[str, Any]) -> dict[str, Any]:
        # No MAC from dockerd (it would make one up at random, and MACs derive from IPs).
        return {"RequiresMACAddress": False, "RequiresRequestReplay": False}

    async def address_spaces(self, _: dict[str, Any]) -> dict[str, Any]:
        return {
            "LocalDefaultAddressSpace": ADDRESS_SPACE,
            "GlobalDefaultAddressSpace": ADDRESS_SPACE,
        }

    # ---------------------------------------------------------------- networks

    async def create_network(self, body: dict[str, Any]) -> dict[str, Any]:
        engine_id = _need(body, "NetworkID")
        swarm_id = network_of_create(body.get("Options"))
        if swarm_id is None:
            raise DriverError(
                "this network was not made by shoal: the shoal driver runs swarm networks only "
                "(create them with docker network create -d overlay on a manager)"
            )
        if body.get("IPv6Data"):
            raise DriverError("shoal networks are IPv4 only")
        plan = self.plumbing.plan(swarm_id)
        pools = [d.get("Pool") for d in body.get("IPv4Data") or []]
        if plan is not None and pools and pools != [plan.subnet]:
            raise DriverError(f"network {swarm_id} has subnet {plan.subnet}, not {pools}")
        async with self._lock:
            self.table.networks[engine_id] = swarm_id
            self.table.save()
        return {}

    async def delete_network(self, body: dict[str, Any]) -> dict[str, Any]:
        async with self._lock:
            if self.table.networks.pop(_need(body, "NetworkID"), None) is not None:
                self.table.save()
        return {}

    def _swarm_network(self, engine_id: str) -> str:
        swarm_id = self.table.networks.get(engine_id)
        if swarm_id is None:
            raise DriverError(f"network {engine_id[:12]} is unknown to shoal on this node")
        return swarm_id

    # ---------------------------------------------------------------- endpoints

    async def create_endpoint(self, body: dict[str, Any]) -> dict[str, Any]:
        swarm_id = self._swarm_network(_need(body, "NetworkID"))
        endpoint_id = _need(body, "EndpointID")
        iface = body.get("Interface") or {}
        if iface.get("AddressIPv6"):
            raise DriverError("shoal networks are IPv4 only")
        address = iface.get("Address") or ""
        if not address:
            raise DriverError("no IPv4 address for the endpoint")
        ip = str(ipaddress.IPv4Interface(address).ip)
        mac = mac_for(ip)
        given = (iface.get("MacAddress") or "").lower()
        if given and given != mac:
            raise DriverError(
                f"shoal derives MAC addresses from IP addresses ({mac} for {ip}): "
                "a container on a swarm network cannot choose its MAC address"
            )
        async with self._lock:
            self.table.endpoints[endpoint_id] = EndpointEntry(swarm_id, ip, mac)
            self.table.save()
        return {"Interface": {} if given else {"MacAddress": mac}}

    async def delete_endpoint(self, body: dict[str, Any]) -> dict[str, Any]:
        endpoint_id = _need(body, "EndpointID")
        async with self._lock:
            entry = self.table.endpoints.get(endpoint_id)
            await self.plumbing.unplug(entry.network_id if entry else None, endpoint_id)
            if self.table.endpoints.pop(endpoint_id, None) is not None:
                self.table.save()
                if entry is not None and entry.sandbox:
                    await self.plumbing.sandbox_changed(entry.sandbox)
        return {}

    async def endpoint_info(self, body: dict[str, Any]) -> dict[str, Any]:
        entry = self.table.endpoints.get(_need(body, "EndpointID"))
        if entry is None:
            return {"Value": {}}
        return {"Value": {"shoal.network": entry.network_id, "shoal.dns": entry.dns_route}}

    async def join(self, body: dict[str, Any]) -> dict[str, Any]:
        endpoint_id = _need(body, "EndpointID")
        sandbox = _need(body, "SandboxKey")
        async with self._lock:
            entry = self.table.endpoints.get(endpoint_id)
            if entry is None:
                raise DriverError(f"endpoint {endpoint_id[:12]} is unknown to shoal on this node")
            if self.plumbing.plan(entry.network_id) is None:
                raise DriverError(f"network {entry.network_id} is not on this node (yet)")
            peer = await self.plumbing.plug(entry.network_id, endpoint_id)
            if entry.sandbox != sandbox:
                entry.dns_route = not any(
                    e.sandbox == sandbox and e.dns_route
                    for eid, e in self.table.endpoints.items()
                    if eid != endpoint_id
                )
                entry.sandbox = sandbox
            self.table.save()
            await self.plumbing.sandbox_changed(sandbox)  # its VIPs, before its process starts
        log.info(
            "engine plugin: endpoint %s (%s) plugged into network %s for %s%s",
            endpoint_id[:12], entry.ip, entry.network_id, sandbox,
            " (DNS route)" if entry.dns_route else "",
        )  # fmt: skip
        answer: dict[str, Any] = {"InterfaceName": {"SrcName": peer, "DstPrefix": "eth"}}
        if entry.dns_route:
            answer["StaticRoutes"] = [{"Destination": f"{DNS_ADDR}/32", "RouteType": CONNECTED}]
        return answer

    async def leave(self, body: dict[str, Any]) -> dict[str, Any]:
        endpoint_id = _need(body, "EndpointID")
        async with self._lock:
            entry = self.table.endpoints.get(endpoint_id)
            await self.plumbing.unplug(entry.network_id if entry else None, endpoint_id)
            if entry is not None and entry.sandbox:
                sandbox = entry.sandbox
                entry.sandbox, entry.dns_route = "", False
                self.table.save()
                await self.plumbing.sandbox_changed(sandbox)
        log.info("engine plugin: endpoint %s unplugged", endpoint_id[:12])
        return {}

    # ---------------------------------------------------------------- IPAM

    async def request_pool(self, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("V6"):
            raise DriverError("shoal networks are IPv4 only")
        swarm_id = network_of_pool(body.get("Options"))
        if swarm_id is None:
            raise DriverError("the shoal IPAM driver serves swarm networks only")
        pool = body.get("Pool") or ""
        plan = self.plumbing.plan(swarm_id)
        if not pool:
            if plan is None:
                raise DriverError(f"network {swarm_id} is not on this node (yet): no subnet")
            pool = plan.subnet
        if body.get("SubPool"):
            raise DriverError("shoal networks take no --ip-range")
        subnet = str(ipaddress.IPv4Network(pool))
        if plan is not None and subnet != str(ipaddress.IPv4Network(plan.subnet)):
            raise DriverError(f"network {swarm_id} has subnet {plan.subnet}, not {pool}")
        return {"PoolID": pool_id(swarm_id, subnet), "Pool": subnet, "Data": {}}

    async def request_address(self, body: dict[str, Any]) -> dict[str, Any]:
        swarm_id, subnet = _pool(body)
        net = ipaddress.IPv4Network(subnet)
        options: dict[str, str] = dict(body.get("Options") or {})
        wanted = body.get("Address") or ""
        if options.get("RequestAddressType") == GATEWAY_REQUEST and not wanted:
            plan = self.plumbing.plan(swarm_id)
            wanted = plan.gateway if plan is not None else str(next(net.hosts()))
        if not wanted:
            if self.allocate is None:
                raise DriverError(
                    f"no address given for network {swarm_id}: this node cannot allocate one"
                )
            try:
                wanted = await self.allocate(swarm_id, options)
            except DriverError:
                raise
            except Exception as e:  # Docker's words: "Could not attach to network NAME: …"
                plan = self.plumbing.plan(swarm_id)
                name = plan.name if plan is not None else swarm_id
                raise DriverError(f"Could not attach to network {name}: {e}") from e
            async with self._lock:
                mine = self.table.allocated.setdefault(swarm_id, [])
                if wanted not in mine:
                    mine.append(wanted)
                self.table.save()
        if ipaddress.IPv4Address(wanted) not in net:
            raise DriverError(f"{wanted} is not in network {swarm_id}'s subnet {subnet}")
        return {"Address": f"{wanted}/{net.prefixlen}", "Data": {}}

    async def release_address(self, body: dict[str, Any]) -> dict[str, Any]:
        swarm_id, _ = _pool(body)
        ip = _need(body, "Address").split("/", 1)[0]
        async with self._lock:
            mine = self.table.allocated.get(swarm_id, [])
            if ip not in mine:
                return {}  # a task's (the manager frees it) or the gateway
            mine.remove(ip)
            if not mine:
                self.table.allocated.pop(swarm_id, None)
            self.table.save()
        if self.release is not None:
            await self.release(swarm_id, ip)
        return {}


async def _empty(_: dict[str, Any]) -> dict[str, Any]:
    return {}


def _need(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise DriverError(f"{key} missing")
    return value


def _pool(body: dict[str, Any]) -> tuple[str, str]:
    try:
        return parse_pool_id(_need(body, "PoolID"))
    except ValueError as e:
        raise DriverError(str(e)) from e
