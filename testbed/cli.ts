/**
 * The test bed's command line: `npm run testbed -- up 4 --roles web-nginx,web-apache,db+nfs,lb`,
 * `status`, `exec h1 -- uptime`, `ssh h1`, fault commands, and `down`.
 */
import { spawn } from 'node:child_process';
import { Command, Option } from 'commander';
import { type Bed, openBed, startBed } from './bed';
import { DEFAULT_BED_NAME, DEFAULT_SUBNET, defaultBaseDir, type HostOptions, ROLES, type Role } from './plan';
import { applyLinkShaping, clearLinkShaping, isShaped, type LinkShaping, readLinkShaping } from './shaping';
import { downBed } from './teardown';
import { messageOf } from '../common/error-message';

/**
 * `--roles` is one entry per host (comma-separated), each entry roles joined by "+", or "none"
 * for sshd only; a single entry applies to every host. An entry starting with `vm:` is a QEMU
 * guest (`vm:nfs-kernel`, `vm:web-nginx`, `vm:none`).
 */
export function parseHostsSpec(spec: string, count: number): { roles: Role[]; vm: boolean }[] {
  const entries = spec.split(',').map((raw) => {
    const vm = raw.startsWith('vm:');
    const entry = vm ? raw.slice(3) : raw;
    if (entry === 'none') return { roles: [], vm };
    const roles = entry.split('+').map((role) => {
      if (!(ROLES as readonly string[]).includes(role)) {
        throw new Error(
          `unknown role "${role}" in --roles (known: ${ROLES.join(', ')}, or none; vm: before an entry for a VM host)`,
        );
      }
      return role as Role;
    });
    return { roles, vm };
  });
  if (entries.length === 1) return Array.from({ length: count }, () => entries[0] ?? { roles: [], vm: false });
  if (entries.length !== count) throw new Error(`--roles lists ${entries.length} hosts but up was asked for ${count}`);
  return entries;
}

/** The roles of each host in a `--roles` spec (see {@link parseHostsSpec}). */
export function parseRolesSpec(spec: string, count: number): Role[][] {
  return parseHostsSpec(spec, count).map((h) => h.roles);
}

/** `--aegir-id h2=1600` or `h2=1600:1601` (uid:gid). */
function parseAegirIds(values: string[]): Map<string, { uid: number; gid: number }> {
  const ids = new Map<string, { uid: number; gid: number }>();
  for (const value of values) {
    const match = /^([a-z][a-z0-9-]*)=(\d+)(?::(\d+))?$/.exec(value);
    if (!match?.[1] || !match[2]) throw new Error(`--aegir-id "${value}" must look like HOST=UID or HOST=UID:GID`);
    ids.set(match[1], { uid: Number(match[2]), gid: Number(match[3] ?? match[2]) });
  }
  return ids;
}

async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function shapingOption(opts: { rate?: string; controllerRate?: string }): { shaping?: LinkShaping } {
  if (opts.rate === undefined && opts.controllerRate === undefined) return {};
  return {
    shaping: {
      ...(opts.rate !== undefined ? { rate: opts.rate } : {}),
      ...(opts.controllerRate !== undefined ? { controllerRate: opts.controllerRate } : {}),
    },
  };
}

function describeShaping(shaping: LinkShaping): string {
  return [
    shaping.rate !== undefined ? `each host link ${shaping.rate} both ways` : undefined,
    shaping.controllerRate !== undefined ? `controller egress ${shaping.controllerRate}` : undefined,
  ]
    .filter(Boolean)
    .join(', ');
}

const mb = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

function printBed(bed: Bed): void {
  for (const host of bed.facts.hosts) {
    console.log(`  ${host.name.padEnd(8)} ${host.ip.padEnd(15)} ${host.roles.join('+') || '(sshd only)'}`);
  }
  console.log(`inventory:  ${bed.facts.inventoryFile}`);
  console.log(`facts:      ${bed.facts.dir}/facts.json`);
  console.log(`ssh:        ssh ${bed.sshArgs(bed.hosts[0]?.name ?? '').join(' ')}`);
}

