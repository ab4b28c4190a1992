"""`docker swarm update --autolock` and `unlock-key --rotate` in the control API: the unlock
key is made, rotated and dropped as SwarmKit does, kept sealed with the swarm object and never
shown by `GET /swarm`."""

from __future__ import annotations

from typing import Any

from shoal.api.models import Swarm
from shoal.api.naming import new_id
from shoal.manager.controlapi import swarm as control
from shoal.store.kinds import key_of
from shoal.testing.clock import MockClock
from shoal.testing.store import MemoryStore


def spec(autolock: bool) -> dict[str, Any]:
    return {"Name": "default", "EncryptionConfig": {"AutoLockManagers": autolock}}


async def update(store: MemoryStore, autolock: bool, rotate: bool = False) -> str:
    current = control.get(store)
    await control.update(store, current.version.index, spec(autolock), False, False, rotate)
    return control.unlock_key(store)


async def test_the_unlock_key_is_made_rotated_and_dropped() -> None:
    async with MemoryStore(MockClock()) as store:
        swarm_id = new_id()
        await store.create(Swarm(id=swarm_id))
        assert control.unlock_key(store) == ""
        assert await update(store, False, rotate=True) == ""  # nothing to rotate
        first = await update(store, True)
        assert first.startswith("SWMKEY-1-")
        assert await update(store, True) == first  # autolock already on: the same key
        rotated = await update(store, True, rotate=True)
        assert rotated.startswith("SWMKEY-1-") and rotated != first
        stored = store.memory.data[key_of("swarm", swarm_id)].value
        assert rotated.encode() not in stored  # sealed in the store
        assert "UnlockKey" not in control.get(store).to_api()
        assert await update(store, False) == ""
        assert control.get(store).unlock_key is None
