"""Services balanced by every node, in the control plane: VIPs, the routing mesh's published
ports, the ingress addresses of nodes and tasks, the tasks in rotation — and a task told to
stop leaving every rotation before its node stops it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from shoal.api.errors import FailedPrecondition, InvalidArgument
from shoal.api.states import TaskState
from shoal.manager.controlapi import networks
from shoal.manager.dispatcher.dispatcher import DRAIN_TIMEOUT
from shoal.rpc.messages import Balancer, NetworkState
from shoal.testing.cluster import SimCluster


def overlay(name: str) -> dict[str, Any]:
    return {"Name": name, "Driver": "overlay", "Labels": {}}


def published(target: int, port: int = 0, protocol: str = "tcp") -> dict[str, Any]:
    return {"Protocol": protocol, "TargetPort": target, "PublishedPort": port,
            "PublishMode": "ingress"}  # fmt: skip


def balancer(c: SimCluster, node: str, network_id: str) -> Balancer | None:
    state = c.nodes[node].networks.last
    return next((b for b in state.balancers if b.network_id == network_id), None)


def ingress_id(c: SimCluster) -> str:
    return next(n.id for n in c.store.networks() if n.spec.ingress)


async def test_published_ports_vips_and_ingress_addresses() -> None:
    async with SimCluster(workers=3) as c:
        app = await networks.create(c.store, overlay("app"))
        await c.create("web", Mode={"Replicated": {"Replicas": 3}},
                       EndpointSpec={"Ports": [published(80, 8080), published(53, 0, "udp")]},
                       TaskTemplate_networks=["app"])  # fmt: skip
        await c.until(lambda: len(c.running("web")) == 3, what="3 running")
        ingress = ingress_id(c)
        endpoint = c.service("web").endpoint
        assert endpoint is not None
        assert [(p.protocol, p.target_port, p.published_port) for p in endpoint.ports or []] == [
            ("tcp", 80, 8080), ("udp", 53, 30000),
        ]  # fmt: skip
        vips = {v["NetworkID"]: v["Addr"] for v in endpoint.virtual_ips or []}
        assert list(vips) == [ingress, app.id]  # the ingress network's first
        # Every task is on ingress (first) and on app.
        for t in c.running("web"):
            assert [(a.network_ or {})["ID"] for a in t.networks_attachments or []] == [
                ingress, app.id,
            ]  # fmt: skip
        # Every node — the drained manager too — balances the published ports, over all
        # three tasks' ingress addresses, from its own ingress address.
        task_ips = {
            (a.addresses or [""])[0].split("/")[0]
            for t in c.running("web")
            for a in t.networks_attachments or []
            if (a.network_ or {})["ID"] == ingress
        }
        for name in c.nodes:
            await c.until(lambda name=name: balancer(c, name, ingress) is not None
                          and len(balancer(c, name, ingress).backends) == 3,  # type: ignore[union-attr]
                          what=f"{name} balancing web")  # fmt: skip
            mesh = balancer(c, name, ingress)
            assert mesh is not None and mesh.vip == vips[ingress].split("/")[0]
            assert [(p.protocol, p.published, p.target) for p in mesh.ports] == [
                ("tcp", 8080, 80), ("udp", 30000, 53),
            ]  # fmt: skip
            assert {b.ip for b in mesh.backends} == task_ips
            state: NetworkState = c.nodes[name].networks.last
            assert state.ingress_address.startswith("10.0.0.")
        addresses = {c.nodes[n].networks.last.ingress_address for n in c.nodes}
        assert len(addresses) == len(c.nodes)
        # The VIP on app is balanced only where app is (the workers, which run the tasks).
        assert balancer(c, "w1", app.id) is not None and balancer(c, "m1", app.id) is None
        # An update that keeps the port keeps the allocated one.
        await c.update("web", lambda s: s["Labels"].update(touched="1"))
        assert c.service("web").endpoint.ports[1].published_port == 30000  # type: ignore[union-attr,index]


async def test_refusals() -> None:
    async with SimCluster(workers=1) as c:
        await c.create("a", EndpointSpec={"Ports": [published(80, 8080)]})
        with pytest.raises(InvalidArgument) as taken:
            await c.create("b", EndpointSpec={"Ports": [published(80, 8080)]})
        assert "port '8080' is already in use by service 'a'" in str(taken.value)
        with pytest.raises(InvalidArgument) as dnsrr:
            await c.create("c", EndpointSpec={"Mode": "dnsrr", "Ports": [published(80, 8081)]})
        assert "can't be used with dnsrr mode" in str(dnsrr.value)
        ingress = ingress_id(c)
        with pytest.raises(FailedPrecondition) as needed:
            await networks.remove(c.store, ingress)
        assert "ingress network cannot be removed because service" in str(needed.value)
        await c.update("a", lambda s: s.pop("EndpointSpec"))
        await networks.remove(c.store, ingress)  # nothing publishes: it may go
        with pytest.raises(FailedPrecondition) as missing:
            await c.create("d", EndpointSpec={"Ports": [published(80, 8082)]})
        assert "service needs ingress network, but no ingress network is present" in str(
            missing.value
        )


async def test_a_stopping_task_leaves_every_rotation_before_it_is_stopped() -> None:
    """Scaled down from 3 to 2: the task that goes keeps running until every node applied a
    network state without it; a node that does not answer holds it up DRAIN_TIMEOUT at most."""
    async with SimCluster(workers=3) as c:
        await c.create("web", Mode={"Replicated": {"Replicas": 3}},
                       EndpointSpec={"Ports": [published(80, 8080)]})  # fmt: skip
        await c.until(lambda: len(c.running("web")) == 3, what="3 running")
        ingress = ingress_id(c)
        for name in c.nodes:
            await c.until(lambda name=name: len(balancer(c, name, ingress).backends) == 3,  # type: ignore[union-attr]
                          what=f"{name} balancing 3")  # fmt: skip
        # m1's data plane stalls: it takes states but does not get through them.
        stalled = asyncio.Event()
        recorded = c.nodes["m1"].networks
        real_apply = recorded.apply

        async def slow_apply(state: NetworkState) -> None:
            await stalled.wait()
            await real_apply(state)

        recorded.apply = slow_apply  # type: ignore[method-assign]
        await c.update("web", lambda s: s["Mode"]["Replicated"].update(Replicas=2))
        await c.until(
            lambda: any(t.desired_state > TaskState.RUNNING for t in c.tasks("web")),
            what="one task told to stop",
        )
        (going,) = [t for t in c.tasks("web") if t.desired_state > TaskState.RUNNING]
        node = next(n for n, sim in c.nodes.items() if sim.id == going.node_id)
        # The other workers leave it out at once; its container keeps running meanwhile.
        for name in ("w1", "w2", "w3"):
            await c.until(lambda name=name: going.id not in
                          {b.task_id for b in balancer(c, name, ingress).backends},  # type: ignore[union-attr]
                          what=f"{name} without the task")  # fmt: skip
        await c.sleep(DRAIN_TIMEOUT / 4)
        assert c.where("web")[node] == 1
        stalled.set()  # m1 gets through: now it may stop
        took = await c.until(lambda: c.where("web")[node] == 0, what="the task stopped")
        assert took < DRAIN_TIMEOUT
        # Again with m1 stalled for good: the stop waits DRAIN_TIMEOUT, then goes ahead.
        stalled.clear()
        await c.update("web", lambda s: s["Mode"]["Replicated"].update(Replicas=1))
        await c.until(lambda: sum(c.where("web").values()) == 1, what="down to 1")
        stalled.set()
