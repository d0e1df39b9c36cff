/**
 * The kernel-NFS pack scenario on QEMU guests (kernel-nfs-pack.scenario.ts) runs only with SITEFLEET_VM_TESTS=1.
 * It passed end to end once under heavy load and then failed twice at the install's probe through the VM slave
 * (no answer within 10 s), cause not found, and it takes 9-10 min under load: until it is reliable and inside the
 * 6-minute budget it stays out of the default `npm test` (issue 15 is open).
 */
import { test } from 'node:test';

if (process.env.SITEFLEET_VM_TESTS === '1') {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  require('./kernel-nfs-pack.scenario');
} else {
  test('kernel NFS pack on VM test hosts', { skip: 'set SITEFLEET_VM_TESTS=1 to boot QEMU guests' }, () => {});
}
