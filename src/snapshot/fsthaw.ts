/**
 * Release at the filesystem thaw (release_at = filesystem_thaw). The agents freeze the guest's
 * filesystems after pre-freeze returns, the hypervisor takes the snapshot while they are frozen, and the
 * agents thaw them before they start post-thaw. Once a filesystem frozen while we held the lock has
 * thawed, the snapshot exists: writers need not also wait for the agent to start post-thaw and for
 * post-thaw's runtime to start.
 *
 * The probe changes nothing: rename(P, P) of one name in the data directory. The kernel takes write
 * access to the filesystem (mnt_want_write, which waits while the filesystem is frozen) before it looks
 * the name up, and then finds no such name (ENOENT) or the same file (a no-op). A probe that has not
 * come back is looked at in /proc: a thread of ours in rename(), waiting in percpu_rwsem_wait, is waiting
 * for a freeze to end (slow I/O and directory locks wait elsewhere). Only a probe seen waiting there
 * counts, and its return means that freeze is over (thawed, or given up, when no snapshot was taken
 * either). Anything we cannot prove (another architecture, a kernel that shows no wait channel, a
 * probe that fails) leaves the lock to post-thaw.
 */
import fs = require('node:fs');
import path = require('node:path');

export const PROBE_NAME = '.vmware-mysql-snapshot-probe';
/** A new probe this long after the last came back: a freeze shorter than this may go unseen. */
const PROBE_INTERVAL_MS = 25;
/** When to look at a probe that has not come back (ms after it was sent); then every LOOK_EVERY_MS. */
const FIRST_LOOKS_MS = [2, 10, 50];
const LOOK_EVERY_MS = 100;
const FREEZE_WAIT = 'percpu_rwsem_wait';
/** rename, renameat, renameat2 (libuv calls rename(), which glibc makes renameat on arm64) */
const RENAME_SYSCALLS: Readonly<Record<string, readonly number[]>> = { x64: [82, 264, 316], arm64: [38, 276] };

export interface FilesystemFreeze {
  /** the data directory whose filesystem was watched */
  directory: string;
  /** epoch ms: when the probe that waited for the thaw was sent (the freeze had begun when it reached the filesystem) */
  probeSentAt: number;
  /** epoch ms: when a probe was first seen waiting for the freeze to end */
  seenAt: number;
  /** epoch ms: when that probe came back */
  thawedAt: number;
}

export interface ThawWatchEvents {
  thawed(freeze: FilesystemFreeze): void;
  /** the watch ended without a freeze seen: post-thaw releases */
  gaveUp(why: string): void;
}

/**
 * The directory to probe, or why there is none: the server's data directory, if it is a directory on this
 * machine. A server elsewhere (another machine, a container with paths of its own) names a path that is
 * not its data directory here, or none; thaw releases then, as with release_at = post_thaw.
 */
export function thawProbeFor(datadir: string): { directory: string } | { why: string } {
  if (RENAME_SYSCALLS[process.arch] === undefined) return { why: `no known rename system calls on ${process.arch}` };
  if (!path.isAbsolute(datadir) || !isDirectory(datadir)) return { why: `the server's data directory ${datadir} is not a directory on this machine` };
  return { directory: datadir };
}

/** One probe now, as the holder sends them (for doctor): undefined if it works, else why not. */
export function probeOnce(directory: string): string | undefined {
  const probe = path.join(directory, PROBE_NAME);
  try {
    fs.renameSync(probe, probe);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT') return `the probe in ${directory} failed (${code ?? (error as Error).message})`;
  }
  return undefined;
}

function isDirectory(directory: string): boolean {
  try {
    return fs.statSync(directory).isDirectory();
  } catch {
    return false;
  }
}

export class ThawWatch {
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly probe: string;
  private readonly renames: ReadonlySet<number>;

  constructor(
    private readonly directory: string,
    private readonly events: ThawWatchEvents,
  ) {
    this.probe = path.join(directory, PROBE_NAME);
    this.renames = new Set(RENAME_SYSCALLS[process.arch] ?? []);
  }

  start(): this {
    this.send();
    return this;
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private send(): void {
    if (this.stopped) return;
    const sentAt = Date.now();
    let seenAt: number | undefined;
    let back = false;
    let looks = 0;
    const look = (): void => {
      if (back || this.stopped) return;
      if (probeWaitsForFreeze(this.renames)) {
        seenAt = Date.now();
        return; // from here only its return matters
      }
      const next = FIRST_LOOKS_MS[++looks];
      this.timer = setTimeout(look, next === undefined ? LOOK_EVERY_MS : next - (FIRST_LOOKS_MS[looks - 1] ?? 0));
    };
    this.timer = setTimeout(look, FIRST_LOOKS_MS[0]);
    fs.rename(this.probe, this.probe, (error) => {
      back = true;
      clearTimeout(this.timer);
      if (this.stopped) return;
      if (error !== null && error.code !== 'ENOENT') {
        this.stopped = true;
        return this.events.gaveUp(`the probe in ${this.directory} failed (${error.code ?? error.message})`);
      }
      if (seenAt !== undefined) {
        this.stopped = true;
        return this.events.thawed({ directory: this.directory, probeSentAt: sentAt, seenAt, thawedAt: Date.now() });
      }
      this.timer = setTimeout(() => this.send(), PROBE_INTERVAL_MS);
    });
  }
}

/** A thread of ours in rename() that waits where the kernel makes writers wait for a thaw. */
export function probeWaitsForFreeze(renames: ReadonlySet<number> = new Set(RENAME_SYSCALLS[process.arch] ?? [])): boolean {
  let tasks: string[];
  try {
    tasks = fs.readdirSync('/proc/self/task');
  } catch {
    return false;
  }
  return tasks.some((task) => {
    const syscall = readProc(`/proc/self/task/${task}/syscall`);
    if (syscall === undefined || !renames.has(Number(syscall.split(' ', 1)[0]))) return false;
    const wchan = readProc(`/proc/self/task/${task}/wchan`);
    if (wchan === FREEZE_WAIT) return true;
    if (wchan !== '0' && wchan !== '') return false;
    // A kernel that shows no wait channel: the top of the thread's kernel stack (root only).
    return readProc(`/proc/self/task/${task}/stack`)?.split('\n', 1)[0]?.includes(FREEZE_WAIT) === true;
  });
}

function readProc(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'latin1').trim();
  } catch {
    return undefined;
  }
}
