"""What the high-availability tests with managers killed share: the managers as the CLI shows
them, the leader, a manager that answers, and killing a manager's host and starting it again
until it is a reachable manager once more."""

from __future__ import annotations

import time
from collections.abc import Iterable

from support import Cli, wait_for
from swarmlab import Lab

MANAGERS = ("m1", "m2", "m3")


def manager_status(cli: Cli) -> dict[str, str]:
    """Hostname → MANAGER STATUS of `docker node ls` (managers only; {} when refused)."""
    rc, out, _ = cli.run("node", "ls", "--format", "{{.Hostname}} {{.ManagerStatus}}")
    if rc != 0:
        return {}
    rows = (line.split(" ", 1) for line in out.splitlines() if line.strip())
    return {r[0]: r[1] for r in rows if len(r) == 2 and r[1]}


def answering(lab: Lab, among: Iterable[str] = MANAGERS, timeout: float = 30) -> Cli:
    """The CLI of a manager of `among` whose control calls work."""
    among = tuple(among)

    def one() -> Cli | None:
        for short in among:
            if lab.cli[short].run("node", "ls", timeout=15)[0] == 0:
                return lab.cli[short]
        return None

    found: Cli = wait_for(one, timeout, what=f"a manager of {among} answering")
    return found


def leader(lab: Lab) -> str:
    """The short name of the leader's node, as the managers agree on it."""

    def agreed() -> str | None:
        seen = {h for h, s in manager_status(answering(lab)).items() if s == "Leader"}
        return seen.pop().removeprefix(f"{lab.name}-") if len(seen) == 1 else None

    found: str = wait_for(agreed, 30, what="one leader")
    return found


def kill_and_restart(lab: Lab, short: str, down: float = 2.0) -> float:
    """SIGKILL `short`'s host, start it again after `down` s, and wait until the others see it
    as a reachable manager (or the leader); returns the seconds from the kill until then."""
    t0 = time.monotonic()
    lab.lab("kill", lab.node(short))
    time.sleep(down)
    lab.lab("start", lab.node(short))
    others = [m for m in MANAGERS if m != short]

    def back() -> bool:
        status = manager_status(answering(lab, others, timeout=60))
        return status.get(lab.node(short)) in ("Reachable", "Leader")

    wait_for(back, 60, interval=0.5, what=f"{short} a reachable manager again")
    return time.monotonic() - t0
