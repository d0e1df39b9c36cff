/**
 * The test bed's library API: `startBed` brings a bed up, `openBed` attaches to a running one
 * (from another process, e.g. the CLI), and a Bed runs commands on its hosts, injects faults and
 * tears itself down.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as http from 'node:http';
import type { CommandResult } from './command';
import { BedConflictError, claimBedDir, claimSubnet } from './claims';
import { bedFactsSchema, buildFacts, buildInventory, type BedFacts } from './facts';
import * as faults from './faults';
import { execInHost, isProcessInNetns, type HostExecOptions } from './host';
import { fingerprintOf, generateEd25519Key, knownHostsLine } from './keys';
import { type BedContext, bringUpHost, prepareHost } from './lifecycle';
import {
  assertRouteViaBridge,
  assertRoutesViaBridge,
  assertSubnetUnused,
  createBedNetwork,
  linkExists,
  listBedNetns,
  netnsPids,
  waitForTcpPort,
} from './network';
import {
  type BedOptions,
  type BedPaths,
  type BedPlan,
  bedPaths,
  DEFAULT_BED_NAME,
  defaultBaseDir,
  type HostPlan,
  planBed,
} from './plan';
import {
  type BedState,
  type HostRuntime,
  readState,
  recordHostRuntime,
  updateState,
  writeFileAtomic,
  writeState,
} from './state';
import { applyLinkShaping, isShaped } from './shaping';
import { execInVm, isQemuOf } from './vm/guest';
import { downBed, type DownReport } from './teardown';

export interface StartBedOptions extends BedOptions {
  /** Leave a failed bed in place for inspection instead of tearing it down. @default false */
  keepOnFailure?: boolean;
}

/** Stops with a clear message where beds cannot work: they need Linux namespaces and root. */
export function assertBedSupported(): void {
  if (process.platform !== 'linux') {
    throw new Error(`the test bed needs Linux network, PID and mount namespaces; this is ${process.platform}`);
  }
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
    throw new Error('the test bed needs root (it creates namespaces, bridges and mounts); run it as root');
  }
}

export interface HttpResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export interface MemoryUsage {
  processes: number;
  /** Sum of resident set sizes (counts shared pages once per process). */
  rssBytes: number;
  /** Sum of proportional set sizes (shared pages split between their users): the bed's real cost. */
  pssBytes: number;
}

export class Bed implements faults.FaultContext {
  readonly name: string;
  readonly paths: BedPaths;

  /** How long each phase of `startBed` took, in ms (empty for a bed attached with openBed). */
  startupTimings: Record<string, number> = {};

  constructor(
    readonly plan: BedPlan,
    readonly facts: BedFacts,
  ) {
    this.name = plan.name;
    this.paths = plan.paths;
  }

  get hosts(): readonly HostPlan[] {
    return this.plan.hosts;
  }

  /** A host by name; throws listing the bed's hosts if there is none. */
  host(name: string): HostPlan {
    const host = this.plan.hosts.find((h) => h.name === name);
    if (!host)
      throw new Error(
        `bed ${this.name} has no host "${name}" (hosts: ${this.plan.hosts.map((h) => h.name).join(', ')})`,
      );
    return host;
  }

  ip(hostName: string): string {
    return this.host(hostName).ip;
  }

  /** Hosts with `role`, in bed order. */
  hostsWithRole(role: HostPlan['roles'][number]): HostPlan[] {
    return this.plan.hosts.filter((h) => h.roles.includes(role));
  }

  // --- FaultContext -------------------------------------------------------------------------------

  async dbAdminPassword(): Promise<string> {
    return (await fs.readFile(this.paths.dbAdminPasswordFile, 'utf8')).trim();
  }

  recordHost(host: HostPlan, runtime: HostRuntime): Promise<void> {
    return recordHostRuntime(this.paths, host.name, runtime);
  }

  async isRunning(host: HostPlan): Promise<boolean> {
    if (host.vm) return isQemuOf((await readState(this.paths))?.hosts[host.name]?.qemuPid, host);
    const pid = (await readState(this.paths))?.hosts[host.name]?.initPid;
    return pid !== undefined && (await isProcessInNetns(pid, host.netns));
  }

