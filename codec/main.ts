/**
 * The codec endpoint as its own process, and key generation:
 *
 *   tsx codec/main.ts serve                 # listens on SITEFLEET_CODEC_HOST:SITEFLEET_CODEC_PORT
 *   tsx codec/main.ts generate-key 2025-06  # prints a new "id:base64" line for the key file
 */
import { Command } from 'commander';
import { loadSettings } from '../config/settings';
import { AesGcmCodec } from './aes-gcm-codec';
import { generateCodecKeyLine, loadCodecKeys, type CodecKeySettings } from './codec-keys';
import { startCodecServer } from './codec-server';
import { messageOf } from '../common/error-message';

/** The codec endpoint's settings; names and meaning as in config/settings.ts, so `loadSettings()` fits. */
export interface CodecServerSettings extends CodecKeySettings {
  codecHost: string;
  codecPort: number;
  /** Empty: the Web UI's origins (`uiOrigins(uiUrl)`). */
  codecCorsOrigins: string[];
  codecToken?: string;
  uiUrl: string;
}

/** Browser origins of the Web UI: the origin of its URL, plus the localhost / 127.0.0.1 twin of a local one. */
export function uiOrigins(uiUrl: string): string[] {
  const url = new URL(uiUrl);
  const twins: Record<string, string> = { localhost: '127.0.0.1', '127.0.0.1': 'localhost' };
  const twin = twins[url.hostname];
  if (!twin) return [url.origin];
  const other = new URL(url.origin);
  other.hostname = twin;
  return [url.origin, other.origin];
}

/** The browser origins the endpoint allows: the configured ones, else the Web UI's. */
export function corsOriginsOf(settings: Pick<CodecServerSettings, 'codecCorsOrigins' | 'uiUrl'>): string[] {
  return settings.codecCorsOrigins.length > 0 ? settings.codecCorsOrigins : uiOrigins(settings.uiUrl);
}

/** Runs the codec endpoint until SIGTERM / SIGINT. */
export async function serve(settings: CodecServerSettings): Promise<void> {
  const keys = loadCodecKeys(settings);
  if (!keys) {
    throw new Error('The codec endpoint needs the payload keys: set SITEFLEET_CODEC_KEY_FILE (see docs/production.md)');
  }
  const corsOrigins = corsOriginsOf(settings);
  const running = await startCodecServer({
    codec: new AesGcmCodec(keys),
    host: settings.codecHost,
    port: settings.codecPort,
    corsOrigins,
    token: settings.codecToken,
  });
  console.log(
    `codec endpoint: ${running.url} (current key "${keys.current.id}", ${keys.byId.size} key(s); ` +
      `browser origins: ${corsOrigins.join(', ')}; token ${settings.codecToken ? 'required' : 'off'})`,
  );
  const stop = (): void => {
    running.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

if (require.main === module) {
  const program = new Command('codec').description('sitefleet payload codec');
  program
    .command('serve', { isDefault: true })
    .description('run the codec HTTP endpoint for the Temporal Web UI and CLI')
    .action(() => serve(loadSettings()));
  program
    .command('generate-key')
    .description('print a new key line "id:base64" for SITEFLEET_CODEC_KEY_FILE')
    .argument('[id]', 'key id, for example the date of the rotation', new Date().toISOString().slice(0, 10))
    .action((id: string) => console.log(generateCodecKeyLine(id)));
  program.parseAsync().catch((err: unknown) => {
    console.error(messageOf(err));
    process.exit(1);
  });
}
