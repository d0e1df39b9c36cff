/**
 * Custom search attributes: an operator finds every workflow of a site, platform, cluster or server in the Web UI
 * (for example `SitefleetSite = "example.com"`).
 */
import { defineSearchAttributeKey } from '@temporalio/common';

export const SITE = defineSearchAttributeKey('SitefleetSite', 'KEYWORD');
export const PLATFORM = defineSearchAttributeKey('SitefleetPlatform', 'KEYWORD');
export const CLUSTER = defineSearchAttributeKey('SitefleetCluster', 'KEYWORD');
export const SERVER = defineSearchAttributeKey('SitefleetServer', 'KEYWORD_LIST');

export const ALL_SEARCH_ATTRIBUTES = [SITE, PLATFORM, CLUSTER, SERVER];
