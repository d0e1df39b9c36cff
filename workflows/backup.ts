/**
 * BackupSite, RestoreSite and MigrateSite: a site's files and database, kept and moved with a way back.
 */
import { badInput } from '../common/failures';
import { workflowInfo } from '@temporalio/workflow';
import type { BackupSiteInput, MigrateSiteInput, RestoreSiteInput, WebGroup } from '../domain/operations';
import type { Platform, Server, Site } from '../domain/model';
import { siteProbeSpec } from '../domain/site-probe';
import { probe, quick, long, undo } from './activity-stubs';
import { allBounded } from '../common/settle';
import { failedAfterCompensation } from './failures';
import { codeReceivers, expectGroup, parallelism, siteUploads } from './group';
import { Progress } from './progress';
import { Saga } from './saga';
import { tagRun } from './search';

/** A UTC stamp from the workflow's start time: deterministic, and the same on every retry of a step. */
function stamp(): string {
  return new Date(workflowInfo().startTime)
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
}

function firstReceiver(group: WebGroup): Server {
  const first = codeReceivers(group)[0];
  if (!first) throw badInput('group.codeReceivers: the group has no code receiver');
  return first;
}

async function takeBackup(site: Site, platform: Platform, group: WebGroup, dbServer?: Server) {
  const server = firstReceiver(group);
  return long.backupSite({ server, site, platform, dbServer, stamp: stamp(), uploads: siteUploads(group, server) });
}

/**
 * Copies a backup from the first code receiver to every other one, then restores it on each (the database and
 * shared uploads once, on the first).
 */
async function restoreEverywhere(site: Site, platform: Platform, group: WebGroup, backup: string, dbServer?: Server) {
  const receivers = codeReceivers(group);
  const first = firstReceiver(group);
  await allBounded(receivers, parallelism(group), async (server) => {
    if (server.name !== first.name) await long.copyBackup({ from: first, to: server, domain: site.domain, backup });
    await long.restoreSiteBackup({
      server,
      site,
      platform,
      dbServer,
      backup,
      restoreDatabase: server.name === first.name,
      uploads: siteUploads(group, server),
      restoreUploads: server.name === first.name,
    });
  });
}

async function probeEverywhere(site: Site, platform: Platform, group: WebGroup): Promise<string[]> {
  const results = await allBounded(group.members, parallelism(group), (server) =>
    probe.probeSite({ server, site, platform, ...siteProbeSpec(site, platform) }),
  );
  return results.filter((r) => !r.ok).map((r) => `${r.server}: ${r.detail}`);
}

/** BackupSite: `DOMAIN-STAMP.tar.gz` (site directory, shared uploads, database dump) on the first code receiver. */
export async function BackupSite(
  input: BackupSiteInput,
): Promise<{ site: string; server: string; backup: string; bytes: number }> {
  const { site, platform, group, dbServer } = input;
  expectGroup(group, group.kind);
  tagRun({ site: site.domain, platform: platform.name, group });
  const made = await takeBackup(site, platform, group, dbServer);
  return { site: site.domain, server: made.server, backup: made.backup, bytes: made.bytes };
}

/**
 * RestoreSite: takes a safety backup first, then restores the given backup on every code receiver (database
 * once) and probes the site through every member. If anything fails, the safety backup is restored.
 */
export async function RestoreSite(
  input: RestoreSiteInput,
): Promise<{ site: string; restored: string; safetyBackup: string }> {
  const { site, platform, group, dbServer, backup } = input;
  expectGroup(group, group.kind);
  tagRun({ site: site.domain, platform: platform.name, group });
  const progress = new Progress(
    'RestoreSite',
    group.members.map((m) => m.name),
  );
  progress.phase('safety backup');
  const safety = await takeBackup(site, platform, group, dbServer);
  const saga = new Saga();
  saga.add('restore the safety backup', () => restoreEverywhere(site, platform, group, safety.backup, dbServer));
  try {
    progress.phase(`restore ${backup}`);
    await restoreEverywhere(site, platform, group, backup, dbServer);
    progress.phase('probe');
    const failing = await probeEverywhere(site, platform, group);
    if (failing.length > 0) throw badInput(`the restored site does not answer: ${failing.join('; ')}`);
    progress.phase('done');
    return { site: site.domain, restored: backup, safetyBackup: safety.backup };
  } catch (err) {
    throw failedAfterCompensation(`restore ${backup}`, err, await saga.compensate());
  }
}

