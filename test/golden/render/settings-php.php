<?php
// Managed by sitefleet: site example.com on platform p1. Changes here are overwritten.
// `$settings = require __DIR__ . '/sites/' . $host . '/settings.php';` gives the application its database.
return [
  'database' => [
    'name' => 'example_com_a1b2c3d4',
    'user' => 'example_com_a1b2c3d4',
    'password' => 'pW-0123456789abcdef_ABCDEFGHIJKL',
    'host' => '10.0.0.20',
    'port' => '3306',
  ],
  'files' => 'sites/example.com/files',
  'private' => '/var/aegir/platforms/p1/sites/example.com/private',
];
