/**
 * AES-256-GCM payload encryption: what sitefleet sends to Temporal (workflow inputs, activity arguments and
 * results, failure messages) is stored as ciphertext, so a database dump or a Web UI without the key shows nothing.
 *
 * Each payload is serialised whole (metadata and data, as the Temporal `Payload` protobuf) and encrypted with a
 * fresh random 12-byte IV. The encrypted payload carries `encoding: binary/encrypted` and the id of the key in
 * `encryption-key-id`; its data is IV || ciphertext || 16-byte tag. The key id is also authenticated (GCM AAD), so
 * a payload cannot be relabelled to another key.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { Payload, PayloadCodec } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import type { CodecKey, CodecKeyRing } from './codec-keys';

export const ENCRYPTED_ENCODING = 'binary/encrypted';
export const KEY_ID_METADATA = 'encryption-key-id';

const IV_BYTES = 12;
const TAG_BYTES = 16;
const utf8 = new TextEncoder();
const text = new TextDecoder();

function additionalData(keyId: string): Buffer {
  return Buffer.from(`sitefleet-payload-codec/v1:${keyId}`, 'utf8');
}

export class AesGcmCodec implements PayloadCodec {
  constructor(private readonly keys: CodecKeyRing) {}

  /** The id new payloads are encrypted with. */
  get currentKeyId(): string {
    return this.keys.current.id;
  }

  async encode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((payload) => this.encrypt(payload, this.keys.current));
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((payload) => this.decrypt(payload));
  }

  private encrypt(payload: Payload, { id, key }: CodecKey): Payload {
    const plain = temporal.api.common.v1.Payload.encode(payload).finish();
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(additionalData(id));
    const sealed = Buffer.concat([iv, cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
    return {
      metadata: { encoding: utf8.encode(ENCRYPTED_ENCODING), [KEY_ID_METADATA]: utf8.encode(id) },
      data: new Uint8Array(sealed.buffer, sealed.byteOffset, sealed.byteLength),
    };
  }

  /** Payloads that are not encrypted (written before encryption was turned on) pass through unchanged. */
  private decrypt(payload: Payload): Payload {
    const encoding = payload.metadata?.encoding;
    if (!encoding || text.decode(encoding) !== ENCRYPTED_ENCODING) return payload;
    const rawId = payload.metadata?.[KEY_ID_METADATA];
    if (!rawId) throw new Error(`encrypted payload has no "${KEY_ID_METADATA}" metadata: cannot choose a key`);
    const keyId = text.decode(rawId);
    const entry = this.keys.byId.get(keyId);
    if (!entry) {
      throw new Error(
        `payload was encrypted with key id "${keyId}", which is not in the key ring (known: ${[...this.keys.byId.keys()].join(', ')}); ` +
          'add that key back to SITEFLEET_CODEC_KEY_FILE to read it',
      );
    }
    const sealed = payload.data ?? new Uint8Array();
    if (sealed.byteLength < IV_BYTES + TAG_BYTES) {
      throw new Error(`encrypted payload (key "${keyId}") is ${sealed.byteLength} bytes: too short to be valid`);
    }
    const iv = sealed.subarray(0, IV_BYTES);
    const tag = sealed.subarray(sealed.byteLength - TAG_BYTES);
    const body = sealed.subarray(IV_BYTES, sealed.byteLength - TAG_BYTES);
    const decipher = createDecipheriv('aes-256-gcm', entry.key, iv, { authTagLength: TAG_BYTES });
    decipher.setAAD(additionalData(keyId));
    decipher.setAuthTag(tag);
    let plain: Buffer;
    try {
      plain = Buffer.concat([decipher.update(body), decipher.final()]);
    } catch {
      throw new Error(
        `encrypted payload (key "${keyId}") failed authentication: it was altered, or key "${keyId}" is not the key it was written with`,
      );
    }
    return temporal.api.common.v1.Payload.decode(plain);
  }
}
