/**
 * One test host: its files on the controller (overlay upper dirs and bind-mount sources), its boot
 * (a PID-namespace init, testbed/host-init.sh, inside the host's netns) and commands run inside it.
 */
import { spawn } from 'node:child_process';
import { promises as fs, openSync, closeSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { baseEnv, CommandError, type CommandOptions, type CommandResult, runCommand } from './command';
import { generateEd25519Key } from './keys';
import type { BedPlan, HostPlan } from './plan';

const INIT_SCRIPT = path.join(__dirname, 'host-init.sh');

/**
 * Where a path of the host lives on the controller, for writing files before the host boots.
 * /var/aegir, /var/www, /var/log and /root are bind mounts; other /etc and /var paths land in the
 * overlay's upper dir and shadow the machine's own files.
 */
export function controllerPathOf(host: HostPlan, hostPath: string): string {
  const mounts: [string, string][] = [
    ['/var/aegir', 'aegir'],
    ['/var/www', 'www'],
    ['/var/log', 'log'],
    ['/root', 'root'],
    ['/etc', 'etc.upper'],
    ['/var', 'var.upper'],
  ];
  for (const [prefix, dir] of mounts) {
    if (hostPath === prefix || hostPath.startsWith(`${prefix}/`)) {
      return path.join(host.dir, dir, hostPath.slice(prefix.length));
    }
  }
  throw new Error(`host ${host.name}: ${hostPath} is not under a private mount (/etc, /var, /root)`);
}

/** Creates the missing parents of `hostPath` on the controller with the owner and mode they have on this machine. */
async function ensureParents(host: HostPlan, hostPath: string): Promise<void> {
  const parents: string[] = [];
  for (let p = path.posix.dirname(hostPath); p !== '/'; p = path.posix.dirname(p)) parents.unshift(p);
  for (const parent of parents) {
    const target = controllerPathOf(host, parent);
    try {
      await fs.mkdir(target);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') continue;
      throw error;
    }
    const lower = await fs.stat(parent).catch(() => undefined);
    await fs.chmod(target, lower ? lower.mode & 0o7777 : 0o755);
    if (lower) await fs.chown(target, lower.uid, lower.gid);
  }
}

export interface HostFileOptions {
  mode?: number;
  uid?: number;
  gid?: number;
}

/** Writes a file of the host before it boots (see {@link controllerPathOf}). */
export async function writeHostFile(
  host: HostPlan,
  hostPath: string,
  content: string,
  { mode = 0o644, uid = 0, gid = 0 }: HostFileOptions = {},
): Promise<void> {
  await ensureParents(host, hostPath);
  const target = controllerPathOf(host, hostPath);
  await fs.writeFile(target, content, { mode });
  await fs.chmod(target, mode);
  await fs.chown(target, uid, gid);
}

/** Creates a directory of the host before it boots. */
export async function makeHostDir(
  host: HostPlan,
  hostPath: string,
  { mode = 0o755, uid = 0, gid = 0 }: HostFileOptions = {},
): Promise<void> {
  await ensureParents(host, hostPath);
  const target = controllerPathOf(host, hostPath);
  await fs.mkdir(target, { recursive: true });
  await fs.chmod(target, mode);
  await fs.chown(target, uid, gid);
}

/** Copies the directory tree (directories only, with owner and mode) of this machine's /var/log: daemons expect it. */
async function mirrorLogDirs(host: HostPlan): Promise<void> {
  const walk = async (hostDir: string): Promise<void> => {
    const entries = await fs.readdir(hostDir, { withFileTypes: true }).catch(() => []);
    for (const entry of entries) {
      if (!entry.isDirectory()) continue;
      const sub = path.posix.join(hostDir, entry.name);
      const st = await fs.stat(sub);
      await makeHostDir(host, sub, { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid });
      await walk(sub);
    }
  };
  await walk('/var/log');
}

function renderSshdConfig(host: HostPlan): string {
  return [
    "# sitefleet test bed: key-only sshd on this host's own address.",
    `ListenAddress ${host.ip}`,
    'Port 22',
    'HostKey /etc/ssh/ssh_host_ed25519_key',
    'PermitRootLogin prohibit-password',
    'PubkeyAuthentication yes',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'UsePAM no',
    'UseDNS no',
    'AuthorizedKeysFile .ssh/authorized_keys',
    'PidFile /run/sshd.pid',
    'PrintMotd no',
    'AcceptEnv LANG LC_*',
    'MaxStartups 200:30:400',
    'MaxSessions 100',
    'Subsystem sftp internal-sftp',
    '',
  ].join('\n');
}

/** /etc/passwd, group, shadow and gshadow of the machine plus the host's own `aegir` user. */
async function writeAegirAccount(host: HostPlan): Promise<void> {
  const read = (f: string): Promise<string> => fs.readFile(f, 'utf8').then((t) => (t.endsWith('\n') ? t : `${t}\n`));
  const [passwd, group, shadow, gshadow] = await Promise.all([
    read('/etc/passwd'),
    read('/etc/group'),
    read('/etc/shadow'),
    read('/etc/gshadow'),
  ]);
  const fields = (text: string): string[][] =>
    text
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split(':'));
  if (fields(passwd).some((f) => f[0] === 'aegir' || f[2] === String(host.aegirUid))) {
    throw new Error(
      `host ${host.name}: this machine already has user aegir or uid ${host.aegirUid}; pick another aegirUid`,
    );
  }
  if (fields(group).some((f) => f[0] === 'aegir' || f[2] === String(host.aegirGid))) {
    throw new Error(
      `host ${host.name}: this machine already has group aegir or gid ${host.aegirGid}; pick another aegirGid`,
    );
  }
  // Aegir's convention: the aegir user is in www-data's group, so the web server can read site files.
  const addMember = (text: string): string =>
    text
      .split('\n')
      .map((line) => (line.startsWith('www-data:') ? `${line}${line.endsWith(':') ? '' : ','}aegir` : line))
      .join('\n');
  const files: [string, string][] = [
    ['/etc/passwd', `${passwd}aegir:x:${host.aegirUid}:${host.aegirGid}:Aegir:/var/aegir:/bin/bash\n`],
    ['/etc/group', `${addMember(group)}aegir:x:${host.aegirGid}:\n`],
    // "*": no password, yet not locked ("!" would make sshd refuse keys too, as UsePAM is off).
    ['/etc/shadow', `${shadow}aegir:*:20000:0:99999:7:::\n`],
    ['/etc/gshadow', `${addMember(gshadow)}aegir:!::\n`],
  ];
  for (const [file, content] of files) {
    const st = statSync(file);
    await writeHostFile(host, file, content, { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid });
  }
}

