/**
 * The run directory (tmpfs, e.g. /run/vmware-mysql-snapshot): the holder's state, the freeze lock. We run
 * as root, so nothing in here is trusted unless it is ours: the directory must be owned by us and
 * writable by nobody else, files are opened with O_NOFOLLOW and checked, and every write is a new file
 * renamed into place (atomic, and never through a planted symlink).
 */
import fs = require('node:fs');
import path = require('node:path');
import { HookError } from '../errors';
import { checkDirectoryChain, UnsafePathError } from '../safepath';

const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK } = fs.constants;

export const STATE_FILE = 'state.json';
export const LAST_FILE = 'last.json';
/** A running freeze's progress (phase, attempts, blockers), for status. */
export const PROGRESS_FILE = 'freeze.json';

function effectiveUid(): number {
  return process.geteuid?.() ?? 0;
}

/** Creates the run directory (mode 700) if needed and proves it safe to use. */
export function ensureRunDir(runDir: string): void {
  try {
    fs.mkdirSync(runDir, { mode: 0o700 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      fs.mkdirSync(path.dirname(runDir), { recursive: true, mode: 0o755 });
      fs.mkdirSync(runDir, { mode: 0o700 });
    } else if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
      throw new HookError('UNSAFE', `cannot create run_dir ${runDir}: ${(error as Error).message}`, { cause: error });
    }
  }
  checkRunDir(runDir);
}

/**
 * Throws unless runDir is a real directory (not a symlink), owned by us, writable by nobody else, and
 * every directory above it belongs to root or us and is writable by nobody else (no symlink on the way).
 */
export function checkRunDir(runDir: string): void {
  checkParentDirectories(runDir, 'run_dir');
  const stat = fs.lstatSync(runDir);
  const problem = !stat.isDirectory()
    ? 'is not a directory (a symlink or a file is there)'
    : stat.uid !== effectiveUid()
      ? `is owned by uid ${stat.uid}, not by uid ${effectiveUid()}`
      : (stat.mode & 0o022) !== 0
        ? `is writable by group or others (mode ${octal(stat.mode)})`
        : undefined;
  if (problem !== undefined) {
    throw new HookError(
      'UNSAFE',
      `run_dir ${runDir} ${problem}; refusing to use it. Remove it (it is recreated with mode 700) or set run_dir to another path`,
    );
  }
}

/** `what` names the setting in the message (run_dir, history_file, ...). */
export function checkParentDirectories(file: string, what: string): void {
  try {
    checkDirectoryChain(path.dirname(path.resolve(file)));
  } catch (error) {
    if (!(error instanceof UnsafePathError)) throw error;
    throw new HookError('UNSAFE', `${what} ${file} is not safe to use as root: ${error.message}. Use a path whose directories belong to root and are writable by nobody else`, { cause: error });
  }
}

/** Whether runDir exists at all (thaw with nothing ever frozen needs nothing else). */
export function runDirExists(runDir: string): boolean {
  try {
    fs.lstatSync(runDir);
    return true;
  } catch {
    return false;
  }
}

export type ReadResult<T> = { kind: 'missing' } | { kind: 'ok'; value: T } | { kind: 'untrusted'; reason: string };

/** Reads a JSON file of ours. A symlink, a foreign or group/world-writable file, or bad JSON is untrusted. */
export function readJson<T>(runDir: string, name: string, isValid: (value: unknown) => value is T): ReadResult<T> {
  const file = path.join(runDir, name);
  let fd: number;
  try {
    checkDirectoryChain(runDir);
  } catch (error) {
    return { kind: 'untrusted', reason: (error as Error).message };
  }
  try {
    // O_NONBLOCK: a FIFO planted here must not hang us (and with us, our signal handlers).
    fd = fs.openSync(file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { kind: 'missing' };
    if (code === 'ELOOP') return { kind: 'untrusted', reason: `${file} is a symlink` };
    return { kind: 'untrusted', reason: `${file}: ${(error as Error).message}` };
  }
  try {
    const stat = fs.fstatSync(fd);
    if (!stat.isFile()) return { kind: 'untrusted', reason: `${file} is not a regular file` };
    if (stat.uid !== effectiveUid()) return { kind: 'untrusted', reason: `${file} is owned by uid ${stat.uid}` };
    if ((stat.mode & 0o022) !== 0) {
      return { kind: 'untrusted', reason: `${file} is writable by group or others (mode ${octal(stat.mode)})` };
    }
    const value: unknown = JSON.parse(fs.readFileSync(fd, 'utf8'));
    return isValid(value) ? { kind: 'ok', value } : { kind: 'untrusted', reason: `${file} has unexpected content` };
  } catch (error) {
    return { kind: 'untrusted', reason: `${file} is corrupted (${(error as Error).message})` };
  } finally {
    fs.closeSync(fd);
  }
}

/** Writes JSON atomically (see writeFileAtomic), mode 600. */
export function writeJson(runDir: string, name: string, value: unknown): void {
  writeFileAtomic(path.join(runDir, name), `${JSON.stringify(value)}\n`, { mode: 0o600 });
}

/**
 * Writes a file atomically: a new file (O_EXCL|O_NOFOLLOW, so never through a planted symlink) renamed
 * over the target. `durable`: the file and its directory are fsynced before this returns.
 */
export function writeFileAtomic(file: string, text: string, options: { mode: number; durable?: boolean }): void {
  const directory = path.dirname(file);
  checkParentDirectories(file, 'file');
  const temporary = path.join(directory, `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    removeFile(directory, path.basename(temporary));
    const fd = fs.openSync(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, options.mode);
    try {
      fs.writeSync(fd, text);
      if (options.durable) fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(temporary, file);
  } catch (error) {
    // A full or read-only filesystem leaves no half-written temporary file behind.
    try {
      removeFile(directory, path.basename(temporary));
    } catch {
      // the directory itself is unusable: the error below says why
    }
    throw error;
  }
  if (options.durable) {
    const directoryFd = fs.openSync(directory, O_RDONLY);
    try {
      fs.fsyncSync(directoryFd);
    } finally {
      fs.closeSync(directoryFd);
    }
  }
}

/** Removes a file of ours (unlink never follows a symlink: it removes the link itself). */
export function removeFile(runDir: string, name: string): void {
  try {
    fs.unlinkSync(path.join(runDir, name));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}

function octal(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, '0');
}
