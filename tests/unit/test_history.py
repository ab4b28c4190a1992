"""The history checker (`shoal.testing.history`): each kind of violation in a small history,
concurrent histories it must accept, and a property: histories generated from the sequential
model with random overlapping timings are accepted, one injected anomaly is always found."""

from __future__ import annotations

import random
import threading
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.testing.history import READ, WRITE, Call, History, Kind, Outcome, check

OK, FAIL, UNKNOWN = Outcome.OK, Outcome.FAIL, Outcome.UNKNOWN
_seq = iter(range(1, 10**9))


def w(client: str, t0: float, t1: float, version: int, value: str, outcome: Outcome = OK) -> Call:
    return Call(client, WRITE, "s", t0, t1, outcome, version, value, seq=next(_seq))


def r(client: str, t0: float, t1: float, version: int | None, value: str | None) -> Call:
    return Call(client, READ, "s", t0, t1, OK, version, value, seq=next(_seq))


def kinds(calls: list[Call], **kw: bool) -> list[Kind]:
    return [v.kind for v in check(calls, **kw)]


# --------------------------------------------------------------------------- accepted


def test_sequential_history_is_accepted() -> None:
    calls = [
        r("a", 0, 1, 10, "init"),
        w("a", 2, 3, 10, "a-1"),
        r("a", 4, 5, 11, "a-1"),
        w("a", 6, 7, 10, "a-2", FAIL),  # stale version: refused
        r("b", 8, 9, 11, "a-1"),
    ]
    assert check(calls) == []


def test_concurrent_read_may_see_either_state() -> None:
    write = w("a", 0, 10, 10, "a-1")
    for seen in [(10, "init"), (11, "a-1")]:
        assert check([write, r("b", 1, 2, *seen), r("c", 11, 12, 11, "a-1")]) == []
    # Two overlapping reads may even see them in the "wrong" order of invocation.
    assert check([write, r("b", 1, 5, 11, "a-1"), r("c", 2, 6, 10, "init")]) == []


def test_cluster_writes_raise_the_version_and_keep_the_value() -> None:
    calls = [w("a", 0, 1, 10, "a-1"), r("a", 2, 3, 12, "a-1"), r("b", 4, 5, 17, "a-1")]
    assert check(calls) == []
    # The version the next write was sent may be any of the later ones.
    calls += [w("b", 6, 7, 17, "b-1"), r("b", 8, 9, 19, "b-1")]
    assert check(calls) == []


def test_unknown_write_that_did_not_happen() -> None:
    calls = [
        w("a", 0, 1, 10, "a-1", UNKNOWN),
        r("b", 2, 3, 10, "init"),
        w("b", 4, 5, 10, "b-1"),  # the same version: fine, a-1 never took effect
        r("b", 6, 7, 11, "b-1"),
    ]
    assert check(calls) == []


def test_unknown_write_that_happened_even_after_its_client_gave_up() -> None:
    calls = [
        w("a", 0, 1, 10, "a-1", UNKNOWN),
        r("b", 2, 3, 10, "init"),  # not yet…
        r("b", 4, 5, 11, "a-1"),  # … then it took effect
        r("a", 6, 7, 11, "a-1"),
    ]
    assert check(calls) == []


def test_failed_and_unknown_reads_are_ignored() -> None:
    calls = [
        w("a", 0, 1, 10, "a-1"),
        replace(r("b", 2, 3, None, None), outcome=FAIL, status=503),
        replace(r("b", 4, 5, None, None), outcome=UNKNOWN),
        r("b", 6, 7, 11, "a-1"),
    ]
    assert check(calls) == []


def test_services_are_separate_registers() -> None:
    calls = [w("a", 0, 1, 10, "a-1"), replace(w("a", 0, 1, 10, "a-2"), service="t")]
    assert check(calls) == []


def test_two_writes_with_one_value_are_refused() -> None:
    with pytest.raises(ValueError, match="two writes carry"):
        check([w("a", 0, 1, 10, "x"), w("b", 0, 1, 11, "x")])


