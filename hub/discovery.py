"""Home Assistant MQTT discovery payloads (pure).

One Home Assistant *device* per nursery (connected via the hub's device), with
these entities, all reading the retained ``NurseryState`` JSON on
``{prefix}/N/state``:

==========================  =============  =========================================
entity (default id)         component      what
==========================  =============  =========================================
``..._crying``              binary_sensor  device_class ``sound``: an episode is open
``..._microphone``          binary_sensor  device_class ``problem`` (diagnostic): on while
                                           the nursery sends only digital silence
``..._state``               sensor         enum ``crying`` / ``quiet`` / ``other``
``..._cry_probability``     sensor         %, state_class measurement
``..._sound_level``         sensor         dBFS, state_class measurement
``..._last_episode``        sensor         device_class duration, s
``..._crying_today``        sensor         device_class duration, min, total_increasing
                                           (back to 0 at local midnight = a reset)
==========================  =============  =========================================

Every entity is available only when BOTH the hub (``{prefix}/hub/availability``)
and the nursery's edge agent (``{prefix}/N/availability``, its last will) say
``online`` (``availability_mode: all``). Sharded hubs each have their own
(``{prefix}/hub/{client_id}/availability``, ``Topics.hub_id``) and announce only the
nurseries they score: a hub that dies marks its own nurseries unavailable (nobody scores
them) and leaves the other hubs' nurseries alone. Only the binary sensor has an attribute,
``episode_started_at``, which changes with its state (no extra recorder rows).

The hub's own device, **NurseryCry hub** (**NurseryCry hub <client_id>** per sharded
hub), reads ``HubStatus`` on ``{prefix}/hub/status`` (``{prefix}/hub/<client_id>/status``):
nurseries online, rejected and duplicate messages, and the model version.

Entity ids are set twice: ``object_id`` (what Home Assistant before 2025.10
reads) and ``default_entity_id`` (2025.10 on, where ``object_id`` is deprecated);
both give ``<component>.nurserycry_<nursery>_<key>``. Config topics are retained;
the hub publishes them when a nursery first appears and again whenever Home
Assistant announces ``online`` on ``homeassistant/status`` or the hub reconnects.
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
            # only what changes with the state: the whole JSON (with its time) would
            # write a recorder row on every message
            "json_attributes_template": (
                "{{ {'episode_started_at': value_json.episode_started_at | timestamp_local"
                " if value_json.episode_started_at else none} | tojson }}"
            ),
        },
    ),
    "microphone": (
        "binary_sensor",
        "Microphone",
        {
            "device_class": "problem",
            "entity_category": "diagnostic",
            "value_template": "{{ 'ON' if value_json.microphone == 'silent' else 'OFF' }}",
            "payload_on": "ON",
            "payload_off": "OFF",
            "icon": "mdi:microphone-off",
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


_COUNT: Final = {"state_class": "total_increasing", "entity_category": "diagnostic"}
# the hub's own entities, from HubStatus (counters restart at 0 with the hub: a reset)
HUB_ENTITIES: Final[dict[str, tuple[str, str, dict[str, Any]]]] = {
    "nurseries_online": (
        "sensor",
        "Nurseries online",
        {
            "state_class": "measurement",
            "value_template": "{{ value_json.counters.nurseries_online | default(0) }}",
            "icon": "mdi:baby-carriage",
        },
    ),
    "rejected": (
        "sensor",
        "Rejected messages",
        {
            **_COUNT,
            "value_template": (
                "{{ value_json.counters.items() | selectattr(0, 'match', 'rejected_')"
                " | map(attribute=1) | sum }}"
            ),
            "icon": "mdi:message-alert-outline",
        },
    ),
    "duplicates": (
        "sensor",
        "Duplicate messages",
        {
            **_COUNT,
            "value_template": "{{ value_json.counters.duplicates | default(0) }}",
            "icon": "mdi:content-duplicate",
        },
    ),
    "model": (
        "sensor",
        "Model version",
        {"entity_category": "diagnostic", "value_template": "{{ value_json.model }}"},
    ),
}
HUB_DEVICE_ID: Final = "nurserycry_hub"  # the one hub's (Topics.hub_device_id)


def _entity_id(nursery: str) -> str:
    return "nurserycry_" + nursery.replace("-", "_")


def device(nursery: str, software: str = __version__, via: str = HUB_DEVICE_ID) -> dict[str, Any]:
    return {
        "identifiers": [f"nurserycry_{nursery}"],
        "name": f"Nursery {nursery}",
        "manufacturer": "NurseryCry",
        "model": "Cry detector (edge agent + hub)",
        "sw_version": software,
        "via_device": via,
    }


def hub_device(topics: Topics, software: str = __version__) -> dict[str, Any]:
    """The hub's device; a sharded hub is one of several, named by its id."""
    return {
        "identifiers": [topics.hub_device_id],
        "name": "NurseryCry hub" + (f" {topics.hub_id}" if topics.hub_id else ""),
        "manufacturer": "NurseryCry",
        "model": "Hub",
        "sw_version": software,
    }


def _common(component: str, object_id: str, software: str) -> dict[str, Any]:
    return {
        "object_id": object_id,  # the entity id before Home Assistant 2025.10
        "default_entity_id": f"{component}.{object_id}",  # 2025.10 on
        "payload_available": ONLINE,
        "payload_not_available": OFFLINE,
        "origin": {"name": "NurseryCry", "sw_version": software, "support_url": SUPPORT_URL},
    }


def config(topics: Topics, nursery: str, key: str, software: str = __version__) -> dict[str, Any]:
    """The discovery config of one entity."""
    component, name, extra = ENTITIES[key]
    return {
        "name": name,
        "unique_id": f"nurserycry_{nursery}_{key}",
        **_common(component, f"{_entity_id(nursery)}_{key}", software),
        "state_topic": topics.nursery(nursery, "state"),
        "json_attributes_topic": topics.nursery(nursery, "state") if key == "crying" else None,
        **extra,
        "availability": [
            {"topic": topics.hub("availability")},
            {"topic": topics.nursery(nursery, "availability")},
        ],
        "availability_mode": "all",
        "device": device(nursery, software, topics.hub_device_id),
    }


def hub_config(topics: Topics, key: str, software: str = __version__) -> dict[str, Any]:
    """The discovery config of one of the hub's own entities."""
    component, name, extra = HUB_ENTITIES[key]
    return {
        "name": name,
        "unique_id": f"{topics.hub_device_id}_{key}",
        **_common(component, f"{topics.hub_device_id}_{key}", software),
        "state_topic": topics.hub("status"),
        **extra,
        "availability_topic": topics.hub("availability"),
        "device": hub_device(topics, software),
    }


def _encode(body: dict[str, Any]) -> bytes:
    body = {k: v for k, v in body.items() if v is not None}
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()


def messages(topics: Topics, nursery: str, software: str = __version__) -> list[tuple[str, bytes]]:
    """``(config topic, JSON payload)`` for every entity of a nursery; publish retained."""
    return [
        (topics.discovery(component, nursery, key), _encode(config(topics, nursery, key, software)))
        for key, (component, _name, _extra) in ENTITIES.items()
    ]


def hub_messages(topics: Topics, software: str = __version__) -> list[tuple[str, bytes]]:
    """``(config topic, JSON payload)`` for the hub's own entities; publish retained."""
    return [
        (topics.hub_discovery(component, key), _encode(hub_config(topics, key, software)))
        for key, (component, _name, _extra) in HUB_ENTITIES.items()
    ]
