/**
 * The sitefleet HTTP API (express 5, JSON, under /v1): inventory CRUD, operations started as Temporal workflows,
 * schedules, and the OpenAPI document. Every route but the health check needs the bearer token.
 * A refused request starts nothing and leaves the inventory unchanged.
 */
import { Client, type WorkflowClient } from '@temporalio/client';
import express, { type Request, type Response } from 'express';
import pino, { type Logger } from 'pino';
import type { z } from 'zod';
import type { Settings } from '../config/settings';
import { fieldErrors } from '../domain/fields';
import type { Target } from '../domain/model';
import { AlreadyExistsError, type InventoryStore, type ResourceKind } from '../inventory/store';
import { requireToken } from './auth';
import { errorHandler, HttpError, invalidRequest } from './errors';
import { healthPageRouter } from './health-page';
import { findDuplicateKey } from './json-body';
import { keyPathProblem } from './key-path';
import { fetchHostKey as realFetchHostKey, HostKeyFetchError } from './host-key';
import { openApiDocument } from './openapi';
import * as plans from './operation-plans';
import { OperationService } from './operations';
import { ScheduleService } from './schedules';
import {
  deployBodySchema,
  domainParam,
  emptyBodySchema,
  forgetQuery,
  teardownShareBodySchema,
  memberBodySchema,
  loadBalancerBodySchema,
  migrateBodySchema,
  nameParam,
  operationIdSchema,
  operationsQuery,
  restoreBodySchema,
  runIdSchema,
  scheduleCreateSchema,
  scheduleIdSchema,
  schedulePatchSchema,
  serverRegistrationSchema,
} from './schemas';

/** The largest request body accepted. @default 64 KiB */
export const BODY_LIMIT = '64kb';

export interface AppDeps {
  store: InventoryStore;
  client: Client | WorkflowClient;
  settings: Settings;
  token: string;
  log?: Logger;
  /** How a server's ssh host key is read when a registration omits it. @default fetchHostKey from ./host-key */
  fetchHostKey?: typeof realFetchHostKey;
}

export interface Api {
  app: express.Express;
  operations: OperationService;
  schedules?: ScheduleService;
}

/** Validates `value`; a problem with the value as a whole is reported under `root` (a parameter's name). */
function parse<T>(schema: z.ZodType<T>, value: unknown, root?: string): T {
  const result = schema.safeParse(value);
  if (!result.success) throw invalidRequest(fieldErrors(result.error, root));
  return result.data;
}

/** Validates URL path parameters or a query string: problems name the parameter and where it is, `name (path)`. */
function parseParams<T>(schema: z.ZodType<T>, value: unknown, where: 'path' | 'query'): T {
  const result = schema.safeParse(value);
  if (!result.success) {
    throw invalidRequest(
      fieldErrors(result.error, `(${where})`).map((f) => ({
        ...f,
        field: f.field.startsWith('(') ? f.field : `${f.field} (${where})`,
      })),
    );
  }
  return result.data;
}

