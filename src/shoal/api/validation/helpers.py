"""Reading a decoded JSON body leniently (a field that is absent or of the wrong kind reads as
the empty value: stage 1 has reported the wrong kinds already), and comparing API versions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _obj(v: Any) -> Mapping[str, Any]:
    return v if isinstance(v, Mapping) else {}


def _list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else []


def _text(v: Any) -> str:
    return v if isinstance(v, str) else ""


def _num(v: Any) -> int | float:
    return v if isinstance(v, int | float) and not isinstance(v, bool) else 0


def _version_ge(v: str, want: str) -> bool:
    def parts(s: str) -> tuple[int, ...]:
        return tuple(int(p) if p.isdigit() else 0 for p in s.split("."))

    return parts(v) >= parts(want)
