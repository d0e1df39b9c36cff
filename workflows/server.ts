/**
 * VerifyServer: what a new server must offer before sitefleet uses it.
 */
import type { VerifyServerInput } from '../domain/operations';
import type { ServerInspection } from '../activities/checks';
import { probe } from './activity-stubs';
import { describeFailure } from './failures';
import { Progress } from './progress';
import { markHealth, tagRun } from './search';

/** Reports ssh with the pinned key, web server installed and including sitefleet's config dir, rsync, aegir ids. */
export async function VerifyServer(input: VerifyServerInput): Promise<ServerInspection> {
  const name = input.server.name;
  tagRun({ servers: [name] });
  const progress = new Progress('VerifyServer', [name]);
  progress.phase('inspecting');
  progress.node(name, 'running', 'ssh, web server, rsync, aegir ids');
  try {
    const report = await probe.inspectServer({ server: input.server });
    progress.node(
      name,
      report.ok ? 'done' : 'failed',
      report.ok ? 'ready' : `${report.problems.length} problem(s)`,
      ...(report.ok ? [] : [report.problems.join('; ')]),
    );
    markHealth(
      report.ok,
      report.problems.map((p) => `${name}: ${p}`),
    );
    progress.phase('done');
    return report;
  } catch (err) {
    progress.node(name, 'failed', 'not reachable', describeFailure(err));
    progress.phase('failed');
    throw err;
  }
}
