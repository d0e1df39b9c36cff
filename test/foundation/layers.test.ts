/**
 * The import layers hold (docs/architecture.md): lint fails on a wrong-way import. Each case writes a small file
 * into the folder it is about, lints it with the project's own ESLint config, and removes it again.
 */
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { ESLint } from 'eslint';

const ROOT = join(__dirname, '..', '..');

interface Case {
  folder: string;
  code: string;
  /** A piece of the message lint must give; undefined: the import is allowed and lint must stay quiet. */
  refused?: string;
}

const cases: Record<string, Case> = {
  'activities/ importing workers/': {
    folder: 'activities',
    code: "import { startWorker } from '../workers/worker';\nexport const probe = startWorker;\n",
    refused: 'never imports workers/',
  },
  'activities/ importing api/': {
    folder: 'activities/transport',
    code: "import { tokenMatches } from '../../api/auth';\nexport const probe = tokenMatches;\n",
    refused: 'never imports api/',
  },
  'bench/ importing test/support': {
    folder: 'bench',
    code: "import { startTestTemporal } from '../test/support/temporal';\nexport const probe = startTestTemporal;\n",
    refused: 'Only tests import test/',
  },
  'api/ importing activity code': {
    folder: 'api',
    code: "import type { NodeCheck } from '../activities/verify-node';\nexport type Probe = NodeCheck;\n",
    refused: 'never imports activities/',
  },
  'workflows/ importing a Node builtin': {
    folder: 'workflows',
    code: "import { readFileSync } from 'node:fs';\nexport const probe = readFileSync;\n",
    refused: 'no Node builtins',
  },
  'common/ importing a Node builtin': {
    folder: 'common',
    code: "import { randomUUID } from 'node:crypto';\nexport const probe = randomUUID;\n",
    refused: 'no Node builtins',
  },
  'testbed/ importing the activities\' process runner': {
    folder: 'testbed',
    code: "import { runLocal } from '../activities/transport/local-process';\nexport const probe = runLocal;\n",
    refused: 'testbed/ never imports activities/',
  },
  'testbed/ importing the shell-quoting function (allowed)': {
    folder: 'testbed',
    code: "import { quoteArgs } from '../activities/transport/shell-quote';\nexport const probe = quoteArgs;\n",
  },
  'activities/ importing common/ and domain/ (allowed)': {
    folder: 'activities',
    code: "import { badInput } from '../common/failures';\nimport type { Server } from '../domain/model';\nexport const probe = (s: Server) => badInput(s.name);\n",
  },
};

const written: string[] = [];
after(() => {
  for (const file of written) rmSync(file, { force: true });
});

void describe('import layers', () => {
  const files = Object.entries(cases).map(([name, c], i) => {
    const file = join(ROOT, c.folder, `zz-layer-probe-${process.pid}-${i}.ts`);
    return { name, c, file };
  });
  let results: Map<string, ESLint.LintResult>;

  void test('lint fails on every wrong-way import and passes the allowed one', async () => {
    for (const { c, file } of files) {
      written.push(file);
      writeFileSync(file, c.code);
    }
    const eslint = new ESLint({ cwd: ROOT });
    results = new Map((await eslint.lintFiles(files.map((f) => f.file))).map((r) => [r.filePath, r]));
    for (const { name, c, file } of files) {
      const messages = (results.get(file)?.messages ?? []).map((m) => `${m.ruleId ?? 'parse'}: ${m.message}`);
      if (c.refused === undefined) {
        assert.deepEqual(messages, [], `${name}: lint must allow it`);
      } else {
        assert.ok(
          messages.some((m) => m.startsWith('@typescript-eslint/no-restricted-imports') && m.includes(c.refused!)),
          `${name}: lint must refuse it with "${c.refused}", said: ${messages.join(' | ') || 'nothing'}`,
        );
      }
    }
  });
});
