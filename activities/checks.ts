/**
 * Read-only checks of servers and sites: the aegir user's uid/gid and their parity, name resolution on a node,
 * an HTTP probe of a site through one node (from this worker, with Node's http), the sentinel seen through a
 * share, and what a new server offers (VerifyServer).
 */
import { z } from 'zod';
import { hostAddress, ipv4Address } from '../domain/fields';
import { platformSchema, serverSchema, siteSchema, type Platform, type Server, type Site } from '../domain/model';
import { vhostDir } from '../domain/paths';
import { activityCancellationSignal } from './support/activity-context';
import { parseInput } from './support/activity-input';
import { FailureType, permanentFailure } from '../common/failures';
import { requestThroughNode } from './transport/http-request';
import { writeRemoteFile } from './transport/remote-file';
import { verifiedHostKey } from './transport/ssh';
import { runRemote } from './transport/ssh-command';
import { runConfigTest } from './web-server';
import { SHARE_SENTINEL } from './nfs-share';
import { messageOf } from '../common/error-message';

// ---------------------------------------------------------------- aegir uid/gid

export interface AegirIds {
  server: string;
  user: string;
  uid: number;
  gid: number;
}

/** The aegir user's uid and gid on a server (`id -u`, `id -g`); ServerNotReady when the user does not exist. */
export async function aegirIdsOf(server: Server, signal?: AbortSignal): Promise<AegirIds> {
  const r = await runRemote(server, ['sh', '-c', 'id -u -- "$1" && id -g -- "$1"', 'sitefleet-id', server.aegirUser], {
    timeoutMs: 30_000,
    signal,
    allowExitCodes: 'any',
  });
  const [uid, gid] = r.stdout.trim().split('\n').map(Number);
  if (r.code !== 0 || uid === undefined || gid === undefined || Number.isNaN(uid) || Number.isNaN(gid)) {
    throw permanentFailure(
      FailureType.ServerNotReady,
      `server ${server.name} has no user ${server.aegirUser}: create it with the same uid and gid as on the other members (${r.stderr.trim()})`,
    );
  }
  return { server: server.name, user: server.aegirUser, uid, gid };
}

/** Activity: the aegir user's uid and gid on one server. */
export async function readAegirIds(input: { server: Server }): Promise<AegirIds> {
  const signal = activityCancellationSignal();
  return aegirIdsOf(parseInput(serverSchema, input.server, 'server'), signal);
}

export interface AegirIdParity {
  consistent: boolean;
  ids: AegirIds[];
  /** Servers whose uid:gid differs from the first server's. */
  mismatched: string[];
}

/**
 * The aegir uid/gid on every server and whether they agree (NFS permissions need them equal). With
 * `enforce: true` a disagreement is a non-retryable UidGidMismatch listing every server's ids.
 */
export async function checkAegirIdParity(input: { servers: Server[]; enforce?: boolean }): Promise<AegirIdParity> {
  const signal = activityCancellationSignal();
  const servers = parseInput(z.array(serverSchema).min(1), input.servers, 'servers');
  const ids = await Promise.all(servers.map((s) => aegirIdsOf(s, signal)));
  const first = ids[0] as AegirIds;
  const mismatched = ids.filter((i) => i.uid !== first.uid || i.gid !== first.gid).map((i) => i.server);
  const parity = { consistent: mismatched.length === 0, ids, mismatched };
  if (!parity.consistent && input.enforce) {
    throw permanentFailure(
      FailureType.UidGidMismatch,
      `the aegir uid:gid differs between servers (${ids.map((i) => `${i.server}=${i.uid}:${i.gid}`).join(', ')}); ` +
        'NFS permissions would break. Make them equal, then retry.',
      parity,
    );
  }
  return parity;
}

// ---------------------------------------------------------------- name resolution

export interface ResolutionResult {
  server: string;
  name: string;
  addresses: string[];
  ok: boolean;
  detail: string;
}

/** How `name` resolves on `server` (`getent hosts`), compared with `expected` when given. Never throws for a finding. */
export async function resolveOn(
  server: Server,
  name: string,
  expected?: string,
  signal?: AbortSignal,
): Promise<ResolutionResult> {
  if (ipv4Address.safeParse(name).success) {
    const ok = expected === undefined || expected === name;
    return {
      server: server.name,
      name,
      addresses: [name],
      ok,
      detail: ok ? `${name} is an address` : `${name} is not ${expected}`,
    };
  }
  const r = await runRemote(server, ['getent', 'ahostsv4', name], {
    timeoutMs: 30_000,
    signal,
    allowExitCodes: [0, 2],
  });
  const addresses = [
    ...new Set(
      r.stdout
        .split('\n')
        .map((l) => l.split(/\s+/)[0] ?? '')
        .filter((a) => a !== ''),
    ),
  ];
  if (addresses.length === 0) {
    return { server: server.name, name, addresses, ok: false, detail: `${name} does not resolve on ${server.name}` };
  }
  const ok = expected === undefined || addresses.includes(expected);
  return {
    server: server.name,
    name,
    addresses,
    ok,
    detail: ok
      ? `${name} resolves to ${addresses.join(', ')} on ${server.name}`
      : `${name} resolves to ${addresses.join(', ')} on ${server.name}, not ${expected}`,
  };
}

