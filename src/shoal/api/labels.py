"""The labels Docker's swarm mode puts on task containers, so engine-side tools (and shoal
after a restart) recognise them; and shoal's own labels of a service."""

from __future__ import annotations

TASK_ID = "com.docker.swarm.task.id"
TASK_NAME = "com.docker.swarm.task.name"
TASK = "com.docker.swarm.task"
NODE_ID = "com.docker.swarm.node.id"
SERVICE_ID = "com.docker.swarm.service.id"
SERVICE_NAME = "com.docker.swarm.service.name"
STACK_NAMESPACE = "com.docker.stack.namespace"

# shoal's own, on a service: the published ports (comma-separated numbers) whose traffic stays
# on the node that receives it and keeps the client's address (Kubernetes' `Local` policy).
LOCAL_PORTS_LABEL = "shoal.publish.local"
