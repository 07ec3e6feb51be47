"""One exception hierarchy: everything NurseryCry raises on purpose has one root."""

from __future__ import annotations

import ast
from pathlib import Path

from nurserycry.shared import errors

ROOT = Path(__file__).resolve().parents[1]
ROLES = ("shared", "edge", "hub", "training", "demo", "bench", "nurserycry")
EVERYWHERE = (*ROLES, "tests")


def test_every_error_class_in_the_tree_derives_from_the_root() -> None:
    """An exception class defined anywhere but ``shared/errors.py`` is a second root."""
    strays = []
    for role in ROLES:
        for path in sorted((ROOT / role).rglob("*.py")) if (ROOT / role).is_dir() else []:
            for node in ast.walk(ast.parse(path.read_text())):
                if path.name == "errors.py" and path.parent.name == "shared":
                    break
                if isinstance(node, ast.ClassDef) and node.name.endswith(("Error", "Exception")):
                    strays.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}")
    assert strays == []
    defined = [v for v in vars(errors).values() if isinstance(v, type) and issubclass(v, Exception)]
    assert len(defined) >= 7
    assert all(issubclass(cls, errors.NurseryCryError) for cls in defined)


def test_version_errors_are_message_errors_and_told_apart_by_class() -> None:
    assert issubclass(errors.UnsupportedVersionError, errors.MessageError)
    assert issubclass(errors.MessageError, ValueError)  # pydantic validators may raise it
    assert issubclass(errors.TopicError, ValueError)
    assert not issubclass(errors.MessageError, errors.ConfigError)


def test_no_error_is_told_apart_by_its_text() -> None:
    """``"words" in str(exc)`` / ``in exc.reason``: the class must say it instead."""
    found = []
    for role in EVERYWHERE:
        for path in sorted((ROOT / role).rglob("*.py")) if (ROOT / role).is_dir() else []:
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Compare) and any(
                    isinstance(op, ast.In | ast.NotIn) for op in node.ops
                ):
                    right = node.comparators[0]
                    text = ast.unparse(right)
                    if text.startswith(("str(exc", "str(e)", "exc.reason", "exc.args")):
                        found.append(f"{path.relative_to(ROOT)}:{node.lineno} {ast.unparse(node)}")
    assert found == []
