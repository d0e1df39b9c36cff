/**
 * `sitefleet server repin NAME`: reads the host key the server offers now (through the API, which connects to it),
 * shows it beside the pinned one, and pins it once confirmed (--yes, or yes at the prompt). The key is re-read by
 * the API at that moment; nothing is pinned that the operator has not seen.
 */
import type { Server } from '../domain/model';
import { seg, type ApiClient } from './api-client';

export interface HostKeyReport {
  server: string;
  host: string;
  port: number;
  pinned: string;
  offered: string;
  type: string;
  changed: boolean;
}

export interface RepinIo {
  out: (line: string) => void;
  /** Asks yes/no; undefined when nobody can answer (no terminal). */
  confirm?: (question: string) => Promise<boolean>;
}

export class RepinRefused extends Error {}

/** @returns whether a new key was pinned */
export async function repinServer(api: ApiClient, name: string, yes: boolean, io: RepinIo): Promise<boolean> {
  const report = await api.get<HostKeyReport>(`/v1/servers/${seg(name)}/host-key`);
  io.out(`server ${report.server} (${report.host}, ssh port ${report.port})`);
  io.out(`  pinned:  ${report.pinned}`);
  io.out(`  offered: ${report.offered} (${report.type})`);
  if (!report.changed) {
    io.out('the server offers the pinned key: nothing to change');
    return false;
  }
  io.out(
    'Check the new fingerprint on the server itself (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub) before ' +
      'trusting it: a changed key can also mean someone is in between.',
  );
  if (!yes) {
    if (!io.confirm) throw new RepinRefused('no terminal to confirm the new key; rerun with --yes to pin it');
    if (!(await io.confirm(`Pin ${report.offered} for ${report.server}?`))) {
      io.out('not changed');
      return false;
    }
  }
  const current = await api.get<Server>(`/v1/servers/${seg(name)}`);
  await api.request('PUT', `/v1/servers/${seg(name)}`, {
    ...current,
    ssh: { ...current.ssh, hostKey: report.offered },
  });
  io.out(`pinned ${report.offered} for ${report.server}`);
  return true;
}
