/**
 * Fault injection: each function does one thing to a running bed and returns once the effect is
 * observable from the controller.
 */
import { fingerprintOf } from './keys';
import { execInHost, type HostExecOptions, killHost } from './host';
import { bringUpHost, type BedContext } from './lifecycle';
import { assertRouteViaBridge, setLinkUp, waitForTcpPort } from './network';
import type { HostPlan } from './plan';
import { hostServices, type ServiceSpec } from './roles';
import { sshService } from './roles/sshd';
import { type HostExec, startService, stopService } from './services';
import { execInVm, killVm, shutdownVm } from './vm/guest';

export interface FaultContext extends BedContext {
  /** The host's init PID; throws if the host is stopped. */
  initPidOf(host: HostPlan): Promise<number>;
  isRunning(host: HostPlan): Promise<boolean>;
}

/** Powers the host off: kills its PID-namespace init, and with it every process of the host. */
export async function stopHost(ctx: FaultContext, host: HostPlan): Promise<void> {
  if (!(await ctx.isRunning(host))) return;
  if (host.vm) await killVm(host, await ctx.initPidOf(host));
  else await killHost(host, await ctx.initPidOf(host));
  await ctx.recordHost(host, {});
}

/** A clean reboot (see Bed.reboot). */
export async function rebootHost(ctx: FaultContext, host: HostPlan): Promise<void> {
  if (host.vm) {
    if (await ctx.isRunning(host)) await shutdownVm(ctx.plan, host, await ctx.initPidOf(host));
    await ctx.recordHost(host, {});
  } else {
    await stopHost(ctx, host);
  }
  await bringUpHost(ctx, host, { firstBoot: false });
}

/** How to run a command in the host: nsenter for a namespace host, ssh for a VM host. */
async function hostExec(ctx: FaultContext, host: HostPlan): Promise<HostExec> {
  const pid = await ctx.initPidOf(host);
  if (host.vm) return (argv, options) => execInVm(ctx.plan, host, argv, options);
  return (argv, options) => execInHost(host, pid, argv, options);
}

/** Boots a stopped host again: /etc, /var, /var/aegir… keep their content, /run and /tmp start empty. */
export async function startHost(ctx: FaultContext, host: HostPlan): Promise<void> {
  if (await ctx.isRunning(host)) return;
  await bringUpHost(ctx, host, { firstBoot: false });
}

/** Takes the host's link down on the bridge side: the host stays up but nothing reaches it. */
export async function cutLink(_ctx: FaultContext, host: HostPlan): Promise<void> {
  await setLinkUp(host.veth, false);
}

export async function restoreLink(ctx: FaultContext, host: HostPlan): Promise<void> {
  await setLinkUp(host.veth, true);
  await assertRouteViaBridge(host.ip, ctx.plan.bridge);
  await waitForTcpPort(host.ip, 22, { timeoutMs: 10_000 });
}

export function serviceOf(host: HostPlan, name: string): ServiceSpec {
  const services = hostServices(host.roles);
  const service = services.find((s) => s.name === name);
  if (!service) {
    throw new Error(`host ${host.name} has no service "${name}" (it has: ${services.map((s) => s.name).join(', ')})`);
  }
  return service;
}

export async function stopHostService(ctx: FaultContext, host: HostPlan, name: string): Promise<void> {
  await stopService(ctx.plan, host, await hostExec(ctx, host), serviceOf(host, name));
}

export async function startHostService(ctx: FaultContext, host: HostPlan, name: string): Promise<void> {
  await startService(ctx.plan, host, await hostExec(ctx, host), serviceOf(host, name));
}

export interface HostKeyChange {
  previous: string;
  current: string;
}

/**
 * Gives the host a new ed25519 host key and restarts sshd with it, as a reinstalled (or impostor)
 * server would. The inventory and known_hosts keep pinning the old key: connections must now fail.
 */
export async function changeHostKey(ctx: FaultContext, host: HostPlan): Promise<HostKeyChange> {
  if (host.vm) throw new Error(`host ${host.name}: change-host-key is for namespace hosts only`);
  const initPid = await ctx.initPidOf(host);
  const exec = (argv: readonly string[], options?: HostExecOptions) => execInHost(host, initPid, argv, options);
  const keyFile = '/etc/ssh/ssh_host_ed25519_key';
  const previous = fingerprintOf((await exec(['cat', `${keyFile}.pub`])).stdout);
  await exec(['rm', '-f', keyFile, `${keyFile}.pub`]);
  await exec(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', `root@${host.name}`, '-f', keyFile]);
  const current = fingerprintOf((await exec(['cat', `${keyFile}.pub`])).stdout);
  await stopService(ctx.plan, host, exec, sshService);
  await startService(ctx.plan, host, exec, sshService);
  return { previous, current };
}
