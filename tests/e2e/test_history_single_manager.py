"""Concurrent compare-and-swap updates and reads of one service on a one-node swarm, recorded
and checked (`shoal.testing.history`): what the high-availability tests check with managers
dying, here with nothing failing, so that the checker and the recorder are seen to work
against a real shoald. Docker refuses an update sent a version that is no longer current
("update out of sequence"); with four clients racing, some are."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from support import WHOAMI

from shoal.testing.history import WRITE, Outcome, check
from shoal.testing.recorder import Recorder

pytestmark = pytest.mark.e2e

CLIENTS = 4
UPDATES = 40
SECONDS = 10.0


def test_concurrent_updates_on_one_manager(swarm: Any, docker_cli: Any) -> None:
    rc, out, err = docker_cli(
        swarm.host, "service", "create", "-d", "-q", "--name", "history", "--replicas", "0",
        "--label", "writer=init", WHOAMI,
    )  # fmt: skip
    assert rc == 0, err + swarm.log_tail(40)
    service = out.strip()
    try:
        rec = Recorder([swarm.host], timeout=10.0)
        deadline = time.monotonic() + SECONDS
        pace = 0.8 * SECONDS / UPDATES  # spread the updates over the time given

        def client(name: str) -> None:
            for i in range(UPDATES):
                if time.monotonic() > deadline:
                    return
                seen = rec.read(service, client=name)
                if seen.outcome is Outcome.OK and seen.version is not None:
                    rec.update(service, seen.version, {"writer": f"{name}-{i}"}, client=name)
                rec.read(service, client=name)
                time.sleep(pace)

        threads = [threading.Thread(target=client, args=(f"c{n}",)) for n in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        final = rec.read(service, client="final")
        assert final.outcome is Outcome.OK, final

        calls = rec.history.calls
        violations = check(calls)
        assert not violations, "\n".join(map(str, violations))
        writes = [c for c in calls if c.op == WRITE]
        acked = [c for c in writes if c.outcome is Outcome.OK]
        refused = [c for c in writes if c.outcome is Outcome.FAIL]
        assert len(writes) >= CLIENTS * UPDATES // 2, len(writes)
        assert not [c for c in calls if c.outcome is Outcome.UNKNOWN], swarm.log_tail(40)
        assert acked and refused, (len(acked), len(refused))
        assert all(c.status == 409 and "update out of sequence" in c.message for c in refused), (
            refused[:3]
        )
        assert final.value in {c.value for c in acked}
    finally:
        docker_cli(swarm.host, "service", "rm", "history")
