"""Which extra a command needs, and the pip command that adds it to *this* install.

NurseryCry is not on PyPI: it is installed from a git checkout, a git URL or a
wheel, so ``pip install 'nurserycry[hub]'`` would fail. :func:`install_command`
names what works here, from where the package was installed (pip's
``direct_url.json``, PEP 610) or the checkout it runs from.
"""

from __future__ import annotations

import importlib.metadata
import json
import shlex
import sys
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

REPOSITORY = "https://github.com/nurserycry/nurserycry"

# command -> the extra its third-party modules come from
COMMAND_EXTRAS = {"edge": "edge", "train": "train", "evaluate": "train"}


def extra_for(command: str) -> str:
    return COMMAND_EXTRAS.get(command, "hub")


def _checkout() -> Path | None:
    """The source tree this package is imported from, if it is one."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / "pyproject.toml").is_file() else None


def _direct_url() -> dict[str, Any] | None:
    try:
        text = importlib.metadata.distribution("nurserycry").read_text("direct_url.json")
    except importlib.metadata.PackageNotFoundError:
        return None
    if not text:
        return None
    try:
        found = json.loads(text)
    except ValueError:
        return None
    return found if isinstance(found, dict) else None


def requirement(extra: str, direct_url: dict[str, Any] | None, checkout: Path | None) -> str:
    """What to give pip for ``nurserycry[extra]`` (with ``-e`` for a checkout)."""
    if checkout is not None:
        return f"-e {shlex.quote(f'{checkout}[{extra}]')}"
    url = str(direct_url.get("url", "")) if direct_url else ""
    if url.startswith("file://") and direct_url is not None and "dir_info" in direct_url:
        path = unquote(urlparse(url).path)
        editable = bool(direct_url["dir_info"].get("editable"))
        return ("-e " if editable else "") + shlex.quote(f"{path}[{extra}]")
    if url and direct_url is not None and "vcs_info" in direct_url:
        vcs = direct_url["vcs_info"].get("vcs", "git")
        return shlex.quote(f"nurserycry[{extra}] @ {vcs}+{url}")
    if url:  # a wheel or sdist file
        return shlex.quote(f"nurserycry[{extra}] @ {url}")
    return shlex.quote(f"nurserycry[{extra}] @ git+{REPOSITORY}")


def install_command(extra: str) -> str:
    """The shell command that installs ``extra`` into the running interpreter's environment."""
    return f"{sys.executable} -m pip install {requirement(extra, _direct_url(), _checkout())}"


def missing_module_message(command: str, module: str) -> str:
    extra = extra_for(command)
    return (
        f"nurserycry {command}: the module {module!r} is missing; it comes with the "
        f"'{extra}' extra. Install it with:\n  {install_command(extra)}"
    )
