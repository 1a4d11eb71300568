/**
 * Lock modes MariaDB offers for real (ftwrl, backup_stage, auto), coordinates_file and kill_long_queries,
 * through the built executable.
 */
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Connection, RowDataPacket } from 'mysql2/promise';
import { type HookSetup, lineOf, makeHookSetup, ourHolders, readLog, runHook } from '../support/hook';
import { startMariaDB, type TestServer } from '../support/mariadb';
import { sleep, waitFor } from '../support/wait';

let server: TestServer;

before(async () => {
  server = await startMariaDB();
  await server.query('CREATE TABLE app.m (id INT AUTO_INCREMENT PRIMARY KEY, v INT) ENGINE=MyISAM');
  await server.query('INSERT INTO app.t (v) VALUES (1), (2), (3)');
});

after(async () => {
  await server.remove();
});

function newSetup(context: TestContext, snapshot: Record<string, string>): HookSetup {
  const setup = makeHookSetup(server, { snapshot });
  context.after(async () => {
    await runHook(setup, 'post-thaw-script', ['freezeFail']);
  });
  return setup;
}

/** Runs one statement with lock_wait_timeout = 1 on `connection`: 'ok' or the error code. */
async function attempt(connection: Connection, sql: string): Promise<string> {
  await connection.query('SET SESSION lock_wait_timeout = 1');
  return connection.query(sql).then(
    () => 'ok',
    (error: { code?: string }) => String(error.code),
  );
}

async function writesFlow(): Promise<void> {
  const connection = await server.connect();
  try {
    assert.equal(await attempt(connection, 'INSERT INTO app.t (v) VALUES (0)'), 'ok');
    assert.equal(await attempt(connection, 'INSERT INTO app.m (v) VALUES (0)'), 'ok');
  } finally {
    await connection.end();
  }
  assert.deepEqual(ourHolders(), []);
}

test('backup_stage: commits, MyISAM writes and DDL wait; a running InnoDB transaction goes on until COMMIT', async (context) => {
  const setup = newSetup(context, { lock_mode: 'backup_stage' });
  const frozen = await runHook(setup, 'pre-freeze-script', ['freeze']);
  assert.equal(frozen.code, 0, frozen.stderr);
  assert.equal(lineOf(readLog(setup), 'lock.acquired')['lockMode'], 'backup_stage');
  const writer = await server.connect();
  try {
    assert.equal(await attempt(writer, 'INSERT INTO app.t (v) VALUES (10)'), 'ER_LOCK_WAIT_TIMEOUT', 'an autocommit InnoDB write waits');
    assert.equal(await attempt(writer, 'INSERT INTO app.m (v) VALUES (10)'), 'ER_LOCK_WAIT_TIMEOUT', 'a MyISAM write waits');
    assert.equal(await attempt(writer, 'CREATE TABLE app.ddl (i INT)'), 'ER_LOCK_WAIT_TIMEOUT', 'DDL waits');
    await writer.query('BEGIN');
    assert.equal(await attempt(writer, 'INSERT INTO app.t (v) VALUES (11)'), 'ok', 'a transaction keeps writing');
    assert.equal(await attempt(writer, 'COMMIT'), 'ER_LOCK_WAIT_TIMEOUT', 'but cannot commit');
    await writer.query('ROLLBACK');
  } finally {
    await writer.end();
  }
  const [status] = await server.query<RowDataPacket[]>('SHOW MASTER STATUS');
  const recorded = lineOf(readLog(setup), 'lock.acquired')['coordinates'] as { binlog: { file: string; position: number } };
  assert.deepEqual(recorded.binlog, { file: status?.['File'], position: Number(status?.['Position']) });
  const thawed = await runHook(setup, 'post-thaw-script', ['thaw']);
  assert.equal(thawed.code, 0, thawed.stderr);
  await writesFlow();
});

test('auto on MariaDB 10.4+ takes backup_stage and says why', async (context) => {
  const setup = newSetup(context, { lock_mode: 'auto' });
  assert.equal((await runHook(setup, 'pre-freeze-script', ['freeze'])).code, 0);
  const mode = lineOf(readLog(setup), 'lock.mode');
  assert.equal(mode['mode'], 'backup_stage');
  assert.match(String(mode['reason']), /BLOCK_COMMIT/);
  assert.equal((await runHook(setup, 'post-thaw-script', ['thaw'])).code, 0);
  await writesFlow();
});

test('a mode this server does not offer is a configuration error that names the fix', async (context) => {
  const setup = newSetup(context, { lock_mode: 'instance' });
  const frozen = await runHook(setup, 'pre-freeze-script', ['freeze']);
  assert.equal(frozen.code, 2);
  assert.match(frozen.stderr, /lock_mode = instance cannot be used on this server: LOCK INSTANCE FOR BACKUP needs MySQL 8\.0 or later.*Set lock_mode = auto or ftwrl/);
  await writesFlow();
});

test('coordinates_file is written and synced before freeze returns, with the statements that seed a replica', async (context) => {
  const setup = newSetup(context, {});
  const file = path.join(setup.dir, 'coordinates.json');
  fs.appendFileSync(setup.configFile, `coordinates_file = ${file}\n`);
  assert.equal((await runHook(setup, 'pre-freeze-script', ['freeze'])).code, 0);
  const record = JSON.parse(fs.readFileSync(file, 'utf8')) as { lockMode: string; exact: boolean; coordinates: { binlog: { file: string; position: number }; gtid: string }; seedReplica: string[] };
  const [status] = await server.query<RowDataPacket[]>('SHOW MASTER STATUS');
  assert.deepEqual(record.coordinates.binlog, { file: status?.['File'], position: Number(status?.['Position']) });
  assert.equal(record.lockMode, 'ftwrl');
  assert.equal(record.exact, true);
  assert.match(record.seedReplica[0] ?? '', /SET GLOBAL gtid_slave_pos = '0-1-\d+'/);
  assert.equal(fs.statSync(file).mode & 0o777, 0o640);
  assert.equal((await runHook(setup, 'post-thaw-script', ['thaw'])).code, 0);
});

