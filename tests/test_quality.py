"""The code-quality gates run as part of the test suite: ruff and mypy --strict."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    found = BIN / name
    if found.exists():
        return str(found)
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed (pip install -e '.[dev]')")
    return path


def _run(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)


def test_ruff_lint() -> None:
    out = _run([_tool("ruff"), "check", "--output-format", "concise", "."])
    assert out.returncode == 0, out.stdout + out.stderr


def test_ruff_format() -> None:
    out = _run([_tool("ruff"), "format", "--check", "."])
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.slow
def test_mypy_strict() -> None:
    env = {**os.environ, "PYTHON": sys.executable}
    out = _run(["bash", str(ROOT / ".ci" / "typecheck")], env=env)
    assert out.returncode == 0, out.stdout + out.stderr
