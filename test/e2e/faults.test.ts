/**
 * Fault injection, end to end: the BUILT executable under its installed names against a real throwaway
 * MariaDB, with processes killed at the worst moments, the server restarted or killed under it, state
 * left by crashed or foreign runs, unsafe directories and files, unwritable logs, awkward passwords and
 * a hostile NODE_OPTIONS.
 *
 * Every case checks the exit code, the message, and afterwards: no lock is held (a write from another
 * connection goes through within 1 s), no lock holder of this file is running, no statement of ours is
 * left on the server, the bystanders (an unrelated process, an idle connection of the hook's own user and
 * one of root) are untouched, and where a writer ran, no acknowledged write was lost.
 *
 * (SIGTERM of a freeze whose holder waits for the lock is in cycle.test.ts; config syntax, privileges,
 * freeze_timeout, SIGTERM/SIGINT in the window loop, two freezes and the server down at freeze are in
 * errors.test.ts.)
 *
 * Cases 9a and 10 run a holder look-alike (this executable as pre-freeze-mysql-lock, waiting for a start
 * message) for a few seconds without the marker: a test file that counts every pre-freeze-mysql-lock
 * process may see it meanwhile (npm test runs the files one at a time).
 */
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Connection, RowDataPacket } from 'mysql2/promise';
import { closedWithin, events, EXECUTABLE, HOLDER_MARKER, type HookResult, type HookSetup, type HookSetupOptions, lineOf, type LogLine, makeHookSetup, readLog, runHook as runHookRaw, spawnCollected, type Spawned, workerOf } from '../support/hook';
import { startMariaDB, TEST_USER, type TestServer, tryInsert } from '../support/mariadb';
import { sleep, waitFor } from '../support/wait';

/**
 * Other test files (and other checkouts running this very file) may run their own holders on this
 * machine at the same time. The holder keeps TZ from freeze's environment, so every hook started here
 * carries this process's marker (support/hook.ts: a POSIX TZ with offset 0, unique to this process) and
 * the process scan counts, and kills, only the holders this run started.
 */
const MARKER_TZ = HOLDER_MARKER;
const HOLDER_NAME = 'pre-freeze-mysql-lock';
const TEST_TIMEOUT_MS = 60_000;
const NOBODY = 65534;
/** The statement the holder's FLUSH waits behind in the "holder waits for the lock" cases. */
const LONG_UPDATE_SECONDS = 3;
/** Settings for those cases: the UPDATE is not "long" (so freeze tries at once) and the FLUSH may wait 5 s. */
const WAITING_FLUSH_SNAPSHOT = { lock_wait_timeout: '5', long_query_time: '10', freeze_timeout: '20' };

let server: TestServer;
/** Background hooks, statements and processes, ended in after() if a failing test left one. */
const cleanups = new Set<() => Promise<void> | void>();

before(async () => {
  server = await startMariaDB();
  await server.query('INSERT INTO app.t (v, note) VALUES (1, ?), (2, ?), (3, ?)', ['seed', 'seed', 'seed']);
});

after(async () => {
  for (const cleanup of [...cleanups]) await Promise.resolve(cleanup()).catch(() => undefined);
  for (const pid of ourHolders()) killQuietly(pid, 'SIGKILL');
  await server?.remove();
});

// ---------------------------------------------------------------------------------------------------
// running the hook

function runHook(setup: HookSetup, name: string, args: string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<HookResult> {
  return runHookRaw(setup, name, args, { timeoutMs: options.timeoutMs ?? 30_000, env: { TZ: MARKER_TZ, ...options.env } });
}

function spawnHook(setup: HookSetup, name: string, args: string[]): Spawned {
  const hook = spawnCollected(setup, name, args, { env: { TZ: MARKER_TZ } });
  const kill = (): void => void hook.child.kill('SIGKILL');
  cleanups.add(kill);
  void hook.closed.then(() => cleanups.delete(kill));
  return hook;
}

/**
 * A fresh hook setup. When the test ends (passed or not): post-thaw-script freezeFail, any holder of this
 * file SIGKILLed, the directory removed.
 */
function newSetup(context: TestContext, options: HookSetupOptions = {}): HookSetup {
  const setup = makeHookSetup(server, options);
  context.after(async () => {
    await runHook(setup, 'post-thaw-script', ['freezeFail']).catch(() => undefined);
    for (const pid of ourHolders()) killQuietly(pid, 'SIGKILL');
    fs.rmSync(setup.dir, { recursive: true, force: true });
  });
  return setup;
}

// ---------------------------------------------------------------------------------------------------
// small helpers

function killQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // gone already
  }
}

/** The JSON log lines in a text (stderr when the log file cannot be used). */
function jsonLines(text: string): LogLine[] {
  const lines: LogLine[] = [];
  for (const raw of text.split('\n')) {
    if (!raw.startsWith('{')) continue;
    try {
      lines.push(JSON.parse(raw) as LogLine);
    } catch {
      // not a log line
    }
  }
  return lines;
}

/** No "    at fn (file:line)" frames: the admin gets a sentence, not a stack trace. */
function assertNoStackTrace(text: string): void {
  assert.doesNotMatch(text, /^\s+at \S/m, `no stack trace on the terminal:\n${text}`);
}

// ---------------------------------------------------------------------------------------------------
// processes

interface ProcessIdentity {
  pid: number;
  startTime: string;
  name: string;
  exe: string;
}

/** As src/state/processes.ts sees a process: field 22 of /proc/PID/stat, basename of argv[0], /proc/PID/exe. */
function identityOf(pid: number): ProcessIdentity | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z') return null;
    const argv0 = fs.readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0')[0] ?? '';
    return { pid, startTime: fields[19] ?? '', name: path.basename(argv0), exe: fs.readlinkSync(`/proc/${pid}/exe`) };
  } catch {
    return null;
  }
}

