"""Lint as a test: ``ruff check`` with the rules of ``[tool.ruff]`` in pyproject.toml."""
from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHECKED = ["aionvme", "tests", "benchmarks", "examples"]


def _ruff() -> list[str]:
    if importlib.util.find_spec("ruff") is not None:
        return [sys.executable, "-m", "ruff"]
    exe = shutil.which("ruff")
    if exe is not None:
        return [exe]
    pytest.skip("ruff is not installed ('make test' installs it: pip install ruff)")


def test_ruff_check() -> None:
    paths = [p for p in CHECKED if (ROOT / p).is_dir()]
    proc = subprocess.run([*_ruff(), "check", "--no-cache", "--output-format", "concise", *paths],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"ruff check found problems:\n{proc.stdout}{proc.stderr}"


def test_mypy() -> None:
    """Type-check the package against its annotations and the native core's stub
    (aionvme/_core.pyi); the options are in pyproject.toml [tool.mypy]."""
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed ('make test' installs it: pip install mypy)")
    proc = subprocess.run([sys.executable, "-m", "mypy", "aionvme"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"mypy found problems:\n{proc.stdout}{proc.stderr}"
