/**
 * Runs every test file under test/ with the node test runner (Node 20 has no --test globbing).
 * Files run one after another: several start test hosts and a Temporal server, and the machine has 2 cores.
 * Pass paths or directories to run a subset: `tsx scripts/run-tests.ts test/activities`.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

function testFiles(path: string): string[] {
  if (statSync(path).isFile()) return [path];
  return readdirSync(path)
    .sort()
    .flatMap((name) => {
      const full = join(path, name);
      if (statSync(full).isDirectory()) return name === 'support' || name === 'golden' ? [] : testFiles(full);
      return name.endsWith('.test.ts') ? [full] : [];
    });
}

const roots = process.argv.slice(2);
const files = (roots.length > 0 ? roots : ['test']).flatMap(testFiles);
if (files.length === 0) {
  console.error('no test files found');
  process.exit(1);
}
const result = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-concurrency=1', '--test-reporter=spec', ...files],
  { stdio: 'inherit' },
);
process.exit(result.status ?? 1);
