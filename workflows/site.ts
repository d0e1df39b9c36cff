/**
 * Site workflows: install on a single server, a pack or a cluster; delete; enable and disable.
 */
import { badInput, FailureType, permanentFailure } from '../common/failures';
import { sleep } from '@temporalio/workflow';
import { fieldErrors } from '../domain/fields';
import { siteSchema } from '../domain/model';
import type { DeleteSiteInput, InstallSiteInput, SetSiteStatusInput, WebGroup } from '../domain/operations';
import type { Platform, Server, Site } from '../domain/model';
import { siteProbeSpec } from '../domain/site-probe';
import { quick, probe, long, undo } from './activity-stubs';
import { allBounded } from '../common/settle';
import { compensatedPhase, describeFailure, failedAfterCompensation } from './failures';
import { codeReceivers, expectGroup, parallelism, siteUploads } from './group';
import { uploadsShareName } from '../domain/paths';
import { followOnLoadBalancer } from './load-balancer';
import { Progress } from './progress';
import { Saga } from './saga';
import { tagRun } from './search';

export interface InstallSiteResult {
  site: string;
  members: { server: string; status: number }[];
}

function checkSiteInput(input: { site: Site; platform: { name: string; profile: string }; dbServer?: Server }): void {
  // Refuse a hostile or malformed site before anything runs anywhere (zod is deterministic, so fine in a workflow).
  const parsed = siteSchema.safeParse(input.site);
  if (!parsed.success) {
    throw badInput(
      `site: ${fieldErrors(parsed.error)
        .map((e) => `${e.field} ${e.rule}`)
        .join('; ')}`,
    );
  }
  if (input.site.platform !== input.platform.name) {
    throw badInput(`site.platform: is ${input.site.platform} but the platform given is ${input.platform.name}`);
  }
  const needsDb = input.platform.profile === 'wordpress' || input.platform.profile === 'drupal';
  if (needsDb && !input.dbServer) throw badInput(`dbServer: a ${input.platform.profile} site needs a database server`);
  if (input.dbServer && !input.dbServer.db) throw badInput(`dbServer: server ${input.dbServer.name} has no db service`);
}

/** A member chosen by the domain, so that many installs spread their installer runs over the members. */
function memberFor(group: WebGroup, domain: string): Server {
  let hash = 0;
  for (const ch of domain) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
  return group.members[hash % group.members.length] as Server;
}

/**
 * Probes the site through one member. "No answer" (status 0) is retried with back-off — a busy node is not a broken
 * site; a wrong answer (status, content) fails at once.
 */
async function probeUntilAnswered(server: Server, site: Site, platform: Platform) {
  let res = await probe.probeSite({ server, site, platform, ...siteProbeSpec(site, platform) });
  for (let attempt = 1; !res.ok && res.status === 0 && attempt < 4; attempt++) {
    await sleep(`${2 ** attempt}s`);
    res = await probe.probeSite({ server, site, platform, ...siteProbeSpec(site, platform) });
  }
  return res;
}

/**
 * Installs a site on every member of a group. Guarantees: the database host resolves on every member before
 * anything changes; every member tests its config before reloading; the site answers through every member at the
 * end — or every completed step is undone, in reverse, and every node and the database server are as before.
 */
