import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { describe, test } from 'node:test';
import { quoteArgs } from '../../activities/transport/shell-quote';

/** What a POSIX shell hands to a program when it runs `line`: the argument list, NUL-separated. */
function argvSeenBy(shell: string, line: string): string[] {
  const out = execFileSync(shell, ['-c', `${line}`], { encoding: 'utf8' });
  return out.split('\0').slice(0, -1);
}

const NASTY = [
  '',
  ' ',
  'plain',
  'two words',
  "it's",
  "''",
  '"double"',
  '$HOME',
  '${PATH}',
  '$(touch /tmp/sitefleet-pwned)',
  '`touch /tmp/sitefleet-pwned`',
  'a;b',
  'a && b',
  'a | b',
  'a > /tmp/sitefleet-pwned',
  '*',
  '/etc/*',
  '?',
  '[a-z]',
  '{a,b}',
  '~',
  '~root',
  '#comment',
  'a=b',
  '-n',
  '--',
  '\\',
  'back\\slash',
  'line\nbreak',
  'tab\there',
  '\r\n',
  'ünïcødé ☃',
  '!',
  '!!',
  '%s',
  "'; rm -rf / #",
  'a\'b\'c"d"e',
];

describe('quoteArgs', () => {
  for (const shell of ['sh', 'bash']) {
    test(`${shell} hands every nasty argument to the program unchanged`, () => {
      const seen = argvSeenBy(shell, quoteArgs(['printf', '%s\\0', ...NASTY]));
      assert.deepEqual(seen, NASTY);
    });
  }

  test('a leading assignment is a command name, not a variable assignment', () => {
    assert.equal(quoteArgs(['FOO=bar', 'x']), "'FOO=bar' x");
  });

  test('safe words stay readable', () => {
    assert.equal(
      quoteArgs(['nginx', '-t', '/var/aegir/config/server_h1/nginx', 'user@host:/path', 'a,b+c%d']),
      'nginx -t /var/aegir/config/server_h1/nginx user@host:/path a,b+c%d',
    );
  });

  test('single quotes are closed, escaped and reopened', () => {
    assert.equal(quoteArgs(["it's"]), `'it'\\''s'`);
  });

  test('an empty argument survives as an empty word', () => {
    assert.equal(quoteArgs(['a', '', 'b']), "a '' b");
  });

  test('refuses a NUL byte and an empty argument list', () => {
    assert.throws(() => quoteArgs(['a\0b']), /NUL byte/);
    assert.throws(() => quoteArgs([]), /empty/);
  });
});
