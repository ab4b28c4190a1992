"""docker-py (the Docker SDK for Python) drives shoal like Docker's own swarm mode."""

from __future__ import annotations

import docker
import pytest
from support import wait_for

pytestmark = pytest.mark.e2e


def running(service) -> int:  # type: ignore[no-untyped-def]
    return sum(1 for t in service.tasks() if t["Status"]["State"] == "running")


def test_swarm_services_nodes(shoald, engine):  # type: ignore[no-untyped-def]
    client = docker.DockerClient(base_url=shoald.host)
    node_id = client.swarm.init(advertise_addr="127.0.0.1")
    try:
        assert client.info()["Swarm"]["LocalNodeState"] == "active"
        client.swarm.reload()
        assert client.swarm.attrs["JoinTokens"]["Worker"].startswith("SWMTKN-1-")

        nodes = client.nodes.list()
        assert [n.id for n in nodes] == [node_id]
        assert nodes[0].attrs["ManagerStatus"]["Leader"] is True

        service = client.services.create(
            "shoal-test/whoami:1", name="py", mode=docker.types.ServiceMode("replicated", 2)
        )
        wait_for(lambda: running(service) == 2, what="2 running tasks")
        assert service.scale(4)
        wait_for(lambda: running(service) == 4, what="4 running tasks")
        slots = sorted(t["Slot"] for t in service.tasks(filters={"desired-state": "running"}))
        assert slots == [1, 2, 3, 4]

        service.reload()
        assert service.attrs["Spec"]["Mode"]["Replicated"]["Replicas"] == 4
        with pytest.raises(docker.errors.APIError) as err:
            client.services.create("shoal-test/whoami:1", name="py")
        assert err.value.response.status_code == 409

        service.remove()
        with pytest.raises(docker.errors.NotFound):
            client.services.get("py")
        engine_client = engine.client()
        wait_for(
            lambda: not engine_client.api.containers(all=True, filters={"name": "py."}),
            what="task containers removed",
        )
    finally:
        client.swarm.leave(force=True)
    assert client.info()["Swarm"]["LocalNodeState"] == "inactive"
