/**
 * What a VM test host boots: a Debian kernel, an initramfs (static busybox plus the modules for
 * virtio, 9p, overlay, ext4 and NFS) and a layer with nfs-kernel-server's files. The packages are
 * downloaded with `apt-get download` and taken apart with `dpkg-deb -x`; nothing is installed on this
 * machine. Everything is cached under ~/.cache/sitefleet/vm (or $SITEFLEET_CACHE_DIR/vm), keyed by
 * package version, so that later runs (and CI on the same machine) reuse it.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runCommand } from '../command';

/** The kernel, busybox and nfsd userland packages that VM hosts boot from (Debian 12's archive). */
const KERNEL_META_PACKAGE = 'linux-image-amd64';
const BUSYBOX_PACKAGE = 'busybox-static';
const NFSD_PACKAGE = 'nfs-kernel-server';

/** Modules the guests load (their dependencies are added from each module's own `depends=`). */
export const GUEST_MODULES = [
  'virtio_mmio', 'virtio_blk', 'virtio_net', 'virtio_rng', '9pnet_virtio', '9p', 'overlay', 'ext4', 'crc32c_generic',
  'nfs', 'nfsv3', 'nfsv4', 'nfsd',
] as const; // prettier-ignore

export interface VmAssets {
  kernelVersion: string;
  kernel: string;
  initramfs: string;
  /** A directory laid over the guest's /usr and / with nfs-kernel-server's programs (guest path usr/...). */
  nfsdLayer: string;
}

export function vmCacheDir(): string {
  const base = process.env['SITEFLEET_CACHE_DIR'] || path.join(os.homedir(), '.cache', 'sitefleet');
  return path.join(base, 'vm');
}

const exists = (p: string): Promise<boolean> =>
  fs.access(p).then(
    () => true,
    () => false,
  );

async function candidateVersion(pkg: string): Promise<string> {
  const { stdout } = await runCommand(['apt-cache', 'policy', pkg]);
  const version = /Candidate:\s*(\S+)/.exec(stdout)?.[1];
  if (!version || version === '(none)') {
    throw new Error(`VM assets: apt knows no candidate for ${pkg}; run apt-get update (Debian 12 archive needed)`);
  }
  return version;
}

/** The kernel package behind linux-image-amd64, e.g. linux-image-6.1.0-57-amd64. */
async function kernelPackage(): Promise<string> {
  const { stdout } = await runCommand(['apt-cache', 'depends', KERNEL_META_PACKAGE]);
  const pkg = /Depends:\s*(linux-image-[0-9][\w.-]*-amd64)\s*$/m.exec(stdout)?.[1];
  if (!pkg) throw new Error(`VM assets: cannot find the kernel package behind ${KERNEL_META_PACKAGE}:\n${stdout}`);
  return pkg;
}

/** Downloads pkg=version into dir/debs (once) and extracts it into `target` (once). */
async function extractPackage(dir: string, pkg: string, version: string, target: string): Promise<void> {
  if (await exists(path.join(target, '.extracted'))) return;
  const debs = path.join(dir, 'debs');
  await fs.mkdir(debs, { recursive: true });
  const file = (await fs.readdir(debs)).find((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb'));
  let deb = file ? path.join(debs, file) : '';
  const wanted = `${pkg}_${version.replace(/^\d+:/, '')}`;
  if (!file || !decodeURIComponent(file).replace(/_\d+:/, '_').startsWith(wanted)) {
    await runCommand(['apt-get', 'download', `${pkg}=${version}`], { cwd: debs });
    const fresh = (await fs.readdir(debs)).find(
      (f) => f.endsWith('.deb') && decodeURIComponent(f).replace(/_\d+:/, '_').startsWith(wanted),
    );
    if (!fresh) throw new Error(`VM assets: apt-get download ${pkg}=${version} left no .deb in ${debs}`);
    deb = path.join(debs, fresh);
  }
  await fs.rm(target, { recursive: true, force: true });
  await fs.mkdir(target, { recursive: true });
  await runCommand(['dpkg-deb', '-x', deb, target]);
  await fs.writeFile(path.join(target, '.extracted'), `${pkg} ${version}\n`);
}

/** Every module file of the kernel tree by module name (dashes and underscores are the same). */
async function moduleIndex(modulesDir: string): Promise<Map<string, string>> {
  const index = new Map<string, string>();
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) await walk(full);
      else if (entry.name.endsWith('.ko')) index.set(entry.name.slice(0, -3).replace(/-/g, '_'), full);
    }
  };
  await walk(path.join(modulesDir, 'kernel'));
  return index;
}

