"""Mounts: the model as Docker's swarm mode keeps them (`shoal.api.models.mounts`), and what
the node does with them (`shoal.agent.mounts`, the controller's volume creation)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from shoal.agent import mounts
from shoal.agent.container import create_body
from shoal.agent.controller import EngineController
from shoal.api.errors import EngineError, TaskRejected
from shoal.api.models import ContainerSpec, Mount, Task, TaskSpec

NFS = {"type": "nfs", "o": "addr=10.0.0.1", "device": ":/export"}
NFS_OPTIONS = {"Labels": {"a": "b"}, "DriverConfig": {"Name": "local", "Options": NFS}}


@pytest.mark.parametrize(
    ("sent", "shown"),
    [
        # bind-nonrecursive alone: SwarmKit's propagation defaults to rprivate
        ({"Type": "bind", "Source": "/etc", "Target": "/e",
          "BindOptions": {"NonRecursive": True}},
         {"Type": "bind", "Source": "/etc", "Target": "/e",
          "BindOptions": {"Propagation": "rprivate", "NonRecursive": True}}),
        ({"Type": "BIND", "Source": "/a", "Target": "/b",
          "BindOptions": {"Propagation": "RSLAVE"}},
         {"Type": "bind", "Source": "/a", "Target": "/b",
          "BindOptions": {"Propagation": "rslave"}}),
        # empty bind options, consistency, false read-only, unknown fields: gone
        ({"Type": "bind", "Source": "/a", "Target": "/b", "ReadOnly": False,
          "Consistency": "cached", "BindOptions": {"Propagation": "", "CreateMountpoint": True}},
         {"Type": "bind", "Source": "/a", "Target": "/b"}),
        ({"Target": "/b", "Source": "/a"}, {"Type": "bind", "Source": "/a", "Target": "/b"}),
        # the CLI's volume options: an empty driver config stays, empty maps go
        ({"Type": "volume", "Source": "v", "Target": "/v", "ReadOnly": True,
          "VolumeOptions": {"NoCopy": True, "Labels": {}, "Subpath": "x",
                            "DriverConfig": {"Name": "", "Options": {}}}},
         {"Type": "volume", "Source": "v", "Target": "/v", "ReadOnly": True,
          "VolumeOptions": {"NoCopy": True, "DriverConfig": {}}}),
        ({"Type": "volume", "Source": "v", "Target": "/v", "VolumeOptions": NFS_OPTIONS},
         {"Type": "volume", "Source": "v", "Target": "/v", "VolumeOptions": NFS_OPTIONS}),
        ({"Type": "tmpfs", "Source": "", "Target": "/t",
          "TmpfsOptions": {"SizeBytes": 0, "Mode": 448, "Options": [["noexec"]]}},
         {"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"Mode": 448}}),
    ],
)  # fmt: skip
def test_a_mount_is_what_swarmkit_keeps_of_it(sent: dict[str, Any], shown: dict[str, Any]) -> None:
    mount = Mount.from_api(sent)
    assert mount.to_api() == shown
    assert Mount.from_api(shown).to_api() == shown  # (the store reads it back unchanged)


@pytest.mark.parametrize(
    ("mount", "refusal"),
    [
        ({"Type": "volume", "Target": "rel"},
         "invalid mount target, must be an absolute path: rel"),
        ({"Type": "bind", "Source": "rel", "Target": "/x"},
         "invalid bind mount source, must be an absolute path: rel"),
        ({"Type": "volume", "Source": "/abs", "Target": "/x"},
         "invalid volume mount source, must not be an absolute path: /abs"),
        ({"Type": "tmpfs", "Source": "x", "Target": "/x"},
         "invalid tmpfs source, source must be empty"),
        ({"Type": "volume", "Target": "/x"}, None),
        ({"Type": "bind", "Source": "/x", "Target": "/x"}, None),
        ({"Type": "tmpfs", "Target": "/x"}, None),
    ],
)  # fmt: skip
def test_the_node_checks_mounts_as_moby_does(mount: dict[str, Any], refusal: str | None) -> None:
    assert mounts.check([Mount.from_api(mount)]) == refusal


def task_with(*mount_list: dict[str, Any], slot: int = 3) -> Task:
    spec = ContainerSpec(image="busybox:1", mounts=[Mount.from_api(m) for m in mount_list])
    return Task(id="t1", slot=slot, service_id="s1", node_id="n1",
                spec=TaskSpec(container_spec=spec))  # fmt: skip


def test_templates_in_source_target_labels_and_driver_options() -> None:
    task = task_with({
        "Type": "volume", "Source": "data-{{.Task.Slot}}", "Target": "/d/{{.Task.Slot}}",
        "VolumeOptions": {"Labels": {"slot": "{{.Task.Slot}}"},
                          "DriverConfig": {"Options": {"device": "/srv/{{.Service.Name}}"}}},
    })  # fmt: skip
    (mount,) = create_body(task, "web", None)["HostConfig"]["Mounts"]
    assert (mount["Source"], mount["Target"]) == ("data-3", "/d/3")
    assert mount["VolumeOptions"] == {
        "Labels": {"slot": "3"},
        "DriverConfig": {"Options": {"device": "/srv/web"}},
    }
    spec = task.spec.container_spec
    assert spec is not None and spec.mounts is not None
    assert spec.mounts[0].source == "data-{{.Task.Slot}}"  # the task's own spec unchanged


def test_volume_requests_for_named_volumes_with_a_driver_config() -> None:
    engine_mounts = [
        {"Type": "volume", "Source": "nfs", "Target": "/a", "VolumeOptions": NFS_OPTIONS},
        {"Type": "volume", "Source": "plain", "Target": "/b",
         "VolumeOptions": {"DriverConfig": {}}},
        {"Type": "volume", "Source": "none", "Target": "/c"},  # no options: the engine's default
        {"Type": "volume", "Target": "/d", "VolumeOptions": {"DriverConfig": {"Name": "local"}}},
        {"Type": "bind", "Source": "/x", "Target": "/e"},
    ]  # fmt: skip
    assert mounts.volume_requests(engine_mounts) == [
        {"Name": "nfs", "Driver": "local", "DriverOpts": NFS, "Labels": {"a": "b"}},
        {"Name": "plain", "Driver": "local", "DriverOpts": {}, "Labels": {}},
    ]


def test_an_existing_volume_with_other_options_is_told() -> None:
    request = {"Name": "v", "Driver": "local", "DriverOpts": NFS, "Labels": {}}
    assert mounts.differs(request, {"Driver": "local", "Options": NFS}) is None
    said = mounts.differs(request, {"Driver": "local", "Options": None})
    assert said is not None and "volume v exists with driver local and options {}" in said


class Engine:
    """Records the controller's requests; refuses volume creates with `refuse`."""

    def __init__(self, refuse: str | None = None) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.refuse = refuse

    async def request(self, method: str, path: str, **kw: Any) -> Any:
        self.calls.append((method, path, kw))
        if path == "/volumes/create":
            if self.refuse:
                raise EngineError(500, self.refuse)
            body = kw["body"]
            return {"Name": body["Name"], "Driver": body["Driver"], "Options": body["DriverOpts"]}
        return {}


