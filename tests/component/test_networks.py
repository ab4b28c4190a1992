"""Swarm networks in the control plane: the allocator's subnets, VXLAN IDs and task
addresses; the control API's refusals in Docker's (swarmkit's) words."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from shoal.api.errors import AlreadyExists, FailedPrecondition, Forbidden, InvalidArgument, NotFound
from shoal.api.models import to_resource
from shoal.manager.controlapi import networks, services
from shoal.testing.cluster import SimCluster


def overlay(name: str, **extra: Any) -> dict[str, Any]:
    return {"Name": name, "Driver": "overlay", "IPAM": {"Driver": "default", "Config": []},
            "Labels": {}, **extra}  # fmt: skip


def addresses(c: SimCluster, service: str) -> list[str]:
    return [
        a
        for t in c.running(service)
        for att in t.networks_attachments or []
        for a in att.addresses or []
    ]


async def test_networks_get_a_subnet_and_a_vxlan_id() -> None:
    """The ingress network (made with the swarm) has the pool's first subnet and VXLAN ID 4096,
    as in Docker; networks created after it get the next ones, or the subnet given."""
    async with SimCluster(workers=1) as c:
        await c.until(lambda: all(n.allocated() for n in c.store.networks()), what="allocated")
        (ingress,) = c.store.networks()
        assert ingress.name == "ingress" and ingress.spec.ingress
        a = await networks.create(c.store, overlay("a"))
        b = await networks.create(c.store, overlay("b"))
        given = await networks.create(
            c.store, overlay("mine", IPAM={"Config": [{"Subnet": "10.9.0.0/24"}]})
        )
        nets = (ingress, a, b, given)
        assert [n.subnet().subnet for n in nets] == [  # type: ignore[union-attr]
            "10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/24", "10.9.0.0/24",
        ]  # fmt: skip
        assert [n.subnet().gateway for n in nets] == [  # type: ignore[union-attr]
            "10.0.0.1", "10.0.1.1", "10.0.2.1", "10.9.0.1",
        ]  # fmt: skip
        assert [n.vni for n in nets] == [4096, 4097, 4098, 4099]
        assert to_resource(ingress)["Driver"] == "overlay"
        assert to_resource(ingress)["Ingress"] is True
        resource = to_resource(given)
        assert resource["Scope"] == "swarm" and resource["Driver"] == "overlay"
        assert resource["IPAM"]["Config"] == [{"Subnet": "10.9.0.0/24", "Gateway": "10.9.0.1"}]
        assert resource["Options"] == {"com.docker.network.driver.overlay.vxlanid_list": "4099"}


async def test_automatic_subnets_come_from_the_swarms_address_pool() -> None:
    """`docker swarm init --default-addr-pool 10.20.0.0/16 --default-addr-pool 10.30.0.0/24
    --default-addr-pool-mask-length 25`; a given subnet may lie outside the pools, as in
    Docker."""
    pools = ["10.20.0.0/16", "10.30.0.0/24"]
    async with SimCluster(workers=1, default_addr_pool=pools, subnet_size=25) as c:
        first = await networks.create(c.store, overlay("first"))
        given = await networks.create(
            c.store, overlay("given", IPAM={"Config": [{"Subnet": "10.20.1.0/25"}]})
        )
        second = await networks.create(c.store, overlay("second"))
        (ingress,) = [n for n in c.store.networks() if n.spec.ingress]
        nets = (ingress, first, given, second)
        subnets = [n.subnet().subnet for n in nets]  # type: ignore[union-attr]
        assert subnets == ["10.20.0.0/25", "10.20.0.128/25", "10.20.1.0/25", "10.20.1.128/25"]
        outside = await networks.create(
            c.store, overlay("outside", IPAM={"Config": [{"Subnet": "192.168.7.0/24"}]})
        )
        assert outside.subnet().subnet == "192.168.7.0/24"  # type: ignore[union-attr]


async def test_tasks_get_addresses_that_are_freed_when_they_end() -> None:
    async with SimCluster(workers=2) as c:
        net = await networks.create(c.store, overlay("web-net"))
        await c.create("web", Mode={"Replicated": {"Replicas": 4}},
                       TaskTemplate_networks=["web-net"])  # fmt: skip
        await c.until(lambda: len(c.running("web")) == 4, what="4 running")
        service = c.service("web")
        assert [n.target for n in service.spec.task_template.networks or []] == [net.id]
        ips = addresses(c, "web")
        assert len(set(ips)) == 4
        subnet = ipaddress.ip_network("10.0.1.0/24")  # (10.0.0.0/24 is the ingress network's)
        for cidr in ips:
            ip, _, length = cidr.partition("/")
            assert ipaddress.ip_address(ip) in subnet and ip != "10.0.1.1" and length == "24"
        await c.update("web", lambda s: s["Mode"]["Replicated"].update(Replicas=1))
        await c.until(lambda: len(c.running("web")) == 1, what="1 running")
        await c.update("web", lambda s: s["Mode"]["Replicated"].update(Replicas=200))
        await c.until(lambda: len(c.running("web")) == 200, timeout=120, what="200 running")
        assert len(set(addresses(c, "web"))) == 200  # the pool is reused, nothing leaks


async def test_refusals() -> None:
    async with SimCluster(workers=1) as c:
        await networks.create(
            c.store, overlay("taken", IPAM={"Config": [{"Subnet": "10.5.0.0/16"}]})
        )
        cases = [
            (overlay("taken"), AlreadyExists, "network taken already exists"),
            (overlay("bridge"), Forbidden, "bridge is a pre-defined network and cannot be created"),
            (overlay("x", IPAM={"Config": [{"Subnet": "10.5.3.0/24"}]}), InvalidArgument,
             "Pool overlaps with other one on this address space"),
            (overlay("x", IPAM={"Config": [{"Subnet": "10.6.0.0/24", "Gateway": "10.7.0.1"}]}),
             InvalidArgument, "ipam configuration: subnet 10.6.0.0/24 does not contain gateway "
             "10.7.0.1"),
            (overlay("x", IPAM={"Config": [{"Subnet": "10.6.0.0/24", "IPRange": "10.8.0.0/25"}]}),
             InvalidArgument, "subnet 10.6.0.0/24 does not contain range 10.8.0.0/25"),
            (overlay("x", IPAM={"Config": [{"Subnet": "nonsense"}]}), InvalidArgument,
             "ipam configuration: invalid subnet nonsense"),
            (overlay("x", Options={"encrypted": ""}), InvalidArgument, "encrypted overlay"),
        ]  # fmt: skip
        for body, error, text in cases:
            with pytest.raises(error) as refused:
                await networks.create(c.store, body)
            assert text in str(refused.value), (body, str(refused.value))
        assert sorted(n.name for n in c.store.networks()) == ["ingress", "taken"]  # no half
        with pytest.raises(NotFound):
            await c.create("svc", TaskTemplate_networks=["nowhere"])
        with pytest.raises(InvalidArgument) as bridge:
            await c.create("svc", TaskTemplate_networks=["bridge"])
        assert "cannot be used with services" in str(bridge.value)
        await c.create("user", TaskTemplate_networks=["taken"])
        with pytest.raises(FailedPrecondition) as busy:
            await networks.remove(c.store, "taken")
        assert "network taken is in use by service" in str(busy.value)
        user = c.service("user")
        await services.remove(c.store, "user")
        await c.until(lambda: not list(c.store.tasks_of(user.id)), what="user's tasks gone")
        await networks.remove(c.store, "taken")
        assert [n.name for n in c.store.networks()] == ["ingress"]


def seen(c: SimCluster, node: str) -> dict[str, tuple[str, list[str]]]:
    """The endpoints a node was last told of, but the ingress network's (every node's own
    address there): IP → (its node's address, its names)."""
    ingress = {p.id for p in c.nodes[node].networks.last.networks if p.ingress}
    return {
        e.ip: (e.node_addr, e.names)
        for e in c.nodes[node].networks.last.endpoints
        if e.network_id not in ingress
    }


async def test_every_node_learns_the_endpoints_of_its_networks() -> None:
    async with SimCluster(workers=3) as c:
        net = await networks.create(c.store, overlay("app"))
        lone = await networks.create(c.store, overlay("lone"))
        shared = await networks.create(c.store, overlay("shared", Attachable=True))
        await c.create("web", Mode={"Replicated": {"Replicas": 2}},
                       Placement={"Constraints": ["node.hostname!=w3"]},
                       TaskTemplate_networks=["app"])  # fmt: skip
        await c.until(lambda: len(c.running("web")) == 2, what="2 running")
        await c.until(lambda: len(seen(c, "w1")) == 2 and all(n for _, n in seen(c, "w1").values()),
                      what="w1 told of both web tasks")  # fmt: skip
        ips = {t.node_id: (t.networks_attachments or [])[0].addresses[0].split("/")[0]  # type: ignore[index]
               for t in c.running("web")}  # fmt: skip
        w1, w2 = c.nodes["w1"], c.nodes["w2"]
        assert seen(c, "w1") == seen(c, "w2")
        assert seen(c, "w1")[ips[w2.id]][0] == c.node("w2").status.addr
        names = seen(c, "w1")[ips[w1.id]][1]
        assert names[0] == "tasks.web" and names[1].startswith("web.")  # "web" is the VIP's
        (balancer,) = w1.networks.last.balancers
        vip = c.service("web").endpoint.virtual_ips[0]  # type: ignore[union-attr,index]
        assert (balancer.network_id, balancer.vip) == (net.id, vip["Addr"].split("/")[0])
        assert balancer.names == ["web"] and balancer.ports == []
        assert sorted(b.ip for b in balancer.backends) == sorted(ips.values())
        # Each node has the networks of its tasks, every attachable one and the ingress
        # network, nothing else.
        plans = {p.name: p for p in w1.networks.last.networks}
        assert sorted(plans) == ["app", "ingress", "shared"]
        assert lone.id not in {p.id for p in plans.values()}
        assert plans["app"].vni == net.vni and plans["app"].subnet == "10.0.1.0/24"
        assert sorted(p.name for p in c.nodes["w3"].networks.last.networks) == ["ingress", "shared"]
        assert shared.spec.attachable
        # A node that dies is dropped from every other node's endpoints.
        await c.kill("w2")
        await c.until(lambda: c.down("w2"), what="w2 down")
        await c.until(lambda: ips[w2.id] not in seen(c, "w1"), what="w2's endpoint dropped")


async def test_plain_containers_attach_to_attachable_networks() -> None:
    from shoal.api.errors import PermissionDenied

    async with SimCluster(workers=2) as c:
        shared = await networks.create(c.store, overlay("shared", Attachable=True))
        closed = await networks.create(c.store, overlay("closed"))
        w1 = c.nodes["w1"].connection
        assert w1 is not None
        first = await w1.attach(shared.id, "endpoint-1")
        assert first.startswith("10.0.1.") and first.endswith("/24")
        assert await w1.attach(shared.id, "endpoint-1") == first  # asked again: the same
        ip = first.split("/")[0]
        await c.until(lambda: ip in seen(c, "w2"), what="w2 told of the container")
        assert seen(c, "w2")[ip] == (c.node("w1").status.addr, [])
        await w1.named(shared.id, ip, ["web", "web-alias"])
        await c.until(lambda: seen(c, "w2")[ip][1] == ["web", "web-alias"], what="its names")
        with pytest.raises(PermissionDenied) as refused:
            await w1.attach(closed.id, "endpoint-2")
        assert "network closed not manually attachable" in str(refused.value)
        await w1.detach(shared.id, ip)
        await c.until(lambda: ip not in seen(c, "w2"), what="the container gone from w2")
        second = await w1.attach(shared.id, "endpoint-3")
        assert second != first  # a released address is not handed out again at once
