#!/bin/sh
# Container start: (re)write the hub and Home Assistant users from the env file
# into the password file, keep every nursery user already in it, run mosquitto.
# Nursery users are added with compose/add-nursery.sh (kept in the data volume).
# (MOSQUITTO_DATA_DIR, MOSQUITTO_CONF and MOSQUITTO_BIN exist for the tests.)
set -eu
DATA=${MOSQUITTO_DATA_DIR:-/mosquitto/data}
CONF=${MOSQUITTO_CONF:-/mosquitto/config/mosquitto.conf}
PASSWD=$DATA/passwd
: "${MQTT_HUB_PASSWORD:?MQTT_HUB_PASSWORD is not set (compose/.env)}"
: "${MQTT_HA_PASSWORD:?MQTT_HA_PASSWORD is not set (compose/.env)}"
touch "$PASSWD"
chmod 0600 "$PASSWD"
mosquitto_passwd -b "$PASSWD" hub "$MQTT_HUB_PASSWORD"
mosquitto_passwd -b "$PASSWD" homeassistant "$MQTT_HA_PASSWORD"
if id mosquitto >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    chown mosquitto:mosquitto "$PASSWD"
fi
exec "${MOSQUITTO_BIN:-mosquitto}" -c "$CONF"