class Puller:
    async def ensure(self, image: str, auth: str | None = None) -> None:
        return None


def controller(engine: Engine, task: Task) -> EngineController:
    return EngineController(engine, task, "web", None, Puller())  # type: ignore[arg-type]


NFS_MOUNT = {
    "Type": "volume", "Source": "data-{{.Task.Slot}}", "Target": "/data",
    "VolumeOptions": {"DriverConfig": {"Name": "local", "Options": NFS}},
}  # fmt: skip


def test_the_volume_is_created_with_its_options_before_the_container() -> None:
    engine = Engine()
    asyncio.run(controller(engine, task_with(NFS_MOUNT)).prepare())
    assert [(m, p) for m, p, _ in engine.calls] == [
        ("POST", "/volumes/create"),
        ("POST", "/containers/create"),
    ]
    assert engine.calls[0][2]["body"] == {"Name": "data-3", "Driver": "local", "DriverOpts": NFS,
                                  "Labels": {}}  # fmt: skip


def test_a_refused_volume_rejects_the_task_with_the_engines_words() -> None:
    refusal = "driver 'other' already has volume 'data-3'"
    engine = Engine(refuse=refusal)
    with pytest.raises(TaskRejected, match=refusal):
        asyncio.run(controller(engine, task_with(NFS_MOUNT)).prepare())
    assert [p for _, p, _ in engine.calls] == ["/volumes/create"]  # no container


def test_a_mount_the_node_refuses_rejects_the_task_before_anything() -> None:
    engine = Engine()
    task = task_with({"Type": "bind", "Source": "relative", "Target": "/x"})
    with pytest.raises(TaskRejected, match="must be an absolute path: relative"):
        asyncio.run(controller(engine, task).prepare())
    assert engine.calls == []


def test_removing_the_container_removes_its_anonymous_volumes() -> None:
    engine = Engine()
    asyncio.run(controller(engine, task_with()).remove())
    ((method, path, kw),) = engine.calls
    assert (method, path) == ("DELETE", "/containers/web.3.t1")
    assert kw["params"] == {"force": "1", "v": "1"}
