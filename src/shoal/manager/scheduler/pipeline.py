"""The filter pipeline: an ordered checklist with failure counters (swarmkit `pipeline.go`).

`set_task` once per task group, `process(node)` for each candidate node: it stops at the first
failing filter and counts one failure against it. `explain()` turns the counters into the
text users see: filters with the most failures first (ties keep pipeline order), joined with
"; ". `no_suitable_node(explain)` wraps it as the task's `Status.Err`.
"""

from __future__ import annotations

from collections.abc import Sequence

from shoal.api.models import Task
from shoal.manager.scheduler.filters import Filter, default_filters
from shoal.manager.scheduler.nodeinfo import NodeInfo

__all__ = ["Pipeline", "no_suitable_node"]


def no_suitable_node(explanation: str) -> str:
    """The `Status.Err` of a task no node can take."""
    if explanation:
        return f"no suitable node ({explanation})"
    return "no suitable node"


class Pipeline:
    def __init__(self, filters: Sequence[Filter] | None = None) -> None:
        self.filters: list[Filter] = list(filters) if filters is not None else default_filters()
        self.failures: list[int] = [0] * len(self.filters)
        # (index into filters, filter) for the filters enabled for the current task
        self._enabled: list[tuple[int, Filter]] = []

    def set_task(self, task: Task) -> None:
        """Set up every filter for `task` and clear the failure counters."""
        self._enabled = [(i, f) for i, f in enumerate(self.filters) if f.set_task(task)]
        self.failures = [0] * len(self.filters)

    def process(self, node: NodeInfo) -> bool:
        """True if every enabled filter accepts `node`.

        On failure the first failing filter's counter goes up. As in swarmkit, a success
        clears all counters, so after a scan the counters describe the failures since the
        last node that fitted.
        """
        for i, f in self._enabled:
            if not f.check(node):
                self.failures[i] += 1
                return False
        if any(self.failures):
            self.failures = [0] * len(self.filters)
        return True

    def reset(self) -> None:
        self.failures = [0] * len(self.filters)

    def explain(self) -> str:
        """The failures as text, e.g. "insufficient resources on 2 nodes; …"."""
        counted = [(n, i) for i, n in enumerate(self.failures) if n > 0]
        counted.sort(key=lambda e: -e[0])  # stable: ties keep pipeline order
        return "; ".join(self.filters[i].explain(n) for n, i in counted)