/** Live (non-zombie) lock holders started by this file. */
function ourHolders(): number[] {
  const pids: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv0 = fs.readFileSync(`/proc/${entry}/cmdline`, 'latin1').split('\0')[0] ?? '';
      if (path.basename(argv0) !== HOLDER_NAME) continue;
      const state = fs.readFileSync(`/proc/${entry}/stat`, 'latin1').split(') ')[1]?.[0];
      if (state === 'Z') continue;
      const environment = fs.readFileSync(`/proc/${entry}/environ`, 'latin1').split('\0');
      if (environment.includes(`TZ=${MARKER_TZ}`)) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/** An unrelated process of the test's own, ended when the test ends. */
async function startUnrelatedProcess(context: TestContext, options: { argv0?: string } = {}): Promise<{ child: ChildProcess; identity: ProcessIdentity }> {
  const child = spawn('sleep', ['120'], { stdio: 'ignore', ...(options.argv0 === undefined ? {} : { argv0: options.argv0 }) });
  const kill = (): void => void child.kill('SIGKILL');
  cleanups.add(kill);
  context.after(() => {
    kill();
    cleanups.delete(kill);
  });
  const pid = child.pid;
  assert.ok(pid !== undefined, 'sleep started');
  // Until exec, /proc shows the forked Node: wait until it is sleep.
  const identity = await waitFor(`sleep ${pid} to run`, () => {
    const found = identityOf(pid);
    return found !== null && found.exe.endsWith('/sleep') ? found : undefined;
  }, { timeoutMs: 5000 });
  return { child, identity };
}

function assertStillRunning(identity: ProcessIdentity, what: string): void {
  const now = identityOf(identity.pid);
  assert.ok(now !== null, `${what} (pid ${identity.pid}) is still running`);
  assert.equal(now.startTime, identity.startTime, `${what} (pid ${identity.pid}) is the same process`);
}

// ---------------------------------------------------------------------------------------------------
// the server

/** Statements of our holders on the server (FLUSH ... tagged "vmware-mysql-snapshot holder PID"). */
async function ourStatements(): Promise<RowDataPacket[]> {
  return server.query<RowDataPacket[]>(
    "SELECT ID, COMMAND, STATE, INFO, TIME_MS FROM information_schema.PROCESSLIST WHERE INFO LIKE '%vmware-mysql-snapshot holder%' AND ID <> CONNECTION_ID()",
  );
}

/** Connections of the hook's users, other than the bystanders'. */
async function hookConnections(exceptIds: readonly number[], users: readonly string[] = [TEST_USER.name]): Promise<RowDataPacket[]> {
  const rows = await server.query<RowDataPacket[]>(
    `SELECT ID, USER, COMMAND, INFO FROM information_schema.PROCESSLIST WHERE USER IN (${users.map(() => '?').join(', ')})`,
    [...users],
  );
  return rows.filter((row) => !exceptIds.includes(Number(row['ID'])));
}

/** What a holder would record as its connection's server lifetime. */
async function serverStartedAt(): Promise<number> {
  const [row] = await server.query<RowDataPacket[]>('SELECT UNIX_TIMESTAMP(NOW(3)) AS now');
  const [status] = await server.query<RowDataPacket[]>("SHOW GLOBAL STATUS LIKE 'Uptime'");
  return Math.round((Number(row?.['now']) - Number(status?.['Value'])) * 1000);
}

/** A write statement that runs `seconds` (on row 1 of app.t): it keeps a FLUSH waiting behind it. */
async function startLongUpdate(context: TestContext, seconds = LONG_UPDATE_SECONDS): Promise<{ done: Promise<void> }> {
  const connection = await server.connect();
  connection.on('error', () => undefined);
  const done = connection
    .query(`UPDATE app.t SET v = v + SLEEP(${seconds}) WHERE id = 1 /* faults.test long update */`)
    .then(
      () => undefined,
      () => undefined,
    )
    .then(() => connection.destroy());
  const stop = (): Promise<void> => done;
  cleanups.add(stop);
  context.after(async () => {
    await done;
    cleanups.delete(stop);
  });
  return { done };
}

/**
 * A statement that runs for `seconds` and counts as a blocker for the quiet window: returns once it has run
 * longer than long_query_time (1 s). It holds no table.
 */
async function startBlocker(context: TestContext, seconds: number): Promise<{ id: number; stop: () => Promise<void> }> {
  const connection: Connection = await server.connect();
  connection.on('error', () => undefined);
  const [rows] = await connection.query<RowDataPacket[]>('SELECT CONNECTION_ID() AS id');
  const id = Number(rows[0]?.['id']);
  const running = connection.query(`SELECT SLEEP(${seconds}) /* faults.test blocker */`).catch(() => undefined);
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopped ??= (async () => {
      await server.query(`KILL ${id}`).catch(() => undefined);
      await running;
      connection.destroy();
    })());
  cleanups.add(stop);
  context.after(async () => {
    await stop();
    cleanups.delete(stop);
  });
  await waitFor(`thread ${id} to run SLEEP for more than 1.2 s`, async () => {
    const found = await server.query<RowDataPacket[]>('SELECT TIME_MS AS ms FROM information_schema.PROCESSLIST WHERE ID = ?', [id]);
    return Number(found[0]?.['ms'] ?? 0) >= 1200 ? true : undefined;
  });
  return { id, stop };
}

/**
 * No statement of our holders is running on the server: none at all, or only threads already KILLed
 * (a KILLed thread stays in the processlist, COMMAND Killed, until it has unwound), gone within 1 s.
 */
async function assertNoFlushOfOurs(when: string): Promise<void> {
  const running = (await ourStatements()).filter((row) => row['COMMAND'] !== 'Killed');
  assert.deepEqual(running.map((row) => String(row['INFO'])), [], `no statement of ours runs on the server ${when}`);
  await waitFor(`the KILLed statements of ours to leave the processlist ${when}`, async () => ((await ourStatements()).length === 0 ? true : undefined), { timeoutMs: 1000 });
}

/**
 * The scene of the tests that stop something while the holder's FLUSH waits: bystanders, a writer, a long
 * UPDATE, and a freeze whose holder's FLUSH now waits behind it on the server.
 */
async function freezeWaitingBehindUpdate(context: TestContext): Promise<{
  setup: HookSetup;
  bystanders: Bystanders;
  writer: Writer;
  update: { done: Promise<void> };
  freeze: Spawned;
  flush: RowDataPacket;
}> {
  const setup = newSetup(context, { snapshot: WAITING_FLUSH_SNAPSHOT });
  const bystanders = await startBystanders(context);
  const writer = startWriter(context);
  const update = await startLongUpdate(context);
  await sleep(100);
  const freeze = spawnHook(setup, 'pre-freeze-script', ['freeze']);
  const flush = await waitForWaitingFlush();
  return { setup, bystanders, writer, update, freeze, flush };
}

/** Waits until a FLUSH of our holder waits on the server; returns its processlist row. */
async function waitForWaitingFlush(): Promise<RowDataPacket> {
  return waitFor('a FLUSH of the holder waiting on the server', async () => {
    const rows = await ourStatements();
    return rows.find((row) => /FLUSH/.test(String(row['INFO'])));
  });
}

// ---------------------------------------------------------------------------------------------------
// bystanders and writers

interface Bystanders {
  process: ProcessIdentity;
  connectionIds: number[];
  /** The process is the same and alive; with `connections`, both idle connections still answer as themselves. */
  check(options?: { connections?: boolean }): Promise<void>;
}

/**
 * An unrelated process and two idle connections (one of the hook's own user, which our KILL proof must
 * not mistake for a holder's, and one of root) that nothing may touch.
 */
async function startBystanders(context: TestContext): Promise<Bystanders> {
  const { identity } = await startUnrelatedProcess(context);
  const connections = [await server.connect({ user: TEST_USER.name, password: TEST_USER.password }), await server.connect()];
  const ids: number[] = [];
  for (const connection of connections) {
    connection.on('error', () => undefined);
    const [rows] = await connection.query<RowDataPacket[]>('SELECT CONNECTION_ID() AS id');
    ids.push(Number(rows[0]?.['id']));
  }
  context.after(() => {
    for (const connection of connections) connection.destroy();
  });
  return {
    process: identity,
    connectionIds: ids,
    check: async (options = {}) => {
      assertStillRunning(identity, 'the unrelated process');
      if (options.connections === false) return;
      for (const [index, connection] of connections.entries()) {
        const [rows] = await connection.query<RowDataPacket[]>('SELECT CONNECTION_ID() AS id');
        assert.equal(Number(rows[0]?.['id']), ids[index], 'a bystander connection is untouched');
      }
    },
  };
}

interface Writer {
  acked(): number;
  /** Resolves once one more write has been acknowledged; rejects after `ms`. */
  progress(ms: number): Promise<void>;
  /** Stops, then checks that every acknowledged write is in the table. */
  stopAndCheck(): Promise<{ acked: number; uncertain: number; rows: number }>;
}

/**
 * INSERTs into app.t in a loop (reconnecting after any error), tagged with its own note, counting the
 * acknowledged ones. An INSERT that failed may or may not have been committed ("uncertain").
 */
function startWriter(context: TestContext): Writer {
  const tag = `faults.test writer ${randomBytes(4).toString('hex')}`;
  const ackedValues = new Set<number>();
  let uncertain = 0;
  let running = true;
  let connection: Connection | undefined;
  let n = 0;
  const loop = (async () => {
    while (running) {
      if (connection === undefined) {
        try {
          connection = await server.connect();
          connection.on('error', () => undefined);
        } catch {
          connection = undefined;
          await sleep(100);
          continue;
        }
      }
      n += 1;
      const value = n;
      try {
        await connection.query('INSERT INTO app.t (v, note) VALUES (?, ?)', [value, tag]);
        ackedValues.add(value);
      } catch {
        uncertain += 1;
        connection.destroy();
        connection = undefined;
        await sleep(100);
      }
      await sleep(20);
    }
    connection?.destroy();
  })();
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopped ??= (async () => {
      running = false;
      // An INSERT waiting behind a lock that a failing test left: give up on it after 10 s.
      const timer = setTimeout(() => connection?.destroy(), 10_000);
      await loop;
      clearTimeout(timer);
    })());
  cleanups.add(stop);
  context.after(async () => {
    await stop();
    cleanups.delete(stop);
  });
  return {
    acked: () => ackedValues.size,
    progress: (ms) => {
      const before = ackedValues.size;
      return waitFor('the writer to get a write acknowledged', () => (ackedValues.size > before ? true : undefined), { timeoutMs: ms }).then(() => undefined);
    },
    stopAndCheck: async () => {
      await stop();
      const rows = await server.query<RowDataPacket[]>('SELECT v FROM app.t WHERE note = ?', [tag]);
      const stored = new Set(rows.map((row) => Number(row['v'])));
      const lost = [...ackedValues].filter((value) => !stored.has(value));
      assert.deepEqual(lost, [], `acknowledged writes lost: ${lost.length} of ${ackedValues.size}`);
      assert.ok(stored.size <= ackedValues.size + uncertain, `${stored.size} rows for ${ackedValues.size} acknowledged and ${uncertain} failed writes`);
      assert.ok(ackedValues.size > 0, 'the writer got writes through');
      return { acked: ackedValues.size, uncertain, rows: stored.size };
    },
  };
}

