"""The agent's image puller: one pull per image at a time, pinned images not pulled again."""

from __future__ import annotations

import asyncio

import pytest

from shoal.agent.images import Puller, pinned
from shoal.api.errors import EngineError

DIGEST = "sha256:" + "ab" * 32


class FakeEngine:
    def __init__(self, present: set[str], registry: bool = True) -> None:
        self.present, self.registry, self.pulls = present, registry, []

    async def pull(self, image: str, auth: str | None = None) -> None:
        self.pulls.append(image)
        await asyncio.sleep(0.01)
        if not self.registry:
            raise EngineError(404, f"pull access denied for {image}")
        self.present.add(image)

    async def image_exists(self, image: str) -> bool:
        return image in self.present


def test_pinned() -> None:
    assert pinned(f"reg:5000/app:1@{DIGEST}") and pinned(DIGEST)
    assert not pinned("reg:5000/app:1") and not pinned("app")


def test_pinned_image_present_is_not_pulled() -> None:
    image = f"reg:5000/app:1@{DIGEST}"
    engine = FakeEngine({image})
    asyncio.run(Puller(engine).ensure(image))  # type: ignore[arg-type]
    assert engine.pulls == []


def test_tagged_image_is_pulled_once_for_many_tasks() -> None:
    engine = FakeEngine(set())
    puller = Puller(engine)  # type: ignore[arg-type]

    async def many() -> None:
        await asyncio.gather(*(puller.ensure("app:1") for _ in range(5)))

    asyncio.run(many())
    assert engine.pulls == ["app:1"]


def test_no_registry_falls_back_to_the_local_image_or_fails() -> None:
    engine = FakeEngine({"app:1"}, registry=False)
    asyncio.run(Puller(engine).ensure("app:1"))  # type: ignore[arg-type]
    with pytest.raises(EngineError, match="pull access denied"):
        asyncio.run(Puller(engine).ensure("other:1"))  # type: ignore[arg-type]
