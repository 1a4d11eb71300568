/**
 * One freeze at a time. proper-lockfile's lock (an atomic mkdir, refreshed while we run) plus an owner
 * record, so that a freeze that was SIGKILLed never blocks the next one: a lock whose owner is provably
 * gone is broken at once instead of after the staleness period.
 */
import fs = require('node:fs');
import path = require('node:path');
import * as lockfile from 'proper-lockfile';
import { HookError } from '../errors';
import { identify, isSameProcess, type ProcessIdentity } from './processes';
import { readJson, removeFile, writeJson } from './statedir';

const LOCK_TARGET = 'freeze';
/**
 * What unlockSync may use of fs. proper-lockfile's sync calls copy the fs object they are given (all of
 * graceful-fs by default), and the copy reads each lazy property of Node's fs, which loads modules we
 * never use: ~0.5 ms of freeze's exit, while writers wait on the lock.
 */
const SYNC_FS = { mkdirSync: fs.mkdirSync, realpathSync: fs.realpathSync, statSync: fs.statSync, rmdirSync: fs.rmdirSync, utimesSync: fs.utimesSync };
const OWNER_FILE = 'freeze.owner.json';
const STALE_MS = 10_000;
const UPDATE_MS = 2_000;

function isIdentity(value: unknown): value is ProcessIdentity {
  const identity = value as Partial<ProcessIdentity> | null;
  return typeof identity === 'object' && identity !== null && Number.isInteger(identity.pid) && typeof identity.startTime === 'string' && typeof identity.name === 'string' && typeof identity.exe === 'string';
}

/**
 * proper-lockfile's calls for the freeze lock of a run_dir. The build makes proper-lockfile's code cache
 * after taking and releasing such a lock (scripts/codecache.ts), so that the release, between the lock
 * and freeze's exit, runs compiled.
 */
export function freezeLockCalls(runDir: string): {
  target: string;
  lockDirectory: string;
  lock: lockfile.LockOptions;
  unlock: lockfile.UnlockOptions;
} {
  const target = path.join(runDir, LOCK_TARGET);
  const lockDirectory = `${target}.lock`;
  return {
    target,
    lockDirectory,
    lock: { realpath: false, stale: STALE_MS, update: UPDATE_MS, lockfilePath: lockDirectory, onCompromised: () => undefined },
    unlock: { realpath: false, lockfilePath: lockDirectory, fs: SYNC_FS },
  };
}

/** Resolves to the release: synchronous, as it comes after the lock is taken and before freeze exits. */
export async function acquireFreezeLock(runDir: string): Promise<() => void> {
  const { target, lockDirectory, lock: options, unlock } = freezeLockCalls(runDir);
  try {
    await lockfile.lock(target, options);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ELOCKED') throw error;
    const owner = readJson(runDir, OWNER_FILE, isIdentity);
    if (owner.kind === 'ok' && isSameProcess(owner.value)) {
      throw new HookError('BUSY', `another freeze is running (pid ${owner.value.pid}); only one freeze at a time`);
    }
    if (owner.kind === 'missing') throw busyStarting();
    // Its owner is provably gone (killed before it could release): break the lock. proper-lockfile only
    // unlocks locks of its own process, so remove the lock directory (in our mode-700 run_dir) ourselves.
    fs.rmSync(lockDirectory, { recursive: true, force: true });
    try {
      await lockfile.lock(target, options);
    } catch (retryError) {
      if ((retryError as NodeJS.ErrnoException).code === 'ELOCKED') throw busyStarting();
      throw retryError;
    }
  }
  const self = identify(process.pid);
  if (self !== null) writeJson(runDir, OWNER_FILE, self);
  return () => {
    removeFile(runDir, OWNER_FILE);
    try {
      lockfile.unlockSync(target, unlock);
    } catch {
      // released already, or compromised (removed by someone else): nothing left of ours
    }
  };
}

function busyStarting(): HookError {
  return new HookError('BUSY', 'another freeze is starting; only one freeze at a time');
}
