"""Walk a role's settings model: every setting with its path, flags and environment variable.

The settings model is the only place a setting is written down. The command-line
flags (:mod:`.settings_cli`), the error messages (:func:`.settings_errors.describe`), the
check of ``NURSERYCRY_*`` variables and the README tables (:mod:`.settings_doc`)
are all derived from it here, so none of them can name a setting that does not
exist.

* A field whose type is a model is a *section* (``mqtt``, ``influx`` ...): its
  fields are settings ``mqtt.broker``, flag ``--mqtt-broker``, environment
  ``<PREFIX>MQTT__BROKER``.
* A ``dict[str, Model]`` field (``nurseries``) is one setting given as JSON
  (``--nurseries``, ``<PREFIX>NURSERIES``); its entries can also be set one
  variable each, ``<PREFIX>NURSERIES__<KEY>__EPISODES__ON_THRESHOLD``.
* Short flags come from the model's ``cli_shortcuts`` (``{"mqtt.broker": "broker"}``,
  the format pydantic-settings uses), for spellings users already have.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

DELIMITER = "__"
KEY_PLACEHOLDER = "<name>"  # a dict key in a path, e.g. nurseries.<name>.episodes.on_threshold


def unwrap(annotation: Any) -> Any:
    """``X | None`` and ``Annotated[X, ...]`` -> ``X``; anything else unchanged."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return unwrap(args[0])
    if get_origin(annotation) is Annotated:
        return unwrap(get_args(annotation)[0])
    return annotation


def section_model(annotation: Any) -> type[BaseModel] | None:
    """The model a field nests (a section), or None for a plain value."""
    inner = unwrap(annotation)
    if isinstance(inner, type) and issubclass(inner, BaseModel):
        return inner
    return None


def mapping_model(annotation: Any) -> type[BaseModel] | None:
    """The value model of a ``dict[str, Model]`` field, else None."""
    inner = unwrap(annotation)
    if get_origin(inner) is dict:
        _key, value = get_args(inner)
        return section_model(value)
    return None


@dataclass(frozen=True)
class Setting:
    """One leaf setting of a role."""

    path: tuple[str, ...]
    field: FieldInfo
    env: str
    flags: tuple[str, ...]  # the generated flag first, then its shortcuts
    value_model: type[BaseModel] | None  # for a dict[str, Model] setting

    @property
    def dotted(self) -> str:
        return ".".join(self.path)

    @property
    def flag(self) -> str:
        """The flag to name in a message: the shortest spelling."""
        return min(self.flags, key=len)

    @property
    def is_bool(self) -> bool:
        return unwrap(self.field.annotation) is bool

    @property
    def negated(self) -> bool:
        """A true-by-default switch: its flag (``--no-...``) turns it off."""
        return self.is_bool and self.field.default is True


def env_prefix(cls: type[BaseModel]) -> str:
    return str(cls.model_config.get("env_prefix", ""))


def env_name(cls: type[BaseModel], path: Sequence[str]) -> str:
    return env_prefix(cls) + DELIMITER.join(path).upper()


def _flag(path: Sequence[str], field: FieldInfo) -> str:
    name = "-".join(path).replace("_", "-")
    if unwrap(field.annotation) is bool and field.default is True:
        return f"--no-{name}"  # the flag changes a setting from its default
    return f"--{name}"


def _shortcuts(cls: type[BaseModel]) -> dict[str, tuple[str, ...]]:
    raw: Mapping[str, str | list[str]] = cls.model_config.get("cli_shortcuts") or {}  # type: ignore[assignment]
    return {k: (v,) if isinstance(v, str) else tuple(v) for k, v in raw.items()}


def _walk(
    model: type[BaseModel], prefix: tuple[str, ...]
) -> Iterator[tuple[tuple[str, ...], FieldInfo]]:
    for name, field in model.model_fields.items():
        path = (*prefix, name)
        nested = section_model(field.annotation)
        if nested is not None:
            yield from _walk(nested, path)
        else:
            yield path, field


