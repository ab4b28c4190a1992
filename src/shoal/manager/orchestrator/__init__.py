"""The orchestrator: from services to tasks (SwarmKit's `manager/orchestrator`).

From the loop down: `orchestrator` (store events → dirty services → plans → writes);
`replicated`, `global_` and `jobs` (one reconciler per service mode); `slots` (the per-slot
pass both long-running modes share); `update` (rolling updates: batches, failures, status);
`restart` (restart rules); `eligible` (which nodes a service may use); `times` (what the loop
saw, when); `plan` (what a pass decides). Everything below `orchestrator` is pure.
"""
