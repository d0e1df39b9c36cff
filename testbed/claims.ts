/**
 * Claims that keep beds apart when several start at once: the bed dir claims the name (mkdir is
 * atomic) and a file under BASE/.claims claims the subnet before its bridge exists.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';

export class BedConflictError extends Error {
  constructor(
    message: string,
    readonly conflict: 'name' | 'subnet',
  ) {
    super(message);
    this.name = 'BedConflictError';
  }
}

function claimFile(baseDir: string, subnet: string): string {
  return path.join(baseDir, '.claims', `subnet-${subnet.replace('/', '_')}`);
}

/** Claims `subnet` for bed `name`, or throws a BedConflictError naming the bed that holds it. */
export async function claimSubnet(baseDir: string, subnet: string, name: string): Promise<void> {
  const file = claimFile(baseDir, subnet);
  await fs.mkdir(path.dirname(file), { recursive: true });
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await fs.writeFile(file, name, { flag: 'wx' });
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const holder = (await fs.readFile(file, 'utf8').catch(() => '')).trim();
    const holderAlive =
      holder !== '' &&
      (await fs.stat(path.join(baseDir, holder)).then(
        () => true,
        () => false,
      ));
    if (holderAlive) {
      throw new BedConflictError(`subnet ${subnet} is claimed by bed "${holder}"; choose another subnet`, 'subnet');
    }
    // The holder's dir is gone: a stale claim.
    await fs.rm(file, { force: true });
  }
  throw new BedConflictError(`subnet ${subnet} is being claimed by another bed right now`, 'subnet');
}

export async function releaseSubnet(baseDir: string, subnet: string, name: string): Promise<void> {
  const file = claimFile(baseDir, subnet);
  const holder = (await fs.readFile(file, 'utf8').catch(() => '')).trim();
  if (holder === name) await fs.rm(file, { force: true });
}

/** Claims the bed name by creating its dir; an existing dir means a bed (live or left over) has the name. */
export async function claimBedDir(dir: string, name: string): Promise<void> {
  await fs.mkdir(path.dirname(dir), { recursive: true });
  try {
    await fs.mkdir(dir, { mode: 0o755 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    throw new BedConflictError(
      `bed "${name}" already exists at ${dir} (running, or left over); run \`npm run testbed -- down --name ${name}\` first`,
      'name',
    );
  }
}
