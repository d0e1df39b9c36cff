/**
 * sitefleet's data converter: AES-GCM encrypted payloads and failure messages when a key is configured, Temporal's
 * default (plain JSON) otherwise. The client (API, CLI) and every worker must use the same one.
 */
import type { DataConverter } from '@temporalio/common';
import { AesGcmCodec } from './aes-gcm-codec';
import { codecKeySettingsFromEnv, loadCodecKeys, type CodecKeySettings } from './codec-keys';

/** Path of the failure converter module; the workflow bundle must be built with the same path. */
export const ENCRYPTED_FAILURE_CONVERTER_PATH = require.resolve('./failure-converter');

/**
 * The data converter for the configured keys, or undefined when none is configured (the embedded default).
 * Throws when a key is configured but cannot be used.
 *
 * @param settings `loadSettings()` or any object with `codecKeyFile` / `codecKey`
 * @default settings read from SITEFLEET_CODEC_KEY_FILE and SITEFLEET_CODEC_KEY
 */
export function sitefleetDataConverter(
  settings: CodecKeySettings = codecKeySettingsFromEnv(),
): DataConverter | undefined {
  const keys = loadCodecKeys(settings);
  if (!keys) return undefined;
  return {
    payloadCodecs: [new AesGcmCodec(keys)],
    failureConverterPath: ENCRYPTED_FAILURE_CONVERTER_PATH,
  };
}
