"""Names are unique per kind even when two managers create one at once: the key holding the
name is written in the creating transaction, so the second create fails with Docker's
message although its manager's mirror had not yet seen the first (it lags here). A removed
object's name is free again, and a name key that outlived its object is cleared."""

from __future__ import annotations

import pytest

from shoal.api.errors import AlreadyExists, NameTaken
from shoal.api.models import Service, ServiceSpec
from shoal.api.naming import new_id
from shoal.manager.controlapi import networks, secrets, services
from shoal.store.kv import Put
from shoal.testing.store import MemoryStore, two_managers

SPEC = {"Name": "web", "TaskTemplate": {"ContainerSpec": {"Image": "busybox"}}}


async def test_two_managers_create_one_service_name_at_once() -> None:
    async with two_managers() as (a, b, _):
        await a.create(Service(id=new_id(), spec=ServiceSpec(name="web")))
        assert list(b.services()) == []  # b's mirror has not seen it: its own check passes
        with pytest.raises(AlreadyExists) as refused:
            await services.create(b, SPEC)
        assert "service web already exists" in str(refused.value)
        await b.barrier()
        assert [s.spec.name for s in b.services()] == ["web"]


async def test_networks_and_secrets_too() -> None:
    async with two_managers() as (a, b, _):
        body = {"Name": "front", "Driver": "overlay"}
        await a.create(networks.validate(a, body))
        with pytest.raises(AlreadyExists, match="network front already exists"):
            await networks.create(b, body)
        s1 = {"Name": "s1", "Data": "c2VjcmV0"}
        await a.create(secrets.validate(a, secrets.SECRETS, s1))
        assert list(b.networks()) == list(b.secrets()) == []  # b has not seen them yet
        with pytest.raises(AlreadyExists, match="secret s1 already exists"):
            await secrets.create(b, secrets.SECRETS, s1)


async def test_a_removed_objects_name_is_free_again() -> None:
    async with MemoryStore() as store:
        first = await services.create(store, SPEC)
        await services.remove(store, first.id)
        second = await services.create(store, SPEC)
        assert second.id != first.id
        with pytest.raises(NameTaken):  # the store alone refuses it too
            await store.create(Service(id=new_id(), spec=ServiceSpec(name="web")))


async def test_a_name_key_without_its_object_is_cleared() -> None:
    async with MemoryStore() as store:
        await store.memory.txn([Put("/shoal/names/services/web", b"gone0000000000000000000000")])
        created = await services.create(store, SPEC)
        assert store.get(Service, created.id) is not None
