/**
 * sshd runs on every host: key-only, on the host's own IP (configured by host.ts).
 */
import type { ServiceSpec } from './role';

export const sshService: ServiceSpec = {
  name: 'ssh',
  start: [['/usr/sbin/sshd']],
  stop: [['start-stop-daemon', '--stop', '--quiet', '--oknodo', '--retry', '5', '--pidfile', '/run/sshd.pid']],
  port: 22,
};