  async initPidOf(host: HostPlan): Promise<number> {
    if (host.vm) {
      const qemuPid = (await readState(this.paths))?.hosts[host.name]?.qemuPid;
      if (!(await isQemuOf(qemuPid, host))) {
        throw new Error(
          `VM host ${host.name} of bed ${this.name} is not running; start it with startHost("${host.name}")`,
        );
      }
      return qemuPid as number;
    }
    const pid = (await readState(this.paths))?.hosts[host.name]?.initPid;
    if (pid === undefined || !(await isProcessInNetns(pid, host.netns))) {
      throw new Error(`host ${host.name} of bed ${this.name} is not running; start it with startHost("${host.name}")`);
    }
    return pid;
  }

  // --- Commands on hosts ----------------------------------------------------------------------------

  /**
   * Runs argv inside the host (without ssh). Throws a CommandError on a non-zero exit unless
   * `check: false`. Pass secrets through `env` or `input`, never argv.
   */
  async exec(hostName: string, argv: readonly string[], options: HostExecOptions = {}): Promise<CommandResult> {
    const host = this.host(hostName);
    const pid = await this.initPidOf(host);
    // A VM host runs its own kernel: commands go over ssh (root, the bed key, the pinned host key).
    if (host.vm) return execInVm(this.plan, host, argv, options);
    return execInHost(host, pid, argv, options);
  }

  /** Writes a file inside a running host (content goes over stdin). */
  async writeFile(hostName: string, hostPath: string, content: string, options: { user?: string } = {}): Promise<void> {
    await this.exec(hostName, ['dd', `of=${hostPath}`, 'status=none'], { input: content, user: options.user });
  }

  async readFile(hostName: string, hostPath: string): Promise<string> {
    return (await this.exec(hostName, ['cat', '--', hostPath])).stdout;
  }

  /**
   * Arguments for the real `ssh` client reaching the host as `user`, pinned to the bed's known_hosts
   * with StrictHostKeyChecking=yes: `spawn('ssh', [...bed.sshArgs('h1'), 'uptime'])`.
   */
  sshArgs(
    hostName: string,
    { user = 'root', knownHostsFile }: { user?: string; knownHostsFile?: string } = {},
  ): string[] {
    const host = this.host(hostName);
    return [
      '-F', '/dev/null',
      '-i', this.paths.clientKey,
      '-o', 'IdentitiesOnly=yes',
      '-o', `UserKnownHostsFile=${knownHostsFile ?? this.paths.knownHosts}`,
      '-o', 'GlobalKnownHostsFile=/dev/null',
      '-o', 'StrictHostKeyChecking=yes',
      '-o', 'BatchMode=yes',
      '-o', 'ConnectTimeout=5',
      '-p', '22',
      `${user}@${host.ip}`,
    ]; // prettier-ignore
  }

  /** Throws unless traffic to the host would leave through the bed's own bridge. */
  async assertRoute(hostName: string): Promise<void> {
    await assertRouteViaBridge(this.ip(hostName), this.plan.bridge);
  }

  async waitForPort(
    hostName: string,
    port: number,
    options: { open?: boolean; timeoutMs?: number } = {},
  ): Promise<void> {
    await this.assertRoute(hostName);
    await waitForTcpPort(this.ip(hostName), port, options);
  }

