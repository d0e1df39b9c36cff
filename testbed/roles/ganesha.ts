/**
 * nfs: nfs-ganesha 4.3 (userspace NFS v3/v4, VFS FSAL) on the host's IP, after `rpcbind -w`.
 * It starts with no exports. EXPORT blocks belong in GANESHA_EXPORTS_FILE (included by
 * GANESHA_CONFIG_FILE); after changing it, `kill -HUP $(cat GANESHA_PID_FILE)` re-reads the exports.
 */
import { writeHostFile } from '../host';
import type { RoleDefinition, ServiceSpec } from './role';

export const GANESHA_CONFIG_FILE = '/etc/ganesha/ganesha.conf';
export const GANESHA_EXPORTS_FILE = '/etc/ganesha/exports.conf';
export const GANESHA_PID_FILE = '/run/ganesha/ganesha.pid';
export const NFS_PORT = 2049;

const rpcbindService: ServiceSpec = {
  name: 'rpcbind',
  start: [['rpcbind', '-w']],
  stop: [['start-stop-daemon', '--stop', '--quiet', '--oknodo', '--retry', '5', '--exec', '/usr/sbin/rpcbind']],
  port: 111,
};

const ganeshaService: ServiceSpec = {
  name: 'nfs-ganesha',
  start: [
    ['mkdir', '-p', '/run/ganesha'],
    ['ganesha.nfsd', '-f', GANESHA_CONFIG_FILE, '-L', '/var/log/ganesha/ganesha.log', '-p', GANESHA_PID_FILE],
  ],
  stop: [['start-stop-daemon', '--stop', '--quiet', '--oknodo', '--retry', '10', '--pidfile', GANESHA_PID_FILE]],
  port: NFS_PORT,
};

export const ganeshaRole: RoleDefinition = {
  role: 'nfs',
  async prepareFiles({ bed, host }) {
    await writeHostFile(
      host,
      GANESHA_CONFIG_FILE,
      [
        '# sitefleet test bed: nfs-ganesha on this host only. EXPORT blocks go in the included file.',
        'NFS_CORE_PARAM {',
        `    Bind_addr = ${host.ip};`,
        '    Enable_NLM = false;',
        '    Enable_RQUOTA = false;',
        '    Protocols = 3, 4;',
        '}',
        'NFSV4 {',
        '    Graceless = true;',
        '    Only_Numeric_Owners = true;',
        '}',
        'EXPORT_DEFAULTS {',
        '    Access_Type = None;',
        '}',
        `%include "${GANESHA_EXPORTS_FILE}"`,
        '',
      ].join('\n'),
    );
    await writeHostFile(
      host,
      GANESHA_EXPORTS_FILE,
      [
        '# EXPORT blocks managed by sitefleet. Reload: kill -HUP $(cat /run/ganesha/ganesha.pid)',
        '# Example:',
        '# EXPORT { Export_Id = 10; Path = /var/aegir/platforms; Pseudo = /var/aegir/platforms;',
        '#          Protocols = 3, 4; Squash = No_Root_Squash; FSAL { Name = VFS; }',
        `#          CLIENT { Clients = ${bed.subnet}; Access_Type = RW; } }`,
        '',
      ].join('\n'),
    );
  },
  services: [rpcbindService, ganeshaService],
  inventory: { nfs: { flavour: 'ganesha' } },
};
