/** `vmware-mysql-snapshot status`: what the holder is doing now, and how the last run ended. */
import type { Settings } from './config';
import { describeCoordinates } from './coordinates';
import { isSameProcess } from './processes';
import { heldMs, isOurHolderState, isLastRun, type HolderState, type LastRun } from './state';
import { LAST_FILE, readJson, runDirExists, STATE_FILE, type ReadResult } from './statedir';

export type Phase = 'idle' | 'locking' | 'holding' | 'released' | 'unknown';

export interface StatusReport {
  phase: Phase;
  runDir: string;
  current: (HolderState & { holderAlive: boolean; heldMs: number | null }) | null;
  last: LastRun | null;
  problems: string[];
}

export function readStatus(settings: Settings, now = Date.now()): StatusReport {
  const report: StatusReport = { phase: 'idle', runDir: settings.runDir, current: null, last: null, problems: [] };
  if (!runDirExists(settings.runDir)) return report;
  const current = value(readJson(settings.runDir, STATE_FILE, isOurHolderState), report.problems);
  report.last = value(readJson(settings.runDir, LAST_FILE, isLastRun), report.problems);
  if (current !== null) {
    const holderAlive = isSameProcess(current.holder);
    report.current = { ...current, holderAlive, heldMs: heldMs(current, now) };
    report.phase = !holderAlive && (current.phase === 'held' || current.phase === 'locking')
      ? 'unknown'
      : current.phase === 'held' ? 'holding' : current.phase === 'locking' ? 'locking' : 'released';
  }
  if (report.problems.length > 0 && current === null) report.phase = 'unknown';
  return report;
}

function value<T>(read: ReadResult<T>, problems: string[]): T | null {
  if (read.kind === 'ok') return read.value;
  if (read.kind === 'untrusted') problems.push(read.reason);
  return null;
}

export function formatStatus(report: StatusReport): string {
  const lines: string[] = [];
  const current = report.current;
  if (report.phase === 'holding' && current !== null) {
    lines.push(`holding the lock since ${iso(current.lockedAt)} (${seconds(current.heldMs)}, at most ${current.maxLockTime} s), holder pid ${current.holder.pid}`);
    lines.push(`  coordinates: ${coordinates(current)}`);
  } else if (report.phase === 'locking' && current !== null) {
    lines.push(`taking the lock (holder pid ${current.holder.pid}, started ${iso(current.startedAt)})`);
  } else if (report.phase === 'released' && current !== null) {
    lines.push(`released (${current.phase}${current.detail ? `: ${current.detail}` : ''}) at ${iso(current.releasedAt)}, not yet thawed`);
  } else if (report.phase === 'unknown') {
    lines.push(current !== null ? `holder pid ${current.holder.pid} is gone while in phase ${current.phase}: run thaw to clear it` : 'state unreadable');
  } else {
    lines.push('idle: no lock held');
  }
  const last = report.last;
  if (last !== null) {
    lines.push(`last run: ${last.thaw.outcome} by ${last.thaw.operation} at ${iso(last.thaw.at)}; held ${seconds(heldMs(last))}; ${coordinates(last)}`);
  }
  for (const problem of report.problems) lines.push(`problem: ${problem}`);
  return `${lines.join('\n')}\n`;
}

function coordinates(state: HolderState): string {
  return describeCoordinates(state.coordinates);
}

function iso(epochMs: number | undefined): string {
  return epochMs === undefined ? '-' : new Date(epochMs).toISOString();
}

function seconds(ms: number | null): string {
  return ms === null ? '-' : `${(ms / 1000).toFixed(1)} s`;
}
