/** History bookkeeping, Prometheus metrics and the Nagios verdicts, from plain data. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs = require('node:fs');
import os = require('node:os');
import path = require('node:path');
import { evaluate, formatCheck, parseAge } from '../../src/commands/check';
import { addRun, emptyHistory, HISTORY_LIMIT, readAhead, readHistory, recordRun, unansweredFailedFreeze, type History, type RunRecord } from '../../src/state/history';
import { formatMetrics } from '../../src/snapshot/outcome';
import type { StatusReport } from '../../src/commands/status';

const NOW = Date.parse('2026-11-21T12:00:00Z');
const HOUR = 3600_000;

function history(...runs: RunRecord[]): History {
  return runs.reduce(addRun, emptyHistory());
}

const locked = (at: number): RunRecord => ({ operation: 'freeze', at, result: 'locked', timeToLockMs: 120, attempts: 2 });
const released = (at: number, holdMs = 2500): RunRecord => ({ operation: 'thaw', at, result: 'released', holdMs });

function idle(overrides: Partial<StatusReport> = {}): StatusReport {
  return { phase: 'idle', runDir: '/run/x', freeze: null, current: null, unrecorded: [], last: [], totals: null, problems: [], ...overrides };
}

const options = { maxAgeSeconds: 26 * 3600, maxLockTime: 60, now: NOW };

test('history keeps totals and the last runs only', () => {
  const h = history(locked(1), released(2), { operation: 'freeze', at: 3, result: 'failed', attempts: 4 }, { operation: 'thaw', at: 4, result: 'inconsistent', expired: true });
  assert.deepEqual(h.totals, { freezes: 2, locked: 1, attempts: 6, failures: 1, expired: 1, inconsistent: 1 });
  let long = emptyHistory();
  for (let i = 0; i < HISTORY_LIMIT + 20; i += 1) long = addRun(long, locked(i));
  assert.equal(long.runs.length, HISTORY_LIMIT);
  assert.equal(long.runs[0]?.at, 20);
  assert.equal(long.totals.freezes, HISTORY_LIMIT + 20, 'totals count every run, for counters');
});

test('a history read ahead is used if the file is unchanged, and read again if another run was recorded since', (context) => {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'vms-history-'));
  context.after(() => fs.rmSync(directory, { recursive: true, force: true }));
  const file = path.join(directory, 'history.json');
  const runsIn = (): number[] => {
    const read = readHistory(file);
    return read.kind === 'ok' ? read.value.runs.map((run) => run.at) : [];
  };
  recordRun(file, locked(1));
  const ahead = readAhead(file);
  assert.equal(ahead.read.kind, 'ok');
  recordRun(file, locked(2), ahead);
  assert.deepEqual(runsIn(), [1, 2]);
  const unchanged = readAhead(file);
  recordRun(file, locked(3), { ...unchanged, read: { kind: 'ok', value: history(locked(0)) } });
  assert.deepEqual(runsIn(), [0, 3], 'an unchanged file is not read again');

  const stale = readAhead(file);
  recordRun(file, released(4)); // a thaw recorded meanwhile: a new file, renamed into place
  recordRun(file, locked(5), stale);
  assert.deepEqual(runsIn(), [0, 3, 4, 5], 'the run recorded after the read ahead is kept');

  const missing = readAhead(path.join(directory, 'none.json'));
  assert.equal(missing.read.kind, 'missing');
  recordRun(path.join(directory, 'none.json'), locked(6), missing);
  assert.equal(readHistory(path.join(directory, 'none.json')).kind, 'ok');
});

test('metrics in the textfile format, counters from the totals', () => {
  const text = formatMetrics(history(locked(NOW), released(NOW + 3000)));
  assert.match(text, /^# TYPE vmware_mysql_snapshot_last_success_timestamp_seconds gauge\nvmware_mysql_snapshot_last_success_timestamp_seconds 1795262400$/m);
  assert.match(text, /^vmware_mysql_snapshot_last_time_to_lock_seconds 0\.12$/m);
  assert.match(text, /^vmware_mysql_snapshot_last_hold_seconds 2\.5$/m);
  assert.match(text, /^# TYPE vmware_mysql_snapshot_attempts_total counter\nvmware_mysql_snapshot_attempts_total 2$/m);
  assert.doesNotMatch(formatMetrics(emptyHistory()), /last_success/, 'no gauge without a value');
});

test('check: OK with the last freeze and perfdata', () => {
  const result = evaluate(idle(), history(locked(NOW - HOUR), released(NOW - HOUR + 2500)), options);
  assert.equal(result.state, 'OK');
  assert.equal(
    formatCheck(result),
    'VMWARE_MYSQL_SNAPSHOT OK - last freeze 2026-11-21T11:00:00Z locked in 120 ms, held 2.5 s | age=3600s;93600;;0; time_to_lock=0.120s;;;0; hold_time=2.500s;;;0; failures=0c expired=0c\n',
  );
});

test('check: WARNING when no freeze succeeded within max-age, or none ever', () => {
  assert.equal(evaluate(idle(), history(locked(NOW - 30 * HOUR)), options).state, 'WARNING');
  assert.match(evaluate(idle(), null, options).message, /no successful freeze recorded yet/);
});

test('check: CRITICAL after a failed freeze or an inconsistent thaw, or a lock held too long', () => {
  assert.equal(evaluate(idle(), history(locked(NOW - HOUR), { operation: 'freeze', at: NOW, result: 'failed', message: 'no lock within freeze_timeout' }), options).state, 'CRITICAL');
  assert.match(evaluate(idle(), history(locked(NOW - HOUR), { operation: 'thaw', at: NOW, result: 'inconsistent', message: 'expired' }), options).message, /inconsistent snapshot/);
  assert.equal(evaluate(idle(), history(locked(NOW - 2 * HOUR), { operation: 'freeze', at: NOW - HOUR, result: 'failed' }, locked(NOW - 60_000)), options).state, 'OK', 'a later success clears it');
  const holding = idle({ phase: 'holding', current: { heldMs: 70_000, holder: { pid: 9 } } as StatusReport['current'] });
  assert.equal(evaluate(holding, history(locked(NOW - 70_000)), options).state, 'CRITICAL');
});

test('check: UNKNOWN when the state cannot be read', () => {
  assert.equal(evaluate(idle({ problems: ['/run/x/state.json is a symlink'] }), null, options).state, 'UNKNOWN');
});

test('--max-age accepts seconds and s/m/h/d suffixes', () => {
  assert.equal(parseAge('3600'), 3600);
  assert.equal(parseAge('26h'), 93600);
  assert.equal(parseAge('2d'), 172800);
  assert.equal(parseAge('90m'), 5400);
  assert.equal(parseAge('soon'), undefined);
});

test('status: while a freeze runs, its phase wins over the state an abandoned attempt left behind', async () => {
  const { readStatus } = await import('../../src/commands/status');
  const { identify } = await import('../../src/state/processes');
  const { writeJson } = await import('../../src/state/statedir');
  const { DEFAULTS } = await import('../../src/config/settings');
  const fs = await import('node:fs');
  const os = await import('node:os');
  const path = await import('node:path');
  const runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'vms-status-'));
  const settings = { ...DEFAULTS, runDir, historyFile: path.join(runDir, 'history.json') } as unknown as Parameters<typeof readStatus>[0];
  const abandoned = {
    version: 1,
    phase: 'aborted',
    holder: { pid: 2 ** 22 + 3, startTime: '1', name: 'pre-freeze-mysql-lock', exe: fs.realpathSync(process.execPath) },
    freezePid: process.pid,
    connection: null,
    startedAt: 1,
    maxLockTime: 60,
  };
  writeJson(runDir, 'state.json', abandoned);
  assert.equal(readStatus(settings).phase, 'released', 'no freeze running: the state speaks');
  // This test process stands in for the running freeze.
  writeJson(runDir, 'freeze.json', { identity: identify(process.pid), startedAt: NOW, phase: 'waiting', attempts: 1, blockers: [] });
  const report = readStatus(settings);
  assert.equal(report.phase, 'waiting');
  assert.equal(report.freeze?.attempts, 1);
});

test('unansweredFailedFreeze: a failed freeze is answered by a thaw or a freezeFail, not by a skipped freeze; check names the later of freeze and thaw', () => {
  const failedFreeze: RunRecord = { operation: 'freeze', at: 10, result: 'failed', code: 'ACCESS', message: 'refused' };
  assert.equal(unansweredFailedFreeze(history(locked(1), released(2), failedFreeze)), failedFreeze);
  assert.equal(unansweredFailedFreeze(history(failedFreeze, { operation: 'freeze', at: 11, result: 'skipped' })), failedFreeze);
  assert.equal(unansweredFailedFreeze(history(failedFreeze, { operation: 'thaw', at: 12, result: 'inconsistent' })), undefined);
  assert.equal(unansweredFailedFreeze(history(failedFreeze, { operation: 'freezeFail', at: 12, result: 'failed' })), undefined);
  assert.equal(unansweredFailedFreeze(history(failedFreeze, locked(12))), undefined, 'a later freeze that locked');
  assert.equal(unansweredFailedFreeze(history()), undefined);
  const result = evaluate(idle(), history(locked(NOW - HOUR), { ...failedFreeze, at: NOW - 2000 }, { operation: 'thaw', at: NOW, result: 'inconsistent', message: 'freeze failed at X' }), options);
  assert.equal(result.state, 'CRITICAL');
  assert.match(result.message, /^the last thaw reported an inconsistent snapshot at .*: freeze failed at X$/);
});

test('status: while a freeze waits, who holds up the lock and the advice; a run held up and then locked says so', async () => {
  const { formatStatus, describeRun } = await import('../../src/commands/status');
  const lockWait = {
    cause: 'idle_lock_tables',
    summary: 'our lock statement (thread 9) waited 1.0 s (Waiting for backup lock), held up by thread 5 (batch@web1, idle 300 s) holding LOCK TABLES WRITE on app.t',
    advice: 'thread 5 (batch@web1, idle 300 s) must end its LOCK TABLES (UNLOCK TABLES, or disconnect) or be killed (KILL 5); waiting longer cannot help',
    source: 'metadata_lock_info',
    culprits: [{ thread: 5, user: 'batch', host: 'web1', seconds: 300, cause: 'idle_lock_tables', holds: 'LOCK TABLES WRITE on app.t' }],
  };
  const waiting = idle({ phase: 'locking', freeze: { identity: { pid: 42, startTime: '1', name: 'pre-freeze-script', exe: '/x' }, startedAt: NOW - 2000, phase: 'locking', attempts: 1, blockers: [], lockWait } });
  const text = formatStatus(waiting, NOW);
  assert.match(text, /^taking the lock: freeze pid 42/m);
  assert.match(text, /^ {2}held up: our lock statement \(thread 9\) .* held up by thread 5 \(batch@web1, idle 300 s\) holding LOCK TABLES WRITE on app\.t$/m);
  assert.match(text, /^ {2}advice: thread 5 .* or be killed \(KILL 5\); waiting longer cannot help$/m);
  assert.match(describeRun({ ...locked(NOW), lockWait }), /; lock wait: our lock statement \(thread 9\)/);
});

test('an unreadable history is moved aside before a new one is started, never replaced silently', (context) => {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'vms-history-'));
  context.after(() => fs.rmSync(directory, { recursive: true, force: true }));
  const file = path.join(directory, 'history.json');
  fs.writeFileSync(file, '{"version": 1, "runs": [', { mode: 0o600 });
  const recorded = recordRun(file, locked(1));
  assert.ok('history' in recorded && recorded.movedAside !== undefined, 'it says where the old one went');
  assert.match(recorded.movedAside.reason, /corrupted/);
  assert.equal(fs.readFileSync(recorded.movedAside.file, 'utf8'), '{"version": 1, "runs": [');
  assert.equal(path.dirname(recorded.movedAside.file), directory);
  const read = readHistory(file);
  assert.ok(read.kind === 'ok');
  assert.deepEqual(read.value.runs.map((run) => run.at), [1]);
  const again = recordRun(file, locked(2));
  assert.ok('history' in again && again.movedAside === undefined, 'a readable history stays where it is');
});

test('check: a holder that claims run_dir without a readable state is CRITICAL, with what to do', () => {
  const holder = { pid: 4242, startTime: '1', name: 'pre-freeze-mysql-lock', exe: '/usr/local/sbin/vmware-mysql-snapshot' };
  const result = evaluate(idle({ phase: 'unknown', unrecorded: [holder] }), history(locked(NOW - HOUR)), options);
  assert.equal(result.state, 'CRITICAL');
  assert.match(result.message, /lock holder pid 4242 holds or takes a lock in \/run\/x without a readable state: run "post-thaw-script thaw"/);
});
