"""The agent's pure state step, `decide(state, desired, seen)`: SwarmKit's exec.Do table."""

from __future__ import annotations

import pytest

from shoal.agent.controller import Observed
from shoal.agent.task import Step, decide
from shoal.api.states import TaskState as S

GONE = Observed()
CREATED = Observed(exists=True, container_id="c1")
RUNNING = Observed(exists=True, running=True, started=True, container_id="c1", pid=42)


def exited(code: int, health: str | None = None) -> Observed:
    return Observed(exists=True, started=True, exit_code=code, health=health, container_id="c1")


def running(health: str | None) -> Observed:
    return Observed(exists=True, running=True, started=True, health=health, container_id="c1")


# ---------------------------------------------------------------- forward path


@pytest.mark.parametrize("state", [S.NEW, S.PENDING, S.ALLOCATED, S.ASSIGNED])
def test_assigned_task_is_accepted(state: S) -> None:
    step = decide(state, S.RUNNING, GONE)
    assert (step.op, step.state) == ("none", S.ACCEPTED)
    assert step.err is None


@pytest.mark.parametrize("state", [S.ACCEPTED, S.PREPARING])
def test_accepted_task_prepares_its_container(state: S) -> None:
    step = decide(state, S.RUNNING, GONE)
    assert (step.op, step.state) == ("prepare", S.READY)


@pytest.mark.parametrize("state", [S.ACCEPTED, S.PREPARING])
def test_existing_container_is_not_prepared_twice(state: S) -> None:
    step = decide(state, S.RUNNING, CREATED)
    assert (step.op, step.state) == ("none", S.READY)


def test_accepted_task_prepares_even_when_desired_ready() -> None:
    """A restart waiting out its delay (desired `ready`) is prepared but not started."""
    step = decide(S.ACCEPTED, S.READY, GONE)
    assert (step.op, step.state) == ("prepare", S.READY)


def test_ready_task_waits_while_desired_ready() -> None:
    step = decide(S.READY, S.READY, CREATED)
    assert (step.op, step.state) == ("wait", S.READY)


def test_ready_task_starts_when_desired_running() -> None:
    step = decide(S.READY, S.RUNNING, CREATED)
    assert (step.op, step.state) == ("start", S.STARTING)


def test_ready_task_whose_container_already_runs_is_not_started_again() -> None:
    """Adopted after a restart of the agent: the container is up already."""
    step = decide(S.READY, S.RUNNING, RUNNING)
    assert (step.op, step.state) == ("none", S.STARTING)


def test_starting_without_healthcheck_becomes_running() -> None:
    step = decide(S.STARTING, S.RUNNING, running(None))
    assert (step.op, step.state) == ("none", S.RUNNING)
    assert step.err is None


def test_running_task_with_running_container_waits() -> None:
    step = decide(S.RUNNING, S.RUNNING, running(None))
    assert (step.op, step.state) == ("wait", S.RUNNING)


def test_full_forward_path() -> None:
    """Step through the table with a container that does what it is told."""
    state, seen = S.ASSIGNED, GONE
    path = [state]
    for _ in range(10):
        step = decide(state, S.RUNNING, seen)
        if step.op == "prepare":
            seen = CREATED
        elif step.op == "start":
            seen = RUNNING
        if step.state == state:
            break
        state = step.state
        path.append(state)
    assert path == [S.ASSIGNED, S.ACCEPTED, S.READY, S.STARTING, S.RUNNING]


# ---------------------------------------------------------------- healthcheck gating


def test_starting_task_waits_while_health_is_starting() -> None:
    step = decide(S.STARTING, S.RUNNING, running("starting"))
    assert (step.op, step.state) == ("wait", S.STARTING)


def test_starting_task_runs_once_healthy() -> None:
    step = decide(S.STARTING, S.RUNNING, running("healthy"))
    assert (step.op, step.state) == ("none", S.RUNNING)


@pytest.mark.parametrize("state", [S.STARTING, S.RUNNING])
def test_unhealthy_container_is_stopped_and_task_fails(state: S) -> None:
    step = decide(state, S.RUNNING, running("unhealthy"))
    assert (step.op, step.state) == ("stop", S.FAILED)
    assert step.err is not None and "unhealthy container" in step.err


def test_running_task_stays_running_while_healthy() -> None:
    step = decide(S.RUNNING, S.RUNNING, running("healthy"))
    assert (step.op, step.state) == ("wait", S.RUNNING)


# ---------------------------------------------------------------- exits


