#!/bin/sh
# shoal-lab/wordpress entrypoint: Debian's wordpress under apache2 + mod_php in the
# foreground, its settings from the environment (read by /etc/wordpress/config-default.php):
#
#   WORDPRESS_DB_HOST       host[:port] of the MySQL/MariaDB server (default mysql)
#   WORDPRESS_DB_USER       (default root)
#   WORDPRESS_DB_PASSWORD
#   WORDPRESS_DB_NAME       (default wordpress)
#   WORDPRESS_TABLE_PREFIX  (default wp_)
#   WORDPRESS_ALLOW_EXTERNAL_HTTP   set: WordPress may make requests to other hosts
#                           (by default they fail at once: a lab has no internet)
#   each also as <NAME>_FILE: read from that file (docker secrets, /run/secrets/…)
#
# Salts not given as WORDPRESS_AUTH_KEY … are made once per container, in
# /var/lib/wordpress/salts.php. Logs go to stdout/stderr; SIGTERM stops apache.
set -e

for var in WORDPRESS_DB_HOST WORDPRESS_DB_USER WORDPRESS_DB_PASSWORD WORDPRESS_DB_NAME \
    WORDPRESS_TABLE_PREFIX; do
    eval "file=\${${var}_FILE:-}"
    if [ -n "$file" ]; then
        export "$var=$(cat "$file")"
        unset "${var}_FILE"
    fi
done

salts=/var/lib/wordpress/salts.php
if [ ! -e "$salts" ]; then
    {
        echo '<?php'
        for key in AUTH_KEY SECURE_AUTH_KEY LOGGED_IN_KEY NONCE_KEY AUTH_SALT \
            SECURE_AUTH_SALT LOGGED_IN_SALT NONCE_SALT; do
            echo "defined('$key') or define('$key', '$(head -c 48 /dev/urandom | base64 | tr -d '\n')');"
        done
    } > "$salts"
fi

if [ "$1" = apache2 ]; then
    # The variables apache2ctl would set (user, run and lock directories).
    . /etc/apache2/envvars
    mkdir -p "$APACHE_RUN_DIR" "$APACHE_LOCK_DIR"
    rm -f "$APACHE_PID_FILE"
fi

exec "$@"
