"""The labels Docker's swarm mode puts on task containers, so engine-side tools (and shoal
after a restart) recognise them."""

from __future__ import annotations

TASK_ID = "com.docker.swarm.task.id"
TASK_NAME = "com.docker.swarm.task.name"
TASK = "com.docker.swarm.task"
NODE_ID = "com.docker.swarm.node.id"
SERVICE_ID = "com.docker.swarm.service.id"
SERVICE_NAME = "com.docker.swarm.service.name"
STACK_NAMESPACE = "com.docker.stack.namespace"
