/**
 * Files a root process may trust (as sshd's StrictModes and sudo decide): the file and every directory on
 * its way belong to root or to us, and none of them can be changed by anyone else. Then no other user can
 * replace the file, or a directory on its way, between our check and our use of it.
 *
 * A directory writable by others is accepted only with the sticky bit and owned by root or us (/tmp):
 * there others cannot rename or remove what is ours, and what they create is refused by its owner.
 */
import fs = require('node:fs');
import path = require('node:path');

const { O_RDONLY, O_NOFOLLOW, O_NONBLOCK } = fs.constants;

/** A file or directory that is not safe to use; the message names it, why, and the fix. */
export class UnsafePathError extends Error {
  readonly code = 'UNSAFE_PATH';
}

/** The command that makes `name` safe, given why it is not. */
function fixFor(name: string, stat: fs.Stats): string {
  return stat.uid !== 0 && !trustedOwners().includes(stat.uid) ? `chown root ${name}` : `chmod go-w ${name}`;
}

/** Root, and the user we run as. */
export function trustedOwners(): number[] {
  const uid = process.geteuid?.() ?? 0;
  return uid === 0 ? [0] : [0, uid];
}

function octal(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, '0');
}

/** Why a file or directory with this status is not safe, or undefined. */
export function ownershipProblem(name: string, stat: fs.Stats, owners: readonly number[]): string | undefined {
  if (!owners.includes(stat.uid)) return `${name} is owned by uid ${stat.uid}, not by ${owners.map((uid) => `uid ${uid}`).join(' or ')}`;
  const sharedSticky = stat.isDirectory() && (stat.mode & 0o1000) !== 0;
  if ((stat.mode & 0o022) !== 0 && !sharedSticky) return `${name} is writable by group or others (mode ${octal(stat.mode)})`;
  return undefined;
}

/**
 * Checks every directory from / down to `directory` (absolute) without following a symlink: each must be
 * a real directory owned by one of `owners`, not writable by others. Throws UnsafePathError.
 */
export function checkDirectoryChain(directory: string, owners: readonly number[] = trustedOwners()): void {
  const resolved = path.resolve(directory);
  const parts = resolved.split('/').filter((part) => part !== '');
  let current = '/';
  for (const part of ['', ...parts]) {
    current = path.join(current, part);
    let stat: fs.Stats;
    try {
      stat = fs.lstatSync(current);
    } catch (error) {
      throw new UnsafePathError(`${current} cannot be checked (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`, { cause: error });
    }
    if (stat.isSymbolicLink()) throw new UnsafePathError(`${current} is a symlink (on the way to ${resolved}): give the real path, ${realPathOr(current)}`);
    if (!stat.isDirectory()) throw new UnsafePathError(`${current} is not a directory (on the way to ${resolved})`);
    const problem = ownershipProblem(current, stat, owners);
    if (problem !== undefined) throw new UnsafePathError(`${problem}, so another user could replace what is under it (${resolved}): ${fixFor(current, stat)}`);
  }
}

function realPathOr(file: string): string {
  try {
    return fs.realpathSync(file);
  } catch {
    return 'without symlinks';
  }
}

/**
 * Opens an existing file of ours: no symlink at any component, its directories checked, never blocking
 * on a FIFO or device, then checked on the opened descriptor (a regular file, owned by one of `owners`,
 * not writable by others). Throws ENOENT as is, UnsafePathError for anything else not safe.
 */
export function openOwnedFile(file: string, flags: number = O_RDONLY, owners: readonly number[] = trustedOwners(), createMode = 0o600): number {
  checkDirectoryChain(path.dirname(path.resolve(file)), owners);
  let fd: number;
  try {
    fd = fs.openSync(file, flags | O_NOFOLLOW | O_NONBLOCK, createMode);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') throw new UnsafePathError(`${file} is a symlink`, { cause: error });
    throw error;
  }
  try {
    checkOpened(fd, file, owners);
  } catch (error) {
    fs.closeSync(fd);
    throw error;
  }
  return fd;
}

/**
 * Opens a file that another program may place behind a symlink (a configuration file, debian.cnf): the
 * symlink is followed, and what is checked is the file actually opened (its descriptor) and every
 * directory of its real path (read back from /proc/self/fd). Returns the descriptor and the real path.
 */
export function openTrustedFile(file: string, owners: readonly number[] = trustedOwners()): { fd: number; realPath: string } {
  const fd = fs.openSync(file, O_RDONLY | O_NONBLOCK);
  try {
    checkOpened(fd, file, owners);
    const realPath = fs.readlinkSync(`/proc/self/fd/${fd}`);
    try {
      checkDirectoryChain(path.dirname(realPath), owners);
    } catch (error) {
      throw new UnsafePathError(`${file}: ${(error as Error).message}`, { cause: error });
    }
    return { fd, realPath };
  } catch (error) {
    fs.closeSync(fd);
    throw error;
  }
}

/** Reads a whole file through openTrustedFile. */
export function readTrustedFile(file: string, owners: readonly number[] = trustedOwners()): { text: string; stat: fs.Stats } {
  const { fd } = openTrustedFile(file, owners);
  try {
    return { text: fs.readFileSync(fd, 'utf8'), stat: fs.fstatSync(fd) };
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Lists a directory whose entries decide what we read: its real path and every directory above it are
 * checked first, and the entries are returned under that real path (a symlink on the way cannot be flipped
 * between the listing and the reads).
 */
export function listTrustedDirectory(directory: string, owners: readonly number[] = trustedOwners()): string[] {
  const realPath = fs.realpathSync(directory);
  checkDirectoryChain(realPath, owners);
  // Others may add names to a sticky directory (/tmp), and here every name is read.
  if ((fs.lstatSync(realPath).mode & 0o022) !== 0) throw new UnsafePathError(`${realPath} is writable by group or others, so another user could add files to it`);
  return fs.readdirSync(realPath).map((name) => path.join(realPath, name));
}

function checkOpened(fd: number, file: string, owners: readonly number[]): void {
  const stat = fs.fstatSync(fd);
  if (!stat.isFile()) throw new UnsafePathError(`${file} is not a regular file`);
  const problem = ownershipProblem(file, stat, owners);
  if (problem !== undefined) throw new UnsafePathError(`${problem}, so that user could change what this root process does: ${fixFor(file, stat)}`);
}
