/**
 * `vmware-mysql-snapshot status`: what is happening now (idle, waiting for a quiet moment, taking the
 * lock, holding since, released but not yet thawed) and how the last runs went, from run_dir and the
 * history file.
 */
import type { Settings } from '../config/settings';
import { describeCoordinates } from '../server/coordinates';
import { formatPosition } from '../server/galera';
import { readHistory, unreadableHistoryAdvice, type History, type LockWaitSummary, type RunRecord } from '../state/history';
import { findClaimants } from '../state/holderclaim';
import { isSameProcess, type ProcessIdentity } from '../state/processes';
import { heldMs, isOurHolderState, type HolderState } from '../snapshot/holderstate';
import { PROGRESS_FILE, readJson, runDirExists, STATE_FILE, type ReadResult } from '../state/statedir';

export type Phase = 'idle' | 'waiting' | 'locking' | 'holding' | 'released' | 'unknown';

export interface FreezeInProgress {
  identity: ProcessIdentity;
  startedAt: number;
  phase: 'waiting' | 'locking';
  attempts: number;
  blockers: Array<{ thread: number; user: string; seconds: number; statement: string }>;
  /** who holds up the lock statement (or a statement we wait for), when last looked up */
  lockWait?: LockWaitSummary;
}

export interface StatusReport {
  phase: Phase;
  runDir: string;
  freeze: FreezeInProgress | null;
  current: (HolderState & { holderAlive: boolean; heldMs: number | null }) | null;
  /** live holders of ours that claim run_dir (src/state/holderclaim.ts) although no state names them */
  unrecorded: ProcessIdentity[];
  last: RunRecord[];
  totals: History['totals'] | null;
  problems: string[];
}

function isProgress(value: unknown): value is FreezeInProgress {
  const progress = value as Partial<FreezeInProgress> | null;
  return typeof progress === 'object' && progress !== null && typeof progress.identity === 'object' && progress.identity !== null && Array.isArray(progress.blockers);
}

export function readStatus(settings: Settings, now = Date.now(), lastCount = 5): StatusReport {
  const report: StatusReport = { phase: 'idle', runDir: settings.runDir, freeze: null, current: null, unrecorded: [], last: [], totals: null, problems: [] };
  const historyRead = readHistory(settings.historyFile);
  const history = historyRead.kind === 'ok' ? historyRead.value : null;
  if (historyRead.kind === 'untrusted') report.problems.push(unreadableHistoryAdvice(settings.historyFile, historyRead.reason));
  if (history !== null) {
    report.last = history.runs.slice(-lastCount).reverse();
    report.totals = history.totals;
  }
  const stateProblems = report.problems.length;
  report.unrecorded = findClaimants(settings.runDir);
  if (!runDirExists(settings.runDir)) return withUnrecorded(report);
  const progress = value(readJson(settings.runDir, PROGRESS_FILE, isProgress), report.problems);
  // A freeze that died leaves its progress file behind: believe it only while that freeze still runs.
  if (progress !== null && isSameProcess(progress.identity)) {
    report.freeze = progress;
    report.phase = progress.phase;
  }
  const current = value(readJson(settings.runDir, STATE_FILE, isOurHolderState), report.problems);
  if (current !== null) {
    const holderAlive = isSameProcess(current.holder);
    report.current = { ...current, holderAlive, heldMs: heldMs(current, now) };
    if (current.phase === 'held') report.phase = holderAlive ? 'holding' : 'unknown';
    // While a freeze runs, its own phase says more: its holder starts early and waits for the go, and
    // an attempt it abandoned leaves the state of that holder behind while it waits for the next one.
    else if (report.freeze !== null) report.phase = report.freeze.phase;
    else if (current.phase === 'locking') report.phase = holderAlive ? 'locking' : report.phase;
    else report.phase = 'released';
  }
  if (report.problems.length > stateProblems && report.phase === 'idle') report.phase = 'unknown';
  return withUnrecorded(report);
}

/** A holder that claims run_dir and is not the one the state names holds a lock nobody recorded. */
function withUnrecorded(report: StatusReport): StatusReport {
  const named = report.current?.holderAlive === true ? report.current.holder : undefined;
  report.unrecorded = report.unrecorded.filter((holder) => !(named !== undefined && named.pid === holder.pid && named.startTime === holder.startTime));
  if (report.unrecorded.length > 0 && report.phase !== 'holding') report.phase = 'unknown';
  return report;
}

