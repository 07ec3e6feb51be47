"""What the hub writes to InfluxDB: the contract Grafana dashboards are built on.

The names below are written once: :func:`window_line` and :func:`episode_line`
build line protocol from these tables (and refuse a point that does not match
them), and the provisioned dashboard is tested against them.

Two measurements. Text goes in tags (victoria-metrics, used in tests, keeps
string fields as 0). Timestamps are deterministic (window end / episode start,
from capture time), so a retried write overwrites rather than doubles a point.

``nurserycry_window`` (one point per ~1 s model window, every 0.5 s)
    tags:   ``nursery``, ``label`` (crying | quiet | other), ``model``
    fields: ``cry_probability`` (float 0..1), ``level_dbfs`` (float),
            ``crying`` (int 0/1: an episode is open)
    time:   capture time of the window's end (ns precision)

``nurserycry_episode`` (one point per finished crying episode)
    tags:   ``nursery``, ``model``, ``alert`` (true | false)
    fields: ``duration_s`` (float), ``peak_probability`` (float),
            ``alert_delay_s`` (float: alert time minus start)
    time:   the episode's start
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

from ..engine import EpisodeRecord, WindowRecord

FieldKind = Literal["float", "int"]


@dataclass(frozen=True)
class Measurement:
    name: str
    tags: tuple[str, ...]
    fields: tuple[tuple[str, FieldKind], ...]

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.fields)

    def line(self, tags: Mapping[str, str], fields: Mapping[str, float], t: float) -> str:
        """One line of line protocol; ``tags``/``fields`` must be exactly the schema's."""
        if tuple(tags) != self.tags or tuple(fields) != self.field_names:
            raise ValueError(f"{self.name}: point {tags}/{fields} does not match the schema")
        tag_part = ",".join(f"{k}={_tag(tags[k])}" for k in self.tags)
        field_part = ",".join(_field(k, kind, fields[k]) for k, kind in self.fields)
        return f"{self.name},{tag_part} {field_part} {ns(t)}"


WINDOW: Final = Measurement(
    "nurserycry_window",
    ("nursery", "label", "model"),
    (("cry_probability", "float"), ("level_dbfs", "float"), ("crying", "int")),
)
EPISODE: Final = Measurement(
    "nurserycry_episode",
    ("nursery", "model", "alert"),
    (("duration_s", "float"), ("peak_probability", "float"), ("alert_delay_s", "float")),
)

WINDOW_MEASUREMENT: Final = WINDOW.name
WINDOW_TAGS: Final = WINDOW.tags
WINDOW_FIELDS: Final = WINDOW.field_names
EPISODE_MEASUREMENT: Final = EPISODE.name
EPISODE_TAGS: Final = EPISODE.tags
EPISODE_FIELDS: Final = EPISODE.field_names

MEASUREMENTS: Final = {m.name: (m.tags, m.field_names) for m in (WINDOW, EPISODE)}

_TAG_ESCAPES: Final = str.maketrans(
    {",": r"\,", "=": r"\=", " ": r"\ ", "\\": "\\\\"}
    | {chr(c): "_" for c in (*range(32), 127)}  # line protocol has no escape for newlines
)


def _tag(value: str) -> str:
    """A tag value: separators and backslashes escaped, control characters (a newline in
    a model version would start a forged line) replaced."""
    return value.translate(_TAG_ESCAPES) or "none"


def _field(name: str, kind: FieldKind, value: float) -> str:
    return f"{name}={int(value)}i" if kind == "int" else f"{name}={float(value)!r}"


def ns(t: float) -> int:
    """Unix seconds -> integer nanoseconds, rounded to the microsecond (deterministic)."""
    return round(t * 1_000_000) * 1000


def window_line(w: WindowRecord) -> str:
    return WINDOW.line(
        {"nursery": w.nursery, "label": w.label, "model": w.model},
        {"cry_probability": w.probability, "level_dbfs": w.level_dbfs, "crying": int(w.crying)},
        w.t,
    )


def episode_line(rec: EpisodeRecord) -> str:
    e = rec.event
    return EPISODE.line(
        {"nursery": e.device, "model": rec.model, "alert": "true" if e.alert else "false"},
        {
            "duration_s": e.duration_s,
            "peak_probability": e.peak_probability,
            "alert_delay_s": e.alert_at - e.started_at,
        },
        e.started_at,
    )