# --------------------------------------------------------------------------- each violation


def test_lost_acknowledged_write() -> None:
    calls = [w("a", 0, 1, 10, "a-1"), r("b", 2, 3, 12, "init")]
    (v,) = check(calls)
    assert v.kind is Kind.LOST_WRITE and v.calls[0] == calls[0] and v.calls[-1] == calls[1]
    # Overwritten by a write sent an older version: lost as well.
    calls = [
        w("b", 0, 1, 9, "b-1", UNKNOWN),
        w("a", 2, 3, 10, "a-1"),
        r("c", 4, 5, 12, "b-1"),
    ]
    assert kinds(calls) == [Kind.LOST_WRITE]
    # Overwritten by a write sent a later version: fine.
    calls[0] = w("b", 0, 5, 11, "b-1", UNKNOWN)
    assert check(calls) == []


def test_lost_write_at_the_edge_of_a_reads_floor() -> None:
    calls = [
        w("a", 0, 1, 10, "a-1"),
        w("b", 0, 1, 13, "b-1", UNKNOWN),
        r("c", 2, 3, 14, "a-1"),  # a-1 is still there at 14 …
        r("d", 4, 5, 16, "b-1"),  # … so b-1, sent 13, cannot follow it
    ]
    assert kinds(calls) == [Kind.LOST_WRITE]
    calls[1] = w("b", 0, 1, 14, "b-1", UNKNOWN)
    assert check(calls) == []


def test_lost_write_that_a_read_saw() -> None:
    calls = [
        w("a", 0, 1, 10, "a-1", UNKNOWN),
        r("b", 2, 3, 11, "a-1"),  # it happened
        r("c", 4, 5, 13, "init"),  # … and is gone
    ]
    assert kinds(calls) == [Kind.LOST_WRITE]
    assert kinds(calls, real_time_reads=False) == []


def test_two_writes_on_one_version() -> None:
    calls = [w("a", 0, 2, 10, "a-1"), w("b", 1, 3, 10, "b-1")]
    (v,) = check(calls)
    assert v.kind is Kind.SAME_VERSION and set(v.calls) == set(calls)
    # An unknown outcome counts once a read shows it.
    calls = [w("a", 0, 2, 10, "a-1"), w("b", 1, 3, 10, "b-1", UNKNOWN), r("c", 4, 5, 12, "b-1")]
    assert Kind.SAME_VERSION in kinds(calls)
    assert kinds(calls[:2]) == []


def test_stale_read_after_an_acknowledged_write() -> None:
    calls = [w("a", 0, 1, 10, "a-1"), r("b", 2, 3, 10, "init")]
    (v,) = check(calls)
    assert v.kind is Kind.STALE_READ and v.calls == (calls[0], calls[1])
    assert kinds(calls, real_time_reads=False) == [Kind.STALE_READ]


def test_stale_read_after_another_clients_read() -> None:
    calls = [w("a", 0, 1, 10, "a-1"), r("b", 2, 3, 14, "a-1"), r("c", 4, 5, 12, "a-1")]
    assert kinds(calls) == [Kind.STALE_READ]
    assert kinds(calls, real_time_reads=False) == []


def test_a_clients_versions_going_backwards() -> None:
    calls = [r("a", 0, 1, 14, "init"), r("a", 2, 3, 12, "init")]
    (v,) = check(calls, real_time_reads=False)
    assert v.kind is Kind.BACKWARDS and v.calls == tuple(calls)
    assert kinds(calls) == [Kind.BACKWARDS]


@pytest.mark.parametrize(
    "calls",
    [
        [w("a", 0, 1, 10, "a-1", FAIL), r("b", 2, 3, 11, "a-1")],  # a refused write's value
        [w("a", 0, 1, 10, "a-1"), r("b", 2, 3, 10, "a-1")],  # at the version it was sent
        [r("b", 0, 1, 11, "a-1"), w("a", 2, 3, 10, "a-1", UNKNOWN)],  # before it was invoked
        [r("b", 0, 1, 11, "init"), r("c", 2, 3, 11, "x")],  # two values at one version
    ],
)
def test_impossible_reads(calls: list[Call]) -> None:
    assert Kind.IMPOSSIBLE_READ in kinds(calls)


