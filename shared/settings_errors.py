"""Messages for bad settings that a parent can act on: what is wrong, and the real flag and
environment variable that set it (both derived from the model, :mod:`.settings_model`).

* :func:`describe` turns a pydantic ``ValidationError`` into lines like
  ``- influx.batch: Input should be greater than or equal to 1 (got 0)`` /
  ``set it with --influx-batch or NURSERYCRY_HUB_INFLUX__BATCH``; an unknown key
  names the nearest real setting.
* :func:`environment_problems` rejects ``<PREFIX>*`` variables that set nothing
  (a typo would otherwise be ignored) and JSON that does not parse.
* :func:`conflict` is what a model validator raises when settings disagree, so the
  message can name every setting involved.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from pydantic import BaseModel, SecretStr, ValidationError
from pydantic_core import PydanticCustomError

from .settings_model import (
    env_name,
    env_path,
    env_prefix,
    kind_of,
    nearest_env,
    nearest_path,
    owner,
    settings_of,
    unwrap,
)


def conflict(message: str, *settings: str) -> PydanticCustomError:
    """An error of settings that disagree; ``settings`` are paths relative to the model
    raising it (``"file"``, ``"stdin"``), named with their flags in the message."""
    template = message.replace("{", "{{").replace("}", "}}")
    return PydanticCustomError("conflict", template, {"settings": settings})


def how_to_set(cls: type[BaseModel], path: Sequence[str], config_file: Path | None) -> str:
    """``set it with --flag or ENV_VAR [or in FILE]`` for a setting path."""
    where = f" or in {config_file}" if config_file else ""
    setting, kind = owner(cls, path), kind_of(cls, path)
    if setting is not None and kind is not None:  # a setting, or a part of a dict setting
        flag_json = " (JSON)" if setting.value_model is not None else ""
        env_json = " (JSON)" if kind == "section" else ""
        return f"set it with {setting.flag}{flag_json} or {env_name(cls, path)}{env_json}{where}"
    inner = [s for s in settings_of(cls) if tuple(s.path[: len(path)]) == tuple(path)]
    if inner:  # a whole section: name one of its settings as an example
        return (
            f"set its values with flags like {inner[0].flag} or variables like "
            f"{inner[0].env}{where} (see --help)"
        )
    return f"see --help for every setting{where}"


def describe(cls: type[BaseModel], exc: ValidationError, config_file: Path | None) -> str:
    """A readable, actionable multi-line message for a settings error."""
    lines = [f"invalid configuration ({exc.error_count()} problem(s)):"]
    for err in exc.errors(include_url=False):
        loc = tuple(str(p) for p in err["loc"])
        dotted = ".".join(loc) or "settings"
        if err["type"] == "extra_forbidden":
            near = nearest_path(cls, loc)
            guess = f"; did you mean {'.'.join(near)}?" if near else ""
            lines.append(f"  - {dotted}: unknown setting{guess}")
            lines.append("    " + how_to_set(cls, near or (), config_file))
            continue
        given = err.get("input")
        setting = owner(cls, loc)
        secret = setting is not None and unwrap(setting.field.annotation) is SecretStr
        hidden = secret or isinstance(given, dict | list) or given is None
        shown = "" if hidden else f" (got {given!r})"  # a password is never echoed
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"  - {dotted}: {msg}{shown}")
        involved = (err.get("ctx") or {}).get("settings") or ("",)
        for rel in involved:
            path = loc + tuple(p for p in str(rel).split(".") if p)
            lines.append("    " + how_to_set(cls, path, config_file))
    return "\n".join(lines)


def environment_problems(cls: type[BaseModel], environ: Mapping[str, str]) -> list[str]:
    """One line per ``<PREFIX>*`` variable that sets nothing or holds JSON that does not parse."""
    prefix = env_prefix(cls).upper()
    out = []
    for name in sorted(environ):
        path = env_path(cls, name) if name.upper().startswith(prefix) else None
        if path is None:
            continue
        kind = kind_of(cls, path)
        if kind is None:
            near = nearest_env(cls, name)
            setting = owner(cls, env_path(cls, near) or ())
            flag = f" (flag {setting.flag})" if setting is not None else ""
            out.append(f"  - {name}: no such setting; did you mean {near}{flag}?")
        elif kind == "section":
            try:
                json.loads(environ[name])
            except ValueError as exc:
                out.append(
                    f"  - {name}: not valid JSON ({exc}); give a JSON object with the keys "
                    f"it has in a --config file; {how_to_set(cls, path, None)}"
                )
    return out
