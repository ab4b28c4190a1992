#!/bin/sh
# shoal-lab/postgres entrypoint, after the official postgres image's docker-entrypoint.sh.
#
#   POSTGRES_PASSWORD   the superuser's password (required to initialise, unless
#                       POSTGRES_HOST_AUTH_METHOD=trust)
#   POSTGRES_USER       the superuser (default postgres)
#   POSTGRES_DB         a database made at initialisation (default: $POSTGRES_USER)
#   PGDATA              the data directory (default /var/lib/postgresql/data)
#   POSTGRES_INITDB_ARGS        more initdb arguments
#   POSTGRES_HOST_AUTH_METHOD   pg_hba method for remote hosts (default scram-sha-256)
#   each also as <NAME>_FILE: read from that file (docker secrets, /run/secrets/…)
#
# On the first start (no $PGDATA/PG_VERSION): initdb, password auth for all remote hosts,
# listen on '*', make $POSTGRES_DB, run /docker-entrypoint-initdb.d/*.sql and *.sh; then exec
# postgres in the foreground as the postgres user (SIGINT/SIGTERM stop it cleanly).
set -e

file_env() {
    var=$1 default=$2
    eval "val=\${$var:-}" "fileval=\${${var}_FILE:-}"
    if [ -n "$val" ] && [ -n "$fileval" ]; then
        echo "error: both $var and ${var}_FILE are set" >&2
        exit 1
    fi
    if [ -n "$fileval" ]; then
        val=$(cat "$fileval")
    fi
    export "$var=${val:-$default}"
    unset "${var}_FILE"
}

# "docker run IMAGE -c foo=bar" means postgres with those options.
if [ "${1#-}" != "$1" ]; then
    set -- postgres "$@"
fi

if [ "$1" != postgres ]; then
    exec "$@"
fi

export PGDATA="${PGDATA:-/var/lib/postgresql/data}"

if [ "$(id -u)" = 0 ]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    chmod 700 "$PGDATA"
    chmod 2775 /var/run/postgresql
    chown postgres:postgres "$PGDATA" /var/run/postgresql
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    file_env POSTGRES_PASSWORD ""
    file_env POSTGRES_USER postgres
    file_env POSTGRES_DB "$POSTGRES_USER"
    file_env POSTGRES_INITDB_ARGS ""
    auth="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"
    if [ -z "$POSTGRES_PASSWORD" ] && [ "$auth" != trust ]; then
        cat >&2 <<'EOF'
Error: Database is uninitialized and superuser password is not specified.
       Set POSTGRES_PASSWORD (or POSTGRES_PASSWORD_FILE) to a non-empty value for the
       superuser, or POSTGRES_HOST_AUTH_METHOD=trust to allow all connections without a
       password (not recommended).
EOF
        exit 1
    fi

    pwfile=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
    # shellcheck disable=SC2086  # POSTGRES_INITDB_ARGS is a list of words
    initdb --username="$POSTGRES_USER" --pwfile="$pwfile" $POSTGRES_INITDB_ARGS
    rm -f "$pwfile"

    printf '\nhost all all all %s\n' "$auth" >> "$PGDATA/pg_hba.conf"
    printf "\nlisten_addresses = '*'\n" >> "$PGDATA/postgresql.conf"

    # A server on the socket only, for the setup below.
    pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start
    psql_() { psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password "$@"; }
    if [ "$POSTGRES_DB" != postgres ]; then
        psql_ --dbname postgres --set db="$POSTGRES_DB" <<'EOF'
CREATE DATABASE :"db";
EOF
    fi
    for f in /docker-entrypoint-initdb.d/*; do
        case "$f" in
            *.sh) echo "$0: running $f"; . "$f" ;;
            *.sql) echo "$0: running $f"; psql_ --dbname "$POSTGRES_DB" -f "$f" ;;
            *) if [ -e "$f" ]; then echo "$0: ignoring $f"; fi ;;
        esac
    done
    pg_ctl -D "$PGDATA" -m fast -w stop
    unset POSTGRES_PASSWORD
    echo "PostgreSQL init process complete; ready for start up."
fi

exec "$@"