interface NothingLeftOptions {
  bystanders?: Bystanders;
  /** false after a server restart (which ends every connection, the bystanders' too) */
  connections?: boolean;
  users?: string[];
}

async function assertNothingLeft(options: NothingLeftOptions = {}): Promise<void> {
  assert.equal(await tryInsert(server), 'ok', 'a write from another connection goes through: nothing is held');
  assert.deepEqual(ourHolders(), [], `no ${HOLDER_NAME} process of this file is left`);
  assert.deepEqual(await ourStatements(), [], 'no statement of our holders is left on the server');
  const except = options.connections === false ? [] : (options.bystanders?.connectionIds ?? []);
  // A holder closes its connection just after answering: give the server a moment to drop it.
  for (let i = 0; i < 100 && (await hookConnections(except, options.users)).length > 0; i += 1) await sleep(20);
  assert.deepEqual(await hookConnections(except, options.users), [], 'no connection of the hook is left on the server');
  await options.bystanders?.check({ connections: options.connections !== false });
}

/** A freeze that must lock, a write that must wait, and a thaw that must release. */
async function assertFullCycle(setup: HookSetup, env: NodeJS.ProcessEnv = {}): Promise<void> {
  const frozen = await runHook(setup, 'pre-freeze-script', ['freeze'], { env });
  assert.equal(frozen.code, 0, frozen.stderr);
  assert.match(frozen.stdout, /^locked: binlog binlog\.\d+:\d+/);
  assert.equal(await tryInsert(server), 'ER_LOCK_WAIT_TIMEOUT', 'a write waits while frozen');
  assert.equal(ourHolders().length, 1, 'the process scan sees the holder of this file');
  const thawed = await runHook(setup, 'post-thaw-script', ['thaw'], { env });
  assert.equal(thawed.code, 0, thawed.stderr);
  assert.match(thawed.stdout, /^released after \d+ ms/);
}

// ---------------------------------------------------------------------------------------------------
// state files

const STATE_FILE = 'state.json';

function statePath(setup: HookSetup): string {
  return path.join(setup.runDir, STATE_FILE);
}

/** A run_dir as the hook makes it: root's, mode 700. */
function makeRunDir(setup: HookSetup): void {
  fs.mkdirSync(setup.runDir, { mode: 0o700, recursive: true });
  fs.chmodSync(setup.runDir, 0o700);
}

function writeStateFile(file: string, content: string, mode = 0o600): void {
  fs.writeFileSync(file, content, { mode });
  fs.chmodSync(file, mode);
}

/** A holder state (see src/snapshot/holderstate.ts isHolderState) claiming `holder` holds the lock on `connection`. */
function heldState(holder: ProcessIdentity, connection: { id: number; user: string; serverStartedAt: number } | null): Record<string, unknown> {
  const now = Date.now();
  return {
    version: 1,
    phase: 'held',
    holder,
    freezePid: process.pid,
    connection,
    startedAt: now - 2000,
    lockedAt: now - 1500,
    maxLockTime: 60,
    coordinates: { binlog: { file: 'binlog.000001', position: 4 }, gtid: null },
  };
}

/** A PID that has just exited (and been reaped). */
async function deadPid(): Promise<number> {
  const child = spawn('true', [], { stdio: 'ignore' });
  await new Promise((resolve) => child.once('exit', resolve));
  assert.ok(child.pid !== undefined);
  return child.pid;
}

// ===================================================================================================
// 1-4. processes killed at the worst moments

test('1. SIGKILL of the holder while its FLUSH waits: freeze fails at once and ends that FLUSH first; nothing held, writes survive, a later freeze works', { timeout: TEST_TIMEOUT_MS }, async (context) => {
  const { setup, bystanders, writer, update, freeze, flush } = await freezeWaitingBehindUpdate(context);
  const holders = ourHolders();
  assert.equal(holders.length, 1, 'one holder of ours runs');
  const [holder] = holders as [number];
  assert.ok(String(flush['INFO']).includes(`holder ${holder} `), `the waiting FLUSH is the holder's: ${String(flush['INFO'])}`);

  const killedAt = Date.now();
  process.kill(holder, 'SIGKILL');
  const { code } = await closedWithin(freeze, 15_000);
  const exitedAfter = Date.now() - killedAt;
  const rowsAtExit = await ourStatements();
  const flushesAtExit = rowsAtExit.filter((row) => row['COMMAND'] !== 'Killed').map((row) => String(row['INFO']));
  context.diagnostic(`freeze exited ${exitedAfter} ms after the holder's SIGKILL (code ${code}) with ${flushesAtExit.length} FLUSH of ours left on the server ${JSON.stringify(rowsAtExit)}; events ${events(readLog(setup)).join(', ')}; stderr: ${freeze.stderr().trim()}`);
  if (code === 0) {
    // It retried and locked: that is allowed, and then the lock must really be held and thaw release it.
    assert.match(freeze.stdout(), /^locked: /);
    assert.equal(await tryInsert(server), 'ER_LOCK_WAIT_TIMEOUT');
    assert.equal((await runHook(setup, 'post-thaw-script', ['thaw'])).code, 0);
  } else {
    assert.equal(code, 1, freeze.stderr());
    assert.ok(exitedAfter < 3000, `freeze noticed the dead holder after ${exitedAfter} ms`);
    assert.match(freeze.stderr(), /^freeze failed: the lock holder exited before locking \(SIGKILL\)[^\n]*\n$/);
    assertNoStackTrace(freeze.stderr());
    lineOf(readLog(setup), 'freeze.failed');
    // MariaDB notices the dead client within about a second, MySQL maybe only at lock_wait_timeout: freeze,
    // which has the proof of that connection, must not leave it to the server while it says nothing is held.
    assert.deepEqual(flushesAtExit, [], 'freeze KILLed the dead holder\'s FLUSH before exiting');
    await assertNoFlushOfOurs('after freeze exited');
  }

  await update.done;
  await writer.progress(5000);
  await assertNothingLeft({ bystanders });
  await writer.stopAndCheck();

  // The dead holder's state (phase locking) does not stand in the way of the next freeze.
  await assertFullCycle(setup);
  assert.ok(events(readLog(setup)).includes('freeze.stale_state'), events(readLog(setup)).join(', '));
  await assertNothingLeft({ bystanders });
});

/** A freeze kept waiting for a quiet moment by a 20 s statement, with bystanders. */
async function freezeKeptWaiting(context: TestContext): Promise<{ setup: HookSetup; bystanders: Bystanders; blocker: { stop: () => Promise<void> }; freeze: Spawned }> {
  const setup = newSetup(context, { snapshot: { freeze_timeout: '30', long_query_time: '1' } });
  const bystanders = await startBystanders(context);
  const blocker = await startBlocker(context, 20);
  const freeze = spawnHook(setup, 'pre-freeze-script', ['freeze']);
  await waitFor('window.blocked in the log', () => (events(readLog(setup)).includes('window.blocked') ? true : undefined));
  return { setup, bystanders, blocker, freeze };
}

/** The worker doing a freeze for the agent's process (src/snapshot/waiter.ts), from the log. */
function workerPid(setup: HookSetup, freeze: Spawned): number {
  const worker = workerOf(readLog(setup), freeze.child.pid);
  assert.ok(worker !== undefined, `the log names freeze's worker: ${events(readLog(setup)).join(', ')}`);
  return worker;
}

