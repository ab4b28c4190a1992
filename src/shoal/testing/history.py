"""Histories of concurrent calls on services, and a checker of what they may show.

High-availability tests have clients update and read services against several managers while
managers die. Every call is recorded as a `Call` in a `History` (`History.record`, or
`shoal.testing.recorder.Recorder` for the Docker API); `check(history)` then says which
`Violation`s the history shows. `check` is pure (no I/O); `History` reads only the clock it
is given (`time.monotonic` unless told).

The model. Each service is one register whose state is a pair (version, value): the
service's `Version.Index` and a value its spec carries (a label `writer=<client>-<seq>`).

* A write `POST /services/{id}/update?version=b` with value x is a compare-and-swap: if the
  register's version is b, it takes value x and a version c > b (the store's next revision,
  which the client is not told); otherwise it is refused and changes nothing.
* The cluster itself may write the service (the allocator, the orchestrator's update status):
  such a write raises the version and keeps the value. Versions never go down.
* A read `GET /services/{id}` returns the state at one instant.
* Each call takes effect at one instant between its invoke and its complete (linearizability).
  A write with an unknown outcome (timeout, connection lost, an answer that does not say, such
  as 5xx) may take effect at any instant after its invoke, even after the client gave up, or
  never; a refused write (`Outcome.FAIL`: 400, 404, 409 out of sequence) never takes effect.
* Values are unique: no two writes carry the same value, and none carries the service's
  initial value (`check` raises ValueError when two writes share one). A value that no write
  carries is the initial one. So a value seen in a read names the write that put it there.

A write *took effect* when it was acknowledged, or when a read shows its value. The checks,
per service (a violation names the calls that show it):

* `SAME_VERSION` — two writes that took effect were sent the same version.
* `IMPOSSIBLE_READ` — a read shows the value of a refused write, or a write's value at a
  version not above the one it was sent, or a value whose write was invoked after the read
  completed, or two reads show different values at one version.
* `STALE_READ` — a read returns a version below a floor set before it was invoked: an
  acknowledged write sent version b sets the floor b + 1; a read that returned version v sets
  v (with ``real_time_reads=False`` only writes set floors: per-client order still holds).
* `BACKWARDS` — a read returns a version below one an earlier read of the same client returned.
* `LOST_WRITE` — a read (at or above every floor) shows a value y other than the value x of a
  floor set before it, and y is not the value of a write sent a version at or above that
  floor: x was acknowledged (or seen) and then lost, not overwritten by a later write.

A floor is what is known from an instant on: after an acknowledged write sent version b
completes, the register is at b + 1 or above, holding its value or a later write's; after a
read of (v, x) completes, at v or above, holding x or a later write's.

These are necessary conditions of linearizability for this register, checked in one sweep
(O(n log n)), not a search for one order of all calls: refused writes are taken as refused
(the cluster may have raised the version meanwhile), and a history could pass that no single
order explains. Acknowledged writes nobody reads after are not checked: end a history with a
read of every service once all clients have stopped (that read is "the final state").
"""

from __future__ import annotations

import contextlib
import enum
import heapq
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

READ = "read"
WRITE = "write"


class Outcome(enum.Enum):
    OK = "ok"  # acknowledged (a write happened; a read returned a state)
    FAIL = "fail"  # refused: certainly had no effect
    UNKNOWN = "unknown"  # timeout, connection error, ambiguous answer: may or may not happen


@dataclass(frozen=True)
class Call:
    """One call of one client. `version` is the version sent by a write (`?version=`) and the
    version returned by a read; `value` is the value written, or the one read."""

    client: str
    op: str  # READ or WRITE
    service: str
    invoke: float
    complete: float
    outcome: Outcome
    version: int | None = None
    value: str | None = None
    status: int | None = None  # the HTTP status, if an answer came
    message: str = ""  # the error message, if any
    seq: int = 0  # order of invocation in the history

    def __str__(self) -> str:
        what = f"{self.client} {self.op} {self.service} v={self.version} {self.value!r}"
        answer = self.outcome.value + (f" {self.status}" if self.status else "")
        answer += f" {self.message!r}" if self.message else ""
        return f"#{self.seq} {what} {answer} [{self.invoke:.3f}..{self.complete:.3f}]"


