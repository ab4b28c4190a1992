"""Task states: SwarmKit's ordered states, as the Docker API spells them.

A task's observed state only ever moves forward::

    new → pending → assigned → accepted → preparing → ready → starting → running
        → complete | shutdown | failed | rejected
    (desired states: ready → running → shutdown → remove)

`TaskState` is a string (the Docker JSON value, `TaskState.RUNNING == "running"`) that
compares by SwarmKit's order (its gapped numbers are `rank`), so models hold it directly.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class TaskState(StrEnum):
    NEW = "new"
    PENDING = "pending"
    ALLOCATED = "allocated"
    ASSIGNED = "assigned"
    ACCEPTED = "accepted"
    PREPARING = "preparing"
    READY = "ready"
    STARTING = "starting"
    RUNNING = "running"
    COMPLETE = "complete"
    SHUTDOWN = "shutdown"
    FAILED = "failed"
    REJECTED = "rejected"
    REMOVE = "remove"
    ORPHANED = "orphaned"

    @property
    def rank(self) -> int:
        """SwarmKit's number for the state (`api.TaskState`)."""
        return _RANK[self]

    def __lt__(self, other: Any) -> bool:
        return _RANK[self] < _RANK[TaskState(other)]

    def __le__(self, other: Any) -> bool:
        return _RANK[self] <= _RANK[TaskState(other)]

    def __gt__(self, other: Any) -> bool:
        return _RANK[self] > _RANK[TaskState(other)]

    def __ge__(self, other: Any) -> bool:
        return _RANK[self] >= _RANK[TaskState(other)]


_RANK: dict[str, int] = {
    "new": 0, "pending": 64, "allocated": 128, "assigned": 192, "accepted": 256,
    "preparing": 320, "ready": 384, "starting": 448, "running": 512, "complete": 576,
    "shutdown": 640, "failed": 704, "rejected": 768, "remove": 800, "orphaned": 832,
}  # fmt: skip
