/**
 * The OpenAPI 3.1 document of the API, generated from the same zod schemas that validate requests
 * (zod 4's JSON Schema output is draft 2020-12, the dialect OpenAPI 3.1 uses).
 */
import { z } from 'zod';
import { clusterSchema, packSchema, platformSchema, serverSchema, siteSchema } from '../domain/model';
import { WORKFLOW_TYPES } from '../domain/operations';
import {
  deployBodySchema,
  teardownShareBodySchema,
  errorSchema,
  memberBodySchema,
  loadBalancerBodySchema,
  migrateBodySchema,
  operationSchema,
  operationStartedSchema,
  restoreBodySchema,
  scheduleCreateSchema,
  schedulePatchSchema,
  scheduleViewSchema,
  serverRegistrationSchema,
} from './schemas';

type JsonSchema = Record<string, unknown>;

function jsonSchema(schema: z.ZodType, io: 'input' | 'output'): JsonSchema {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as JsonSchema;
  return rest;
}

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: unknown) => ({ content: { 'application/json': { schema } } });

const componentSchemas: Record<string, JsonSchema> = {
  Server: jsonSchema(serverSchema, 'output'),
  ServerRegistration: jsonSchema(serverRegistrationSchema, 'input'),
  Pack: jsonSchema(packSchema, 'output'),
  PackInput: jsonSchema(packSchema, 'input'),
  Cluster: jsonSchema(clusterSchema, 'output'),
  ClusterInput: jsonSchema(clusterSchema, 'input'),
  Platform: jsonSchema(platformSchema, 'output'),
  PlatformInput: jsonSchema(platformSchema, 'input'),
  Site: jsonSchema(siteSchema, 'output'),
  SiteInput: jsonSchema(siteSchema, 'input'),
  OperationStarted: jsonSchema(operationStartedSchema, 'output'),
  Operation: jsonSchema(operationSchema, 'output'),
  Schedule: jsonSchema(scheduleViewSchema, 'output'),
  ScheduleCreate: jsonSchema(scheduleCreateSchema, 'input'),
  SchedulePatch: jsonSchema(schedulePatchSchema, 'input'),
  MigrateRequest: jsonSchema(migrateBodySchema, 'input'),
  RestoreRequest: jsonSchema(restoreBodySchema, 'input'),
  MemberRequest: jsonSchema(memberBodySchema, 'input'),
  LoadBalancerRequest: jsonSchema(loadBalancerBodySchema, 'input'),
  DeployRequest: jsonSchema(deployBodySchema, 'input'),
  TeardownShareRequest: jsonSchema(teardownShareBodySchema, 'input'),
  Error: jsonSchema(errorSchema, 'output'),
};

const errors = {
  '400': { description: 'Invalid request: field-level problems', ...json(ref('Error')) },
  '401': { description: 'Missing or wrong bearer token', ...json(ref('Error')) },
  '404': { description: 'Unknown resource or reference', ...json(ref('Error')) },
  '409': { description: 'Conflict: exists, in use, or another operation runs on the resource', ...json(ref('Error')) },
};

interface Op {
  method: 'get' | 'post' | 'put' | 'patch' | 'delete';
  path: string;
  summary: string;
  tag: string;
  body?: string;
  /** The body may be left out (an operation whose options all have defaults). @default false */
  bodyOptional?: boolean;
  ok: Record<string, unknown>;
  query?: { name: string; description: string; schema: JsonSchema }[];
}

const pathParams = (path: string) =>
  [...path.matchAll(/\{(\w+)\}/g)].map(([, name]) => ({
    name,
    in: 'path',
    required: true,
    schema: { type: 'string' },
    ...(name === 'id'
      ? { description: 'contains "/" (for example site/example.com); send it as is or URL-encoded' }
      : {}),
  }));

const started = (what: string) => ({ '202': { description: `${what} started`, ...json(ref('OperationStarted')) } });

/** VerifyClusterNodes and ResyncCluster of a pack or cluster. */
const groupOps = (plural: 'packs' | 'clusters', tag: string): Op[] => [
  {
    method: 'post',
    path: `/v1/${plural}/{name}/verify`,
    tag,
    ok: started('VerifyClusterNodes'),
    summary: `Verify every member (${WORKFLOW_TYPES.verifyClusterNodes})`,
  },
  {
    method: 'post',
    path: `/v1/${plural}/{name}/resync`,
    tag,
    ok: started('ResyncCluster'),
    summary: `Repair drift on every member (${WORKFLOW_TYPES.resyncCluster})`,
  },
];

