/** `npm run setup`: make sure the Temporal CLI is present (installing it with Go when needed) and print its path. */
import { ensureTemporalCli, temporalCliVersion } from '../devserver/temporal-cli';

ensureTemporalCli()
  .then((path) => console.log(`${path} (${temporalCliVersion(path)})`))
  .catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
