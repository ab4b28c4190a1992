"""The agent's image puller: one pull per image at a time, pinned images not pulled again,
the service's registry credentials with each pull, the registry's reason when it refuses."""

from __future__ import annotations

import asyncio

import pytest

from shoal.agent.controller import EngineController
from shoal.agent.images import Puller, pinned
from shoal.api.errors import EngineError, TaskRejected
from shoal.api.models import ContainerSpec, Task, TaskSpec

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


class AuthEngine(FakeEngine):
    """A registry that gives the image only with the right credentials, answering as
    dockerd does when it refuses (its pull error is the registry's reason)."""

    def __init__(self, wanted: str) -> None:
        super().__init__(set())
        self.wanted, self.seen = wanted, []

    async def pull(self, image: str, auth: str | None = None) -> None:
        self.seen.append((image, auth))
        if auth != self.wanted:
            raise EngineError(500, f'Head "http://reg:5001/v2/app/manifests/1": {NO_CREDENTIALS}')
        self.present.add(image)


NO_CREDENTIALS = "no basic auth credentials"


def test_credentials_go_with_the_pull_and_key_its_outcome() -> None:
    engine = AuthEngine("AUTH")
    puller = Puller(engine)  # type: ignore[arg-type]
    with pytest.raises(EngineError, match=NO_CREDENTIALS):
        asyncio.run(puller.ensure("reg:5001/app:1"))
    asyncio.run(puller.ensure("reg:5001/app:1", "AUTH"))  # not the outcome of the other pull
    assert engine.seen == [("reg:5001/app:1", None), ("reg:5001/app:1", "AUTH")]


def test_a_refused_pull_rejects_the_task_with_the_registry_reason() -> None:
    """Not "No such image: …" (what the container create would say): the pull's own error,
    as moby's swarm executor reports it when the image is not on the node."""
    image = "reg:5001/app:1"
    task = Task(id="t1", slot=1, spec=TaskSpec(container_spec=ContainerSpec(image=image)))
    engine = AuthEngine("AUTH")
    puller = Puller(engine)  # type: ignore[arg-type]
    controller = EngineController(engine, task, "app", None, puller, registry_auth="STALE")  # type: ignore[arg-type]
    with pytest.raises(TaskRejected) as rejected:
        asyncio.run(controller.prepare())
    assert str(rejected.value) == f'Head "http://reg:5001/v2/app/manifests/1": {NO_CREDENTIALS}'
    assert engine.seen == [(image, "STALE")]
