"""A candidate takes over from a dead leader without waiting for its lease: it revokes the
lease once the leader's cluster port is closed and its etcd member does not lead
(`shoal.manager.failover`), never otherwise; requests that are never answered (sent as etcd's
leader died) or answers lost do not hold up the campaign."""

from __future__ import annotations

import asyncio

import pytest

from shoal.api.models import ManagerStatus, Node
from shoal.manager.failover import DeadLeader
from shoal.store.election import KEY, Election
from shoal.testing.kv import MemoryKV
from shoal.testing.peers import FakePeers, Unanswered

LONG = 600  # the dead leader's lease: far longer than any wait below


def managers() -> list[Node]:
    return [
        Node(id=n, manager_status=ManagerStatus(addr=f"10.0.0.{i}:2377"))
        for i, n in enumerate(["a", "b", "c"], 1)
    ]


def judge(peers: FakePeers) -> DeadLeader:
    loop = asyncio.get_running_loop()
    return DeadLeader(managers, peers, loop.time, probe=peers.probe)


async def a_leads(kv: MemoryKV) -> Election:
    a = Election(kv, "a", ttl=LONG)
    await a.campaign()
    return a  # and then dies: nobody keeps its lease alive


async def test_a_dead_leaders_lease_is_revoked_and_a_survivor_leads() -> None:
    kv = MemoryKV()
    a = await a_leads(kv)
    peers = FakePeers(etcd_leader="c")  # a's host died with its etcd member
    peers.closed.add("10.0.0.1:2377")
    b = Election(kv, "b", judge=judge(peers))
    await asyncio.wait_for(b.campaign(), 10)
    held = await kv.get(KEY)
    assert (
        held is not None
        and held.value == b"b"
        and b.guard.create_revision > a.guard.create_revision
    )


@pytest.mark.parametrize("why", ["its port answers", "its etcd member leads", "no etcd leader"])
async def test_a_leader_that_may_be_alive_keeps_its_term(why: str) -> None:
    kv = MemoryKV()
    a = await a_leads(kv)
    peers = FakePeers(etcd_leader="a" if why == "its etcd member leads" else "c")
    if why == "no etcd leader":
        peers.etcd_leader = None
    if why != "its port answers":
        peers.closed.add("10.0.0.1:2377")
    b = Election(kv, "b", judge=judge(peers))
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(b.campaign(), 30)
    held = await kv.get(KEY)
    assert held is not None and held.create_revision == a.guard.create_revision
    assert peers.probes > 10  # it did look


async def test_a_candidate_takes_the_key_as_soon_as_the_leader_resigns() -> None:
    kv = MemoryKV()
    a = await a_leads(kv)
    b = Election(kv, "b", ttl=LONG)  # no judge: it waits for the key to go
    campaign = asyncio.ensure_future(b.campaign())
    await asyncio.sleep(5)
    assert not campaign.done()
    await a.resign()
    await asyncio.wait_for(campaign, 1)
    assert (await b.leader()) == "b"


async def test_requests_never_answered_do_not_hold_up_the_campaign() -> None:
    kv = Unanswered()
    kv.hang = {"load": 1, "grant": 1, "txn": 1}
    b = Election(kv, "b")
    await asyncio.wait_for(b.campaign(), 30)
    assert (await b.leader()) == "b"


async def test_a_create_whose_answer_was_lost_is_recognised() -> None:
    kv = Unanswered()
    kv.lose_txn_answers = 1
    b = Election(kv, "b")
    await asyncio.wait_for(b.campaign(), 30)
    held = await kv.get(KEY)
    assert held is not None and held.value == b"b"
    assert b.guard.create_revision == held.create_revision and held.lease == b.lease
    assert kv.txns == 1  # its first create stands: no second term
