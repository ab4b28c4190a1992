"""When the orchestrator saw tasks start and end, on its own clock.

Decisions that depend on time — the restart delay since a task ended, the update delay since
the last batch came up, whether a new task failed within the update's monitor period — use
these observations, never the timestamps agents write (`Status.Timestamp`, taken with each
node's clock, is shown to users only). A task that ended or started before this orchestrator
began watching (a new leader, a restart) counts from `UpdatedAt`, which the store stamps with
a manager's clock when the status was written. Kept in memory, as SwarmKit's restart
supervisor and updater keep theirs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shoal.api.models import Task, parse_time
from shoal.api.states import TaskState


@dataclass
class TaskTimes:
    running: dict[str, float] = field(default_factory=dict)  # task → seen reaching running
    ended: dict[str, float] = field(default_factory=dict)  # task → seen ending
    ran: dict[str, float] = field(default_factory=dict)  # task → how long it was seen running

    def running_since(self, task: Task) -> float:
        return self.running.get(task.id) or _written(task)

    def ended_at(self, task: Task) -> float:
        return self.ended.get(task.id) or _written(task)

    def ran_for(self, task: Task) -> float:
        """How long an ended task ran, as seen here (0: never seen running)."""
        return self.ran.get(task.id, 0.0)

    def observe(self, old: Task | None, new: Task | None, now: float) -> None:
        """A task event, seen at `now`."""
        if new is None:
            if old is not None:
                for seen in (self.running, self.ended, self.ran):
                    seen.pop(old.id, None)
            return
        was = old.status.state if old is not None else TaskState.NEW
        state = new.status.state
        if state == TaskState.RUNNING and was < TaskState.RUNNING:
            self.running[new.id] = now
        elif state > TaskState.RUNNING >= was:
            self.ended[new.id] = now
            started = self.running.pop(new.id, None)
            if started is not None:
                self.ran[new.id] = now - started


def _written(task: Task) -> float:
    return parse_time(task.updated_at) if task.updated_at else 0.0


NOT_SEEN = TaskTimes()  # for callers that observed nothing: everything counts from UpdatedAt
