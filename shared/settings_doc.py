"""The README settings tables, generated from the settings models.

A README marks where a role's table goes::

    <!-- settings-table nurserycry.hub.settings:HubSettings -->
    ... (generated) ...
    <!-- /settings-table -->

``python -m nurserycry.shared.settings_doc hub/README.md edge/README.md demo/README.md``
rewrites every marked table; ``tests/test_settings_cli.py`` fails when one is out of date.
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel

from .settings_cli import bounds, default_text
from .settings_model import settings_of

BLOCK = re.compile(
    r"(<!-- settings-table (?P<target>[\w.]+:\w+) -->\n)(?P<body>.*?)(<!-- /settings-table -->)",
    re.S,
)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_table(cls: type[BaseModel]) -> str:
    """A Markdown table: one row per setting, with its flag, variable, default and bounds."""
    rows = [
        "| setting | flag | environment | default | what |",
        "| --- | --- | --- | --- | --- |",
    ]
    for s in settings_of(cls):
        flags = ", ".join(f"`{f}`" for f in s.flags)
        env = f"`{s.env}`" + (" (JSON)" if s.value_model is not None else "")
        what = s.field.description or ""
        limits = bounds(s)
        if limits:
            what += f" ({limits})"
        rows.append(
            f"| `{s.dotted}` | {flags} | {env} | `{_cell(default_text(s))}` | {_cell(what)} |"
        )
    return "\n".join(rows) + "\n"


def _model(target: str) -> type[BaseModel]:
    module, name = target.split(":")
    cls: type[BaseModel] = getattr(importlib.import_module(module), name)
    return cls


def update(text: str) -> str:
    """``text`` with every marked settings table regenerated."""
    return BLOCK.sub(lambda m: m[1] + render_table(_model(m["target"])) + m[4], text)


def targets(text: str) -> list[str]:
    """The models whose tables ``text`` holds (``module:Class``)."""
    return [m["target"] for m in BLOCK.finditer(text)]


def main(argv: Sequence[str] | None = None) -> int:
    for name in sys.argv[1:] if argv is None else argv:
        path = Path(name)
        path.write_text(update(path.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
