"""Pure helpers of the Docker API front: version rewriting, log framing, defaults."""

from __future__ import annotations

import struct

from shoal.api.defaults import with_defaults
from shoal.api.models import Task
from shoal.dockerapi.logs import decorate, details, frame
from shoal.dockerapi.proxy import engine_path


def test_engine_path_lowers_newer_versions_only() -> None:
    assert engine_path("/v1.44/containers/json?all=1", (1, 41)) == "/v1.41/containers/json?all=1"
    assert engine_path("/v1.30/containers/json", (1, 41)) == "/v1.30/containers/json"
    assert engine_path("/containers/json", (1, 41)) == "/containers/json"
    assert engine_path("/v1.45/info", None) == "/v1.45/info"


def test_log_details_are_sorted_and_complete() -> None:
    task = Task(id="t1", service_id="s1", node_id="n1")
    assert details(task) == (
        b"com.docker.swarm.node.id=n1,com.docker.swarm.service.id=s1,com.docker.swarm.task.id=t1"
    )


def test_decorate_puts_details_after_the_timestamp() -> None:
    assert decorate(b"2026-01-01T00:00:00Z hello\n", b"k=v", True) == (
        b"2026-01-01T00:00:00Z k=v hello\n"
    )
    assert decorate(b"hello\n", b"k=v", False) == b"k=v hello\n"


def test_frame_is_stdcopy() -> None:
    out = frame(2, b"abc")
    assert out[:8] == struct.pack(">BxxxL", 2, 3) and out[8:] == b"abc"


def test_insert_defaults_fills_only_absent_fields() -> None:
    service = {
        "ID": "x",
        "Spec": {
            "Name": "web",
            "TaskTemplate": {"ContainerSpec": {"Image": "a", "StopGracePeriod": 3}},
            "UpdateConfig": {"Parallelism": 4},
        },
    }
    out = with_defaults(service)
    spec = out["Spec"]
    assert spec["TaskTemplate"]["ContainerSpec"]["StopGracePeriod"] == 3
    assert spec["TaskTemplate"]["RestartPolicy"]["Condition"] == "any"
    assert spec["UpdateConfig"]["Parallelism"] == 4
    assert spec["UpdateConfig"]["Order"] == "stop-first"
    assert spec["EndpointSpec"] == {"Mode": "vip"}
    assert "PreviousSpec" not in out
    assert service["Spec"]["UpdateConfig"] == {"Parallelism": 4}  # input untouched
