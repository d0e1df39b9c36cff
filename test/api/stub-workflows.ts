/**
 * Stand-ins for sitefleet's workflows, registered under the public workflow type names, for tests of the API and
 * the CLI that need operations to progress and close. Each answers the `progress` query with one entry per
 * member of the group it received, moves through two phases, and fails when a site domain or platform name
 * starts with "fail".
 */
import { ApplicationFailure, setHandler, sleep } from '@temporalio/workflow';
import { progressQuery, type OperationProgress } from '../../domain/progress';

interface AnyInput {
  server?: { name: string };
  pack?: { members: { name: string }[] };
  group?: { members: { name: string }[] };
  site?: { domain: string };
  platform?: { name: string };
}

/** How long each phase lasts, so that a poller sees the operation running. */
const PHASE_MS = 300;

async function stub(operation: string, input: AnyInput): Promise<{ operation: string; nodes: string[] }> {
  const nodes = (input.group ?? input.pack)?.members.map((m) => m.name) ?? (input.server ? [input.server.name] : []);
  const progress: OperationProgress = {
    operation,
    phase: 'queued',
    nodes: Object.fromEntries(nodes.map((n) => [n, { state: 'pending', step: 'queued' }])),
  };
  setHandler(progressQuery, () => progress);
  for (const phase of ['prepare', 'apply']) {
    progress.phase = phase;
    for (const n of nodes) progress.nodes[n] = { state: 'running', step: phase };
    await sleep(PHASE_MS);
  }
  const failing = input.site?.domain.startsWith('fail') || input.platform?.name.startsWith('fail');
  if (failing) {
    const [first] = nodes;
    if (first) progress.nodes[first] = { state: 'failed', step: 'apply', error: 'stub failure' };
    progress.phase = 'failed';
    throw ApplicationFailure.nonRetryable(`stub failure on ${first ?? 'no node'}`, 'StubFailure');
  }
  for (const n of nodes) progress.nodes[n] = { state: 'done', step: 'done' };
  progress.phase = 'done';
  return { operation, nodes };
}

export const VerifyServer = (i: AnyInput) => stub('VerifyServer', i);
export const SetupPackShare = (i: AnyInput) => stub('SetupPackShare', i);
export const CreatePlatform = (i: AnyInput) => stub('CreatePlatform', i);
export const CreatePlatformOnPack = (i: AnyInput) => stub('CreatePlatformOnPack', i);
export const CreatePlatformOnCluster = (i: AnyInput) => stub('CreatePlatformOnCluster', i);
export const InstallSite = (i: AnyInput) => stub('InstallSite', i);
export const InstallSiteOnPack = (i: AnyInput) => stub('InstallSiteOnPack', i);
export const InstallSiteOnCluster = (i: AnyInput) => stub('InstallSiteOnCluster', i);
export const VerifyClusterNodes = (i: AnyInput) => stub('VerifyClusterNodes', i);
export const ResyncCluster = (i: AnyInput) => stub('ResyncCluster', i);
export const DeleteSite = (i: AnyInput) => stub('DeleteSite', i);
export const DeletePlatform = (i: AnyInput) => stub('DeletePlatform', i);
export const RollbackPlatform = (i: AnyInput) => stub('RollbackPlatform', i);
export const EnableSite = (i: AnyInput) => stub('EnableSite', i);
export const DisableSite = (i: AnyInput) => stub('DisableSite', i);
export const BackupSite = (i: AnyInput) => stub('BackupSite', i);
export const RestoreSite = (i: AnyInput) => stub('RestoreSite', i);
export const MigrateSite = (i: AnyInput) => stub('MigrateSite', i);
export const AddClusterMember = (i: AnyInput) => stub('AddClusterMember', i);
export const RemoveClusterMember = (i: AnyInput) => stub('RemoveClusterMember', i);

/** A workflow that registers no progress query (as one started by another program would), until it is ended. */
export async function NoProgress(): Promise<void> {
  await sleep(3_600_000);
}
