<?php
// Managed by sitefleet: platform p1. Changes here are overwritten.
// Picks the site's configuration by HTTP host from sites/DOMAIN/wp-config.php (Aegir's layout; aliases are
// symlinks to their site's directory), then boots WordPress.
$sitefleet_host = strtolower(preg_replace('/:\d+$/', '', $_SERVER['HTTP_HOST'] ?? ''));
if (!preg_match('/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$/', $sitefleet_host)
    || !is_file(__DIR__ . '/sites/' . $sitefleet_host . '/wp-config.php')) {
  http_response_code(404);
  header('Content-Type: text/plain');
  echo "No site is configured for this host.\n";
  exit;
}
require __DIR__ . '/sites/' . $sitefleet_host . '/wp-config.php';
if (!defined('ABSPATH')) {
  define('ABSPATH', __DIR__ . '/');
}
require_once ABSPATH . 'wp-settings.php';
