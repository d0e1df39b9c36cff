/** A link shaping as the bed plan holds it: tc rates, sizes and times, checked before anything runs. */

export interface LinkShaping {
  /** Each host's link, in each direction, in tc units: `200mbit`, `1gbit`, `500kbit`. Absent: not limited. */
  rate?: string;
  /** The controller's total egress (all hosts together), in tc units. Absent: not limited. */
  controllerRate?: string;
  /** Bucket size of every tbf. @default '256kb' */
  burst?: string;
  /** Longest a packet may wait in a tbf queue before it is dropped. @default '50ms' */
  latency?: string;
}

export const DEFAULT_BURST = '256kb';
export const DEFAULT_LATENCY = '50ms';

const RATE = /^\d+(\.\d+)?(bit|kbit|mbit|gbit|tbit|bps|kbps|mbps|gbps|tbps)$/i;
const SIZE = /^\d+(\.\d+)?(b|k|kb|m|mb|g|gb|kbit|mbit|gbit)?$/i;
const TIME = /^\d+(\.\d+)?(s|sec|secs|ms|msec|msecs|us|usec|usecs)$/i;

/** Throws unless every given value is a tc rate, size or time; returns the shaping with defaults applied. */
export function checkLinkShaping(shaping: LinkShaping): Required<Pick<LinkShaping, 'burst' | 'latency'>> & LinkShaping {
  const check = (what: string, value: string | undefined, pattern: RegExp, example: string): void => {
    if (value !== undefined && !pattern.test(value)) {
      throw new Error(`${what} "${value}" is not a tc value such as ${example}`);
    }
  };
  check('rate', shaping.rate, RATE, '200mbit');
  check('controller rate', shaping.controllerRate, RATE, '200mbit');
  check('burst', shaping.burst, SIZE, '256kb');
  check('latency', shaping.latency, TIME, '50ms');
  return { ...shaping, burst: shaping.burst ?? DEFAULT_BURST, latency: shaping.latency ?? DEFAULT_LATENCY };
}

/** True when the shaping limits anything. */
export function isShaped(shaping: LinkShaping | undefined): shaping is LinkShaping {
  return shaping?.rate !== undefined || shaping?.controllerRate !== undefined;
}
