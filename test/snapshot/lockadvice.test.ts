/**
 * Who held up a lock, and the advice: src/server/blockers.ts's explainWait and
 * src/snapshot/lockadvice.ts, on processlists and metadata locks as MariaDB 10.11 showed them (read off
 * a real server: an idle LOCK TABLES holder, an ALTER queued behind an idle open transaction).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { explainWait, type MetadataLock, type Visibility } from '../../src/server/blockers';
import type { ProcessRow } from '../../src/server/processlist';
import { adviceText, adviseOnLockWait } from '../../src/snapshot/lockadvice';

const CONTEXT = { freezeTimeout: 6, killLongQueries: 'off' as const };
const PLUGIN: Visibility = { source: 'metadata_lock_info', detail: 'METADATA_LOCK_INFO' };
const PERFORMANCE_SCHEMA: Visibility = { source: 'performance_schema', detail: 'performance_schema.metadata_locks' };
const NONE: Visibility = { source: null, detail: 'the holders of a lock cannot be named: the metadata_lock_info plugin is not loaded', fix: "INSTALL SONAME 'metadata_lock_info'" };
const OURS = new Set([20]);

function row(id: number, command: string, seconds: number, state: string | null, info: string | null, user = 'app'): ProcessRow {
  return { id, user, host: 'web1:4242', db: 'app', command, timeMs: seconds * 1000, state, info };
}

function lock(thread: number, namespace: string, mode: string, schema: string | null = null, table: string | null = null, granted = true): MetadataLock {
  return { thread, namespace, mode, schema, table, granted };
}

const FLUSH = row(13, 'Query', 1, 'Waiting for backup lock', '/* vmware-mysql-snapshot holder 99 */ FLUSH TABLES WITH READ LOCK', 'snapshot');
const LOCK_TABLES_IDLE = row(12, 'Sleep', 300, '', null, 'batch');
const WRITER_QUEUED = row(15, 'Query', 1, 'Waiting for backup lock', 'INSERT INTO app.t VALUES (1)');
const POLLER = row(20, 'Query', 0, 'Filling schema table', 'SELECT ... FROM information_schema.PROCESSLIST', 'snapshot');

test('an idle LOCK TABLES holder (METADATA_LOCK_INFO) is named, and told to end its LOCK TABLES or be killed; no "raise freeze_timeout"', () => {
  const locks = [lock(12, 'BACKUP', 'BACKUP_DDL'), lock(12, 'TABLE', 'SHARED_NO_READ_WRITE', 'app', 't'), lock(12, 'SCHEMA', 'INTENTION_EXCLUSIVE', 'app')];
  const report = explainWait([POLLER, FLUSH, WRITER_QUEUED, LOCK_TABLES_IDLE], locks, 13, OURS, PLUGIN);
  assert.equal(report.holders.length, 1);
  const [holder] = report.holders;
  assert.equal(holder?.thread, 12);
  assert.equal(holder?.user, 'batch');
  assert.equal(holder?.seconds, 300);
  assert.deepEqual(holder?.locks.map((one) => `${one.namespace} ${one.mode} ${one.schema ?? ''}.${one.table ?? ''}`), ['BACKUP BACKUP_DDL .', 'TABLE SHARED_NO_READ_WRITE app.t']);
  const advice = adviseOnLockWait(report, CONTEXT);
  assert.equal(advice?.cause, 'idle_lock_tables');
  assert.equal(advice?.waitingHelps, false);
  const text = adviceText(advice!);
  assert.match(text, /thread 12 \(batch@web1:4242, idle 300 s\) holding LOCK TABLES WRITE on app\.t/);
  assert.match(text, /Thread 12 \(batch@web1:4242, idle 300 s\) must end its LOCK TABLES \(UNLOCK TABLES, or disconnect\) or be killed \(KILL 12\)/);
  assert.match(text, /waiting longer cannot help/);
  assert.doesNotMatch(text, /freeze_timeout/);
});

