"""kprod ships ``py.typed``, so its annotations are a promise: mypy must accept the package.

Skipped when mypy is not installed, except under CI (``CI=true``), where the test extras
install it and a missing mypy fails the run.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "kprod"


def test_mypy_accepts_the_package(tmp_path: Path) -> None:
    if importlib.util.find_spec("mypy") is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("mypy is not installed; CI installs it with the test extras (pip install -e '.[test]')")
        pytest.skip("mypy is not installed")
    assert (SRC / "py.typed").is_file()
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "cache"), str(SRC)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
