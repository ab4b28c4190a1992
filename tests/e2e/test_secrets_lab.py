"""Need to know, on a `shoal lab` (1 manager, 2 workers) with the stock docker CLI: a secret
reaches only the node that runs a task needing it, and there only a tmpfs: a known plaintext
is never in a node's shoald state directory (etcd's data on the manager), engine data root
or logs, never on a node without such a task, and it is gone from the node when the task
is. Seed J1 step 5 (`docker secret create`, `--secret`)."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import wait_for
from swarmlab import Lab, lab_up

from shoal.lab.state import DEFAULT_BASE

pytestmark = pytest.mark.e2e

NODES = ("m1", "w1", "w2")
PLAIN = "need-to-know-" + secrets.token_hex(12)


@pytest.fixture(scope="module")
def lab(docker_cli: Callable[..., tuple[int, str, str]]) -> Iterator[Lab]:
    yield from lab_up("sec", docker_cli, managers=1, workers=2)


def on_disk(root: Path, text: str) -> list[str]:
    """The files under `root` (followed from this machine's root namespace, where every lab
    host's directories are) that contain `text`."""
    needle = text.encode()
    found = []
    for path in root.rglob("*"):
        try:
            if path.is_file() and not path.is_symlink() and needle in path.read_bytes():
                found.append(str(path))
        except OSError:
            continue  # sockets, files that went meanwhile
    return found


def in_run(lab: Lab, short: str, text: str) -> str:
    """What `grep -rl` finds of `text` in the host's own `/run` (its tmpfs, where shoald
    keeps the tasks' files), as seen in that host's mount namespace."""
    return lab.host(short, "grep", "-rl", text, "/run").strip()


def test_a_secret_reaches_only_the_node_that_needs_it(lab: Lab) -> None:
    m1 = lab.cli["m1"]
    m1.ok("secret", "create", "token", "-", input=PLAIN)
    m1.converge("uses", "--secret", "source=token,target=api-token,mode=0400",
                "--constraint", f"node.hostname=={lab.node('w1')}", lab.busybox,
                "sleep", "3600")  # fmt: skip
    m1.converge("other", "--constraint", f"node.hostname=={lab.node('w2')}", lab.busybox,
                "sleep", "3600")  # fmt: skip
    base = Path(DEFAULT_BASE) / lab.name

    # On w1, in the container and on the host's tmpfs only.
    task = lab.task_on("uses", "w1")
    cid = task["Status"]["ContainerStatus"]["ContainerID"]
    assert lab.cli["w1"].ok("exec", cid, "cat", "/run/secrets/api-token") == PLAIN
    assert "/run/shoal/files/" in in_run(lab, "w1", PLAIN)
    mounts = lab.host("w1", "findmnt", "-n", "-o", "FSTYPE", "--target", "/run/shoal/files")
    assert mounts.strip() == "tmpfs", mounts
    for short in NODES:  # shoald's state directory (etcd's data on m1), the engine's data
        # root, every log: nowhere on disk
        assert on_disk(base / lab.node(short), PLAIN) == [], short

    # w2 runs a task, of another service: it never heard of the secret.
    assert lab.running("other")
    assert in_run(lab, "w2", PLAIN) == ""
    assert in_run(lab, "m1", PLAIN) == ""

    # Gone from w1 with its last task there.
    m1.ok("service", "rm", "uses")
    wait_for(lambda: in_run(lab, "w1", PLAIN) == "", what="the secret gone from w1")
    m1.ok("secret", "rm", "token")
    m1.ok("service", "rm", "other")
