/**
 * Parsing of `rsync --itemize-changes --stats` output into the summary an activity returns: how many entries
 * changed, how many bytes went over the wire, and a capped list of the itemized changes (drift, when dry-run).
 */

export interface RsyncSummary {
  /** Entries created, updated, deleted or with changed attributes (every itemized line). */
  filesChanged: number;
  created: number;
  deleted: number;
  /** Bytes rsync sent over the connection ("Total bytes sent"). */
  bytesSent: number;
  /** Size of every file in the source ("Total file size"). */
  totalFileSize: number;
  /** The first itemized lines, such as `>f.st...... index.php` or `*deleting   old.php`. */
  itemized: string[];
  /** True when there were more itemized lines than {@link ITEMIZED_CAP}. */
  itemizedTruncated: boolean;
  /** True when nothing was changed (rsync --dry-run): the lines then describe drift. */
  dryRun: boolean;
}

/** How many itemized lines a summary keeps: enough to show drift, small enough for workflow history. */
export const ITEMIZED_CAP = 100;

/** An itemized change line: `YXcstpoguax path` (11 flag characters) or `*deleting path`. */
const ITEMIZED = /^(\*deleting|[<>ch.][fdLDS][.+ ?a-zA-Z]{9}) /;

/** True when `line` is one of rsync's itemized change lines. */
export function isItemizedLine(line: string): boolean {
  return ITEMIZED.test(line);
}

function statNumber(stdout: string, label: string): number {
  const match = new RegExp(`^${label}: ([\\d,.]+)`, 'm').exec(stdout);
  if (!match?.[1]) return 0;
  // rsync groups digits with "," (or "." in some locales) unless --no-human-readable; bytes are whole numbers.
  return Number(match[1].replace(/[,.]/g, ''));
}

/** Builds the summary of one rsync run from its complete stdout. */
export function parseRsyncOutput(stdout: string, dryRun: boolean): RsyncSummary {
  const lines = stdout.split('\n').filter(isItemizedLine);
  return {
    filesChanged: lines.length,
    created: lines.filter((l) => /^[<>ch][fdLDS]\+{9} /.test(l)).length,
    deleted: lines.filter((l) => l.startsWith('*deleting')).length,
    bytesSent: statNumber(stdout, 'Total bytes sent'),
    totalFileSize: statNumber(stdout, 'Total file size'),
    itemized: lines.slice(0, ITEMIZED_CAP),
    itemizedTruncated: lines.length > ITEMIZED_CAP,
    dryRun,
  };
}