test('2. SIGKILL of freeze (its worker) while it waits for a quiet moment: the agent\'s process fails at once, no holder or connection is left, and the next freeze takes over its freeze lock at once', { timeout: TEST_TIMEOUT_MS }, async (context) => {
  const { setup, bystanders, blocker, freeze } = await freezeKeptWaiting(context);
  assert.ok(fs.existsSync(path.join(setup.runDir, 'freeze.lock')), 'the running freeze holds the freeze lock');
  process.kill(workerPid(setup, freeze), 'SIGKILL');
  const { code } = await closedWithin(freeze, 5000);
  assert.equal(code, 1);
  assert.equal(freeze.stderr(), 'freeze failed: its worker ended without an exit code (see the log)\n');

  assert.ok(fs.existsSync(path.join(setup.runDir, 'freeze.lock')), 'the killed freeze left its freeze lock behind (the next freeze must cope)');
  // Freeze starts its holder early (it connects while freeze waits); with freeze gone it must go too.
  await waitFor('the early holder to notice its freeze is gone', () => (ourHolders().length === 0 ? true : undefined), { timeoutMs: 3000 });
  assert.equal(fs.existsSync(statePath(setup)), false, 'no holder state: a holder never told to lock writes none');
  await waitFor('the killed freeze\'s connection to go', async () => ((await hookConnections(bystanders.connectionIds)).length === 0 ? true : undefined), { timeoutMs: 5000 });
  assert.equal(await tryInsert(server), 'ok');

  await blocker.stop();
  const next = await runHook(setup, 'pre-freeze-script', ['freeze']);
  context.diagnostic(`the next freeze: exit ${next.code} after ${next.ms} ms: ${next.stdout.trim()} ${next.stderr.trim()}`);
  assert.equal(next.code, 0, next.stderr);
  assert.doesNotMatch(next.stderr, /another freeze|already being held/);
  assert.ok(next.ms < 3000, `the next freeze took ${next.ms} ms: the dead freeze's lock was taken over at once`);
  assert.equal(await tryInsert(server), 'ER_LOCK_WAIT_TIMEOUT', 'the next freeze holds the lock');
  const thawed = await runHook(setup, 'post-thaw-script', ['thaw']);
  assert.equal(thawed.code, 0, thawed.stderr);
  assert.ok(!events(readLog(setup)).includes('freeze.failed'), events(readLog(setup)).join(', '));
  await assertNothingLeft({ bystanders });
});

test('2b. SIGKILL of the agent\'s process while freeze waits for a quiet moment (Google\'s timeout): its worker releases everything and its freeze lock at once, and the next freeze works', { timeout: TEST_TIMEOUT_MS }, async (context) => {
  const { setup, bystanders, blocker, freeze } = await freezeKeptWaiting(context);
  const worker = workerPid(setup, freeze);
  const killedAt = Date.now();
  freeze.child.kill('SIGKILL');
  const { signal } = await closedWithin(freeze, 5000);
  assert.equal(signal, 'SIGKILL');
  await waitFor('the worker to end', () => (fs.existsSync(`/proc/${worker}`) ? undefined : true), { timeoutMs: 3000 });
  const goneMs = Date.now() - killedAt;
  context.diagnostic(`the worker ended ${goneMs} ms after the agent's process was killed`);
  assert.equal(fs.existsSync(path.join(setup.runDir, 'freeze.lock')), false, 'the worker released its freeze lock');
  assert.deepEqual(ourHolders(), []);
  const log = readLog(setup);
  assert.equal(lineOf(log, 'freeze.aborted')['agentPid'], freeze.child.pid);
  assert.match(String(lineOf(log, 'freeze.failed')['error']), /^freeze aborted because the agent's process \d+ ended; nothing is held$/);
  await waitFor('the worker\'s connection to go', async () => ((await hookConnections(bystanders.connectionIds)).length === 0 ? true : undefined), { timeoutMs: 5000 });
  assert.equal(await tryInsert(server), 'ok');

  await blocker.stop();
  await assertFullCycle(setup);
  await assertNothingLeft({ bystanders });
});

test('3. SIGKILL of freeze (its worker) while its holder waits for the lock: the holder gives up within lock_wait_timeout + 2 s, writers flow, writes survive', { timeout: TEST_TIMEOUT_MS }, async (context) => {
  const { setup, bystanders, writer, update, freeze } = await freezeWaitingBehindUpdate(context);
  const [holder] = ourHolders();
  assert.ok(holder !== undefined, 'the holder runs');

  const killedAt = Date.now();
  process.kill(workerPid(setup, freeze), 'SIGKILL');
  const { code } = await closedWithin(freeze, 5000);
  assert.equal(code, 1);
  const bound = (5 + 2) * 1000;
  await waitFor('the holder and its FLUSH to be gone', async () => (ourHolders().length === 0 && (await ourStatements()).length === 0 ? true : undefined), { timeoutMs: bound });
  const goneAfter = Date.now() - killedAt;
  context.diagnostic(`the holder and its FLUSH were gone ${goneAfter} ms after freeze's SIGKILL`);
  assert.ok(goneAfter < bound, `gone after ${goneAfter} ms`);
  await writer.progress(bound);

  const holdLog = readLog(setup).filter((line) => line['op'] === 'hold');
  const aborted = lineOf(holdLog, 'lock.aborted');
  assert.match(String(aborted['msg']), /freeze exited before acknowledging the lock/);
  assert.ok(!events(readLog(setup)).includes('lock.acquired'), 'nothing was ever locked');

  await update.done;
  await assertNothingLeft({ bystanders });
  await writer.stopAndCheck();
  const thawed = await runHook(setup, 'post-thaw-script', ['thaw']);
  assert.equal(thawed.code, 0, thawed.stderr);
  assert.equal(thawed.stdout, 'nothing was held\n');
});

// 4. SIGTERM of freeze while its holder waits for the lock: cycle.test.ts.

// ===================================================================================================
// 5-6. the server goes away

test('5. the server restarted while the lock is held: thaw exits 3 (lock lost), then a full cycle works again; writes survive', { timeout: TEST_TIMEOUT_MS }, async (context) => {
  const setup = newSetup(context);
  const bystanders = await startBystanders(context);
  const writer = startWriter(context);
  await writer.progress(5000);
  const frozen = await runHook(setup, 'pre-freeze-script', ['freeze']);
  assert.equal(frozen.code, 0, frozen.stderr);
  const ackedWhenFrozen = writer.acked();
  await sleep(300);
  assert.ok(writer.acked() <= ackedWhenFrozen + 1, 'the writer is held up by the lock');
  try {
    await server.stop();
    await waitFor('the holder to notice and exit', () => (ourHolders().length === 0 ? true : undefined), { timeoutMs: 10_000 });
  } finally {
    await server.start();
  }
  const holdLog = readLog(setup).filter((line) => line['op'] === 'hold');
  lineOf(holdLog, 'lock.lost');

  const thawed = await runHook(setup, 'post-thaw-script', ['thaw']);
  assert.equal(thawed.code, 3, thawed.stderr);
  assert.match(thawed.stderr, /^thaw: the lock was lost while held \(.+\): the snapshot may not be consistent\n$/);
  assert.equal(lineOf(readLog(setup), 'thaw.inconsistent')['phase'], 'lost');
  await writer.progress(5000);

  await assertFullCycle(setup);
  await assertNothingLeft({ bystanders, connections: false });
  const counts = await writer.stopAndCheck();
  assert.ok(counts.acked > ackedWhenFrozen, 'writes went on after the restart');
});

test('6. the server killed while freeze waits for a quiet moment: freeze exits 1 at once with one clear line, no holder is left; writes survive', { timeout: TEST_TIMEOUT_MS }, async (context) => {
  const setup = newSetup(context, { snapshot: { freeze_timeout: '30', long_query_time: '1' } });
  const bystanders = await startBystanders(context);
  const writer = startWriter(context);
  await startBlocker(context, 30);
  const freeze = spawnHook(setup, 'pre-freeze-script', ['freeze']);
  await waitFor('window.blocked in the log', () => (events(readLog(setup)).includes('window.blocked') ? true : undefined));
  let result: { code: number | null; signal: NodeJS.Signals | null };
  let exitedAfter: number;
  let holdersWhileDown: number[];
  try {
    const killedAt = Date.now();
    server.kill('SIGKILL');
    result = await closedWithin(freeze, 10_000);
    exitedAfter = Date.now() - killedAt;
    holdersWhileDown = ourHolders();
  } finally {
    await server.start();
  }
  context.diagnostic(`freeze exited ${exitedAfter} ms after the server's SIGKILL: code ${result.code}, stderr: ${freeze.stderr().trim()}`);
  assert.deepEqual(holdersWhileDown, [], 'no holder was left (or started) while the server was down');
  assert.equal(result.signal, null, 'freeze exited by itself');
  assert.equal(result.code, 1, freeze.stderr());
  assert.ok(exitedAfter < 3000, `freeze exited ${exitedAfter} ms after the server died`);
  assertNoStackTrace(freeze.stderr());
  assert.equal(freeze.stderr().split('\n').filter((line) => line !== '').length, 1, `one line on stderr:\n${freeze.stderr()}`);
  assert.equal(freeze.stdout(), '');
  // It says what happened: the server went away. Not an "unexpected error" in the client library's words.
  assert.match(freeze.stderr(), /^freeze failed: .*\bserver\b/);
  assert.doesNotMatch(freeze.stderr(), /unexpected error/);
  const failed = lineOf(readLog(setup), 'freeze.failed');
  assert.ok(['SERVER', 'SERVER_DOWN'].includes(String(failed['code'])), `logged as a server failure, not ${String(failed['code'])}`);

  await writer.progress(5000);
  await assertNothingLeft({ bystanders, connections: false });
  await writer.stopAndCheck();
  await assertFullCycle(setup);
});

// ===================================================================================================
// 7. freezeFail at every stage

test('7a. freezeFail with nothing ever frozen: exit 0, nothing was held, no run_dir created', { timeout: TEST_TIMEOUT_MS }, async (context) => {
  const setup = newSetup(context);
  const bystanders = await startBystanders(context);
  const result = await runHook(setup, 'post-thaw-script', ['freezeFail']);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /^nothing (was held|held any more)\n$/);
  assert.equal(result.stderr, '');
  assert.deepEqual(events(readLog(setup)), ['thaw.start', 'thaw.nothing_held']);
  assert.equal(lineOf(readLog(setup), 'thaw.nothing_held')['op'], 'freezeFail');
  assert.equal(fs.existsSync(setup.runDir), false);
  await assertNothingLeft({ bystanders });
});

