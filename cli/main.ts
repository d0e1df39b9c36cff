#!/usr/bin/env -S npx tsx
/**
 * The `sitefleet` command: `tsx cli/main.ts --help`.
 * API URL and token: --api-url / --token, else SITEFLEET_API_URL / SITEFLEET_TOKEN, else the API's own settings
 * (SITEFLEET_API_HOST/PORT and the token file in SITEFLEET_DATA_DIR).
 */
import { confirmOnTerminal, runCli } from './program';
import { messageOf } from '../common/error-message';

runCli(process.argv.slice(2), {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
  env: process.env,
  isTTY: Boolean(process.stdin.isTTY && process.stderr.isTTY),
  confirm: confirmOnTerminal,
}).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`error: ${messageOf(err)}\n`);
    process.exitCode = 1;
  },
);
