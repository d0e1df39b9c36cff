/**
 * web-apache: apache2 (mpm_event) + php-fpm 8.2 via proxy_fcgi. Sites-enabled holds the default
 * vhost (a recognizable 404) followed by sitefleet's vhost dir, so that the default stays first.
 */
import { existsSync } from 'node:fs';
import { makeHostDir, writeHostFile } from '../host';
import type { HostPlan } from '../plan';
import { DEFAULT_SERVER_BODY } from './nginx';
import { PHP_FPM_SOCKET, phpFpmService } from './php-fpm';
import { initScriptService, type RoleDefinition } from './role';

const SITE = '000-sitefleet-default';
/** Modules that conflict with php-fpm under mpm_event; disabled where this machine enabled them. */
const CONFLICTING_MODULES = ['php8.2', 'mpm_prefork', 'mpm_worker', 'fcgid'];

export function apacheVhostDir(host: HostPlan): string {
  return `/var/aegir/config/server_${host.name}/apache/vhost.d`;
}

export const apacheRole: RoleDefinition = {
  role: 'web-apache',
  async prepareFiles({ host }) {
    const aegir = { uid: host.aegirUid, gid: host.aegirGid };
    for (const dir of [
      '/var/aegir/config',
      `/var/aegir/config/server_${host.name}`,
      `/var/aegir/config/server_${host.name}/apache`,
    ]) {
      await makeHostDir(host, dir, aegir);
    }
    await makeHostDir(host, apacheVhostDir(host), aegir);
    await writeHostFile(
      host,
      `/etc/apache2/sites-available/${SITE}.conf`,
      [
        '# sitefleet test bed: the default vhost first, then the vhosts sitefleet writes.',
        `ServerName ${host.name}`,
        '<VirtualHost *:80>',
        '    ServerName sitefleet-testbed-default',
        '    DocumentRoot /var/www',
        '    Redirect 404 /',
        `    ErrorDocument 404 "${DEFAULT_SERVER_BODY}"`,
        '</VirtualHost>',
        `IncludeOptional ${apacheVhostDir(host)}/*`,
        '',
      ].join('\n'),
    );
  },
  async setup({ exec }) {
    const enabled = CONFLICTING_MODULES.filter((m) => existsSync(`/etc/apache2/mods-enabled/${m}.load`));
    if (enabled.length > 0) await exec(['a2dismod', '-q', ...enabled]);
    await exec(['a2enmod', '-q', 'mpm_event', 'proxy_fcgi', 'setenvif', 'rewrite']);
    await exec(['a2enconf', '-q', 'php8.2-fpm']);
    if (existsSync('/etc/apache2/sites-enabled/000-default.conf')) await exec(['a2dissite', '-q', '000-default']);
    await exec(['a2ensite', '-q', SITE]);
  },
  services: [phpFpmService, initScriptService('apache2', 80)],
  inventory: { http: { type: 'apache', port: 80, phpFpmSocket: PHP_FPM_SOCKET } },
};
