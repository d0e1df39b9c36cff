/**
 * The export side of a pack's share, on the NFS server: `kernel` — a managed line in /etc/exports, then
 * `exportfs -ra`; `ganesha` — a managed EXPORT block in the nfs-ganesha config, then a reload (SIGHUP). Also the
 * read check of the export over the real NFS protocol from a slave.
 */
import { createHash } from 'node:crypto';
import { serverSchema, type Server } from '../domain/model';
import type { PackShare } from '../domain/operations';
import { activityAttempt, activityCancellationSignal } from './support/activity-context';
import { parseInput } from './support/activity-input';
import { badInput, FailureType, permanentFailure, transientFailure } from '../common/failures';
import { ensureManagedBlock, readManagedBlock, removeManagedBlock } from './transport/managed-block';
import { editRemoteFile, readRemoteFile } from './transport/remote-file';
import { renderExportsLine, renderGaneshaExport } from './render';
import { runRemote } from './transport/ssh-command';
import {
  EXPORTS_FILE,
  GANESHA_CONFIG_FILE,
  GANESHA_PID_FILES,
  NFS_TIMEOUT_MS,
  packMarker,
  parseShare,
  SHARE_MARKER_PREFIX,
  SHARE_SENTINEL,
  shareHost,
} from './nfs-share';

/** Export ids already used in a ganesha config outside this pack's block. */
function usedExportIds(text: string, marker: string): Set<number> {
  const outside = removeManagedBlock(text, marker);
  return new Set([...outside.matchAll(/^\s*Export_Id\s*=\s*(\d+)\s*;/gim)].map((m) => Number(m[1])));
}

/**
 * The Export_Id of a pack's ganesha export: the one its block already has, else a stable id derived from the pack
 * name, moved past ids other exports use.
 */
export function ganeshaExportId(configText: string, packName: string): number {
  const marker = packMarker(packName);
  const existing = /Export_Id\s*=\s*(\d+)\s*;/.exec(readManagedBlock(configText, marker) ?? '');
  if (existing?.[1]) return Number(existing[1]);
  const used = usedExportIds(configText, marker);
  let id = 100 + (createHash('sha256').update(packName).digest().readUInt32BE(0) % 60_000);
  while (used.has(id)) id = id >= 60_099 ? 100 : id + 1;
  return id;
}

/**
 * The managed text of a pack's export, for the server's flavour. It names `slaveAddresses` (the pack's slaves, so
 * no other host on their network may mount the platforms), or else the share's `clients` subnet.
 */
export function exportBlock(
  flavour: 'kernel' | 'ganesha',
  share: PackShare,
  packName: string,
  configText: string,
  slaveAddresses?: string[],
): string {
  const clients = slaveAddresses && slaveAddresses.length > 0 ? slaveAddresses : [share.clients];
  return flavour === 'kernel'
    ? renderExportsLine({ exportPath: share.exportPath, clients })
    : renderGaneshaExport({
        pack: packName,
        exportId: ganeshaExportId(configText, packName),
        exportPath: share.exportPath,
        clients,
      });
}

type ServerFlavour = 'kernel' | 'ganesha' | 'none';

function serverFlavour(share: PackShare): ServerFlavour {
  const flavour = share.server.nfs?.flavour;
  if (flavour) return flavour;
  if (share.clientFlavour === 'sshfs') return 'none';
  throw badInput(`share.server: ${share.server.name} has no nfs service, but the pack's slaves mount with kernel NFS`);
}

async function reloadExports(server: Server, flavour: 'kernel' | 'ganesha', signal?: AbortSignal): Promise<void> {
  if (flavour === 'kernel') {
    const r = await runRemote(server, ['exportfs', '-ra'], {
      timeoutMs: NFS_TIMEOUT_MS,
      signal,
      allowExitCodes: 'any',
    });
    if (r.code === 127) {
      throw permanentFailure(
        FailureType.ServerNotReady,
        `server ${server.name} has no exportfs: install nfs-kernel-server, or use the ganesha flavour`,
      );
    }
    if (r.code !== 0)
      throw transientFailure(
        FailureType.RemoteCommandFailed,
        `server ${server.name}: exportfs -ra failed: ${r.stderr.trim()}`,
      );
    return;
  }
  const script = `for f in "$@"; do
  if [ -r "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null; then kill -HUP "$(cat "$f")"; echo reloaded; exit 0; fi
done
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then systemctl reload-or-restart nfs-ganesha && echo reloaded && exit 0; fi
echo "nfs-ganesha is not running (no live pid in $*)" >&2
exit 3
`;
  const r = await runRemote(server, ['sh', '-c', script, 'sitefleet-ganesha-reload', ...GANESHA_PID_FILES], {
    timeoutMs: NFS_TIMEOUT_MS,
    signal,
    allowExitCodes: 'any',
  });
  if (r.code !== 0) {
    throw permanentFailure(
      FailureType.ServerNotReady,
      `server ${server.name}: cannot reload nfs-ganesha: ${r.stderr.trim()}; start it, then retry`,
    );
  }
}

