"""Rolling updates and rollbacks end to end: the stock docker CLI against a one-node shoal swarm.

What the CLI prints and its exit status are checked as with Docker's swarm mode; what really
happened is read back from the tasks (`CreatedAt`, status timestamps, slots) and from the
engine (every container's `StartedAt`/`FinishedAt`), so the order of replacement, the delay
between batches and the number of live tasks at any moment come from recorded times, not from
sampling. Run with ``SHOAL_TEST_DOCKER_CLI=/usr/bin/docker`` for Debian's 20.10 client.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections import defaultdict
from typing import Any

import pytest
from support import (
    BUSYBOX,
    WHOAMI,
    Cli,
    containers,
    inspect,
    live_counts,
    parse_time,
    wait_for,
)

pytestmark = pytest.mark.e2e

WHOAMI_2 = WHOAMI.replace(":1", ":2")
# Stops at once on SIGTERM; `--args` of an update replaces it.
IDLE = ["sh", "-c", 'trap "exit 0" TERM; while :; do sleep 0.2; done']
FAIL_ARGS = "sh -c 'sleep 0.3; exit 3'"
WHY = "due to failure or early termination of task "


@pytest.fixture(scope="module")
def cli(swarm: Any, docker_cli: Any) -> Cli:
    return Cli(docker_cli, swarm.host, lambda: swarm.log_tail(60))


# --------------------------------------------------------------------------- helpers


def api(swarm: Any, path: str) -> Any:
    status, body = swarm.api("GET", path)
    assert status == 200, body
    return json.loads(body)


def service(swarm: Any, name: str) -> dict[str, Any]:
    return api(swarm, f"/services/{name}")  # type: ignore[no-any-return]


def settled(swarm: Any, name: str, state: str, timeout: float = 30.0) -> dict[str, Any]:
    """The service once its UpdateStatus reached `state`. The CLI stops waiting one update
    monitor period after convergence; the update (or rollback) completes after its own
    monitor period, or its delay + 1 s if that is longer — as with Docker's swarm mode."""

    def reached() -> dict[str, Any] | None:
        svc = service(swarm, name)
        return svc if (svc.get("UpdateStatus") or {}).get("State") == state else None

    return wait_for(  # type: ignore[no-any-return]
        reached, timeout, what=f"UpdateStatus {state}", log=lambda: swarm.log_tail(40)
    )


def tasks(swarm: Any, name: str) -> list[dict[str, Any]]:
    filters = urllib.parse.quote(json.dumps({"service": [name]}))
    return api(swarm, f"/tasks?filters={filters}")  # type: ignore[no-any-return]


def image(task: dict[str, Any]) -> str:
    return task["Spec"]["ContainerSpec"]["Image"].split("@")[0]


def live(task: dict[str, Any]) -> bool:
    return task["DesiredState"] == "running" and task["Status"]["State"] == "running"