test('7b. freezeFail after freezes that failed (freeze_timeout in the window loop, and after an abandoned attempt): exit 0', { timeout: TEST_TIMEOUT_MS }, async (context) => {
  // In the window loop: no holder was ever started.
  const windowed = newSetup(context, { snapshot: { freeze_timeout: '2', long_query_time: '1' } });
  const bystanders = await startBystanders(context);
  const blocker = await startBlocker(context, 20);
  const timedOut = await runHook(windowed, 'pre-freeze-script', ['freeze']);
  assert.equal(timedOut.code, 1, timedOut.stderr);
  assert.match(timedOut.stderr, /^freeze failed: no lock within freeze_timeout/);
  await blocker.stop();
  const failed = await runHook(windowed, 'post-thaw-script', ['freezeFail']);
  assert.equal(failed.code, 0, failed.stderr);
  assert.match(failed.stdout, /^nothing (was held|held any more)\n$/);
  await assertNothingLeft({ bystanders });

  // After an attempt that timed out on the server: the holder left state (phase aborted, never locked).
  const attempted = newSetup(context, { snapshot: { lock_wait_timeout: '1', long_query_time: '10', freeze_timeout: '2' } });
  const update = await startLongUpdate(context, 5);
  await sleep(100);
  const gaveUp = await runHook(attempted, 'pre-freeze-script', ['freeze']);
  assert.equal(gaveUp.code, 1, gaveUp.stderr);
  assert.match(gaveUp.stderr, /^freeze failed: no lock within freeze_timeout \(2 s\) after [1-9]\d* attempt/);
  assert.ok(events(readLog(attempted)).some((event) => event === 'lock.timeout' || event === 'lock.abandoned'), events(readLog(attempted)).join(', '));
  const failedAgain = await runHook(attempted, 'post-thaw-script', ['freezeFail']);
  assert.equal(failedAgain.code, 0, failedAgain.stderr);
  assert.match(failedAgain.stdout, /^nothing (was held|held any more)/);
  await update.done;
  await assertNothingLeft({ bystanders });
});

test('7c. freezeFail while the holder waits for the lock: it stops the holder and exits 0, and the freeze fails', { timeout: TEST_TIMEOUT_MS }, async (context) => {
  const { setup, bystanders, writer, update, freeze } = await freezeWaitingBehindUpdate(context);
  assert.equal(ourHolders().length, 1);

  const failed = await runHook(setup, 'post-thaw-script', ['freezeFail']);
  assert.equal(failed.code, 0, failed.stderr);
  assert.match(failed.stdout, /^nothing (was held|held any more)/);
  assert.deepEqual(ourHolders(), [], 'freezeFail stopped the holder before exiting');
  await assertNoFlushOfOurs('when freezeFail exits');

  const { code } = await closedWithin(freeze, 10_000);
  context.diagnostic(`freezeFail: ${failed.stdout.trim()} (${failed.ms} ms); the freeze: exit ${code}: ${freeze.stderr().trim()}`);
  assert.equal(code, 1, `the freeze fails: ${freeze.stdout()}${freeze.stderr()}`);
  assert.match(freeze.stderr(), /^freeze failed: /);
  assertNoStackTrace(freeze.stderr());
  assert.ok(!events(readLog(setup)).includes('lock.acquired'), 'nothing was locked');

  await writer.progress(5000);
  await update.done;
  await assertNothingLeft({ bystanders });
  await writer.stopAndCheck();
});

test('7d. freezeFail after an expired hold (max_lock_time = 1): exit 0, nothing held', { timeout: TEST_TIMEOUT_MS }, async (context) => {
  const setup = newSetup(context, { snapshot: { max_lock_time: '1' } });
  const bystanders = await startBystanders(context);
  const frozen = await runHook(setup, 'pre-freeze-script', ['freeze']);
  assert.equal(frozen.code, 0, frozen.stderr);
  await waitFor('the hold to expire', () => (events(readLog(setup)).includes('lock.expired') ? true : undefined), { timeoutMs: 5000 });
  const failed = await runHook(setup, 'post-thaw-script', ['freezeFail']);
  assert.equal(failed.code, 0, failed.stderr);
  assert.match(failed.stdout, /^nothing held any more \(the lock was released after max_lock_time \(1 s\), before freezeFail\)\n$/);
  await assertNothingLeft({ bystanders });
});

// ===================================================================================================
// 8-10. state left behind

test('8. state of a crashed run (a dead holder, phase held): freeze clears it (freeze.stale_state) and locks; thaw works', { timeout: TEST_TIMEOUT_MS }, async (context) => {
  const setup = newSetup(context);
  const bystanders = await startBystanders(context);
  const pid = await deadPid();
  makeRunDir(setup);
  const state = heldState({ pid, startTime: '12345', name: HOLDER_NAME, exe: fs.realpathSync(EXECUTABLE) }, null);
  writeStateFile(statePath(setup), `${JSON.stringify(state)}\n`);

  const frozen = await runHook(setup, 'pre-freeze-script', ['freeze']);
  assert.equal(frozen.code, 0, frozen.stderr);
  const stale = lineOf(readLog(setup), 'freeze.stale_state');
  assert.equal(stale['holderPid'], pid);
  assert.equal(stale['phase'], 'held');
  const last = JSON.parse(fs.readFileSync(path.join(setup.runDir, 'last.json'), 'utf8')) as { holder: { pid: number }; thaw: { outcome: string } };
  assert.equal(last.holder.pid, pid, 'the crashed run is kept as the last run');
  assert.equal(last.thaw.outcome, 'inconsistent');
  assert.equal(await tryInsert(server), 'ER_LOCK_WAIT_TIMEOUT', 'locked');

  const thawed = await runHook(setup, 'post-thaw-script', ['thaw']);
  assert.equal(thawed.code, 0, thawed.stderr);
  assert.match(thawed.stdout, /^released after \d+ ms/);
  await assertNothingLeft({ bystanders });
});

/**
 * A live process that looks exactly like a holder: this very executable started as pre-freeze-mysql-lock
 * with a socket as its descriptor 3, waiting (10 s) for a start message that never comes. It is not this file's (no TZ
 * marker) and holds nothing.
 */
