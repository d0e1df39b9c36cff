/**
 * The role registry: every role the bed can give a host.
 */
import type { Role } from '../plan';
import { apacheRole } from './apache';
import { ganeshaRole } from './ganesha';
import { haproxyRole } from './haproxy';
import { mariadbRole } from './mariadb';
import { nfsKernelRole } from './nfs-kernel';
import { nginxRole } from './nginx';
import type { RoleDefinition, ServiceSpec } from './role';
import { sshService } from './sshd';

const definitions: Record<Role, RoleDefinition> = {
  'web-nginx': nginxRole,
  'web-apache': apacheRole,
  db: mariadbRole,
  nfs: ganeshaRole,
  lb: haproxyRole,
  'nfs-kernel': nfsKernelRole,
};

export function roleDefinition(role: Role): RoleDefinition {
  return definitions[role];
}

/** Every service of a host with these roles, in start order: sshd first, shared services once. */
export function hostServices(roles: readonly Role[]): ServiceSpec[] {
  const services: ServiceSpec[] = [sshService];
  for (const role of roles) {
    for (const service of definitions[role].services) {
      if (!services.some((s) => s.name === service.name)) services.push(service);
    }
  }
  return services;
}

export type { PrepareContext, RoleContext, RoleDefinition, ServiceSpec } from './role';
