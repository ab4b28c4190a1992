"""Tasks (moby `swarm.Task`): one slot's run of a service's task spec, and its status."""

from __future__ import annotations

from pydantic import Field

from shoal.api.models.base import GoJSON, Meta, Model
from shoal.api.models.networks import NetworkAttachment
from shoal.api.models.services import (
    Endpoint,
    JobIteration,
    PortConfig,
    Service,
    TaskSpec,
    allocated_endpoint_spec,
    same_task_spec,
)
from shoal.api.states import TaskState


class ContainerStatus(Model):
    GO_JSON = GoJSON(always={"ContainerID": "", "PID": 0, "ExitCode": 0})

    container_id: str | None = None
    pid: int | None = None
    exit_code: int | None = None


class PortStatus(Model):
    ports: list[PortConfig] | None = None


class TaskStatus(Model):
    GO_JSON = GoJSON(always={"PortStatus": {}})

    timestamp: str | None = None
    state: TaskState = TaskState.NEW
    message: str | None = None
    err: str | None = None
    container_status: ContainerStatus | None = None
    port_status: PortStatus | None = None


class Task(Meta):
    # As in SwarmKit, the allocator copies the service's endpoint onto each task: kept in the
    # store for the scheduler and the agent; the Docker API's Task has no such field.
    GO_JSON = GoJSON(
        always={"Labels": {}},
        omitempty=frozenset({"Slot"}),
        never=frozenset({"Endpoint"}),
        inner={"Spec": GoJSON(never=frozenset({"Runtime"}))},
    )

    name: str | None = None
    labels: dict[str, str] | None = None
    spec: TaskSpec = Field(default_factory=TaskSpec)
    service_id: str = ""
    slot: int | None = None
    node_id: str | None = None
    status: TaskStatus = Field(default_factory=TaskStatus)
    desired_state: TaskState = TaskState.RUNNING
    networks_attachments: list[NetworkAttachment] | None = None
    job_iteration: JobIteration | None = None
    endpoint: Endpoint | None = None


def up_to_date(task: Task, service: Service) -> bool:
    """The task runs what the service asks for now (SwarmKit's `IsTaskDirty`, negated): the
    same task spec, and — once the allocator gave it one — the same endpoint spec (host-mode
    ports now; networks and VIPs later), so `--publish-add` rolls the tasks like any change."""
    if not same_task_spec(task.spec, service.spec.task_template):
        return False
    if task.endpoint is None:
        return True
    # (Both sides through `allocated_endpoint_spec`: tasks allocated by an earlier shoal carry
    # `{"Mode": "vip"}` where there was nothing to allocate.)
    return allocated_endpoint_spec(task.endpoint.spec) == allocated_endpoint_spec(
        service.spec.endpoint_spec
    )
