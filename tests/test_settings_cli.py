"""Settings written once: nested sections, flags and --help generated from the models, errors
that name only real flags and variables, unknown variables rejected, --validate-config, and
README tables that match the models."""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import pytest
import yaml
from pydantic import BaseModel, SecretStr

from nurserycry.demo import cli as demo_cli
from nurserycry.demo.settings import DemoSettings
from nurserycry.edge import cli as edge_cli
from nurserycry.edge.install import parser as install_parser
from nurserycry.edge.settings import EdgeSettings
from nurserycry.hub import cli as hub_cli
from nurserycry.hub.settings import HubSettings
from nurserycry.shared.config import RoleSettings
from nurserycry.shared.errors import ConfigError
from nurserycry.shared.model import ModelMetadata, default_model_dir
from nurserycry.shared.settings_doc import render_table, targets, update
from nurserycry.shared.settings_model import (
    all_paths,
    env_name,
    env_path,
    kind_of,
    section_model,
    settings_of,
    unwrap,
)

ROOT = Path(__file__).resolve().parents[1]
ROLES: list[tuple[type[RoleSettings], Callable[[], argparse.ArgumentParser]]] = [
    (HubSettings, hub_cli.parser),
    (EdgeSettings, edge_cli.parser),
    (DemoSettings, demo_cli.parser),
]
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
VAR = re.compile(r"\bNURSERYCRY_[A-Z0-9_]+")
PARAMS = pytest.mark.parametrize(
    ("cls", "make_parser"), ROLES, ids=lambda v: getattr(v, "__name__", "")
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("NURSERYCRY_")]:
        monkeypatch.delenv(key)