async function installSiteOnGroup(
  input: InstallSiteInput,
  kind: WebGroup['kind'],
  operation: string,
): Promise<InstallSiteResult> {
  const { site, platform, group, dbServer } = input;
  expectGroup(group, kind);
  checkSiteInput(input);
  tagRun({ site: site.domain, platform: platform.name, group });
  const limit = parallelism(group);
  const progress = new Progress(
    operation,
    group.members.map((m) => m.name),
  );
  const saga = new Saga();
  let step = 'check database host resolution';
  try {
    if (dbServer) {
      progress.phase(step);
      await allBounded(group.members, limit, async (server) => {
        progress.node(server.name, 'running', step);
        await probe.checkResolution({ server, name: dbServer.address ?? dbServer.host });
      });
    }

    // Snapshot every member before changing anything, so compensation restores exactly what was there.
    step = 'snapshot';
    progress.phase(step);
    const before = await allBounded(group.members, limit, (server) => quick.inspectSite({ server, site, platform }));

    if (dbServer) {
      step = 'create database';
      progress.phase(step);
      const db = await quick.inspectDatabase({ dbServer, site });
      saga.add(
        'drop database',
        () => undo.dropDatabase({ dbServer, site, dropDatabase: !db.databaseExists, dropUser: !db.userExists }),
        { on: dbServer.name },
      );
      await quick.ensureDatabase({ dbServer, site, clients: group.members.map((m) => m.address ?? m.host) });
    }

    const uploads = group.kind === 'cluster' ? group.uploads : undefined;
    if (uploads) {
      // Every member must read the uploads share now (a fresh marker through its mount): a member without it
      // would keep uploads on its own disk, where the other members never see them.
      step = 'check the uploads share on every member';
      progress.phase(step);
      await allBounded(
        group.members.filter((m) => m.name !== uploads.server.name),
        limit,
        async (server) => {
          const read = await probe.checkShareRead({
            slave: server,
            share: uploads,
            packName: uploadsShareName(group.name),
            mountPoint: siteUploads(group, server)?.root,
          });
          if (!read.ok) {
            throw permanentFailure(
              FailureType.ShareNotVisible,
              `${server.name} does not read the uploads share of cluster ${group.name} (${read.state}: ${read.detail}); ` +
                'set it up first (SetupClusterUploads, sitefleet cluster setup-uploads)',
            );
          }
        },
      );
      step = 'create the site directory on the uploads share';
      progress.phase(step);
      // Never compensated: the directory may hold uploads of an earlier install of the site.
      await quick.ensureSiteUploads({ share: uploads, domain: site.domain });
    }

    step = 'create site directory';
    progress.phase(step);
    await allBounded(codeReceivers(group), limit, async (server) => {
      progress.node(server.name, 'running', step);
      const existed = before[group.members.indexOf(server)]?.siteDirExists ?? false;
      if (!existed)
        saga.add(`remove site directory on ${server.name}`, () => undo.removeSiteDir({ server, site, platform }), {
          on: server.name,
        });
      await quick.ensureSiteDir({ server, site, platform, dbServer, uploads: siteUploads(group, server) });
    });

    step = 'install vhost';
    progress.phase(step);
    await allBounded(group.members, limit, async (server) => {
      progress.node(server.name, 'running', step);
      const previous = before[group.members.indexOf(server)]?.vhost ?? null;
      saga.add(`restore vhost on ${server.name}`, () => undo.restoreVhost({ server, site, previous }), {
        on: server.name,
      });
      await quick.installVhost({ server, site, platform });
    });

    if (dbServer && platform.profile === 'wordpress') {
      step = 'run the WordPress installer';
      progress.phase(step);
      await long.runSiteInstaller({ server: memberFor(group, site.domain), site, platform, dbServer });
    }

    step = 'probe the site through every member';
    progress.phase(step);
    const statuses = await allBounded(group.members, limit, async (server) => {
      progress.node(server.name, 'running', step);
      const res = await probeUntilAnswered(server, site, platform);
      if (!res.ok) {
        throw permanentFailure(FailureType.ProbeFailed, `${site.domain} through ${server.name}: ${res.detail}`);
      }
      progress.node(server.name, 'done', 'serving');
      return { server: server.name, status: res.status };
    });
    if (group.loadBalancer) {
      step = 'route the site at the load balancer';
      progress.phase(step);
      await followOnLoadBalancer(group, saga, { site: { site, platform } });
    }
    progress.phase('done');
    return { site: site.domain, members: statuses };
  } catch (err) {
    progress.phase(`failed at "${step}", compensating`);
    for (const m of group.members) progress.node(m.name, 'compensating', step, describeFailure(err));
    const failures = await saga.compensate();
    // Each member's real outcome: an undo that failed on it (or one that names no server) is reported, not hidden.
    const unplaced = saga.failedOn.get('') ?? [];
    for (const m of group.members) {
      const own = [...(saga.failedOn.get(m.name) ?? []), ...unplaced];
      if (own.length > 0) progress.node(m.name, 'failed', 'not fully restored', own.join('; '));
      else progress.node(m.name, 'compensated', 'restored');
    }
    progress.phase(compensatedPhase(step, err, failures));
    throw failedAfterCompensation(step, err, failures);
  }
}

