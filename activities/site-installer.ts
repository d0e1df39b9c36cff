/**
 * The application's own installer, run once a site's database, directory and vhosts exist. WordPress: the web
 * installer (`wp-admin/install.php?step=2`) driven over HTTP through one node, with an admin password derived on
 * the worker (site-secrets.ts) and never returned. Other profiles have nothing to run.
 */
import { platformSchema, serverSchema, siteSchema, type Platform, type Server, type Site } from '../domain/model';
import { activityCancellationSignal, heartbeatProgress, withHeartbeat } from './support/activity-context';
import { parseInput } from './support/activity-input';
import { FailureType, permanentFailure, transientFailure } from '../common/failures';
import { requestThroughNode } from './transport/http-request';
import { wordpressAdminPasswordFor } from './site-secrets';
import { messageOf } from '../common/error-message';

/** The WordPress admin account the installer creates. */
export const WORDPRESS_ADMIN_USER = 'sitefleet-admin';

export interface RunSiteInstallerInput {
  /** The node the installer is reached through. */
  server: Server;
  site: Site;
  platform: Platform;
  dbServer?: Server;
}

export interface RunSiteInstallerResult {
  server: string;
  domain: string;
  /** False for profiles without an installer. */
  ran: boolean;
  /** True when the site was installed already (a retry, or a site moved onto new members). */
  alreadyInstalled: boolean;
}

/** Runs the application's installer for a site through one node. Idempotent: an installed site is left alone. */
export async function runSiteInstaller(input: RunSiteInstallerInput): Promise<RunSiteInstallerResult> {
  const signal = activityCancellationSignal();
  const server = parseInput(serverSchema, input.server, 'server');
  const site = parseInput(siteSchema, input.site, 'site');
  const platform = parseInput(platformSchema, input.platform, 'platform');
  const base = { server: server.name, domain: site.domain };
  if (platform.profile !== 'wordpress') return { ...base, ran: false, alreadyInstalled: false };
  const url = `http://${server.host}:${server.http?.port ?? 80}/wp-admin/install.php`;
  const call = async (method: 'GET' | 'POST', form?: Record<string, string>) => {
    heartbeatProgress({ server: server.name, step: `${method} install.php` });
    try {
      return await requestThroughNode({
        url: method === 'POST' ? `${url}?step=2` : url,
        host: site.domain,
        method,
        form,
        timeoutMs: 120_000,
        signal,
      });
    } catch (err) {
      throw transientFailure(
        FailureType.HostUnreachable,
        `server ${server.name}: the WordPress installer of ${site.domain} did not answer: ${messageOf(err)}`,
      );
    }
  };
  return withHeartbeat(
    () => ({ server: server.name, step: 'WordPress installer' }),
    () => install(server, site, call),
  );
}

async function install(
  server: Server,
  site: Site,
  call: (method: 'GET' | 'POST', form?: Record<string, string>) => Promise<{ status: number; body: string }>,
): Promise<RunSiteInstallerResult> {
  const base = { server: server.name, domain: site.domain };
  const page = await call('GET');
  if (/Already Installed/i.test(page.body)) return { ...base, ran: true, alreadyInstalled: true };
  if (page.status !== 200) {
    throw transientFailure(
      FailureType.RemoteCommandFailed,
      `server ${server.name}: ${site.domain}/wp-admin/install.php answered ${page.status}: ${page.body.slice(0, 300).trim()}`,
    );
  }
  const password = await wordpressAdminPasswordFor(site.domain);
  const result = await call('POST', {
    weblog_title: site.domain,
    user_name: WORDPRESS_ADMIN_USER,
    admin_password: password,
    admin_password2: password,
    pw_weak: '1',
    admin_email: `${WORDPRESS_ADMIN_USER}@${site.domain}`,
    blog_public: '0',
    language: '',
    Submit: 'Install WordPress',
  });
  if (/Already Installed/i.test(result.body)) return { ...base, ran: true, alreadyInstalled: true };
  if (result.status === 200 && /Success!/i.test(result.body)) return { ...base, ran: true, alreadyInstalled: false };
  const text = result.body
    .replace(/<[^>]+>/g, ' ')
    .replace(/\s+/g, ' ')
    .split(password)
    .join('***')
    .slice(0, 400);
  throw permanentFailure(
    FailureType.RemoteCommandFailed,
    `server ${server.name}: the WordPress installer of ${site.domain} did not succeed (status ${result.status}): ${text}`,
  );
}