def nested(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    out: Any = value
    for part in reversed(path):
        out = {part: out}
    assert isinstance(out, dict)
    return out


def required(cls: type[RoleSettings]) -> dict[str, Any]:
    return {"nursery": "n1"} if cls is EdgeSettings else {}


# -- the models -------------------------------------------------------------------
def models_in(model: type[BaseModel]) -> Iterator[type[BaseModel]]:
    yield model
    for field in model.model_fields.values():
        inner = section_model(field.annotation)
        if inner is None:
            args = get_args(unwrap(field.annotation))
            inner = section_model(args[-1]) if args else None
        if inner is not None:
            yield from models_in(inner)


@PARAMS
def test_every_setting_is_described_bounded_and_strict(
    cls: type[RoleSettings], make_parser: Callable[[], argparse.ArgumentParser]
) -> None:
    for model in models_in(cls):
        assert model.model_config.get("extra") == "forbid", model.__name__
    for s in settings_of(cls):
        assert s.field.description, f"{s.dotted} has no description"
        kind = unwrap(s.field.annotation)
        names = {type(m).__name__ for m in s.field.metadata}
        if kind in (int, float):
            assert names & {"Ge", "Gt"} and names & {"Le", "Lt"}, f"{s.dotted} is unbounded"
        elif kind in (str, SecretStr):
            limited = "MaxLen" in names or any(
                getattr(m, "pattern", None) for m in s.field.metadata
            )
            assert limited or "AfterValidator" in names, f"{s.dotted} has no length bound"
        else:
            assert kind in (bool, Path) or get_origin(kind) in (Literal, dict), s.dotted


def test_hub_sections_from_file_env_and_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "hub.yaml"
    config.write_text(
        "influx: {url: 'http://file:8086', batch: 50}\n"
        "history: {mode: 'off', days: 7}\n"
        "clips: {dir: /tmp/clips, keep: 5}\n"
    )
    monkeypatch.setenv("NURSERYCRY_HUB_INFLUX__BATCH", "60")
    monkeypatch.setenv("NURSERYCRY_HUB_CLIPS__SECONDS", "12")
    args = hub_cli.parser().parse_args(
        ["--config", str(config), "--influx-url", "https://flag:8086", "--history", "on"]
    )
    s = hub_cli.load_settings(args)
    assert s.influx.url == "https://flag:8086" and s.influx.batch == 60  # flag, env
    assert s.influx.org == "nurserycry"  # default inside a section given by the file
    assert s.history.mode == "on" and s.history.days == 7 and s.keep_history
    assert s.clips.dir == Path("/tmp/clips") and s.clips.keep == 5 and s.clips.seconds == 12
    assert not HubSettings.load(None, influx={"url": "http://x"}).keep_history


# -- flags generated from the models ---------------------------------------------
@PARAMS
def test_every_setting_has_a_flag_and_its_variable_in_help(
    cls: type[RoleSettings], make_parser: Callable[[], argparse.ArgumentParser]
) -> None:
    p = make_parser()
    text = " ".join(p.format_help().split())  # argparse wraps long names' lines
    for s in settings_of(cls):
        assert s.env in text, s.env
        for flag in s.flags:
            assert flag in p._option_string_actions, flag
            value = None if s.is_bool else ('{"n1": {}}' if s.value_model else "7")
            args = p.parse_args([flag] if value is None else [flag, value])
            given = vars(args)[f"setting:{s.dotted}"]  # the flag sets exactly this setting
            assert given == ({"n1": {}} if s.value_model else "7") or given is (not s.negated)
            assert sum(v is not None for k, v in vars(args).items() if ":" in k) == 1


def test_flags_users_have_keep_working() -> None:
    hub = hub_cli.parser()._option_string_actions
    for flag in ("--broker", "--username", "--password", "--tls-ca-file", "--mqtt-protocol",
                 "--topic-prefix", "--discovery-prefix", "--client-id", "--influx-url",
                 "--influx-org", "--influx-bucket", "--influx-token", "--influx-spool",
                 "--model", "--history-db", "--history", "--log-level"):  # fmt: skip
        assert flag in hub, flag
    edge = edge_cli.parser()._option_string_actions
    for flag in ("--nursery", "--device", "--file", "--fast", "--start-time", "--stdin",
                 "--rate", "--channels", "--gain-db", "--frames-per-message", "--spool",
                 "--spool-max-mb", "--spool-sync-s", "--status-interval-s", "--clips",
                 "--flush-timeout-s", "--clip-seconds", "--list-devices"):  # fmt: skip
        assert flag in edge, flag
    demo = demo_cli.parser()._option_string_actions
    for flag in ("--duration", "--source", "--port", "--data-dir", "--timeline", "--no-timeline"):
        assert flag in demo, flag


# -- every hint in an error is a real flag and a real variable ------------------
def problems(cls: type[RoleSettings], **overrides: Any) -> str:
    with pytest.raises(ConfigError) as err:
        cls.load(None, **{**required(cls), **overrides})
    return str(err.value)


def error_messages(cls: type[RoleSettings], monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Errors for every setting, found by walking the model: a bad value for each one, an
    unknown key in each section, a misspelt variable for each one, bad JSON in each
    section's variable, and the model validators' conflicts."""
    paths = all_paths(cls, "n1")
    for path in paths:  # a value no setting accepts
        yield problems(cls, **nested(path, [[]]))
        yield problems(cls, **nested((*path[:-1], path[-1] + "x"), 1))  # unknown key
    for path in paths:
        with monkeypatch.context() as m:
            m.setenv(env_name(cls, path) + "X", "1")  # a misspelt variable
            yield problems(cls)
    for path in {p[:n] for p in paths for n in range(1, len(p))}:
        if kind_of(cls, path) == "section":
            with monkeypatch.context() as m:
                m.setenv(env_name(cls, path), "{not json")
                yield problems(cls)


def check_hints(cls: type[RoleSettings], parser: argparse.ArgumentParser, text: str) -> None:
    prefix = str(cls.model_config["env_prefix"])
    for item in re.split(r"\n  - ", text)[1:]:
        typed = item.split(":", 1)[0] if "no such setting" in item else None  # not a hint
        flags = FLAG.findall(item)
        variables = [v for v in VAR.findall(item) if v != typed]
        assert flags and variables, f"no flag or variable named in:\n{item}"
        for flag in flags:
            assert flag in parser._option_string_actions, f"{flag} is no flag:\n{item}"
        for var in variables:
            path = env_path(cls, var)
            assert var.startswith(prefix) and path and kind_of(cls, path), f"{var}:\n{item}"


@PARAMS
def test_every_error_names_a_real_flag_and_variable(
    cls: type[RoleSettings],
    make_parser: Callable[[], argparse.ArgumentParser],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parser = make_parser()
    count = 0
    for text in error_messages(cls, monkeypatch):
        check_hints(cls, parser, text)
        count += 1
    assert count >= 3 * len(settings_of(cls))


def test_conflicts_name_every_setting_involved(monkeypatch: pytest.MonkeyPatch) -> None:
    wav = Path(__file__)  # any existing file
    edge = edge_cli.parser()
    text = problems(EdgeSettings, stdin=True, file=wav)
    check_hints(EdgeSettings, edge, text)
    assert "--stdin" in text and "NURSERYCRY_EDGE_FILE" in text
    text = problems(EdgeSettings, fast=True)
    check_hints(EdgeSettings, edge, text)
    assert "--fast" in text and "--file" in text
    hub = hub_cli.parser()
    bad = {"episodes": {"onset_n": 4, "onset_m": 3}}
    for overrides in ({"detector": bad}, {"nurseries": {"n1": bad}}):
        text = problems(HubSettings, **overrides)
        check_hints(HubSettings, hub, text)
        assert "ONSET_M" in text and "ONSET_N" in text


def test_the_issue_15_examples() -> None:
    text = problems(HubSettings, mqtt={"protocol": "4"})
    assert "--mqtt-protocol" in text and "NURSERYCRY_HUB_MQTT__PROTOCOL" in text
    text = problems(HubSettings, nurseries={"n1": {"on_threshold": 0.7}})
    assert "NURSERYCRY_HUB_NURSERIES__N1__EPISODES__ON_THRESHOLD" in text
    text = problems(EdgeSettings, file=Path("/nonexistent.wav"))
    assert "set it with --file or NURSERYCRY_EDGE_FILE" in text
    for name in ("queue_size", "status_interval_s"):
        assert f"--{name.replace('_', '-')}" in problems(HubSettings, **{name: -1})


def test_a_refused_secret_is_never_echoed() -> None:
    secret = "hunter2-" + "x" * 5000  # over the bounds (1,024 and 4,096 characters): refused
    for section, name in (("mqtt", "password"), ("influx", "token")):
        text = problems(HubSettings, **{section: {name: secret}})
        assert f"NURSERYCRY_HUB_{section.upper()}__{name.upper()}" in text
        assert "hunter2" not in text, text
    assert "(got -1)" in problems(HubSettings, queue_size=-1)  # other values are still shown


def test_demo_source_error_names_its_flags_and_variables() -> None:
    with pytest.raises(ConfigError) as err:
        demo_cli.choose_source(DemoSettings(source="file"), has_microphone=False)
    check_hints(DemoSettings, demo_cli.parser(), "x\n  - " + str(err.value))


# -- the environment --------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "suggested"),
    [
        ("NURSERYCRY_HUB_BOGUS", None),
        ("NURSERYCRY_HUB_INFLUX_URL", "NURSERYCRY_HUB_INFLUX__URL"),  # the old flat name
        ("NURSERYCRY_HUB_HISTORY_DB", "NURSERYCRY_HUB_HISTORY__DB"),
        ("NURSERYCRY_HUB_MQTT__BROKR", "NURSERYCRY_HUB_MQTT__BROKER"),
        (
            "NURSERYCRY_HUB_NURSERIES__N1__ON_THRESHOLD",
            "NURSERYCRY_HUB_NURSERIES__N1__EPISODES__ON_THRESHOLD",
        ),
    ],
)  # fmt: skip
def test_unknown_variables_are_errors_naming_the_nearest(
    name: str, suggested: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(name, "1")
    text = problems(HubSettings)
    assert name in text and "did you mean NURSERYCRY_HUB_" in text
    if suggested is not None:
        assert f"did you mean {suggested} " in text
    check_hints(HubSettings, hub_cli.parser(), text)


def test_variables_of_other_roles_and_entries_are_accepted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NURSERYCRY_EDGE_NURSERY", "n1")  # not the hub's
    monkeypatch.setenv("NURSERYCRY_HUB_NURSERIES__N1__EPISODES__ON_THRESHOLD", "0.7")
    monkeypatch.setenv("NURSERYCRY_HUB_MQTT", '{"username": "hub"}')
    s = HubSettings.load()
    assert s.detector_for("n1").episodes.on_threshold == 0.7 and s.mqtt.username == "hub"


def test_bad_json_in_a_variable_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NURSERYCRY_HUB_NURSERIES", "{bad")
    text = problems(HubSettings)
    assert "NURSERYCRY_HUB_NURSERIES: not valid JSON" in text and "--nurseries" in text
    assert "config file None" not in text


# -- --validate-config ----------------------------------------------------------
def test_validate_config_prints_effective_settings_that_load_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NURSERYCRY_HUB_CLIPS__KEEP", "9")
    argv = ["--validate-config", "--influx-url", "http://db:8086", "--influx-token", "s3cret"]
    assert hub_cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "s3cret" not in out  # secrets are hidden
    # unset settings are null in the YAML; what they resolve to follows as comments
    version = ModelMetadata.read(default_model_dir()).model_version
    assert f"#   model: {default_model_dir()} ({version})" in out
    assert "#   episode_state: " in out and "episodes.json" in out
    assert "#   history kept in SQLite: no (InfluxDB is set)" in out
    data = yaml.safe_load(out)
    assert data["influx"]["url"] == "http://db:8086" and data["clips"]["keep"] == 9
    data["influx"]["token"] = None
    config = tmp_path / "effective.yaml"
    config.write_text(yaml.safe_dump(data))
    monkeypatch.delenv("NURSERYCRY_HUB_CLIPS__KEEP")
    again = HubSettings.load(config)
    assert again.influx.url == "http://db:8086" and again.clips.keep == 9


BAD_CONFIGS: list[tuple[Callable[[list[str]], int], list[str], dict[str, str], str]] = [
    (hub_cli.main, ["--influx-batch", "0"], {}, "--influx-batch or NURSERYCRY_HUB_INFLUX__BATCH"),
    (hub_cli.main, [], {"NURSERYCRY_HUB_BOGUS": "1"}, "NURSERYCRY_HUB_BOGUS: no such setting"),
    (edge_cli.main, ["--nursery", "n1", "--file", "/none.wav"], {}, "NURSERYCRY_EDGE_FILE"),
    (demo_cli.main, ["--duration", "-1"], {}, "--duration or NURSERYCRY_DEMO_DURATION"),
]


@pytest.mark.parametrize("case", BAD_CONFIGS)
def test_validate_config_exits_2_with_the_errors(
    case: tuple[Callable[[list[str]], int], list[str], dict[str, str], str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    main, argv, env, text = case
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert main(["--validate-config", *argv]) == 2
    captured = capsys.readouterr()
    assert text in captured.err and not captured.out


def test_validate_config_of_the_edge_and_demo(capsys: pytest.CaptureFixture[str]) -> None:
    assert edge_cli.main(["--validate-config", "--nursery", "n1", "--stdin"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["rate"] == 16_000  # the effective value
    assert demo_cli.main(["--validate-config", "--source", "scene"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["source"] == "scene"


# -- the documentation ----------------------------------------------------------
DOCS = [
    ROOT / "README.md",
    ROOT / "hub" / "README.md",
    ROOT / "edge" / "README.md",
    ROOT / "demo" / "README.md",
    ROOT / "compose" / "README.md",
    ROOT / "compose" / "hub.env",
    ROOT / "compose" / "docker-compose.yml",
    ROOT / "compose" / "add-nursery.sh",
    ROOT / "edge" / "service" / "edge.env",
    ROOT / "edge" / "service" / "nurserycry-edge.service",
]


def test_readme_settings_tables_match_the_models() -> None:
    found = set()
    for doc in DOCS:
        text = doc.read_text()
        assert update(text) == text, (
            f"{doc} is out of date: python -m nurserycry.shared.settings_doc {doc}"
        )
        found |= set(targets(text))
    assert found == {f"{c.__module__}:{c.__name__}" for c, _p in ROLES}
    assert "`--influx-url`" in render_table(HubSettings)


def test_docs_name_only_real_variables_and_flags() -> None:
    by_prefix = {str(c.model_config["env_prefix"]): (c, p()) for c, p in ROLES}
    commands = {"hub": HubSettings, "edge": EdgeSettings, "demo": DemoSettings}
    parsers = {c: p() for c, p in ROLES}
    for doc in DOCS:
        text = doc.read_text()
        for var in set(re.findall(r"NURSERYCRY_(?:HUB|EDGE|DEMO)_[A-Z0-9_]*[A-Z0-9]", text)):
            prefix = next(p for p in by_prefix if var.startswith(p))
            cls = by_prefix[prefix][0]
            path = env_path(cls, var)
            assert path and kind_of(cls, path), f"{doc.name}: {var} sets nothing"
        for role, line in re.findall(r"nurserycry (hub|edge|demo)\b([^\n`]*)", text):
            parser = parsers[commands[role]]
            if role == "edge" and line.startswith(" install-service"):
                parser = install_parser()
            for flag in FLAG.findall(line):
                assert flag in parser._option_string_actions, f"{doc.name}: {role} {flag}"
