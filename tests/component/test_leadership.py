"""The leader's writes are fenced by its term: once another manager leads, a write of the old
leader fails even if it has not noticed yet; the new leader's loops take over."""

from __future__ import annotations

import pytest

from shoal.api.errors import Deposed
from shoal.api.models import Service, ServiceSpec
from shoal.api.naming import new_id
from shoal.store.election import Election
from shoal.testing.clock import MockClock
from shoal.testing.store import MemoryStore


def service(name: str) -> Service:
    return Service(id=new_id(), spec=ServiceSpec(name=name))


async def test_a_deposed_leaders_writes_fail() -> None:
    async with MemoryStore(MockClock()) as store:
        a = Election(store.memory, "manager-a")
        await a.campaign()
        as_a = store.fenced(a.guard)
        await as_a.create(service("before"))
        # A's lease runs out while it is stalled (it has not noticed), and B is elected.
        await store.memory.revoke(a.lease)
        b = Election(store.memory, "manager-b")
        await b.campaign()
        with pytest.raises(Deposed):
            await as_a.create(service("after"))
        with pytest.raises(Deposed):
            await as_a.modify(Service, {s.id: lambda s: True for s in store.services()})
        await store.fenced(b.guard).create(service("by-b"))
        assert sorted(s.spec.name for s in store.services()) == ["before", "by-b"]
        # Unfenced writes (the API's) do not depend on the leadership.
        await store.create(service("api"))


async def test_leadership_lost_stops_the_loops_and_they_start_again() -> None:
    from shoal.testing.cluster import SimCluster

    async with SimCluster(workers=1) as c:
        await c.create("web", Mode={"Replicated": {"Replicas": 2}})
        await c.until(lambda: len(c.running("web")) == 2, what="2 running")
        election = c.manager.election
        term = election.guard
        await c.store.memory.revoke(election.lease)  # the term ends behind the leader's back
        await c.until(lambda: c.manager.election.guard != term, what="a new term")
        assert c.manager.is_leader
        # The new term's loops work: scaling up is carried out.
        await c.update("web", lambda spec: spec["Mode"]["Replicated"].update(Replicas=3))
        await c.until(lambda: len(c.running("web")) == 3, what="3 running")


async def test_without_its_backend_the_store_answers_no_leader_and_recovers() -> None:
    import asyncio

    from shoal.api.errors import NO_LEADER, NoLeader

    async with MemoryStore(MockClock()) as store:
        await store.create(service("before"))
        store.memory.break_watches()  # etcd without quorum (or restarting)
        with pytest.raises(NoLeader) as refused:
            await store.create(service("lost"))
        assert refused.value.status == 500
        assert str(refused.value) == f"rpc error: code = Unknown desc = {NO_LEADER}"
        await asyncio.sleep(0.1)
        assert not store.synced.is_set()  # reads are refused too (`Daemon.control`)
        store.memory.heal()
        await asyncio.wait_for(store.synced.wait(), 5)
        await store.create(service("after"))
        assert sorted(s.spec.name for s in store.services()) == ["after", "before"]


async def test_the_leaders_writes_of_many_objects_fit_etcds_limit() -> None:
    """etcd counts the guard among a transaction's 128 comparisons: a fenced write of 200
    objects must still go through (the orchestrator shutting down a 200-replica service)."""
    async with MemoryStore(MockClock()) as store:
        a = Election(store.memory, "manager-a")
        await a.campaign()
        await store.create_all([service(f"s{i}") for i in range(200)])

        def relabel(s: Service) -> bool:
            s.spec.labels = {"v": "2"}
            return True

        await store.fenced(a.guard).modify(Service, {s.id: relabel for s in store.services()})
        assert all(s.spec.labels == {"v": "2"} for s in store.services())