def test_violations_say_what_and_which_calls() -> None:
    calls = [w("a", 0, 1, 10, "a-1"), r("b", 2, 3, 10, "init")]
    text = str(check(calls)[0])
    assert text.startswith("stale read: ") and "a write s v=10 'a-1' ok" in text


# --------------------------------------------------------------------------- recording


def test_history_records_from_threads() -> None:
    ticks = iter(range(10**6))
    lock = threading.Lock()

    def clock() -> float:
        with lock:
            return float(next(ticks))

    history = History(clock)

    def client(name: str) -> None:
        for i in range(50):
            with history.record(name, WRITE, "s", version=i, value=f"{name}-{i}") as p:
                p.fail(409, "update out of sequence")
            with history.record(name, READ, "s") as p:
                p.ok(i, "init")

    threads = [threading.Thread(target=client, args=(f"c{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    calls = history.calls
    assert len(calls) == 400 and len({c.seq for c in calls}) == 400
    assert all(c.invoke < c.complete for c in calls)
    assert {c.outcome for c in calls if c.op == WRITE} == {FAIL}


def test_an_exception_records_an_unknown_outcome() -> None:
    history = History()
    with pytest.raises(TimeoutError), history.record("a", WRITE, "s", 10, "a-1"):
        raise TimeoutError("timed out")
    (call,) = history.calls
    assert call.outcome is UNKNOWN and "TimeoutError" in call.message


# --------------------------------------------------------------------------- property


class Model:
    """The sequential register, executed at the calls' linearization points."""

    def __init__(self, rnd: random.Random) -> None:
        self.rnd = rnd
        self.version = rnd.randint(1, 50)
        self.value = "init"
        self.states = [(self.version, self.value)]

    def write(self, value: str) -> tuple[int, bool]:
        if self.rnd.random() < 0.7:  # sent the current version
            base = self.version
            self.version += self.rnd.randint(1, 3)
            self.value = value
            self.states.append((self.version, value))
            return base, True
        older = [v for v, _ in self.states if v < self.version]
        return (self.rnd.choice(older) if older else self.version - 1), False

    def bump(self) -> None:  # a write of the cluster's own
        self.version += self.rnd.randint(1, 2)
        self.states.append((self.version, self.value))


def generate(rnd: random.Random) -> tuple[list[Call], Model]:
    """A valid history: clients' calls with random timings, each taking effect at a random
    instant of its interval (unknown writes: any instant after their invoke, or never), the
    results those of the model; then a last client reads, writes, reads and reads."""
    model = Model(rnd)
    planned: list[tuple[float, int, dict[str, object]]] = []  # (point, order, call fields)
    for c in range(rnd.randint(1, 4)):
        t = rnd.uniform(0, 1)
        for i in range(rnd.randint(0, 8)):
            t0 = t + rnd.uniform(0, 1)
            t1 = t0 + rnd.uniform(0.01, 2)
            t = t1
            op = WRITE if rnd.random() < 0.5 else READ
            fields: dict[str, object] = {"client": f"c{c}", "op": op, "invoke": t0, "complete": t1}
            fields["unknown"] = rnd.random() < 0.25
            point: float | None = rnd.uniform(t0, t1)
            if op == WRITE:
                fields["value"] = f"c{c}-{i}"
                if fields["unknown"]:
                    point = None if rnd.random() < 0.3 else t0 + rnd.uniform(0, 3 * (t1 - t0))
            planned.append((point if point is not None else -1.0, len(planned), fields))
    for _ in range(rnd.randint(0, 3)):
        planned.append((rnd.uniform(0, 10), len(planned), {"op": "bump"}))
    times = [p[0] for p in planned] + [float(f.get("complete", 0.0)) for _, _, f in planned]
    end = max(times, default=0.0) + 1
    last = [(READ, 0), (WRITE, 1), (READ, 2), (READ, 3)]
    for op, i in last:
        f = {"client": "z", "op": op, "invoke": end + i, "complete": end + i + 0.5}
        planned.append((end + i + 0.25, len(planned), {**f, "value": f"z-{i}", "unknown": False}))
        if op == WRITE:
            planned[-1][2]["sure"] = True
    calls: list[Call] = []
    for point, order, f in sorted(planned, key=lambda p: (p[0], p[1])):
        if f["op"] == "bump":
            model.bump()
            continue
        kw = {"client": f["client"], "service": "s", "invoke": f["invoke"]}
        kw["complete"] = f["complete"]
        outcome = UNKNOWN if f["unknown"] else OK
        if f["op"] == WRITE:
            if point < 0:  # never happened
                base = model.version if rnd.random() < 0.5 else model.version - 1
                done = False
            elif f.get("sure"):
                base, done = model.version, True
                model.version += 1
                model.value = str(f["value"])
                model.states.append((model.version, model.value))
            else:
                base, done = model.write(str(f["value"]))
            if not done and outcome is OK:
                outcome = FAIL
            call = Call(op=WRITE, outcome=outcome, version=base, value=str(f["value"]), **kw)
        elif outcome is OK:
            call = Call(op=READ, outcome=OK, version=model.version, value=model.value, **kw)
        else:
            call = Call(op=READ, outcome=UNKNOWN, **kw)
        calls.append(replace(call, seq=order + 1))
    return calls, model


def inject(kind: str, calls: list[Call], model: Model, rnd: random.Random) -> set[Kind]:
    """Change `calls` in place so that they show one anomaly; the kinds that may report it."""
    reads = [c for c in calls if c.op == READ and c.outcome is OK]
    acked = [c for c in calls if c.op == WRITE and c.outcome is OK]
    value_at = dict(model.states)
    if kind == "stale":
        wr, rd = rnd.choice([(x, y) for x in acked for y in reads if x.complete < y.invoke])
        calls[calls.index(rd)] = replace(rd, version=wr.version, value=value_at[wr.version])
        return {Kind.STALE_READ, Kind.BACKWARDS}
    if kind == "lost":
        pairs = [(x, y) for x in acked for y in reads if x.complete < y.invoke]
        wr, rd = rnd.choice([(x, y) for x, y in pairs if y.value == x.value])
        calls[calls.index(rd)] = replace(rd, value=value_at[wr.version])
        return {Kind.LOST_WRITE}
    if kind == "same version":
        wr = rnd.choice(acked)
        t0 = rnd.uniform(0, wr.complete)
        calls.append(replace(wr, client="intruder", value="intruder", invoke=t0, seq=10**6))
        return {Kind.SAME_VERSION}
    assert kind == "backwards"
    pairs = [
        (x, y)
        for x in reads
        for y in reads
        if x.client == y.client and x.complete < y.invoke and _v(x) > model.states[0][0]
    ]
    first, then = rnd.choice(pairs)
    version, value = rnd.choice([s for s in model.states if s[0] < _v(first)])
    calls[calls.index(then)] = replace(then, version=version, value=value)
    return {Kind.BACKWARDS}


def _v(c: Call) -> int:
    assert c.version is not None
    return c.version


@settings(max_examples=300, deadline=None)
@given(rnd=st.randoms(use_true_random=False))
def test_valid_histories_are_accepted(rnd: random.Random) -> None:
    calls, _ = generate(rnd)
    assert check(calls) == [], "\n".join(map(str, calls))
    assert check(calls, real_time_reads=False) == []


@settings(max_examples=300, deadline=None)
@given(
    rnd=st.randoms(use_true_random=False),
    kind=st.sampled_from(["stale", "lost", "same version", "backwards"]),
)
def test_an_injected_anomaly_is_found(rnd: random.Random, kind: str) -> None:
    calls, model = generate(rnd)
    expected = inject(kind, calls, model, rnd)
    found = {v.kind for v in check(calls)}
    assert found & expected, (kind, found, "\n".join(map(str, calls)))
