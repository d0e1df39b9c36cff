/**
 * The baselines sitefleet is measured against, each copying a tree to the bed's web hosts:
 * - `rsync-seq`: `rsync -a --delete` over ssh to one host after another (Aegir's way);
 * - `rsync-par`: the same rsync to every host at once;
 * - `rsync-par-mux`: the same, through ssh connections opened before the clock starts (the floor for small syncs);
 * - `ansible`: `ansible.posix.synchronize` from a playbook, with Ansible's own defaults.
 *
 * Every command is an argument array. Every ssh connection is pinned to the bed's known_hosts with
 * StrictHostKeyChecking=yes and uses the bed's client key.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { Bed } from '../testbed';
import { baseEnv, runCommand } from '../testbed/command';

export const BASELINES = ['rsync-seq', 'rsync-par', 'rsync-par-mux', 'ansible'] as const;
export type BaselineName = (typeof BASELINES)[number];

export const BASELINE_LABELS: Record<BaselineName, string> = {
  'rsync-seq': 'rsync loop, one host after another',
  'rsync-par': 'rsync loop, all hosts in parallel',
  'rsync-par-mux': 'rsync in parallel over already open ssh connections',
  ansible: 'Ansible ansible.posix.synchronize',
};

/** A transfer may take this long before the baseline is declared stuck. */
const TRANSFER_TIMEOUT_MS = 10 * 60_000;

export interface BaselineContext {
  bed: Bed;
  /** The tree to copy (its contents, not the directory itself). */
  source: string;
  /** A private scratch directory of this bench run (control sockets, Ansible files). */
  workDir: string;
}

