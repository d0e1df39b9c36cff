/**
 * Golden files: the expected output of a pure function, kept in test/golden/ and reviewed like code.
 * `UPDATE_GOLDEN=1 node --import tsx --test test/activities/*.test.ts` rewrites them from the current output.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

export const GOLDEN_DIR = join(__dirname, '..', 'golden');

/** The content of a golden file (for inputs kept next to the expected outputs). */
export function readGolden(name: string): string {
  return readFileSync(join(GOLDEN_DIR, name), 'utf8');
}

/** Asserts that `actual` equals the golden file `name` (or writes it, with UPDATE_GOLDEN=1). */
export function assertGolden(name: string, actual: string): void {
  const path = join(GOLDEN_DIR, name);
  if (process.env.UPDATE_GOLDEN === '1') {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, actual);
    return;
  }
  let expected: string;
  try {
    expected = readFileSync(path, 'utf8');
  } catch {
    assert.fail(`golden file ${path} is missing: run with UPDATE_GOLDEN=1 to create it, then review it`);
  }
  assert.equal(actual, expected, `output differs from golden file ${path}`);
}
