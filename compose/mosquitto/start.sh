#!/bin/sh
# Container start: (re)write the hub, Home Assistant and admin users from the env file
# into the password file, keep every nursery user already in it, run mosquitto.
# Nursery users are added with compose/add-nursery.sh (kept in the data volume).
# Passwords go to mosquitto_passwd on its standard input, never on a command line
# (`ps` shows those); the password file is created 0600 and owned by mosquitto.
# (MOSQUITTO_DATA_DIR, MOSQUITTO_CONF and MOSQUITTO_BIN exist for the tests.)
set -eu
umask 077
DATA=${MOSQUITTO_DATA_DIR:-/mosquitto/data}
CONF=${MOSQUITTO_CONF:-/mosquitto/config/mosquitto.conf}
PASSWD=$DATA/passwd
: "${MQTT_HUB_PASSWORD:?MQTT_HUB_PASSWORD is not set (compose/.env)}"
: "${MQTT_HA_PASSWORD:?MQTT_HA_PASSWORD is not set (compose/.env)}"
: "${MQTT_ADMIN_PASSWORD:?MQTT_ADMIN_PASSWORD is not set (compose/.env)}"
for var in MQTT_HUB_PASSWORD MQTT_HA_PASSWORD MQTT_ADMIN_PASSWORD; do
    eval "value=\$$var"
    case $value in
    change-me*)
        echo "start.sh: $var still has the example value from env.example; set a real password in compose/.env (e.g. openssl rand -base64 18)" >&2
        exit 2
        ;;
    esac
done
set_password() { # user password: the password travels on stdin only (printf is a builtin)
    printf '%s\n%s\n' "$2" "$2" | mosquitto_passwd "$PASSWD" "$1" >/dev/null
}
touch "$PASSWD"
chmod 0600 "$PASSWD"
set_password hub "$MQTT_HUB_PASSWORD"
set_password homeassistant "$MQTT_HA_PASSWORD"
set_password admin "$MQTT_ADMIN_PASSWORD"
if id mosquitto >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    chown mosquitto:mosquitto "$PASSWD"
fi
exec "${MOSQUITTO_BIN:-mosquitto}" -c "$CONF"
