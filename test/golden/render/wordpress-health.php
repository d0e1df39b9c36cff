<?php
// Managed by sitefleet: platform p1. Changes here are overwritten.
// sitefleet's cheap check that this node serves a site: the same site selection as wp-config.php, then the
// site's title read from its own database with its own credentials, without booting WordPress (~1 ms instead
// of ~12 ms). Answers {"name":TITLE} like WordPress's REST index. Tells nothing that the site does not publish.
header('Content-Type: application/json');
header('Cache-Control: no-store');
function sitefleet_health_fail($status, $error) {
  http_response_code($status);
  echo json_encode(['error' => $error]), "\n";
  exit;
}
$sitefleet_host = strtolower(preg_replace('/:\d+$/', '', $_SERVER['HTTP_HOST'] ?? ''));
if (!preg_match('/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$/', $sitefleet_host)
    || !is_file(__DIR__ . '/sites/' . $sitefleet_host . '/wp-config.php')) {
  sitefleet_health_fail(404, 'no site is configured for this host');
}
$table_prefix = 'wp_';
require __DIR__ . '/sites/' . $sitefleet_host . '/wp-config.php';
if (!defined('DB_HOST') || !defined('DB_USER') || !defined('DB_PASSWORD') || !defined('DB_NAME')) {
  sitefleet_health_fail(500, 'the site configuration defines no database');
}
if (!preg_match('/^[A-Za-z0-9_]+$/', $table_prefix)) {
  sitefleet_health_fail(500, 'the site configuration has an unusable table prefix');
}
$sitefleet_db_host = DB_HOST;
$sitefleet_db_port = 3306;
if (preg_match('/^(.*):(\d+)$/', DB_HOST, $m)) {
  $sitefleet_db_host = $m[1];
  $sitefleet_db_port = (int) $m[2];
}
mysqli_report(MYSQLI_REPORT_OFF);
$db = mysqli_init();
$db->options(MYSQLI_OPT_CONNECT_TIMEOUT, 5);
if (!@$db->real_connect($sitefleet_db_host, DB_USER, DB_PASSWORD, DB_NAME, $sitefleet_db_port)) {
  sitefleet_health_fail(503, 'database: ' . mysqli_connect_error());
}
$result = $db->query("SELECT option_value FROM `{$table_prefix}options` WHERE option_name = 'blogname'");
$row = $result ? $result->fetch_row() : null;
if ($row === null) {
  sitefleet_health_fail(503, 'database: ' . ($result ? 'no blogname option (not installed?)' : $db->error));
}
echo json_encode(['name' => $row[0]]), "\n";
