/**
 * A holder's claim on its run_dir, provable without its state file: from the moment it is told to lock
 * until it exits, the holder listens on an abstract Unix socket whose name starts with a prefix made from
 * the run_dir (a hash of its path, as given in the configuration) and ends with random bytes. The kernel
 * frees the name when the process ends, so its owner is a live process; /proc/net/unix and /proc/PID/fd
 * tell which one. Anyone may bind such a name (abstract sockets have no permissions): the random end
 * means no one can take a holder's name before it does, and whoever finds a claimant still proves it is
 * ours (running as us, this executable, under the holder's name, detached) before believing or
 * signalling it. A state file replaced, removed, or left in a run_dir renamed away changes none of this.
 */
import crypto = require('node:crypto');
import fs = require('node:fs');
import path = require('node:path');
import { HOLDER_NAME } from '../agents/dispatch';
import { identify, type ProcessIdentity } from './processes';

/** The start of the abstract socket names (without the leading NUL) of runDir's holders. */
export function claimPrefix(runDir: string): string {
  const digest = crypto.createHash('sha256').update(path.resolve(runDir)).digest('hex').slice(0, 32);
  return `vmware-mysql-snapshot/holder/${digest}/`;
}

/** A new claim's path, for net.Server#listen (Linux's abstract namespace: a leading NUL). */
export function newClaimPath(runDir: string): string {
  return `\0${claimPrefix(runDir)}${crypto.randomBytes(12).toString('hex')}`;
}

/**
 * The live holders of ours that claim runDir (normally none or one). A process is counted only if it
 * holds the claim's socket, runs this very executable under the holder's name, and leads its own
 * session (freeze starts it detached).
 */
export function findClaimants(runDir: string): ProcessIdentity[] {
  const inodes = claimInodes(claimPrefix(runDir));
  if (inodes.size === 0) return [];
  const found: ProcessIdentity[] = [];
  for (const entry of readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    const identity = identify(pid);
    if (identity === null || identity.name !== HOLDER_NAME || !isOwnExecutable(identity.exe) || !runsAsUs(pid) || !leadsSession(pid)) continue;
    if (holdsSocket(pid, inodes)) found.push(identity);
  }
  return found;
}

/** The inodes of the sockets bound to abstract names with the prefix (listed as "@name" in /proc/net/unix). */
function claimInodes(prefix: string): Set<string> {
  const inodes = new Set<string>();
  let table: string;
  try {
    table = fs.readFileSync('/proc/net/unix', 'latin1');
  } catch {
    return inodes;
  }
  for (const line of table.split('\n').slice(1)) {
    // Num RefCount Protocol Flags Type St Inode Path
    const fields = line.trim().split(/\s+/);
    if (fields[7]?.startsWith(`@${prefix}`) === true && fields[6] !== undefined) inodes.add(fields[6]);
  }
  return inodes;
}

function holdsSocket(pid: number, inodes: ReadonlySet<string>): boolean {
  for (const fd of readdir(`/proc/${pid}/fd`)) {
    try {
      const target = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
      const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
      if (inode !== undefined && inodes.has(inode)) return true;
    } catch {
      // closed meanwhile
    }
  }
  return false;
}

/** Real and effective uid (the Uid line of /proc/PID/status) are ours: another user's process is never our holder. */
function runsAsUs(pid: number): boolean {
  try {
    const uids = /^Uid:\s+(\d+)\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'latin1'));
    const own = String(process.geteuid?.() ?? 0);
    return uids?.[1] === own && uids[2] === own;
  } catch {
    return false;
  }
}

/** Field 6 of /proc/PID/stat: the session id, the PID itself for a process started detached. */
function leadsSession(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[3] === String(pid);
  } catch {
    return false;
  }
}

let executable: string | undefined;
function isOwnExecutable(exe: string): boolean {
  executable ??= fs.realpathSync(process.execPath);
  return exe === executable || exe === `${executable} (deleted)`;
}

function readdir(directory: string): string[] {
  try {
    return fs.readdirSync(directory);
  } catch {
    return [];
  }
}
