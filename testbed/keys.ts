/**
 * SSH keys of the bed: the controller's client key and each host's ed25519 host key.
 */
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';

export interface KeyPair {
  privateKeyPath: string;
  /** The public key line, `ssh-ed25519 AAAA... comment`. */
  publicKey: string;
}

/** An SSH wire-format string: uint32 length, then the bytes. */
function sshString(data: Buffer | string): Buffer {
  const bytes = typeof data === 'string' ? Buffer.from(data) : data;
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return Buffer.concat([length, bytes]);
}

/**
 * Generates an unencrypted ed25519 key pair at `privateKeyPath` (and `.pub`), in OpenSSH's own
 * formats, replacing any old one. Done in-process (no ssh-keygen) because `up` makes one per host.
 */
export async function generateEd25519Key(privateKeyPath: string, comment: string): Promise<KeyPair> {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const pub = Buffer.from(publicKey.export({ format: 'jwk' }).x ?? '', 'base64url');
  const seed = Buffer.from(privateKey.export({ format: 'jwk' }).d ?? '', 'base64url');
  const publicBlob = Buffer.concat([sshString('ssh-ed25519'), sshString(pub)]);
  const check = randomBytes(4);
  let secret = Buffer.concat([
    check,
    check,
    sshString('ssh-ed25519'),
    sshString(pub),
    sshString(Buffer.concat([seed, pub])),
    sshString(comment),
  ]);
  const padding = (8 - (secret.length % 8)) % 8;
  secret = Buffer.concat([secret, Buffer.from(Array.from({ length: padding }, (_, i) => i + 1))]);
  const body = Buffer.concat([
    Buffer.from('openssh-key-v1\0'),
    sshString('none'),
    sshString('none'),
    sshString(''),
    Buffer.from([0, 0, 0, 1]),
    sshString(publicBlob),
    sshString(secret),
  ]);
  const armored = body
    .toString('base64')
    .replace(/(.{70})/g, '$1\n')
    .replace(/\n$/, '');
  const publicLine = `ssh-ed25519 ${publicBlob.toString('base64')} ${comment}`;
  await fs.rm(privateKeyPath, { force: true });
  await fs.writeFile(
    privateKeyPath,
    `-----BEGIN OPENSSH PRIVATE KEY-----\n${armored}\n-----END OPENSSH PRIVATE KEY-----\n`,
    {
      mode: 0o600,
    },
  );
  await fs.writeFile(`${privateKeyPath}.pub`, `${publicLine}\n`, { mode: 0o644 });
  return { privateKeyPath, publicKey: publicLine };
}

/** The OpenSSH SHA256 fingerprint of a public key line, as `ssh-keygen -lf` prints it. */
export function fingerprintOf(publicKey: string): string {
  const blob = publicKey.trim().split(/\s+/)[1];
  if (!blob) throw new Error(`not an OpenSSH public key: "${publicKey.slice(0, 40)}"`);
  const digest = createHash('sha256').update(Buffer.from(blob, 'base64')).digest('base64');
  return `SHA256:${digest.replace(/=+$/, '')}`;
}

/** A known_hosts line pinning `publicKey` for `address` (port 22). */
export function knownHostsLine(address: string, publicKey: string): string {
  const [type, blob] = publicKey.trim().split(/\s+/);
  return `${address} ${type ?? ''} ${blob ?? ''}`;
}