test('the same holder from performance_schema (pending locks known, LOCK TABLES shown with TRANSACTION duration)', () => {
  const locks = [
    lock(12, 'SCHEMA', 'INTENTION_EXCLUSIVE', 'app'),
    lock(12, 'TABLE', 'SHARED_NO_READ_WRITE', 'app', 't'),
    lock(12, 'BACKUP', 'BACKUP_DDL'),
    lock(13, 'BACKUP', 'BACKUP_FTWRL1', null, null, false),
    lock(15, 'BACKUP', 'BACKUP_DML', null, null, false),
  ];
  const report = explainWait([FLUSH, WRITER_QUEUED, LOCK_TABLES_IDLE], locks, 13, OURS, PERFORMANCE_SCHEMA);
  assert.deepEqual(report.holders.map((one) => one.thread), [12]);
  assert.equal(adviseOnLockWait(report, CONTEXT)?.cause, 'idle_lock_tables');
});

test('an ALTER queued behind an idle open transaction: the chain is followed to the idle session, which must commit or be killed', () => {
  const alter = row(17, 'Query', 2, 'Waiting for table metadata lock', 'ALTER TABLE app.t ADD COLUMN extra INT', 'dba');
  const idle = row(12, 'Sleep', 120, '', null, 'report');
  const plugin = [
    lock(17, 'BACKUP', 'BACKUP_ALTER_COPY'),
    lock(12, 'TABLE', 'SHARED_READ', 'app', 't'),
    lock(17, 'TABLE', 'SHARED_UPGRADABLE', 'app', 't'),
    lock(17, 'SCHEMA', 'INTENTION_EXCLUSIVE', 'app'),
  ];
  const performanceSchema = [
    lock(12, 'TABLE', 'SHARED_READ', 'app', 't'),
    lock(13, 'BACKUP', 'BACKUP_FTWRL1', null, null, false),
    lock(17, 'SCHEMA', 'INTENTION_EXCLUSIVE', 'app'),
    lock(17, 'TABLE', 'SHARED_UPGRADABLE', 'app', 't'),
    lock(17, 'BACKUP', 'BACKUP_DDL'),
    lock(17, 'TABLE', 'EXCLUSIVE', 'app', 't', false),
  ];
  for (const [locks, visibility] of [[plugin, PLUGIN], [performanceSchema, PERFORMANCE_SCHEMA]] as const) {
    const report = explainWait([FLUSH, alter, idle], locks, 13, OURS, visibility);
    assert.deepEqual(report.holders.map((one) => one.thread), [17], visibility.source ?? '');
    assert.deepEqual(report.holders[0]?.waitsFor.map((one) => one.thread), [12]);
    const advice = adviseOnLockWait(report, CONTEXT);
    assert.equal(advice?.cause, 'idle_transaction');
    assert.deepEqual(advice?.culprits.map((one) => one.thread), [12]);
    const text = adviceText(advice!);
    assert.match(text, /thread 17 \(dba@web1:4242, Query 2 s: ALTER TABLE app\.t ADD COLUMN extra INT\).*which waits for thread 12 \(report@web1:4242, idle 120 s\) holding a metadata lock on app\.t/);
    assert.match(text, /[Tt]hread 12 .* must end its open transaction \(COMMIT or ROLLBACK\) or be killed \(KILL 12\)/);
    assert.doesNotMatch(text, /freeze_timeout/);
  }
});

test('without a source of lock holders: nobody is named, the report says so and how to enable it, and does not advise waiting longer', () => {
  const report = explainWait([FLUSH, LOCK_TABLES_IDLE], null, 13, OURS, NONE);
  assert.deepEqual(report.holders, []);
  assert.match(report.unavailable ?? '', /metadata_lock_info plugin is not loaded; to name them: INSTALL SONAME 'metadata_lock_info'/);
  const advice = adviseOnLockWait(report, CONTEXT);
  assert.equal(advice?.cause, 'unknown');
  assert.equal(advice?.waitingHelps, false);
  assert.deepEqual(advice?.culprits, []);
  assert.match(adviceText(advice!), /cannot be named: .*INSTALL SONAME/);
});

