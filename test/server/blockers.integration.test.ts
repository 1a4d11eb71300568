/**
 * Naming who holds up a lock, against real MariaDB servers (src/server/blockers.ts and the advice of
 * src/snapshot/lockadvice.ts): an idle session inside LOCK TABLES, and an ALTER queued behind an idle
 * open transaction, while a FLUSH TABLES WITH READ LOCK waits behind them. Without a source of lock
 * holders the report says so and how to enable one; with the metadata_lock_info plugin (INSTALL SONAME)
 * and with performance_schema (a server started with it and the mdl instrument on) they are named.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Connection, RowDataPacket } from 'mysql2/promise';
import { lockVisibility, lookUpLockWait, type LockWaitReport } from '../../src/server/blockers';
import { openSession, type Session } from '../../src/server/session';
import { adviseOnLockWait } from '../../src/snapshot/lockadvice';
import { startMariaDB, TEST_USER, type TestServer } from '../support/mariadb';
import { waitFor } from '../support/wait';

const CONTEXT = { freezeTimeout: 6, killLongQueries: 'off' as const };
let plain: TestServer;
let withPerformanceSchema: TestServer;

before(async () => {
  [plain, withPerformanceSchema] = await Promise.all([
    startMariaDB(),
    startMariaDB({ extraArgs: ['--performance-schema=ON', '--performance-schema-instrument=wait/lock/metadata/sql/mdl=ON'] }),
  ]);
});

after(async () => {
  await Promise.all([plain?.remove(), withPerformanceSchema?.remove()]);
});

function observe(server: TestServer): Promise<Session> {
  return openSession({ user: TEST_USER.name, password: TEST_USER.password, socket: server.socket });
}

interface Scene {
  report: LockWaitReport;
  /** the thread ids of the connections the scene opened, in order */
  ids: number[];
  flushId: number;
}

/**
 * `setUp` opens connections (admin) and puts them in place; then a FLUSH TABLES WITH READ LOCK waits
 * behind them (lock_wait_timeout 20 s) and the report is taken, as the hook's user, while it waits.
 */
async function whileFlushWaits(server: TestServer, setUp: (open: () => Promise<Connection>) => Promise<void>): Promise<Scene> {
  const connections: Connection[] = [];
  const open = async (): Promise<Connection> => {
    const connection = await server.connect();
    connections.push(connection);
    return connection;
  };
  const observer = await observe(server);
  try {
    await setUp(open);
    const flush = await open();
    await flush.query('SET SESSION lock_wait_timeout = 20');
    const flushing = flush.query('FLUSH TABLES WITH READ LOCK').catch(() => undefined);
    const flushId = flush.threadId ?? -1;
    const report = await waitFor('the FLUSH to wait', async () => {
      const found = await lookUpLockWait(observer, flushId, [observer.server.connectionId]);
      return found.waiter !== null && /^Waiting for/.test(found.waiter.state ?? '') ? found : undefined;
    });
    for (const connection of connections) connection.destroy();
    await flushing;
    return { report, ids: connections.map((connection) => connection.threadId ?? -1), flushId };
  } finally {
    for (const connection of connections) connection.destroy();
    await observer.close();
  }
}

async function idleLockTables(open: () => Promise<Connection>): Promise<void> {
  const holder = await open();
  await holder.query('LOCK TABLES app.t WRITE');
}

async function alterBehindOpenTransaction(open: () => Promise<Connection>): Promise<void> {
  const idle = await open();
  await idle.query('BEGIN');
  await idle.query('SELECT * FROM app.t LIMIT 1');
  const alter = await open();
  void alter.query('ALTER TABLE app.t ADD COLUMN blocked_extra INT').catch(() => undefined);
  const alterId = alter.threadId;
  // Asked on the idle connection itself: a look at I_S.PROCESSLIST takes no lock on app.t.
  await waitFor('the ALTER to wait', async () => ((await alterWaits(idle, alterId)) ? true : undefined));
}

async function alterWaits(connection: Connection, id: number | undefined): Promise<boolean> {
  const [rows] = await connection.query<RowDataPacket[]>('SELECT STATE AS state FROM information_schema.PROCESSLIST WHERE ID = ?', [id]);
  return rows[0]?.['state'] === 'Waiting for table metadata lock';
}

