"""Linearizability on 3 managers: clients (threads) read a service and update it with
compare-and-swap (`service update ?version=`) against all three managers in turn while the
leader's host is SIGKILLed and started again three times (each time until it is a reachable
manager again); `shoal.testing.history.check` then finds no acknowledged update lost, no two
updates on one version and no stale read — a read sent to any manager sees every update
acknowledged before it started, by whichever manager (`real_time_reads=True`: the read
barrier of `docs/design/store.md`)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
from halab import MANAGERS, answering, kill_and_restart, leader
from swarmlab import Lab, lab_up

from shoal.testing.history import READ, WRITE, Outcome, check
from shoal.testing.recorder import Recorder

pytestmark = pytest.mark.e2e

CLIENTS = 6
KILLS = 3
CALM = 4.0  # seconds of clients at work before each kill, and after the last restart
PACE = 0.05  # seconds each client pauses between read-update-read rounds


@pytest.fixture(scope="module")
def lab(docker_cli: Callable[..., tuple[int, str, str]]) -> Iterator[Lab]:
    yield from lab_up("hh", docker_cli, managers=3, workers=0)


def test_histories_stay_linearizable_while_the_leader_dies(lab: Lab) -> None:
    cli = answering(lab)
    service = cli.create("history", "--replicas", "0", "--label", "writer=init", lab.whoami)
    rec = Recorder([lab.cli[m].host for m in MANAGERS], timeout=10.0)
    stop = threading.Event()

    def client(name: str) -> None:
        i = 0
        while not stop.is_set():
            seen = rec.read(service, client=name)
            if seen.outcome is Outcome.OK and seen.version is not None:
                rec.update(service, seen.version, {"writer": f"{name}-{i}"}, client=name)
                i += 1
            rec.read(service, client=name)
            time.sleep(PACE)

    threads = [threading.Thread(target=client, args=(f"c{n}",)) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    killed = []
    try:
        for _ in range(KILLS):
            time.sleep(CALM)
            dead = leader(lab)
            killed.append(dead)
            back = kill_and_restart(lab, dead)
            print(f"\nkilled the leader {dead}: a reachable manager again after {back:.1f} s")
        time.sleep(CALM)
    finally:
        stop.set()
        for t in threads:
            t.join()
    answering(lab)
    final = rec.read(service, client="final")
    assert final.outcome is Outcome.OK, final

    calls = rec.history.calls
    outcomes = Counter((c.op, c.outcome.name) for c in calls)
    print(f"killed {killed}; calls: {dict(outcomes)}")
    violations = check(calls, real_time_reads=True)
    assert not violations, "\n".join(map(str, violations[:20]))
    acked = [c for c in calls if c.op == WRITE and c.outcome is Outcome.OK]
    reads = [c for c in calls if c.op == READ and c.outcome is Outcome.OK]
    # The check means something only if the clients did work through every kill.
    assert len(acked) >= 10 * (KILLS + 1) and len(reads) >= 20 * (KILLS + 1), dict(outcomes)
    assert final.value in {c.value for c in acked}
    cli = answering(lab)
    cli.rm("history")
