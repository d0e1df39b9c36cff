/**
 * Test helpers for activity tests against a test bed: the bed's servers as domain objects, and a per-file
 * environment (worker data dir, worker secret) that is removed, with every ssh connection, when the file ends.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { closeAllConnections } from '../../activities/transport/ssh';
import { serverInventorySchema, type Server } from '../../domain/model';
import type { Bed } from '../../testbed';

/** The bed's servers, parsed by the domain schema, by name. */
export function serversOf(bed: Bed): Record<string, Server> {
  const inventory = serverInventorySchema.parse(JSON.parse(readFileSync(bed.paths.inventoryFile, 'utf8')));
  return Object.fromEntries(inventory.servers.map((s) => [s.name, s]));
}

/** A server of the bed by name (throws when absent). */
export function serverOf(bed: Bed, name: string): Server {
  const server = serversOf(bed)[name];
  assert.ok(server, `bed ${bed.name} has no server ${name}`);
  return server;
}

/**
 * Points the worker's data dir and secret at a temp dir for this test file; after the file, closes every pooled
 * connection and ssh control master and removes the dir.
 */
export function useWorkerEnvironment(): string {
  const dir = mkdtempSync(join(tmpdir(), 'sitefleet-activities-'));
  process.env.SITEFLEET_DATA_DIR = dir;
  process.env.SITEFLEET_SECRET_FILE = join(dir, 'worker-secret');
  after(async () => {
    await closeAllConnections();
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

/** An assert.rejects matcher: an ApplicationFailure of `type`, retryable or not, whose message matches. */
export function failure(type: string, opts: { nonRetryable: boolean; message?: RegExp }) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof ApplicationFailure, `expected an ApplicationFailure, got ${String(err)}`);
    assert.equal(err.type, type, err.message);
    assert.equal(err.nonRetryable, opts.nonRetryable, `nonRetryable of: ${err.message}`);
    if (opts.message) assert.match(err.message, opts.message);
    return true;
  };
}

/** Polls `fn` until it returns true (or fails after `timeoutMs`). */
export async function eventually(fn: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) assert.fail(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
