/**
 * What a push of a platform would send to each member, read before the workflow chooses relay or rsync
 * (workflows/relay.ts chooseTransfer).
 */
import { z } from 'zod';
import { platformSchema, serverSchema, type Platform, type Server } from '../../domain/model';
import type { PlatformTransferPlan } from '../../domain/transfer';
import { platformRoot } from '../../domain/paths';
import { activityCancellationSignal } from '../support/activity-context';
import { parseInput } from '../support/activity-input';
import { settleBounded } from '../../common/settle';
import { platformSourceDir } from '../platform-source';
import { describeSource } from './relay-manifest';
import { SHORT_TIMEOUT_MS } from './relay-chain';
import { runRemote } from '../transport/ssh-command';

export interface PlanPlatformTransferInput {
  platform: Platform;
  servers: Server[];
}

/**
 * What a push of the platform would send to each member: the whole platform where it is missing, otherwise the
 * files whose size or mtime differ (rsync's quick check). Read-only; the workflow decides relay or rsync from it.
 */
export async function planPlatformTransfer(input: PlanPlatformTransferInput): Promise<PlatformTransferPlan> {
  const signal = activityCancellationSignal();
  const platform = parseInput(platformSchema, input.platform, 'platform');
  const servers = parseInput(z.array(serverSchema).min(1).max(64), input.servers, 'servers');
  const manifest = await describeSource(await platformSourceDir(platform, signal), platform.profile, signal);
  const files = new Map<string, { size: number; mtime: number }>();
  for (const e of manifest.entries) {
    if (e.type === 'f') files.set(Buffer.from(e.path, 'latin1').toString('utf8'), { size: e.size, mtime: e.mtime });
  }
  const results = await settleBounded(servers, servers.length, async (server) => {
    const root = platformRoot(server, platform.name);
    const r = await runRemote(
      server,
      [
        'sh',
        '-c',
        // Uploads are never pushed: not listed either (there may be a great many).
        '[ -d "$1" ] || { echo absent; exit 0; }; echo present; cd "$1" && ' +
          'find . \\( -path "./sites/*/files" -o -path "./sites/*/private" \\) -prune -o -type f -printf "%s %T@ %P\\0"',
        'sitefleet-relay-plan',
        root,
      ],
      { timeoutMs: SHORT_TIMEOUT_MS, signal },
    );
    if (r.stdout.startsWith('absent')) return { server: server.name, exists: false, changedBytes: manifest.bytes };
    const seen = new Map<string, { size: number; mtime: number }>();
    for (const record of r.stdout.slice(r.stdout.indexOf('\n') + 1).split('\0')) {
      const m = /^(\d+) (\d+)(?:\.\d+)? (.*)$/s.exec(record);
      if (m) seen.set(m[3] as string, { size: Number(m[1]), mtime: Number(m[2]) });
    }
    let changedBytes = 0;
    for (const [path, want] of files) {
      const have = seen.get(path);
      if (!have || have.size !== want.size || have.mtime !== want.mtime) changedBytes += want.size;
    }
    return { server: server.name, exists: true, changedBytes };
  });
  return {
    platform: platform.name,
    entries: manifest.entries.length,
    bytes: manifest.bytes,
    members: results.map((r, i) =>
      r.ok
        ? r.value
        : // Unreachable now: count it as a full copy; the transfer itself will retry or fall back.
          { server: (servers[i] as Server).name, exists: null, changedBytes: manifest.bytes },
    ),
  };
}
