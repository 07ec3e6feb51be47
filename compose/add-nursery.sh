#!/bin/sh
# Add a nursery's broker user (or give it a new password) and print the lines
# for that Raspberry Pi's /etc/nurserycry/edge.env.
#
#   compose/add-nursery.sh NURSERY          a random password
#   compose/add-nursery.sh NURSERY -        the password from standard input
#                                           (e.g. from a password manager)
#
# Never on the command line: `ps` shows every process's arguments. The password
# reaches mosquitto_passwd on its standard input; the password file stays 0600.
#
# The user name IS the nursery name: the ACL lets user N publish only under
# nurserycry/N/... Runs mosquitto_passwd inside the compose mosquitto container
# and reloads it (SIGHUP). With MOSQUITTO_PASSWD_FILE=path it edits that file
# with the local mosquitto_passwd instead (a broker outside compose).
set -eu
umask 077
usage="usage: add-nursery.sh NURSERY [-]   (- : read the password from standard input)"
name=${1:?$usage}
case $name in
hub | homeassistant | admin)
    echo "add-nursery.sh: '$name' is a service user, not a nursery name" >&2
    exit 2
    ;;
esac
if ! printf '%s\n' "$name" | grep -Eq '^[a-z0-9][a-z0-9_-]{0,47}$'; then
    echo "add-nursery.sh: invalid nursery name '$name': lower-case letters, digits, '-' and '_' (at most 48), e.g. nursery-1" >&2
    exit 2
fi
case ${2:-} in
"") password=$(head -c 24 /dev/urandom | base64 | tr -d '/+=\n') ;;
-)
    IFS= read -r password || true
    if [ -z "$password" ]; then
        echo "add-nursery.sh: no password on standard input" >&2
        exit 2
    fi
    ;;
*)
    echo "add-nursery.sh: do not put a password on the command line (ps shows it); pipe it in with '-', or let the script choose one" >&2
    exit 2
    ;;
esac
case $password in
change-me*)
    echo "add-nursery.sh: choose a real password, not the example value" >&2
    exit 2
    ;;
esac

# Home Assistant names entities after the nursery with '-' as '_': a-b and a_b would share them.
users() { cut -d: -f1 "$1" 2>/dev/null || true; }
twin() { # existing users whose name differs from $name only by '-' against '_'
    key=$(printf '%s' "$name" | tr '-' '_')
    while IFS= read -r user; do
        [ "$user" != "$name" ] && [ "$(printf '%s' "$user" | tr '-' '_')" = "$key" ] && echo "$user"
    done
    return 0
}

if [ -n "${MOSQUITTO_PASSWD_FILE:-}" ]; then
    [ -e "$MOSQUITTO_PASSWD_FILE" ] || : >"$MOSQUITTO_PASSWD_FILE"
    clash=$(users "$MOSQUITTO_PASSWD_FILE" | twin)
else
    cd "$(dirname "$0")"
    clash=$(docker-compose exec -T mosquitto cut -d: -f1 /mosquitto/data/passwd | tr -d '\r' | twin)
fi
if [ -n "$clash" ]; then
    echo "add-nursery.sh: '$name' would share Home Assistant entity ids with the nursery '$clash'; choose another name" >&2
    exit 2
fi

if [ -n "${MOSQUITTO_PASSWD_FILE:-}" ]; then
    printf '%s\n%s\n' "$password" "$password" | mosquitto_passwd "$MOSQUITTO_PASSWD_FILE" "$name" >/dev/null
    chmod 0600 "$MOSQUITTO_PASSWD_FILE"
else
    printf '%s\n%s\n' "$password" "$password" | docker-compose exec -T mosquitto sh -c \
        'umask 077 && mosquitto_passwd "$0" "$1" >/dev/null && chmod 0600 "$0" && chown mosquitto:mosquitto "$0"' \
        /mosquitto/data/passwd "$name"
    docker-compose kill -s HUP mosquitto >/dev/null
fi

cat <<END
Broker user '$name' is ready. On that nursery's Raspberry Pi, in /etc/nurserycry/edge.env:
NURSERYCRY_EDGE_NURSERY=$name
NURSERYCRY_EDGE_MQTT__USERNAME=$name
NURSERYCRY_EDGE_MQTT__PASSWORD=$password
END
