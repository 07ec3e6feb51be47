#!/bin/sh
# Add a nursery's broker user (or give it a new password) and print the lines
# for that Raspberry Pi's /etc/nurserycry/edge.env.
#
#   compose/add-nursery.sh NURSERY [PASSWORD]     (password: random if omitted)
#
# The user name IS the nursery name: the ACL lets user N publish only under
# nurserycry/N/... Runs mosquitto_passwd inside the compose mosquitto container
# and reloads it (SIGHUP). With MOSQUITTO_PASSWD_FILE=path it edits that file
# with the local mosquitto_passwd instead (a broker outside compose).
set -eu
usage="usage: add-nursery.sh NURSERY [PASSWORD]"
name=${1:?$usage}
case $name in
hub | homeassistant)
    echo "add-nursery.sh: '$name' is a service user, not a nursery name" >&2
    exit 2
    ;;
esac
if ! printf '%s\n' "$name" | grep -Eq '^[a-z0-9][a-z0-9_-]{0,47}$'; then
    echo "add-nursery.sh: invalid nursery name '$name': lower-case letters, digits, '-' and '_' (at most 48), e.g. nursery-1" >&2
    exit 2
fi
password=${2:-$(head -c 24 /dev/urandom | base64 | tr -d '/+=\n')}

if [ -n "${MOSQUITTO_PASSWD_FILE:-}" ]; then
    [ -e "$MOSQUITTO_PASSWD_FILE" ] || : >"$MOSQUITTO_PASSWD_FILE"
    mosquitto_passwd -b "$MOSQUITTO_PASSWD_FILE" "$name" "$password"
else
    cd "$(dirname "$0")"
    docker-compose exec -T mosquitto sh -c \
        'mosquitto_passwd -b "$0" "$1" "$2" && chown mosquitto:mosquitto "$0"' \
        /mosquitto/data/passwd "$name" "$password"
    docker-compose kill -s HUP mosquitto >/dev/null
fi

cat <<END
Broker user '$name' is ready. On that nursery's Raspberry Pi, in /etc/nurserycry/edge.env:
NURSERYCRY_EDGE_NURSERY=$name
NURSERYCRY_EDGE_MQTT__USERNAME=$name
NURSERYCRY_EDGE_MQTT__PASSWORD=$password
END
