/**
 * The one function that turns an argument list into a command line for a POSIX shell. Every remote command goes
 * through it: no caller concatenates user input into a shell string.
 */

/** Characters that never need quoting in any position of a POSIX sh word (no `=`, `~`, `#`, globs or braces). */
const SAFE_WORD = /^[A-Za-z0-9_@%+:,./-]+$/;

/**
 * Quotes each argument for a POSIX shell and joins them with spaces, so that the shell hands the program exactly
 * `argv`. Arguments made only of safe characters stay as they are; everything else is single-quoted, with each
 * embedded `'` written as `'\''`.
 *
 * @throws Error when an argument contains a NUL byte (no shell or exec can carry it) or `argv` is empty.
 */
export function quoteArgs(argv: readonly string[]): string {
  if (argv.length === 0) throw new Error('quoteArgs: the argument list is empty');
  return argv.map(quoteArg).join(' ');
}

function quoteArg(arg: string): string {
  if (arg.includes('\0'))
    throw new Error('quoteArgs: an argument contains a NUL byte, which no command line can carry');
  if (SAFE_WORD.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}
