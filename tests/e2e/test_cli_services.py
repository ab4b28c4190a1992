"""`docker service …` end to end: the stock docker CLI against a one-node shoal swarm.

One swarm (shoald + etcd inside the test engine's namespaces) serves the whole module; every
test creates services with its own names and removes them at the end. What the CLI prints is
checked, and what really runs is checked on the engine (containers, their config, their
published ports). Run with ``SHOAL_TEST_DOCKER_CLI=/usr/bin/docker`` for Debian's 20.10 client.
"""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import threading
import time
from typing import Any

import pytest
from support import BUSYBOX, SWARM_ID, WHOAMI, Cli, containers, inspect, parse_time, wait_for

pytestmark = pytest.mark.e2e

# A long-running busybox command that stops at once on SIGTERM (busybox `sleep` as PID 1
# ignores it, which would cost the 10 s stop grace period on every removal).
IDLE = ["sh", "-c", 'trap "exit 0" TERM; while :; do sleep 0.2; done']


# --------------------------------------------------------------------------- helpers


def running(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r["DesiredState"] == "Running" and r["State"] == "Running"]


@pytest.fixture(scope="module")
def cli(swarm: Any, docker_cli: Any) -> Cli:
    return Cli(docker_cli, swarm.host, lambda: swarm.log_tail(40))


@pytest.fixture(scope="module")
def node_id(cli: Cli) -> str:
    return cli.ok("info", "--format", "{{.Swarm.NodeID}}").strip()


# --------------------------------------------------------------------------- create / ls / ps


def test_create_waits_for_convergence(
    cli: Cli, engine: Any, node_id: str, cleanup: list[str]
) -> None:
    cleanup.append("conv")
    rc, out, err = cli.run("service", "create", "--name", "conv", "--replicas", "3", WHOAMI)
    assert rc == 0, f"{out}\n{err}\n{cli.log()}"
    progress = out + err
    assert "overall progress: 3 out of 3 tasks" in progress, progress
    assert "converged" in progress, progress
    sid = out.strip().splitlines()[0]
    assert sid == cli.ok("service", "inspect", "--format", "{{.ID}}", "conv").strip()

    row = cli.service_row("conv")
    assert (row["Mode"], row["Replicas"], row["Image"]) == ("replicated", "3/3", WHOAMI), row
    # The table form too, as a user reads it.
    table = cli.ok("service", "ls")
    assert re.search(r"^\w{12}\s+conv\s+replicated\s+3/3\s+shoal-test/whoami:1", table, re.M), table

    tasks = cli.tasks("conv")
    assert sorted(t["Name"] for t in tasks) == ["conv.1", "conv.2", "conv.3"], tasks
    hostname = cli.ok("info", "--format", "{{.Name}}").strip()
    for t in tasks:
        assert (t["DesiredState"], t["State"], t["Node"]) == ("Running", "Running", hostname), t
        assert SWARM_ID.match(t["ID"]), t

    ctrs = containers(engine, sid, all=True)
    assert len(ctrs) == 3, ctrs
    by_task = {c["Labels"]["com.docker.swarm.task.id"]: c for c in ctrs}
    assert set(by_task) == {t["ID"] for t in tasks}
    for t in tasks:
        c = by_task[t["ID"]]
        assert c["State"] == "running", c
        assert c["Names"] == [f"/{t['Name']}.{t['ID']}"], c["Names"]
        labels = c["Labels"]
        assert labels["com.docker.swarm.service.name"] == "conv"
        assert labels["com.docker.swarm.task.name"] == f"{t['Name']}.{t['ID']}"
        assert labels["com.docker.swarm.node.id"] == node_id


