/**
 * Custom search attributes: an operator finds every workflow of a site, platform, cluster or server in the Web UI
 * (for example `SitefleetSite = "example.com"`).
 */
import { defineSearchAttributeKey } from '@temporalio/common';

export const SITE = defineSearchAttributeKey('SitefleetSite', 'KEYWORD');
export const PLATFORM = defineSearchAttributeKey('SitefleetPlatform', 'KEYWORD');
export const CLUSTER = defineSearchAttributeKey('SitefleetCluster', 'KEYWORD');
export const SERVER = defineSearchAttributeKey('SitefleetServer', 'KEYWORD_LIST');
/**
 * Set by VerifyClusterNodes and ResyncCluster when they finish: false when a check failed (or a member could not
 * be repaired). The run itself completes either way, its report being the result; `SitefleetHealthy = false`
 * finds the ones an operator must look at.
 */
export const HEALTHY = defineSearchAttributeKey('SitefleetHealthy', 'BOOL');

export const ALL_SEARCH_ATTRIBUTES = [SITE, PLATFORM, CLUSTER, SERVER, HEALTHY];
