/**
 * The freeze / hold / thaw cycle, end to end: the BUILT executable under its installed names against a
 * real throwaway MariaDB.
 */
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Connection, RowDataPacket } from 'mysql2/promise';
import { events, type HookSetup, lineOf, makeHookSetup, ourHolders, readLog, runHook, spawnHook } from '../support/hook';
import { startMariaDB, TEST_USER, type TestServer, tryInsert } from '../support/mariadb';
import { sleep } from '../support/wait';

let server: TestServer;

before(async () => {
  server = await startMariaDB();
  await server.query('CREATE TABLE app.other (id INT AUTO_INCREMENT PRIMARY KEY, at BIGINT) ENGINE=InnoDB');
  await server.query('INSERT INTO app.t (v) VALUES (1), (2), (3)');
});

after(async () => {
  await server.remove();
});

const holderProcesses = ourHolders;

async function snapshotUserConnections(): Promise<RowDataPacket[]> {
  return server.query<RowDataPacket[]>("SELECT ID, COMMAND, INFO FROM information_schema.PROCESSLIST WHERE USER = 'snapshot'");
}

async function assertNothingLeft(): Promise<void> {
  assert.equal(await tryInsert(server), 'ok', 'writes flow');
  assert.deepEqual(holderProcesses(), [], 'no lock holder process is left');
  // The holder closes its connection just after answering; give the server a moment to drop it.
  for (let i = 0; i < 50 && (await snapshotUserConnections()).length > 0; i += 1) await sleep(20);
  assert.deepEqual(await snapshotUserConnections(), [], 'no connection of ours is left on the server');
}

/** A hook setup whose lock, if a failing test leaves one, is released when the test ends. */
function newSetup(context: TestContext, options: Parameters<typeof makeHookSetup>[1] = {}): HookSetup {
  const setup = makeHookSetup(server, options);
  context.after(async () => {
    await runHook(setup, 'post-thaw-script', ['freezeFail']);
  });
  return setup;
}

test('freeze holds the lock, records the coordinates, and thaw releases it', async (context) => {
  const setup = newSetup(context);
  const frozen = await runHook(setup, 'pre-freeze-script', ['freeze']);
  assert.equal(frozen.code, 0, frozen.stderr);
  assert.match(frozen.stdout, /^locked: binlog binlog\.\d+:\d+/);

  assert.equal(await tryInsert(server), 'ER_LOCK_WAIT_TIMEOUT', 'a write is blocked while frozen');
  const [status] = await server.query<RowDataPacket[]>('SHOW MASTER STATUS');
  const acquired = lineOf(readLog(setup), 'lock.acquired') as { coordinates: { binlog: { file: string; position: number } } };
  assert.deepEqual(acquired.coordinates.binlog, { file: status?.['File'], position: Number(status?.['Position']) });

  const statusOutput = await runHook(setup, 'vmware-mysql-snapshot', ['status', '--json']);
  const report = JSON.parse(statusOutput.stdout) as { phase: string; current: { holderAlive: boolean } };
  assert.equal(report.phase, 'holding');
  assert.equal(report.current.holderAlive, true);

  const thawed = await runHook(setup, 'post-thaw-script', ['thaw']);
  assert.equal(thawed.code, 0, thawed.stderr);
  assert.match(thawed.stdout, /^released after \d+ ms/);
  await assertNothingLeft();
  // thaw asks for the release before it loads its logger, so lock.released may precede thaw.start.
  const cycle = events(readLog(setup)).filter((event) => event.startsWith('lock.') || event.startsWith('thaw.'));
  assert.equal(cycle[0], 'lock.acquired');
  assert.deepEqual([...cycle.slice(1, 3)].sort(), ['lock.released', 'thaw.start']);
  assert.equal(cycle[3], 'thaw.released');
  assert.equal(cycle.length, 4);
  // The holder saw thaw's exec and released before thaw's runtime was up (test/e2e/thawstart.test.ts).
  assert.ok(['thaw_started', 'requested'].includes(String(lineOf(readLog(setup), 'lock.released')['reason'])));
  for (const line of readLog(setup)) {
    assert.equal(typeof line['op'], 'string');
    assert.equal(typeof line['pid'], 'number');
  }

  const again = await runHook(setup, 'post-thaw-script', ['thaw']);
  assert.equal(again.code, 0, 'thaw twice is fine');
  assert.equal(events(readLog(setup)).at(-1), 'thaw.nothing_held');
});

