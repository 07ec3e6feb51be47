"""The roles import only ``shared``, never each other; only ``demo/`` and ``bench/`` compose.

Every import statement of every module in a role folder is read (absolute and
relative, at module level or inside functions), resolved to a ``nurserycry.*``
module and mapped back to its role.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROLES = ("edge", "hub", "training")  # each may import itself and shared
ALLOWED = {**{role: {role, "shared"} for role in ROLES}, "shared": {"shared"}}


def _imported(path: Path, package: str) -> list[tuple[int, str]]:
    """``(line, module)`` for every import in ``path``, relative ones resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            out.append((node.lineno, module))
    return out


def _role_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "nurserycry" or len(parts) < 2:
        return None
    return parts[1]


def _violations(folder: str) -> list[str]:
    found = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        rel = path.relative_to(ROOT / folder).with_suffix("")
        package = ".".join(["nurserycry", folder, *rel.parts[:-1]])
        for line, module in _imported(path, package):
            role = _role_of(module)
            if role is not None and role not in ALLOWED[folder]:
                found.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return found


@pytest.mark.parametrize("folder", [*ROLES, "shared"])
def test_a_role_imports_only_itself_and_shared(folder: str) -> None:
    assert _violations(folder) == []


def test_the_walker_sees_cross_role_imports(tmp_path: Path) -> None:
    """The check can fail: relative and absolute imports are both resolved."""
    module = tmp_path / "x.py"
    module.write_text(
        "from nurserycry.hub.service import Hub\n"
        "from ...edge import agent\n"
        "def f():\n    import nurserycry.training.cli\n"
    )
    found = [m for _, m in _imported(module, "nurserycry.hub.sub")]
    assert found == ["nurserycry.hub.service", "nurserycry.edge", "nurserycry.training.cli"]
    assert [_role_of(m) for m in found] == ["hub", "edge", "training"]