  /** An HTTP GET from the controller to the host (after the route check), one connection per request. */
  async httpGet(
    hostName: string,
    urlPath = '/',
    {
      port = 80,
      headers = {},
      timeoutMs = 5000,
    }: { port?: number; headers?: Record<string, string>; timeoutMs?: number } = {},
  ): Promise<HttpResponse> {
    await this.assertRoute(hostName);
    const ip = this.ip(hostName);
    return new Promise((resolve, reject) => {
      const req = http.request({ host: ip, port, path: urlPath, headers, agent: false, timeout: timeoutMs }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', reject);
      });
      req.on('timeout', () =>
        req.destroy(new Error(`GET http://${ip}:${port}${urlPath} timed out after ${timeoutMs} ms`)),
      );
      req.on('error', reject);
      req.end();
    });
  }

  /** Memory used by every process of the bed's hosts. */
  async memoryUsage(): Promise<MemoryUsage> {
    const usage: MemoryUsage = { processes: 0, rssBytes: 0, pssBytes: 0 };
    const state = await readState(this.paths);
    for (const host of this.plan.hosts) {
      const qemuPid = state?.hosts[host.name]?.qemuPid;
      const pids = host.vm ? ((await isQemuOf(qemuPid, host)) ? [qemuPid as number] : []) : await netnsPids(host.netns);
      for (const pid of pids) {
        const rollup = await fs.readFile(`/proc/${pid}/smaps_rollup`, 'utf8').catch(() => '');
        const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(rollup)?.[1] ?? 0);
        usage.processes++;
        usage.rssBytes += kb('Rss') * 1024;
        usage.pssBytes += kb('Pss') * 1024;
      }
    }
    return usage;
  }

  // --- Faults -----------------------------------------------------------------------------------------

  /** Kills the host's PID-namespace init: every process of the host ends, as on power loss. */
  stopHost(hostName: string): Promise<void> {
    return faults.stopHost(this, this.host(hostName));
  }

  /** Boots a stopped host again, with its files kept and its services started. */
  startHost(hostName: string): Promise<void> {
    return faults.startHost(this, this.host(hostName));
  }

  /**
   * Reboots the host cleanly: a VM host's init stops its daemons, unmounts its shares and resets
   * (QEMU exits), then a new QEMU boots the same disk and the host's services start; /etc/fstab
   * mounts come back by the guest itself. A namespace host is stopped and started.
   */
  reboot(hostName: string): Promise<void> {
    return faults.rebootHost(this, this.host(hostName));
  }

  /** Sets the host's veth down on the bridge side. */
  cutLink(hostName: string): Promise<void> {
    return faults.cutLink(this, this.host(hostName));
  }

  restoreLink(hostName: string): Promise<void> {
    return faults.restoreLink(this, this.host(hostName));
  }

  /** Stops a service (e.g. nginx, php8.2-fpm, apache2, mariadb, nfs-ganesha, rpcbind, haproxy, ssh) inside the host. */
  stopService(hostName: string, service: string): Promise<void> {
    return faults.stopHostService(this, this.host(hostName), service);
  }

  startService(hostName: string, service: string): Promise<void> {
    return faults.startHostService(this, this.host(hostName), service);
  }

  /** Regenerates the host's ed25519 key and restarts sshd; inventory and known_hosts keep the old key. */
  changeHostKey(hostName: string): Promise<faults.HostKeyChange> {
    return faults.changeHostKey(this, this.host(hostName));
  }

  /** Removes everything the bed made. Idempotent. */
  down(): Promise<DownReport> {
    return downBed(this.name, pathsBaseDir(this.paths));
  }
}

function pathsBaseDir(paths: BedPaths): string {
  return paths.dir.slice(0, paths.dir.lastIndexOf('/'));
}

/** Refuses to start where another bed (or anything else) already uses the name or the subnet. */
async function claimNameAndSubnet(plan: BedPlan, baseDir: string): Promise<void> {
  if ((await linkExists(plan.bridge)) || (await listBedNetns(plan.name)).length > 0) {
    throw new BedConflictError(
      `bed "${plan.name}" is already up (bridge ${plan.bridge} or its netns exist); run \`npm run testbed -- down --name ${plan.name}\``,
      'name',
    );
  }
  await assertSubnetUnused(plan.subnet).catch((error: Error) => {
    throw new BedConflictError(error.message, 'subnet');
  });
  await claimBedDir(plan.paths.dir, plan.name);
  try {
    await claimSubnet(baseDir, plan.subnet, plan.name);
  } catch (error) {
    await fs.rm(plan.paths.dir, { recursive: true, force: true });
    throw error;
  }
}

/**
 * Brings a bed up: network, hosts (in parallel) with sshd and their roles' services, then writes
 * inventory.json, facts.json and known_hosts into the bed dir. On failure the bed is torn down
 * (unless `keepOnFailure`) and the error says which host and step failed.
 */