@pytest.mark.parametrize("state", [S.STARTING, S.RUNNING])
def test_exit_zero_completes(state: S) -> None:
    step = decide(state, S.RUNNING, exited(0))
    assert (step.op, step.state) == ("none", S.COMPLETE)
    assert step.err is None
    assert step.message == "finished"


@pytest.mark.parametrize("code", [1, 2, 137, 255])
@pytest.mark.parametrize("state", [S.STARTING, S.RUNNING])
def test_non_zero_exit_fails_with_the_code(state: S, code: int) -> None:
    step = decide(state, S.RUNNING, exited(code))
    assert (step.op, step.state) == ("none", S.FAILED)
    assert step.err == f"task: non-zero exit ({code})"


def test_exit_zero_while_unhealthy_fails() -> None:
    step = decide(S.RUNNING, S.RUNNING, exited(0, health="unhealthy"))
    assert step.state == S.FAILED
    assert step.err is not None and "unhealthy container" in step.err


def test_exit_with_unknown_code_counts_as_zero() -> None:
    step = decide(S.RUNNING, S.RUNNING, Observed(exists=True, started=True, exit_code=None))
    assert step.state == S.COMPLETE


@pytest.mark.parametrize("state", [S.STARTING, S.RUNNING])
def test_container_removed_behind_our_back_fails_the_task(state: S) -> None:
    step = decide(state, S.RUNNING, GONE)
    assert (step.op, step.state) == ("none", S.FAILED)
    assert step.err is not None and "removed" in step.err


# ---------------------------------------------------------------- desired shutdown


@pytest.mark.parametrize("desired", [S.SHUTDOWN, S.REMOVE])
@pytest.mark.parametrize("state", [S.STARTING, S.RUNNING])
def test_desired_shutdown_stops_a_running_container(state: S, desired: S) -> None:
    step = decide(state, desired, RUNNING)
    assert (step.op, step.state) == ("stop", S.SHUTDOWN)
    assert step.err is None


@pytest.mark.parametrize("desired", [S.SHUTDOWN, S.REMOVE])
@pytest.mark.parametrize(
    ("state", "seen"),
    [(S.ASSIGNED, GONE), (S.ACCEPTED, GONE), (S.READY, CREATED), (S.RUNNING, exited(0))],
)
def test_desired_shutdown_without_running_container_is_shutdown_at_once(
    state: S, seen: Observed, desired: S
) -> None:
    step = decide(state, desired, seen)
    assert (step.op, step.state) == ("none", S.SHUTDOWN)


def test_desired_shutdown_wins_over_an_exit() -> None:
    """A task told to stop whose container then exits non-zero ends `shutdown`, not `failed`
    (the stop itself kills the process)."""
    step = decide(S.RUNNING, S.SHUTDOWN, exited(137))
    assert step.state == S.SHUTDOWN
    assert step.err is None


# ---------------------------------------------------------------- terminal states


@pytest.mark.parametrize(
    "state", [S.COMPLETE, S.SHUTDOWN, S.FAILED, S.REJECTED, S.REMOVE, S.ORPHANED]
)
@pytest.mark.parametrize("desired", [S.READY, S.RUNNING, S.SHUTDOWN, S.REMOVE])
@pytest.mark.parametrize(
    "seen", [GONE, CREATED, RUNNING, exited(1)], ids=["gone", "created", "running", "exited"]
)
def test_terminal_state_stays_terminal(state: S, desired: S, seen: Observed) -> None:
    assert decide(state, desired, seen) == Step("none", state)


# ---------------------------------------------------------------- never backwards


@pytest.mark.parametrize(
    "state", [S.NEW, S.ASSIGNED, S.ACCEPTED, S.PREPARING, S.READY, S.STARTING, S.RUNNING]
)
@pytest.mark.parametrize("desired", [S.READY, S.RUNNING, S.SHUTDOWN, S.REMOVE])
@pytest.mark.parametrize(
    "seen",
    [GONE, CREATED, RUNNING, exited(0), exited(3), running("starting"), running("unhealthy")],
)
def test_states_never_move_backwards(state: S, desired: S, seen: Observed) -> None:
    step = decide(state, desired, seen)
    assert step.state >= state
    assert step.op in {"none", "wait", "prepare", "start", "stop", "adopt"}
    if step.op == "wait":
        assert step.state == state


def test_starting_task_whose_container_never_started_is_not_running() -> None:
    """`running` is reported only for a container that runs. A task left in `starting` with a
    created-but-never-started container (the agent restarted between reporting `starting` and
    the engine's start) must be started (SwarmKit calls Start again in STARTING), not
    declared running."""
    step = decide(S.STARTING, S.RUNNING, CREATED)
    assert step.state != S.RUNNING
    assert step.op == "start"
