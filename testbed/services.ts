/**
 * Starting and stopping a host's daemons from inside the host, and knowing when they are really
 * up (or down): by their TCP port on the host's IP, after the route check.
 */
import type { HostExecOptions } from './host';
import type { CommandResult } from './command';
import { assertRouteViaBridge, waitForTcpPort } from './network';
import type { BedPlan, HostPlan } from './plan';
import type { ServiceSpec } from './roles';

export type HostExec = (argv: readonly string[], options?: HostExecOptions) => Promise<CommandResult>;

export interface ServiceOptions {
  /** The caller has just checked the route to the host (see assertRoutesViaBridge). @default false */
  routeChecked?: boolean;
}

export async function startService(
  bed: BedPlan,
  host: HostPlan,
  exec: HostExec,
  service: ServiceSpec,
  { routeChecked = false }: ServiceOptions = {},
): Promise<void> {
  for (const argv of service.start) await exec(argv, { outputToFile: true });
  if (service.port !== undefined) {
    if (!routeChecked) await assertRouteViaBridge(host.ip, bed.bridge);
    await waitForTcpPort(host.ip, service.port, { timeoutMs: 30_000 }).catch((error: Error) => {
      throw new Error(`host ${host.name}: ${service.name} started but ${error.message}; see ${host.dir}/log`);
    });
  }
}

export async function stopService(bed: BedPlan, host: HostPlan, exec: HostExec, service: ServiceSpec): Promise<void> {
  for (const argv of service.stop) await exec(argv, { outputToFile: true });
  if (service.port !== undefined) {
    await assertRouteViaBridge(host.ip, bed.bridge);
    await waitForTcpPort(host.ip, service.port, { open: false, timeoutMs: 15_000 }).catch((error: Error) => {
      throw new Error(`host ${host.name}: ${service.name} was stopped but ${error.message}`);
    });
  }
}
