/**
 * The kernel-NFS pack scenario on QEMU guests (kernel-nfs-pack.scenario.ts). It runs in `npm test` (about 3 min
 * on an idle 2-core machine: two guests boot in 16-18 s each). SITEFLEET_VM_TESTS=0 leaves it out, for machines
 * without qemu-system-x86 or where software emulation is too slow.
 */
import { test } from 'node:test';

if (process.env.SITEFLEET_VM_TESTS === '0') {
  test('kernel NFS pack on VM test hosts', { skip: 'SITEFLEET_VM_TESTS=0: QEMU guests left out' }, () => {});
} else {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  require('./kernel-nfs-pack.scenario');
}
