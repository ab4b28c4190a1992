"""Reporting: numbers as the tables print them, values and medians over rounds, time
ratios, and the plain-text table every benchmark prints."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from typing import Any

NAMES = {"shoal": "shoal", "docker": "Docker swarm"}


def fmt(v: Any, unit: str = "s") -> str:
    """A cell: — for None; floats with 2 decimals (1 for MiB and %); the unit after."""
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.1f}{unit}" if unit.endswith(("MiB", "%")) else f"{v:.2f}{unit}"
    return f"{v}{unit}"


def dig(r: dict[str, Any], path: str) -> Any:
    """`r["a"]["b"]` for path `a.b`; None where a level is missing."""
    cur: Any = r
    for part in path.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def values(rounds: list[dict[str, Any]], path: str) -> list[float]:
    """The numbers at path in the rounds that did not fail."""
    vals = [dig(r, path) for r in rounds if not r.get("error")]
    return [v for v in vals if isinstance(v, int | float) and not isinstance(v, bool)]


def median_at(rounds: list[dict[str, Any]], path: str) -> float | None:
    """The median of the numbers at path over the rounds that did not fail."""
    nums = values(rounds, path)
    return round(statistics.median(nums), 3) if nums else None


def spread(each: Sequence[float], spec: str = ".2f") -> str:
    """` (min–max)` over the rounds, if there were more than one."""
    return f" ({min(each):{spec}}–{max(each):{spec}})" if len(each) > 1 else ""


def ratio(other: float | None, shoal: float | None) -> float | None:
    """other / shoal (a time ratio: > 1, shoal is faster); None without both."""
    if not other or not shoal:
        return None
    return round(other / shoal, 2)


def print_table(rows: Sequence[Sequence[str]]) -> None:
    """The header row, a rule, the rows: labels left-aligned, cells right-aligned."""
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    print()
    for i, row in enumerate(rows):
        print("  ".join(c.ljust(w) if j == 0 else c.rjust(w)
                        for j, (c, w) in enumerate(zip(row, widths, strict=True))))  # fmt: skip
        if i == 0:
            print("  ".join("-" * w for w in widths))
    print()


def median_rows(
    rounds: dict[str, list[dict[str, Any]]],
    spec: Sequence[tuple[str, str, bool]],
    label: Callable[[str], str],
    unit: Callable[[str], str] = lambda _path: "s",
    spread_spec: str = ".2f",
    spread_all: bool = False,
) -> tuple[list[list[str]], dict[str, Any]]:
    """The header (the systems, and "Docker / shoal" when both ran), then per (label, path,
    timing) of spec: each system's median over its rounds with the spread (of timings, or
    ``spread_all``) and, for timings, the time ratio. → the rows, the ratios by path."""
    systems = list(rounds)
    both = {"shoal", "docker"} <= set(systems)
    rows = [["", *[NAMES[s] for s in systems], *(["Docker / shoal"] if both else [])]]
    ratios: dict[str, Any] = {}
    for text, path, timing in spec:
        cells = [label(text)]
        meds = {}
        for s in systems:
            meds[s] = median_at(rounds[s], path)
            each = spread(values(rounds[s], path), spread_spec) if timing or spread_all else ""
            cells.append(fmt(meds[s], unit(path)) + each)
        if both:
            ratios[path] = ratio(meds.get("docker"), meds.get("shoal")) if timing else None
            cells.append(fmt(ratios[path], "×"))
        rows.append(cells)
    return rows, ratios


def print_medians_note(rounds: int) -> None:
    if rounds > 1:
        print(f"medians over {rounds} rounds (min–max in brackets); Docker / shoal: time "
              "ratio, > 1: shoal faster\n")  # fmt: skip


def percentile(vals: Sequence[float], p: float) -> float | None:
    """The p-th percentile (0–100) by linear interpolation between the closest ranks (with
    few values, p99 is close to the maximum); None for no values."""
    if not vals:
        return None
    xs = sorted(vals)
    k = (len(xs) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return round(xs[lo] + (xs[hi] - xs[lo]) * (k - lo), 4)
