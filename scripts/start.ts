/**
 * `npm start`: the embedded sitefleet — Temporal dev server (unless one already answers), the worker and the API.
 * Ctrl-C or SIGTERM stops every child it started, worker first so in-flight work can finish.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ensureTemporalCli } from '../devserver/temporal-cli';
import { startDevServer, temporalAnswers } from '../devserver/dev-server';
import { loadSettings } from '../config/settings';
import { messageOf } from '../common/error-message';
import { checkNamespaceAt } from '../devserver/namespace-setup';

const settings = loadSettings();
const children: { name: string; proc: ChildProcess }[] = [];
let stopping = false;

function startNode(name: string, script: string): ChildProcess {
  const proc = spawn(process.execPath, ['--import', 'tsx', join(__dirname, '..', script)], {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, SITEFLEET_DATA_DIR: settings.dataDir },
  });
  proc.on('exit', (code, signal) => {
    if (!stopping) {
      console.error(`${name} exited (${signal ?? code}); stopping sitefleet`);
      void stop(1);
    }
  });
  return proc;
}

function waitExit(proc: ChildProcess, ms: number): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      resolve();
    }, ms);
    proc.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

async function stop(code: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  console.log('stopping sitefleet...');
  // Reverse start order: API, worker (finishes in-flight activities), then the dev server.
  for (const { name, proc } of [...children].reverse()) {
    proc.kill('SIGTERM');
    await waitExit(proc, name === 'worker' ? 70_000 : 15_000);
    console.log(`  ${name} stopped`);
  }
  process.exit(code);
}

async function main(): Promise<void> {
  mkdirSync(settings.dataDir, { recursive: true });
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));

  let uiLine: string;
  if (await temporalAnswers(settings.temporalAddress)) {
    uiLine = `using the Temporal server already answering at ${settings.temporalAddress}`;
  } else {
    const cli = await ensureTemporalCli();
    const server = await startDevServer(cli, settings);
    children.push({ name: 'temporal dev server', proc: server });
    uiLine = `Temporal Web UI:  ${settings.uiUrl}`;
  }
  // Refuse a namespace without sitefleet's search attributes (a server of the operator's, or an old data directory).
  await checkNamespaceAt(settings.temporalAddress, settings.namespace);
  children.push({ name: 'worker', proc: startNode('worker', 'workers/main.ts') });
  children.push({ name: 'api', proc: startNode('api', 'api/main.ts') });

  console.log(
    [
      '',
      'sitefleet is running',
      `  ${uiLine}`,
      `  Temporal frontend: ${settings.temporalAddress} (namespace ${settings.namespace})`,
      `  HTTP API:          http://${settings.apiHost}:${settings.apiPort}/v1 (token in ${settings.tokenFile})`,
      `  data directory:    ${settings.dataDir}`,
      'Press Ctrl-C to stop.',
      '',
    ].join('\n'),
  );
}

main().catch((err: unknown) => {
  console.error(messageOf(err));
  void stop(1);
});