def by_slot(ts: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    """Tasks per slot, oldest first."""
    slots: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for t in sorted(ts, key=lambda t: parse_time(t["CreatedAt"])):
        slots[t["Slot"]].append(t)
    return slots


def spans(engine: Any, service_id: str) -> dict[str, tuple[float, float]]:
    """task ID → (started, finished) of its container, finished = inf while it runs."""
    out = {}
    for c in containers(engine, service_id):
        state = inspect(engine, c["Id"])["State"]
        finished = state["FinishedAt"]
        end = float("inf") if state["Running"] else parse_time(finished)
        out[c["Labels"]["com.docker.swarm.task.id"]] = (parse_time(state["StartedAt"]), end)
    return out


def the_container(engine: Any, service_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(Config, HostConfig) of the service's one running container."""
    (ctr,) = containers(engine, service_id, all=False)
    info = inspect(engine, ctr["Id"])
    return info["Config"], info["HostConfig"]


def update(cli: Cli, *args: str) -> tuple[int, str]:
    """`docker service update` without -d: (exit status, everything it printed)."""
    rc, out, err = cli.run("service", "update", *args, timeout=120)
    return rc, out + err


def rollback(cli: Cli, name: str) -> tuple[int, str]:
    """`docker service rollback` (it waits for convergence): (exit status, its output)."""
    rc, out, err = cli.run("service", "rollback", name, timeout=120)
    return rc, out + err


def converged(cli: Cli, rc: int, out: str) -> None:
    assert rc == 0 and "converged" in out, f"exit {rc}\n{out}\n{cli.log()}"


# --------------------------------------------------------------------------- rolling updates


def test_parallelism_and_delay(cli: Cli, swarm: Any, engine: Any, cleanup: list[str]) -> None:
    """6 replicas, parallelism 2, delay 2 s, stop-first: three batches of two slots; a batch
    starts ≥ 2 s after the previous one's tasks run, and a batch's old tasks stop only once the
    previous batch's new ones run (never more than two slots out of service)."""
    cleanup.append("roll")
    sid = cli.converge(
        "roll", "--replicas", "6", "--update-parallelism", "2", "--update-delay", "2s", WHOAMI
    )
    since = time.time()
    rc, out = update(cli, "--image", WHOAMI_2, "roll")
    converged(cli, rc, out)
    assert "overall progress: 6 out of 6 tasks" in out, out

    svc = settled(swarm, "roll", "completed")
    assert svc["UpdateStatus"]["Message"] == "update completed"
    assert svc["PreviousSpec"]["TaskTemplate"]["ContainerSpec"]["Image"].startswith(WHOAMI)
    slots = by_slot(tasks(swarm, "roll"))
    assert sorted(slots) == [1, 2, 3, 4, 5, 6], slots.keys()
    for slot, ts in slots.items():
        assert [image(t) for t in ts] == [WHOAMI, WHOAMI_2], f"slot {slot}: {ts}"
        old, new = ts
        assert old["DesiredState"] == "shutdown" and old["Status"]["State"] == "shutdown"
        assert live(new), new

    new = sorted((ts[1] for ts in slots.values()), key=lambda t: parse_time(t["CreatedAt"]))
    batches = [new[0:2], new[2:4], new[4:6]]
    for batch in batches:
        created = [parse_time(t["CreatedAt"]) for t in batch]
        assert max(created) - min(created) < 1.0, f"a batch was not created together: {batch}"
    run = spans(engine, sid)
    for prev, nxt in zip(batches, batches[1:], strict=False):
        prev_running = max(parse_time(t["Status"]["Timestamp"]) for t in prev)
        nxt_created = min(parse_time(t["CreatedAt"]) for t in nxt)
        assert nxt_created - prev_running >= 1.95, (
            f"batch created {nxt_created - prev_running:.2f} s after the previous one ran"
        )
        # stop-first: the next batch's old tasks were still running meanwhile.
        olds = [slots[t["Slot"]][0]["ID"] for t in nxt]
        prev_started = max(run[t["ID"]][0] for t in prev)
        assert all(run[o][1] > prev_started for o in olds), "a slot stopped too early"
    for ts in slots.values():
        old, new_task = ts
        assert run[old["ID"]][1] <= run[new_task["ID"]][0], "stop-first started the new task first"
    assert live_counts(list(run.values()), since) == (4, 6)


def test_start_first_waits_for_health(
    cli: Cli, swarm: Any, engine: Any, cleanup: list[str]
) -> None:
    """start-first: each old task stops only after its replacement is healthy; never fewer
    than 3 of 3 live, at most 4."""
    cleanup.append("sf")
    sid = cli.converge(
        "sf", "--replicas", "3", "--update-order", "start-first",
        "--health-cmd", "wget -q -O- http://127.0.0.1/version",
        "--health-interval", "1s", "--health-retries", "3",
        WHOAMI,
    )  # fmt: skip
    since = time.time()
    rc, out = update(cli, "--image", WHOAMI_2, "sf")
    converged(cli, rc, out)
    slots = by_slot(tasks(swarm, "sf"))
    run = spans(engine, sid)
    for slot, (old, new) in slots.items():
        assert image(new) == WHOAMI_2 and live(new), (slot, new)
        started = run[new["ID"]][0]
        # Docker's first healthcheck runs one interval after the start.
        assert run[old["ID"]][1] >= started + 0.9, f"slot {slot}: old task stopped before healthy"
    assert live_counts(list(run.values()), since) == (3, 4)


def test_stop_first_counts(cli: Cli, swarm: Any, engine: Any, cleanup: list[str]) -> None:
    cleanup.append("stf")
    sid = cli.converge("stf", "--replicas", "3", BUSYBOX, *IDLE)
    since = time.time()
    rc, out = update(cli, "--env-add", "V=2", "stf")
    converged(cli, rc, out)
    run = spans(engine, sid)
    assert len(run) == 6, run
    for slot, (old, new) in by_slot(tasks(swarm, "stf")).items():
        assert run[old["ID"]][1] <= run[new["ID"]][0], f"slot {slot}: both ran at once"
    assert live_counts(list(run.values()), since) == (2, 3)


def test_force_and_noop_updates(cli: Cli, swarm: Any, cleanup: list[str]) -> None:
    """Changing what no task runs (replicas, service labels, update settings) replaces no
    task; `--force` replaces every one."""
    cleanup.append("frc")
    cli.converge("frc", "--replicas", "2", "--update-parallelism", "0", BUSYBOX, *IDLE)
    before = {t["ID"] for t in tasks(swarm, "frc")}
    for args in (["--label-add", "a=b"], ["--update-parallelism", "2"], ["--update-delay", "1s"]):
        rc, out = update(cli, *args, "frc")
        converged(cli, rc, out)
    assert {t["ID"] for t in tasks(swarm, "frc")} == before
    rc, out = update(cli, "--replicas", "3", "frc")
    converged(cli, rc, out)
    now = tasks(swarm, "frc")
    assert before < {t["ID"] for t in now} and len(now) == 3, now

    rc, out = update(cli, "--force", "frc")
    converged(cli, rc, out)
    svc = service(swarm, "frc")
    assert svc["Spec"]["TaskTemplate"]["ForceUpdate"] == 1
    slots = by_slot(tasks(swarm, "frc"))
    assert sorted(slots) == [1, 2, 3]
    for slot, ts in slots.items():
        assert len(ts) == 2 and live(ts[1]) and ts[0]["DesiredState"] == "shutdown", (slot, ts)


def test_publish_add_and_rm_roll_the_tasks(
    cli: Cli, swarm: Any, engine: Any, cleanup: list[str]
) -> None:
    """`--publish-add` / `--publish-rm` (host mode) replace the tasks: the port answers once
    the update is done, and no longer after it is removed."""
    cleanup.append("upd")
    cli.converge("upd", "--replicas", "2", WHOAMI)
    before = {t["ID"] for t in tasks(swarm, "upd")}

    def answers() -> bool:
        try:
            return engine.http_get(18088, "/")[0] == 200
        except OSError:
            return False

    assert not answers()
    rc, out = update(cli, "--publish-add", "published=18088,target=80,mode=host", "upd")
    converged(cli, rc, out)
    added = [t for t in tasks(swarm, "upd") if live(t)]
    assert len(added) == 2 and not before & {t["ID"] for t in added}, added
    wait_for(answers, timeout=10, what=":18088 answering", log=cli.log)
    rc, out = update(cli, "--publish-rm", "18088", "upd")
    converged(cli, rc, out)
    removed = [t for t in tasks(swarm, "upd") if live(t)]
    assert len(removed) == 2 and not {t["ID"] for t in added} & {t["ID"] for t in removed}
    wait_for(lambda: not answers(), timeout=10, what=":18088 closed", log=cli.log)


# --------------------------------------------------------------------------- failures


def test_failing_update_pauses(cli: Cli, swarm: Any, cleanup: list[str]) -> None:
    """Default failure action: the update stops after the first new task fails; the other
    slots keep the old spec; `service rollback` brings the failed slot back."""
    cleanup.append("fp")
    cli.converge("fp", "--replicas", "3", "--update-monitor", "3s", BUSYBOX, *IDLE)
    # A healthcheck not due before the exit: the new task never counts as running, so the
    # update cannot go on to another slot before the failure is seen.
    rc, out = update(
        cli, "--args", FAIL_ARGS, "--health-cmd", "true", "--health-interval", "30s", "fp"
    )
    assert rc == 1, f"exit {rc}\n{out}"
    svc = service(swarm, "fp")
    status = svc["UpdateStatus"]
    assert status["State"] == "paused", status
    assert status["Message"].startswith("update paused " + WHY), status
    assert f"service update paused: {status['Message']}" in out, out
    failed_id = status["Message"].rsplit(" ", 1)[1]
    ts = tasks(swarm, "fp")
    failed = next(t for t in ts if t["ID"] == failed_id)
    assert failed["Status"]["State"] == "failed", failed
    assert "non-zero exit (3)" in failed["Status"]["Err"], failed["Status"]
    # Parallelism 1: one slot tried the new spec; the two others still run the old one.
    new_slots = {t["Slot"] for t in ts if t["Spec"]["ContainerSpec"].get("Args") != IDLE}
    assert new_slots == {failed["Slot"]}, ts
    old_live = {t["Slot"] for t in ts if live(t) and t["Spec"]["ContainerSpec"]["Args"] == IDLE}
    assert old_live == {1, 2, 3} - new_slots, ts

    rc, out = rollback(cli, "fp")
    assert rc == 0 and "converged" in out, f"exit {rc}\n{out}"
    up = [t for t in tasks(swarm, "fp") if live(t)]
    assert len(up) == 3 and all(t["Spec"]["ContainerSpec"]["Args"] == IDLE for t in up), up
    svc = settled(swarm, "fp", "rollback_completed")
    assert svc["Spec"]["TaskTemplate"]["ContainerSpec"]["Args"] == IDLE
    assert svc["UpdateStatus"]["Message"] == "rollback completed"


def test_failing_update_rolls_back(cli: Cli, swarm: Any, cleanup: list[str]) -> None:
    cleanup.append("fr")
    cli.converge(
        "fr", "--replicas", "3", "--update-failure-action", "rollback",
        "--rollback-parallelism", "0", BUSYBOX, *IDLE,
    )  # fmt: skip
    rc, out = update(cli, "--args", FAIL_ARGS, "fr")
    # The CLI shows why it rolled back, waits for the old spec to converge, and exits 0.
    assert rc == 0, f"exit {rc}\n{out}"
    assert "rollback: update rolled back " + WHY in out, out
    assert "converged" in out, out
    svc = settled(swarm, "fr", "rollback_completed")
    assert svc["Spec"]["TaskTemplate"]["ContainerSpec"]["Args"] == IDLE
    assert svc["PreviousSpec"]["TaskTemplate"]["ContainerSpec"]["Args"] == [
        "sh",
        "-c",
        "sleep 0.3; exit 3",
    ]
    up = [t for t in tasks(swarm, "fr") if live(t)]
    assert len(up) == 3 and all(t["Spec"]["ContainerSpec"]["Args"] == IDLE for t in up), up


def test_unhealthy_update_rolls_back(cli: Cli, swarm: Any, cleanup: list[str]) -> None:
    """A version that never turns healthy is not counted as running: the update fails and
    rolls back, and the old tasks are what runs at the end."""
    cleanup.append("uh")
    cli.converge("uh", "--replicas", "2", "--update-failure-action", "rollback", WHOAMI)
    rc, out = update(
        cli, "--image", WHOAMI_2, "--health-cmd", "exit 1", "--health-interval", "500ms",
        "--health-retries", "1", "uh",
    )  # fmt: skip
    assert rc == 0 and "rollback: update rolled back " + WHY in out, f"exit {rc}\n{out}"
    ts = tasks(swarm, "uh")
    sick = [t for t in ts if image(t) == WHOAMI_2]
    failed = [t for t in sick if t["Status"]["State"] == "failed"]
    assert failed and all("unhealthy" in t["Status"]["Err"] for t in failed), sick
    assert all(t["DesiredState"] == "shutdown" for t in sick), sick
    up = [t for t in ts if live(t)]
    assert len(up) == 2 and all(image(t) == WHOAMI for t in up), up
    assert "Healthcheck" not in service(swarm, "uh")["Spec"]["TaskTemplate"]["ContainerSpec"]


def test_manual_rollback(cli: Cli, swarm: Any, cleanup: list[str]) -> None:
    """`service rollback` returns to PreviousSpec; the spec it left becomes PreviousSpec, so
    `service update --rollback` goes forward again."""
    cleanup.append("mr")
    cli.converge("mr", "--replicas", "2", "--rollback-monitor", "1s", WHOAMI)
    converged(cli, *update(cli, "--image", WHOAMI_2, "mr"))
    rc, out = rollback(cli, "mr")
    assert rc == 0, out
    assert "rollback: manually requested rollback" in out, out
    assert "converged" in out, out
    svc = settled(swarm, "mr", "rollback_completed")
    assert svc["UpdateStatus"]["Message"] == "rollback completed"
    assert svc["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"].startswith(WHOAMI)
    assert svc["PreviousSpec"]["TaskTemplate"]["ContainerSpec"]["Image"].startswith(WHOAMI_2)
    up = [t for t in tasks(swarm, "mr") if live(t)]
    assert len(up) == 2 and all(image(t) == WHOAMI for t in up), up

    rc, out = update(cli, "--rollback", "mr")
    assert rc == 0 and "converged" in out, out
    up = [t for t in tasks(swarm, "mr") if live(t)]
    assert len(up) == 2 and all(image(t) == WHOAMI_2 for t in up), up

    # Nothing to roll back to on a new service: Docker's message.
    cli.create("mr2", BUSYBOX, *IDLE)
    cleanup.append("mr2")
    rc, out, err = cli.run("service", "rollback", "mr2")
    assert rc != 0 and "does not have a previous spec" in err, err


# --------------------------------------------------------------------------- restart


def test_restart_mid_update_resumes(
    cli: Cli, swarm: Any, docker_cli: Any, cleanup: list[str]
) -> None:
    """shoald (the leader, its etcd with it) killed in the middle of an update: after the
    restart the update goes on where it was — no slot updated twice, none left behind."""
    cleanup.append("rs")
    cli.converge("rs", "--replicas", "5", "--update-delay", "2s", BUSYBOX, *IDLE)
    cli.ok("service", "update", "-d", "--env-add", "V=2", "rs")

    def new_live() -> list[str]:
        return [
            t["ID"] for t in tasks(swarm, "rs") if live(t) and t["Spec"]["ContainerSpec"].get("Env")
        ]

    before = wait_for(lambda: len(new_live()) >= 2 and new_live(), what="two slots updated")
    swarm.kill()
    swarm.start()
    settled(swarm, "rs", "completed", timeout=90)
    slots = by_slot(tasks(swarm, "rs"))
    assert sorted(slots) == [1, 2, 3, 4, 5]
    for slot, ts in slots.items():
        assert [bool(t["Spec"]["ContainerSpec"].get("Env")) for t in ts] == [False, True], (
            slot,
            ts,
        )
        assert live(ts[1]), ts[1]
    assert set(before) <= {ts[1]["ID"] for ts in slots.values()}


# --------------------------------------------------------------------------- every option


def test_update_options_reach_the_container(
    cli: Cli, swarm: Any, engine: Any, cleanup: list[str]
) -> None:
    """One `service update` with most of the options the CLI offers for a task, then one that
    takes them away again: each takes effect through a new task whose container has it."""
    cleanup.append("opts")
    sid = cli.converge("opts", BUSYBOX, *IDLE)
    script = 'trap "exit 0" TERM; while :; do sleep 0.2; done'
    rc, out = update(
        cli,
        "--env-add", "A=1", "--label-add", "sl=1", "--container-label-add", "cl=1",
        "--mount-add", "type=tmpfs,target=/scratch",
        "--publish-add", "mode=host,target=80,published=18081",
        "--constraint-add", "node.role==manager", "--placement-pref-add", "spread=node.id",
        "--limit-memory", "64M", "--reserve-memory", "16M", "--limit-pids", "100",
        "--restart-condition", "on-failure",
        "--health-cmd", "true", "--health-interval", "1s",
        "--entrypoint", "/bin/sh", "--args", f"-c '{script}'",
        "--hostname", "opts-{{.Task.Slot}}", "--user", "nobody", "--workdir", "/tmp",
        "--host-add", "peer:10.9.8.7", "--dns-add", "10.0.0.53", "--cap-add", "NET_ADMIN",
        "--init", "--stop-signal", "SIGINT", "--stop-grace-period", "3s", "--read-only",
        "--group-add", "nogroup", "--sysctl-add", "net.core.somaxconn=1024",
        "--ulimit-add", "nofile=1024:2048",
        "opts",
    )  # fmt: skip
    converged(cli, rc, out)
    config, host = the_container(engine, sid)
    assert "A=1" in config["Env"] and config["Labels"]["cl"] == "1"
    assert config["Entrypoint"] == ["/bin/sh"] and config["Cmd"] == ["-c", script]
    assert config["Hostname"] == "opts-1" and config["User"] == "nobody"
    assert config["WorkingDir"] == "/tmp" and config["StopSignal"] == "SIGINT"
    assert config["StopTimeout"] == 3 and config["Healthcheck"]["Test"] == ["CMD-SHELL", "true"]
    assert [(m["Type"], m["Target"]) for m in host["Mounts"]] == [("tmpfs", "/scratch")]
    assert host["PortBindings"] == {"80/tcp": [{"HostIp": "", "HostPort": "18081"}]}
    assert (host["Memory"], host["MemoryReservation"], host["PidsLimit"]) == (
        64 * 2**20, 16 * 2**20, 100
    )  # fmt: skip
    assert host["ExtraHosts"] == ["peer:10.9.8.7"] and host["Dns"] == ["10.0.0.53"]
    assert host["CapAdd"] == ["CAP_NET_ADMIN"] or host["CapAdd"] == ["NET_ADMIN"], host["CapAdd"]
    assert host["Init"] is True and host["ReadonlyRootfs"] is True
    assert host["GroupAdd"] == ["nogroup"] and host["Sysctls"] == {"net.core.somaxconn": "1024"}
    assert host["Ulimits"] == [{"Name": "nofile", "Soft": 1024, "Hard": 2048}]
    spec = service(swarm, "opts")["Spec"]
    assert spec["Labels"] == {"sl": "1"}
    placement = spec["TaskTemplate"]["Placement"]
    assert placement["Constraints"] == ["node.role==manager"]
    assert placement["Preferences"] == [{"Spread": {"SpreadDescriptor": "node.id"}}]
    assert spec["TaskTemplate"]["RestartPolicy"]["Condition"] == "on-failure"

    rc, out = update(
        cli,
        "--env-rm", "A", "--container-label-rm", "cl", "--mount-rm", "/scratch",
        "--publish-rm", "mode=host,target=80", "--constraint-rm", "node.role==manager",
        "--placement-pref-rm", "spread=node.id", "--no-healthcheck", "--host-rm", "peer:10.9.8.7",
        "--dns-rm", "10.0.0.53", "--group-rm", "nogroup", "--sysctl-rm", "net.core.somaxconn",
        "--ulimit-rm", "nofile", "--read-only=false", "--user", "root",
        "opts",
    )  # fmt: skip
    converged(cli, rc, out)
    config, host = the_container(engine, sid)
    assert "A=1" not in config["Env"] and "cl" not in config["Labels"]
    assert config["Healthcheck"]["Test"] == ["NONE"], config.get("Healthcheck")
    gone = ("Mounts", "PortBindings", "ExtraHosts", "Dns", "GroupAdd", "Sysctls", "Ulimits")
    assert not [k for k in gone if host.get(k)], {k: host.get(k) for k in gone}
    assert host["ReadonlyRootfs"] is False and config["User"] == "root"
    placement = service(swarm, "opts")["Spec"]["TaskTemplate"].get("Placement") or {}
    assert not placement.get("Constraints") and not placement.get("Preferences"), placement