function resourceOps(plural: string, schema: string, key: string, tag: string): Op[] {
  const input = schema === 'Server' ? 'ServerRegistration' : `${schema}Input`;
  const one = `/v1/${plural}/{${key}}`;
  return [
    {
      method: 'get',
      path: `/v1/${plural}`,
      summary: `List ${plural}`,
      tag,
      ok: {
        '200': {
          description: 'The list',
          ...json({ type: 'object', properties: { [plural]: { type: 'array', items: ref(schema) } } }),
        },
      },
    },
    {
      method: 'post',
      path: `/v1/${plural}`,
      summary: `Create a ${tag.toLowerCase()}`,
      tag,
      body: input,
      ok: { '201': { description: 'Created', ...json(ref(schema)) } },
    },
    {
      method: 'get',
      path: one,
      summary: `Show a ${tag.toLowerCase()}`,
      tag,
      ok: { '200': { description: 'The resource', ...json(ref(schema)) } },
    },
    {
      method: 'put',
      path: one,
      summary: `Create or replace a ${tag.toLowerCase()} (header Sitefleet-Change: created, updated or unchanged)`,
      tag,
      body: input,
      ok: {
        '200': { description: 'Updated or unchanged', ...json(ref(schema)) },
        '201': { description: 'Created', ...json(ref(schema)) },
      },
    },
  ];
}

const forgetParam = {
  name: 'forget',
  description: '"true": remove the inventory record only; the servers are not touched',
  schema: { type: 'string', enum: ['true', 'false'] },
};

