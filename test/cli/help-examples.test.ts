import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { commandPaths, HELP_EXAMPLES } from '../../cli/examples';
import { buildProgram, runCli } from '../../cli/program';

const silent = { out: () => undefined, err: () => undefined, env: {}, isTTY: false };

/** The words of an example as a shell would pass them: double quotes group, `>` ends the command. */
function argvOf(example: string): string[] {
  const words = example.split('>')[0]!.match(/"[^"]*"|\S+/g) ?? [];
  assert.equal(words[0], 'sitefleet', example);
  return words.slice(1).map((w) => w.replace(/^"|"$/g, ''));
}

void describe('--help examples', () => {
  void test('every command has examples, and every example list belongs to a command', () => {
    const paths = commandPaths(buildProgram(silent)).map((c) => c.path);
    assert.deepEqual(
      paths.filter((p) => !HELP_EXAMPLES[p]?.length),
      [],
    );
    assert.deepEqual(
      Object.keys(HELP_EXAMPLES).filter((p) => !paths.includes(p)),
      [],
    );
  });

  void test("each example is accepted by its command's parser (actions replaced, nothing sent)", async () => {
    for (const [path, examples] of Object.entries(HELP_EXAMPLES)) {
      for (const example of examples) {
        const program = buildProgram(silent);
        let ran = '';
        for (const { path: p, command } of commandPaths(program)) {
          if (command.commands.length === 0) command.action(() => void (ran = p));
        }
        await program.parseAsync(argvOf(example), { from: 'user' });
        const expected =
          path.includes(' ') || !program.commands.find((c) => c.name() === path)?.commands.length ? path : undefined;
        if (expected) assert.equal(ran, expected, example);
        else assert.ok(ran.startsWith(`${path} `), `${example} runs a ${path} command (ran ${ran})`);
      }
    }
  });

  void test('--help prints the examples', async () => {
    const lines: string[] = [];
    const code = await runCli(['server', 'repin', '--help'], { ...silent, out: (l) => lines.push(l) });
    assert.equal(code, 0);
    assert.match(lines.join('\n'), /Examples:\n {2}sitefleet server repin web1\n {2}sitefleet server repin web1 --yes/);
  });
});
