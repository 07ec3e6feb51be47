"""What the hub writes to InfluxDB: the contract Grafana dashboards are built on.

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

from typing import Final

WINDOW_MEASUREMENT: Final = "nurserycry_window"
WINDOW_TAGS: Final = ("nursery", "label", "model")
WINDOW_FIELDS: Final = ("cry_probability", "level_dbfs", "crying")

EPISODE_MEASUREMENT: Final = "nurserycry_episode"
EPISODE_TAGS: Final = ("nursery", "model", "alert")
EPISODE_FIELDS: Final = ("duration_s", "peak_probability", "alert_delay_s")

MEASUREMENTS: Final = {
    WINDOW_MEASUREMENT: (WINDOW_TAGS, WINDOW_FIELDS),
    EPISODE_MEASUREMENT: (EPISODE_TAGS, EPISODE_FIELDS),
}