async function startLookalikeHolder(context: TestContext): Promise<ProcessIdentity> {
  const child = spawn(EXECUTABLE, [], { argv0: HOLDER_NAME, stdio: ['ignore', 'ignore', 'ignore', 'pipe'], env: { PATH: '/usr/bin:/bin' } });
  child.on('error', () => undefined);
  const kill = (): void => void child.kill('SIGKILL');
  cleanups.add(kill);
  context.after(() => {
    kill();
    cleanups.delete(kill);
  });
  const pid = child.pid;
  assert.ok(pid !== undefined);
  const exe = fs.realpathSync(EXECUTABLE);
  return waitFor(`the look-alike holder ${pid} to run`, () => {
    const found = identityOf(pid);
    return found !== null && found.exe === exe && found.name === HOLDER_NAME ? found : undefined;
  }, { timeoutMs: 5000 });
}

/**
 * A state naming a live process that is not the holder it claims: the PID of a crashed run's holder, since
 * reused. Exit 3 is right (src/snapshot/thaw.ts): the state says the lock was held, and no holder of ours can be
 * proven to hold it now, so the snapshot may not be consistent.
 */
async function thawWithForeignHolder(context: TestContext, which: 'other start time' | 'real identity'): Promise<void> {
  const setup = newSetup(context);
  const bystanders = await startBystanders(context);
  // 'other start time': a holder look-alike (same name, same executable) whose start time differs from the
  // state's: only the start time tells them apart. 'real identity': sleep, named in the state exactly as
  // it is (PID, start time, name sleep, /usr/bin/sleep): nothing about it is a holder of ours.
  const foreign = which === 'other start time' ? await startLookalikeHolder(context) : (await startUnrelatedProcess(context)).identity;
  const claimed: ProcessIdentity = which === 'other start time' ? { ...foreign, startTime: String(Number(foreign.startTime) - 100) } : foreign;
  // The connection it claims is an idle one of the hook's user: a KILL on this proof would end it.
  const [snapshotConnection] = bystanders.connectionIds as [number, number];
  const proof = { id: snapshotConnection, user: TEST_USER.name, serverStartedAt: await serverStartedAt() };
  makeRunDir(setup);
  writeStateFile(statePath(setup), `${JSON.stringify(heldState(claimed, proof))}\n`);

  const thawed = await runHook(setup, 'post-thaw-script', ['thaw']);
  context.diagnostic(`thaw: exit ${thawed.code}, stdout ${JSON.stringify(thawed.stdout)}, stderr ${JSON.stringify(thawed.stderr)}; events ${events(readLog(setup)).join(', ')}`);
  assertStillRunning(foreign, 'the process the state names');
  await bystanders.check();
  const logEvents = events(readLog(setup));
  assert.ok(!logEvents.includes('holder.killed') && !logEvents.includes('connection.killed'), logEvents.join(', '));
  assert.equal(thawed.code, 3, `${thawed.stdout}${thawed.stderr}`);
  assert.match(
    thawed.stderr,
    which === 'other start time'
      ? new RegExp(`^thaw: the lock holder \\(pid ${foreign.pid}\\) died while holding the lock: the snapshot may not be consistent\\n$`)
      : /^thaw: the holder state could not be trusted \(.*state\.json has unexpected content\): the snapshot may not be consistent\n$/,
  );
  assert.equal(fs.existsSync(statePath(setup)), false, 'the state is cleared');

  const frozen = await runHook(setup, 'pre-freeze-script', ['freeze']);
  assert.equal(frozen.code, 0, frozen.stderr);
  assertStillRunning(foreign, 'the process the state names');
  const released = await runHook(setup, 'post-thaw-script', ['thaw']);
  assert.equal(released.code, 0, released.stderr);
  assertStillRunning(foreign, 'the process the state names');
  await assertNothingLeft({ bystanders });
}

test('9a. state naming a live holder look-alike with another start time: thaw signals nothing, kills no connection, exits 3 and clears the state; freeze then works', { timeout: TEST_TIMEOUT_MS }, async (context) => {
  await thawWithForeignHolder(context, 'other start time');
});

test('9b. state naming a live unrelated process by its real identity (sleep): thaw signals nothing, kills no connection, exits 3 and clears the state; freeze then works', { timeout: TEST_TIMEOUT_MS }, async (context) => {
  await thawWithForeignHolder(context, 'real identity');
});

type UntrustedVariant = 'a symlink' | 'world-writable' | 'owned by another user' | 'truncated JSON';
const UNTRUSTED_VARIANTS: readonly UntrustedVariant[] = ['a symlink', 'world-writable', 'owned by another user', 'truncated JSON'];

/**
 * Plants an untrusted state.json whose content would be valid (phase held, naming `named`: a live holder
 * look-alike, by its real identity). Returns the symlink's target for the symlink variant.
 */
function plantUntrustedState(setup: HookSetup, variant: UntrustedVariant, named: ProcessIdentity): { target?: string; targetText?: string; targetMtime?: number } {
  makeRunDir(setup);
  const text = `${JSON.stringify(heldState(named, null))}\n`;
  const file = statePath(setup);
  switch (variant) {
    case 'a symlink': {
      const target = path.join(setup.dir, 'elsewhere-state.json');
      writeStateFile(target, text);
      fs.symlinkSync(target, file);
      return { target, targetText: text, targetMtime: fs.statSync(target).mtimeMs };
    }
    case 'world-writable':
      writeStateFile(file, text, 0o666);
      return {};
    case 'owned by another user':
      writeStateFile(file, text);
      fs.chownSync(file, NOBODY, NOBODY);
      return {};
    case 'truncated JSON':
      writeStateFile(file, text.slice(0, Math.floor(text.length / 2)));
      return {};
  }
}

function assertTargetUntouched(planted: { target?: string; targetText?: string; targetMtime?: number }): void {
  if (planted.target === undefined) return;
  assert.equal(fs.readFileSync(planted.target, 'utf8'), planted.targetText, 'the symlink target is untouched');
  assert.equal(fs.statSync(planted.target).mtimeMs, planted.targetMtime, 'the symlink target was not written');
}

const UNTRUSTED_REASONS: Record<UntrustedVariant, RegExp> = {
  'a symlink': /state\.json is a symlink/,
  'world-writable': /state\.json is writable by group or others \(mode 0666\)/,
  'owned by another user': /state\.json is owned by uid 65534/,
  'truncated JSON': /state\.json is corrupted/,
};

for (const variant of UNTRUSTED_VARIANTS) {
  test(`10. an untrusted state (${variant}): freeze ignores and removes it, and locks`, { timeout: TEST_TIMEOUT_MS }, async (context) => {
    const setup = newSetup(context);
    const bystanders = await startBystanders(context);
    const named = await startLookalikeHolder(context);
    const planted = plantUntrustedState(setup, variant, named);

    const frozen = await runHook(setup, 'pre-freeze-script', ['freeze']);
    assert.equal(frozen.code, 0, frozen.stderr);
    assert.match(String(lineOf(readLog(setup), 'freeze.stale_state')['reason']), UNTRUSTED_REASONS[variant]);
    assert.equal(await tryInsert(server), 'ER_LOCK_WAIT_TIMEOUT', 'locked');
    const state = fs.lstatSync(statePath(setup));
    assert.ok(state.isFile() && state.uid === 0 && (state.mode & 0o077) === 0, 'state.json is now the holder\'s own file');
    assertTargetUntouched(planted);
    assertStillRunning(named, 'the process the untrusted state named');

    const thawed = await runHook(setup, 'post-thaw-script', ['thaw']);
    assert.equal(thawed.code, 0, thawed.stderr);
    assertTargetUntouched(planted);
    assertStillRunning(named, 'the process the untrusted state named');
    await assertNothingLeft({ bystanders });
  });

  test(`10. an untrusted state (${variant}): thaw reports it (exit 3) and signals nothing`, { timeout: TEST_TIMEOUT_MS }, async (context) => {
    const setup = newSetup(context);
    const bystanders = await startBystanders(context);
    const named = await startLookalikeHolder(context);
    const planted = plantUntrustedState(setup, variant, named);

    const thawed = await runHook(setup, 'post-thaw-script', ['thaw']);
    assert.equal(thawed.code, 3, `${thawed.stdout}${thawed.stderr}`);
    assert.match(thawed.stderr, /^thaw: the holder state could not be trusted \(.+\): the snapshot may not be consistent\n$/);
    assert.match(thawed.stderr, UNTRUSTED_REASONS[variant]);
    assert.ok(thawed.stderr.includes(statePath(setup)), `names the file: ${thawed.stderr}`);
    assert.match(String(lineOf(readLog(setup), 'thaw.failed')['reason']), UNTRUSTED_REASONS[variant]);
    assertStillRunning(named, 'the process the untrusted state named');
    assert.ok(!events(readLog(setup)).includes('holder.killed'));
    assert.equal(fs.existsSync(statePath(setup)) || isSymlink(statePath(setup)), false, 'the untrusted state is removed');
    assertTargetUntouched(planted);
    await assertNothingLeft({ bystanders });
  });
}

