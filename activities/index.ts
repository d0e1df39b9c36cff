/**
 * Every activity of the sitefleet worker. Each takes one plain-object argument and returns plain data; none takes
 * or returns a secret (passwords are derived where they are used). Failures are classified: bad input, a changed
 * host key, a config that fails its test and a host without kernel NFS are non-retryable ApplicationFailures with
 * a `type`; dropped connections, hosts that are down and timeouts are retryable.
 */
export { ensureWebConfig, testWebConfig } from './web-server';
export { reloadPhpFpm } from './php-fpm';
export { installVhost, restoreVhost, removeVhost, inspectSite } from './vhost';
export {
  syncPlatform,
  syncPlatformToServers,
  platformExists,
  listPlatformSites,
  removePlatform,
  checkPlatformVisible,
} from './platform';
export { prepareRelease, switchRelease, listReleases, pruneReleases } from './releases';
export { ensureSiteDir, removeSiteDir } from './site-files';
export { inspectDatabase, ensureDatabase, dropDatabase, checkDatabaseLogin } from './database';
export { runSiteInstaller } from './site-installer';
export { inspectExport, ensureExport, removeExport, checkNfsExport } from './nfs-export';
export { inspectShareMount, ensureShareMount, removeShareMount } from './nfs-mount';
export {
  readAegirIds,
  checkAegirIdParity,
  checkResolution,
  probeSite,
  writeSentinel,
  checkSentinel,
  inspectServer,
} from './checks';
export { verifyNode } from './verify-node';
export {
  ensureSitesOnServer,
  probeSitesOnServer,
  inspectSitesOnServer,
  removeSitesFromServer,
  inspectDatabasesOnServer,
  ensureDatabasesOnServer,
  setDatabaseAccountsOnServer,
} from './site-batch';
export { readUploadIds, ensureSiteUploads, ensureUploadsOnServer } from './cluster-uploads';
export { checkShareRead } from './nfs-mount';
export { backupSite, copyBackup, restoreSiteBackup } from './backup';
export { relayPlatform } from './relay/relay';
export { cleanupRelay } from './relay/relay-chain';
export { planPlatformTransfer } from './relay/relay-plan';
export {
  configureLoadBalancer,
  restoreLoadBalancer,
  removeLoadBalancer,
  setLoadBalancerMember,
  waitLoadBalancerMemberIdle,
  inspectLoadBalancer,
} from './load-balancer';