test('the freeze pipe reaches EOF while the holder lives on, and the holder has no password or NODE_OPTIONS', async (context) => {
  const setup = newSetup(context);
  // runHook resolves on 'close': both pipes at EOF. A holder that inherited them would keep them open.
  const frozen = await runHook(setup, 'pre-freeze-script', ['freeze', 'scriptArg'], {
    env: { NODE_OPTIONS: '--require /nonexistent/inject.js', MYSQL_PWD: TEST_USER.password },
    timeoutMs: 15_000,
  });
  assert.equal(frozen.code, 0, frozen.stderr);
  const [holder] = holderProcesses();
  assert.ok(holder !== undefined, 'the holder outlives freeze');
  const environment = fs.readFileSync(`/proc/${holder}/environ`, 'latin1');
  const commandLine = fs.readFileSync(`/proc/${holder}/cmdline`, 'latin1');
  for (const text of [environment, commandLine]) {
    assert.ok(!text.includes(TEST_USER.password), 'no password in the holder environment or argv');
    assert.ok(!text.includes('NODE_OPTIONS'), 'NODE_OPTIONS is not passed on');
  }
  for (const fd of [0, 1, 2]) {
    assert.equal(fs.readlinkSync(`/proc/${holder}/fd/${fd}`), '/dev/null', `the holder's fd ${fd} is not inherited`);
  }
  assert.equal(fs.readlinkSync(`/proc/${holder}/cwd`), fs.realpathSync(setup.runDir), 'the holder works in its run_dir');
  assert.ok(!fs.readFileSync(setup.logFile, 'utf8').includes(TEST_USER.password), 'no password in the log');

  const thawed = await runHook(setup, 'post-thaw-script', ['thaw', 'scriptArg']);
  assert.equal(thawed.code, 0, thawed.stderr);
  await assertNothingLeft();
});

/** Sockets listening on TCP port 9229 (the Node inspector's), from /proc/net/tcp and tcp6. */
function inspectorListeners(): string[] {
  const lines = ['/proc/net/tcp', '/proc/net/tcp6'].flatMap((file) => fs.readFileSync(file, 'utf8').split('\n').slice(1));
  // fields: sl, local_address (ADDRESS:PORT in hex, 9229 = 240D), rem_address, st (0A is LISTEN)
  return lines.filter((line) => {
    const [, local, , state] = line.trim().split(/\s+/);
    return local?.endsWith(':240D') === true && state === '0A';
  });
}

test('a SIGUSR1 to the holder opens no debugger, and the lock stays held', async (context) => {
  const setup = newSetup(context);
  assert.deepEqual(inspectorListeners(), [], 'nothing listens on 9229 before');
  const frozen = await runHook(setup, 'pre-freeze-script', ['freeze']);
  assert.equal(frozen.code, 0, frozen.stderr);
  const [holder] = holderProcesses();
  assert.ok(holder !== undefined);
  // Node's default: start the inspector on 127.0.0.1:9229, where any local user could run code as root.
  process.kill(holder, 'SIGUSR1');
  assert.equal(await tryInsert(server), 'ER_LOCK_WAIT_TIMEOUT', 'still locked (and a second for an inspector to show up)');
  assert.deepEqual(inspectorListeners(), [], 'no inspector was started');
  assert.deepEqual(holderProcesses(), [holder], 'the holder carries on');
  const thawed = await runHook(setup, 'post-thaw-script', ['thaw']);
  assert.equal(thawed.code, 0, thawed.stderr);
  await assertNothingLeft();
});