test('a table flush waits for running statements, named from the processlist alone; for them waiting longer helps', () => {
  const flushWait = { ...FLUSH, state: 'Waiting for table flush' };
  const report = row(30, 'Query', 40, 'Sending data', 'SELECT SUM(x) FROM app.big', 'bi');
  const queued = row(31, 'Query', 1, 'Waiting for table flush', 'SELECT 1 FROM app.big');
  const explained = explainWait([flushWait, report, queued, LOCK_TABLES_IDLE, POLLER], null, 13, OURS, NONE);
  assert.deepEqual(explained.holders.map((one) => one.thread), [30]);
  assert.equal(explained.unavailable, undefined);
  const advice = adviseOnLockWait(explained, CONTEXT);
  assert.equal(advice?.cause, 'running_statement');
  assert.equal(advice?.waitingHelps, true);
  assert.match(advice?.advice ?? '', /raise freeze_timeout \(now 6 s\).*kill_long_queries = select/);
});

test('another backup holding the global lock is named as such', () => {
  const other = row(40, 'Sleep', 50, '', null, 'backup');
  const report = explainWait([FLUSH, other], [lock(40, 'BACKUP', 'BACKUP_FTWRL2')], 13, OURS, PLUGIN);
  const advice = adviseOnLockWait(report, CONTEXT);
  assert.equal(advice?.cause, 'other_backup');
  assert.match(advice?.advice ?? '', /another backup holds a global lock \(thread 40, backup@web1:4242\)/);
});

test('a waiter that no longer waits gives no advice; our own connections are never named', () => {
  assert.equal(adviseOnLockWait(explainWait([LOCK_TABLES_IDLE], [], 13, OURS, PLUGIN), CONTEXT), undefined);
  const ours = row(20, 'Sleep', 10, '', null, 'snapshot');
  const report = explainWait([FLUSH, ours], [lock(20, 'BACKUP', 'BACKUP_DDL')], 13, OURS, PLUGIN);
  assert.deepEqual(report.holders, []);
});

test('server text in the advice is one line and bounded', () => {
  const weird = { ...LOCK_TABLES_IDLE, user: `a\nb${'x'.repeat(100)}` };
  const locks = [lock(12, 'BACKUP', 'BACKUP_DDL'), lock(12, 'TABLE', 'SHARED_NO_READ_WRITE', 'app', 't')];
  const text = adviceText(adviseOnLockWait(explainWait([FLUSH, weird], locks, 13, OURS, PLUGIN), CONTEXT)!);
  assert.doesNotMatch(text, /\n/);
  assert.match(text, /a bx+…@web1/);
});

test('MySQL 8.0 spells it differently (global read lock, GLOBAL and BACKUP LOCK namespaces): the LOCK TABLES holder and another FTWRL are told apart', () => {
  // performance_schema.metadata_locks as the MySQL 8.0 manual shows LOCK TABLES and FTWRL
  const flush = { ...FLUSH, state: 'Waiting for global read lock' };
  const lockTables = [
    lock(12, 'GLOBAL', 'INTENTION_EXCLUSIVE'),
    lock(12, 'BACKUP LOCK', 'INTENTION_EXCLUSIVE'),
    lock(12, 'SCHEMA', 'INTENTION_EXCLUSIVE', 'app'),
    lock(12, 'TABLE', 'SHARED_NO_READ_WRITE', 'app', 't'),
    lock(13, 'GLOBAL', 'SHARED', null, null, false),
  ];
  const report = explainWait([flush, LOCK_TABLES_IDLE], lockTables, 13, OURS, PERFORMANCE_SCHEMA);
  assert.deepEqual(report.holders.map((one) => one.thread), [12]);
  const advice = adviseOnLockWait(report, CONTEXT);
  assert.equal(advice?.cause, 'idle_lock_tables');
  assert.equal(advice?.culprits[0]?.holds, 'LOCK TABLES WRITE on app.t');

  const otherFlush = row(40, 'Sleep', 50, '', null, 'backup');
  const ftwrl = [lock(40, 'GLOBAL', 'SHARED'), lock(40, 'COMMIT', 'SHARED'), lock(13, 'GLOBAL', 'SHARED', null, null, false)];
  assert.equal(adviseOnLockWait(explainWait([flush, otherFlush], ftwrl, 13, OURS, PERFORMANCE_SCHEMA), CONTEXT)?.cause, 'other_backup');
});
