/**
 * A freeze whose lock is held up, end to end: the BUILT executable against a real throwaway MariaDB, with
 * an idle session inside LOCK TABLES (without and with the metadata_lock_info plugin) and an ALTER queued
 * behind an idle open transaction. Small lock_wait_timeout and freeze_timeout keep it fast. Each case
 * checks what the admin sees: the error (who, and advice that can work: never "raise freeze_timeout"
 * where waiting cannot help), the lock.timeout and freeze.failed events, status while the freeze waits,
 * the history, doctor, and lock-test; and that nothing is left behind.
 */
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Connection, RowDataPacket } from 'mysql2/promise';
import { closedWithin, lineOf, makeHookSetup, ourHolders, readLog, runHook, spawnCollected, type HookSetup } from '../support/hook';
import { startMariaDB, tryInsert, type TestServer } from '../support/mariadb';
import { waitFor } from '../support/wait';

const SNAPSHOT = { freeze_timeout: '5', lock_wait_timeout: '2', long_query_time: '1' };
let server: TestServer;

before(async () => {
  server = await startMariaDB();
});

after(async () => {
  await server?.remove();
});

function newSetup(context: TestContext, snapshot: Record<string, string> = {}): HookSetup {
  const setup = makeHookSetup(server, { snapshot: { ...SNAPSHOT, ...snapshot } });
  context.after(() => fs.rmSync(setup.dir, { recursive: true, force: true }));
  return setup;
}

/** An admin session that takes LOCK TABLES app.t WRITE and then sits idle. */
async function idleLockTablesHolder(context: TestContext): Promise<Connection> {
  const holder = await server.connect();
  context.after(() => holder.destroy());
  await holder.query('LOCK TABLES app.t WRITE');
  return holder;
}

async function withPlugin(context: TestContext): Promise<void> {
  await server.query("INSTALL SONAME 'metadata_lock_info'");
  context.after(() => server.query("UNINSTALL SONAME 'metadata_lock_info'"));
}

/** After the culprit is gone: writes flow and no holder of ours is left. */
async function assertNothingLeft(): Promise<void> {
  assert.equal(await tryInsert(server), 'ok');
  await waitFor('our holders to exit', () => (ourHolders().length === 0 ? true : undefined), { timeoutMs: 5000, describe: () => ourHolders().join(' ') });
}

test('an idle LOCK TABLES holder without a source of lock holders: freeze says it cannot name it and how to make it nameable, and does not advise waiting longer', async (context) => {
  const setup = newSetup(context);
  const doctor = await runHook(setup, 'vmware-mysql-snapshot', ['doctor']);
  assert.match(doctor.stdout, /^WARN {2}lock holders +the holders of a lock cannot be named: the metadata_lock_info plugin is not loaded; performance_schema is off/m);
  assert.match(doctor.stdout, /fix: INSTALL SONAME 'metadata_lock_info'/);

  const holder = await idleLockTablesHolder(context);
  const freeze = await runHook(setup, 'pre-freeze-script', ['freeze'], { timeoutMs: 30_000 });
  assert.equal(freeze.code, 1, freeze.stderr);
  assert.match(freeze.stderr, /no lock within freeze_timeout \(5 s\) after \d+ attempt\(s\); our lock statement \(thread \d+\) waited [\d.]+ s \(Waiting for backup lock\); the sessions holding it cannot be named: .*INSTALL SONAME 'metadata_lock_info'/);
  assert.doesNotMatch(freeze.stderr, /Raise freeze_timeout/);
  const log = readLog(setup);
  const timeout = lineOf(log, 'lock.timeout');
  assert.equal(timeout['cause'], 'unknown');
  assert.equal(timeout['source'], null);
  assert.match(String(timeout['unavailable']), /INSTALL SONAME/);
  assert.equal(lineOf(log, 'freeze.failed')['cause'], 'unknown');
  await holder.query('UNLOCK TABLES');
  await assertNothingLeft();
});

