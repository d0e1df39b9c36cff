/**
 * The examples `sitefleet COMMAND --help` prints after the options, one list per command. The test
 * (test/cli/help-examples.test.ts) fails when a command has none, when a list names a command that does not exist,
 * or when an example is not accepted by its command's parser.
 */
import type { Command } from 'commander';

export const HELP_EXAMPLES: Record<string, string[]> = {
  server: [
    'sitefleet server list',
    'sitefleet server add web1 --host 10.0.0.11 --key-path /root/.ssh/id_ed25519 --http nginx',
  ],
  'server list': ['sitefleet server list', 'sitefleet --json server list'],
  'server show': ['sitefleet server show web1'],
  'server add': [
    'sitefleet server add web1 --host 10.0.0.11 --key-path /root/.ssh/id_ed25519 --http nginx',
    'sitefleet server add db1 --host 10.0.0.20 --db mariadb',
    'sitefleet server add nfs1 --host 10.0.0.30 --nfs kernel --host-key SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
    'sitefleet server add --file web1.yaml',
  ],
  'server remove': ['sitefleet server remove web1'],
  'server verify': ['sitefleet server verify web1', 'sitefleet server verify web1 --no-wait'],
  'server repin': ['sitefleet server repin web1', 'sitefleet server repin web1 --yes'],
  pack: ['sitefleet pack list', 'sitefleet pack add p1 --master m1 --slaves s1,s2 --clients 10.0.0.0/24'],
  'pack list': ['sitefleet pack list'],
  'pack show': ['sitefleet pack show p1'],
  'pack add': [
    'sitefleet pack add p1 --master m1 --slaves s1,s2 --clients 10.0.0.0/24',
    'sitefleet pack add p2 --master m2 --slaves s3 --clients 10.0.1.0/24 --client-flavour sshfs',
    'sitefleet pack add --file pack.yaml',
  ],
  'pack remove': ['sitefleet pack remove p1'],
  'pack set-transfer': [
    'sitefleet pack set-transfer p1 --transfer-mode relay',
    'sitefleet pack set-transfer p1 --clear',
  ],
  'pack setup-share': ['sitefleet pack setup-share p1'],
  'pack teardown-share': ['sitefleet pack teardown-share p1', 'sitefleet pack teardown-share p1 --force'],
  'pack verify': ['sitefleet pack verify p1'],
  'pack resync': ['sitefleet pack resync p1 --no-wait'],
  cluster: ['sitefleet cluster list', 'sitefleet cluster add web --members web1,web2,web3'],
  'cluster list': ['sitefleet cluster list'],
  'cluster show': ['sitefleet cluster show web'],
  'cluster add': [
    'sitefleet cluster add web --members web1,web2,web3',
    'sitefleet cluster add web --members web1,web2 --files nfs-shared --load-balancer lb1',
  ],
  'cluster remove': ['sitefleet cluster remove web'],
  'cluster set-transfer': [
    'sitefleet cluster set-transfer web --transfer-mode auto --transfer-uplink-mbit 100',
    'sitefleet cluster set-transfer web --clear',
  ],
  'cluster verify': ['sitefleet cluster verify web'],
  'cluster resync': ['sitefleet cluster resync web'],
  'cluster set-lb': ['sitefleet cluster set-lb web lb1', 'sitefleet cluster set-lb web none'],
  'cluster setup-uploads': ['sitefleet cluster setup-uploads web'],
  'cluster teardown-uploads': [
    'sitefleet cluster teardown-uploads web',
    'sitefleet cluster teardown-uploads web --force',
  ],
  'cluster add-member': ['sitefleet cluster add-member web web4'],
  'cluster remove-member': ['sitefleet cluster remove-member web web4'],
  platform: ['sitefleet platform list', 'sitefleet platform deploy wp'],
  'platform list': ['sitefleet platform list'],
  'platform show': ['sitefleet platform show wp'],
  'platform add': [
    'sitefleet platform add wp --target cluster:web --path /usr/share/wordpress --profile wordpress',
    'sitefleet platform add shop --target pack:p1 --git https://git.example.com/shop.git --ref v2.1 --profile php',
  ],
  'platform remove': ['sitefleet platform remove wp', 'sitefleet platform remove wp --forget'],
  'platform deploy': ['sitefleet platform deploy wp', 'sitefleet platform deploy wp --transfer-mode rsync'],
  'platform rollback': ['sitefleet platform rollback wp'],
  site: ['sitefleet site list', 'sitefleet site add blog.example.com --platform wp --db-server db1'],
  'site list': ['sitefleet site list'],
  'site show': ['sitefleet site show blog.example.com'],
  'site add': [
    'sitefleet site add blog.example.com --platform wp --db-server db1',
    'sitefleet site add xn--bcher-kva.example --platform wp --db-server db1 --alias www.xn--bcher-kva.example',
  ],
  'site remove': ['sitefleet site remove blog.example.com', 'sitefleet site remove blog.example.com --forget'],
  'site install': ['sitefleet site install blog.example.com'],
  'site enable': ['sitefleet site enable blog.example.com'],
  'site disable': ['sitefleet site disable blog.example.com'],
  'site backup': ['sitefleet site backup blog.example.com'],
  deploy: ['sitefleet deploy wp'],
  rollback: ['sitefleet rollback wp'],
  install: ['sitefleet install blog.example.com'],
  enable: ['sitefleet enable blog.example.com'],
  disable: ['sitefleet disable blog.example.com'],
  backup: ['sitefleet backup blog.example.com'],
  restore: ['sitefleet restore blog.example.com --backup blog.example.com-20261206T020000Z.tar.gz'],
  migrate: ['sitefleet migrate blog.example.com --to wp2'],
  'setup-share': ['sitefleet setup-share p1'],
  'teardown-share': ['sitefleet teardown-share p1'],
  verify: ['sitefleet verify cluster web', 'sitefleet verify pack p1', 'sitefleet verify server web1'],
  resync: ['sitefleet resync cluster web', 'sitefleet resync pack p1'],
  delete: ['sitefleet delete site blog.example.com', 'sitefleet delete platform wp'],
  operation: ['sitefleet operation list --status RUNNING', 'sitefleet operation watch site/blog.example.com'],
  'operation list': [
    'sitefleet operation list',
    'sitefleet operation list --resource site/blog.example.com --limit 10',
  ],
  'operation show': ['sitefleet operation show site/blog.example.com'],
  'operation watch': ['sitefleet operation watch verify/cluster/web'],
  'operation cancel': ['sitefleet operation cancel site/blog.example.com'],
  schedule: ['sitefleet schedule list', 'sitefleet schedule add verify cluster web --every 1h'],
  'schedule add': [
    'sitefleet schedule add verify cluster web --every 1h',
    'sitefleet schedule add resync pack p1 --every 1d --paused --note "nightly resync"',
  ],
  'schedule list': ['sitefleet schedule list'],
  'schedule show': ['sitefleet schedule show verify/cluster/web'],
  'schedule set': ['sitefleet schedule set verify/cluster/web --every 30m'],
  'schedule pause': ['sitefleet schedule pause verify/cluster/web --note "maintenance window"'],
  'schedule unpause': ['sitefleet schedule unpause verify/cluster/web'],
  'schedule remove': ['sitefleet schedule remove verify/cluster/web'],
  apply: [
    'sitefleet apply --example > fleet.yaml',
    'sitefleet apply fleet.yaml --plan',
    'sitefleet apply fleet.yaml --yes',
    'sitefleet apply /tmp/sitefleet-testbed/qs/inventory.json --yes',
  ],
};

/** Every command below `root` with its path (`server add`), groups included. */
export function commandPaths(root: Command): { path: string; command: Command }[] {
  const out: { path: string; command: Command }[] = [];
  const walk = (c: Command, prefix: string[]) => {
    for (const sub of c.commands) {
      const path = [...prefix, sub.name()];
      out.push({ path: path.join(' '), command: sub });
      walk(sub, path);
    }
  };
  walk(root, []);
  return out;
}

/** Adds the examples to every command's --help. */
export function addHelpExamples(root: Command): void {
  root.addHelpText(
    'after',
    '\nExamples:\n  sitefleet apply --example > fleet.yaml\n  sitefleet apply fleet.yaml\n\nEvery field of the fleet file: docs/fleet-file.md',
  );
  for (const { path, command } of commandPaths(root)) {
    const examples = HELP_EXAMPLES[path];
    if (examples) command.addHelpText('after', `\nExamples:\n${examples.map((e) => `  ${e}`).join('\n')}`);
  }
}
