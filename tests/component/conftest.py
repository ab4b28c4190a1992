"""Component tests: the real loops (orchestrator, scheduler, allocator, reaper, dispatcher,
workers) in one process on `shoal.testing` — `MemoryStore`, `FakeEngine`s, one `MockClock` —
under looptime (virtual time: no test sleeps on real time, and every run gives the same
result however loaded the machine is)."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/component/" in str(item.fspath):
            item.add_marker(pytest.mark.looptime)
            item.add_marker(pytest.mark.timeout(60))
