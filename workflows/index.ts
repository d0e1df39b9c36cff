/**
 * Every sitefleet workflow. The exported names are the workflow types of the public interface.
 */
export { VerifyServer } from './server';
export { SetupPackShare, TeardownPackShare } from './pack-share';
export { SetupClusterUploads, TeardownClusterUploads } from './cluster-uploads';
export { CreatePlatform, CreatePlatformOnPack, CreatePlatformOnCluster, DeletePlatform } from './platform';
export { RollbackPlatform } from './rollback';
export { InstallSite, InstallSiteOnPack, InstallSiteOnCluster, DeleteSite, EnableSite, DisableSite } from './site';
export { VerifyClusterNodes, ResyncCluster } from './verify';
export { BackupSite, RestoreSite, MigrateSite } from './backup';
export { AddClusterMember, RemoveClusterMember } from './membership';
export { ConfigureClusterLoadBalancer } from './load-balancer';