export interface CheckResolutionInput {
  server: Server;
  name: string;
  /** The address `name` must resolve to; absent: any address will do. */
  expectedAddress?: string;
  /** Throw a non-retryable ResolutionMismatch when the check fails. @default true */
  enforce?: boolean;
}

/** Activity: checks that `name` resolves on the server (to `expectedAddress`, when given). */
export async function checkResolution(input: CheckResolutionInput): Promise<ResolutionResult> {
  const signal = activityCancellationSignal();
  const server = parseInput(serverSchema, input.server, 'server');
  const name = parseInput(hostAddress, input.name, 'name');
  const expected =
    input.expectedAddress === undefined ? undefined : parseInput(hostAddress, input.expectedAddress, 'expectedAddress');
  const result = await resolveOn(server, name, expected, signal);
  if (!result.ok && input.enforce !== false) {
    throw permanentFailure(
      FailureType.ResolutionMismatch,
      `${result.detail}. Fix DNS or /etc/hosts on ${server.name} (the site's database host must resolve on every web node), then retry.`,
      result,
    );
  }
  return result;
}

// ---------------------------------------------------------------- HTTP probe

export interface ProbeSiteInput {
  /** The node to probe through: the request goes to its address, with the site's Host header. */
  server: Server;
  site: Site;
  platform?: Platform;
  /** @default '/' */
  path?: string;
  /** Text the body must contain. */
  expectBodyMarker?: string;
  /** Acceptable statuses. @default 200-399 */
  expectStatus?: number[];
  /** Probe over https (on the server's https port) instead of http. @default false */
  https?: boolean;
  /** @default 10 s */
  timeoutMs?: number;
}

export interface ProbeSiteResult {
  server: string;
  domain: string;
  url: string;
  ok: boolean;
  /** 0 when no response came. */
  status: number;
  bodyMarkerFound: boolean | null;
  elapsedMs: number;
  detail: string;
}

/**
 * Requests the site through one node from this worker (Node's http, not ssh), with the site's Host header, and
 * checks the status and, optionally, a marker in the body. Never throws for a finding: `ok` says it.
 * https probes do not verify the certificate chain (a node's certificate may be self-signed); they check that
 * the node serves the site.
 */
export async function probeSite(input: ProbeSiteInput): Promise<ProbeSiteResult> {
  const signal = activityCancellationSignal();
  const server = parseInput(serverSchema, input.server, 'server');
  const site = parseInput(siteSchema, input.site, 'site');
  if (input.platform !== undefined) parseInput(platformSchema, input.platform, 'platform');
  const path = parseInput(
    z
      .string()
      .regex(/^\/[^\s]*$/)
      .default('/'),
    input.path,
    'path',
  );
  const useHttps = input.https ?? false;
  const port = useHttps ? (server.http?.https?.port ?? 443) : (server.http?.port ?? 80);
  const url = `${useHttps ? 'https' : 'http'}://${server.host}:${port}${path}`;
  const started = Date.now();
  const base = { server: server.name, domain: site.domain, url };
  let response: { status: number; body: string };
  try {
    response = await requestThroughNode({ url, host: site.domain, timeoutMs: input.timeoutMs ?? 10_000, signal });
  } catch (err) {
    return {
      ...base,
      ok: false,
      status: 0,
      bodyMarkerFound: null,
      elapsedMs: Date.now() - started,
      detail: `no response from ${url} (Host: ${site.domain}): ${messageOf(err)}`,
    };
  }
  const statusOk = input.expectStatus
    ? input.expectStatus.includes(response.status)
    : response.status >= 200 && response.status < 400;
  const markerFound = input.expectBodyMarker === undefined ? null : response.body.includes(input.expectBodyMarker);
  const ok = statusOk && markerFound !== false;
  const problems = [
    ...(statusOk ? [] : [`status ${response.status}`]),
    ...(markerFound === false ? [`body lacks "${input.expectBodyMarker}"`] : []),
  ];
  return {
    ...base,
    ok,
    status: response.status,
    bodyMarkerFound: markerFound,
    elapsedMs: Date.now() - started,
    detail: ok
      ? `${site.domain} answers ${response.status} through ${server.name}`
      : `${site.domain} through ${server.name} (${url}): ${problems.join(', ')}: ${response.body.slice(0, 200).trim()}`,
  };
}

