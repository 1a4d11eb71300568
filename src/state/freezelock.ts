/**
 * One freeze at a time. proper-lockfile's lock (an atomic mkdir, refreshed while we run) plus an owner
 * record, so that a freeze that was SIGKILLed never blocks the next one: a lock whose owner is provably
 * gone is broken at once instead of after the staleness period, whatever moment it died at.
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
/** freeze.candidate.PID.json: a freeze's record, written before it tries the lock */
const CANDIDATE_PREFIX = 'freeze.candidate.';
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
  const self = identify(process.pid);
  // Recorded before the lock is taken, so that a freeze killed at any moment after taking it (even before
  // it renamed this record into the owner's) leaves a record naming it, and its lock is taken over at once.
  const candidate = `${CANDIDATE_PREFIX}${process.pid}.json`;
  if (self !== null) writeRecord(runDir, candidate, self);
  try {
    await takeLock(runDir, target, lockDirectory, options, candidate);
    if (self !== null) fs.renameSync(path.join(runDir, candidate), path.join(runDir, OWNER_FILE));
  } catch (error) {
    removeFile(runDir, candidate);
    throw error;
  }
  return () => {
    removeFile(runDir, OWNER_FILE);
    try {
      lockfile.unlockSync(target, unlock);
    } catch {
      // released already, or compromised (removed by someone else): nothing left of ours
    }
  };
}

async function takeLock(runDir: string, target: string, lockDirectory: string, options: lockfile.LockOptions, candidate: string): Promise<void> {
  try {
    await lockfile.lock(target, options);
    return;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ELOCKED') throw lockError(lockDirectory, error);
  }
  const owner = readJson(runDir, OWNER_FILE, isIdentity);
  if (owner.kind === 'ok' && isSameProcess(owner.value)) {
    throw new HookError('BUSY', `another freeze is running (pid ${owner.value.pid}); only one freeze at a time`);
  }
  // No live owner on record: the lock is between its taking and its owner's record (a live candidate),
  // or its owner died.
  if (owner.kind !== 'ok' && liveCandidates(runDir, candidate) > 0) throw busyStarting();
  // Its owner is provably gone (killed before it could release): break the lock. proper-lockfile only
  // unlocks locks of its own process, so remove the lock directory (in our mode-700 run_dir) ourselves.
  fs.rmSync(lockDirectory, { recursive: true, force: true });
  try {
    await lockfile.lock(target, options);
  } catch (retryError) {
    if ((retryError as NodeJS.ErrnoException).code === 'ELOCKED') throw busyStarting();
    throw lockError(lockDirectory, retryError);
  }
}

/** Other freezes' candidate records that name a live process; those of dead ones are removed. */
function liveCandidates(runDir: string, own: string): number {
  let live = 0;
  for (const name of fs.readdirSync(runDir)) {
    if (name === own || !name.startsWith(CANDIDATE_PREFIX) || !name.endsWith('.json')) continue;
    const record = readJson(runDir, name, isIdentity);
    if (record.kind === 'ok' && isSameProcess(record.value)) live += 1;
    else removeFile(runDir, name);
  }
  return live;
}

function writeRecord(runDir: string, name: string, identity: ProcessIdentity): void {
  try {
    writeJson(runDir, name, identity);
  } catch (error) {
    throw new HookError('UNSAFE', `cannot write ${path.join(runDir, name)} (${(error as Error).message}): free space in run_dir's filesystem or fix its permissions`, { cause: error });
  }
}

function lockError(lockDirectory: string, error: unknown): HookError {
  return new HookError('UNSAFE', `cannot take the freeze lock ${lockDirectory} (${(error as Error).message}): free space in run_dir's filesystem or fix its permissions`, { cause: error });
}

function busyStarting(): HookError {
  return new HookError('BUSY', 'another freeze is starting; only one freeze at a time');
}
