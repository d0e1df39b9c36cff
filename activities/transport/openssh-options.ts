/**
 * The one place that builds OpenSSH's options for a connection pinned to one host key: rsync's connections
 * (rsync.ts), the relay's stream from this worker (relay/relay-stream.ts) and each relay hop between members
 * (relay/relay-chain.ts). No ssh config file is read; the only key accepted is the one in `knownHostsFile` under
 * `hostKeyAlias`, with StrictHostKeyChecking=yes. Every option is free of spaces (rsync's `-e` joins them).
 */

/** What a pinned connection needs. */
export interface PinnedSshTarget {
  port: number;
  user: string;
  identityFile: string;
  /** A known_hosts file that holds the host's key under `hostKeyAlias` ({@link knownHostsLine}). */
  knownHostsFile: string;
  hostKeyAlias: string;
  /** The pinned key's type (ssh-ed25519, ssh-rsa, ...): the only host key algorithm offered. */
  hostKeyType: string;
}

export interface PinnedSshTuning {
  /** @default the curve25519 key exchanges, then ecdh-sha2-nistp256 and diffie-hellman-group14-sha256 */
  kexAlgorithms?: string;
  ciphers?: string;
  /**
   * A one-off stream (the relay): no config file, no tty, no compression, no connection sharing, agent or
   * forwarding, host keys never updated. @default false
   */
  stream?: boolean;
  /** Share connections through this control socket (`ControlPath`); the caller chooses ControlMaster. */
  controlPath?: string;
  /** @default 10 */
  serverAliveIntervalSeconds?: number;
}

const DEFAULT_KEX = 'curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256,diffie-hellman-group14-sha256';

/** The host key algorithms that match a pinned key of `keyType` (an RSA key is used with SHA-2 signatures only). */
export function hostKeyAlgorithms(keyType: string): string {
  return keyType === 'ssh-rsa' ? 'rsa-sha2-512,rsa-sha2-256' : keyType;
}

/** The known_hosts line that pins `key` under `alias`. */
export function knownHostsLine(alias: string, key: { type: string; blob: Buffer }): string {
  return `${alias} ${key.type} ${key.blob.toString('base64')}\n`;
}

/** OpenSSH's command-line options (before the destination) for a connection pinned to `target`'s host key. */
export function pinnedSshOptions(target: PinnedSshTarget, tuning: PinnedSshTuning = {}): string[] {
  const o = (...settings: string[]): string[] => settings.flatMap((s) => ['-o', s]);
  const stream = tuning.stream ?? false;
  return [
    ...(stream ? ['-F', '/dev/null', '-T'] : []),
    '-p',
    String(target.port),
    '-i',
    target.identityFile,
    '-l',
    target.user,
    ...o(
      'IdentitiesOnly=yes',
      ...(stream ? ['IdentityAgent=none'] : []),
      'BatchMode=yes',
      'StrictHostKeyChecking=yes',
      `UserKnownHostsFile=${target.knownHostsFile}`,
      'GlobalKnownHostsFile=/dev/null',
      `HostKeyAlias=${target.hostKeyAlias}`,
      `HostKeyAlgorithms=${hostKeyAlgorithms(target.hostKeyType)}`,
      `KexAlgorithms=${tuning.kexAlgorithms ?? DEFAULT_KEX}`,
      ...(tuning.ciphers ? [`Ciphers=${tuning.ciphers}`] : []),
      ...(stream
        ? [
            'Compression=no',
            'ControlMaster=no',
            'ControlPath=none',
            'ForwardAgent=no',
            'ForwardX11=no',
            'ClearAllForwardings=yes',
            'UpdateHostKeys=no',
          ]
        : []),
      ...(tuning.controlPath ? [`ControlPath=${tuning.controlPath}`] : []),
      'ConnectTimeout=10',
      `ServerAliveInterval=${tuning.serverAliveIntervalSeconds ?? 10}`,
      'ServerAliveCountMax=3',
      'LogLevel=ERROR',
    ),
  ];
}
