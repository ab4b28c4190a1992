"""The scheduler: assigns pending tasks to nodes (swarmkit `manager/scheduler`).

The pure core lives here — `nodeinfo` (per-node accounting), `filters` + `pipeline` (can
this task run there, and why not), `spread` (node ranking, placement preferences) and
`decide` (`schedule_group`, `fit_preassigned`, `group_tasks`). See docs/design/scheduler.md.
"""

from shoal.manager.scheduler.decide import fit_preassigned, group_tasks, schedule_group
from shoal.manager.scheduler.filters import Filter, default_filters
from shoal.manager.scheduler.nodeinfo import MAX_FAILURES, MONITOR_FAILURES, NodeInfo
from shoal.manager.scheduler.pipeline import Pipeline, no_suitable_node
from shoal.manager.scheduler.spread import SpreadTree, node_rank

__all__ = [
    "MAX_FAILURES",
    "MONITOR_FAILURES",
    "Filter",
    "NodeInfo",
    "Pipeline",
    "SpreadTree",
    "default_filters",
    "fit_preassigned",
    "group_tasks",
    "no_suitable_node",
    "node_rank",
    "schedule_group",
]
