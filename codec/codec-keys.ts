/**
 * The payload encryption keys: a key ring read from SITEFLEET_CODEC_KEY_FILE (or SITEFLEET_CODEC_KEY for one key).
 *
 * Format, one key a line: `id:base64` where the base64 text decodes to exactly 32 bytes (AES-256). Blank lines and
 * lines starting with `#` are ignored. The first key is the current one: every new payload is encrypted with it. The
 * others only decrypt payloads written before a rotation, so rotating is "put a new line on top, keep the old ones
 * until every history that used them is past its retention".
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { messageOf } from '../common/error-message';

/** The key-related settings (names as in config/settings.ts). */
export interface CodecKeySettings {
  /** Path of the key file (SITEFLEET_CODEC_KEY_FILE). */
  codecKeyFile?: string;
  /** One key, `id:base64` (SITEFLEET_CODEC_KEY); for setups where a file is awkward. */
  codecKey?: string;
}

export interface CodecKey {
  id: string;
  key: Buffer;
}

/** Every key sitefleet knows; `current` encrypts, all of them decrypt. */
export interface CodecKeyRing {
  current: CodecKey;
  byId: ReadonlyMap<string, CodecKey>;
}

const KEY_BYTES = 32;
const KEY_ID = /^[A-Za-z0-9._-]{1,64}$/;

/** Reads SITEFLEET_CODEC_KEY_FILE and SITEFLEET_CODEC_KEY from the environment. */
export function codecKeySettingsFromEnv(env: NodeJS.ProcessEnv = process.env): CodecKeySettings {
  return {
    codecKeyFile: env.SITEFLEET_CODEC_KEY_FILE || undefined,
    codecKey: env.SITEFLEET_CODEC_KEY || undefined,
  };
}

function parseKeyLine(line: string, where: string): CodecKey {
  const colon = line.indexOf(':');
  if (colon < 0) throw new Error(`${where}: expected "id:base64key", found no ":"`);
  const id = line.slice(0, colon).trim();
  const encoded = line.slice(colon + 1).trim();
  if (!KEY_ID.test(id)) {
    throw new Error(`${where}: key id "${id}" must be 1-64 characters of letters, digits, ".", "_" or "-"`);
  }
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(encoded)) throw new Error(`${where}: key "${id}" is not base64`);
  const key = Buffer.from(encoded, 'base64');
  if (key.length !== KEY_BYTES) {
    throw new Error(
      `${where}: key "${id}" decodes to ${key.length} bytes; AES-256 needs ${KEY_BYTES} (make one with "codec/main.ts generate-key")`,
    );
  }
  return { id, key };
}

/** Parses key file text. `source` names the file in error messages (never the key material). */
export function parseCodecKeys(text: string, source: string): CodecKeyRing {
  const keys: CodecKey[] = [];
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    keys.push(parseKeyLine(line, `${source} line ${index + 1}`));
  });
  return keyRing(keys, source);
}

function keyRing(keys: CodecKey[], source: string): CodecKeyRing {
  const [current] = keys;
  if (!current) throw new Error(`${source}: no key found (expected lines of "id:base64key")`);
  const byId = new Map<string, CodecKey>();
  for (const key of keys) {
    if (byId.has(key.id)) throw new Error(`${source}: key id "${key.id}" appears twice; ids must be unique`);
    byId.set(key.id, key);
  }
  return { current, byId };
}

/**
 * The configured key ring, or undefined when no key is configured (payloads then stay plain, as in the embedded
 * default). Throws when a key is configured but unusable: a worker must never silently fall back to plain text.
 */
export function loadCodecKeys(settings: CodecKeySettings = codecKeySettingsFromEnv()): CodecKeyRing | undefined {
  const { codecKeyFile, codecKey } = settings;
  if (codecKeyFile && codecKey) {
    throw new Error('Both SITEFLEET_CODEC_KEY_FILE and SITEFLEET_CODEC_KEY are set: set only one of them');
  }
  if (codecKey) return keyRing([parseKeyLine(codecKey.trim(), 'SITEFLEET_CODEC_KEY')], 'SITEFLEET_CODEC_KEY');
  if (!codecKeyFile) return undefined;
  let text: string;
  try {
    text = readFileSync(codecKeyFile, 'utf8');
  } catch (err) {
    const reason = messageOf(err);
    throw new Error(`SITEFLEET_CODEC_KEY_FILE=${codecKeyFile} cannot be read (${reason})`);
  }
  return parseCodecKeys(text, codecKeyFile);
}

/** A new random key line, `id:base64`, ready to put at the top of the key file. */
export function generateCodecKeyLine(id: string): string {
  if (!KEY_ID.test(id)) throw new Error(`key id "${id}" must be 1-64 characters of letters, digits, ".", "_" or "-"`);
  return `${id}:${randomBytes(KEY_BYTES).toString('base64')}`;
}
