"""The read barrier (`MirroredStore.barrier`): a manager whose mirror lags behind answers,
after the barrier, with every write another manager acknowledged before it; concurrent
barriers share one request to etcd; without an answer from etcd it fails with the no-leader
error instead of answering from the mirror."""

from __future__ import annotations

import asyncio

import pytest

from shoal.api.errors import NoLeader
from shoal.api.models import Service, ServiceSpec
from shoal.api.naming import new_id
from shoal.store.kv import Put
from shoal.testing.kv import LAG
from shoal.testing.store import MemoryStore, two_managers


async def test_after_the_barrier_a_lagging_manager_reads_what_another_acknowledged() -> None:
    async with two_managers() as (a, b, _):
        created = await a.create(Service(id=new_id(), spec=ServiceSpec(name="web")))
        assert b.get(Service, created.id) is None  # the mirror lags: a stale read
        await b.barrier()
        assert b.get(Service, created.id) is not None
        spec = created.spec.model_copy(update={"labels": {"v": "2"}})
        updated = await a.update(created.model_copy(update={"spec": spec}))
        await a.delete(updated)
        assert b.get(Service, created.id) is not None
        await b.barrier()
        assert b.get(Service, created.id) is None


async def test_the_barrier_follows_writes_outside_the_state() -> None:
    """The leader's key and session claims raise etcd's revision too: the mirror follows them,
    so a barrier never waits for a revision that no state change will bring."""
    async with two_managers() as (a, b, _):
        await a.create(Service(id=new_id(), spec=ServiceSpec(name="web")))
        await a.memory.txn([Put("/shoal-leader", b"m1")])
        await a.memory.txn([Put("/shoal-sessions/n1", b"m1")])
        await asyncio.wait_for(b.barrier(), 2 * LAG + 1)
        assert b.revision == a.memory.revision


async def test_concurrent_barriers_share_one_request() -> None:
    async with two_managers() as (a, b, lagging):
        await a.create(Service(id=new_id(), spec=ServiceSpec(name="web")))
        before = lagging.status_calls
        await asyncio.gather(*(b.barrier() for _ in range(100)))
        # The first caller's request, and one more for those that came while it was out.
        assert lagging.status_calls - before <= 2
        assert len(list(b.services())) == 1


async def test_a_barrier_waits_for_a_request_sent_after_it_began() -> None:
    """A request already in flight may have been answered before a write the caller saw
    acknowledged: the caller waits for the next one."""
    async with two_managers() as (a, b, lagging):
        first = asyncio.create_task(b.barrier())
        await asyncio.sleep(0)  # its request is out
        await asyncio.sleep(0.005)
        created = await a.create(Service(id=new_id(), spec=ServiceSpec(name="web")))
        await b.barrier()
        assert b.get(Service, created.id) is not None
        await first
        assert lagging.status_calls == 2


async def test_without_an_answer_the_barrier_fails_with_no_leader() -> None:
    async with two_managers() as (a, b, _):
        a.memory.unavailable = True
        with pytest.raises(NoLeader):
            await b.barrier()
        a.memory.unavailable = False
        await b.barrier()


async def test_a_barrier_refused_while_etcd_elects_a_leader_asks_again() -> None:
    """etcd refuses a read at once when its leader changes under it (`leader changed`): the
    barrier asks again within its time and answers once the new leader does."""
    async with two_managers() as (a, b, _):
        created = await a.create(Service(id=new_id(), spec=ServiceSpec(name="web")))
        a.memory.unavailable = True
        waiting = asyncio.create_task(b.barrier())
        await asyncio.sleep(1.0)
        a.memory.unavailable = False
        await waiting
        assert b.get(Service, created.id) is not None


async def test_one_refused_quorum_check_refuses_no_call() -> None:
    async with MemoryStore() as a:
        refusals = [1]
        status = a.memory.status

        async def refused_once() -> int:
            if refusals[0]:
                refusals[0] -= 1
                raise ConnectionError("etcdserver: leader changed")
            return await status()

        a.memory.status = refused_once  # type: ignore[method-assign]
        seen = []
        checker = asyncio.create_task(a.watch_quorum())
        for _ in range(30):
            await asyncio.sleep(0.1)
            seen.append(a.quorate)
        checker.cancel()
        assert refusals == [0] and all(seen)
