"""The names a task answers to in DNS on one of its networks (Docker's set)."""

from __future__ import annotations

from shoal.api.models import Node, Service, Task
from shoal.api.states import TaskState
from shoal.manager.dispatcher.networks import task_names


def task(hostname: str | None, state: TaskState = TaskState.RUNNING) -> Task:
    return Task.model_validate({
        "ID": "t1234567890abcdefghijklmn", "ServiceID": "s1", "Slot": 2, "NodeID": "n1",
        "Status": {"State": state},
        "Spec": {
            "ContainerSpec": {"Image": "whoami", "Hostname": hostname},
            "Networks": [{"Target": "net1", "Aliases": ["site"]}, {"Target": "net2"}],
        },
    })  # fmt: skip


SERVICE = Service.model_validate({"ID": "s1", "Spec": {"Name": "web"}})
NODE = Node.model_validate({"ID": "n1", "Description": {"Hostname": "host-a"}})


def test_service_tasks_alias_and_container_name() -> None:
    """Without a VIP (`--endpoint-mode dnsrr`) the service's name and aliases are the tasks'."""
    names = task_names(task(None), SERVICE, "net1")
    assert names == ["web", "site", "tasks.web", "tasks.site", "web.2.t1234567890abcdefghijklmn"]
    assert "site" not in task_names(task(None), SERVICE, "net2")  # aliases are per network


def test_with_a_vip_the_service_name_and_aliases_are_the_vips() -> None:
    service = Service.model_validate({
        "ID": "s1", "Spec": {"Name": "web"},
        "Endpoint": {"VirtualIPs": [{"NetworkID": "net1", "Addr": "10.0.1.2/24"}]},
    })  # fmt: skip
    names = task_names(task(None), service, "net1")
    assert names == ["tasks.web", "tasks.site", "web.2.t1234567890abcdefghijklmn"]
    assert task_names(task(None), service, "net2")[0] == "web"  # no VIP on net2


def test_the_hostname_with_its_placeholders_expanded_as_on_its_node() -> None:
    names = task_names(task("{{.Node.Hostname}}-{{.Task.Slot}}"), SERVICE, "net2", NODE)
    assert names[-1] == "host-a-2"
    assert task_names(task("db"), SERVICE, "net2")[-1] == "db"
    # A placeholder that cannot be expanded is no name.
    assert not any("{{" in n for n in task_names(task("{{.Nope}}"), SERVICE, "net2", NODE))


def test_a_task_that_is_not_running_or_told_to_stop_has_no_names() -> None:
    assert task_names(task("db", TaskState.STARTING), SERVICE, "net1") == []
    stopping = task("db").model_copy(update={"desired_state": TaskState.SHUTDOWN})
    assert task_names(stopping, SERVICE, "net1") == []