/** True when a request carries a body (a length above 0, or chunked). */
const hasBody = (req: Request): boolean =>
  req.headers['transfer-encoding'] !== undefined ||
  (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0');

const JSON_TYPES = ['application/json', 'application/*+json'];

/** An operation request's body: absent or `{}` unless the operation takes options. */
const bodyOf = (req: Request): unknown => req.body ?? {};

const RESOURCE_ROUTES: { kind: ResourceKind; plural: string; param: 'name' | 'domain' }[] = [
  { kind: 'server', plural: 'servers', param: 'name' },
  { kind: 'pack', plural: 'packs', param: 'name' },
  { kind: 'cluster', plural: 'clusters', param: 'name' },
  { kind: 'platform', plural: 'platforms', param: 'name' },
  { kind: 'site', plural: 'sites', param: 'domain' },
];

export function createApi(deps: AppDeps): Api {
  const { store, settings } = deps;
  const log = deps.log ?? pino({ level: 'silent' });
  const fetchHostKey = deps.fetchHostKey ?? realFetchHostKey;
  const workflow = deps.client instanceof Client ? deps.client.workflow : deps.client;
  const operations = new OperationService(workflow, store, settings, log);
  const schedules =
    deps.client instanceof Client ? new ScheduleService(deps.client.schedule, store, settings, log) : undefined;

  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', false);
  app.use(
    express.json({
      limit: BODY_LIMIT,
      strict: true,
      type: JSON_TYPES,
      // Runs on the decoded body before it is parsed: a repeated key is refused, not silently overwritten.
      verify: (_req, _res, buf) => {
        const duplicate = findDuplicateKey(buf.toString('utf8'));
        if (duplicate !== undefined) {
          throw invalidRequest([
            { field: duplicate, rule: 'appears more than once in its JSON object; send each key once' },
          ]);
        }
      },
    }),
  );

  app.get('/v1/health', async (_req, res) => {
    const check = async (fn: () => Promise<unknown>) =>
      fn().then(
        () => 'ok',
        () => 'unreachable',
      );
    const inventory = await check(() => store.ping());
    const temporal = await check(() =>
      workflow.withDeadline(Date.now() + 2_000, () => workflow.workflowService.getSystemInfo({})),
    );
    const ok = inventory === 'ok' && temporal === 'ok';
    res.status(ok ? 200 : 503).json({ status: ok ? 'ok' : 'degraded', inventory, temporal });
  });

  // The fleet health page (HTML): its own sign-in, outside the JSON API.
  app.use('/fleet', healthPageRouter({ store, workflow, settings, token: deps.token, log }));

  app.use('/v1', requireToken(deps.token));
  // A body that is not JSON is refused, not ignored (an operation would otherwise start without its options).
  app.use('/v1', (req, _res, next) => {
    if (hasBody(req) && !req.is(JSON_TYPES)) {
      throw new HttpError(
        415,
        `request body must be JSON: send Content-Type: application/json (got ${req.headers['content-type'] ?? 'no Content-Type'})`,
      );
    }
    next();
  });

  app.get('/v1/openapi.json', (_req, res) => {
    res.json(openApiDocument());
  });

  // ---- inventory ----

  /** Which packs and clusters an inventory change may affect, so their schedules get fresh input. */
  async function affectedGroups(kind: ResourceKind, values: unknown[]): Promise<Target[]> {
    const targets: Target[] = [];
    for (const v of values) {
      if (!v) continue;
      if (kind === 'pack' || kind === 'cluster') targets.push({ kind, name: (v as { name: string }).name });
      if (kind === 'platform') targets.push((v as { target: Target }).target);
      if (kind === 'site') {
        const platform = await store.get('platform', (v as { platform: string }).platform);
        if (platform) targets.push(platform.target);
      }
      if (kind === 'server') {
        for (const use of await store.usesOf('server', (v as { name: string }).name)) {
          if (use.kind === 'pack' || use.kind === 'cluster') targets.push({ kind: use.kind, name: use.key });
          if (use.kind === 'site') targets.push(...(await affectedGroups('site', [await store.get('site', use.key)])));
        }
      }
    }
    return targets;
  }
  const refreshSchedules = async (kind: ResourceKind, ...values: unknown[]) => {
    if (schedules) await schedules.refreshFor(await affectedGroups(kind, values));
  };

  const checkKeyPath = (keyPath: string | undefined) => {
    const problem = keyPath === undefined ? undefined : keyPathProblem(keyPath, settings);
    if (problem) throw invalidRequest([{ field: 'ssh.keyPath', rule: problem }]);
  };

  /** A server as registered, with its host key: given, kept (same host and port), or fetched from the server. */
  async function withHostKey(body: unknown, current?: { host: string; ssh: { port: number; hostKey: string } }) {
    const reg = parse(serverRegistrationSchema, body);
    checkKeyPath(reg.ssh.keyPath);
    if (reg.ssh.hostKey) return reg;
    if (current && current.host === reg.host && current.ssh.port === reg.ssh.port) {
      return { ...reg, ssh: { ...reg.ssh, hostKey: current.ssh.hostKey } };
    }
    try {
      const key = await fetchHostKey(reg.host, reg.ssh.port);
      log.info({ server: reg.name, fingerprint: key.fingerprint, type: key.type }, 'pinned ssh host key');
      return { ...reg, ssh: { ...reg.ssh, hostKey: key.fingerprint } };
    } catch (err) {
      if (!(err instanceof HostKeyFetchError)) throw err;
      throw new HttpError(
        502,
        `${err.message}. Check that ${reg.host} runs sshd on port ${reg.ssh.port} and is reachable from the API, ` +
          'or give ssh.hostKey yourself (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub on the server)',
      );
    }
  }

  /** 409 naming the run when an operation on `resource` is still running: its record must outlive it. */
  async function refuseWhileRunning(resource: string, what: string) {
    await operations.refreshRunning();
    const [running] = await store.listOperations({ resource, status: 'RUNNING', limit: 1 });
    if (!running) return;
    throw new HttpError(
      409,
      `${resource} cannot be ${what} while operation ${running.id} (${running.type}, run ${running.runId}) runs on it; ` +
        `wait for it (sitefleet operation watch ${running.id}) or cancel it, then retry`,
      { running: { operationId: running.id, runId: running.runId, workflowType: running.type } },
    );
  }

  for (const { kind, plural, param } of RESOURCE_ROUTES) {
    const keyOf = (req: Request): string =>
      param === 'name'
        ? parseParams(nameParam, req.params, 'path').name
        : parseParams(domainParam, req.params, 'path').domain;

    app.get(`/v1/${plural}`, async (_req, res) => {
      res.json({ [plural]: await store.list(kind) });
    });

    app.get(`/v1/${plural}/:${param}`, async (req, res) => {
      const key = keyOf(req);
      const value = await store.get(kind, key);
      if (!value) throw new HttpError(404, `no ${kind} named "${key}"`);
      res.json(value);
    });

    app.post(`/v1/${plural}`, async (req, res) => {
      let body: unknown = req.body;
      if (kind === 'server') {
        const reg = parse(serverRegistrationSchema, body);
        checkKeyPath(reg.ssh.keyPath);
        // Refuse a duplicate before contacting the host.
        if (await store.get('server', reg.name)) throw new AlreadyExistsError('server', reg.name);
        body = await withHostKey(reg);
      }
      const created = await store.create(kind, body);
      await refreshSchedules(kind, created);
      res
        .status(201)
        .location(`/v1/${plural}/${encodeURIComponent(String((created as Record<string, unknown>)[param]))}`);
      res.json(created);
    });

    app.put(`/v1/${plural}/:${param}`, async (req, res) => {
      const key = keyOf(req);
      const before = await store.get(kind, key);
      let body: unknown = req.body;
      if (kind === 'server') {
        const reg = parse(serverRegistrationSchema, body);
        if (reg.name !== key) throw invalidRequest([{ field: 'name', rule: `must be "${key}", the name in the URL` }]);
        body = await withHostKey(reg, before as Parameters<typeof withHostKey>[1]);
      }
      const { value, change } = await store.put(kind, key, body);
      if (change !== 'unchanged') await refreshSchedules(kind, before, value);
      res
        .status(change === 'created' ? 201 : 200)
        .set('Sitefleet-Change', change)
        .json(value);
    });

    app.delete(`/v1/${plural}/:${param}`, async (req, res) => {
      const key = keyOf(req);
      const forget = parseParams(forgetQuery, req.query, 'query').forget === 'true';
      // Sites and platforms live on servers: DELETE removes them there first, then from the inventory.
      if ((kind === 'site' || kind === 'platform') && !forget) {
        const plan =
          kind === 'site' ? await plans.planDeleteSite(store, key) : await plans.planDeletePlatform(store, key);
        res.status(202).json(await operations.start(plan));
        return;
      }
      if (kind === 'pack' && !forget) {
        const setUp = await operations.packShareSetUp(key);
        if (setUp !== undefined) {
          throw new HttpError(
            409,
            `pack ${key} has its share set up (${setUp}): take it down first (sitefleet teardown-share ${key}; ` +
              `POST /v1/packs/${key}/teardown-share), or forget=true to remove the record only`,
          );
        }
      }
      const before = await store.get(kind, key);
      if (before) await refuseWhileRunning(`${kind}/${key}`, forget ? 'forgotten' : 'removed');
      await store.remove(kind, key);
      await refreshSchedules(kind, before);
      res.status(204).end();
    });
  }

  /** The key the server offers now beside the pinned one, for `sitefleet server repin` (reads only). */
  app.get('/v1/servers/:name/host-key', async (req, res) => {
    const key = parseParams(nameParam, req.params, 'path').name;
    const current = await store.get('server', key);
    if (!current) throw new HttpError(404, `no server named "${key}"`);
    let offered: Awaited<ReturnType<typeof fetchHostKey>>;
    try {
      offered = await fetchHostKey(current.host, current.ssh.port);
    } catch (err) {
      if (!(err instanceof HostKeyFetchError)) throw err;
      throw new HttpError(502, `${err.message}. Check that ${current.host} runs sshd on port ${current.ssh.port}`);
    }
    res.json({
      server: key,
      host: current.host,
      port: current.ssh.port,
      pinned: current.ssh.hostKey,
      offered: offered.fingerprint,
      type: offered.type,
      changed: offered.fingerprint !== current.ssh.hostKey,
    });
  });

  // ---- operations ----

  const op = (path: string, plan: (req: Request) => Promise<plans.OperationPlan>) => {
    app.post(path, async (req: Request, res: Response) => {
      const p = await plan(req);
      res.status(202).json(await operations.start(p));
    });
  };
  const name = (req: Request) => parseParams(nameParam, req.params, 'path').name;
  const domain = (req: Request) => parseParams(domainParam, req.params, 'path').domain;
  const noBody = (req: Request) => parse(emptyBodySchema, bodyOf(req));

  op('/v1/servers/:name/verify', (req) => (noBody(req), plans.planVerifyServer(store, name(req))));
  op('/v1/packs/:name/setup-share', (req) => (noBody(req), plans.planSetupPackShare(store, name(req))));
  op('/v1/packs/:name/teardown-share', (req) =>
    plans.planTeardownPackShare(store, name(req), parse(teardownShareBodySchema, bodyOf(req)).force === true),
  );
  op('/v1/clusters/:name/setup-uploads', (req) => (noBody(req), plans.planSetupClusterUploads(store, name(req))));
  op('/v1/clusters/:name/teardown-uploads', (req) =>
    plans.planTeardownClusterUploads(store, name(req), parse(teardownShareBodySchema, bodyOf(req)).force === true),
  );
  for (const kind of ['pack', 'cluster'] as const) {
    op(`/v1/${kind}s/:name/verify`, (req) => (noBody(req), plans.planVerifyGroup(store, { kind, name: name(req) })));
    op(`/v1/${kind}s/:name/resync`, (req) => (noBody(req), plans.planResyncGroup(store, { kind, name: name(req) })));
  }
  // Optional body: clients that send none (or `{}`) deploy with the group's stored transfer options, as before.
  op('/v1/platforms/:name/deploy', (req) =>
    plans.planDeployPlatform(store, name(req), parse(deployBodySchema, bodyOf(req)).transfer),
  );
  op('/v1/platforms/:name/delete', (req) => (noBody(req), plans.planDeletePlatform(store, name(req))));
  op('/v1/platforms/:name/rollback', (req) => (noBody(req), plans.planRollbackPlatform(store, name(req))));
  op('/v1/sites/:domain/install', (req) => (noBody(req), plans.planInstallSite(store, domain(req))));
  op('/v1/sites/:domain/delete', (req) => (noBody(req), plans.planDeleteSite(store, domain(req))));
  op('/v1/sites/:domain/enable', (req) => (noBody(req), plans.planSiteStatus(store, domain(req), 'enabled')));
  op('/v1/sites/:domain/disable', (req) => (noBody(req), plans.planSiteStatus(store, domain(req), 'disabled')));
  op('/v1/sites/:domain/backup', (req) => (noBody(req), plans.planBackupSite(store, domain(req))));
  op('/v1/sites/:domain/restore', (req) =>
    plans.planRestoreSite(store, domain(req), parse(restoreBodySchema, bodyOf(req)).backup),
  );
  op('/v1/sites/:domain/migrate', (req) =>
    plans.planMigrateSite(store, domain(req), parse(migrateBodySchema, bodyOf(req)).platform),
  );
  op('/v1/clusters/:name/members', (req) =>
    plans.planClusterMember(store, name(req), parse(memberBodySchema, bodyOf(req)).server, 'add'),
  );
  app.delete('/v1/clusters/:name/members/:server', async (req, res) => {
    const params = parseParams(nameParam.extend({ server: nameParam.shape.name }), req.params, 'path');
    res
      .status(202)
      .json(await operations.start(await plans.planClusterMember(store, params.name, params.server, 'remove')));
  });

  app.put('/v1/clusters/:name/load-balancer', async (req, res) => {
    const body = parse(loadBalancerBodySchema, bodyOf(req));
    res.status(202).json(await operations.start(await plans.planClusterLoadBalancer(store, name(req), body.server)));
  });

  const operationId = (req: Request) => {
    const segments = (req.params as Record<string, string[]>).id ?? [];
    return parse(operationIdSchema, segments.join('/'), 'operationId (path)');
  };
  const runIdOf = (req: Request) =>
    parse(runIdSchema, typeof req.query.runId === 'string' ? req.query.runId : undefined, 'runId (query)');

  app.get('/v1/operations', async (req, res) => {
    const q = parseParams(operationsQuery, req.query, 'query');
    // Statuses come from Temporal: bring the ones still recorded as running up to date first.
    await operations.refreshRunning();
    const list = await store.listOperations({
      ...(q.resource ? { resource: q.resource } : {}),
      ...(q.status ? { status: q.status } : {}),
      limit: q.limit,
    });
    res.json({ operations: list });
  });
  app.get('/v1/operations/*id', async (req, res) => {
    res.json(await operations.view(operationId(req), runIdOf(req)));
  });
  app.post('/v1/operations/*id/cancel', async (req, res) => {
    const id = operationId(req);
    await operations.cancel(id, runIdOf(req));
    res.status(202).json({ operationId: id, cancelRequested: true });
  });

  // ---- schedules ----

  const needSchedules = (): ScheduleService => {
    if (!schedules) throw new HttpError(501, 'schedules need a full Temporal Client, not a WorkflowClient');
    return schedules;
  };
  const scheduleId = (req: Request) =>
    parse(scheduleIdSchema, ((req.params as Record<string, string[]>).id ?? []).join('/'), 'scheduleId (path)');

  app.get('/v1/schedules', async (_req, res) => {
    res.json({ schedules: await needSchedules().list() });
  });
  app.post('/v1/schedules', async (req, res) => {
    const body = parse(scheduleCreateSchema, req.body);
    const { created, view } = await needSchedules().createOrUpdate(body);
    res.status(created ? 201 : 200).json(view);
  });
  app.get('/v1/schedules/*id', async (req, res) => {
    res.json(await needSchedules().get(scheduleId(req)));
  });
  app.patch('/v1/schedules/*id', async (req, res) => {
    const id = scheduleId(req);
    res.json(await needSchedules().patch(id, parse(schedulePatchSchema, req.body)));
  });
  app.delete('/v1/schedules/*id', async (req, res) => {
    await needSchedules().remove(scheduleId(req));
    res.status(204).end();
  });

  app.use((req, res) => {
    const allowed = allowedMethods(app, req.path);
    if (allowed.length > 0) {
      res
        .status(405)
        .set('Allow', allowed.join(', '))
        .json({ error: `${req.method} is not allowed on ${req.path}; allowed: ${allowed.join(', ')}` });
      return;
    }
    res.status(404).json({ error: `no route ${req.method} ${req.path}; see GET /v1/openapi.json` });
  });
  app.use(errorHandler(log));
  return { app, operations, ...(schedules ? { schedules } : {}) };
}

interface RouteLayer {
  route?: { methods: Record<string, boolean> };
  match(path: string): boolean;
}

/** The methods some route answers on `path` (for 405 and its Allow header); empty when no route matches it. */
function allowedMethods(app: express.Express, path: string): string[] {
  const stack = (app as unknown as { router: { stack: RouteLayer[] } }).router.stack;
  const methods = new Set<string>();
  for (const layer of stack) {
    if (!layer.route || !layer.match(path)) continue;
    for (const [method, on] of Object.entries(layer.route.methods))
      if (on && method !== '_all') methods.add(method.toUpperCase());
  }
  if (methods.has('GET')) methods.add('HEAD');
  return [...methods].sort();
}

/** The express app alone (for tests and embedding). */
export function createApp(deps: AppDeps): express.Express {
  return createApi(deps).app;
}