test('an idle LOCK TABLES holder with the metadata_lock_info plugin: named in status while freeze waits, in the error, the events, the history and lock-test, with advice to end it or kill it', async (context) => {
  await withPlugin(context);
  const setup = newSetup(context);
  const doctor = await runHook(setup, 'vmware-mysql-snapshot', ['doctor']);
  assert.match(doctor.stdout, /^ok {4}lock holders +named when a lock waits, from information_schema\.METADATA_LOCK_INFO/m);

  const holder = await idleLockTablesHolder(context);
  const id = holder.threadId;
  const named = new RegExp(`thread ${id} \\(root@localhost, idle \\d+ s\\) holding LOCK TABLES WRITE on app\\.t`);
  const freeze = spawnCollected(setup, 'pre-freeze-script', ['freeze']);
  context.after(() => freeze.child.kill('SIGKILL'));
  const status = await waitFor('status to show who holds up the lock', async () => {
    const run = await runHook(setup, 'vmware-mysql-snapshot', ['status']);
    return /held up:/.test(run.stdout) ? run.stdout : undefined;
  }, { timeoutMs: 10_000, pollMs: 200 });
  assert.match(status, named);
  assert.match(status, new RegExp(`advice: thread ${id} .* must end its LOCK TABLES \\(UNLOCK TABLES, or disconnect\\) or be killed \\(KILL ${id}\\); waiting longer cannot help`));

  const { code } = await closedWithin(freeze, 20_000);
  assert.equal(code, 1);
  const error = freeze.stderr();
  assert.match(error, named);
  assert.match(error, new RegExp(`must end its LOCK TABLES .* or be killed \\(KILL ${id}\\); waiting longer cannot help`));
  assert.doesNotMatch(error, /raise freeze_timeout/i);

  const log = readLog(setup);
  const timeout = lineOf(log, 'lock.timeout');
  assert.equal(timeout['cause'], 'idle_lock_tables');
  assert.equal(timeout['source'], 'metadata_lock_info');
  assert.equal(timeout['heldUpBy'][0].thread, id);
  assert.equal(timeout['heldUpBy'][0].user, 'root');
  assert.equal(timeout['heldUpBy'][0].host, 'localhost');
  assert.equal(timeout['heldUpBy'][0].holds, 'LOCK TABLES WRITE on app.t');
  assert.match(String(timeout['msg']), named);
  const failed = lineOf(log, 'freeze.failed');
  assert.equal(failed['cause'], 'idle_lock_tables');
  assert.equal(failed['heldUpBy'][0].thread, id);

  const history = JSON.parse(fs.readFileSync(path.join(setup.dir, 'history.json'), 'utf8')) as { runs: Array<Record<string, any>> };
  const last = history.runs.at(-1);
  assert.equal(last?.['lockWait']?.cause, 'idle_lock_tables');
  assert.equal(last?.['lockWait']?.culprits[0].thread, id);

  const lockTest = await runHook(setup, 'vmware-mysql-snapshot', ['lock-test', '--hold', '1'], { timeoutMs: 30_000 });
  assert.equal(lockTest.code, 1, lockTest.stdout + lockTest.stderr);
  assert.match(lockTest.stdout, /^held up by: +1 session\(s\)$/m);
  assert.match(lockTest.stdout, new RegExp(`^ +thread ${id} \\(root@localhost, idle lock tables, \\d+ s\\): LOCK TABLES WRITE on app\\.t$`, 'm'));
  assert.match(lockTest.stdout, new RegExp(`^advice: +thread ${id} .* must end its LOCK TABLES`, 'm'));

  await holder.query('UNLOCK TABLES');
  await assertNothingLeft();
});

test('an ALTER queued behind an idle open transaction: freeze names the idle session behind the ALTER, and says it must commit or be killed', async (context) => {
  await withPlugin(context);
  const idle = await server.connect();
  context.after(() => idle.destroy());
  await idle.query('BEGIN');
  await idle.query('SELECT * FROM app.t LIMIT 1');
  const alter = await server.connect();
  context.after(() => alter.destroy());
  const altering = alter.query('ALTER TABLE app.t ADD COLUMN e2e_extra INT').catch(() => undefined);
  await waitFor('the ALTER to wait', async () => {
    const [rows] = await idle.query<RowDataPacket[]>('SELECT STATE AS state FROM information_schema.PROCESSLIST WHERE ID = ?', [alter.threadId]);
    return rows[0]?.['state'] === 'Waiting for table metadata lock' ? true : undefined;
  });
  const idleNamed = `thread ${idle.threadId} \\(root@localhost, idle \\d+ s\\) holding a metadata lock on app\\.t`;
  const advice = new RegExp(`thread ${idle.threadId} .* must end its open transaction \\(COMMIT or ROLLBACK\\) or be killed \\(KILL ${idle.threadId}\\); waiting longer cannot help`, 'i');
  // long_query_time 10: the ALTER does not stop the attempts, whose FLUSH waits behind it (lock.timeout);
  // long_query_time 1: freeze waits for the ALTER as a running statement, and looks up what it waits for.
  for (const longQueryTime of ['10', '1']) {
    const setup = newSetup(context, { long_query_time: longQueryTime });
    const freeze = await runHook(setup, 'pre-freeze-script', ['freeze'], { timeoutMs: 30_000 });
    assert.equal(freeze.code, 1, freeze.stderr);
    if (longQueryTime === '10') {
      assert.match(freeze.stderr, new RegExp(`held up by thread ${alter.threadId} \\(root@localhost, Query \\d+ s: ALTER TABLE app\\.t ADD COLUMN e2e_extra INT\\) holding the backup lock \\(BACKUP_ALTER_COPY\\), which waits for ${idleNamed}`));
      const timeout = lineOf(readLog(setup), 'lock.timeout');
      assert.equal(timeout['cause'], 'idle_transaction');
      assert.equal(timeout['holders'][0].thread, alter.threadId);
      assert.equal(timeout['holders'][0].waitsFor[0].thread, idle.threadId);
    } else {
      assert.match(freeze.stderr, new RegExp(`still running: thread ${alter.threadId} .*ALTER TABLE app\\.t ADD COLUMN e2e_extra INT; thread ${alter.threadId} waited [\\d.]+ s \\(Waiting for table metadata lock\\), held up by ${idleNamed}`));
      const heldUp = readLog(setup).filter((line) => line['event'] === 'window.held_up');
      assert.equal(heldUp.length, 1, `window.held_up is logged once, not once per lookup: ${JSON.stringify(heldUp)}`);
      assert.equal(heldUp[0]?.['heldUpBy'][0].thread, idle.threadId);
    }
    assert.match(freeze.stderr, advice);
    assert.doesNotMatch(freeze.stderr, /raise freeze_timeout/i);
    const failed = lineOf(readLog(setup), 'freeze.failed');
    assert.equal(failed['cause'], 'idle_transaction');
    assert.equal(failed['heldUpBy'][0].thread, idle.threadId);
  }

  await idle.query('ROLLBACK');
  await altering;
  await server.query('ALTER TABLE app.t DROP COLUMN e2e_extra');
  await assertNothingLeft();
});
