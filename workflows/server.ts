/**
 * VerifyServer: what a new server must offer before sitefleet uses it.
 */
import type { VerifyServerInput } from '../domain/operations';
import { probe } from './activity-stubs';
import { tagRun } from './search';

/** Reports ssh with the pinned key, web server installed and including sitefleet's config dir, rsync, aegir ids. */
export async function VerifyServer(input: VerifyServerInput) {
  tagRun({ servers: [input.server.name] });
  return probe.inspectServer({ server: input.server });
}