class Kind(enum.Enum):
    LOST_WRITE = "lost write"
    SAME_VERSION = "two writes on one version"
    STALE_READ = "stale read"
    BACKWARDS = "versions going backwards"
    IMPOSSIBLE_READ = "impossible read"


@dataclass(frozen=True)
class Violation:
    kind: Kind
    what: str
    calls: tuple[Call, ...]

    def __str__(self) -> str:
        return f"{self.kind.value}: {self.what}\n" + "\n".join(f"  {c}" for c in self.calls)


@dataclass
class Pending:
    """A call between invoke and complete; set its answer with `ok`, `fail` or `unknown`
    (left unset, it completes with an unknown outcome)."""

    call: Call
    answer: dict[str, Any] = field(default_factory=dict)

    def ok(self, version: int | None = None, value: str | None = None) -> None:
        self.answer = {"outcome": Outcome.OK, "status": 200}
        if self.call.op == READ:
            self.answer.update(version=version, value=value)

    def fail(self, status: int | None = None, message: str = "") -> None:
        self.answer = {"outcome": Outcome.FAIL, "status": status, "message": message}

    def unknown(self, status: int | None = None, message: str = "") -> None:
        self.answer = {"outcome": Outcome.UNKNOWN, "status": status, "message": message}


class History:
    """Calls as clients make them, from any thread."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._seq = 0
        self._calls: list[Call] = []

    @property
    def calls(self) -> list[Call]:
        with self._lock:
            return sorted(self._calls, key=lambda c: c.seq)

    def invoke(
        self,
        client: str,
        op: str,
        service: str,
        version: int | None = None,
        value: str | None = None,
    ) -> Pending:
        assert op in (READ, WRITE), op
        with self._lock:  # the order of `seq` is that of the invoke times
            self._seq += 1
            seq = self._seq
            now = self.clock()
        call = Call(client, op, service, now, now, Outcome.UNKNOWN, version, value, seq=seq)
        return Pending(call)

    def complete(self, pending: Pending) -> Call:
        call = replace(pending.call, complete=self.clock(), **pending.answer)
        with self._lock:
            self._calls.append(call)
        return call

    @contextlib.contextmanager
    def record(
        self,
        client: str,
        op: str,
        service: str,
        version: int | None = None,
        value: str | None = None,
    ) -> Iterator[Pending]:
        """``with history.record("c1", WRITE, sid, version=12, value="c1-3") as p: … p.ok()``.
        An exception out of the block records an unknown outcome and propagates."""
        pending = self.invoke(client, op, service, version, value)
        try:
            yield pending
        except BaseException as e:
            pending.unknown(message=f"{type(e).__name__}: {e}")
            raise
        finally:
            self.complete(pending)


# --------------------------------------------------------------------------- the checker


def check(history: History | Iterable[Call], *, real_time_reads: bool = True) -> list[Violation]:
    """Every violation of the model (module docstring) in the history, service by service."""
    calls = history.calls if isinstance(history, History) else sorted(history, key=_by_seq)
    by_service: dict[str, list[Call]] = defaultdict(list)
    for c in calls:
        by_service[c.service].append(c)
    found: list[Violation] = []
    for service_calls in by_service.values():
        found += _check_register(service_calls, real_time_reads)
    return found


def _by_seq(c: Call) -> tuple[float, int]:
    return (c.invoke, c.seq)


@dataclass(frozen=True)
class _Floor:
    version: int  # the register's version is at least this from `since` on
    value: str | None  # … and its value was this at that version
    since: float
    call: Call


def _check_register(calls: list[Call], real_time_reads: bool) -> list[Violation]:
    writes = [c for c in calls if c.op == WRITE]
    reads = [c for c in calls if c.op == READ and c.outcome is Outcome.OK]
    writer: dict[str | None, Call] = {}
    for w in writes:
        if w.value in writer:
            raise ValueError(f"two writes carry the value {w.value!r}: {writer[w.value]}, {w}")
        writer[w.value] = w
    found: list[Violation] = []

    # A read's own evidence, and reads that disagree on one version.
    impossible: set[int] = set()
    at_version: dict[int | None, dict[str | None, Call]] = defaultdict(dict)
    for r in reads:
        at_version[r.version].setdefault(r.value, r)
        source = writer.get(r.value)
        why = None
        if source is None:
            continue
        if source.outcome is Outcome.FAIL:
            why = "a read shows the value of a refused write"
        elif _v(r) <= _v(source):
            why = f"a read shows a write's value at version {r.version}, not above {source.version}"
        elif r.complete < source.invoke:
            why = "a read shows the value of a write invoked after the read completed"
        if why:
            impossible.add(r.seq)
            found.append(Violation(Kind.IMPOSSIBLE_READ, why, (r, source)))
    for version, values in at_version.items():
        if len(values) > 1:
            what = f"reads show {len(values)} values at version {version}"
            found.append(Violation(Kind.IMPOSSIBLE_READ, what, tuple(values.values())))

    # Writes that took effect: acknowledged, or seen.
    seen = {r.value for r in reads}
    effective: dict[int | None, list[Call]] = defaultdict(list)
    for w in writes:
        if w.outcome is Outcome.OK or (w.outcome is Outcome.UNKNOWN and w.value in seen):
            effective[w.version].append(w)
    for version, ws in effective.items():
        if len(ws) > 1:
            what = f"{len(ws)} writes took effect on version {version}"
            found.append(Violation(Kind.SAME_VERSION, what, tuple(ws)))

    # Floors in real time, swept in order of the reads' invocations.
    floors = [_Floor(_v(w) + 1, w.value, w.complete, w) for w in writes if w.outcome is Outcome.OK]
    if real_time_reads:
        floors += [_Floor(_v(r), r.value, r.complete, r) for r in reads]
    floors.sort(key=lambda f: f.since)
    top = _Top()
    running: dict[str, list[tuple[float, int, Call]]] = defaultdict(list)  # a client's reads
    mine: dict[str, Call] = {}  # the client's completed read with the highest version
    i = 0
    for r in sorted(reads, key=_by_seq):
        while i < len(floors) and floors[i].since < r.invoke:
            top.add(floors[i])
            i += 1
        earlier = running[r.client]
        while earlier and earlier[0][0] < r.invoke:
            done = heapq.heappop(earlier)[2]
            if r.client not in mine or _v(done) > _v(mine[r.client]):
                mine[r.client] = done
        heapq.heappush(earlier, (r.complete, r.seq, r))
        if r.seq in impossible:
            continue
        v = _v(r)
        before = mine.get(r.client)
        if before is not None and v < _v(before):
            what = f"{r.client} read version {v} after reading {before.version}"
            found.append(Violation(Kind.BACKWARDS, what, (before, r)))
            continue
        best = top.first
        if best is not None and v < best.version:
            what = f"a read returned version {v}, below {best.version} known before it started"
            found.append(Violation(Kind.STALE_READ, what, (best.call, r)))
            continue
        other = top.best_other_than(r.value)
        source = writer.get(r.value)
        base = _v(source) if source is not None else None
        if other is not None and (base is None or base < other.version):
            lost = writer.get(other.value)
            by = f"#{source.seq}, sent version {base}" if source is not None else "no write"
            what = (
                f"{other.value!r}, there at version {other.version} or later, was replaced by "
                f"{r.value!r}, written by {by}"
            )
            culprits = tuple(dict.fromkeys(c for c in (lost, other.call, r) if c is not None))
            found.append(Violation(Kind.LOST_WRITE, what, culprits))
    return found


def _v(c: Call) -> int:
    return c.version if c.version is not None else -1


class _Top:
    """The highest floor so far, and the highest whose value differs from the first's."""

    def __init__(self) -> None:
        self.first: _Floor | None = None
        self.second: _Floor | None = None

    def add(self, f: _Floor) -> None:
        first, second = self.first, self.second
        if first is None or (f.value == first.value and f.version > first.version):
            self.first = f
        elif f.value == first.value:
            pass
        elif f.version > first.version:
            self.first, self.second = f, first
        elif second is None or f.version > second.version:
            self.second = f

    def best_other_than(self, value: str | None) -> _Floor | None:
        if self.first is not None and self.first.value == value:
            return self.second
        return self.first