export async function startBed(options: StartBedOptions): Promise<Bed> {
  assertBedSupported();
  const plan = planBed(options);
  const baseDir = options.baseDir ?? defaultBaseDir();
  const timings: Record<string, number> = {};
  let phaseStart = performance.now();
  const phaseDone = (phase: string): void => {
    const now = performance.now();
    timings[phase] = Math.round(now - phaseStart);
    phaseStart = now;
  };
  await claimNameAndSubnet(plan, baseDir);
  phaseDone('claim');

  const state: BedState = {
    version: 1,
    phase: 'starting',
    plan,
    ownerPid: plan.ephemeral ? process.pid : undefined,
    startedAt: new Date().toISOString(),
    hosts: {},
  };
  await writeState(plan.paths, state);

  try {
    await fs.mkdir(plan.paths.hostsDir);
    await fs.mkdir(plan.paths.logsDir);
    const password = randomBytes(18).toString('hex');
    await writeFileAtomic(plan.paths.dbAdminPasswordFile, `${password}\n`, 0o600);
    const clientKey = await generateEd25519Key(plan.paths.clientKey, `sitefleet-testbed-${plan.name}`);

    const hostKeys = new Map<string, string>();
    const ctx: BedContext = {
      plan,
      dbAdminPassword: () => Promise.resolve(password),
      recordHost: (host, runtime) => recordHostRuntime(plan.paths, host.name, runtime),
    };
    await Promise.all(
      plan.hosts.map(async (host) => hostKeys.set(host.name, await prepareHost(plan, host, clientKey.publicKey))),
    );
    phaseDone('files');
    await createBedNetwork(plan);
    await assertRoutesViaBridge(
      plan.hosts.map((h) => h.ip),
      plan.bridge,
    );
    if (isShaped(plan.shaping)) await applyLinkShaping(plan, plan.shaping);
    phaseDone('network');
    const results = await Promise.allSettled(
      plan.hosts.map((host) => bringUpHost(ctx, host, { firstBoot: true, routeChecked: true })),
    );
    const failures = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as Error] : []));
    if (failures.length > 0) {
      throw new AggregateError(
        failures,
        `bed ${plan.name} did not come up:\n${failures.map((e) => `  - ${e.message}`).join('\n')}`,
      );
    }

    phaseDone('hosts');
    const fingerprints = new Map([...hostKeys].map(([name, key]) => [name, fingerprintOf(key)]));
    const inventory = buildInventory(plan, hostKeys, fingerprints);
    const facts = buildFacts(plan, hostKeys, fingerprints);
    const knownHosts = plan.hosts.map((h) => knownHostsLine(h.ip, hostKeys.get(h.name) ?? '')).join('\n');
    await writeFileAtomic(plan.paths.knownHosts, `${knownHosts}\n`);
    await writeFileAtomic(plan.paths.inventoryFile, `${JSON.stringify(inventory, null, 2)}\n`);
    await writeFileAtomic(plan.paths.factsFile, `${JSON.stringify(facts, null, 2)}\n`);
    await updateState(plan.paths, (s) => {
      s.phase = 'up';
    });
    phaseDone('inventory');
    const bed = new Bed(plan, facts);
    bed.startupTimings = timings;
    return bed;
  } catch (error) {
    if (options.keepOnFailure) {
      await updateState(plan.paths, (s) => {
        s.phase = 'failed';
      }).catch(() => undefined);
    } else {
      await downBed(plan.name, baseDir).catch((downError: Error) => {
        (error as Error).message += `\n(and tearing the failed bed down failed too: ${downError.message})`;
      });
    }
    throw error;
  }
}

/** Attaches to a bed that is up (started by this or another process). */
export async function openBed(name: string = DEFAULT_BED_NAME, baseDir: string = defaultBaseDir()): Promise<Bed> {
  const paths = bedPaths(name, baseDir);
  const state = await readState(paths);
  if (!state)
    throw new Error(`no bed "${name}" under ${baseDir}; start one with \`npm run testbed -- up N --name ${name}\``);
  if (state.phase !== 'up') {
    throw new Error(
      `bed "${name}" is ${state.phase}, not up; run \`npm run testbed -- down --name ${name}\` and start it again`,
    );
  }
  const facts = bedFactsSchema.parse(JSON.parse(await fs.readFile(paths.factsFile, 'utf8')));
  return new Bed(state.plan, facts);
}
