/** What the bench records about the machine and checks before it starts: tool versions, file systems, beds. */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { errorText } from './measure';
import type { Plan } from './options';

const execFileAsync = promisify(execFile);

export async function commandOutput(argv: string[]): Promise<string> {
  try {
    const { stdout, stderr } = await execFileAsync(argv[0] as string, argv.slice(1));
    return (stdout.trim() || stderr.trim()).split('\n')[0] ?? '';
  } catch (error) {
    return `unavailable (${errorText(error).split('\n')[0] ?? ''})`;
  }
}

export async function filesystemType(dir: string): Promise<string> {
  return (await execFileAsync('stat', ['-f', '-c', '%T', dir])).stdout.trim();
}

export async function treeSize(dir: string): Promise<{ files: number; bytes: number }> {
  let files = 0;
  let bytes = 0;
  const walk = async (d: string): Promise<void> => {
    for (const entry of await fs.readdir(d, { withFileTypes: true })) {
      const p = path.join(d, entry.name);
      const st = await fs.lstat(p);
      files++;
      if (entry.isDirectory()) await walk(p);
      else bytes += st.size;
    }
  };
  await walk(dir);
  return { files, bytes };
}

/** Test beds up on this machine (their bridges are named sf-BED). */
export async function countBeds(): Promise<number> {
  const { stdout } = await execFileAsync('ip', ['-o', 'link', 'show', 'type', 'bridge']).catch(() => ({ stdout: '' }));
  return stdout.split('\n').filter((l) => /^\d+: sf-/.test(l)).length;
}

export async function checkTools(plan: Plan): Promise<void> {
  await fs.access(plan.source).catch(() => {
    throw new Error(
      `the source tree ${plan.source} is missing (Debian: apt-get install wordpress, or pass --source DIR)`,
    );
  });
  const needed = ['rsync', 'ssh', ...(plan.baselines.includes('ansible') ? ['ansible-playbook'] : [])];
  for (const tool of needed) {
    await execFileAsync('which', [tool]).catch(() => {
      throw new Error(
        `${tool} is not installed (apt-get install -y ${tool === 'ssh' ? 'openssh-client' : tool === 'ansible-playbook' ? 'ansible' : tool})`,
      );
    });
  }
}
