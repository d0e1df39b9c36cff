/**
 * Bringing one host up: boot its init, then (first boot only) role setup, then its services in
 * order, then (first boot only) role provisioning. Used by `up` and by the start-host fault.
 */
import * as path from 'node:path';
import { bootHost, execInHost, type HostExecOptions, prepareHostFiles } from './host';
import { assertRouteViaBridge } from './network';
import type { BedPlan, HostPlan } from './plan';
import { hostServices, roleDefinition, type RoleContext } from './roles';
import { startService, type HostExec } from './services';
import type { HostRuntime } from './state';
import { bootVm, execInVm } from './vm/guest';
import { buildDisk } from './vm/vm';

export interface BedContext {
  plan: BedPlan;
  dbAdminPassword(): Promise<string>;
  recordHost(host: HostPlan, runtime: HostRuntime): Promise<void>;
}

/** Writes the host's files and its roles' files before its first boot; returns its host public key. */
export async function prepareHost(plan: BedPlan, host: HostPlan, clientPublicKey: string): Promise<string> {
  const hostPublicKey = await prepareHostFiles(plan, host, clientPublicKey);
  for (const role of host.roles) await roleDefinition(role).prepareFiles({ bed: plan, host });
  return hostPublicKey;
}

export interface BringUpOptions {
  /** Run the roles' one-time setup and provisioning. */
  firstBoot: boolean;
  /** The caller has checked the route to this host already (startBed checks all hosts at once). */
  routeChecked?: boolean;
}

export async function bringUpHost(
  ctx: BedContext,
  host: HostPlan,
  { firstBoot, routeChecked = false }: BringUpOptions,
): Promise<void> {
  let exec: HostExec;
  if (host.vm) {
    // A VM host boots its own sshd (guest-init.sh); the controller then works over ssh.
    if (firstBoot) await buildDisk(host);
    const boot = await bootVm(ctx.plan, host, (qemuPid) => ctx.recordHost(host, { qemuPid }));
    await ctx.recordHost(host, { qemuPid: boot.qemuPid, bootMs: boot.bootMs, bootAttempts: boot.attempts });
    exec = (argv, options) => execInVm(ctx.plan, host, argv, options);
  } else {
    const logFile = path.join(ctx.plan.paths.logsDir, `${host.name}.init.log`);
    const runtime = await bootHost(host, logFile);
    await ctx.recordHost(host, runtime);
    exec = (argv: readonly string[], options?: HostExecOptions) => execInHost(host, runtime.initPid, argv, options);
  }
  const roleCtx: RoleContext = {
    bed: ctx.plan,
    host,
    dbAdminPassword: host.roles.includes('db') ? await ctx.dbAdminPassword() : '',
    exec,
  };
  if (firstBoot) {
    for (const role of host.roles) await roleDefinition(role).setup?.(roleCtx);
  }
  if (!routeChecked) await assertRouteViaBridge(host.ip, ctx.plan.bridge);
  for (const service of hostServices(host.roles)) {
    if (host.vm && service.name === 'ssh') continue; // the guest's init started it
    await startService(ctx.plan, host, exec, service, { routeChecked: true });
  }
  if (firstBoot) {
    for (const role of host.roles) await roleDefinition(role).provision?.(roleCtx);
  }
}