for (const [name, freezeArgs, thawArgs] of [
  ['50-mysql', ['freeze'], ['thaw']],
  ['mysql', ['FREEZE', 'extra'], ['Thaw']],
  ['vmware-mysql-snapshot', ['freeze'], ['thaw']],
] as const) {
  test(`run as ${name}: the first word decides`, async (context) => {
    const setup = newSetup(context);
    const frozen = await runHook(setup, name, [...freezeArgs]);
    assert.equal(frozen.code, 0, frozen.stderr);
    assert.equal(await tryInsert(server), 'ER_LOCK_WAIT_TIMEOUT');
    const thawed = await runHook(setup, name, [...thawArgs]);
    assert.equal(thawed.code, 0, thawed.stderr);
    await assertNothingLeft();
  });
}

test('a second freeze while the lock is held fails and leaves the first lock alone', async (context) => {
  const setup = newSetup(context);
  assert.equal((await runHook(setup, 'pre-freeze-script', ['freeze'])).code, 0);
  const second = await runHook(setup, 'pre-freeze-script', ['freeze']);
  assert.equal(second.code, 1);
  assert.match(second.stderr, /already held by holder pid \d+.*post-thaw-script thaw/);
  assert.equal(await tryInsert(server), 'ER_LOCK_WAIT_TIMEOUT', 'the first lock is still held');
  assert.equal((await runHook(setup, 'post-thaw-script', ['thaw'])).code, 0);
  await assertNothingLeft();
});

test('freezeFail releases a held lock and exits 0', async (context) => {
  const setup = newSetup(context);
  assert.equal((await runHook(setup, 'pre-freeze-script', ['freeze'])).code, 0);
  const failed = await runHook(setup, 'post-thaw-script', ['freezeFail']);
  assert.equal(failed.code, 0, failed.stderr);
  await assertNothingLeft();
  const last = JSON.parse(fs.readFileSync(path.join(setup.runDir, 'last.json'), 'utf8')) as { thaw: { operation: string } };
  assert.equal(last.thaw.operation, 'freezeFail');
  const again = await runHook(setup, 'post-thaw-script', ['freezefail']);
  assert.equal(again.code, 0, 'freezeFail with nothing held');
});

test('at max_lock_time the holder releases by itself, and the later thaw reports the snapshot inconsistent', async (context) => {
  const setup = newSetup(context, { snapshot: { max_lock_time: '1.5' } });
  assert.equal((await runHook(setup, 'pre-freeze-script', ['freeze'])).code, 0);
  await sleep(2500);
  await assertNothingLeft();
  assert.ok(events(readLog(setup)).includes('lock.expired'));
  const thawed = await runHook(setup, 'post-thaw-script', ['thaw']);
  assert.equal(thawed.code, 3, 'thaw fails');
  assert.match(thawed.stderr, /max_lock_time \(1\.5 s\).*may not be consistent/);
  assert.equal(events(readLog(setup)).at(-1), 'thaw.inconsistent');
});

test('a holder killed while holding: the lock goes with it, and thaw reports the snapshot inconsistent', async (context) => {
  const setup = newSetup(context);
  assert.equal((await runHook(setup, 'pre-freeze-script', ['freeze'])).code, 0);
  const [holder] = holderProcesses();
  assert.ok(holder !== undefined);
  process.kill(holder, 'SIGKILL');
  for (let i = 0; i < 100 && holderProcesses().length > 0; i += 1) await sleep(20);
  const thawed = await runHook(setup, 'post-thaw-script', ['thaw']);
  assert.equal(thawed.code, 3);
  assert.match(thawed.stderr, /died while holding the lock/);
  await assertNothingLeft();
});

