"""The Grafana "misery meter" reads exactly what the hub writes (hub/sinks/influx_schema.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from nurserycry.hub.sinks import influx_schema as schema

GRAFANA = Path(__file__).resolve().parents[1] / "compose" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "misery-meter.json"
# Flux's own columns, not the hub's tags or fields
FLUX_COLUMNS = {"_time", "_value", "_field", "_measurement", "_start", "_stop"}


def _dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def _queries() -> list[tuple[str, str]]:
    """(panel title, Flux query) for every panel target."""
    return [
        (panel["title"], target["query"])
        for panel in _dashboard()["panels"]
        for target in panel.get("targets", [])
    ]


def _names(query: str) -> tuple[set[str], set[str], set[str]]:
    """Measurements, fields and other columns (tags) a Flux query names."""
    measurements = set(re.findall(r'r\._measurement\s*==\s*"([^"]+)"', query))
    fields = set(re.findall(r'r\._field\s*==\s*"([^"]+)"', query))
    columns = set(re.findall(r"\br\.([A-Za-z_][A-Za-z0-9_]*)", query))
    columns |= set(re.findall(r'\btag:\s*"([^"]+)"', query))
    for listed in re.findall(r"columns:\s*\[([^\]]*)\]", query):
        columns |= set(re.findall(r'"([^"]+)"', listed))
    return measurements, fields, columns - FLUX_COLUMNS


def test_dashboard_parses_and_uses_the_provisioned_datasource() -> None:
    dash = _dashboard()
    assert dash["title"] == "NurseryCry misery meter"
    source = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "influxdb.yml").read_text())
    uid = source["datasources"][0]["uid"]
    for panel in dash["panels"]:
        assert panel["datasource"]["uid"] == uid, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == uid
            assert "from(bucket: v.defaultBucket)" in target["query"]
    for variable in dash["templating"]["list"]:
        assert variable["datasource"]["uid"] == uid


def test_dashboard_shows_what_the_issue_asks_for() -> None:
    titles = {panel["title"] for panel in _dashboard()["panels"]}
    assert {"Cry probability", "Episodes", "Crying minutes per night", "Sound level"} <= titles
    (variable,) = _dashboard()["templating"]["list"]
    assert variable["name"] == "nursery"
    assert variable["multi"] and variable["includeAll"]
    for title, query in _queries():
        assert "r.nursery =~ /^${nursery:regex}$/" in query, title


@pytest.mark.parametrize(("title", "query"), _queries())
def test_each_query_names_only_its_measurement_fields_and_tags(title: str, query: str) -> None:
    measurements, fields, columns = _names(query)
    assert len(measurements) == 1, (title, measurements)
    (measurement,) = measurements
    assert measurement in schema.MEASUREMENTS, (title, measurement)
    tags, known_fields = schema.MEASUREMENTS[measurement]
    assert fields, title
    assert fields <= set(known_fields), (title, fields - set(known_fields))
    # columns are the measurement's tags, or its fields once pivoted into columns
    assert columns <= set(tags) | fields, (title, columns - set(tags) - fields)


def test_dashboard_covers_the_whole_schema_and_nothing_else() -> None:
    queries = [q for _, q in _queries()]
    queries += [v["query"] for v in _dashboard()["templating"]["list"]]
    measurements: set[str] = set()
    fields: set[str] = set()
    columns: set[str] = set()
    for query in queries:
        m, f, c = _names(query)
        measurements |= m
        fields |= f
        columns |= c
    assert measurements == set(schema.MEASUREMENTS)
    all_fields = {f for _, fs in schema.MEASUREMENTS.values() for f in fs}
    all_tags = {t for ts, _ in schema.MEASUREMENTS.values() for t in ts}
    assert fields == all_fields
    assert columns - all_fields == all_tags


def test_the_name_extraction_catches_a_wrong_name() -> None:
    bad = (
        'from(bucket: v.defaultBucket) |> filter(fn: (r) => r._measurement == "nurserycry_window"'
        ' and r._field == "probability" and r.room == "x")'
    )
    measurements, fields, columns = _names(bad)
    assert measurements == {"nurserycry_window"}
    assert fields == {"probability"}
    assert columns == {"room"}
    assert not fields <= set(schema.WINDOW_FIELDS)


def test_the_dashed_line_is_the_default_onset_threshold() -> None:
    from nurserycry.shared.episodes import EpisodeConfig

    panel = next(p for p in _dashboard()["panels"] if p["title"] == "Cry probability")
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    default = EpisodeConfig().on_threshold
    assert [s["value"] for s in steps] == [None, default]
    assert f"({default})" in panel["description"]
