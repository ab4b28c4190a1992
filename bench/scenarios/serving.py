"""What the probers saw, merged: replicas answering over time (all, old version, new
version), the moments with fewer than a threshold, each task's first and last answer, the
probe's own failures and quality."""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Any

OLD, NEW = "1", "2"  # whoami:1 → whoami:2


def latest_by_node(lines: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for ln in lines:
        if "s" in ln and (ln["node"] not in out or ln["t"] >= out[ln["node"]]["t"]):
            out[ln["node"]] = ln
    return out


def serving_now(lines: list[dict[str, Any]], nodes: int) -> Counter[str] | None:
    """Versions answering, summed over every node's latest sweep (None: a node not heard)."""
    latest = latest_by_node(lines)
    if len(latest) < nodes:
        return None
    return Counter(v for ln in latest.values() for _, v in ln["s"])


def answer_spans(lines: list[dict[str, Any]]) -> dict[str, tuple[float, float]]:
    """Per task: its first and its last answer (monotonic clock)."""
    spans: dict[str, tuple[float, float]] = {}
    for ln in lines:
        for tid, _ in ln.get("s", []):
            a, b = spans.get(tid, (ln["t"], ln["t"]))
            spans[tid] = (min(a, ln["t"]), max(b, ln["t"]))
    return spans


def serving_series(
    lines: list[dict[str, Any]], nodes: int, t0: float, fill: bool = False
) -> list[list[float]]:
    """[t − t0, serving, serving OLD, serving NEW] after every sweep, once every node has
    reported; a sweep whose container listing failed keeps that node's previous sweep.
    ``fill``: a task that did not answer in time but answered before and after counts as
    serving (the probe's false negatives removed)."""
    spans = answer_spans(lines) if fill else {}
    version = {tid: v for ln in lines for tid, v in ln.get("s", [])}
    latest: dict[str, tuple[int, int, int]] = {}
    out: list[list[float]] = []
    for ln in sorted((x for x in lines if "s" in x), key=lambda x: x["t"]):
        vs = [v for _, v in ln["s"]]
        for tid, _ in ln.get("x", []):
            a, b = spans.get(tid, (0.0, 0.0))
            if a < ln["t"] < b:
                vs.append(version.get(tid, "?"))
        latest[ln["node"]] = (len(vs), vs.count(OLD), vs.count(NEW))
        if len(latest) == nodes:
            tot = [sum(x[i] for x in latest.values()) for i in range(3)]
            out.append([round(ln["t"] - t0, 3), *tot])
    return out


def dips(series: list[list[float]], lo: float, hi: float, threshold: int) -> dict[str, Any]:
    """Within [lo, hi]: the minimum serving, and the intervals with fewer than threshold."""
    before = [p for p in series if p[0] < lo]
    pts = ([[lo, *before[-1][1:]]] if before else []) + [p for p in series if lo <= p[0] <= hi]
    intervals: list[list[float]] = []
    start: float | None = None
    lowest: float | None = None
    for t, n, *_ in pts:
        lowest = n if lowest is None else min(lowest, n)
        if n < threshold and start is None:
            start = t
        elif n >= threshold and start is not None:
            intervals.append([start, t])
            start = None
    if start is not None:
        intervals.append([start, hi])
    lengths = [b - a for a, b in intervals]
    longest = max(range(len(lengths)), key=lambda i: lengths[i]) if lengths else None
    return {
        "min": lowest,
        "longest_s": round(lengths[longest], 3) if longest is not None else 0.0,
        "longest_at": intervals[longest] if longest is not None else None,
        "total_s": round(float(sum(lengths)), 3),
        "count": len(intervals),
        "intervals": [[round(a, 3), round(b, 3)] for a, b in intervals],
    }


def task_serving(lines: list[dict[str, Any]], t0: float) -> dict[str, dict[str, Any]]:
    """Per task: when first and last seen answering (t − t0), with which version."""
    out: dict[str, dict[str, Any]] = {}
    for ln in lines:
        for tid, v in ln.get("s", []):
            rel = round(ln["t"] - t0, 3)
            cur = out.setdefault(tid, {"first": rel, "last": rel, "v": v, "node": ln["node"]})
            cur["first"], cur["last"] = min(cur["first"], rel), max(cur["last"], rel)
    return out


def flaps(lines: list[dict[str, Any]]) -> dict[str, int]:
    """Probe failures of a task between two answers of the same task (it was serving all
    along, as far as one can tell: the probe's false negatives), by reason."""
    spans = answer_spans(lines)
    out: Counter[str] = Counter()
    for ln in lines:
        for tid, why in ln.get("x", []):
            a, b = spans.get(tid, (0.0, 0.0))
            if a < ln["t"] < b:
                out[why] += 1
    return dict(out)


def failures(lines: list[dict[str, Any]], t0: float) -> list[list[Any]]:
    """Every probe that got no answer: [t − t0, node, task id, why] (for the JSON)."""
    out = [
        [round(ln["t"] - t0, 3), ln["node"], tid, why]
        for ln in lines
        for tid, why in ln.get("x", [])
    ]
    out += [[round(ln["t"] - t0, 3), ln["node"], "", ln["err"]] for ln in lines if "err" in ln]
    return sorted(out)


def probe_stats(lines: list[dict[str, Any]]) -> dict[str, Any]:
    """Sweep periods and probe failures: the prober's own quality."""
    per: dict[str, list[float]] = {}
    why: Counter[str] = Counter()
    errors = 0
    sweep: list[float] = []
    for ln in sorted(lines, key=lambda x: x["t"]):
        per.setdefault(ln["node"], []).append(ln["t"])
        errors += "err" in ln
        why.update(w for _, w in ln.get("x", []))
        if "d" in ln:
            sweep.append(ln["d"])
    gaps = [b - a for ts in per.values() for a, b in zip(ts, ts[1:], strict=False)]
    return {
        "sweeps": sum(len(v) for v in per.values()),
        "period_median_s": round(statistics.median(gaps), 3) if gaps else None,
        "period_max_s": round(max(gaps), 3) if gaps else None,
        "probe_median_s": round(statistics.median(sweep), 4) if sweep else None,
        "probe_max_s": round(max(sweep), 4) if sweep else None,
        "list_errors": errors,
        "not_answering": dict(why),
        "flaps": flaps(lines),
    }
