/**
 * db: MariaDB listening on the host's IP, with an admin account for sitefleet (password in the bed
 * dir on the controller) and root access over the unix socket (Debian's default), so that `mysql`
 * run as root over ssh works.
 */
import { writeHostFile } from '../host';
import { initScriptService, type RoleDefinition } from './role';

export const DB_ADMIN_USER = 'sitefleet_admin';
export const MYSQL_PORT = 3306;

export const mariadbRole: RoleDefinition = {
  role: 'db',
  async prepareFiles({ host }) {
    await writeHostFile(
      host,
      '/etc/mysql/mariadb.conf.d/99-sitefleet-testbed.cnf',
      ['# sitefleet test bed', '[mysqld]', `bind-address = ${host.ip}`, 'skip-name-resolve', ''].join('\n'),
    );
  },
  services: [initScriptService('mariadb', MYSQL_PORT)],
  async provision({ exec, dbAdminPassword }) {
    // The password is generated hex (no quoting issues) and goes over stdin, never argv.
    const sql = [
      `CREATE USER IF NOT EXISTS '${DB_ADMIN_USER}'@'%' IDENTIFIED BY '${dbAdminPassword}';`,
      `GRANT ALL PRIVILEGES ON *.* TO '${DB_ADMIN_USER}'@'%' WITH GRANT OPTION;`,
      'FLUSH PRIVILEGES;',
      '',
    ].join('\n');
    await exec(['mysql', '--batch'], { input: sql });
  },
  inventory: { db: { type: 'mariadb', port: MYSQL_PORT } },
};
