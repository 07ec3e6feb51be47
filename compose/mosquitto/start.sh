#!/bin/sh
# Container start: (re)write the hub and Home Assistant users from the env file
# into the password file, keep every nursery user already in it, run mosquitto.
# Nursery users are added with compose/add-nursery.sh (kept in the data volume).
set -eu
PASSWD=/mosquitto/data/passwd
: "${MQTT_HUB_PASSWORD:?MQTT_HUB_PASSWORD is not set (compose/.env)}"
: "${MQTT_HA_PASSWORD:?MQTT_HA_PASSWORD is not set (compose/.env)}"
touch "$PASSWD"
chmod 0600 "$PASSWD"
mosquitto_passwd -b "$PASSWD" hub "$MQTT_HUB_PASSWORD"
mosquitto_passwd -b "$PASSWD" homeassistant "$MQTT_HA_PASSWORD"
chown mosquitto:mosquitto "$PASSWD"
exec mosquitto -c /mosquitto/config/mosquitto.conf