/**
 * MigrateSite: moves a site to another platform (possibly on another group). Backup first; the site directory is
 * restored from it on the new platform, the database is kept and granted to the new members, the vhost points to
 * the new platform on every new member, and the site must answer there before the old copy is removed. Any failure
 * before that point puts every vhost back and removes the new copy.
 */
export async function MigrateSite(
  input: MigrateSiteInput,
): Promise<{ site: string; from: string; to: string; backup: string }> {
  const { site, platform, group, dbServer, to } = input;
  expectGroup(group, group.kind);
  expectGroup(to.group, to.group.kind);
  if (to.platform.name === platform.name) throw badInput(`to.platform: the site is already on ${platform.name}`);
  const moved: Site = { ...site, platform: to.platform.name };
  tagRun({ site: site.domain, platform: to.platform.name, group: to.group });
  const progress = new Progress('MigrateSite', [
    ...new Set([...group.members, ...to.group.members].map((m) => m.name)),
  ]);
  progress.phase('backup');
  const backup = await takeBackup(site, platform, group, dbServer);
  const saga = new Saga();
  let step = 'prepare the new platform';
  try {
    const before = await allBounded(to.group.members, parallelism(to.group), (server) =>
      quick.inspectSite({ server, site: moved, platform: to.platform }),
    );
    if (dbServer) {
      step = 'grant the database to the new members';
      const members = [...group.members, ...to.group.members].map((m) => m.address ?? m.host);
      await quick.ensureDatabase({ dbServer, site, clients: [...new Set(members)] });
    }
    step = 'restore the site on the new platform';
    progress.phase(step);
    const oldFirst = firstReceiver(group);
    await allBounded(codeReceivers(to.group), parallelism(to.group), async (server) => {
      saga.add(
        `remove the new copy on ${server.name}`,
        () => undo.removeSiteDir({ server, site: moved, platform: to.platform, backup: false }),
        { on: server.name },
      );
      if (server.name !== oldFirst.name)
        await long.copyBackup({ from: oldFirst, to: server, domain: site.domain, backup: backup.backup });
      await long.restoreSiteBackup({
        server,
        site: moved,
        platform: to.platform,
        dbServer,
        backup: backup.backup,
        restoreDatabase: false,
        uploads: siteUploads(to.group, server),
        restoreUploads: server.name === codeReceivers(to.group)[0]?.name,
      });
      // Settings follow the new platform's profile and paths.
      await quick.ensureSiteDir({
        server,
        site: moved,
        platform: to.platform,
        dbServer,
        uploads: siteUploads(to.group, server),
      });
    });
    step = 'point the vhosts to the new platform';
    progress.phase(step);
    await allBounded(to.group.members, parallelism(to.group), async (server) => {
      const previous = before[to.group.members.indexOf(server)]?.vhost ?? null;
      saga.add(`restore vhost on ${server.name}`, () => undo.restoreVhost({ server, site: moved, previous }), {
        on: server.name,
      });
      await quick.installVhost({ server, site: moved, platform: to.platform });
    });
    step = 'probe the site on the new platform';
    progress.phase(step);
    const failing = await probeEverywhere(moved, to.platform, to.group);
    if (failing.length > 0) throw badInput(`the migrated site does not answer: ${failing.join('; ')}`);
  } catch (err) {
    throw failedAfterCompensation(step, err, await saga.compensate());
  }
  // The new copy serves: retire the old one (vhosts only on members that left, directories on old receivers).
  progress.phase('remove the old copy');
  const staying = new Set(to.group.members.map((m) => m.name));
  await allBounded(
    group.members.filter((m) => !staying.has(m.name)),
    parallelism(group),
    (server) => quick.restoreVhost({ server, site, previous: null }),
  );
  await allBounded(codeReceivers(group), parallelism(group), (server) =>
    quick.removeSiteDir({ server, site, platform, backup: false }),
  );
  progress.phase('done');
  return { site: site.domain, from: platform.name, to: to.platform.name, backup: backup.backup };
}