export interface PackShareInput {
  share: PackShare;
  packName: string;
  /**
   * The addresses of the pack's slaves: ensureExport exports to exactly these (SetupPackShare passes them, and a
   * rerun after the slaves changed updates the export). Without them, the share's `clients` subnet.
   */
  slaveAddresses?: string[];
}

export interface ExportState {
  server: string;
  flavour: ServerFlavour;
  present: boolean;
}

/** Whether the pack's export is in the share server's config. Changes nothing. */
export async function inspectExport(input: PackShareInput): Promise<ExportState> {
  const signal = activityCancellationSignal();
  const share = parseShare(input.share);
  const marker = packMarker(input.packName);
  const flavour = serverFlavour(share);
  if (flavour === 'none') return { server: share.server.name, flavour, present: true };
  const file = flavour === 'kernel' ? EXPORTS_FILE : GANESHA_CONFIG_FILE;
  const text = (await readRemoteFile(share.server, file, { signal })) ?? '';
  return { server: share.server.name, flavour, present: readManagedBlock(text, marker) !== null };
}

/**
 * Exports the platforms directory to the pack's clients: the managed block is added once and updated in place,
 * then the NFS server re-reads its exports. With sshfs clients and no NFS service there is nothing to export.
 */
export async function ensureExport(input: PackShareInput): Promise<ExportState & { changed: boolean }> {
  const signal = activityCancellationSignal();
  const share = parseShare(input.share);
  const marker = packMarker(input.packName);
  const flavour = serverFlavour(share);
  if (flavour === 'none') return { server: share.server.name, flavour, present: true, changed: false };
  await runRemote(share.server, ['install', '-d', '-o', share.server.aegirUser, '-m', '0755', '--', share.exportPath], {
    timeoutMs: 30_000,
    signal,
  });
  const file = flavour === 'kernel' ? EXPORTS_FILE : GANESHA_CONFIG_FILE;
  const edit = await editRemoteFile(
    share.server,
    file,
    (text) =>
      ensureManagedBlock(
        text ?? '',
        marker,
        exportBlock(flavour, share, input.packName, text ?? '', input.slaveAddresses),
      ),
    { signal },
  );
  if (edit.changed || activityAttempt() > 1) await reloadExports(share.server, flavour, signal);
  return { server: share.server.name, flavour, present: true, changed: edit.changed };
}

/**
 * Compensation of ensureExport, and the master's side of TeardownPackShare: removes the pack's block and reloads,
 * and removes the files sitefleet wrote into the export (the setup sentinel, the share check's markers).
 * Idempotent.
 */
export async function removeExport(input: PackShareInput): Promise<ExportState & { changed: boolean }> {
  const signal = activityCancellationSignal();
  const share = parseShare(input.share);
  const marker = packMarker(input.packName);
  const flavour = serverFlavour(share);
  await runRemote(
    share.server,
    [
      'sh',
      '-c',
      'cd -- "$1" 2>/dev/null || exit 0; rm -f -- "$2" "$3"* ."$3"*.tmp',
      'sitefleet-share-files',
      share.exportPath,
      SHARE_SENTINEL,
      SHARE_MARKER_PREFIX,
    ],
    { timeoutMs: 30_000, signal },
  );
  if (flavour === 'none') return { server: share.server.name, flavour, present: false, changed: false };
  const file = flavour === 'kernel' ? EXPORTS_FILE : GANESHA_CONFIG_FILE;
  const edit = await editRemoteFile(share.server, file, (text) => removeManagedBlock(text ?? '', marker), { signal });
  if (edit.changed) await reloadExports(share.server, flavour, signal);
  return { server: share.server.name, flavour, present: false, changed: edit.changed };
}

// ---------------------------------------------------------------- NFS read check

/**
 * Reads the export over the real NFS protocol from a slave with libnfs (`nfs-ls nfs://SERVER/EXPORT`), which needs
 * no kernel NFS client. Returns `{ ok, detail, entries }`; never throws for a finding.
 */
export async function checkNfsExport(input: {
  server: Server;
  share: PackShare;
}): Promise<{ server: string; ok: boolean; entries: number; detail: string }> {
  const signal = activityCancellationSignal();
  const client = parseInput(serverSchema, input.server, 'server');
  const share = parseShare(input.share);
  const url = `nfs://${shareHost(share)}${share.exportPath}`;
  const r = await runRemote(client, ['nfs-ls', url], { timeoutMs: 30_000, signal, allowExitCodes: 'any' });
  if (r.code === 127) {
    return {
      server: client.name,
      ok: false,
      entries: 0,
      detail: `nfs-ls is not installed on ${client.name} (apt-get install libnfs-utils)`,
    };
  }
  const entries = r.stdout.split('\n').filter((l) => l.trim() !== '').length;
  return r.code === 0
    ? {
        server: client.name,
        ok: true,
        entries,
        detail: `${url} is readable from ${client.name} over NFS (${entries} entries)`,
      }
    : {
        server: client.name,
        ok: false,
        entries: 0,
        detail: `${url} from ${client.name}: ${`${r.stderr}${r.stdout}`.trim() || `nfs-ls exited ${r.code}`}`,
      };
}
