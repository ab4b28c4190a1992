<?php
/*
 * shoal-lab/wordpress: the settings of Debian's wordpress (/etc/wordpress/config-default.php,
 * read for every site name) from the environment, as the official image does:
 * WORDPRESS_DB_HOST (default mysql), WORDPRESS_DB_USER (default root),
 * WORDPRESS_DB_PASSWORD, WORDPRESS_DB_NAME (default wordpress), WORDPRESS_TABLE_PREFIX
 * (default wp_), WORDPRESS_DEBUG; the entrypoint has resolved the *_FILE variants.
 *
 * A lab has no internet: WordPress's requests to other hosts (translations, updates,
 * api.wordpress.org) fail at once instead of waiting for DNS, unless
 * WORDPRESS_ALLOW_EXTERNAL_HTTP is set; no automatic updates.
 */
function shoal_env($name, $default = '') {
    $value = getenv($name);
    return ($value === false || $value === '') ? $default : $value;
}

define('DB_NAME', shoal_env('WORDPRESS_DB_NAME', 'wordpress'));
define('DB_USER', shoal_env('WORDPRESS_DB_USER', 'root'));
define('DB_PASSWORD', shoal_env('WORDPRESS_DB_PASSWORD'));
define('DB_HOST', shoal_env('WORDPRESS_DB_HOST', 'mysql'));
define('DB_CHARSET', 'utf8mb4');
define('DB_COLLATE', '');
define('WP_CONTENT_DIR', '/var/lib/wordpress/wp-content');
define('WP_DEBUG', shoal_env('WORDPRESS_DEBUG') !== '');
define('FS_METHOD', 'direct');
define('WP_HTTP_BLOCK_EXTERNAL', shoal_env('WORDPRESS_ALLOW_EXTERNAL_HTTP') === '');
define('AUTOMATIC_UPDATER_DISABLED', true);
$table_prefix = shoal_env('WORDPRESS_TABLE_PREFIX', 'wp_');

/* The salts: from the environment if given, else from the entrypoint's file. */
foreach (array('AUTH_KEY', 'SECURE_AUTH_KEY', 'LOGGED_IN_KEY', 'NONCE_KEY', 'AUTH_SALT',
               'SECURE_AUTH_SALT', 'LOGGED_IN_SALT', 'NONCE_SALT') as $key) {
    $value = shoal_env('WORDPRESS_' . $key);
    if ($value !== '') {
        define($key, $value);
    }
}
if (file_exists('/var/lib/wordpress/salts.php')) {
    include_once '/var/lib/wordpress/salts.php';
}
