#!/bin/sh
# shoal-lab/mariadb entrypoint, after the official mariadb/mysql images' docker-entrypoint.sh.
#
#   MYSQL_ROOT_PASSWORD   root's password, for root@localhost and root@'%' (one of it,
#                         MYSQL_ALLOW_EMPTY_PASSWORD=yes or MYSQL_RANDOM_ROOT_PASSWORD=yes is
#                         required to initialise)
#   MYSQL_DATABASE        a database made at initialisation
#   MYSQL_USER, MYSQL_PASSWORD   a user made at initialisation (from any host), with all
#                         privileges on MYSQL_DATABASE
#   each also as MARIADB_<NAME> and as <NAME>_FILE (read from that file: docker secrets)
#
# On the first start (no /var/lib/mysql/mysql): mariadb-install-db, then a server without
# networking for the setup above and /docker-entrypoint-initdb.d/*.sql and *.sh; then exec
# mariadbd in the foreground as the mysql user, listening on all addresses (SIGTERM stops it
# cleanly).
set -e

file_env() {
    var=$1 default=$2
    eval "val=\${$var:-\${MARIADB_${var#MYSQL_}:-}}" "fileval=\${${var}_FILE:-}"
    if [ -n "$fileval" ]; then
        val=$(cat "$fileval")
    fi
    export "$var=${val:-$default}"
    unset "${var}_FILE"
}

sql_string() {  # a quoted SQL string literal
    printf "'%s'" "$(printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e "s/'/\\\\'/g")"
}

sql_name() {  # a quoted SQL identifier
    printf '`%s`' "$(printf '%s' "$1" | sed -e 's/`/``/g')"
}

if [ "${1#-}" != "$1" ]; then
    set -- mariadbd "$@"
fi

if [ "$1" != mariadbd ] && [ "$1" != mysqld ]; then
    exec "$@"
fi

datadir=/var/lib/mysql
socket=/run/mysqld/mysqld.sock

if [ "$(id -u)" = 0 ]; then
    mkdir -p "$datadir" /run/mysqld
    chown mysql:mysql "$datadir" /run/mysqld
    exec setpriv --reuid=mysql --regid=mysql --init-groups "$0" "$@"
fi

if [ ! -d "$datadir/mysql" ]; then
    for v in MYSQL_ROOT_PASSWORD MYSQL_DATABASE MYSQL_USER MYSQL_PASSWORD; do
        file_env "$v" ""
    done
    allow_empty=${MYSQL_ALLOW_EMPTY_PASSWORD:-${MARIADB_ALLOW_EMPTY_ROOT_PASSWORD:-}}
    random=${MYSQL_RANDOM_ROOT_PASSWORD:-${MARIADB_RANDOM_ROOT_PASSWORD:-}}
    if [ -z "$MYSQL_ROOT_PASSWORD" ] && [ -z "$allow_empty" ] && [ -z "$random" ]; then
        cat >&2 <<'EOF'
error: Database is uninitialized and password option is not specified
       You need to specify one of MYSQL_ROOT_PASSWORD, MYSQL_ALLOW_EMPTY_PASSWORD and
       MYSQL_RANDOM_ROOT_PASSWORD (or their MARIADB_ names)
EOF
        exit 1
    fi
    if [ -n "$random" ]; then
        MYSQL_ROOT_PASSWORD=$(head -c 18 /dev/urandom | base64)
        echo "GENERATED ROOT PASSWORD: $MYSQL_ROOT_PASSWORD"
    fi

    echo "Initializing database files"
    mariadb-install-db --datadir="$datadir" --auth-root-authentication-method=normal \
        --skip-test-db --skip-name-resolve --rpm > /dev/null
    echo "Database files initialized"

    mariadbd --skip-networking --socket="$socket" --datadir="$datadir" &
    pid=$!
    i=0
    until mariadb-admin --socket="$socket" --user=root ping > /dev/null 2>&1; do
        i=$((i + 1))
        if [ "$i" -gt 300 ] || ! kill -0 "$pid" 2>/dev/null; then
            echo "error: the temporary server did not start" >&2
            exit 1
        fi
        sleep 0.1
    done

    pw=$(sql_string "$MYSQL_ROOT_PASSWORD")
    {
        echo "SET @@SESSION.SQL_LOG_BIN=0;"
        echo "DELETE FROM mysql.global_priv WHERE User = '';"
        echo "DROP USER IF EXISTS root@'127.0.0.1', root@'::1';"
        echo "ALTER USER root@localhost IDENTIFIED BY $pw;"
        echo "CREATE USER root@'%' IDENTIFIED BY $pw;"
        echo "GRANT ALL ON *.* TO root@'%' WITH GRANT OPTION;"
        if [ -n "$MYSQL_DATABASE" ]; then
            echo "CREATE DATABASE IF NOT EXISTS $(sql_name "$MYSQL_DATABASE");"
        fi
        if [ -n "$MYSQL_USER" ] && [ -n "$MYSQL_PASSWORD" ]; then
            user=$(sql_string "$MYSQL_USER")
            echo "CREATE USER $user@'%' IDENTIFIED BY $(sql_string "$MYSQL_PASSWORD");"
            if [ -n "$MYSQL_DATABASE" ]; then
                echo "GRANT ALL ON $(sql_name "$MYSQL_DATABASE").* TO $user@'%';"
            fi
        fi
        echo "FLUSH PRIVILEGES;"
    } | mariadb --socket="$socket" --user=root --protocol=socket

    for f in /docker-entrypoint-initdb.d/*; do
        case "$f" in
            *.sh) echo "$0: running $f"; . "$f" ;;
            *.sql)
                echo "$0: running $f"
                MYSQL_PWD=$MYSQL_ROOT_PASSWORD mariadb --socket="$socket" --user=root \
                    ${MYSQL_DATABASE:+--database="$MYSQL_DATABASE"} < "$f"
                ;;
            *) if [ -e "$f" ]; then echo "$0: ignoring $f"; fi ;;
        esac
    done

    kill "$pid"
    wait "$pid"
    unset MYSQL_ROOT_PASSWORD MYSQL_PASSWORD
    echo "MariaDB init process done. Ready for start up."
fi

exec "$@"