function isSymlink(file: string): boolean {
  try {
    return fs.lstatSync(file).isSymbolicLink();
  } catch {
    return false;
  }
}

// ===================================================================================================
// 11. an unsafe run_dir

type RunDirVariant = 'owned by another user' | 'world-writable' | 'a symlink to another directory';

for (const variant of ['owned by another user', 'world-writable', 'a symlink to another directory'] as const satisfies readonly RunDirVariant[]) {
  test(`11. run_dir ${variant}: freeze and thaw refuse (exit 1) naming run_dir and the fix; nothing locked`, { timeout: TEST_TIMEOUT_MS }, async (context) => {
    const setup = newSetup(context);
    const bystanders = await startBystanders(context);
    const elsewhere = path.join(setup.dir, 'elsewhere');
    if (variant === 'a symlink to another directory') {
      fs.mkdirSync(elsewhere, { mode: 0o700 });
      fs.symlinkSync(elsewhere, setup.runDir);
    } else {
      makeRunDir(setup);
      if (variant === 'owned by another user') fs.chownSync(setup.runDir, NOBODY, NOBODY);
      else fs.chmodSync(setup.runDir, 0o777);
    }
    const before = fs.lstatSync(setup.runDir);
    const problem = { 'owned by another user': /is owned by uid 65534, not by uid 0/, 'world-writable': /is writable by group or others \(mode 0777\)/, 'a symlink to another directory': /is not a directory \(a symlink or a file is there\)/ }[variant];

    for (const [name, args, operation] of [
      ['pre-freeze-script', ['freeze'], 'freeze'],
      ['post-thaw-script', ['thaw'], 'thaw'],
      ['post-thaw-script', ['freezeFail'], 'freezeFail'],
    ] as const) {
      const result = await runHook(setup, name, [...args]);
      assert.equal(result.code, 1, `${operation}: ${result.stdout}${result.stderr}`);
      assert.ok(result.stderr.startsWith(`${operation} failed: run_dir ${setup.runDir} `), `${operation}: ${result.stderr}`);
      assert.match(result.stderr, problem);
      assert.match(result.stderr, /refusing to use it\. Remove it \(it is recreated with mode 700\) or set run_dir to another path\n$/);
      assertNoStackTrace(result.stderr);
      assert.equal(await tryInsert(server), 'ok', `${operation}: nothing is locked`);
    }
    const failures = readLog(setup).filter((line) => line['event'] === 'freeze.failed' || line['event'] === 'thaw.failed');
    assert.deepEqual(failures.map((line) => line['code']), ['UNSAFE', 'UNSAFE', 'UNSAFE']);
    assert.ok(!events(readLog(setup)).includes('window.blocked') && !events(readLog(setup)).includes('lock.acquired'));

    const after = fs.lstatSync(setup.runDir);
    assert.deepEqual([after.uid, after.mode, after.isSymbolicLink()], [before.uid, before.mode, before.isSymbolicLink()], 'run_dir was left as it was');
    if (variant === 'a symlink to another directory') assert.deepEqual(fs.readdirSync(elsewhere), [], 'nothing was written through the symlink');
    else assert.deepEqual(fs.readdirSync(setup.runDir), [], 'nothing was written into the unsafe run_dir');
    await assertNothingLeft({ bystanders });
  });
}

// ===================================================================================================
// 12. the log cannot be written

for (const variant of ['in a directory that does not exist', 'a directory', 'a FIFO'] as const) {
  test(`12. log_file ${variant}: freeze goes ahead logging to stderr (log.unwritable), thaw works`, { timeout: TEST_TIMEOUT_MS }, async (context) => {
    const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'vms-fault-log-'));
    context.after(() => fs.rmSync(logDir, { recursive: true, force: true }));
    const logFile = {
      'in a directory that does not exist': path.join(logDir, 'no', 'such', 'dir', 'hook.log'),
      'a directory': path.join(logDir, 'logdir'),
      'a FIFO': path.join(logDir, 'log.fifo'),
    }[variant];
    if (variant === 'a directory') fs.mkdirSync(logFile);
    if (variant === 'a FIFO') execFileSync('mkfifo', ['-m', '600', logFile]);
    const setup = newSetup(context, { snapshot: { log_file: logFile } });
    const bystanders = await startBystanders(context);

    const frozen = await runHook(setup, 'pre-freeze-script', ['freeze'], { timeoutMs: 15_000 });
    assert.equal(frozen.code, 0, frozen.stderr);
    assert.match(frozen.stdout, /^locked: binlog binlog\.\d+:\d+/);
    assert.equal(await tryInsert(server), 'ER_LOCK_WAIT_TIMEOUT', 'the lock is held');
    const freezeLines = jsonLines(frozen.stderr);
    const unwritable = lineOf(freezeLines, 'log.unwritable');
    assert.equal(unwritable['logFile'], logFile);
    assert.equal(unwritable['op'], 'freeze');
    for (const event of ['freeze.start', 'lock.acquired']) lineOf(freezeLines, event);
    assertNoStackTrace(frozen.stderr);

    const thawed = await runHook(setup, 'post-thaw-script', ['thaw'], { timeoutMs: 15_000 });
    assert.equal(thawed.code, 0, thawed.stderr);
    assert.match(thawed.stdout, /^released after \d+ ms/);
    const thawLines = jsonLines(thawed.stderr);
    for (const event of ['log.unwritable', 'thaw.start', 'thaw.released']) lineOf(thawLines, event);

    if (variant === 'a directory') assert.ok(fs.statSync(logFile).isDirectory(), 'still a directory');
    if (variant === 'a FIFO') assert.ok(fs.lstatSync(logFile).isFIFO(), 'still a FIFO');
    if (variant === 'in a directory that does not exist') assert.equal(fs.existsSync(path.dirname(logFile)), false, 'no directory was created for the log');
    await assertNothingLeft({ bystanders });
  });
}

test('12. log_file on a full filesystem (a 64 KiB tmpfs, filled): freeze goes ahead logging to stderr, thaw works', { timeout: TEST_TIMEOUT_MS }, async (context) => {
  const mountPoint = fs.mkdtempSync(path.join(os.tmpdir(), 'vms-fault-fullfs-'));
  context.after(() => fs.rmSync(mountPoint, { recursive: true, force: true }));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k,mode=0755', 'tmpfs', mountPoint], { stdio: 'pipe' });
  } catch (error) {
    context.skip(`cannot mount a tmpfs here (${String((error as { stderr?: unknown }).stderr ?? error).trim()}): the full-filesystem case needs mount permission`);
    return;
  }
  try {
    // Fill it: write until ENOSPC.
    const fd = fs.openSync(path.join(mountPoint, 'filler'), 'w');
    const chunk = Buffer.alloc(4096, 0x78);
    try {
      for (;;) fs.writeSync(fd, chunk);
    } catch (error) {
      assert.equal((error as NodeJS.ErrnoException).code, 'ENOSPC');
    } finally {
      fs.closeSync(fd);
    }
    const logFile = path.join(mountPoint, 'hook.log');
    const setup = newSetup(context, { snapshot: { log_file: logFile } });
    const bystanders = await startBystanders(context);

    const frozen = await runHook(setup, 'pre-freeze-script', ['freeze'], { timeoutMs: 15_000 });
    assert.equal(frozen.code, 0, frozen.stderr);
    assert.match(frozen.stdout, /^locked: binlog binlog\.\d+:\d+/);
    assert.equal(await tryInsert(server), 'ER_LOCK_WAIT_TIMEOUT', 'the lock is held');
    const freezeLines = jsonLines(frozen.stderr);
    context.diagnostic(`freeze's stderr events: ${events(freezeLines).join(', ')}`);
    for (const event of ['freeze.start', 'lock.acquired']) lineOf(freezeLines, event);
    assertNoStackTrace(frozen.stderr);

    const thawed = await runHook(setup, 'post-thaw-script', ['thaw'], { timeoutMs: 15_000 });
    assert.equal(thawed.code, 0, thawed.stderr);
    lineOf(jsonLines(thawed.stderr), 'thaw.released');
    await assertNothingLeft({ bystanders });
  } finally {
    try {
      execFileSync('umount', [mountPoint], { stdio: 'pipe' });
    } catch {
      execFileSync('umount', ['-l', mountPoint], { stdio: 'pipe' });
    }
  }
});