test('a coordinates_file that cannot be written fails the freeze and leaves nothing held', async (context) => {
  const setup = newSetup(context, {});
  fs.appendFileSync(setup.configFile, `coordinates_file = ${path.join(setup.dir, 'missing-dir', 'c.json')}\n`);
  const frozen = await runHook(setup, 'pre-freeze-script', ['freeze']);
  assert.equal(frozen.code, 1);
  assert.match(frozen.stderr, /cannot write coordinates_file/);
  await waitFor('the unacknowledged holder to release and exit', () => (ourHolders().length === 0 ? true : undefined), { timeoutMs: 1000 }).catch(() => undefined);
  await writesFlow();
});

test('kill_long_queries = all: a long write that holds up the lock is killed (and logged) instead of waited for', async (context) => {
  const setup = newSetup(context, { lock_wait_timeout: '3', kill_long_queries: 'all', kill_long_queries_after: '0.5', long_query_time: '0.2' });
  const refused = await runHook(setup, 'pre-freeze-script', ['freeze']);
  assert.equal(refused.code, 1, 'without the privilege to kill, freeze says which GRANT it needs');
  assert.match(refused.stderr, /GRANT CONNECTION ADMIN ON \*\.\* TO 'snapshot'@'localhost';/);
  await server.query("GRANT CONNECTION ADMIN ON *.* TO 'snapshot'@'localhost'");
  context.after(() => server.query("REVOKE CONNECTION ADMIN ON *.* FROM 'snapshot'@'localhost'"));
  const victim = await server.connect();
  const [[{ id }]] = (await victim.query('SELECT CONNECTION_ID() AS id')) as unknown as [[{ id: number }]];
  const long = victim.query('UPDATE app.t SET v = v + SLEEP(10) WHERE id = 1').then(
    () => 'finished',
    (error: { errno?: number }) => `error ${error.errno}`,
  );
  await sleep(500);
  const started = Date.now();
  const frozen = await runHook(setup, 'pre-freeze-script', ['freeze']);
  assert.equal(frozen.code, 0, frozen.stderr);
  assert.ok(Date.now() - started < 3000, 'locked without waiting for the 10 s statement');
  assert.equal(await long, 'error 1317', 'the statement was interrupted (ER_QUERY_INTERRUPTED)');
  const killed = lineOf(readLog(setup), 'query.killed');
  assert.equal(killed['thread'], id);
  assert.match(String(killed['statement']), /UPDATE app\.t SET v = v \+ SLEEP\(10\)/);
  assert.equal(lineOf(readLog(setup), 'lock.acquired')['attempts'], 1);
  assert.equal((await runHook(setup, 'post-thaw-script', ['thaw'])).code, 0);
  await victim.end();
  await writesFlow();
});

test('doctor reports what a freeze needs, with the GRANT for what is missing, and exits non-zero only then', async (context) => {
  const setup = newSetup(context, {});
  const healthy = await runHook(setup, 'vmware-mysql-snapshot', ['doctor']);
  assert.equal(healthy.code, 0, healthy.stdout + healthy.stderr);
  assert.match(healthy.stdout, /^ok {4}privileges +all that ftwrl needs$/m);
  assert.match(healthy.stdout, /^ok {4}binary log/m);
  assert.match(healthy.stdout, /a freeze would work/);
  assert.match(healthy.stdout, new RegExp(`^ok {4}release +when the filesystem of ${server.datadir}/? thaws after the snapshot$`, 'm'));

  const json = await runHook(setup, 'vmware-mysql-snapshot', ['doctor', '--json']);
  const checks = JSON.parse(json.stdout) as Array<{ name: string; verdict: string; detail: string }>;
  assert.ok(checks.some((check) => check.name === 'connection' && check.verdict === 'ok'));
  // The program and its libraries come from the executable's assets, compiled at build time: V8 took
  // every code cache.
  const executable = checks.find((check) => check.name === 'executable');
  assert.equal(executable?.verdict, 'ok', JSON.stringify(executable));
  assert.match(String(executable?.detail), /^program and libraries loaded with their code caches: program [\d.]+ ms, .*mysql2\/promise [\d.]+ ms/);

  await server.query("CREATE USER 'doc'@'localhost' IDENTIFIED BY 'doc-pw'");
  await server.query("GRANT PROCESS ON *.* TO 'doc'@'localhost'");
  context.after(() => server.query("DROP USER 'doc'@'localhost'"));
  fs.writeFileSync(setup.configFile, fs.readFileSync(setup.configFile, 'utf8').replace(/^user = .*$/m, 'user = doc').replace(/^password = .*$/m, 'password = doc-pw'));
  const weak = await runHook(setup, 'vmware-mysql-snapshot', ['doctor']);
  assert.equal(weak.code, 1);
  assert.match(weak.stdout, /^FAIL {2}privileges +missing RELOAD, BINLOG MONITOR$/m);
  assert.match(weak.stdout, /fix: GRANT RELOAD, BINLOG MONITOR ON \*\.\* TO 'doc'@'localhost';/);

  fs.appendFileSync(setup.configFile, 'lock_mode = instance\n');
  const wrongMode = await runHook(setup, 'vmware-mysql-snapshot', ['doctor']);
  assert.equal(wrongMode.code, 1);
  assert.match(wrongMode.stdout, /^FAIL {2}lock mode +instance: LOCK INSTANCE FOR BACKUP needs MySQL 8\.0 or later/m);
});
