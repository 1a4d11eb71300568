/**
 * What happened to the last runs, for `status` and `check`: a small JSON file (the last 100 runs and
 * running totals), outside run_dir so that it survives a reboot. Written by freeze before the
 * filesystems freeze and by thaw after they thaw, never by the holder. Recording is best effort: a
 * history that cannot be written never fails a snapshot.
 */
import fs = require('node:fs');
import path = require('node:path');
import type { Coordinates } from '../server/coordinates';
import type { ErrorCode } from '../errors';
import { ensureRunDir, readJson, writeJson, type ReadResult } from './statedir';

export const HISTORY_LIMIT = 100;

export interface BlockerSummary {
  thread: number;
  user: string;
  seconds: number;
  statement: string;
}

/** Who held up the lock (or a statement freeze waited for), and the advice given: see src/snapshot/lockadvice.ts. */
export interface LockWaitSummary {
  cause: string;
  summary: string;
  advice: string;
  /** where the holders were read: performance_schema, metadata_lock_info, or null (none available) */
  source: string | null;
  /** the sessions at the root of the wait */
  culprits: Array<{ thread: number; user: string; host: string; seconds: number; cause: string; holds: string }>;
}

export interface RunRecord {
  operation: 'freeze' | 'thaw' | 'freezeFail';
  /** epoch ms when the operation ended */
  at: number;
  result: 'locked' | 'skipped' | 'failed' | 'released' | 'nothing_held' | 'inconsistent';
  code?: ErrorCode;
  message?: string;
  timeToLockMs?: number;
  attempts?: number;
  lockMode?: string;
  coordinates?: Coordinates;
  holdMs?: number | null;
  /** the lock ended at the filesystem thaw, before thaw was called (release_at = filesystem_thaw) */
  releasedAtFilesystemThaw?: boolean;
  expired?: boolean;
  blockers?: BlockerSummary[];
  lockWait?: LockWaitSummary;
}

export interface History {
  version: 1;
  totals: { freezes: number; locked: number; attempts: number; failures: number; expired: number; inconsistent: number };
  runs: RunRecord[];
}

export function emptyHistory(): History {
  return { version: 1, totals: { freezes: 0, locked: 0, attempts: 0, failures: 0, expired: 0, inconsistent: 0 }, runs: [] };
}

function isHistory(value: unknown): value is History {
  const history = value as Partial<History> | null;
  return typeof history === 'object' && history !== null && history.version === 1 && Array.isArray(history.runs) && typeof history.totals === 'object';
}

export function readHistory(file: string): ReadResult<History> {
  return readJson(path.dirname(file), path.basename(file), isHistory);
}

/** Adds one run to a history (pure): totals updated, the oldest runs dropped past the limit. */
export function addRun(history: History, run: RunRecord): History {
  const totals = { ...history.totals };
  if (run.operation === 'freeze' && run.result !== 'skipped') {
    totals.freezes += 1;
    totals.attempts += run.attempts ?? 0;
    if (run.result === 'locked') totals.locked += 1;
  }
  if (run.result === 'failed') totals.failures += 1;
  if (run.result === 'inconsistent') totals.inconsistent += 1;
  if (run.expired) totals.expired += 1;
  return { version: 1, totals, runs: [...history.runs, run].slice(-HISTORY_LIMIT) };
}

/**
 * The history read before it is needed (freeze reads it while the holder starts, so that only the write
 * remains once writers wait on the lock), with what identifies that version of the file: inode, change
 * time and size. Every write of ours is a new file renamed into place, so a history written since differs.
 */
export interface ReadAhead {
  read: ReadResult<History>;
  version: string | undefined;
}

export function readAhead(file: string): ReadAhead {
  const version = versionOf(file);
  return { read: readHistory(file), version };
}

function versionOf(file: string): string | undefined {
  try {
    const stat = fs.lstatSync(file, { bigint: true });
    return `${stat.ino}:${stat.ctimeNs}:${stat.size}`;
  } catch {
    return undefined;
  }
}

/** What recordRun did: the new history (and where an unreadable one was moved), or why it could not. */
export type Recorded = { history: History; movedAside?: { file: string; reason: string } } | { error: string };

/**
 * Reads (or takes `ahead`, if the file is unchanged), adds, writes atomically. A history that cannot be
 * read is never silently replaced: it is moved aside (file.unreadable-TIME) first, and the caller logs where.
 */
export function recordRun(file: string, run: RunRecord, ahead?: ReadAhead): Recorded {
  try {
    const directory = path.dirname(file);
    ensureRunDir(directory);
    const read = ahead !== undefined && ahead.version !== undefined && ahead.version === versionOf(file) ? ahead.read : readHistory(file);
    const movedAside = read.kind === 'untrusted' ? { file: moveAside(file), reason: read.reason } : undefined;
    const history = addRun(read.kind === 'ok' ? read.value : emptyHistory(), run);
    writeJson(directory, path.basename(file), history);
    return movedAside === undefined ? { history } : { history, movedAside };
  } catch (error) {
    return { error: (error as Error).message };
  }
}

/**
 * The failed freeze that the next thaw answers, if any: the last freeze (one that tried to lock), thaw or
 * freezeFail recorded is a freeze that failed. The agent froze the filesystems and took the snapshot
 * anyway when its dispatcher only logs a failed hook (QEMU's stock fsfreeze-hook), so that thaw ends a
 * snapshot the lock did not cover. A thaw after a thaw, or after a freezeFail, answers none.
 */
export function unansweredFailedFreeze(history: History): RunRecord | undefined {
  const last = lastRun(history, (run) => run.operation !== 'freeze' || run.result !== 'skipped');
  return last?.operation === 'freeze' && last.result === 'failed' ? last : undefined;
}

/** Renames the file (never what a symlink points to) to a name of its own; throws if it cannot. */
export function moveAside(file: string, now = new Date()): string {
  const aside = `${file}.unreadable-${now.toISOString().replace(/[:.]/g, '-')}`;
  fs.renameSync(file, aside);
  return aside;
}

/** What status and check say about a history that cannot be read. */
export function unreadableHistoryAdvice(file: string, reason: string): string {
  return `the history ${file} cannot be read (${reason}): the next freeze or thaw moves it aside and starts a new one; to keep it, move it away and repair it by hand`;
}

export function lastRun(history: History, predicate: (run: RunRecord) => boolean): RunRecord | undefined {
  for (let index = history.runs.length - 1; index >= 0; index -= 1) {
    const run = history.runs[index];
    if (run !== undefined && predicate(run)) return run;
  }
  return undefined;
}