function holderIds(report: LockWaitReport): number[] {
  return report.holders.map((holder) => holder.thread);
}

test('without the plugin or performance_schema: nobody is named, and the report says how to make them nameable', async () => {
  const observer = await observe(plain);
  try {
    const visibility = await lockVisibility(observer);
    assert.equal(visibility.source, null);
    assert.match(visibility.fix ?? '', /INSTALL SONAME 'metadata_lock_info'/);
  } finally {
    await observer.close();
  }
  const { report, flushId } = await whileFlushWaits(plain, idleLockTables);
  assert.equal(report.waiter?.thread, flushId);
  assert.equal(report.waiter?.state, 'Waiting for backup lock');
  assert.deepEqual(report.holders, []);
  assert.match(report.unavailable ?? '', /metadata_lock_info plugin is not loaded.*INSTALL SONAME 'metadata_lock_info'/);
  const advice = adviseOnLockWait(report, CONTEXT);
  assert.equal(advice?.cause, 'unknown');
  assert.doesNotMatch(advice?.advice ?? '', /raise freeze_timeout/);
});

test('with the metadata_lock_info plugin: the idle LOCK TABLES holder and the idle transaction behind a queued ALTER are named', async () => {
  await plain.query("INSTALL SONAME 'metadata_lock_info'");
  try {
    const lockTables = await whileFlushWaits(plain, idleLockTables);
    assert.equal(lockTables.report.source, 'metadata_lock_info');
    assert.deepEqual(holderIds(lockTables.report), [lockTables.ids[0]]);
    const holder = lockTables.report.holders[0];
    assert.equal(holder?.command, 'Sleep');
    assert.equal(holder?.host, 'localhost');
    assert.ok(holder?.locks.some((lock) => lock.namespace === 'TABLE' && lock.mode === 'SHARED_NO_READ_WRITE' && lock.schema === 'app' && lock.table === 't'));
    const advice = adviseOnLockWait(lockTables.report, CONTEXT);
    assert.equal(advice?.cause, 'idle_lock_tables');
    assert.match(advice?.advice ?? '', new RegExp(`thread ${lockTables.ids[0]} .* must end its LOCK TABLES .*KILL ${lockTables.ids[0]}`));

    const alter = await whileFlushWaits(plain, alterBehindOpenTransaction);
    const [idleId, alterId] = alter.ids;
    assert.deepEqual(holderIds(alter.report), [alterId]);
    assert.deepEqual(alter.report.holders[0]?.waitsFor.map((one) => one.thread), [idleId]);
    const alterAdvice = adviseOnLockWait(alter.report, CONTEXT);
    assert.equal(alterAdvice?.cause, 'idle_transaction');
    assert.deepEqual(alterAdvice?.culprits.map((one) => one.thread), [idleId]);
  } finally {
    await plain.query("UNINSTALL SONAME 'metadata_lock_info'");
  }
});

test('with performance_schema: named once the account may read it, and until then the GRANT is given', async () => {
  const before = await observe(withPerformanceSchema);
  try {
    const visibility = await lockVisibility(before);
    assert.equal(visibility.source, null);
    assert.match(visibility.fix ?? '', /GRANT SELECT ON performance_schema\.\* TO /);
  } finally {
    await before.close();
  }
  await withPerformanceSchema.query('GRANT SELECT ON performance_schema.* TO ?@?', [TEST_USER.name, 'localhost']);
  const lockTables = await whileFlushWaits(withPerformanceSchema, idleLockTables);
  assert.equal(lockTables.report.source, 'performance_schema');
  assert.deepEqual(holderIds(lockTables.report), [lockTables.ids[0]]);
  assert.equal(adviseOnLockWait(lockTables.report, CONTEXT)?.cause, 'idle_lock_tables');

  const alter = await whileFlushWaits(withPerformanceSchema, alterBehindOpenTransaction);
  const [idleId, alterId] = alter.ids;
  assert.deepEqual(holderIds(alter.report), [alterId]);
  assert.deepEqual(alter.report.holders[0]?.waitsFor.map((one) => one.thread), [idleId]);
  assert.equal(adviseOnLockWait(alter.report, CONTEXT)?.cause, 'idle_transaction');
});
