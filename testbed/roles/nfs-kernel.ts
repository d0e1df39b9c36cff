/**
 * nfs-kernel (VM hosts only): the Linux kernel's nfsd with rpc.mountd, NFS v3 and v4, as
 * nfs-kernel-server runs it. Its programs come from the package's .deb, extracted into a layer over
 * the guest's /usr (testbed/vm/assets.ts). It starts with an empty /etc/exports: sitefleet writes
 * its managed block there and runs `exportfs -ra`. Grace and lease time are 10 s (NFSv4 otherwise
 * blocks opens for 90 s after nfsd starts).
 */
import { writeHostFile } from '../host';
import { NFS_PORT } from './ganesha';
import type { RoleDefinition, ServiceSpec } from './role';

export const KERNEL_EXPORTS_FILE = '/etc/exports';

export const nfsdService: ServiceSpec = {
  name: 'nfs-kernel-server',
  start: [['exportfs', '-ra'], ['rpc.mountd'], ['rpc.nfsd', '4']],
  stop: [
    ['rpc.nfsd', '0'],
    ['exportfs', '-f'],
  ],
  port: NFS_PORT,
};

export const nfsKernelRole: RoleDefinition = {
  role: 'nfs-kernel',
  async prepareFiles({ host }) {
    await writeHostFile(
      host,
      KERNEL_EXPORTS_FILE,
      '# /etc/exports: the kernel NFS server. sitefleet keeps its own block below; apply with exportfs -ra.\n',
    );
    await writeHostFile(
      host,
      '/etc/nfs.conf.d/sitefleet-testbed.conf',
      [
        '# sitefleet test bed: short NFSv4 grace and lease times, on the host IP only.',
        '[nfsd]',
        `host=${host.ip}`,
        'grace-time=10',
        'lease-time=10',
        'vers3=y',
        'vers4=y',
        '',
      ].join('\n'),
    );
  },
  services: [nfsdService],
  inventory: { nfs: { flavour: 'kernel' } },
};
