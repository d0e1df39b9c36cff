// Lint catches the two commonest Temporal bugs before a test runs:
// Node builtins or activity implementations imported into workflow code, and floating promises.
// It also keeps the layers (docs/architecture.md): imports run from the outer rooms (api, cli, workers, bench,
// scripts, test) inward to workflows and activities, and from those to domain/ and common/, never back.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { builtinModules } from 'node:module';

const nodeBuiltins = [...builtinModules, ...builtinModules.map((m) => `node:${m}`)];

/** An import of the top-level folder `dir` by a relative path (`../dir`, `../../dir/x`, ...). */
function into(dir, message, allowTypeImports = false) {
  return { regex: `^(\\.\\./)+${dir}(/|$)`, message, allowTypeImports };
}

const noTest = into('test', 'Only tests import test/: move what production code needs out of test/support.');
const noBuiltins = nodeBuiltins.map((name) => ({
  name,
  message: 'Workflow code must be deterministic: no Node builtins.',
}));

function layerRules() {
  const rule = (files, patterns, paths = [], ignores = []) => ({
    files,
    ignores,
    rules: { '@typescript-eslint/no-restricted-imports': ['error', { paths, patterns }] },
  });
  const outer = ['workers', 'api', 'cli', 'bench', 'scripts'];
  const noOuter = (who) => outer.map((dir) => into(dir, `${who} never imports ${dir}/: imports run inward.`));
  return [
    // Everything outside test/ (the next entries repeat it, since they replace this one for their files).
    rule(['**/*.ts'], [noTest], [], ['test/**']),
    rule(['workflows/**/*.ts'], [
      noTest,
      ...noOuter('Workflow code'),
      {
        group: ['**/activities', '**/activities/*', '../activities/**'],
        allowTypeImports: true,
        message: 'Workflows may import activity types only: `import type * as activities from ...`.',
      },
    ], noBuiltins),
    rule(['activities/**/*.ts'], [
      noTest,
      ...noOuter('An activity'),
      into('workflows', 'Activities never import workflow code.'),
    ]),
    // common/ is imported by workflows: no builtins (but ssh-fingerprint.ts and tcp.ts, which workflows do not import).
    rule(['common/**/*.ts'], [
      noTest,
      ...noOuter('common/'),
      ...['activities', 'workflows', 'inventory', 'testbed'].map((d) => into(d, `common/ never imports ${d}/.`)),
    ], noBuiltins, ['common/ssh-fingerprint.ts', 'common/tcp.ts']),
    // The API starts workflows by type (it may import their types) and never runs activity code.
    rule(['api/**/*.ts'], [
      noTest,
      ...['workers', 'cli', 'bench', 'scripts'].map((d) => into(d, `api/ never imports ${d}/.`)),
      into('activities', 'api/ never imports activities/: shared types belong in domain/.'),
      into('workflows', 'api/ may import workflow types only.', true),
    ]),
    // metrics/ records through the SDK's MetricMeter; workflow code imports metrics/sitefleet.ts: no builtins there.
    rule(['metrics/**/*.ts'], [
      noTest,
      ...noOuter('metrics/'),
      ...['activities', 'workflows', 'inventory', 'testbed', 'domain', 'common'].map((d) =>
        into(d, `metrics/ never imports ${d}/: it names sitefleet's metrics and nothing else.`),
      ),
    ], noBuiltins, ['metrics/runtime.ts']),
    rule(['metrics/runtime.ts'], [noTest, ...noOuter('metrics/')]),
    // The test bed stands below the application: it builds hosts with its own process runner (testbed/command.ts)
    // and shares only the model, common helpers and the one shell-quoting function.
    rule(['testbed/**/*.ts'], [
      noTest,
      ...noOuter('testbed/'),
      ...['workflows', 'inventory', 'metrics'].map((d) => into(d, `testbed/ never imports ${d}/.`)),
      {
        regex: '^(\\.\\./)+activities/(?!transport/shell-quote$)',
        message: 'testbed/ never imports activities/ (but transport/shell-quote): it has its own runner, testbed/command.ts.',
      },
    ]),
    rule(['domain/**/*.ts'], [
      noTest,
      ...noOuter('domain/'),
      ...['activities', 'workflows', 'inventory', 'testbed'].map((d) => into(d, `domain/ never imports ${d}/.`)),
    ]),
  ];
}

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', '.data/**', 'test-artifacts/**', 'bench-results/**', '*.mjs'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          // node:test's describe/test return promises the runner itself tracks.
          allowForKnownSafeCalls: [{ from: 'package', name: ['describe', 'test', 'it', 'suite'], package: 'node:test' }],
        },
      ],
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  // Layers. One no-restricted-imports entry per file set: a later entry for the same rule replaces an earlier one,
  // so every set lists all that it may not import.
  ...layerRules(),
);