def test_service_ls_and_ps_filters(cli: Cli, cleanup: list[str]) -> None:
    cleanup += ["flt-a", "flt-b"]
    a = cli.create("flt-a", "--label", "tier=front", "--replicas", "2", WHOAMI)
    b = cli.create("flt-b", "--label", "tier=back", "--label", "solo", WHOAMI)
    a, b = a[:12], b[:12]  # `ls -q` prints short IDs
    assert cli.ok("service", "ls", "-q", "--filter", "label=tier=front").split() == [a]
    assert cli.ok("service", "ls", "-q", "--filter", "label=solo").split() == [b]
    assert sorted(cli.ok("service", "ls", "-q", "--filter", "label=tier").split()) == sorted([a, b])
    assert cli.ok("service", "ls", "-q", "--filter", "name=flt-b").split() == [b]
    assert cli.ok("service", "ls", "-q", "--filter", f"id={a[:8]}").split() == [a]
    wait_for(lambda: len(running(cli.tasks("flt-a"))) == 2, what="flt-a running", log=cli.log)
    assert len(cli.tasks("flt-a", "--filter", "desired-state=running")) == 2
    assert cli.tasks("flt-a", "--filter", "desired-state=shutdown") == []
    # Two services at once.
    rows = cli.json_lines("service", "ps", a[:10], "flt-b")  # by ID prefix and by name
    assert sorted(r["Name"] for r in rows) == ["flt-a.1", "flt-a.2", "flt-b.1"], rows