test('a long-running write defers the lock, and no writer stalls for longer than lock_wait_timeout meanwhile', async (context) => {
  const setup = newSetup(context, { snapshot: { lock_wait_timeout: '1', long_query_time: '1' } });
  const longWriter = await server.connect();
  const writer = await server.connect();
  // Started just before freeze, so that it is not yet "long" when the first attempt begins: that attempt
  // waits behind it and must be abandoned; later polls see it as a blocker until it ends.
  // 3 rows x 2 s: long enough to outlast the first (abandoned) attempt and the pause after it, even on a loaded machine.
  const longStatement = longWriter.query('UPDATE app.t SET v = v + SLEEP(2) WHERE id <= 3');
  await sleep(200);
  const stalls = measureStalls(writer);
  const frozen = await runHook(setup, 'pre-freeze-script', ['freeze']);
  const longest = await stalls.stop();
  await longStatement;
  assert.equal(frozen.code, 0, frozen.stderr);
  const logEvents = events(readLog(setup));
  assert.ok(logEvents.includes('window.blocked'), `the long statement was seen: ${logEvents.join(', ')}`);
  assert.ok(logEvents.some((event) => event === 'lock.timeout' || event === 'lock.abandoned'), `an attempt was given up: ${logEvents.join(', ')}`);
  const acquired = lineOf(readLog(setup), 'lock.acquired') as { attempts: number };
  assert.ok(acquired.attempts >= 2);
  // The writer measures until freeze has exited; the lock it then runs into is the snapshot's, not a stall.
  assert.ok(longest.beforeLock < 1000 + 700, `longest stall of a writer before the lock: ${longest.beforeLock} ms`);
  assert.equal((await runHook(setup, 'post-thaw-script', ['thaw'])).code, 0);
  await longWriter.end();
  await writer.end();
  await assertNothingLeft();
});

/** Inserts into app.other in a loop, recording the longest time one insert took. */
function measureStalls(connection: Connection): { stop: () => Promise<{ beforeLock: number }> } {
  let running = true;
  let longest = 0;
  void (async () => {
    while (running) {
      const start = Date.now();
      // A write that starts after freeze has exited meets the held lock: stop before that one counts.
      await connection.query('INSERT INTO app.other (at) VALUES (?)', [start]).catch(() => undefined);
      if (running) longest = Math.max(longest, Date.now() - start);
      await sleep(20);
    }
  })();
  return {
    stop: async () => {
      running = false;
      return { beforeLock: longest };
    },
  };
}

test('SIGTERM to a freeze whose holder waits for the lock releases everything', async (context) => {
  const setup = newSetup(context, { snapshot: { lock_wait_timeout: '5', long_query_time: '10' } });
  const longWriter = await server.connect();
  const longStatement = longWriter.query('UPDATE app.t SET v = v + SLEEP(2) WHERE id = 1').catch(() => undefined);
  await sleep(100);
  const freeze = spawnHook(setup, 'pre-freeze-script', ['freeze']);
  // The holder's FLUSH now waits behind the UPDATE (not "long" for long_query_time = 10).
  for (let i = 0; i < 100 && holderProcesses().length === 0; i += 1) await sleep(20);
  await sleep(300);
  // The agent's process exits 1 at once; its output ends when the worker has released (src/snapshot/waiter.ts).
  const exited = new Promise<number | null>((resolve) => freeze.on('exit', (exitCode) => resolve(exitCode)));
  const closed = new Promise((resolve) => freeze.on('close', resolve));
  freeze.stdout?.resume();
  freeze.stderr?.resume();
  const started = Date.now();
  freeze.kill('SIGTERM');
  assert.equal(await exited, 1);
  await closed;
  assert.ok(Date.now() - started < 3000, 'freeze stops promptly');
  assert.deepEqual(holderProcesses(), []);
  const waiting = await server.query<RowDataPacket[]>("SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE '%vmware-mysql-snapshot holder%' AND ID <> CONNECTION_ID()");
  assert.deepEqual(waiting, [], 'no FLUSH of ours is left waiting on the server');
  await longStatement;
  await longWriter.end();
  await assertNothingLeft();
  assert.ok(events(readLog(setup)).includes('freeze.aborted'));
});

test('a holder that does not answer is stopped by thaw after proving it is ours, and nothing is left', async (context) => {
  const setup = newSetup(context);
  assert.equal((await runHook(setup, 'pre-freeze-script', ['freeze'])).code, 0);
  const [holder] = holderProcesses();
  assert.ok(holder !== undefined);
  process.kill(holder, 'SIGSTOP'); // alive, holding, deaf
  const thawed = await runHook(setup, 'post-thaw-script', ['thaw'], { timeoutMs: 20_000 });
  // The lock was held until thaw ended it, so the snapshot was covered.
  assert.equal(thawed.code, 0, thawed.stderr);
  const logEvents = events(readLog(setup));
  assert.ok(logEvents.includes('holder.killed'), logEvents.join(', '));
  await assertNothingLeft();
});