async function main(argv: string[]): Promise<void> {
  const program = new Command('testbed')
    .description('Test hosts in network namespaces on this machine, for sitefleet')
    .addOption(
      new Option('--name <bed>', 'bed name (1-8 chars a-z0-9)').default(
        process.env['SITEFLEET_TESTBED_NAME'] ?? DEFAULT_BED_NAME,
      ),
    )
    .addOption(new Option('--dir <dir>', 'base dir of bed dirs ($SITEFLEET_TESTBED_DIR)').default(defaultBaseDir()))
    .showHelpAfterError();
  const globals = (): { name: string; dir: string } => program.opts<{ name: string; dir: string }>();

  program
    .command('up')
    .argument('<count>', 'number of hosts')
    .option(
      '--roles <spec>',
      'per host, comma-separated; roles joined by "+"; vm: first for a QEMU guest; one entry applies to all',
      'web-nginx',
    )
    .option('--subnet <cidr>', 'private subnet unused on this machine', DEFAULT_SUBNET)
    .option('--aegir-uid <uid>', 'uid and gid of aegir on every host', '1500')
    .option(
      '--aegir-id <host=uid[:gid]...>',
      'a different aegir uid/gid on one host',
      (v: string, prev: string[]) => [...prev, v],
      [] as string[],
    )
    .option('--keep-on-failure', 'leave a failed bed in place for inspection')
    .option('--rate <rate>', "limit each host's link, both directions (tc rate, e.g. 200mbit)")
    .option('--controller-rate <rate>', "limit the controller's total egress (tc rate, e.g. 200mbit)")
    .action(
      async (
        countText: string,
        opts: {
          roles: string;
          subnet: string;
          aegirUid: string;
          aegirId: string[];
          keepOnFailure?: boolean;
          rate?: string;
          controllerRate?: string;
        },
      ) => {
        const count = Number(countText);
        if (!Number.isInteger(count) || count < 1) throw new Error(`count "${countText}" must be a positive integer`);
        const specs = parseHostsSpec(opts.roles, count);
        const ids = parseAegirIds(opts.aegirId);
        const hosts: HostOptions[] = specs.map((spec, i) => {
          const id = ids.get(`h${i + 1}`);
          return {
            roles: spec.roles,
            ...(spec.vm ? { vm: true } : {}),
            ...(id ? { aegirUid: id.uid, aegirGid: id.gid } : {}),
          };
        });
        const started = process.hrtime.bigint();
        const bed = await startBed({
          name: globals().name,
          baseDir: globals().dir,
          subnet: opts.subnet,
          hosts,
          aegirUid: Number(opts.aegirUid),
          keepOnFailure: opts.keepOnFailure,
          ...shapingOption(opts),
        });
        const seconds = Number(process.hrtime.bigint() - started) / 1e9;
        const memory = await bed.memoryUsage();
        console.log(
          `bed ${bed.name} up: ${count} hosts on ${bed.plan.subnet} via ${bed.plan.bridge} in ${seconds.toFixed(2)} s`,
        );
        const phases = Object.entries(bed.startupTimings).map(([phase, ms]) => `${phase} ${ms} ms`);
        console.log(`phases: ${phases.join(', ')}`);
        console.log(`memory: ${memory.processes} processes, PSS ${mb(memory.pssBytes)}, RSS ${mb(memory.rssBytes)}`);
        if (isShaped(bed.plan.shaping)) console.log(`shaping: ${describeShaping(bed.plan.shaping)}`);
        printBed(bed);
      },
    );

  program
    .command('down')
    .description('remove every namespace, link, process and file of the bed (idempotent)')
    .action(async () => {
      const report = await downBed(globals().name, globals().dir);
      console.log(
        `bed ${report.name} down: killed ${report.killedProcesses} leftover processes, removed ${report.removedNetns.length} netns, ` +
          `${report.removedLinks.length} links${report.removedDir ? ', and its dir' : ''}`,
      );
    });

  program
    .command('status')
    .option('--json', 'print the bed facts as JSON')
    .action(async (opts: { json?: boolean }) => {
      const bed = await openBed(globals().name, globals().dir);
      if (opts.json) {
        console.log(JSON.stringify(bed.facts, null, 2));
        return;
      }
      const memory = await bed.memoryUsage();
      console.log(
        `bed ${bed.name}: ${bed.plan.subnet} via ${bed.plan.bridge}; PSS ${mb(memory.pssBytes)} in ${memory.processes} processes`,
      );
      if (isShaped(bed.plan.shaping)) console.log(`shaping at start-up: ${describeShaping(bed.plan.shaping)}`);
      for (const host of bed.hosts) {
        console.log(
          `  ${host.name.padEnd(8)} ${host.ip.padEnd(15)} ${((host.vm ? 'vm:' : '') + (host.roles.join('+') || '-')).padEnd(20)} ${(await bed.isRunning(host)) ? 'running' : 'stopped'}`,
        );
      }
    });

  program
    .command('shape')
    .description('change the link shaping of a running bed (tc tbf); without options, show it')
    .option('--rate <rate>', "limit each host's link, both directions (tc rate, e.g. 200mbit)")
    .option('--controller-rate <rate>', "limit the controller's total egress (tc rate, e.g. 200mbit)")
    .option('--clear', 'remove every limit')
    .action(async (opts: { rate?: string; controllerRate?: string; clear?: boolean }) => {
      const bed = await openBed(globals().name, globals().dir);
      if (opts.clear) await clearLinkShaping(bed.plan);
      else if (opts.rate !== undefined || opts.controllerRate !== undefined) {
        await applyLinkShaping(bed.plan, shapingOption(opts).shaping ?? {});
      }
      for (const q of await readLinkShaping(bed.plan)) {
        console.log(`  ${q.link.padEnd(12)} ${q.dev.padEnd(14)} ${q.kind}${q.rate ? ` ${q.rate}` : ''}`);
      }
    });

  program
    .command('exec')
    .argument('<host>')
    .argument('<command...>', 'after --')
    .option('--user <user>', 'run as this user of the host', 'root')
    .description('run a command inside a host (no ssh), stdin passed on; exits with its status')
    .action(async (host: string, command: string[], opts: { user: string }) => {
      const bed = await openBed(globals().name, globals().dir);
      const input = process.stdin.isTTY ? undefined : await readStdin();
      const result = await bed.exec(host, command, { user: opts.user, check: false, input });
      process.stdout.write(result.stdout);
      process.stderr.write(result.stderr);
      process.exitCode = result.code ?? 1;
    });

  program
    .command('ssh')
    .argument('<host>')
    .argument('[command...]', 'after --')
    .option('--user <user>', 'remote user', 'root')
    .description('ssh to a host with the bed key and pinned host key')
    .action(async (host: string, command: string[], opts: { user: string }) => {
      const bed = await openBed(globals().name, globals().dir);
      await bed.assertRoute(host);
      const child = spawn('ssh', [...bed.sshArgs(host, { user: opts.user }), ...command], { stdio: 'inherit' });
      await new Promise<void>((resolve) =>
        child.on('exit', (code) => {
          process.exitCode = code ?? 1;
          resolve();
        }),
      );
    });

  const fault = (
    name: string,
    description: string,
    run: (bed: Bed, host: string, extra?: string) => Promise<unknown>,
    withService = false,
  ) => {
    const cmd = program.command(name).description(description).argument('<host>');
    if (withService)
      cmd.argument('<service>', 'e.g. nginx, php8.2-fpm, apache2, mariadb, nfs-ganesha, rpcbind, haproxy, ssh');
    cmd.action(async (host: string, serviceArg: unknown) => {
      const service = withService && typeof serviceArg === 'string' ? serviceArg : undefined;
      const bed = await openBed(globals().name, globals().dir);
      const result = await run(bed, host, service);
      console.log(`${name} ${host}${service ? ` ${service}` : ''}: done${result ? ` ${JSON.stringify(result)}` : ''}`);
    });
  };
  fault('stop-host', 'kill the host (its PID-namespace init and every process)', (bed, host) => bed.stopHost(host));
  fault('start-host', 'boot a stopped host again and start its services', (bed, host) => bed.startHost(host));
  fault('cut-link', "set the host's veth down on the bridge side", (bed, host) => bed.cutLink(host));
  fault('restore-link', "set the host's veth up again", (bed, host) => bed.restoreLink(host));
  fault('stop-service', 'stop a service inside the host', (bed, host, s) => bed.stopService(host, s ?? ''), true);
  fault('start-service', 'start a service inside the host', (bed, host, s) => bed.startService(host, s ?? ''), true);
  fault(
    'reboot',
    'reboot the host: a clean shutdown, then boot again (VM hosts: a new QEMU on the same disk)',
    (bed, host) => bed.reboot(host),
  );
  fault('change-host-key', 'regenerate the ed25519 host key and restart sshd', (bed, host) => bed.changeHostKey(host));

  await program.parseAsync(argv);
}

if (require.main === module) {
  // `testbed up 8 | head` closes our stdout early: not an error of the bed.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
  });
  main(process.argv).catch((error: unknown) => {
    console.error(`testbed: ${messageOf(error)}`);
    process.exitCode = 1;
  });
}
