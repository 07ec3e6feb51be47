"""``nurserycry hub``: run the hub until SIGTERM/SIGINT, then stop cleanly and flush.

Every flag has an environment form (``NURSERYCRY_HUB_...``, shown in
``--help``) and a config-file form (``--config hub.yaml``); flags win over env,
env over the file, the file over defaults. A bad configuration exits with
status 2 and a message naming the setting.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from nurserycry.shared.config import ConfigError, flag_overrides

from .settings import HubSettings

log = logging.getLogger(__name__)

# flag -> (settings path, env name, help)
FLAGS: dict[str, tuple[str, str, str]] = {
    "--broker": ("mqtt.broker", "NURSERYCRY_HUB_MQTT__BROKER", "mqtt://HOST:PORT or mqtts://..."),
    "--username": ("mqtt.username", "NURSERYCRY_HUB_MQTT__USERNAME", "broker user name"),
    "--password": ("mqtt.password", "NURSERYCRY_HUB_MQTT__PASSWORD", "broker password"),
    "--tls-ca-file": ("mqtt.tls_ca_file", "NURSERYCRY_HUB_MQTT__TLS_CA_FILE", "CA for mqtts://"),
    "--mqtt-protocol": ("mqtt.protocol", "NURSERYCRY_HUB_MQTT__PROTOCOL", "3.1.1 (default) or 5"),
    "--topic-prefix": ("mqtt.topic_prefix", "NURSERYCRY_HUB_MQTT__TOPIC_PREFIX", "topic prefix"),
    "--discovery-prefix": (
        "mqtt.discovery_prefix",
        "NURSERYCRY_HUB_MQTT__DISCOVERY_PREFIX",
        "Home Assistant discovery prefix",
    ),
    "--client-id": ("client_id", "NURSERYCRY_HUB_CLIENT_ID", "stable MQTT client id"),
    "--influx-url": ("influx_url", "NURSERYCRY_HUB_INFLUX_URL", "InfluxDB URL (off if unset)"),
    "--influx-org": ("influx_org", "NURSERYCRY_HUB_INFLUX_ORG", "InfluxDB organisation"),
    "--influx-bucket": ("influx_bucket", "NURSERYCRY_HUB_INFLUX_BUCKET", "InfluxDB bucket"),
    "--influx-token": ("influx_token", "NURSERYCRY_HUB_INFLUX_TOKEN", "InfluxDB API token"),
    "--influx-spool": ("influx_spool", "NURSERYCRY_HUB_INFLUX_SPOOL", "on-disk write queue"),
    "--model": ("model", "NURSERYCRY_HUB_MODEL", "model directory (default: shipped model)"),
    "--history-db": ("history_db", "NURSERYCRY_HUB_HISTORY_DB", "local SQLite history"),
    "--history": ("history", "NURSERYCRY_HUB_HISTORY", "auto | on | off"),
    "--log-level": ("log_level", "NURSERYCRY_HUB_LOG_LEVEL", "DEBUG, INFO, WARNING, ERROR"),
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nurserycry hub",
        description="Run the cry model on every nursery's features; publish states, events "
        "and Home Assistant discovery; write InfluxDB or a local history.",
        epilog="Every option can also come from its environment variable or from --config "
        "(YAML/TOML, same names as the settings, e.g. 'mqtt: {broker: ...}').",
    )
    p.add_argument("--config", type=Path, help="YAML or TOML settings file (NURSERYCRY_HUB_*)")
    for flag, (_path, env, text) in FLAGS.items():
        p.add_argument(flag, dest=flag[2:].replace("-", "_"), help=f"{text} [env {env}]")
    return p


def load_settings(args: argparse.Namespace) -> HubSettings:
    values = {
        path: getattr(args, flag[2:].replace("-", "_")) for flag, (path, _e, _t) in FLAGS.items()
    }
    # pydantic-settings deep-merges these with MQTT fields from env / file
    overrides = flag_overrides(values)
    return HubSettings.load(args.config, **overrides)


def main(argv: Sequence[str]) -> int:
    args = parser().parse_args(list(argv))
    try:
        settings = load_settings(args)
    except ConfigError as exc:
        sys.stderr.write(f"nurserycry hub: {exc}\n")
        return 2
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from .service import Hub  # noqa: PLC0415 (TFLite only once the config is good)

    try:
        hub = Hub(settings)
    except (OSError, ValueError, ImportError) as exc:
        sys.stderr.write(f"nurserycry hub: cannot start: {exc}\n")
        return 1
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s: stopping", signal.Signals(signum).name)
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        hub.start()
        while not stop.wait(1.0):
            pass
    finally:
        hub.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 0
