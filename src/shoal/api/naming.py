"""Object IDs and the names derived from them."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shoal.api.models import Task

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def new_id() -> str:
    """A 25-character base-36 ID, like SwarmKit's (128 random bits)."""
    n = secrets.randbits(128)
    out = []
    for _ in range(25):
        n, r = divmod(n, 36)
        out.append(_ALPHABET[r])
    return "".join(reversed(out))


def task_name(service_name: str, slot: int | None, node_id: str | None, task_id: str) -> str:
    """`<service>.<slot>.<task-id>` (global tasks: `<service>.<node-id>.<task-id>`)."""
    middle = str(slot) if slot is not None else (node_id or "")
    return f"{service_name}.{middle}.{task_id}"


def container_name(task: Task, service_name: str) -> str:
    """A task's container is named like the task."""
    return task_name(service_name, task.slot, task.node_id, task.id)


_ADJECTIVES = (
    "admiring amazing bold brave busy calm clever cool dazzling eager elated epic focused "
    "friendly gallant gifted happy hopeful jolly keen kind laughing lucid modest nifty "
    "optimistic peaceful quirky relaxed serene sharp stoic sweet tender upbeat vibrant wizardly"
).split()
_NAMES = (
    "albattani babbage bohr curie darwin dijkstra einstein euler faraday feynman galileo "
    "hopper hypatia kepler knuth lamarr lovelace meitner newton noether pascal ritchie "
    "shannon thompson turing wozniak"
).split()


def random_name() -> str:
    """A name like Docker gives unnamed services: `adjective_surname`."""
    return f"{secrets.choice(_ADJECTIVES)}_{secrets.choice(_NAMES)}"
