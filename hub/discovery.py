"""Home Assistant MQTT discovery payloads (pure).

One Home Assistant *device* per nursery, with these entities, all reading the
retained ``NurseryState`` JSON on ``{prefix}/N/state``:

==========================  =============  =========================================
entity (default id)         component      what
==========================  =============  =========================================
``..._crying``              binary_sensor  device_class ``sound``: an episode is open
``..._state``               sensor         enum ``crying`` / ``quiet`` / ``other``
``..._cry_probability``     sensor         %, state_class measurement
``..._sound_level``         sensor         dBFS, state_class measurement
``..._last_episode``        sensor         device_class duration, s
``..._crying_today``        sensor         device_class duration, min, total_increasing
                                           (back to 0 at local midnight = a reset)
==========================  =============  =========================================

Every entity is available only when BOTH the hub (``{prefix}/hub/availability``)
and the nursery's edge agent (``{prefix}/N/availability``, its last will) say
``online`` (``availability_mode: all``). Config topics are retained; the hub
publishes them when a nursery first appears and again whenever Home
Assistant announces ``online`` on ``homeassistant/status``.
"""

from __future__ import annotations

import json
from typing import Any, Final

from nurserycry import __version__
from nurserycry.shared.topics import OFFLINE, ONLINE, Topics

SUPPORT_URL: Final = "https://github.com/nurserycry/nurserycry"

# key -> (component, name, extra config)
ENTITIES: Final[dict[str, tuple[str, str, dict[str, Any]]]] = {
    "crying": (
        "binary_sensor",
        "Crying",
        {
            "device_class": "sound",
            "value_template": "{{ 'ON' if value_json.crying else 'OFF' }}",
            "payload_on": "ON",
            "payload_off": "OFF",
            "icon": "mdi:emoticon-cry-outline",
        },
    ),
    "state": (
        "sensor",
        "State",
        {
            "device_class": "enum",
            "options": ["crying", "quiet", "other"],
            "value_template": "{{ value_json.state }}",
            "icon": "mdi:baby-face-outline",
        },
    ),
    "cry_probability": (
        "sensor",
        "Cry probability",
        {
            "unit_of_measurement": "%",
            "state_class": "measurement",
            "suggested_display_precision": 0,
            "value_template": "{{ (value_json.cry_probability * 100) | round(1) }}",
            "icon": "mdi:percent",
        },
    ),
    "sound_level": (
        "sensor",
        "Sound level",
        {
            "unit_of_measurement": "dBFS",
            "state_class": "measurement",
            "suggested_display_precision": 0,
            "value_template": "{{ value_json.level_dbfs | round(1) }}",
            "icon": "mdi:volume-high",
        },
    ),
    "last_episode": (
        "sensor",
        "Last crying episode",
        {
            "device_class": "duration",
            "unit_of_measurement": "s",
            "state_class": "measurement",
            # renders "None" (unknown in Home Assistant) until a first episode ended
            "value_template": "{{ value_json.last_episode_s }}",
        },
    ),
    "crying_today": (
        "sensor",
        "Crying minutes today",
        {
            "device_class": "duration",
            "unit_of_measurement": "min",
            "state_class": "total_increasing",
            "suggested_display_precision": 1,
            "value_template": "{{ value_json.crying_minutes_today }}",
        },
    ),
}


def _entity_id(nursery: str) -> str:
    return "nurserycry_" + nursery.replace("-", "_")


def device(nursery: str, software: str = __version__) -> dict[str, Any]:
    return {
        "identifiers": [f"nurserycry_{nursery}"],
        "name": f"Nursery {nursery}",
        "manufacturer": "NurseryCry",
        "model": "Cry detector (edge agent + hub)",
        "sw_version": software,
    }


def config(topics: Topics, nursery: str, key: str, software: str = __version__) -> dict[str, Any]:
    """The discovery config of one entity."""
    component, name, extra = ENTITIES[key]
    return {
        "name": name,
        "unique_id": f"nurserycry_{nursery}_{key}",
        "default_entity_id": f"{component}.{_entity_id(nursery)}_{key}",
        "state_topic": topics.nursery(nursery, "state"),
        "json_attributes_topic": topics.nursery(nursery, "state") if key == "crying" else None,
        **extra,
        "availability": [
            {"topic": topics.hub("availability")},
            {"topic": topics.nursery(nursery, "availability")},
        ],
        "availability_mode": "all",
        "payload_available": ONLINE,
        "payload_not_available": OFFLINE,
        "device": device(nursery, software),
        "origin": {"name": "NurseryCry", "sw_version": software, "support_url": SUPPORT_URL},
    }


def messages(topics: Topics, nursery: str, software: str = __version__) -> list[tuple[str, bytes]]:
    """``(config topic, JSON payload)`` for every entity of a nursery; publish retained."""
    out = []
    for key, (component, _name, _extra) in ENTITIES.items():
        body = {k: v for k, v in config(topics, nursery, key, software).items() if v is not None}
        payload = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
        out.append((topics.discovery(component, nursery, key), payload))
    return out