/** InstallSite on a single server. */
export async function InstallSite(input: InstallSiteInput): Promise<InstallSiteResult> {
  return installSiteOnGroup(input, 'server', 'InstallSite');
}

/** InstallSiteOnPack: site directory on the master, vhost on every member, probed through every member. */
export async function InstallSiteOnPack(input: InstallSiteInput): Promise<InstallSiteResult> {
  return installSiteOnGroup(input, 'pack', 'InstallSiteOnPack');
}

/** InstallSiteOnCluster: site directory and vhost on every member, probed through every member. */
export async function InstallSiteOnCluster(input: InstallSiteInput): Promise<InstallSiteResult> {
  return installSiteOnGroup(input, 'cluster', 'InstallSiteOnCluster');
}

/**
 * DeleteSite: stops serving first (vhost removed, config tested, reloaded on every member), then removes the site
 * directory and finally the database and its user. Each step is idempotent, so a retried or resumed run finishes.
 */
export async function DeleteSite(input: DeleteSiteInput): Promise<{ site: string; removedFrom: string[] }> {
  const { site, platform, group, dbServer } = input;
  expectGroup(group, group.kind);
  tagRun({ site: site.domain, platform: platform.name, group });
  const progress = new Progress(
    'DeleteSite',
    group.members.map((m) => m.name),
  );
  const limit = parallelism(group);
  if (group.loadBalancer) {
    progress.phase('stop routing the site at the load balancer');
    await followOnLoadBalancer(group, new Saga(), { site: { site, platform, remove: true } });
  }
  progress.phase('remove vhost');
  await allBounded(group.members, limit, async (server) => {
    progress.node(server.name, 'running', 'remove vhost');
    await quick.restoreVhost({ server, site, previous: null });
  });
  progress.phase('remove site directory');
  await allBounded(codeReceivers(group), limit, async (server) => {
    progress.node(server.name, 'running', 'remove site directory');
    await quick.removeSiteDir({ server, site, platform });
  });
  if (dbServer) {
    progress.phase('drop database');
    await quick.dropDatabase({ dbServer, site, dropDatabase: true, dropUser: true });
  }
  for (const m of group.members) progress.node(m.name, 'done', 'removed');
  progress.phase('done');
  return { site: site.domain, removedFrom: group.members.map((m) => m.name) };
}

async function setSiteStatus(
  input: SetSiteStatusInput,
  status: 'enabled' | 'disabled',
): Promise<{ site: string; status: string }> {
  const { platform, group } = input;
  const site = { ...input.site, status };
  expectGroup(group, group.kind);
  tagRun({ site: site.domain, platform: platform.name, group });
  const progress = new Progress(
    status === 'enabled' ? 'EnableSite' : 'DisableSite',
    group.members.map((m) => m.name),
  );
  const before = await allBounded(group.members, parallelism(group), (server) =>
    quick.inspectSite({ server, site, platform }),
  );
  const saga = new Saga();
  try {
    await allBounded(group.members, parallelism(group), async (server) => {
      progress.node(server.name, 'running', `vhost ${status}`);
      const previous = before[group.members.indexOf(server)]?.vhost ?? null;
      saga.add(`restore vhost on ${server.name}`, () => undo.restoreVhost({ server, site, previous }), {
        on: server.name,
      });
      await quick.installVhost({ server, site, platform });
      progress.node(server.name, 'done', status);
    });
    await followOnLoadBalancer(group, saga, { site: { site, platform } });
  } catch (err) {
    throw failedAfterCompensation(`${status} site`, err, await saga.compensate());
  }
  return { site: site.domain, status };
}

/** EnableSite: the vhost serves the site again on every member. */
export async function EnableSite(input: SetSiteStatusInput): Promise<{ site: string; status: string }> {
  return setSiteStatus(input, 'enabled');
}

/** DisableSite: every member answers the site with the "site disabled" page; files and database stay. */
export async function DisableSite(input: SetSiteStatusInput): Promise<{ site: string; status: string }> {
  return setSiteStatus(input, 'disabled');
}