const OPS: Op[] = [
  {
    method: 'get',
    path: '/v1/health',
    summary: 'Health of the API, the inventory and Temporal (no token needed)',
    tag: 'Meta',
    ok: { '200': { description: 'Healthy' }, '503': { description: 'Degraded' } },
  },
  {
    method: 'get',
    path: '/v1/openapi.json',
    summary: 'This document',
    tag: 'Meta',
    ok: { '200': { description: 'OpenAPI 3.1' } },
  },

  ...resourceOps('servers', 'Server', 'name', 'Server'),
  {
    method: 'delete',
    path: '/v1/servers/{name}',
    summary: 'Remove a server nothing uses',
    tag: 'Server',
    ok: { '204': { description: 'Removed' } },
  },
  {
    method: 'get',
    path: '/v1/servers/{name}/host-key',
    summary: 'Read the ssh host key the server offers now, beside the pinned one (for re-pinning)',
    tag: 'Server',
    ok: { '200': { description: '{ server, host, port, pinned, offered, type, changed }' } },
  },
  {
    method: 'post',
    path: '/v1/servers/{name}/verify',
    summary: `Verify a server (${WORKFLOW_TYPES.verifyServer})`,
    tag: 'Server',
    ok: started('VerifyServer'),
  },

  ...resourceOps('packs', 'Pack', 'name', 'Pack'),
  {
    method: 'delete',
    path: '/v1/packs/{name}',
    summary:
      'Remove a pack no platform uses; refused (409) while its share is set up (teardown-share first), ' +
      'unless forget=true',
    tag: 'Pack',
    query: [forgetParam],
    ok: { '204': { description: 'Removed' } },
  },
  {
    method: 'post',
    path: '/v1/packs/{name}/setup-share',
    summary: `Set up the NFS share (${WORKFLOW_TYPES.setupPackShare})`,
    tag: 'Pack',
    ok: started('SetupPackShare'),
  },
  {
    method: 'post',
    path: '/v1/packs/{name}/teardown-share',
    summary:
      `Take the share down: mounts, fstab lines, slave keys and the export (${WORKFLOW_TYPES.teardownPackShare}); ` +
      'refused while platforms are on the pack unless the body says force: true',
    tag: 'Pack',
    body: 'TeardownShareRequest',
    bodyOptional: true,
    ok: started('TeardownPackShare'),
  },
  {
    method: 'post',
    path: '/v1/clusters/{name}/setup-uploads',
    summary: `Set up the cluster's uploads share: export on its files server, mount on every member (${WORKFLOW_TYPES.setupClusterUploads})`,
    tag: 'Cluster',
    ok: started('SetupClusterUploads'),
  },
  {
    method: 'post',
    path: '/v1/clusters/{name}/teardown-uploads',
    summary:
      `Take the uploads share down: mounts, fstab lines, member keys and the export; the uploads stay on the files server (${WORKFLOW_TYPES.teardownClusterUploads}); ` +
      'refused while sites are on the cluster unless the body says force: true',
    tag: 'Cluster',
    body: 'TeardownShareRequest',
    bodyOptional: true,
    ok: started('TeardownClusterUploads'),
  },
  ...groupOps('packs', 'Pack'),

  ...resourceOps('clusters', 'Cluster', 'name', 'Cluster'),
  {
    method: 'delete',
    path: '/v1/clusters/{name}',
    summary: 'Remove a cluster no platform uses',
    tag: 'Cluster',
    ok: { '204': { description: 'Removed' } },
  },
  ...groupOps('clusters', 'Cluster'),
  {
    method: 'post',
    path: '/v1/clusters/{name}/members',
    summary: `Add a member (${WORKFLOW_TYPES.addClusterMember})`,
    tag: 'Cluster',
    body: 'MemberRequest',
    ok: started('AddClusterMember'),
  },
  {
    method: 'delete',
    path: '/v1/clusters/{name}/members/{server}',
    summary: `Remove a member (${WORKFLOW_TYPES.removeClusterMember})`,
    tag: 'Cluster',
    ok: started('RemoveClusterMember'),
  },
  {
    method: 'put',
    path: '/v1/clusters/{name}/load-balancer',
    summary: `Put the cluster behind a load balancer, or take it off (${WORKFLOW_TYPES.configureClusterLoadBalancer})`,
    tag: 'Cluster',
    body: 'LoadBalancerRequest',
    ok: started('ConfigureClusterLoadBalancer'),
  },

  ...resourceOps('platforms', 'Platform', 'name', 'Platform'),
  {
    method: 'delete',
    path: '/v1/platforms/{name}',
    summary: `Delete a platform from its servers, then from the inventory (${WORKFLOW_TYPES.deletePlatform}); refused while sites exist`,
    tag: 'Platform',
    query: [forgetParam],
    ok: { ...started('DeletePlatform'), '204': { description: 'Forgotten (forget=true)' } },
  },
  {
    method: 'post',
    path: '/v1/platforms/{name}/deploy',
    summary:
      'Deploy a platform (CreatePlatform, CreatePlatformOnPack or CreatePlatformOnCluster by target); ' +
      "optional body: transfer options overriding the pack's or cluster's for this deployment",
    tag: 'Platform',
    body: 'DeployRequest',
    bodyOptional: true,
    ok: started('Deployment'),
  },
  {
    method: 'post',
    path: '/v1/platforms/{name}/rollback',
    summary: `Put every member of the platform's cluster back on its previous release in one step (${WORKFLOW_TYPES.rollbackPlatform}); refused, changing nothing, while a member has none`,
    tag: 'Platform',
    ok: started('RollbackPlatform'),
  },
  {
    method: 'post',
    path: '/v1/platforms/{name}/delete',
    summary: `Same as DELETE /v1/platforms/{name} (${WORKFLOW_TYPES.deletePlatform})`,
    tag: 'Platform',
    ok: started('DeletePlatform'),
  },

  ...resourceOps('sites', 'Site', 'domain', 'Site'),
  {
    method: 'delete',
    path: '/v1/sites/{domain}',
    summary: `Delete a site from its servers, then from the inventory (${WORKFLOW_TYPES.deleteSite})`,
    tag: 'Site',
    query: [forgetParam],
    ok: { ...started('DeleteSite'), '204': { description: 'Forgotten (forget=true)' } },
  },
  {
    method: 'post',
    path: '/v1/sites/{domain}/install',
    summary: 'Install a site (InstallSite, InstallSiteOnPack or InstallSiteOnCluster by target)',
    tag: 'Site',
    ok: started('Install'),
  },
  {
    method: 'post',
    path: '/v1/sites/{domain}/delete',
    summary: `Same as DELETE /v1/sites/{domain} (${WORKFLOW_TYPES.deleteSite})`,
    tag: 'Site',
    ok: started('DeleteSite'),
  },
  {
    method: 'post',
    path: '/v1/sites/{domain}/enable',
    summary: `Enable a site (${WORKFLOW_TYPES.enableSite})`,
    tag: 'Site',
    ok: started('EnableSite'),
  },
  {
    method: 'post',
    path: '/v1/sites/{domain}/disable',
    summary: `Disable a site (${WORKFLOW_TYPES.disableSite})`,
    tag: 'Site',
    ok: started('DisableSite'),
  },
  {
    method: 'post',
    path: '/v1/sites/{domain}/backup',
    summary: `Back up a site (${WORKFLOW_TYPES.backupSite})`,
    tag: 'Site',
    ok: started('BackupSite'),
  },
  {
    method: 'post',
    path: '/v1/sites/{domain}/restore',
    summary: `Restore a site from a backup (${WORKFLOW_TYPES.restoreSite})`,
    tag: 'Site',
    body: 'RestoreRequest',
    ok: started('RestoreSite'),
  },
  {
    method: 'post',
    path: '/v1/sites/{domain}/migrate',
    summary: `Move a site to another platform (${WORKFLOW_TYPES.migrateSite})`,
    tag: 'Site',
    body: 'MigrateRequest',
    ok: started('MigrateSite'),
  },

  {
    method: 'get',
    path: '/v1/operations',
    summary: 'Operations started through the API, newest first',
    tag: 'Operation',
    query: [
      { name: 'resource', description: 'KIND/NAME, such as site/example.com', schema: { type: 'string' } },
      { name: 'status', description: 'RUNNING, COMPLETED, FAILED...', schema: { type: 'string' } },
      { name: 'limit', description: '1-500, default 100', schema: { type: 'integer' } },
    ],
    ok: { '200': { description: 'The list' } },
  },
  {
    method: 'get',
    path: '/v1/operations/{id}',
    summary: 'Status, per-node progress while running, result or failure when closed',
    tag: 'Operation',
    query: [{ name: 'runId', description: 'a run of the operation; default the latest', schema: { type: 'string' } }],
    ok: { '200': { description: 'The operation', ...json(ref('Operation')) } },
  },
  {
    method: 'post',
    path: '/v1/operations/{id}/cancel',
    summary: 'Request cancellation; the workflow compensates',
    tag: 'Operation',
    ok: { '202': { description: 'Cancellation requested' } },
  },

  {
    method: 'get',
    path: '/v1/schedules',
    summary: 'Schedules of resync and verify',
    tag: 'Schedule',
    ok: {
      '200': {
        description: 'The list',
        ...json({ type: 'object', properties: { schedules: { type: 'array', items: ref('Schedule') } } }),
      },
    },
  },
  {
    method: 'post',
    path: '/v1/schedules',
    summary: 'Create or update the schedule of an action on a pack or cluster',
    tag: 'Schedule',
    body: 'ScheduleCreate',
    ok: {
      '201': { description: 'Created', ...json(ref('Schedule')) },
      '200': { description: 'Updated', ...json(ref('Schedule')) },
    },
  },
  {
    method: 'get',
    path: '/v1/schedules/{id}',
    summary: 'Show a schedule (id: ACTION/KIND/NAME)',
    tag: 'Schedule',
    ok: { '200': { description: 'The schedule', ...json(ref('Schedule')) } },
  },
  {
    method: 'patch',
    path: '/v1/schedules/{id}',
    summary: 'Change the interval, pause or unpause',
    tag: 'Schedule',
    body: 'SchedulePatch',
    ok: { '200': { description: 'The schedule', ...json(ref('Schedule')) } },
  },
  {
    method: 'delete',
    path: '/v1/schedules/{id}',
    summary: 'Delete a schedule',
    tag: 'Schedule',
    ok: { '204': { description: 'Deleted' } },
  },
];

