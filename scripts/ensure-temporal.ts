/**
 * `npm test`'s pretest: the Temporal CLI (dev server) and the Temporal server of the production topology, each built
 * with Go into the cache when missing, so that a fresh machine's CI has them.
 */
import { ensureTemporalCli, temporalCliVersion } from '../devserver/temporal-cli';
import { messageOf } from '../common/error-message';
import { ensureTemporalServer } from '../devserver/temporal-server';

async function main(): Promise<void> {
  const cli = await ensureTemporalCli();
  console.log(`${cli} (${temporalCliVersion(cli)})`);
  const server = await ensureTemporalServer();
  console.log(`${server.server}, ${server.sql}`);
}

main().catch((err: unknown) => {
  console.error(messageOf(err));
  process.exit(1);
});
