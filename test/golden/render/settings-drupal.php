<?php
// Managed by sitefleet: site example.com on platform p1. Changes here are overwritten.
$databases['default']['default'] = [
  'driver' => 'mysql',
  'database' => 'example_com_a1b2c3d4',
  'username' => 'example_com_a1b2c3d4',
  'password' => 'pW-0123456789abcdef_ABCDEFGHIJKL',
  'host' => '10.0.0.20',
  'port' => '3306',
  'prefix' => '',
  'collation' => 'utf8mb4_general_ci',
];
$settings['hash_salt'] = 'salt-0123456789abcdef0123456789abcdef012345';
$settings['file_public_path'] = 'sites/example.com/files';
$settings['file_private_path'] = '/var/aegir/platforms/p1/sites/example.com/private';
// Drupal 7 reads the same paths from $conf.
$conf['file_public_path'] = 'sites/example.com/files';
$conf['file_private_path'] = '/var/aegir/platforms/p1/sites/example.com/private';
$drupal_hash_salt = 'salt-0123456789abcdef0123456789abcdef012345';
