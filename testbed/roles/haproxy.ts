/**
 * lb: haproxy on the host's IP, port 80, balancing round-robin across the bed's web hosts. Each
 * response names the backend that served it in the X-Sitefleet-Backend header. sitefleet may
 * rewrite HAPROXY_CONFIG_FILE and reload with `service haproxy reload`.
 */
import { writeHostFile } from '../host';
import { initScriptService, type RoleDefinition } from './role';

export const HAPROXY_CONFIG_FILE = '/etc/haproxy/haproxy.cfg';
export const LB_PORT = 80;
export const BACKEND_HEADER = 'X-Sitefleet-Backend';

export const haproxyRole: RoleDefinition = {
  role: 'lb',
  async prepareFiles({ bed, host }) {
    const webHosts = bed.hosts.filter((h) => h.roles.includes('web-nginx') || h.roles.includes('web-apache'));
    await writeHostFile(
      host,
      HAPROXY_CONFIG_FILE,
      [
        "# sitefleet test bed: round-robin across the bed's web hosts.",
        'global',
        '    chroot /var/lib/haproxy',
        '    stats socket /run/haproxy/admin.sock mode 660 level admin',
        '    user haproxy',
        '    group haproxy',
        '    daemon',
        '',
        'defaults',
        '    mode http',
        '    timeout connect 2s',
        '    timeout client 30s',
        '    timeout server 30s',
        '',
        'frontend web',
        `    bind ${host.ip}:${LB_PORT}`,
        '    default_backend web_hosts',
        '',
        'backend web_hosts',
        '    balance roundrobin',
        `    http-response set-header ${BACKEND_HEADER} %[srv_name]`,
        ...webHosts.map((h) => `    server ${h.name} ${h.ip}:80 check inter 1s fall 2 rise 1`),
        '',
      ].join('\n'),
    );
  },
  services: [initScriptService('haproxy', LB_PORT)],
};