def test_publish_host_mode(cli: Cli, engine: Any, cleanup: list[str]) -> None:
    cleanup.append("pub")
    sid = cli.converge("pub", "--publish", "published=18080,target=80,mode=host", WHOAMI)

    def answer() -> str | None:
        try:
            status, body = engine.http_get(18080, "/")
        except OSError:
            return None
        return body if status == 200 else None

    body = wait_for(answer, timeout=5, what="http://127.0.0.1:18080/ to answer", log=cli.log)
    (ctr,) = containers(engine, sid, all=False)
    hostname = inspect(engine, ctr["Id"])["Config"]["Hostname"]
    assert body == f"Hostname: {hostname}\nVersion: 1\n", body
    (task,) = cli.tasks("pub")
    assert task["Ports"] == "*:18080->80/tcp", task
    ports = cli.ok("service", "inspect", "--format", "{{json .Spec.EndpointSpec.Ports}}", "pub")
    assert json.loads(ports) == [
        {"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 18080, "PublishMode": "host"}
    ], ports


def test_publish_ingress_mode(cli: Cli, engine: Any, cleanup: list[str]) -> None:
    """`--publish 18081:80`: the routing mesh answers on the host's addresses, loopback
    included; `service ls` and `service inspect` show the port as Docker does."""
    cleanup.append("ingress-pub")
    cli.converge("ingress-pub", "--publish", "18081:80", WHOAMI)

    def answer() -> str | None:
        try:
            status, body = engine.http_get(18081, "/")
        except OSError:
            return None
        return body if status == 200 else None

    body = wait_for(answer, timeout=10, what="http://127.0.0.1:18081/ to answer", log=cli.log)
    assert body.startswith("Hostname: "), body
    assert cli.service_row("ingress-pub")["Ports"] == "*:18081->80/tcp"
    endpoint = json.loads(
        cli.ok("service", "inspect", "--format", "{{json .Endpoint}}", "ingress-pub")
    )
    assert endpoint["Ports"] == [
        {"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 18081, "PublishMode": "ingress"}
    ], endpoint
    ingress_id = cli.ok("network", "inspect", "--format", "{{.Id}}", "ingress").strip()
    assert [v["NetworkID"] for v in endpoint["VirtualIPs"]] == [ingress_id], endpoint


def test_global_mode(cli: Cli, engine: Any, node_id: str, cleanup: list[str]) -> None:
    cleanup.append("glob")
    sid = cli.converge("glob", "--mode", "global", WHOAMI)
    row = cli.service_row("glob")
    assert (row["Mode"], row["Replicas"]) == ("global", "1/1"), row
    tasks = cli.tasks("glob")
    assert [t["Name"] for t in tasks] == [f"glob.{node_id}"], tasks
    (ctr,) = containers(engine, sid)
    assert ctr["Names"] == [f"/glob.{node_id}.{tasks[0]['ID']}"], ctr["Names"]


def test_replicated_job_completes(cli: Cli, engine: Any, cleanup: list[str]) -> None:
    cleanup.append("batch")
    rc, out, err = cli.run(
        "service",
        "create",
        "--name",
        "batch",
        "--mode",
        "replicated-job",
        "--replicas",
        "4",
        "--max-concurrent",
        "2",
        BUSYBOX,
        "sleep",
        "1",
    )
    assert rc == 0, f"{out}\n{err}\n{cli.log()}"
    assert "job complete" in out + err, out + err
    row = cli.service_row("batch")
    assert row["Mode"] == "replicated job", row
    assert "(4/4 completed)" in row["Replicas"], row
    tasks = cli.tasks("batch")
    assert len(tasks) == 4 and {t["State"] for t in tasks} == {"Complete"}, tasks
    # max-concurrent 2: never more than two of the job's containers alive at once.
    sid = cli.ok("service", "inspect", "--format", "{{.ID}}", "batch").strip()
    spans = []
    for c in containers(engine, sid):
        state = inspect(engine, c["Id"])["State"]
        assert state["Status"] == "exited" and state["ExitCode"] == 0, state
        spans.append((parse_time(state["StartedAt"]), parse_time(state["FinishedAt"])))
    assert len(spans) == 4, spans
    for start, _ in spans:
        alive = sum(1 for s, f in spans if s <= start < f)
        assert alive <= 2, f"{alive} job containers ran at once: {sorted(spans)}"


def test_service_inspect(cli: Cli, cleanup: list[str]) -> None:
    cleanup.append("insp")
    sid = cli.create(
        "insp",
        "--replicas",
        "2",
        "--label",
        "com.example.team=blue",
        "--env",
        "GREETING=hello",
        WHOAMI,
    )
    (svc,) = json.loads(cli.ok("service", "inspect", "insp"))
    assert svc["ID"] == sid
    assert svc["Version"]["Index"] > 0
    spec = svc["Spec"]
    assert spec["Name"] == "insp"
    assert spec["Labels"] == {"com.example.team": "blue"}
    assert spec["Mode"] == {"Replicated": {"Replicas": 2}}
    container = spec["TaskTemplate"]["ContainerSpec"]
    assert container["Image"].startswith(WHOAMI) and container["Env"] == ["GREETING=hello"]
    assert parse_time(svc["UpdatedAt"]) >= parse_time(svc["CreatedAt"]) > time.time() - 300
    # By unique ID prefix, with a format.
    assert cli.ok("service", "inspect", "--format", "{{.Spec.Name}}", sid[:6]).strip() == "insp"
    pretty = cli.ok("service", "inspect", "--pretty", "insp")
    for expected in (
        f"ID:\t\t{sid}",
        "Name:\t\tinsp",
        "com.example.team=blue",
        "Service Mode:\tReplicated",
        "Replicas:\t2",
        "Image:\t\tshoal-test/whoami:1",
        "GREETING=hello",
    ):
        assert expected in pretty, f"{expected!r} not in:\n{pretty}"


def test_scale_up_and_down(cli: Cli, engine: Any, cleanup: list[str]) -> None:
    cleanup.append("scl")
    sid = cli.create("scl", "--replicas", "2", WHOAMI)
    out = cli.ok("service", "scale", "scl=10", timeout=120)
    assert "scl scaled to 10" in out, out
    live = [c for c in containers(engine, sid, all=False) if c["State"] == "running"]
    assert len(live) == 10, f"{len(live)} running containers after `scale scl=10` converged"
    assert cli.service_row("scl")["Replicas"] == "10/10"
    slots = sorted(int(t["Name"].split(".")[1]) for t in running(cli.tasks("scl")))
    assert slots == list(range(1, 11)), slots

    assert "scl scaled to 3" in cli.ok("service", "scale", "-d", "scl=3")

    def scaled_down() -> bool:
        return len(containers(engine, sid, all=True)) == 3

    wait_for(scaled_down, what="7 containers removed after scaling down", log=cli.log)
    assert cli.service_row("scl")["Replicas"] == "3/3"
    assert len(cli.tasks("scl")) == 3


def test_rm_removes_containers(cli: Cli, engine: Any, cleanup: list[str]) -> None:
    cleanup.append("gone")
    sid = cli.create("gone", "--replicas", "2", WHOAMI)
    wait_for(lambda: len(containers(engine, sid, all=False)) == 2, what="2 containers", log=cli.log)
    assert cli.ok("service", "rm", "gone").strip() == "gone"
    wait_for(lambda: not containers(engine, sid), what="containers of `gone` removed", log=cli.log)
    assert "gone" not in [r["Name"] for r in cli.json_lines("service", "ls")]
    rc, _, err = cli.run("service", "ps", "gone")
    assert rc != 0 and "no such service: gone" in err, err


# --------------------------------------------------------------------------- logs


LOGGER = [
    "sh",
    "-c",
    'trap "exit 0" TERM; i=0; while :; do i=$((i+1)); echo "line-$i"; '
    'echo "err-$i" >&2; sleep 0.2; done',
]
LOG_LINE = re.compile(r"^logs\.1\.([0-9a-z]+)@(\S+)\s+\| (line|err)-(\d+)$")


def test_service_logs(cli: Cli, docker_cli: Any, swarm: Any, cleanup: list[str]) -> None:
    cleanup.append("logs")
    cli.create("logs", BUSYBOX, *LOGGER)
    wait_for(lambda: running(cli.tasks("logs")), what="logs.1 running", log=cli.log)
    (task,) = cli.tasks("logs")

    def numbered(text: str, kind: str) -> list[int]:
        nums = []
        for line in text.splitlines():
            m = LOG_LINE.match(line)
            assert m, f"unexpected log line {line!r}"
            assert task["ID"].startswith(m.group(1)), (line, task["ID"])
            if m.group(3) == kind:
                nums.append(int(m.group(4)))
        return nums

    wait_for(
        lambda: len(numbered(cli.ok("service", "logs", "logs"), "line")) >= 5,
        what="5 lines logged",
        log=cli.log,
    )
    rc, out, err = cli.run("service", "logs", "logs")
    assert rc == 0
    lines = numbered(out, "line")
    assert lines == list(range(1, len(lines) + 1)), lines  # stdout: all of them, in order
    assert "err-" not in out and "line-" not in err  # streams kept apart
    assert numbered(err, "err")[:3] == [1, 2, 3], err

    rc, out, err = cli.run("service", "logs", "--tail", "2", "logs")
    assert rc == 0 and len(out.splitlines()) + len(err.splitlines()) == 2, (out, err)

    rc, out, err = cli.run("service", "logs", "-t", "--tail", "4", "logs")
    assert rc == 0
    for line in (out + err).splitlines():
        stamp, rest = line.split(" ", 1)
        assert abs(parse_time(stamp) - time.time()) < 120, line
        assert LOG_LINE.match(rest), line

    # -f: follows, sees lines written after it started, does not exit by itself.
    seen = max(numbered(cli.ok("service", "logs", "logs"), "line"))
    binary = os.environ.get("SHOAL_TEST_DOCKER_CLI", "docker")
    proc = subprocess.Popen(
        [binary, "service", "logs", "-f", "--tail", "0", "logs"],
        env=dict(os.environ, DOCKER_HOST=swarm.host),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines_q: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    reader = threading.Thread(
        target=lambda: [lines_q.put(ln) for ln in proc.stdout],  # type: ignore[union-attr]
        daemon=True,
    )
    reader.start()
    try:
        got, deadline, newer = "", time.monotonic() + 15, []
        while time.monotonic() < deadline and len(newer) < 3:
            try:
                got += lines_q.get(timeout=0.5)
            except queue.Empty:
                continue
            newer = [n for n in numbered(got, "line") if n > seen]
        assert len(newer) >= 3, f"`service logs -f` showed no new lines in 15s: {got!r}"
        assert newer == list(range(newer[0], newer[0] + len(newer))), newer
        assert proc.poll() is None, "`service logs -f` exited while the task still runs"
    finally:
        proc.kill()
        proc.wait()


def test_service_logs_of_tasks_that_exited(cli: Cli, swarm: Any, cleanup: list[str]) -> None:
    """Every task the service still has in its history shows its output, running or not;
    `TASK-ID` shows one task's; `--no-task-ids`, `--no-resolve`, `--raw` and `--since` as Docker."""
    cleanup.append("hello")
    cli.create(
        "hello", "--restart-condition", "any", "--restart-delay", "500ms",
        "--restart-max-attempts", "2", BUSYBOX, "sh", "-c", "echo hello-$HOSTNAME",
    )  # fmt: skip
    wait_for(
        lambda: len([t for t in cli.tasks("hello") if t["State"] == "Complete"]) == 3,
        timeout=30, what="3 tasks complete", log=cli.log,
    )  # fmt: skip
    tasks = cli.tasks("hello")
    rc, out, err = cli.run("service", "logs", "hello")
    assert rc == 0, err
    lines = out.splitlines()
    assert len(lines) == 3, out
    for t in tasks:
        mine = [ln for ln in lines if ln.startswith(f"hello.1.{t['ID'][:12]}@")]
        assert len(mine) == 1 and mine[0].split(" | ")[1].startswith("hello-"), (t, out)
    # One task's log, by task ID.
    one = tasks[0]["ID"]
    rc, out, _ = cli.run("service", "logs", one)
    assert rc == 0 and len(out.splitlines()) == 1 and out.startswith(f"hello.1.{one[:12]}@")
    # Client-side formatting of the same stream.
    rc, out, _ = cli.run("service", "logs", "--no-task-ids", "hello")
    assert rc == 0 and all(ln.startswith("hello.1@") for ln in out.splitlines()), out
    rc, out, _ = cli.run("service", "logs", "--raw", "hello")
    assert rc == 0 and sorted(out.split()) == sorted(
        ln.split(" | ")[1] for ln in lines
    ), out  # fmt: skip
    rc, out, _ = cli.run("service", "logs", "--no-resolve", "--no-trunc", "hello")
    service_id = cli.ok("service", "inspect", "--format", "{{.ID}}", "hello").strip()
    assert rc == 0 and all(ln.startswith(service_id + ".1.") for ln in out.splitlines()), out
    rc, out, _ = cli.run("service", "logs", "--since", "2000-01-01T00:00:00Z", "hello")
    assert rc == 0 and len(out.splitlines()) == 3
    rc, out, _ = cli.run("service", "logs", "--since", "2100-01-01T00:00:00Z", "hello")
    assert rc == 0 and out == ""


def test_service_logs_follow_sees_new_tasks_and_ends_with_the_service(
    cli: Cli, swarm: Any, cleanup: list[str]
) -> None:
    """`-f` shows tasks that start after it began, and ends (exit 0) when the service goes."""
    cleanup.append("ticks")
    cli.create(
        "ticks", "--restart-condition", "any", "--restart-delay", "300ms", BUSYBOX,
        "sh", "-c", "echo tick-$HOSTNAME; sleep 0.5",
    )  # fmt: skip
    wait_for(lambda: cli.tasks("ticks"), what="a ticks task", log=cli.log)
    binary = os.environ.get("SHOAL_TEST_DOCKER_CLI", "docker")
    proc = subprocess.Popen(
        [binary, "service", "logs", "-f", "ticks"],
        env=dict(os.environ, DOCKER_HOST=swarm.host),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for(
            lambda: len({t["ID"] for t in cli.tasks("ticks")}) >= 4,
            timeout=30, what="4 tasks", log=cli.log,
        )  # fmt: skip
        time.sleep(1)
        cli.ok("service", "rm", "ticks")
        cleanup.remove("ticks")
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    tasks_seen = {ln.split("@", 1)[0] for ln in out.splitlines() if "| tick-" in ln}
    assert len(tasks_seen) >= 4, out


# --------------------------------------------------------------------------- placement


def test_constraint_unsatisfied_then_label_added(
    cli: Cli, node_id: str, cleanup: list[str]
) -> None:
    cleanup.append("picky")
    cli.create("picky", "--constraint", "node.labels.x==y", WHOAMI)
    expected = "no suitable node (scheduling constraints not satisfied on 1 node)"

    def pending() -> list[dict[str, Any]]:
        return [t for t in cli.tasks("picky") if t["State"] == "Pending" and t["Error"]]

    (task,) = wait_for(pending, what="picky.1 pending with an explanation", log=cli.log)
    assert expected in task["Error"], task
    table = cli.ok("service", "ps", "--no-trunc", "picky")
    assert expected in table, table
    assert cli.service_row("picky")["Replicas"] == "0/1"
    try:
        cli.ok("node", "update", "--label-add", "x=y", node_id)
        wait_for(
            lambda: running(cli.tasks("picky")),
            what="picky running once the label is set",
            log=cli.log,
        )
    finally:
        cli.run("node", "update", "--label-rm", "x", node_id)


# --------------------------------------------------------------------------- restart policy


def _the_container(engine: Any, sid: str) -> dict[str, Any]:
    live = wait_for(lambda: containers(engine, sid, all=False), what="a running container")
    assert len(live) == 1, live
    return live[0]


def test_killed_container_is_replaced(
    cli: Cli, engine: Any, docker_cli: Any, cleanup: list[str]
) -> None:
    cleanup.append("phoenix")
    sid = cli.create("phoenix", "--restart-delay", "1s", WHOAMI)
    wait_for(lambda: running(cli.tasks("phoenix")), what="phoenix.1 running", log=cli.log)
    old = _the_container(engine, sid)
    old_task = old["Labels"]["com.docker.swarm.task.id"]
    rc, _, err = docker_cli(engine.host, "kill", old["Id"])
    assert rc == 0, err

    def replaced() -> list[dict[str, Any]]:
        return [t for t in running(cli.tasks("phoenix")) if t["ID"] != old_task]

    (new,) = wait_for(replaced, what="a new task replacing the killed one", log=cli.log)
    assert new["Name"] == "phoenix.1"
    history = {t["ID"]: t for t in cli.tasks("phoenix")}
    failed = history[old_task]
    assert failed["Name"] == "phoenix.1"
    assert (failed["DesiredState"], failed["State"]) == ("Shutdown", "Failed"), failed
    assert "task: non-zero exit (137)" in failed["Error"], failed
    # The restart delay was honoured: the new container started ≥ 1 s after the old one died.
    new_ctr = [
        c for c in containers(engine, sid) if c["Labels"]["com.docker.swarm.task.id"] == new["ID"]
    ]
    assert len(new_ctr) == 1, new_ctr
    died = parse_time(inspect(engine, old["Id"])["State"]["FinishedAt"])
    started = parse_time(inspect(engine, new_ctr[0]["Id"])["State"]["StartedAt"])
    assert started - died >= 0.9, f"replacement started {started - died:.2f}s after the kill"
    assert cli.service_row("phoenix")["Replicas"] == "1/1"


def test_restart_condition_none(cli: Cli, engine: Any, docker_cli: Any, cleanup: list[str]) -> None:
    cleanup.append("once")
    sid = cli.create("once", "--restart-condition", "none", "--restart-delay", "0s", WHOAMI)
    wait_for(lambda: running(cli.tasks("once")), what="once.1 running", log=cli.log)
    ctr = _the_container(engine, sid)
    rc, _, err = docker_cli(engine.host, "kill", ctr["Id"])
    assert rc == 0, err
    wait_for(
        lambda: [t for t in cli.tasks("once") if t["State"] == "Failed"],
        what="once.1 failed",
        log=cli.log,
    )
    deadline = time.monotonic() + 3  # a replacement (delay 0 s) would show up well within this
    while time.monotonic() < deadline:
        tasks = cli.tasks("once")
        assert len(tasks) == 1, f"task replaced despite --restart-condition none: {tasks}"
        time.sleep(0.3)
    assert cli.service_row("once")["Replicas"] == "0/1"
    assert not containers(engine, sid, all=False)


def test_restart_on_failure_max_attempts(cli: Cli, cleanup: list[str]) -> None:
    cleanup += ["flaky", "done"]
    cli.create(
        "flaky",
        "--restart-condition",
        "on-failure",
        "--restart-max-attempts",
        "2",
        "--restart-delay",
        "100ms",
        BUSYBOX,
        "sh",
        "-c",
        "exit 3",
    )
    cli.create(
        "done", "--restart-condition", "on-failure", "--restart-delay", "100ms", BUSYBOX, "true"
    )

    def settled() -> list[dict[str, Any]] | None:
        tasks = cli.tasks("flaky")
        return tasks if len(tasks) == 3 and all(t["State"] == "Failed" for t in tasks) else None

    tasks = wait_for(settled, what="3 failed tasks (1 + 2 restarts)", log=cli.log)
    assert all("task: non-zero exit (3)" in t["Error"] for t in tasks), tasks
    (done,) = wait_for(
        lambda: [t for t in cli.tasks("done") if t["State"] == "Complete"],
        what="done.1 complete",
        log=cli.log,
    )
    time.sleep(1.0)  # 10× the restart delay: enough for a wrong extra attempt to appear
    assert len(cli.tasks("flaky")) == 3, cli.tasks("flaky")
    assert len(cli.tasks("done")) == 1, cli.tasks("done")


# --------------------------------------------------------------------------- task settings


def test_container_settings(cli: Cli, engine: Any, tmp_path: Any, cleanup: list[str]) -> None:
    cleanup.append("conf")
    bind_dir = tmp_path / "bind"
    bind_dir.mkdir()
    (bind_dir / "marker").write_text("from-the-host\n")
    script = 'trap "exit 0" TERM; while :; do sleep 0.2; done'
    sid = cli.create(
        "conf",
        "--env",
        "FOO=bar",
        "--env",
        "EMPTY=",
        "--entrypoint",
        "sh -c",
        "--workdir",
        "/tmp",
        "--user",
        "65534:65534",
        "--hostname",
        "conf-host",
        "--container-label",
        "com.example.role=test",
        "--mount",
        "type=tmpfs,target=/scratch,tmpfs-size=1048576",
        "--mount",
        "type=volume,source=shoal-e2e-vol,target=/data",
        "--mount",
        f"type=bind,source={bind_dir},target=/host,readonly",
        "--limit-memory",
        "64M",
        "--limit-cpu",
        "0.5",
        "--reserve-memory",
        "8M",
        "--stop-grace-period",
        "3s",
        BUSYBOX,
        script,
    )
    wait_for(lambda: running(cli.tasks("conf")), what="conf.1 running", log=cli.log)
    info = inspect(engine, _the_container(engine, sid)["Id"])
    config, host = info["Config"], info["HostConfig"]
    assert "FOO=bar" in config["Env"] and "EMPTY=" in config["Env"], config["Env"]
    assert config["Entrypoint"] == ["sh", "-c"], config["Entrypoint"]
    assert config["Cmd"] == [script], config["Cmd"]
    assert config["WorkingDir"] == "/tmp"
    assert config["User"] == "65534:65534"
    assert config["Hostname"] == "conf-host"
    assert config["Labels"].get("com.example.role") == "test", config["Labels"]
    assert config.get("StopTimeout") == 3, config.get("StopTimeout")
    assert host["Memory"] == 64 * 1024 * 1024, host["Memory"]
    assert host["NanoCpus"] == 500_000_000, host["NanoCpus"]
    mounts = {m["Destination"]: m for m in info["Mounts"]}
    assert mounts["/data"]["Type"] == "volume" and mounts["/data"]["Name"] == "shoal-e2e-vol"
    assert mounts["/host"]["Type"] == "bind" and mounts["/host"]["Source"] == str(bind_dir)
    assert mounts["/host"]["RW"] is False, mounts["/host"]
    assert any(
        m.get("Type") == "tmpfs" and m.get("Target") == "/scratch" for m in host.get("Mounts") or []
    ), host.get("Mounts")

    # And from inside the running container.
    rc, out, err = cli._cli(
        engine.host,
        "exec",
        info["Id"],
        "sh",
        "-c",
        'echo "$FOO"; pwd; id -u; hostname; cat /host/marker; '
        'grep -c " /scratch tmpfs" /proc/mounts; '
        "touch /host/x 2>/dev/null && echo rw || echo ro",
    )
    assert rc == 0, err
    assert out.split() == ["bar", "/tmp", "65534", "conf-host", "from-the-host", "1", "ro"], out


def test_hostname_template(cli: Cli, engine: Any, cleanup: list[str]) -> None:
    cleanup.append("tmpl")
    sid = cli.create("tmpl", "--hostname", "{{.Service.Name}}-{{.Task.Slot}}", WHOAMI)
    wait_for(lambda: running(cli.tasks("tmpl")), what="tmpl.1 running", log=cli.log)
    info = inspect(engine, _the_container(engine, sid)["Id"])
    assert info["Config"]["Hostname"] == "tmpl-1", info["Config"]["Hostname"]


# --------------------------------------------------------------------------- health, rejection


def test_healthcheck_passing(cli: Cli, engine: Any, cleanup: list[str]) -> None:
    """The container is up at once but healthy only after ~2 s: the task must show Starting
    meanwhile and become Running only once the check passes."""
    cleanup.append("healthy")
    script = 'trap "exit 0" TERM; sleep 2; touch /tmp/ready; while :; do sleep 0.2; done'
    sid = cli.create(
        "healthy",
        "--health-cmd", "test -f /tmp/ready",
        "--health-interval", "300ms",
        "--health-retries", "30",
        BUSYBOX, "sh", "-c", script,
    )  # fmt: skip
    seen: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        (task,) = cli.tasks("healthy")
        seen.append(task["State"])
        if task["State"] == "Running":
            break
        time.sleep(0.2)
    assert seen[-1] == "Running", f"never running; states seen: {seen}\n{cli.log()}"
    assert "Starting" in seen, f"never seen Starting while unhealthy: {seen}"
    info = inspect(engine, _the_container(engine, sid)["Id"])
    assert info["Config"]["Healthcheck"]["Test"] == ["CMD-SHELL", "test -f /tmp/ready"]
    assert info["Config"]["Healthcheck"]["Interval"] == 300_000_000
    # `running` only once the healthcheck passed.
    assert info["State"]["Health"]["Status"] == "healthy", info["State"]["Health"]
    assert cli.service_row("healthy")["Replicas"] == "1/1"


def test_healthcheck_failing(cli: Cli, cleanup: list[str]) -> None:
    cleanup.append("sick")
    cli.create(
        "sick",
        "--health-cmd",
        "exit 1",
        "--health-interval",
        "300ms",
        "--health-retries",
        "1",
        "--restart-delay",
        "100ms",
        WHOAMI,
    )
    deadline = time.monotonic() + 5
    saw_starting = False
    while time.monotonic() < deadline:
        tasks = cli.tasks("sick")
        assert not [t for t in tasks if t["State"] == "Running"], (
            f"a task with a failing healthcheck was reported running: {tasks}"
        )
        saw_starting |= any(t["State"] == "Starting" for t in tasks)
        time.sleep(0.2)
    assert saw_starting, "the task was never seen in state Starting"
    tasks = cli.tasks("sick")
    failed = [t for t in tasks if t["State"] == "Failed"]
    assert failed and all("unhealthy" in t["Error"] for t in failed), tasks
    assert {t["Name"] for t in tasks} == {"sick.1"}, tasks  # replaced in the same slot
    assert cli.service_row("sick")["Replicas"] == "0/1"


def test_missing_image_is_rejected(cli: Cli, engine: Any, cleanup: list[str]) -> None:
    """The task's error is the pull's own (here the registry can't be reached), as the engine
    words it: not the container create's misleading `No such image`."""
    cleanup.append("noimg")
    cli.create("noimg", "no-such/image:1")
    rejected = wait_for(
        lambda: [
            t
            for t in cli.tasks("noimg")
            if t["State"] == "Rejected" and t["DesiredState"] == "Shutdown"
        ],
        what="a Rejected task the orchestrator let go",
        log=cli.log,
    )
    status, body = engine.api("POST", "/images/create?fromImage=no-such/image&tag=1")
    assert status >= 400, body
    why = json.loads(body)["message"]
    assert why and why in rejected[0]["Error"], (why, rejected)
    assert "No such image" not in rejected[0]["Error"], rejected
    assert rejected[0]["DesiredState"] == "Shutdown", rejected
    assert cli.service_row("noimg")["Replicas"] == "0/1"