/**
 * Lays out everything the host needs on the controller before its first boot (roles add their
 * own files) and returns the public half of its new ed25519 host key.
 */
export async function prepareHostFiles(bed: BedPlan, host: HostPlan, clientPublicKey: string): Promise<string> {
  await fs.mkdir(host.dir, { recursive: true, mode: 0o755 });
  for (const dir of ['etc.upper', 'etc.work', 'var.upper', 'var.work', 'www', 'log']) {
    await fs.mkdir(path.join(host.dir, dir), { mode: 0o755 });
    await fs.chmod(path.join(host.dir, dir), 0o755);
  }
  await fs.mkdir(path.join(host.dir, 'root'), { mode: 0o700 });
  await fs.mkdir(path.join(host.dir, 'aegir'), { mode: 0o755 });
  await fs.chown(path.join(host.dir, 'aegir'), host.aegirUid, host.aegirGid);
  // The mount point of /var/aegir, which this machine's /var lacks.
  await fs.mkdir(path.join(host.dir, 'var.upper', 'aegir'), { mode: 0o755 });

  const hosts = bed.hosts.map((h) => `${h.ip}\t${h.name}`).join('\n');
  await writeHostFile(host, '/etc/hostname', `${host.name}\n`);
  await writeHostFile(host, '/etc/hosts', `127.0.0.1\tlocalhost\n${bed.bridgeIp}\tcontroller\n${hosts}\n`);
  // No DNS: names are in /etc/hosts, and a lookup must fail at once instead of leaving the bed.
  await writeHostFile(host, '/etc/resolv.conf', '# sitefleet test bed: no DNS; host names are in /etc/hosts\n');
  await writeAegirAccount(host);
  await writeHostFile(host, '/etc/ssh/sshd_config', renderSshdConfig(host));
  await mirrorLogDirs(host);

  const authorizedKeys = `${clientPublicKey}\n`;
  await makeHostDir(host, '/root/.ssh', { mode: 0o700 });
  await writeHostFile(host, '/root/.ssh/authorized_keys', authorizedKeys, { mode: 0o600 });
  const aegir = { uid: host.aegirUid, gid: host.aegirGid };
  await makeHostDir(host, '/var/aegir/.ssh', { mode: 0o700, ...aegir });
  await writeHostFile(host, '/var/aegir/.ssh/authorized_keys', authorizedKeys, { mode: 0o600, ...aegir });

  await makeHostDir(host, '/etc/ssh');
  const hostKey = await generateEd25519Key(
    controllerPathOf(host, '/etc/ssh/ssh_host_ed25519_key'),
    `root@${host.name}`,
  );
  return hostKey.publicKey;
}

