<?php
// Managed by sitefleet: site example.com on platform p1. Changes here are overwritten.
// Included by the platform's wp-config.php when a request's host is example.com or one of its aliases.
define('DB_NAME', 'example_com_a1b2c3d4');
define('DB_USER', 'example_com_a1b2c3d4');
define('DB_PASSWORD', 'pW-0123456789abcdef_ABCDEFGHIJKL');
define('DB_HOST', '10.0.0.20:3306');
define('DB_CHARSET', 'utf8mb4');
define('DB_COLLATE', '');
define('AUTH_KEY', 'auth_key-0123456789abcdef');
define('NONCE_SALT', 'nonce_salt-0123456789abcdef');
// Uploads live in the site's own files directory (shared with the pack's slaves through the platform share).
define('UPLOADS', 'sites/example.com/files');
$table_prefix = 'wp_';