// ===================================================================================================
// 13. the configuration file's owner and mode

test('13. a world-readable config holding a password: a warning on stderr and config.warning, freeze and thaw work', { timeout: TEST_TIMEOUT_MS }, async (context) => {
  const setup = newSetup(context);
  const bystanders = await startBystanders(context);
  fs.chmodSync(setup.configFile, 0o644);
  const warning = `warning: ${setup.configFile} holds a password and is readable by group or others (mode 0644): chmod 600 ${setup.configFile}\n`;

  const frozen = await runHook(setup, 'pre-freeze-script', ['freeze']);
  assert.equal(frozen.code, 0, frozen.stderr);
  assert.equal(frozen.stderr, warning);
  assert.equal(await tryInsert(server), 'ER_LOCK_WAIT_TIMEOUT', 'the lock is held');
  const thawed = await runHook(setup, 'post-thaw-script', ['thaw']);
  assert.equal(thawed.code, 0, thawed.stderr);
  assert.equal(thawed.stderr, warning);

  const warnings = readLog(setup).filter((line) => line['event'] === 'config.warning');
  assert.deepEqual(warnings.map((line) => line['op']), ['freeze', 'thaw']);
  assert.equal(warnings[0]?.['msg'], warning.slice('warning: '.length, -1));
  assert.ok(!fs.readFileSync(setup.logFile, 'utf8').includes(TEST_USER.password), 'no password in the log');
  await assertNothingLeft({ bystanders });
});

for (const variant of ['world-writable', 'owned by another user'] as const) {
  test(`13. a config file ${variant} is refused: exit 2 naming the file and the fix, nothing touched`, { timeout: TEST_TIMEOUT_MS }, async (context) => {
    const setup = newSetup(context);
    const bystanders = await startBystanders(context);
    if (variant === 'world-writable') fs.chmodSync(setup.configFile, 0o666);
    else fs.chownSync(setup.configFile, NOBODY, NOBODY);
    const fix =
      variant === 'world-writable'
        ? `${setup.configFile} is writable by group or others (mode 0666), so that user could change what this root process does: chmod go-w ${setup.configFile}`
        : `${setup.configFile} is owned by uid 65534, not by uid 0, so that user could change what this root process does: chown root ${setup.configFile}`;
    for (const [name, args, operation] of [
      ['pre-freeze-script', ['freeze'], 'freeze'],
      ['post-thaw-script', ['thaw'], 'thaw'],
    ] as const) {
      const result = await runHook(setup, name, [...args]);
      assert.equal(result.code, 2, `${operation}: ${result.stdout}${result.stderr}`);
      assert.equal(result.stderr, `${operation} failed: configuration file ${setup.configFile} is not safe to read as root: ${fix} (it and every directory above it must belong to root and be writable by nobody else)\n`);
      assert.equal(result.stdout, '');
    }
    assert.equal(fs.existsSync(setup.runDir), false, 'no run directory was created');
    assert.equal(fs.existsSync(setup.logFile), false, 'the log_file of a refused configuration is not used');
    await assertNothingLeft({ bystanders });
  });
}

// ===================================================================================================
// 14. passwords that need quoting

/** A double-quoted option value: \ " and tab escaped. */
function doubleQuoted(value: string): string {
  return `"${value.replace(/[\\"]/g, (character) => `\\${character}`).replace(/\t/g, '\\t')}"`;
}

/** An unquoted option value: \ and tab escaped, a leading and a trailing space as \s. */
function escapedUnquoted(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\t/g, '\\t').replace(/^ /, '\\s').replace(/ $/, '\\s');
}

test('14. passwords with a backslash, a tab and leading and trailing spaces (quoted, and escaped unquoted): freeze and thaw work', { timeout: TEST_TIMEOUT_MS }, async (context) => {
  const accounts = [
    { user: 'quoted1', password: ` lead\\back\tslash #;'"= trail `, written: doubleQuoted },
    { user: 'quoted2', password: ` a\\b\tc\\ `, written: escapedUnquoted },
  ];
  context.after(async () => {
    for (const { user } of accounts) await server.query('DROP USER IF EXISTS ?@?', [user, 'localhost']);
  });
  const bystanders = await startBystanders(context);
  for (const { user, password, written } of accounts) {
    await server.query('CREATE USER ?@? IDENTIFIED BY ?', [user, 'localhost', password]);
    await server.query('GRANT RELOAD, PROCESS, BINLOG MONITOR ON *.* TO ?@?', [user, 'localhost']);
    const direct = await server.connect({ user, password });
    await direct.end();

    const setup = newSetup(context, { client: { user, password: written(password) } });
    await assertFullCycle(setup);
    assert.ok(!fs.readFileSync(setup.logFile, 'utf8').includes(password.trim()), 'no password in the log');
    await assertNothingLeft({ bystanders, users: [TEST_USER.name, user] });
  }
});

// ===================================================================================================
// 15. the caller's NODE_OPTIONS

test('15. the caller\'s NODE_OPTIONS (--require, --import) injects nothing into freeze, the holder, thaw or status, and its NODE_PENDING_DEPRECATION adds no warning', { timeout: TEST_TIMEOUT_MS }, async (context) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vms-fault-evil-'));
  context.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.writeFileSync(
    path.join(dir, 'evil.js'),
    "require('fs').writeFileSync(require('path').join(__dirname, 'marker-require-' + process.pid), process.argv0 + '\\n');\n",
  );
  fs.writeFileSync(
    path.join(dir, 'evil.mjs'),
    "import { writeFileSync } from 'node:fs';\nwriteFileSync(new URL('./marker-import-' + process.pid, import.meta.url), process.argv0 + '\\n');\n",
  );
  const nodeOptions = `--require ${path.join(dir, 'evil.js')} --import ${path.join(dir, 'evil.mjs')}`;
  const markers = (): string[] => fs.readdirSync(dir).filter((name) => name.startsWith('marker-'));

  // The injection works on a plain Node: so its absence below means something.
  execFileSync(process.execPath, ['-e', '0'], { env: { ...process.env, NODE_OPTIONS: nodeOptions }, stdio: 'pipe' });
  assert.equal(markers().length, 2, `plain node ran both: ${markers().join(', ')}`);
  for (const marker of markers()) fs.rmSync(path.join(dir, marker));

  const setup = newSetup(context);
  const bystanders = await startBystanders(context);
  // NODE_PENDING_DEPRECATION=1 makes the runtime warn of process.binding(), which freeze uses to start its holder.
  const env = { NODE_OPTIONS: nodeOptions, NODE_PENDING_DEPRECATION: '1' };
  const frozen = await runHook(setup, 'pre-freeze-script', ['freeze'], { env });
  assert.equal(frozen.code, 0, frozen.stderr);
  const [holder] = ourHolders();
  assert.ok(holder !== undefined, 'the holder runs');
  assert.equal(await tryInsert(server), 'ER_LOCK_WAIT_TIMEOUT');
  const status = await runHook(setup, 'vmware-mysql-snapshot', ['status'], { env });
  assert.equal(status.code, 0, status.stderr);
  const thawed = await runHook(setup, 'post-thaw-script', ['thaw'], { env });
  assert.equal(thawed.code, 0, thawed.stderr);
  assert.deepEqual(markers(), [], 'no code from NODE_OPTIONS ran in freeze, the holder, status or thaw');
  for (const result of [frozen, status, thawed]) assert.doesNotMatch(result.stderr, /evil|NODE_OPTIONS|DeprecationWarning/);
  await assertNothingLeft({ bystanders });
});
