"""Typed configuration shared by every role.

Each role has a :class:`RoleSettings` subclass with its own environment prefix
(``NURSERYCRY_EDGE_``, ``NURSERYCRY_HUB_`` ...). Values come from, highest
first: command-line flags, environment variables, a YAML or TOML file
(``--config``), then defaults. A bad value fails at start-up with a
:class:`ConfigError` that names the field, where it can be set, and why
(:mod:`.settings_errors`); the flags are generated from the model
(:mod:`.settings_cli`).
"""

from __future__ import annotations

import contextvars
import os
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
    YamlConfigSettingsSource,
)

from .errors import ConfigError
from .settings_errors import describe, environment_problems
from .topics import DEFAULT_DISCOVERY_PREFIX, DEFAULT_PREFIX, check_prefix

_config_file: contextvars.ContextVar[Path | None] = contextvars.ContextVar(
    "nurserycry_config_file", default=None
)


def _existing(path: Path) -> Path:
    if not path.is_file():
        raise ValueError(f"file not found: {path}")
    return path


def _existing_audio(path: Path) -> Path:
    if not path.is_file():
        raise ValueError(f"audio file not found: {path}")
    return path


ExistingFile = Annotated[Path, AfterValidator(_existing)]
AudioFile = Annotated[Path, AfterValidator(_existing_audio)]
LogLevel = Annotated[
    Literal["DEBUG", "INFO", "WARNING", "ERROR"], Field(description="how much to log")
]


EXAMPLE_SECRET = "change-me"


def refuse_example(value: SecretStr | None) -> SecretStr | None:
    """A secret still holding the example value of ``env.example`` stops the start."""
    if value is not None and value.get_secret_value().startswith(EXAMPLE_SECRET):
        raise ValueError(
            f"still the example value {EXAMPLE_SECRET!r}...: set the real secret "
            "(compose/.env, or the Pi's /etc/nurserycry/edge.env)"
        )
    return value


class MqttSettings(BaseModel):
    """How to reach the MQTT broker."""

    model_config = ConfigDict(extra="forbid")

    broker: str = Field(
        "mqtt://localhost:1883",
        max_length=2000,
        description="mqtt://HOST:PORT or mqtts://HOST:PORT (TLS); a comma-separated list of "
        "the nodes of one cluster to fail over between (tried in turn)",
    )
    username: str | None = Field(None, max_length=256, description="broker user name")
    password: SecretStr | None = Field(None, max_length=1024, description="broker password")
    tls_ca_file: ExistingFile | None = Field(
        None, description="CA bundle for mqtts:// (unset: the system's)"
    )
    tls_insecure: bool = Field(False, description="skip certificate host name checks")
    keepalive: int = Field(30, ge=5, le=3600, description="MQTT keepalive, seconds")
    protocol: Literal["3.1.1", "5"] = Field("3.1.1", description="MQTT version to speak")
    topic_prefix: str = Field(
        DEFAULT_PREFIX, max_length=100, description="first level of every NurseryCry topic"
    )
    discovery_prefix: str = Field(
        DEFAULT_DISCOVERY_PREFIX, max_length=100, description="Home Assistant discovery prefix"
    )

    @field_validator("broker")
    @classmethod
    def _url(cls, value: str) -> str:
        urls = [_broker_url(one.strip()) for one in value.split(",") if one.strip()]
        if not urls:
            raise ValueError("broker needs a host name, e.g. mqtt://192.168.1.10:1883")
        if len({urlsplit(u).scheme in {"mqtts", "ssl"} for u in urls}) > 1:
            raise ValueError("brokers of one list must all be mqtt:// or all mqtts://")
        return ",".join(urls)

    @field_validator("password")
    @classmethod
    def _not_example(cls, value: SecretStr | None) -> SecretStr | None:
        return refuse_example(value)

    @field_validator("topic_prefix", "discovery_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        return check_prefix(value)

    @property
    def tls(self) -> bool:
        return urlsplit(self.broker).scheme in {"mqtts", "ssl"}

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """``(host, port)`` of every broker in the list, in order."""
        default = 8883 if self.tls else 1883
        return [
            (parts.hostname or "localhost", parts.port or default)
            for parts in map(urlsplit, self.broker.split(","))
        ]

    @property
    def host(self) -> str:
        return self.addresses[0][0]

    @property
    def port(self) -> int:
        return self.addresses[0][1]


def _broker_url(value: str) -> str:
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


# Short flags for the MQTT settings every role has (pydantic-settings' ``cli_shortcuts`` format).
MQTT_SHORTCUTS: dict[str, str | list[str]] = {
    "mqtt.broker": "broker",
    "mqtt.username": "username",
    "mqtt.password": "password",
    "mqtt.tls_ca_file": "tls-ca-file",
    "mqtt.topic_prefix": "topic-prefix",
    "mqtt.discovery_prefix": "discovery-prefix",
}


class RoleSettings(BaseSettings):
    """Base of each role's settings; subclasses set ``env_prefix`` (and ``cli_shortcuts``)."""

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
        """Settings from flags (``overrides``, None values ignored), env, file, defaults.

        A ``<PREFIX>*`` environment variable that sets nothing is an error too."""
        problems = environment_problems(cls, os.environ)
        if problems:
            raise ConfigError(
                f"invalid environment ({len(problems)} problem(s)):\n" + "\n".join(problems)
            )
        if config_file is not None and not config_file.is_file():
            raise ConfigError(f"config file not found: {config_file}")
        given = {k: v for k, v in overrides.items() if v is not None}
        token = _config_file.set(config_file)
        try:
            return cls(**given)
        except ValidationError as exc:
            raise ConfigError(describe(cls, exc, config_file)) from None
        except (ValueError, OSError, yaml.YAMLError) as exc:  # unreadable YAML/TOML
            if config_file is None:
                raise ConfigError(f"cannot read the settings: {exc}") from None
            raise ConfigError(f"cannot read config file {config_file}: {exc}") from None
        finally:
            _config_file.reset(token)
