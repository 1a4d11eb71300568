/**
 * A filesystem of the tests' own that they can freeze and thaw as the guest agents do (FIFREEZE and
 * FITHAW, by util-linux's fsfreeze): ext4 in a sparse file under os.tmpdir(), loop-mounted. Needs root (as
 * CI runs) and a loop device. A filesystem still mounted when the process exits is thawed and unmounted
 * then: a frozen one left behind would hang every writer to it.
 */
import { execFile, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { findBinary, isRoot } from '../../src/commands/throwaway';

const execFileAsync = promisify(execFile);

/** mkfs.ext4 and fsfreeze live in sbin, which may be off PATH */
function runFile(tool: string, args: string[]): Promise<unknown> {
  return execFileAsync(findBinary(tool) ?? tool, args);
}

export interface LoopFilesystem {
  readonly mountPoint: string;
  /** the file that holds the filesystem */
  readonly image: string;
  freeze(): Promise<void>;
  thaw(): Promise<void>;
  /** Thaws, unmounts and deletes it; whatever runs on it must be stopped first. */
  remove(): Promise<void>;
}

/** Why this machine cannot give the tests a loop filesystem, or undefined if it can. */
export function loopFilesystemUnavailable(): string | undefined {
  if (!isRoot()) return 'mounting a loop filesystem needs root';
  for (const tool of ['mkfs.ext4', 'mount', 'umount', 'fsfreeze']) {
    if (findBinary(tool) === undefined) return `${tool} is not installed`;
  }
  if (!fs.existsSync('/dev/loop-control')) return 'no loop devices (/dev/loop-control)';
  return undefined;
}

/**
 * Why the tests that need a loop filesystem skip, or undefined if they run. A developer's own account
 * (not root) skips them, saying why; CI sets VMS_REQUIRE_LOOPFS=1 (.ci/run), so that there a machine
 * without loop devices fails them instead.
 */
export function loopFilesystemSkipReason(): string | undefined {
  if (process.env['VMS_REQUIRE_LOOPFS'] === '1') return undefined;
  const why = loopFilesystemUnavailable();
  return why === undefined ? undefined : `needs a filesystem to freeze: ${why}`;
}

const mounted = new Set<string>();

process.on('exit', () => {
  for (const mountPoint of mounted) {
    for (const command of [['fsfreeze', '-u', mountPoint], ['umount', '-l', mountPoint]]) {
      try {
        const [tool = '', ...args] = command;
        execFileSync(findBinary(tool) ?? tool, args, { stdio: 'ignore' });
      } catch {
        // not frozen, or already gone
      }
    }
  }
});

export async function mountLoopFilesystem(sizeMb = 512): Promise<LoopFilesystem> {
  const why = loopFilesystemUnavailable();
  if (why !== undefined) throw new Error(`cannot make a filesystem to freeze: ${why}`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vms-loopfs-'));
  const image = path.join(dir, 'image');
  fs.writeFileSync(image, '');
  fs.truncateSync(image, sizeMb * 1024 * 1024);
  await runFile('mkfs.ext4', ['-q', '-F', image]);
  return mountImage(dir, image);
}

/**
 * A copy of the source's image, as it is now: taken while the source is frozen, it is what a hypervisor's
 * snapshot of the disk holds (cp reads the file through the page cache the loop device writes to).
 * Mount it with mountImageFile once the source has thawed.
 */
export async function copyImage(source: LoopFilesystem): Promise<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vms-loopfs-'));
  const image = path.join(dir, 'image');
  await runFile('cp', ['--sparse=always', source.image, image]);
  return image;
}

/** Mounts an image made by copyImage (in its own directory, which remove() deletes). */
export function mountImageFile(image: string): Promise<LoopFilesystem> {
  return mountImage(path.dirname(image), image);
}

async function mountImage(dir: string, image: string): Promise<LoopFilesystem> {
  const mountPoint = path.join(dir, 'mnt');
  fs.mkdirSync(mountPoint);
  await runFile('mount', ['-o', 'loop', image, mountPoint]);
  mounted.add(mountPoint);
  let frozen = false;
  const thaw = async (): Promise<void> => {
    if (!frozen) return;
    await runFile('fsfreeze', ['-u', mountPoint]);
    frozen = false;
  };
  return {
    mountPoint,
    image,
    freeze: async () => {
      await runFile('fsfreeze', ['-f', mountPoint]);
      frozen = true;
    },
    thaw,
    remove: async () => {
      await thaw();
      await runFile('umount', [mountPoint]);
      mounted.delete(mountPoint);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