/** The routes the document describes, as `METHOD /path/{param}`; a test checks them against the app's routes. */
export const DOCUMENTED_ROUTES: string[] = OPS.map((o) => `${o.method.toUpperCase()} ${o.path}`);

export function openApiDocument(): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const o of OPS) {
    const parameters = [
      ...pathParams(o.path),
      ...(o.query ?? []).map((q) => ({
        name: q.name,
        in: 'query',
        required: false,
        description: q.description,
        schema: q.schema,
      })),
    ];
    (paths[o.path] ??= {})[o.method] = {
      summary: o.summary,
      tags: [o.tag],
      operationId: `${o.method}${o.path.replace(/\{(\w+)\}/g, 'By-$1').replace(/[^A-Za-z0-9]+(.)?/g, (_m, c: string | undefined) => (c ? c.toUpperCase() : ''))}`,
      ...(parameters.length > 0 ? { parameters } : {}),
      ...(o.body ? { requestBody: { required: !o.bodyOptional, ...json(ref(o.body)) } } : {}),
      responses: { ...o.ok, ...errors },
      ...(o.path === '/v1/health' ? { security: [] } : {}),
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'sitefleet API',
      version: '1',
      description:
        'Inventory of servers, packs, clusters, platforms and sites; operations run as Temporal workflows. ' +
        'Send "Authorization: Bearer TOKEN" (the token is in the API token file).',
    },
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    security: [{ bearer: [] }],
    paths,
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      schemas: componentSchemas,
    },
  };
}
