/**
 * The OpenSSH SHA256 fingerprint of a public key, for the API (pinning a key at registration) and the activities
 * (checking the key a server presents). Uses node:crypto, so unlike the rest of common/ it is not for workflows.
 */
import { createHash } from 'node:crypto';

/** The fingerprint of an ssh public key blob (wire format), as `ssh-keygen -lf` prints it: `SHA256:` and base64. */
export function sshFingerprintOf(keyBlob: Buffer): string {
  return `SHA256:${createHash('sha256').update(keyBlob).digest('base64').replace(/=+$/, '')}`;
}
