"""Task and node states.

Task states are SwarmKit's ordered enum with its gapped numbers. A task's observed state
only ever moves forward::

    new → pending → assigned → accepted → preparing → ready → starting → running
        → complete | failed | rejected | shutdown
    (desired states: ready → running → shutdown → remove)
"""

from __future__ import annotations

from enum import IntEnum


class TaskState(IntEnum):
    NEW = 0
    PENDING = 64
    ALLOCATED = 128
    ASSIGNED = 192
    ACCEPTED = 256
    PREPARING = 320
    READY = 384
    STARTING = 448
    RUNNING = 512
    COMPLETE = 576
    SHUTDOWN = 640
    FAILED = 704
    REJECTED = 768
    REMOVE = 800
    ORPHANED = 832

    @property
    def api(self) -> str:
        """The lower-case name the Docker API uses."""
        return self.name.lower()

    @classmethod
    def parse(cls, value: str | int | TaskState) -> TaskState:
        if isinstance(value, int):
            return cls(value)
        return cls[value.upper()]

    @property
    def terminal(self) -> bool:
        return self > TaskState.RUNNING

    @property
    def active(self) -> bool:
        return self <= TaskState.RUNNING


# The states `docker service ps` and the convergence display understand.
API_STATES = {s.api for s in TaskState}
