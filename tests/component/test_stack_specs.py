"""What `docker stack deploy` sends, as Docker's swarm mode stores it (the control API on a
simulated cluster): an empty endpoint mode, driver options and labels of a network, a
redeploy of a job. The same are checked against Docker's own answers in
`tests/e2e/test_stack_exact.py`."""

from __future__ import annotations

from typing import Any

from shoal.api.models import to_resource
from shoal.manager.controlapi import networks, services
from shoal.testing.cluster import SimCluster


def stack_service(name: str, **extra: Any) -> dict[str, Any]:
    """A service as the docker CLI's compose conversion sends it (no endpoint_mode)."""
    return {
        "Name": name,
        "Labels": {"com.docker.stack.namespace": "st"},
        "TaskTemplate": {"ContainerSpec": {"Image": "busybox", "Command": ["true"]}},
        "EndpointSpec": {"Mode": ""},
        **extra,
    }


async def test_an_empty_endpoint_mode_is_vip() -> None:
    """moby's conversion: "" is SwarmKit's resolution mode 0, VIP (shown as "vip")."""
    async with SimCluster(workers=1) as c:
        created = await services.create(c.store, stack_service("st_a"))
        assert created.to_api()["Spec"]["EndpointSpec"] == {"Mode": "vip"}
        plain = await services.create(
            c.store, {"Name": "b", "TaskTemplate": {"ContainerSpec": {"Image": "busybox"}}}
        )
        assert "EndpointSpec" not in plain.to_api()["Spec"]


async def test_every_update_of_a_job_runs_it_again() -> None:
    """SwarmKit's UpdateService bumps a job's iteration on every update, an unchanged spec's
    too: a redeployed stack runs its jobs again, as Docker does."""
    async with SimCluster(workers=1) as c:
        body = stack_service("st_job", Mode={"ReplicatedJob": {}})
        job = await services.create(c.store, body)
        assert job.job_status is not None and job.job_status.job_iteration.index == 0
        again = await services.update(c.store, job.id, job.version.index, body)
        assert again.job_status is not None and again.job_status.job_iteration.index == 1


async def test_stack_networks_keep_driver_options_and_no_labels_is_null() -> None:
    async with SimCluster(workers=1) as c:
        front = await networks.create(c.store, {
            "Name": "st_front", "Driver": "overlay", "Options": {"com.example.opt": "1"},
            "Labels": {"com.docker.stack.namespace": "st"},
        })  # fmt: skip
        bare = await networks.create(c.store, {"Name": "bare", "Driver": "overlay", "Labels": {}})
        await c.until(lambda: all(n.allocated() for n in c.store.networks()), what="allocated")
        front_r = to_resource(c.store.get(type(front), front.id))
        assert front_r["Options"]["com.example.opt"] == "1"
        assert "com.docker.network.driver.overlay.vxlanid_list" in front_r["Options"]
        assert front_r["Labels"] == {"com.docker.stack.namespace": "st"}
        assert to_resource(c.store.get(type(bare), bare.id))["Labels"] is None


async def test_stack_rm_removes_the_network_right_after_the_services() -> None:
    """`docker stack rm` deletes the services, then at once their networks: the tasks of a
    deleted service, still running for a moment, do not hold the network (SwarmKit's
    orchestrator marks them in memory before the CLI's next call)."""
    async with SimCluster(workers=1) as c:
        await networks.create(c.store, {"Name": "st_default", "Driver": "overlay"})
        await c.create("st_web", TaskTemplate_networks=["st_default"])
        await c.until(lambda: c.running("st_web"), what="st_web running")
        web = c.service("st_web")
        await services.remove(c.store, web.id)
        await networks.remove(c.store, "st_default")
        assert "st_default" not in {n.name for n in c.store.networks()}