/** rsync splits its `-e` command on white space, so every part must be free of it (and of quotes). */
function assertPlainWord(what: string, value: string): string {
  if (!/^[^\s'"\\]+$/.test(value))
    throw new Error(`${what} "${value}" contains white space or quotes; rsync -e cannot carry it`);
  return value;
}

/** The bed's ssh client options (key, pinned known_hosts, StrictHostKeyChecking=yes), without the destination. */
function sshOptions(bed: Bed): string[] {
  const first = bed.hosts[0];
  if (!first) throw new Error(`bed ${bed.name} has no hosts`);
  return bed.sshArgs(first.name).slice(0, -1);
}

function rsyncArgv(ctx: BaselineContext, hostName: string, dest: string, extraSsh: readonly string[] = []): string[] {
  const ssh = ['ssh', ...sshOptions(ctx.bed), ...extraSsh].map((part) => assertPlainWord('ssh option', part));
  return [
    'rsync',
    '-a',
    '--delete',
    '-e',
    ssh.join(' '),
    `${assertPlainWord('source', ctx.source.replace(/\/+$/, ''))}/`,
    `root@${ctx.bed.ip(hostName)}:${assertPlainWord('destination', dest.replace(/\/+$/, ''))}/`,
  ];
}

async function rsyncTo(
  ctx: BaselineContext,
  hostName: string,
  dest: string,
  extraSsh: readonly string[] = [],
): Promise<void> {
  await runCommand(rsyncArgv(ctx, hostName, dest, extraSsh), { timeoutMs: TRANSFER_TIMEOUT_MS });
}

/** `rsync -a --delete` to each host in turn, a new ssh connection each time: what Aegir's provision does. */
export async function rsyncSequential(ctx: BaselineContext, hostNames: readonly string[], dest: string): Promise<void> {
  for (const host of hostNames) await rsyncTo(ctx, host, dest);
}

/** The same rsync to every host at once. Waits for all, then throws the first failure. */
export async function rsyncParallel(ctx: BaselineContext, hostNames: readonly string[], dest: string): Promise<void> {
  await settleAll(hostNames.map((host) => rsyncTo(ctx, host, dest)));
}

async function settleAll(promises: Promise<void>[]): Promise<void> {
  const results = await Promise.allSettled(promises);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}

/**
 * OpenSSH control masters to the bed's hosts, opened before timing starts, so that `rsync-par-mux` measures rsync
 * itself (~5 ms per connection instead of ~120-190 ms).
 */
export class SshMasters {
  private readonly open = new Set<string>();

  constructor(private readonly ctx: BaselineContext) {}

  private controlOptions(): string[] {
    return ['-o', `ControlPath=${path.join(this.ctx.workDir, 'cm-%C')}`];
  }

  /** Opens a master to every host that has none (a master may have ended since: each is checked). */
  async ensure(hostNames: readonly string[]): Promise<void> {
    const opts = sshOptions(this.ctx.bed);
    await Promise.all(
      hostNames.map(async (host) => {
        if (this.open.has(host)) {
          const check = await runCommand(
            ['ssh', ...opts, ...this.controlOptions(), '-O', 'check', `root@${this.ctx.bed.ip(host)}`],
            { check: false, timeoutMs: 10_000 },
          );
          if (check.code === 0) return;
          this.open.delete(host);
        }
        await runCommand(
          [
            'ssh',
            ...opts,
            ...this.controlOptions(),
            '-o',
            'ControlMaster=yes',
            '-o',
            'ControlPersist=600',
            '-N',
            '-f',
            `root@${this.ctx.bed.ip(host)}`,
          ],
          { outputToFile: true, timeoutMs: 30_000 },
        );
        this.open.add(host);
      }),
    );
  }

  rsync(hostNames: readonly string[], dest: string): Promise<void> {
    const extra = [...this.controlOptions(), '-o', 'ControlMaster=no'];
    return settleAll(hostNames.map((host) => rsyncTo(this.ctx, host, dest, extra)));
  }

  async closeAll(): Promise<void> {
    const opts = sshOptions(this.ctx.bed);
    await Promise.allSettled(
      [...this.open].map((host) =>
        runCommand(['ssh', ...opts, ...this.controlOptions(), '-O', 'exit', `root@${this.ctx.bed.ip(host)}`], {
          check: false,
          timeoutMs: 10_000,
        }),
      ),
    );
    this.open.clear();
  }
}

/** What the Ansible baseline runs, recorded with the results so a reader can repeat it. */
export interface AnsibleSetup {
  dir: string;
  inventoryFile: string;
  playbookFile: string;
  version: string;
  module: string;
}

/** Settings written into the inventory: the bed's key and pinned known_hosts, nothing else changed. */
function ansibleInventory(ctx: BaselineContext): unknown {
  const hosts: Record<string, { ansible_host: string }> = {};
  for (const host of ctx.bed.hosts) hosts[host.name] = { ansible_host: host.ip };
  const commonArgs = [
    '-o',
    `UserKnownHostsFile=${ctx.bed.paths.knownHosts}`,
    '-o',
    'GlobalKnownHostsFile=/dev/null',
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    'IdentitiesOnly=yes',
  ];
  return {
    all: {
      hosts,
      vars: {
        ansible_user: 'root',
        ansible_port: 22,
        ansible_ssh_private_key_file: ctx.bed.paths.clientKey,
        ansible_ssh_common_args: commonArgs.map((a) => assertPlainWord('ssh option', a)).join(' '),
        ansible_python_interpreter: '/usr/bin/python3',
      },
    },
  };
}

/**
 * The playbook: one synchronize task with the module's defaults (archive, compress, ssh without multiplexing),
 * plus `delete` (what `rsync --delete` does) and host-key verification through the inventory's ssh arguments.
 */
function ansiblePlaybook(module: string): unknown {
  return [
    {
      name: 'sync a platform to web servers',
      hosts: 'all',
      gather_facts: false,
      tasks: [
        {
          name: 'platform code',
          [module]: { src: '{{ src }}/', dest: '{{ dest }}/', delete: true, verify_host: true, use_ssh_args: true },
        },
      ],
    },
  ];
}

function ansibleEnv(setup: Pick<AnsibleSetup, 'dir'>): NodeJS.ProcessEnv {
  return baseEnv({
    HOME: path.join(setup.dir, 'home'),
    ANSIBLE_LOCAL_TEMP: path.join(setup.dir, 'tmp'),
    ANSIBLE_NOCOLOR: '1',
    ANSIBLE_RETRY_FILES_ENABLED: 'false',
  });
}

/** Writes the inventory (JSON is YAML) and the playbook; picks `ansible.posix.synchronize` when installed. */
export async function prepareAnsible(ctx: BaselineContext): Promise<AnsibleSetup> {
  const dir = path.join(ctx.workDir, 'ansible');
  await fs.mkdir(path.join(dir, 'home'), { recursive: true });
  await fs.mkdir(path.join(dir, 'tmp'), { recursive: true });
  const env = ansibleEnv({ dir });
  const version = (await runCommand(['ansible-playbook', '--version'], { env, cwd: dir })).stdout.split('\n')[0] ?? '';
  const posix = await runCommand(['ansible-doc', '-t', 'module', 'ansible.posix.synchronize'], {
    env,
    cwd: dir,
    check: false,
  });
  const module = posix.code === 0 ? 'ansible.posix.synchronize' : 'synchronize';
  const inventoryFile = path.join(dir, 'inventory.yml');
  const playbookFile = path.join(dir, 'sync.yml');
  await fs.writeFile(inventoryFile, `${JSON.stringify(ansibleInventory(ctx), null, 2)}\n`);
  await fs.writeFile(playbookFile, `${JSON.stringify(ansiblePlaybook(module), null, 2)}\n`);
  return { dir, inventoryFile, playbookFile, version, module };
}

/** `ansible-playbook` limited to `hostNames`, with as many forks as hosts (Ansible's default of 5 would queue). */
export async function ansibleSynchronize(
  ctx: BaselineContext,
  setup: AnsibleSetup,
  hostNames: readonly string[],
  dest: string,
): Promise<void> {
  const vars = JSON.stringify({ src: ctx.source.replace(/\/+$/, ''), dest: dest.replace(/\/+$/, '') });
  await runCommand(
    [
      'ansible-playbook',
      '-i',
      setup.inventoryFile,
      '--limit',
      hostNames.join(','),
      '--forks',
      String(Math.max(1, hostNames.length)),
      '--extra-vars',
      vars,
      setup.playbookFile,
    ],
    { env: ansibleEnv(setup), cwd: setup.dir, timeoutMs: TRANSFER_TIMEOUT_MS },
  );
}

/** Runs `baseline` once: copies the source tree to `dest` on every host. */
export function runBaseline(
  name: BaselineName,
  ctx: BaselineContext,
  tools: { masters: SshMasters; ansible?: AnsibleSetup },
  hostNames: readonly string[],
  dest: string,
): Promise<void> {
  switch (name) {
    case 'rsync-seq':
      return rsyncSequential(ctx, hostNames, dest);
    case 'rsync-par':
      return rsyncParallel(ctx, hostNames, dest);
    case 'rsync-par-mux':
      return tools.masters.rsync(hostNames, dest);
    case 'ansible':
      if (!tools.ansible) return Promise.reject(new Error('Ansible is not set up (prepareAnsible failed)'));
      return ansibleSynchronize(ctx, tools.ansible, hostNames, dest);
  }
}
