/**
 * Managed blocks: the lines sitefleet owns inside a shared config file (/etc/exports, /etc/fstab, the ganesha
 * config, authorized_keys, known_hosts), fenced by marker comments so they are added once, updated in place and
 * removed cleanly, leaving every other line of the file as it was. Pure text functions; the remote side lives in
 * remote-file.ts.
 *
 * ```
 * # BEGIN sitefleet:pack:alpha
 * /var/aegir/platforms 10.0.0.0/24(rw,sync,no_subtree_check)
 * # END sitefleet:pack:alpha
 * ```
 */

const MARKER = /^[A-Za-z0-9][A-Za-z0-9:._@/-]{0,199}$/;

export interface ManagedBlockOptions {
  /** The comment leader of the file's syntax. @default '#' */
  comment?: string;
}

function fences(marker: string, comment: string): { begin: string; end: string } {
  if (!MARKER.test(marker))
    throw new Error(`managed block marker "${marker}" must be 1-200 characters of A-Z a-z 0-9 : . _ @ / -`);
  return { begin: `${comment} BEGIN ${marker}`, end: `${comment} END ${marker}` };
}

interface Span {
  begin: number;
  end: number;
}

/** Finds every fenced span of `marker`; throws on a fence without its partner rather than guess what to cut. */
function findSpans(lines: string[], begin: string, end: string, marker: string): Span[] {
  const spans: Span[] = [];
  let open = -1;
  lines.forEach((raw, i) => {
    const line = raw.trimEnd();
    if (line === begin) {
      if (open !== -1)
        throw new Error(`managed block "${marker}" opens twice (lines ${open + 1} and ${i + 1}) without an END`);
      open = i;
    } else if (line === end) {
      if (open === -1) throw new Error(`managed block "${marker}" has an END on line ${i + 1} without a BEGIN`);
      spans.push({ begin: open, end: i });
      open = -1;
    }
  });
  if (open !== -1) throw new Error(`managed block "${marker}" opens on line ${open + 1} and never ends`);
  return spans;
}

function splitLines(text: string): string[] {
  if (text === '') return [];
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines;
}

function blockLines(block: string, begin: string, end: string): string[] {
  const lines = splitLines(block);
  if (lines.some((l) => l.trimEnd() === begin || l.trimEnd() === end)) {
    throw new Error('a managed block may not contain its own BEGIN or END fence');
  }
  return lines;
}

/**
 * Returns `text` with exactly one block fenced by `marker` holding `block`: replaced in place when present
 * (duplicates are dropped), appended at the end otherwise. Idempotent.
 */
export function ensureManagedBlock(
  text: string,
  marker: string,
  block: string,
  opts: ManagedBlockOptions = {},
): string {
  const { begin, end } = fences(marker, opts.comment ?? '#');
  const lines = splitLines(text);
  const spans = findSpans(lines, begin, end, marker);
  const fenced = [begin, ...blockLines(block, begin, end), end];
  if (spans.length === 0) return [...lines, ...fenced].join('\n') + '\n';
  const out: string[] = [];
  let cursor = 0;
  spans.forEach((span, i) => {
    out.push(...lines.slice(cursor, span.begin));
    if (i === 0) out.push(...fenced);
    cursor = span.end + 1;
  });
  out.push(...lines.slice(cursor));
  return out.join('\n') + '\n';
}

/** Returns `text` without any block fenced by `marker` (unchanged when there is none). Idempotent. */
export function removeManagedBlock(text: string, marker: string, opts: ManagedBlockOptions = {}): string {
  const { begin, end } = fences(marker, opts.comment ?? '#');
  const lines = splitLines(text);
  const spans = findSpans(lines, begin, end, marker);
  if (spans.length === 0) return text;
  const out: string[] = [];
  let cursor = 0;
  for (const span of spans) {
    out.push(...lines.slice(cursor, span.begin));
    cursor = span.end + 1;
  }
  out.push(...lines.slice(cursor));
  return out.length === 0 ? '' : out.join('\n') + '\n';
}

/** The content of the first block fenced by `marker`, or null when the file has none. */
export function readManagedBlock(text: string, marker: string, opts: ManagedBlockOptions = {}): string | null {
  const { begin, end } = fences(marker, opts.comment ?? '#');
  const lines = splitLines(text);
  const [span] = findSpans(lines, begin, end, marker);
  if (span === undefined) return null;
  const inner = lines.slice(span.begin + 1, span.end);
  return inner.length === 0 ? '' : inner.join('\n') + '\n';
}
