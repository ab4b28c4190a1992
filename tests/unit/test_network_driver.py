"""The engine plugin's protocol, request by request, over a plumbing that records what it was
asked (no kernel): the answers dockerd needs, idempotence, the DNS route's one owner."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from shoal.network.driver import Driver, DriverTable
from shoal.network.engine_network import engine_network_body, network_of_create, network_of_pool
from shoal.network.names import DNS_ADDR, mac_for, peer_name, pool_id
from shoal.rpc.messages import NetworkPlan

NET = "swarmnet" + "x" * 17
PLAN = NetworkPlan(
    id=NET, name="front", vni=4097, subnet="10.9.0.0/24", gateway="10.9.0.1", labels={"a": "b"}
)
ENGINE_NET = "e" * 64
POOL = pool_id(NET, "10.9.0.0/24")


class Plumbing:
    def __init__(self) -> None:
        self.plans = {NET: PLAN}
        self.plugged: list[str] = []
        self.unplugged: list[str] = []
        self.sandboxes: list[str] = []

    def plan(self, network_id: str) -> NetworkPlan | None:
        return self.plans.get(network_id)

    async def plug(self, network_id: str, endpoint_id: str) -> str:
        self.plugged.append(endpoint_id)
        return peer_name(endpoint_id)

    async def unplug(self, network_id: str | None, endpoint_id: str) -> None:
        self.unplugged.append(endpoint_id)

    async def sandbox_changed(self, sandbox: str) -> None:
        self.sandboxes.append(sandbox)


class Manager:
    def __init__(self) -> None:
        self.next = 20
        self.released: list[tuple[str, str]] = []

    async def allocate(self, network_id: str, hint: Mapping[str, str]) -> str:
        self.next += 1
        return f"10.9.0.{self.next}"

    async def release(self, network_id: str, ip: str) -> None:
        self.released.append((network_id, ip))


@pytest.fixture
def parts(tmp_path: Path) -> tuple[Driver, Plumbing, Manager]:
    plumbing, manager = Plumbing(), Manager()
    table = DriverTable.load(str(tmp_path / "table.json"))
    return Driver(plumbing, table, manager.allocate, manager.release), plumbing, manager


async def network(driver: Driver) -> None:
    body = engine_network_body(PLAN)
    answer = await driver.call(
        "NetworkDriver.CreateNetwork",
        {
            "NetworkID": ENGINE_NET,
            "Options": {
                "com.docker.network.enable_ipv6": False,
                "com.docker.network.generic": body["Options"],
            },
            "IPv4Data": [
                {"AddressSpace": "shoal", "Pool": "10.9.0.0/24", "Gateway": "10.9.0.1/24"}
            ],
            "IPv6Data": [],
        },
    )
    assert answer == {}


async def endpoint(driver: Driver, eid: str, ip: str) -> dict[str, Any]:
    return await driver.call(
        "NetworkDriver.CreateEndpoint",
        {
            "NetworkID": ENGINE_NET,
            "EndpointID": eid,
            "Interface": {"Address": f"{ip}/24", "MacAddress": ""},
        },
    )


async def join(driver: Driver, eid: str, sandbox: str) -> dict[str, Any]:
    return await driver.call(
        "NetworkDriver.Join",
        {"NetworkID": ENGINE_NET, "EndpointID": eid, "SandboxKey": sandbox, "Options": {}},
    )


def test_the_engine_network_body_carries_the_swarm_network() -> None:
    body = engine_network_body(PLAN)
    assert (
        body["Name"] == "front" and body["Driver"] == "shoal" and body["IPAM"]["Driver"] == "shoal"
    )
    assert body["IPAM"]["Config"] == [{"Subnet": "10.9.0.0/24", "Gateway": "10.9.0.1"}]
    assert body["Options"] == {"shoal.network": NET} == body["IPAM"]["Options"]
    assert body["Labels"] == {"a": "b", "shoal.network": NET}
    assert body["Internal"] is False
    internal = engine_network_body(PLAN.model_copy(update={"internal": True}))
    assert internal["Internal"] is True
    assert network_of_create({"com.docker.network.generic": {"shoal.network": NET}}) == NET
    assert network_of_create({"com.docker.network.generic": {}}) is None
    assert network_of_pool({"shoal.network": NET}) == NET and network_of_pool(None) is None


async def test_handshake(parts: tuple[Driver, Plumbing, Manager]) -> None:
    driver, _, _ = parts
    assert await driver.call("Plugin.Activate", {}) == {
        "Implements": ["NetworkDriver", "IpamDriver"]
    }
    assert await driver.call("NetworkDriver.GetCapabilities", {}) == {
        "Scope": "local",
        "ConnectivityScope": "global",
    }
    assert (await driver.call("IpamDriver.GetCapabilities", {}))["RequiresMACAddress"] is False
    assert not driver.knows("NetworkDriver.Nonsense")


async def test_pool_and_addresses(parts: tuple[Driver, Plumbing, Manager]) -> None:
    driver, _, manager = parts
    pool = await driver.call(
        "IpamDriver.RequestPool",
        {
            "AddressSpace": "shoal",
            "Pool": "10.9.0.0/24",
            "SubPool": "",
            "Options": {"shoal.network": NET},
            "V6": False,
        },
    )
    assert pool == {"PoolID": POOL, "Pool": "10.9.0.0/24", "Data": {}}
    gateway = {
        "PoolID": POOL,
        "Address": "10.9.0.1",
        "Options": {"RequestAddressType": "com.docker.network.gateway"},
    }
    assert (await driver.call("IpamDriver.RequestAddress", gateway))["Address"] == "10.9.0.1/24"
    gateway["Address"] = ""
    assert (await driver.call("IpamDriver.RequestAddress", gateway))["Address"] == "10.9.0.1/24"
    task = await driver.call(
        "IpamDriver.RequestAddress", {"PoolID": POOL, "Address": "10.9.0.7", "Options": None}
    )
    assert task["Address"] == "10.9.0.7/24"
    attached = await driver.call(
        "IpamDriver.RequestAddress", {"PoolID": POOL, "Address": "", "Options": None}
    )
    assert attached["Address"] == "10.9.0.21/24"
    # only what allocate() gave is released to the manager
    for ip in ("10.9.0.7", "10.9.0.1", "10.9.0.21", "10.9.0.21"):
        assert await driver.call("IpamDriver.ReleaseAddress", {"PoolID": POOL, "Address": ip}) == {}
    assert manager.released == [(NET, "10.9.0.21")]


async def test_ipam_refusals(parts: tuple[Driver, Plumbing, Manager]) -> None:
    """The IPAM API's failures are in `Error` (libnetwork reads an IPAM answer with `Err` as
    a success without an address)."""
    driver, _, _ = parts
    v6 = await driver.call("IpamDriver.RequestPool", {"AddressSpace": "shoal", "V6": True})
    assert "IPv4 only" in v6["Error"]
    foreign = await driver.call(
        "IpamDriver.RequestPool", {"AddressSpace": "shoal", "Pool": "10.9.0.0/24"}
    )
    assert "swarm networks only" in foreign["Error"]
    wrong = await driver.call(
        "IpamDriver.RequestPool", {"Pool": "10.8.0.0/24", "Options": {"shoal.network": NET}}
    )
    assert "10.9.0.0/24" in wrong["Error"]
    outside = await driver.call(
        "IpamDriver.RequestAddress", {"PoolID": POOL, "Address": "10.8.0.7"}
    )
    assert "not in" in outside["Error"]
    assert "pool" in (await driver.call("IpamDriver.RequestAddress", {"PoolID": "x"}))["Error"]


async def test_without_an_allocator_an_address_must_be_given(tmp_path: Path) -> None:
    driver = Driver(Plumbing(), DriverTable())
    answer = await driver.call("IpamDriver.RequestAddress", {"PoolID": POOL, "Address": ""})
    assert "cannot allocate" in answer["Error"]


async def test_a_foreign_network_is_refused(parts: tuple[Driver, Plumbing, Manager]) -> None:
    driver, _, _ = parts
    answer = await driver.call(
        "NetworkDriver.CreateNetwork", {"NetworkID": ENGINE_NET, "Options": {}}
    )
    assert "not made by shoal" in answer["Err"]


async def test_endpoint_mac_join_and_the_dns_route(parts: tuple[Driver, Plumbing, Manager]) -> None:
    driver, plumbing, _ = parts
    await network(driver)
    assert await endpoint(driver, "ep1", "10.9.0.7") == {
        "Interface": {"MacAddress": mac_for("10.9.0.7")}
    }
    first = await join(driver, "ep1", "/run/docker/netns/sb1")
    assert first == {
        "InterfaceName": {"SrcName": peer_name("ep1"), "DstPrefix": "eth"},
        "StaticRoutes": [{"Destination": f"{DNS_ADDR}/32", "RouteType": 1}],
    }
    assert await join(driver, "ep1", "/run/docker/netns/sb1") == first  # dockerd retried
    # a second shoal network in the same container: no second route (it would collide)
    await endpoint(driver, "ep2", "10.9.0.8")
    second = await join(driver, "ep2", "/run/docker/netns/sb1")
    assert "StaticRoutes" not in second
    # another container gets its own
    await endpoint(driver, "ep3", "10.9.0.9")
    assert "StaticRoutes" in await join(driver, "ep3", "/run/docker/netns/sb2")
    assert plumbing.plugged == ["ep1", "ep1", "ep2", "ep3"]
    assert (
        await driver.call(
            "NetworkDriver.EndpointOperInfo", {"NetworkID": ENGINE_NET, "EndpointID": "ep1"}
        )
    )["Value"] == {"shoal.network": NET, "shoal.dns": True}
    # leaving frees the route for the next join of that container
    assert (
        await driver.call("NetworkDriver.Leave", {"NetworkID": ENGINE_NET, "EndpointID": "ep1"})
        == {}
    )
    await endpoint(driver, "ep4", "10.9.0.10")
    assert "StaticRoutes" in await join(driver, "ep4", "/run/docker/netns/sb1")
    assert (
        await driver.call(
            "NetworkDriver.DeleteEndpoint", {"NetworkID": ENGINE_NET, "EndpointID": "ep1"}
        )
        == {}
    )
    assert "ep1" not in driver.table.endpoints and plumbing.unplugged == ["ep1", "ep1"]


async def test_a_chosen_mac_address_must_be_the_derived_one(
    parts: tuple[Driver, Plumbing, Manager],
) -> None:
    driver, _, _ = parts
    await network(driver)
    body = {"NetworkID": ENGINE_NET, "EndpointID": "ep1", "Interface": {"Address": "10.9.0.7/24"}}
    body["Interface"]["MacAddress"] = mac_for("10.9.0.7")  # type: ignore[index]
    assert await driver.call("NetworkDriver.CreateEndpoint", body) == {"Interface": {}}
    body["Interface"]["MacAddress"] = "02:00:00:00:00:01"  # type: ignore[index]
    assert "MAC" in (await driver.call("NetworkDriver.CreateEndpoint", body))["Err"]


async def test_join_needs_the_network_here(parts: tuple[Driver, Plumbing, Manager]) -> None:
    driver, plumbing, _ = parts
    await network(driver)
    await endpoint(driver, "ep1", "10.9.0.7")
    plumbing.plans.clear()
    assert "not on this node" in (await join(driver, "ep1", "/sb"))["Err"]
    assert "unknown" in (await join(driver, "nope", "/sb"))["Err"]
    unknown_net = await driver.call(
        "NetworkDriver.CreateEndpoint",
        {"NetworkID": "f" * 64, "EndpointID": "x", "Interface": {"Address": "10.9.0.2/24"}},
    )
    assert "unknown to shoal" in unknown_net["Err"]


async def test_the_table_survives_a_restart(
    parts: tuple[Driver, Plumbing, Manager], tmp_path: Path
) -> None:
    driver, plumbing, manager = parts
    await network(driver)
    await endpoint(driver, "ep1", "10.9.0.7")
    await join(driver, "ep1", "/sb1")
    await driver.call("IpamDriver.RequestAddress", {"PoolID": POOL, "Address": ""})
    again = Driver(
        plumbing, DriverTable.load(str(tmp_path / "table.json")), manager.allocate, manager.release
    )
    assert again.table.networks == {ENGINE_NET: NET}
    assert again.table.endpoints["ep1"].sandbox == "/sb1" and again.table.endpoints["ep1"].dns_route
    assert again.table.allocated == {NET: ["10.9.0.21"]}
    await endpoint(again, "ep2", "10.9.0.8")
    assert "StaticRoutes" not in await join(again, "ep2", "/sb1")
    await again.call("NetworkDriver.DeleteNetwork", {"NetworkID": ENGINE_NET})
    assert DriverTable.load(str(tmp_path / "table.json")).networks == {}