export interface HostProcess {
  /** `ip netns exec … unshare`, in the root PID namespace; exits when the host's init does. */
  launcherPid: number;
  /** The host's PID 1, as seen from the root PID namespace. Killing it ends the host. */
  initPid: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Starts the host's init (mounts, hostname, reaper) and waits until its private mounts are in place. */
export async function bootHost(host: HostPlan, logFile: string, timeoutMs = 10_000): Promise<HostProcess> {
  const readyFile = path.join(host.dir, 'ready');
  await fs.rm(readyFile, { force: true });
  const log = openSync(logFile, 'a');
  const argv = [
    'netns', 'exec', host.netns,
    'unshare', '--mount', '--uts', '--pid', '--fork', '--mount-proc', '--propagation', 'private',
    'bash', INIT_SCRIPT, host.name, host.dir,
  ]; // prettier-ignore
  const child = spawn('ip', argv, { detached: true, stdio: ['ignore', log, log], env: baseEnv(), cwd: '/' });
  closeSync(log);
  let exited: string | undefined;
  child.on('exit', (code, signal) => (exited = `exited ${code ?? signal ?? '?'}`));
  child.on('error', (error) => (exited = error.message));
  child.unref();

  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ready = await fs.readFile(readyFile, 'utf8').catch(() => '');
    if (ready.startsWith('ready')) break;
    if (exited !== undefined || Date.now() > deadline) {
      const tail = (await fs.readFile(logFile, 'utf8').catch(() => '')).slice(-1500);
      throw new Error(`host ${host.name} did not boot (init ${exited ?? 'timed out'}); log ${logFile}:\n${tail}`);
    }
    await sleep(5);
  }
  const launcherPid = child.pid;
  if (launcherPid === undefined) throw new Error(`host ${host.name}: no PID for its launcher`);
  const children = await fs.readFile(`/proc/${launcherPid}/task/${launcherPid}/children`, 'utf8');
  const initPid = Number(children.trim().split(/\s+/)[0]);
  if (!Number.isInteger(initPid) || initPid <= 0) throw new Error(`host ${host.name}: cannot find its init process`);
  return { launcherPid, initPid };
}

export interface HostExecOptions extends Omit<CommandOptions, 'env'> {
  /** Run as this user of the host (via runuser). @default 'root' */
  user?: string;
  /** Extra environment variables, on top of a minimal login-like environment. */
  env?: Record<string, string>;
}

/** Runs argv inside the host (all its namespaces, its root and cwd), like a command over ssh but without sshd. */
export async function execInHost(
  host: HostPlan,
  initPid: number,
  argv: readonly string[],
  options: HostExecOptions = {},
): Promise<CommandResult> {
  const user = options.user ?? 'root';
  const inner = user === 'root' ? argv : ['runuser', '-u', user, '--', ...argv];
  const home = user === 'root' ? '/root' : user === 'aegir' ? '/var/aegir' : '/';
  const env = baseEnv({ HOME: home, USER: user, LOGNAME: user, ...options.env });
  try {
    return await runCommand(['nsenter', '-t', String(initPid), '-a', '-r', '-w', '--', ...inner], { ...options, env });
  } catch (error) {
    if (error instanceof CommandError) throw new CommandError(error.result, `on host ${host.name}`);
    throw error;
  }
}

/** Whether `pid` is a live process in network namespace `netns` (guards against PID reuse before a kill). */
export async function isProcessInNetns(pid: number, netns: string): Promise<boolean> {
  try {
    const [proc, ns] = await Promise.all([fs.stat(`/proc/${pid}/ns/net`), fs.stat(`/run/netns/${netns}`)]);
    return proc.ino === ns.ino && proc.dev === ns.dev;
  } catch {
    return false;
  }
}

export async function waitForProcessExit(pid: number, timeoutMs = 5000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8');
      // A zombie has ended; its parent (not us, for a detached launcher) will reap it.
      if (/^\d+ \(.*\) Z/.test(stat)) return true;
    } catch {
      return true;
    }
    await sleep(10);
  }
  return false;
}

/** Ends every process of the host by killing its PID-namespace init; its private mounts go with it. */
export async function killHost(host: HostPlan, initPid: number | undefined): Promise<void> {
  if (initPid !== undefined && (await isProcessInNetns(initPid, host.netns))) {
    process.kill(initPid, 'SIGKILL');
    if (!(await waitForProcessExit(initPid))) throw new Error(`host ${host.name}: init ${initPid} survived SIGKILL`);
  }
}
