"""Typed configuration shared by every role.

Each role has a :class:`RoleSettings` subclass with its own environment prefix
(``NURSERYCRY_EDGE_``, ``NURSERYCRY_HUB_`` ...). Values come from, highest
first: command-line flags, environment variables, a YAML or TOML file
(``--config``), then defaults. A bad value fails at start-up with a
:class:`ConfigError` that names the field, where it can be set, and why.
"""

from __future__ import annotations

import contextvars
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Self
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
    YamlConfigSettingsSource,
)

from .topics import DEFAULT_DISCOVERY_PREFIX, DEFAULT_PREFIX, check_prefix

_config_file: contextvars.ContextVar[Path | None] = contextvars.ContextVar(
    "nurserycry_config_file", default=None
)


class ConfigError(Exception):
    """Invalid configuration; ``str()`` is a message a person can act on."""


class MqttSettings(BaseModel):
    """How to reach the broker. ``broker`` is ``mqtt://host:port`` or ``mqtts://host:port``."""

    model_config = ConfigDict(extra="forbid")

    broker: str = Field(
        "mqtt://localhost:1883", description="mqtt://HOST:PORT or mqtts://HOST:PORT"
    )
    username: str | None = Field(None, max_length=256)
    password: SecretStr | None = None
    tls_ca_file: Path | None = Field(None, description="CA bundle for mqtts:// (default: system)")
    tls_insecure: bool = Field(False, description="skip certificate host name checks")
    client_id: str | None = Field(None, max_length=128)
    keepalive: int = Field(30, ge=5, le=3600, description="seconds")
    protocol: Literal["3.1.1", "5"] = Field("3.1.1", description="MQTT version to speak")
    topic_prefix: str = DEFAULT_PREFIX
    discovery_prefix: str = DEFAULT_DISCOVERY_PREFIX

    @field_validator("broker")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value if "://" in value else f"mqtt://{value}")
        if parts.scheme not in {"mqtt", "mqtts", "tcp", "ssl"}:
            raise ValueError(f"broker scheme must be mqtt:// or mqtts://, not {parts.scheme}://")
        if not parts.hostname:
            raise ValueError("broker needs a host name, e.g. mqtt://192.168.1.10:1883")
        try:
            _ = parts.port
        except ValueError:
            raise ValueError("broker port must be a number from 1 to 65535") from None
        return f"{parts.scheme}://{parts.netloc}"

    @field_validator("topic_prefix", "discovery_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        return check_prefix(value)

    @field_validator("tls_ca_file")
    @classmethod
    def _readable(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"file not found: {value}")
        return value

    @property
    def tls(self) -> bool:
        return urlsplit(self.broker).scheme in {"mqtts", "ssl"}

    @property
    def host(self) -> str:
        return urlsplit(self.broker).hostname or "localhost"

    @property
    def port(self) -> int:
        return urlsplit(self.broker).port or (8883 if self.tls else 1883)


class RoleSettings(BaseSettings):
    """Base of each role's settings; subclasses set ``env_prefix``."""

    model_config = SettingsConfigDict(extra="forbid", env_nested_delimiter="__")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _config_file.get()
        if path is not None:
            if path.suffix == ".toml":
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
            else:
                sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=path))
        return tuple(sources)

    @classmethod
    def load(cls, config_file: Path | None = None, **overrides: Any) -> Self:
        """Settings from flags (``overrides``, None values ignored), env, file, defaults."""
        if config_file is not None and not config_file.is_file():
            raise ConfigError(f"config file not found: {config_file}")
        given = {k: v for k, v in overrides.items() if v is not None}
        token = _config_file.set(config_file)
        try:
            return cls(**given)
        except ValidationError as exc:
            raise ConfigError(describe(cls, exc, config_file)) from None
        except (ValueError, OSError, yaml.YAMLError) as exc:  # unreadable YAML/TOML
            raise ConfigError(f"cannot read config file {config_file}: {exc}") from None
        finally:
            _config_file.reset(token)


def flag_overrides(values: Mapping[str, Any]) -> dict[str, Any]:
    """Command-line values keyed by dotted setting path (``"mqtt.broker"``) ->
    nested overrides for :meth:`RoleSettings.load`; ``None`` (flag not given) is skipped."""
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


def describe(cls: type[BaseSettings], exc: ValidationError, config_file: Path | None) -> str:
    """A readable, actionable multi-line message for a settings error."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    delim = str(cls.model_config.get("env_nested_delimiter") or "__")
    lines = [f"invalid configuration ({exc.error_count()} problem(s)):"]
    for err in exc.errors(include_url=False):
        loc = [str(p) for p in err["loc"]]
        field = ".".join(loc) or "settings"
        env = prefix + delim.join(loc).upper()
        flag = "--" + loc[-1].replace("_", "-") if loc else ""
        given = err.get("input")
        shown = "" if isinstance(given, dict) or given is None else f" (got {given!r})"
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"  - {field}: {msg}{shown}")
        lines.append(
            f"    set it with {flag} or {env}" + (f" or in {config_file}" if config_file else "")
        )
    return "\n".join(lines)
