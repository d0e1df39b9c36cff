/**
 * Fetches a server's ssh host key so that it can be pinned when the server is registered.
 * The client only completes the key exchange: it captures the key the server proves it holds, then refuses
 * to go on, so no credentials are needed and nothing runs on the server.
 */
import { sshFingerprintOf } from '../common/ssh-fingerprint';
import { NodeSSH } from 'node-ssh';
import { messageOf } from '../common/error-message';

export interface HostKey {
  /** OpenSSH SHA256 fingerprint, as `ssh-keygen -lf` prints it: `SHA256:` and unpadded base64. */
  fingerprint: string;
  /** The key in OpenSSH wire format (base64), for a known_hosts line. */
  key: string;
  /** The key type named in the blob, such as `ssh-ed25519`. */
  type: string;
}

function keyType(blob: Buffer): string {
  if (blob.length < 4) return 'unknown';
  const len = blob.readUInt32BE(0);
  return blob.subarray(4, 4 + len).toString('ascii');
}

export class HostKeyFetchError extends Error {}

/**
 * Connects to `host:port`, captures the host key offered in the key exchange and disconnects.
 * The key algorithm is the one ssh2 negotiates by default (ed25519 first), the same the ssh runner negotiates.
 * @default timeoutMs 10000
 */
export async function fetchHostKey(host: string, port: number, timeoutMs = 10_000): Promise<HostKey> {
  let captured: Buffer | undefined;
  const ssh = new NodeSSH();
  try {
    await ssh.connect({
      host,
      port,
      username: 'sitefleet-host-key-scan',
      readyTimeout: timeoutMs,
      // Returning false ends the handshake right after the server proved it holds the key.
      hostVerifier: (key: Buffer) => {
        captured = Buffer.from(key);
        return false;
      },
    });
  } catch (err) {
    if (!captured) {
      const reason = messageOf(err);
      throw new HostKeyFetchError(`could not read the ssh host key of ${host}:${port}: ${reason}`);
    }
  } finally {
    ssh.dispose();
  }
  if (!captured) throw new HostKeyFetchError(`${host}:${port} offered no ssh host key`);
  return { fingerprint: sshFingerprintOf(captured), key: captured.toString('base64'), type: keyType(captured) };
}
