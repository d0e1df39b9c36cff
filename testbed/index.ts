/**
 * The sitefleet test bed: test hosts in network namespaces on this machine.
 * See testbed/README.md for the layout of a bed and the files `up` writes.
 */
export {
  assertBedSupported,
  Bed,
  openBed,
  startBed,
  type HttpResponse,
  type MemoryUsage,
  type StartBedOptions,
} from './bed';
export { BedConflictError } from './claims';
export { CommandError, type CommandResult } from './command';
export { bedFactsSchema, type BedFacts, type HostFacts } from './facts';
export type { HostKeyChange } from './faults';
export type { HostExecOptions } from './host';
export {
  type BedOptions,
  bedPaths,
  type BedPlan,
  defaultBaseDir,
  DEFAULT_SUBNET,
  type HostOptions,
  type HostPlan,
  ROLES,
  type Role,
} from './plan';
export { DB_ADMIN_USER } from './roles/mariadb';
export { DEFAULT_SERVER_BODY } from './roles/nginx';
export { GANESHA_CONFIG_FILE, GANESHA_EXPORTS_FILE, GANESHA_PID_FILE } from './roles/ganesha';
export { BACKEND_HEADER, HAPROXY_CONFIG_FILE } from './roles/haproxy';
export { readState, processExists } from './state';
export { downBed, type DownReport } from './teardown';
