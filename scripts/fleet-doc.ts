/** Rewrites docs/fleet-file.md from the zod schemas (cli/fleet-doc.ts): `npm run docs:fleet-file`. */
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fleetFileDoc } from '../cli/fleet-doc';

const target = resolve(__dirname, '..', 'docs', 'fleet-file.md');
writeFileSync(target, fleetFileDoc());
process.stdout.write(`wrote ${target}\n`);
