"""Restart policies on the mock clock: the delay between a task's end and its replacement's
start, max attempts within the window, and the condition."""

from __future__ import annotations

from shoal.api.states import TaskState
from shoal.testing.cluster import SimCluster

SEC = 1_000_000_000


async def test_delay_and_max_attempts_are_honoured() -> None:
    async with SimCluster(workers=1) as c:
        engine = c.nodes["w1"].engine
        engine.exits("crash:1", after=2.0, code=1)
        policy = {"Condition": "on-failure", "Delay": 5 * SEC, "MaxAttempts": 2}
        await c.create("crash", "crash:1", RestartPolicy=policy)
        await c.until(lambda: len(engine.starts) == 3, timeout=60, what="3 starts")
        await c.sleep(60)  # long after: no fourth attempt
        assert len(engine.starts) == 3
        tasks = sorted(c.tasks("crash"), key=lambda t: t.created_at or "")
        assert [t.status.state for t in tasks] == [TaskState.FAILED] * 3
        assert all(t.desired_state == TaskState.SHUTDOWN for t in tasks)
        assert [t.status.err for t in tasks] == ["task: non-zero exit (1)"] * 3
        times = [at for at, _ in engine.starts]  # 2 s of running, then the 5 s delay
        assert all(7.0 <= b - a <= 7.5 for a, b in zip(times, times[1:], strict=False)), times


async def test_replacement_waits_out_the_delay() -> None:
    async with SimCluster(workers=1) as c:
        engine = c.nodes["w1"].engine
        engine.exits("crash:1", after=1.0, code=1)
        await c.create("crash", "crash:1", RestartPolicy={"Delay": 7 * SEC})
        await c.until(lambda: len(engine.starts) == 3, timeout=60, what="3 starts")
        # Each start is 1 s of running plus 7 s of delay after the previous one.
        times = [at for at, _ in engine.starts]
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        assert len(gaps) == 2 and all(8.0 <= g <= 8.5 for g in gaps), gaps


async def test_condition_none_never_restarts() -> None:
    async with SimCluster(workers=1) as c:
        engine = c.nodes["w1"].engine
        engine.exits("once:1", after=1.0, code=0)
        await c.create("once", "once:1", RestartPolicy={"Condition": "none"})
        await c.until(lambda: len(engine.starts) == 1, what="the one start")
        await c.sleep(30)
        assert len(engine.starts) == 1
        (task,) = c.tasks("once")
        assert task.status.state == TaskState.COMPLETE
