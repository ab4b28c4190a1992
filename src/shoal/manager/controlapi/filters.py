"""Docker's `filters` query parameter: `{"key": {"value": true}}` (or the older
`{"key": ["value"]}`), with Docker's matching rules and its error for unknown keys."""

from __future__ import annotations

import json
from typing import Any

from shoal.api.errors import BadRequest


class Filters:
    def __init__(self, values: dict[str, set[str]] | None = None) -> None:
        self.values = values or {}

    @classmethod
    def parse(cls, raw: str | None) -> Filters:
        if not raw:
            return cls()
        try:
            data: Any = json.loads(raw)
        except ValueError as e:
            raise BadRequest(f"invalid filter: {e}") from e
        if not isinstance(data, dict):
            raise BadRequest("invalid filter: expected an object")
        values: dict[str, set[str]] = {}
        for key, v in data.items():
            if isinstance(v, dict):
                values[key] = {k for k, on in v.items() if on}
            elif isinstance(v, list):
                values[key] = {str(x) for x in v}
            else:
                raise BadRequest(f"invalid filter: {key}")
        return cls(values)

    def __contains__(self, key: str) -> bool:
        return key in self.values

    def __getitem__(self, key: str) -> set[str]:
        return self.values.get(key, set())

    def check(self, allowed: set[str]) -> None:
        for key in self.values:
            if key not in allowed:
                raise BadRequest(f"invalid filter '{key}'")

    def match_prefix(self, key: str, value: str) -> bool:
        """ID and name filters match prefixes, as Docker's swarm lists do."""
        wanted = self.values.get(key)
        return not wanted or any(value.startswith(w) for w in wanted)

    def match_exact(self, key: str, value: str | None) -> bool:
        wanted = self.values.get(key)
        return not wanted or value in wanted

    def match_labels(self, labels: dict[str, str] | None, key: str = "label") -> bool:
        """Every `label` filter must hold: `k` (present) or `k=v`."""
        labels = labels or {}
        for f in self.values.get(key, ()):
            name, eq, value = f.partition("=")
            if name not in labels:
                return False
            if eq and labels[name] != value:
                return False
        return True