// ---------------------------------------------------------------- sentinel through a share

const SENTINEL = SHARE_SENTINEL;

/** Writes a sentinel file with `token` into `dir` on the share server. */
export async function writeSentinel(input: {
  server: Server;
  dir: string;
  token: string;
}): Promise<{ server: string; path: string }> {
  const signal = activityCancellationSignal();
  const server = parseInput(serverSchema, input.server, 'server');
  const token = parseInput(z.string().regex(/^[A-Za-z0-9._-]{1,200}$/), input.token, 'token');
  const path = `${input.dir.replace(/\/+$/, '')}/${SENTINEL}`;
  await writeRemoteFile(server, path, `${token}\n`, { mode: '0644', signal });
  return { server: server.name, path };
}

/**
 * Whether `dir` on a server (a slave, through its share mount) holds the sentinel with `token`. Polls for a few
 * seconds, because an NFS client may cache the directory briefly.
 */
export async function checkSentinel(input: {
  server: Server;
  dir: string;
  token: string;
}): Promise<{ server: string; visible: boolean; detail: string }> {
  const signal = activityCancellationSignal();
  const server = parseInput(serverSchema, input.server, 'server');
  const path = `${input.dir.replace(/\/+$/, '')}/${SENTINEL}`;
  let seen = '';
  for (let attempt = 0; attempt < 10; attempt++) {
    const r = await runRemote(server, ['sh', '-c', 'cat -- "$1" 2>&1 || true', 'sitefleet-sentinel', path], {
      timeoutMs: 30_000,
      signal,
    });
    seen = r.stdout.trim();
    if (seen === input.token) return { server: server.name, visible: true, detail: `${path} holds the token` };
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  return { server: server.name, visible: false, detail: `${path} on ${server.name}: ${seen || 'empty'}` };
}

// ---------------------------------------------------------------- VerifyServer

export interface ServerInspection {
  server: string;
  ok: boolean;
  problems: string[];
  hostKey: string;
  http: { type: string; installed: boolean; configTestOk: boolean; vhostDirIncluded: boolean; output: string } | null;
  rsync: boolean;
  aegir: { uid: number; gid: number } | null;
}

/**
 * What VerifyServer reports: ssh reachable with the pinned host key, the web server installed and passing its
 * config test, the vhost directory included, rsync present, the aegir user's ids. Detection runs on the server.
 */
export async function inspectServer(input: { server: Server }): Promise<ServerInspection> {
  const signal = activityCancellationSignal();
  const server = parseInput(serverSchema, input.server, 'server');
  const key = await verifiedHostKey(server);
  const problems: string[] = [];
  const [rsync, ids, http] = await Promise.all([
    runRemote(server, ['sh', '-c', 'command -v rsync'], { timeoutMs: 30_000, signal, allowExitCodes: 'any' }),
    aegirIdsOf(server, signal).catch((err: unknown) => {
      problems.push(messageOf(err));
      return null;
    }),
    inspectHttp(server, signal),
  ]);
  if (rsync.code !== 0) problems.push(`rsync is not installed on ${server.name}`);
  if (http && !http.installed) problems.push(`${http.type} is not installed on ${server.name}`);
  else if (http && !http.configTestOk)
    problems.push(`the ${http.type} config test fails on ${server.name}: ${http.output}`);
  if (http?.installed && !http.vhostDirIncluded) {
    problems.push(
      `${http.type} on ${server.name} does not include ${vhostDir(server, http.type as 'nginx')} (run ensureWebConfig)`,
    );
  }
  return {
    server: server.name,
    ok: problems.length === 0,
    problems,
    hostKey: key.fingerprint,
    http,
    rsync: rsync.code === 0,
    aegir: ids ? { uid: ids.uid, gid: ids.gid } : null,
  };
}

async function inspectHttp(server: Server, signal?: AbortSignal): Promise<ServerInspection['http']> {
  if (!server.http) return null;
  const type = server.http.type;
  const binary = type === 'nginx' ? 'nginx' : 'apachectl';
  const found = await runRemote(server, ['sh', '-c', 'command -v "$1"', 'sitefleet-which', binary], {
    timeoutMs: 30_000,
    signal,
    allowExitCodes: 'any',
  });
  if (found.code !== 0) return { type, installed: false, configTestOk: false, vhostDirIncluded: false, output: '' };
  const dir = vhostDir(server, type);
  const [test, included] = await Promise.all([
    runConfigTest(server, signal),
    runRemote(server, ['grep', '-rlsF', '--', dir, type === 'nginx' ? '/etc/nginx' : '/etc/apache2'], {
      timeoutMs: 30_000,
      signal,
      allowExitCodes: 'any',
    }),
  ]);
  return { type, installed: true, configTestOk: test.ok, vhostDirIncluded: included.code === 0, output: test.output };
}
