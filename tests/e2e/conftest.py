"""Fixtures shared by the end-to-end modules (each module defines its own `cli`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support import Cli


@pytest.fixture
def cleanup(cli: Cli) -> Iterator[list[str]]:
    """Services named here are removed after the test, whatever happened."""
    names: list[str] = []
    yield names
    if names:
        cli.rm(*names)