function value<T>(read: ReadResult<T>, problems: string[]): T | null {
  if (read.kind === 'ok') return read.value;
  if (read.kind === 'untrusted') problems.push(read.reason);
  return null;
}

export function formatStatus(report: StatusReport, now = Date.now()): string {
  const lines: string[] = [];
  const current = report.current;
  switch (report.phase) {
    case 'holding':
      if (current === null) break;
      lines.push(`holding the lock since ${time(current.lockedAt)} (${seconds(current.heldMs)}; released at the latest after ${current.maxLockTime} s), holder pid ${current.holder.pid}, ${current.lockMode ?? 'ftwrl'}`);
      lines.push(`  coordinates: ${describeCoordinates(current.coordinates)}`);
      if (current.coordinates?.galera !== undefined) {
        lines.push(`  galera position ${formatPosition(current.coordinates.galera)}: a node restored from this snapshot joins by IST from it (remove its gvwstate.dat)`);
      }
      if (current.thawProbe !== undefined) lines.push(`  releases when the filesystem of ${current.thawProbe} thaws after the snapshot, or at thaw`);
      break;
    case 'waiting':
    case 'locking': {
      const freeze = report.freeze;
      const what = report.phase === 'waiting' ? 'waiting for a quiet moment' : 'taking the lock';
      lines.push(`${what}: freeze pid ${freeze?.identity.pid ?? '?'} started ${time(freeze?.startedAt)} (${seconds(freeze ? now - freeze.startedAt : null)} ago), ${freeze?.attempts ?? 0} attempt(s)`);
      for (const blocker of freeze?.blockers.slice(-3) ?? []) lines.push(`  blocked by thread ${blocker.thread} (${blocker.user}, ${blocker.seconds.toFixed(0)} s): ${blocker.statement}`);
      if (freeze?.lockWait !== undefined) lines.push(`  held up: ${freeze.lockWait.summary}`, `  advice: ${freeze.lockWait.advice}`);
      break;
    }
    case 'released':
      if (current !== null) lines.push(`released (${current.phase}${current.detail ? `: ${current.detail}` : ''}) at ${time(current.releasedAt)}; thaw has not run yet`);
      break;
    case 'unknown':
      if (report.unrecorded.length === 0) lines.push(current !== null ? `holder pid ${current.holder.pid} is gone while in phase ${current.phase}: run thaw to clear it` : 'state unreadable');
      break;
    case 'idle':
      lines.push('idle: no lock held, no freeze running');
  }
  for (const holder of report.unrecorded) {
    lines.push(`lock holder pid ${holder.pid} holds or takes a lock in ${report.runDir} without a readable state: run "post-thaw-script thaw" to release it`);
  }
  if (report.last.length > 0) lines.push('', 'last runs:');
  for (const run of report.last) lines.push(`  ${describeRun(run)}`);
  for (const problem of report.problems) lines.push(`problem: ${problem}`);
  return `${lines.join('\n')}\n`;
}

export function describeRun(run: RunRecord): string {
  const parts = [`${time(run.at)} ${run.operation.padEnd(10)} ${run.result}`];
  if (run.timeToLockMs !== undefined) parts.push(`locked in ${seconds(run.timeToLockMs)} (${run.attempts ?? 1} attempt(s), ${run.lockMode ?? 'ftwrl'})`);
  if (typeof run.holdMs === 'number') parts.push(`held ${seconds(run.holdMs)}${run.releasedAtFilesystemThaw === true ? ', to the filesystem thaw' : ''}`);
  if (run.coordinates && run.result === 'locked') parts.push(describeCoordinates(run.coordinates));
  if (run.blockers && run.blockers.length > 0) parts.push(`waited for ${run.blockers.map((blocker) => `thread ${blocker.thread} (${blocker.user}, ${blocker.seconds.toFixed(0)} s)`).join(', ')}`);
  if (run.lockWait !== undefined && run.result === 'locked') parts.push(`lock wait: ${run.lockWait.summary}`);
  if (run.message && run.result !== 'locked') parts.push(run.message);
  return parts.join('; ');
}

function time(epochMs: number | undefined): string {
  return epochMs === undefined ? '-' : new Date(epochMs).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

function seconds(ms: number | null): string {
  return ms === null ? '-' : ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}