def settings_of(cls: type[BaseModel]) -> list[Setting]:
    """Every leaf setting of ``cls``, in the order the model declares them."""
    shortcuts = _shortcuts(cls)
    out = []
    for path, field in _walk(cls, ()):
        short = tuple(f"--{s}" for s in shortcuts.pop(".".join(path), ()))
        out.append(
            Setting(
                path,
                field,
                env_name(cls, path),
                (_flag(path, field), *short),
                mapping_model(field.annotation),
            )
        )
    if shortcuts:
        raise ValueError(f"cli_shortcuts of {cls.__name__} name no setting: {sorted(shortcuts)}")
    return out


def kind_of(cls: type[BaseModel], path: Sequence[str]) -> str | None:
    """What ``path`` names: ``"leaf"``, ``"section"`` (a model or a dict: JSON in an env
    var) or None (no such setting)."""
    node, i = cls, 0
    while i < len(path):
        field = node.model_fields.get(path[i])
        if field is None:
            return None
        value, nested = mapping_model(field.annotation), section_model(field.annotation)
        if value is not None:
            if i + 1 == len(path):
                return "section"
            node, i = value, i + 2  # skip the entry's key
        elif nested is not None:
            node, i = nested, i + 1
        else:
            return "leaf" if i + 1 == len(path) else None
    return "section"


def owner(cls: type[BaseModel], loc: Sequence[str]) -> Setting | None:
    """The setting an error location falls under: the leaf itself, or the dict setting
    (``nurseries``) for a location inside one of its entries."""
    by_path = {s.path: s for s in settings_of(cls)}
    for n in range(len(loc), 0, -1):
        if tuple(loc[:n]) in by_path:
            return by_path[tuple(loc[:n])]
    return None


def all_paths(cls: type[BaseModel], key: str = KEY_PLACEHOLDER) -> list[tuple[str, ...]]:
    """Every leaf path, entries of dict settings included (their key given as ``key``)."""
    out: list[tuple[str, ...]] = []
    for s in settings_of(cls):
        out.append(s.path)
        if s.value_model is not None:
            out += [(*s.path, key, *p) for p, _f in _walk(s.value_model, ())]
    return out


def nearest_path(cls: type[BaseModel], loc: Sequence[str]) -> tuple[str, ...] | None:
    """The real setting a mistyped location most likely meant."""
    key = next((loc[i + 1] for i in range(len(loc) - 1) if owner(cls, loc[: i + 1])), None)
    candidates = all_paths(cls, key or KEY_PLACEHOLDER)
    same_leaf = [p for p in candidates if loc and p[-1] == loc[-1]]
    if same_leaf:  # the right name in the wrong place: keep as much of the path as matches
        return max(same_leaf, key=lambda p: (_common(p, loc), -len(p)))
    dotted = {".".join(p): p for p in candidates}
    match = difflib.get_close_matches(".".join(loc), dotted, n=1, cutoff=0.5)
    return dotted[match[0]] if match else None


def _common(a: Sequence[str], b: Sequence[str]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def env_path(cls: type[BaseModel], name: str) -> tuple[str, ...] | None:
    """The setting path of an environment variable name, if it has the role's prefix."""
    prefix = env_prefix(cls)
    if not name.upper().startswith(prefix.upper()):
        return None
    return tuple(name[len(prefix) :].lower().split(DELIMITER))


def nearest_env(cls: type[BaseModel], name: str) -> str:
    """The real variable closest to a mistyped one (there always is one)."""
    path = env_path(cls, name) or ()
    near = nearest_path(cls, path)
    if near is not None:
        return env_name(cls, near)
    names = [env_name(cls, p) for p in all_paths(cls)]
    return difflib.get_close_matches(name.upper(), names, n=1, cutoff=0.0)[0]
