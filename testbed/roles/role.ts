/**
 * What a role (web-nginx, web-apache, db, nfs, lb) adds to a host: files before the first boot,
 * one-time commands, services started at every boot, and its part of the server inventory.
 */
import type { ServerInput } from '../../domain/model';
import type { CommandResult } from '../command';
import type { HostExecOptions } from '../host';
import type { BedPlan, HostPlan, Role } from '../plan';

/** What a role knows before its host boots. */
export interface PrepareContext {
  bed: BedPlan;
  host: HostPlan;
}

/** What a role can do once its host has booted. */
export interface RoleContext extends PrepareContext {
  /** The password of the db admin account, the same on every db host of the bed. */
  dbAdminPassword: string;
  /** Runs a command inside the host. */
  exec(argv: readonly string[], options?: HostExecOptions): Promise<CommandResult>;
}

/** A daemon of the host, controlled from inside it. */
export interface ServiceSpec {
  name: string;
  start: readonly (readonly string[])[];
  stop: readonly (readonly string[])[];
  /** A TCP port on the host's IP that is open exactly while the service runs. */
  port?: number;
}

/** The part of a server's inventory entry a role contributes. */
export type InventoryPart = Pick<ServerInput, 'http' | 'db' | 'nfs'>;

export interface RoleDefinition {
  role: Role;
  /** Writes the role's files into the host's private /etc and /var before its first boot. */
  prepareFiles(ctx: PrepareContext): Promise<void>;
  /** Runs once, at first boot, before the services start. */
  setup?(ctx: RoleContext): Promise<void>;
  /** Started at every boot, in order. */
  services: readonly ServiceSpec[];
  /** Runs once, at first boot, after the services are up. */
  provision?(ctx: RoleContext): Promise<void>;
  inventory?: InventoryPart;
}

/** A service managed by its Debian init script (`service NAME start|stop`): there is no systemd in a host. */
export function initScriptService(name: string, port?: number): ServiceSpec {
  return { name, start: [['service', name, 'start']], stop: [['service', name, 'stop']], port };
}
