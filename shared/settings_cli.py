"""Command-line flags and ``--help`` generated from a role's settings model.

Every setting (:func:`.settings_model.settings_of`) gets a flag named after its
path (``influx.url`` -> ``--influx-url``) plus the model's ``cli_shortcuts``
(``--broker``); its help shows the description, the bounds, the default and the
environment variable. A false-by-default switch is a bare flag (``--fast``), a
true-by-default one is its negation (``--no-detections``); a ``dict`` setting
takes JSON. Every parser also has ``--config FILE`` and ``--validate-config``
(print the effective settings, secrets hidden, and exit 0; or the errors, exit 2).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

import yaml
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from .config import RoleSettings
from .errors import ConfigError
from .settings_model import Setting, env_prefix, settings_of, unwrap

S = TypeVar("S", bound=RoleSettings)
_DEST = "setting:"  # argparse dest of a setting's flag: "setting:" + dotted path


_OPS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}  # pydantic's constraint metadata


def bounds(setting: Setting) -> str:
    """``1 to 50000``, ``> 0, <= 60``, ``auto | on | off``, ``at most 200 characters`` or ``""``."""
    inner = unwrap(setting.field.annotation)
    if get_origin(inner) is Literal:
        return " | ".join(str(a) for a in get_args(inner))
    meta = setting.field.metadata
    found = {op: getattr(m, op) for m in meta for op in _OPS if getattr(m, op, None) is not None}
    if "ge" in found and "le" in found:
        parts = [f"{found['ge']} to {found['le']}"]
    else:
        parts = [f"{_OPS[op]} {value}" for op, value in found.items()]
    parts += [f"at most {m.max_length} characters" for m in meta if getattr(m, "max_length", None)]
    parts += [f"matching {m.pattern}" for m in meta if getattr(m, "pattern", None)]
    return ", ".join(parts)


def default_text(setting: Setting) -> str:
    field = setting.field
    if field.is_required():
        return "required"
    factory = field.default_factory
    value = factory() if factory is not None else field.default  # type: ignore[call-arg]
    if value is None or value is PydanticUndefined:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, Path) and value.is_relative_to(Path.home()):
        return f"~/{value.relative_to(Path.home())}"  # the same text on every machine
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if isinstance(value, dict | list):
        return json.dumps(value) if value else "none"
    return str(value)


def help_text(setting: Setting) -> str:
    what = setting.field.description or setting.dotted
    if setting.negated:
        what = f"turn off: {what}"
    default = default_text(setting)
    notes = [bounds(setting)]
    if not (default == "none" and "unset" in what):  # the description says what unset means
        notes.append(f"default {default}")
    shown = f"{what} ({'; '.join(n for n in notes if n)})" if any(notes) else what
    env = setting.env
    if setting.value_model is not None:
        env += f", or one value per variable: {setting.env}__<NAME>__..."
    return f"{shown} [env {env}]".replace("%", "%%")


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"a JSON object is needed, not {text!r}")
    return value


def _metavar(setting: Setting) -> str:
    if setting.value_model is not None:
        return "JSON"
    inner = unwrap(setting.field.annotation)
    if inner is Path:
        return "PATH"
    if get_origin(inner) is Literal:
        return "{" + ",".join(str(a) for a in get_args(inner)) + "}"
    return {int: "N", float: "NUMBER"}.get(inner, "TEXT")


def build_parser(
    cls: type[RoleSettings], prog: str, description: str, epilog: str = ""
) -> argparse.ArgumentParser:
    """An argparse parser with one flag per setting of ``cls`` (none given: None)."""
    prefix = env_prefix(cls)
    p = argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog=(epilog + " " if epilog else "")
        + f"Flags win over {prefix}* variables, which win over --config, which wins over "
        "the defaults. Nested settings use '__' in variables and nest in the file "
        "(mqtt: {broker: ...}).",
    )
    p.add_argument(
        "--config", type=Path, metavar="FILE", help="YAML or TOML file with these settings"
    )
    p.add_argument(
        "--validate-config",
        action="store_true",
        help="print the effective settings (secrets hidden) and exit 0, or the errors and exit 2",
    )
    groups = {"": p.add_argument_group("settings")}
    for s in settings_of(cls):
        section = s.path[0] if len(s.path) > 1 else ""
        if section not in groups:
            groups[section] = p.add_argument_group(f"{section} settings")
        kw: dict[str, Any] = {"dest": _DEST + s.dotted, "default": None, "help": help_text(s)}
        if s.is_bool:
            kw.update(action="store_const", const=not s.negated)
        else:
            kw.update(metavar=_metavar(s), type=_json_object if s.value_model else str)
        groups[section].add_argument(*s.flags, **kw)
    return p


def flag_overrides(values: Mapping[str, Any]) -> dict[str, Any]:
    """Values keyed by dotted setting path (``"mqtt.broker"``) -> nested overrides for
    :meth:`RoleSettings.load`; ``None`` (flag not given) is skipped."""
    out: dict[str, Any] = {}
    for path, value in values.items():
        if value is None:
            continue
        *parents, leaf = path.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def load_args(cls: type[S], args: argparse.Namespace) -> S:
    """The settings a parsed command line gives (raises ConfigError)."""
    values = {k.removeprefix(_DEST): v for k, v in vars(args).items() if k.startswith(_DEST)}
    return cls.load(args.config, **flag_overrides(values))


def effective_config(settings: BaseModel) -> str:
    """The settings as a YAML document a --config file could hold (secrets hidden), then
    what unset settings resolve to, as comments (a settings class's ``derived()``)."""
    text = yaml.safe_dump(settings.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
    derived = getattr(settings, "derived", None)
    if callable(derived):
        text += "# resolved at start-up (unset above):\n"
        text += "".join(f"#   {key}: {value}\n" for key, value in derived().items())
    return text


def settings_or_exit_code(cls: type[S], args: argparse.Namespace, name: str) -> S | int:
    """Settings to run with, or the exit code once the errors (2) or, for
    ``--validate-config``, the effective settings (0) have been written."""
    try:
        settings = load_args(cls, args)
    except ConfigError as exc:
        sys.stderr.write(f"{name}: {exc}\n")
        return 2
    if args.validate_config:
        sys.stdout.write(f"# {name}: configuration is valid; effective settings:\n")
        sys.stdout.write(effective_config(settings))
        return 0
    return settings
