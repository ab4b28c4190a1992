"""The house rules that tools check: the import contracts of pyproject.toml (layers run one
way, nothing depends on the test kit, no import cycles) and the type checker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def run(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / tool), *args], cwd=REPO, capture_output=True, text=True, timeout=300
    )


def test_import_contracts_are_kept() -> None:
    proc = run("lint-imports", "--no-cache")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


def test_types_check() -> None:
    proc = run("mypy")
    assert proc.returncode == 0, proc.stdout + proc.stderr
