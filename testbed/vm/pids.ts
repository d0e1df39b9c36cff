import { readFileSync } from 'node:fs';

/** Whether `pid` is a live, non-zombie process. */
export function isPidAlive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}
