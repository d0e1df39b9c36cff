/** `npm run setup`: make sure the Temporal CLI is present (installing it with Go when needed) and print its path. */
import { ensureTemporalCli, temporalCliVersion } from '../devserver/temporal-cli';
import { messageOf } from '../common/error-message';

ensureTemporalCli()
  .then((path) => console.log(`${path} (${temporalCliVersion(path)})`))
  .catch((err: unknown) => {
    console.error(messageOf(err));
    process.exit(1);
  });