/** `depends=` of a module, read from its .modinfo strings. */
async function moduleDepends(file: string): Promise<string[]> {
  const text = (await fs.readFile(file)).toString('latin1');
  const match = /\0depends=([^\0]*)\0/.exec(text);
  return match?.[1] ? match[1].split(',').filter(Boolean) : [];
}

const INITRAMFS_INIT = path.join(__dirname, 'initramfs-init.sh');

async function buildInitramfs(dir: string, kernelRoot: string, busybox: string, kver: string, out: string) {
  const modulesDir = path.join(kernelRoot, 'lib', 'modules', kver);
  const index = await moduleIndex(modulesDir);
  const wanted = new Set<string>();
  const add = async (name: string): Promise<void> => {
    const key = name.replace(/-/g, '_');
    if (wanted.has(key)) return;
    const file = index.get(key);
    if (!file) throw new Error(`VM assets: kernel ${kver} has no module ${name}`);
    wanted.add(key);
    for (const dep of await moduleDepends(file)) await add(dep);
  };
  for (const name of GUEST_MODULES) await add(name);

  const root = path.join(dir, `initramfs-${kver}.tmp`);
  await fs.rm(root, { recursive: true, force: true });
  for (const d of ['bin', 'dev', 'proc', 'sys', 'newroot', `lib/modules/${kver}`]) {
    await fs.mkdir(path.join(root, d), { recursive: true });
  }
  await fs.copyFile(busybox, path.join(root, 'bin', 'busybox'));
  await fs.chmod(path.join(root, 'bin', 'busybox'), 0o755);
  await fs.symlink('busybox', path.join(root, 'bin', 'sh'));
  for (const key of wanted) {
    const file = index.get(key) ?? '';
    const rel = path.relative(modulesDir, file);
    await fs.mkdir(path.join(root, 'lib', 'modules', kver, path.dirname(rel)), { recursive: true });
    await fs.copyFile(file, path.join(root, 'lib', 'modules', kver, rel));
  }
  await runCommand([busybox, 'depmod', '-b', root, kver]);
  await fs.copyFile(INITRAMFS_INIT, path.join(root, 'init'));
  await fs.chmod(path.join(root, 'init'), 0o755);
  const { stdout: list } = await runCommand(['find', '.', '-mindepth', '1'], { cwd: root });
  await runCommand(['sh', '-c', '"$1" cpio -o -H newc | gzip -1 > "$2"', 'sh', busybox, `${out}.tmp`], {
    cwd: root,
    input: list,
  });
  await fs.rename(`${out}.tmp`, out);
  await fs.rm(root, { recursive: true, force: true });
}

let pending: Promise<VmAssets> | undefined;

/** Downloads, extracts and builds what VM hosts boot from, once per version; later calls reuse the cache. */
export function ensureVmAssets(): Promise<VmAssets> {
  pending ??= buildVmAssets().catch((error: unknown) => {
    pending = undefined;
    throw error;
  });
  return pending;
}

async function buildVmAssets(): Promise<VmAssets> {
  const dir = vmCacheDir();
  await fs.mkdir(dir, { recursive: true });
  const kpkg = await kernelPackage();
  const [kversion, bbversion, nfsversion] = await Promise.all([
    candidateVersion(kpkg),
    candidateVersion(BUSYBOX_PACKAGE),
    candidateVersion(NFSD_PACKAGE),
  ]);
  const kver = kpkg.replace(/^linux-image-/, '');
  const kernelRoot = path.join(dir, `kernel-${kver}-${kversion}`);
  const busyboxRoot = path.join(dir, `busybox-${bbversion.replace(/:/g, '_')}`);
  const nfsdLayer = path.join(dir, `nfsd-${nfsversion.replace(/:/g, '_')}`);
  await extractPackage(dir, kpkg, kversion, kernelRoot);
  await extractPackage(dir, BUSYBOX_PACKAGE, bbversion, busyboxRoot);
  await extractPackage(dir, NFSD_PACKAGE, nfsversion, nfsdLayer);

  const initHash = createHash('sha256')
    .update(await fs.readFile(INITRAMFS_INIT))
    .digest('hex')
    .slice(0, 12);
  const initramfs = path.join(dir, `initramfs-${kver}-${kversion}-${bbversion.replace(/:/g, '_')}-${initHash}.cpio.gz`);
  if (!(await exists(initramfs))) {
    await buildInitramfs(dir, kernelRoot, path.join(busyboxRoot, 'bin', 'busybox'), kver, initramfs);
  }
  return { kernelVersion: kver, kernel: path.join(kernelRoot, 'boot', `vmlinuz-${kver}`), initramfs, nfsdLayer };
}
