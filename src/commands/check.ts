/**
 * `vmware-mysql-snapshot check`: a Nagios/Icinga plugin. One line and performance data; exit 0 OK,
 * 1 WARNING, 2 CRITICAL, 3 UNKNOWN (the monitoring-plugins conventions).
 *   CRITICAL: a lock held past max_lock_time or held without a record, the last freeze or thaw failed,
 *             or the last thaw ended a snapshot the lock did not cover (after a failed freeze, too:
 *             src/snapshot/thaw.ts).
 *   WARNING:  no successful freeze within --max-age.
 *   UNKNOWN:  the state or the history cannot be read.
 */
import { lastRun, type History, type RunRecord } from '../state/history';
import type { StatusReport } from './status';

export const CHECK_EXIT = { OK: 0, WARNING: 1, CRITICAL: 2, UNKNOWN: 3 } as const;
export type CheckState = keyof typeof CHECK_EXIT;

export interface CheckResult {
  state: CheckState;
  message: string;
  perfdata: string;
}

/** "26h", "2d", "90m", "3600" (seconds): the age in seconds, or undefined if unreadable. */
export function parseAge(text: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)([smhd]?)$/.exec(text.trim());
  if (match === null) return undefined;
  const unit = { '': 1, s: 1, m: 60, h: 3600, d: 86400 }[match[2] ?? ''] ?? 1;
  return Number(match[1]) * unit;
}

/** The verdict, from plain data: the status report, the history, and the clock. */
export function evaluate(report: StatusReport, history: History | null, options: { maxAgeSeconds: number; maxLockTime: number; now: number }): CheckResult {
  const success = history === null ? undefined : lastRun(history, (run) => run.operation === 'freeze' && run.result === 'locked');
  const ageSeconds = success === undefined ? undefined : Math.max(0, Math.round((options.now - success.at) / 1000));
  const perfdata = perfData(success, history, ageSeconds, options);
  const unrecorded = report.unrecorded[0];
  if (unrecorded !== undefined) {
    return { state: 'CRITICAL', message: `lock holder pid ${unrecorded.pid} holds or takes a lock in ${report.runDir} without a readable state: run "post-thaw-script thaw" to release it`, perfdata };
  }
  if (report.problems.length > 0) return { state: 'UNKNOWN', message: `cannot read the state: ${report.problems.join('; ')}`, perfdata };
  const current = report.current;
  if (report.phase === 'holding' && current !== null && (current.heldMs ?? 0) > options.maxLockTime * 1000 + 5000) {
    return { state: 'CRITICAL', message: `the lock has been held for ${Math.round((current.heldMs ?? 0) / 1000)} s, past max_lock_time (${options.maxLockTime} s): holder pid ${current.holder.pid}`, perfdata };
  }
  if (report.phase === 'unknown') return { state: 'CRITICAL', message: 'a holder died while holding the lock: run thaw to clear it', perfdata };
  const lastFreeze = history === null ? undefined : lastRun(history, (run) => run.operation === 'freeze' && run.result !== 'skipped');
  const lastThaw = history === null ? undefined : lastRun(history, (run) => run.operation === 'thaw');
  // The later one first: a thaw after a failed freeze says what that failure cost (a snapshot without the lock).
  const latestFirst = [lastFreeze, lastThaw].sort((first, second) => (second?.at ?? 0) - (first?.at ?? 0));
  for (const run of latestFirst) {
    if (run !== undefined && (run.result === 'failed' || run.result === 'inconsistent')) {
      return { state: 'CRITICAL', message: `the last ${run.operation} ${run.result === 'failed' ? 'failed' : 'reported an inconsistent snapshot'} at ${iso(run.at)}: ${run.message ?? run.code ?? ''}`.trim(), perfdata };
    }
  }
  if (success === undefined) return { state: 'WARNING', message: 'no successful freeze recorded yet', perfdata };
  if ((ageSeconds ?? 0) > options.maxAgeSeconds) {
    return { state: 'WARNING', message: `no successful freeze for ${hours(ageSeconds ?? 0)} (last at ${iso(success.at)}; --max-age ${hours(options.maxAgeSeconds)})`, perfdata };
  }
  const held = lastThaw?.holdMs;
  return {
    state: 'OK',
    message: `last freeze ${iso(success.at)} locked in ${success.timeToLockMs ?? '?'} ms${typeof held === 'number' ? `, held ${(held / 1000).toFixed(1)} s` : ''}`,
    perfdata,
  };
}

function perfData(success: RunRecord | undefined, history: History | null, ageSeconds: number | undefined, options: { maxAgeSeconds: number }): string {
  const items: string[] = [];
  if (ageSeconds !== undefined) items.push(`age=${ageSeconds}s;${options.maxAgeSeconds};;0;`);
  if (success?.timeToLockMs !== undefined) items.push(`time_to_lock=${(success.timeToLockMs / 1000).toFixed(3)}s;;;0;`);
  const hold = history === null ? undefined : lastRun(history, (run) => run.operation === 'thaw' && typeof run.holdMs === 'number')?.holdMs;
  if (typeof hold === 'number') items.push(`hold_time=${(hold / 1000).toFixed(3)}s;;;0;`);
  if (history !== null) items.push(`failures=${history.totals.failures}c`, `expired=${history.totals.expired}c`);
  return items.join(' ');
}

export function formatCheck(result: CheckResult): string {
  return `VMWARE_MYSQL_SNAPSHOT ${result.state} - ${result.message}${result.perfdata ? ` | ${result.perfdata}` : ''}\n`;
}

function iso(epochMs: number): string {
  return new Date(epochMs).toISOString().replace(/\.\d+Z$/, 'Z');
}

function hours(seconds: number): string {
  return seconds >= 7200 ? `${(seconds / 3600).toFixed(1)} h` : `${Math.round(seconds / 60)} min`;
}
