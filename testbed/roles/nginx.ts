/**
 * web-nginx: nginx + php-fpm 8.2. nginx includes sitefleet's vhost dir inside http{}; the default
 * server answers every unknown name with a recognizable 404.
 */
import { makeHostDir, writeHostFile } from '../host';
import type { HostPlan } from '../plan';
import { PHP_FPM_SOCKET, phpFpmService } from './php-fpm';
import { initScriptService, type RoleDefinition } from './role';

export const DEFAULT_SERVER_BODY = 'sitefleet-testbed default';

export function nginxVhostDir(host: HostPlan): string {
  return `/var/aegir/config/server_${host.name}/nginx/vhost.d`;
}

export const nginxRole: RoleDefinition = {
  role: 'web-nginx',
  async prepareFiles({ host }) {
    const aegir = { uid: host.aegirUid, gid: host.aegirGid };
    for (const dir of [
      '/var/aegir/config',
      `/var/aegir/config/server_${host.name}`,
      `/var/aegir/config/server_${host.name}/nginx`,
    ]) {
      await makeHostDir(host, dir, aegir);
    }
    await makeHostDir(host, nginxVhostDir(host), aegir);
    // Shadows Debian's default site, which would serve /var/www/html on every unknown name.
    await writeHostFile(
      host,
      '/etc/nginx/sites-enabled/default',
      [
        'server {',
        '    listen 80 default_server;',
        '    server_name _;',
        '    default_type text/plain;',
        `    return 404 "${DEFAULT_SERVER_BODY}\\n";`,
        '}',
        '',
      ].join('\n'),
    );
    // conf.d/*.conf is included inside http{}.
    await writeHostFile(host, '/etc/nginx/conf.d/sitefleet.conf', `include ${nginxVhostDir(host)}/*;\n`);
  },
  services: [phpFpmService, initScriptService('nginx', 80)],
  inventory: { http: { type: 'nginx', port: 80, phpFpmSocket: PHP_FPM_SOCKET } },
};
