/**
 * Every way a freeze or thaw can go wrong, end to end: the BUILT executable under its installed names
 * against a real throwaway MariaDB. Each case checks the exit code, the one line the admin sees, the log
 * event, and that nothing is left behind: writes flow, and no lock holder process of ours remains.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Connection, RowDataPacket } from 'mysql2/promise';
import { DEFAULTS } from '../../src/config/settings';
import { closedWithin, events, type HookResult, type HookSetup, type HookSetupOptions, lineOf, type LogLine, makeHookSetup, ourHolders, quoteOptionValue, readLog, runHook as runHookRaw, spawnCollected, type Spawned, workerOf, writeConfig } from '../support/hook';
import { startMariaDB, TEST_USER, type TestServer, tryInsert } from '../support/mariadb';
import { waitFor } from '../support/wait';

const TEST_TIMEOUT_MS = 60_000;

let server: TestServer;
/** Hooks spawned in the background, killed in after() if a failing test left one running. */
const spawned = new Set<ChildProcess>();
/** Blocking statements, killed in after() if a failing test left one running. */
const blockers = new Set<Blocker>();
/** Directories made by makeHookSetup, removed in after(). */
const setupDirs: string[] = [];

before(async () => {
  server = await startMariaDB();
});

after(async () => {
  for (const child of spawned) child.kill('SIGKILL');
  for (const blocker of blockers) await blocker.stop().catch(() => undefined);
  await server?.remove();
  for (const dir of setupDirs) fs.rmSync(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------------
// helpers

function runHook(setup: HookSetup, name: string, args: string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<HookResult> {
  return runHookRaw(setup, name, args, { timeoutMs: options.timeoutMs ?? 30_000, env: options.env });
}

function spawnHook(setup: HookSetup, name: string, args: string[]): Spawned {
  const hook = spawnCollected(setup, name, args);
  spawned.add(hook.child);
  void hook.closed.then(() => spawned.delete(hook.child));
  return hook;
}

/**
 * Without a valid configuration the hook cannot know its log_file and logs to the default one
 * (/var/log/vmware-mysql-snapshot.log), or to stderr if it cannot open that. The lines about this run
 * are those naming its configuration file.
 */
function defaultLogLinesAbout(configFile: string, stderr: string): LogLine[] {
  let text = '';
  try {
    text = fs.readFileSync(DEFAULTS.logFile, 'utf8');
  } catch {
    // not root, or never written: the lines are on stderr then
  }
  const lines: LogLine[] = [];
  for (const raw of [...text.split('\n'), ...stderr.split('\n')]) {
    if (!raw.trim().startsWith('{')) continue;
    try {
      lines.push(JSON.parse(raw) as LogLine);
    } catch {
      // not a log line
    }
  }
  return lines.filter((line) => typeof line['msg'] === 'string' && line['msg'].includes(configFile));
}

function defaultLogText(): string {
  try {
    return fs.readFileSync(DEFAULTS.logFile, 'utf8');
  } catch {
    return '';
  }
}

async function assertNothingLeft(): Promise<void> {
  assert.equal(await tryInsert(server), 'ok', 'a write from another connection goes through: nothing is held');
  assert.deepEqual(ourHolders(), [], 'no pre-freeze-mysql-lock process is left');
}

interface Blocker {
  id: number;
  stop(): Promise<void>;
}

/**
 * A statement that runs for `seconds` and that the quiet-window rule counts as a blocker: it returns once
 * the statement has run longer than long_query_time (1 s), so that the freeze started next never sees a
 * quiet moment. (It holds no table, so it does not hold up FTWRL or writes on its own.)
 */
async function startBlocker(seconds: number): Promise<Blocker> {
  const connection: Connection = await server.connect();
  connection.on('error', () => undefined); // the KILL below ends the connection
  const [rows] = await connection.query<RowDataPacket[]>('SELECT CONNECTION_ID() AS id');
  const id = Number(rows[0]?.['id']);
  const running = connection.query(`SELECT SLEEP(${seconds}) /* errors.test blocker */`).catch(() => undefined);
  const blocker: Blocker = {
    id,
    stop: async () => {
      blockers.delete(blocker);
      await server.query(`KILL ${id}`).catch(() => undefined);
      await running;
      connection.destroy();
    },
  };
  blockers.add(blocker);
  await waitFor(`thread ${id} to run SLEEP for more than 1.2 s`, async () => {
    const found = await server.query<RowDataPacket[]>('SELECT TIME_MS AS ms FROM information_schema.PROCESSLIST WHERE ID = ?', [id]);
    return Number(found[0]?.['ms'] ?? 0) >= 1200 ? true : undefined;
  });
  return blocker;
}

function uniquePassword(): string {
  return `Pw-${randomBytes(8).toString('hex')}-secret`;
}

function setupWith(options: HookSetupOptions = {}): HookSetup {
  const setup = makeHookSetup(server, options);
  setupDirs.push(setup.dir);
  return setup;
}

// ---------------------------------------------------------------------------------------------------
// 1. configuration

test('a missing configuration file: exit 2, names the file and how to create it', { timeout: TEST_TIMEOUT_MS }, async () => {
  const setup = setupWith();
  const missing = path.join(setup.dir, 'missing.cnf');
  const result = await runHook(setup, 'pre-freeze-script', ['freeze'], { env: { VMWARE_MYSQL_SNAPSHOT_CONFIG: missing } });
  assert.equal(result.code, 2, result.stderr);
  assert.match(result.stderr, /^freeze failed: configuration file \S+ not found/);
  assert.ok(result.stderr.includes(missing), `stderr names ${missing}: ${result.stderr}`);
  assert.match(result.stderr, /create it/);
  assert.match(result.stderr, /VMWARE_MYSQL_SNAPSHOT_CONFIG or --config/);
  const failed = lineOf(defaultLogLinesAbout(missing, result.stderr), 'freeze.failed');
  assert.equal(failed['code'], 'CONFIG');
  assert.equal(fs.existsSync(setup.runDir), false, 'no run directory was created');
  await assertNothingLeft();
});

test('several configuration problems at once: one message listing each with file and line, exit 2, nothing started', { timeout: TEST_TIMEOUT_MS }, async () => {
  const setup = setupWith();
  const password = uniquePassword();
  const text = [
    '[client]', //                                         1
    'user = snapshot', //                                  2
    `password = ${quoteOptionValue(password)}`, //         3
    `socket = ${server.socket}`, //                        4
    'colour = blue', //                                    5: unknown key
    '[snapshot]', //                                       6
    `run_dir = ${setup.runDir}`, //                        7
    `log_file = ${setup.logFile}`, //                      8
    'lock_wait_timeout = 2s', //                           9: a unit
    'freeze_timeout = 20', //                              10
    '[mysqld]', //                                         11: unknown section
    'datadir = /var/lib/mysql', //                         12: its first option
    '',
  ].join('\n');
  writeConfig(setup, text);
  const result = await runHook(setup, 'pre-freeze-script', ['freeze']);
  assert.equal(result.code, 2, result.stderr);
  const file = setup.configFile;
  // One message: a single "freeze failed" line followed by its list.
  assert.equal(result.stderr.match(/freeze failed/g)?.length, 1, result.stderr);
  assert.match(result.stderr, /^freeze failed: configuration file \S+ has 3 problems:\n/);
  const listed = result.stderr.split('\n').filter((line) => line.startsWith('  - '));
  assert.equal(listed.length, 3, result.stderr);
  assert.ok(listed.some((line) => line.includes(`${file}:5:`) && /not a known option in \[client\] \(the line is not shown/.test(line)), result.stderr);
  assert.ok(listed.some((line) => line.includes(`${file}:9:`) && /lock_wait_timeout = "2s" is not valid/.test(line) && /without a unit/.test(line)), result.stderr);
  // An unknown section is reported at its first option (line 12); its header (line 11) would do as well.
  assert.ok(listed.some((line) => /:(11|12): unknown section \[mysqld\]/.test(line) && line.includes(file)), result.stderr);
  assert.equal(result.stdout, '');

  assert.equal(fs.existsSync(setup.runDir), false, 'no run directory was created: nothing was started');
  assert.equal(fs.existsSync(setup.logFile), false, 'the log_file of an invalid configuration is not used');
  const failed = lineOf(defaultLogLinesAbout(file, result.stderr), 'freeze.failed');
  assert.equal(failed['code'], 'CONFIG');
  assert.match(String(failed['msg']), /has 3 problems/);

  assert.ok(!result.stderr.includes(password), 'the password is not on stderr');
  assert.ok(!result.stdout.includes(password), 'the password is not on stdout');
  assert.ok(!defaultLogText().includes(password), 'the password is not in the log');
  await assertNothingLeft();
});

test('a configuration without a user: exit 2, says how to set the credentials', { timeout: TEST_TIMEOUT_MS }, async () => {
  const setup = setupWith({ client: null });
  const result = await runHook(setup, 'pre-freeze-script', ['freeze']);
  assert.equal(result.code, 2, result.stderr);
  assert.ok(result.stderr.includes(setup.configFile), result.stderr);
  assert.match(result.stderr, /\[client\] has no user: set user \(and password\), or defaults_file = /);
  // The rest of the configuration is readable: the failure goes to its log_file and history, where the
  // thaw that follows looks for it.
  const failed = lineOf(readLog(setup), 'freeze.failed');
  assert.equal(failed['code'], 'CONFIG');
  assert.equal(fs.existsSync(setup.runDir), false, 'no run directory was created');
  const thawed = await runHook(setup, 'post-thaw-script', ['thaw']);
  assert.equal(thawed.code, 3, 'the thaw after it ends a snapshot the lock did not cover');
  assert.match(thawed.stderr, /freeze failed at .*\(CONFIG: .*has no user/s);
  await assertNothingLeft();
});

// ---------------------------------------------------------------------------------------------------
// 2. wrong password

test('a wrong password: exit 1, the server refused the login, the password is never shown', { timeout: TEST_TIMEOUT_MS }, async () => {
  const password = uniquePassword();
  const setup = setupWith({ client: { password: quoteOptionValue(password) } });
  const result = await runHook(setup, 'pre-freeze-script', ['freeze']);
  assert.equal(result.code, 1, result.stderr);
  assert.match(result.stderr, /^freeze failed: the server refused the login \(Access denied for user 'snapshot'@'localhost'/);
  assert.match(result.stderr, /check user and password/);
  const log = readLog(setup);
  assert.equal(lineOf(log, 'freeze.failed')['code'], 'ACCESS');
  assert.deepEqual(events(log), ['freeze.start', 'freeze.failed']);

  assert.ok(!result.stderr.includes(password), 'the password is not on stderr');
  assert.ok(!result.stdout.includes(password), 'the password is not on stdout');
  assert.ok(!fs.readFileSync(setup.logFile, 'utf8').includes(password), 'the password is not in the log');
  assert.ok(!fs.readFileSync(setup.logFile, 'utf8').includes(TEST_USER.password), 'no password at all is in the log');
  await assertNothingLeft();
});

test('a thaw after a failed freeze (no freezeFail between): exit 3, says when freeze failed and why, in the history, notify_command and check; a thaw after that thaw, or after a freezeFail, exits 0', { timeout: TEST_TIMEOUT_MS }, async () => {
  const setup = setupWith({ client: { password: quoteOptionValue(uniquePassword()) } });
  const notified = path.join(setup.dir, 'notified.env');
  fs.appendFileSync(setup.configFile, `notify_command = env | grep ^VMS_ | sort >> ${notified}\n`);
  const historyFile = path.join(setup.dir, 'history.json');

  const failed = await runHook(setup, 'pre-freeze-script', ['freeze']);
  assert.equal(failed.code, 1, failed.stderr);
  const failedAt = (JSON.parse(fs.readFileSync(historyFile, 'utf8')) as { runs: Array<{ at: number }> }).runs.at(-1)?.at ?? 0;
  fs.rmSync(notified, { force: true });

  // QEMU's stock dispatcher only logs the failed freeze: qemu-ga freezes, the host snapshots, and thaws.
  const thawed = await runHook(setup, 'post-thaw-script', ['thaw']);
  assert.equal(thawed.code, 3, thawed.stderr);
  const when = new Date(failedAt).toISOString();
  assert.ok(thawed.stderr.includes(`freeze failed at ${when} (ACCESS: the server refused the login`), thawed.stderr);
  assert.match(thawed.stderr, /taken without the lock/);
  const inconsistent = lineOf(readLog(setup), 'thaw.inconsistent');
  assert.equal(inconsistent['failedFreezeAt'], failedAt);
  assert.equal(inconsistent['failedFreezeCode'], 'ACCESS');
  const history = JSON.parse(fs.readFileSync(historyFile, 'utf8')) as { runs: Array<{ operation: string; result: string; message?: string }>; totals: { inconsistent: number } };
  assert.deepEqual(history.runs.map((run) => `${run.operation} ${run.result}`), ['freeze failed', 'thaw inconsistent']);
  assert.match(history.runs.at(-1)?.message ?? '', /^freeze failed at /);
  assert.equal(history.totals.inconsistent, 1);
  const environment = fs.readFileSync(notified, 'utf8');
  assert.match(environment, /^VMS_OPERATION=thaw$/m);
  assert.match(environment, /^VMS_RESULT=inconsistent$/m);
  assert.match(environment, /^VMS_MESSAGE=freeze failed at .*ACCESS/m);
  const check = await runHook(setup, 'vmware-mysql-snapshot', ['check']);
  assert.equal(check.code, 2, check.stdout);
  assert.match(check.stdout, /^VMWARE_MYSQL_SNAPSHOT CRITICAL - the last thaw reported an inconsistent snapshot at .*: freeze failed at /);

  const again = await runHook(setup, 'post-thaw-script', ['thaw']);
  assert.equal(again.code, 0, 'a thaw after a thaw answers nothing');
  assert.equal(again.stdout, 'nothing was held\n');

  // VMware Tools answers a failed freeze with freezeFail: the thaw after that is not about it.
  assert.equal((await runHook(setup, 'pre-freeze-script', ['freeze'])).code, 1);
  assert.equal((await runHook(setup, 'post-thaw-script', ['freezeFail'])).code, 0);
  const afterFreezeFail = await runHook(setup, 'post-thaw-script', ['thaw']);
  assert.equal(afterFreezeFail.code, 0, afterFreezeFail.stderr);
  await assertNothingLeft();
});

// ---------------------------------------------------------------------------------------------------
// 3. missing privileges

test('missing privileges: exit 1 with the GRANT that fixes it; after that GRANT, freeze works', { timeout: TEST_TIMEOUT_MS }, async () => {
  const password = uniquePassword();
  await server.query("CREATE USER 'weak'@'localhost' IDENTIFIED BY ?", [password]);
  const setup = setupWith({ client: { user: 'weak', password: quoteOptionValue(password) } });
  try {
    await server.query("GRANT PROCESS ON *.* TO 'weak'@'localhost'");
    const refused = await runHook(setup, 'pre-freeze-script', ['freeze']);
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(refused.stderr, /^freeze failed: account weak@localhost lacks the RELOAD, BINLOG MONITOR privileges/);
    const grant = /GRANT [^;]+;/.exec(refused.stderr)?.[0];
    assert.equal(grant, "GRANT RELOAD, BINLOG MONITOR ON *.* TO 'weak'@'localhost';");
    assert.equal(lineOf(readLog(setup), 'freeze.failed')['code'], 'PRIVILEGE');
    assert.ok(!refused.stderr.includes(password), 'the password is not on stderr');
    await assertNothingLeft();

    await server.query(grant);
    const frozen = await runHook(setup, 'pre-freeze-script', ['freeze']);
    assert.equal(frozen.code, 0, frozen.stderr);
    assert.match(frozen.stdout, /^locked: binlog binlog\.\d+:\d+/);
    lineOf(readLog(setup), 'lock.acquired');
    assert.equal(await tryInsert(server), 'ER_LOCK_WAIT_TIMEOUT', 'writes wait while frozen');
    assert.equal(ourHolders().length, 1, 'the process scan sees the holder of this file (so its empty answers mean something)');

    const thawed = await runHook(setup, 'post-thaw-script', ['thaw']);
    assert.equal(thawed.code, 0, thawed.stderr);
    assert.match(thawed.stdout, /^released after \d+ ms/);
    lineOf(readLog(setup), 'thaw.released');
    assert.ok(!fs.readFileSync(setup.logFile, 'utf8').includes(password), 'the password is not in the log');
    await assertNothingLeft();
  } finally {
    await runHook(setup, 'post-thaw-script', ['thaw']).catch(() => undefined);
    await server.query("DROP USER IF EXISTS 'weak'@'localhost'");
  }
});

// ---------------------------------------------------------------------------------------------------
// 5. freeze_timeout

test('freeze_timeout: exit 1 after ~3 s naming the blocking thread, which is logged once', { timeout: TEST_TIMEOUT_MS }, async () => {
  const setup = setupWith({ snapshot: { freeze_timeout: '3', long_query_time: '1' } });
  const blocker = await startBlocker(20);
  try {
    const result = await runHook(setup, 'pre-freeze-script', ['freeze'], { timeoutMs: 15_000 });
    assert.equal(result.code, 1, result.stderr);
    assert.ok(result.ms >= 2500 && result.ms < 6000, `exited after ${result.ms} ms, expected about 3 s`);
    assert.match(result.stderr, /^freeze failed: no lock within freeze_timeout \(3 s\)/);
    assert.match(result.stderr, new RegExp(`thread ${blocker.id} \\(root, \\d+ s\\): SELECT SLEEP\\(20\\)`));
    assert.match(result.stderr, /Raise freeze_timeout or long_query_time, or add the user to ignore_users/);

    const log = readLog(setup);
    const blocked = log.filter((line) => line['event'] === 'window.blocked');
    assert.equal(blocked.length, 1, `window.blocked is logged once, not once per poll: ${JSON.stringify(blocked)}`);
    assert.equal(blocked[0]?.['thread'], blocker.id);
    assert.match(String(blocked[0]?.['statement']), /SELECT SLEEP\(20\)/);
    assert.equal(lineOf(log, 'freeze.failed')['code'], 'FREEZE_TIMEOUT');
    assert.ok(!events(log).includes('lock.attempt') && !events(log).includes('lock.acquired'), `no lock was attempted: ${events(log).join(', ')}`);
    await assertNothingLeft();
  } finally {
    await blocker.stop();
  }
});

// ---------------------------------------------------------------------------------------------------
// 6. signals

/**
 * A freeze kept waiting for a quiet moment (by a blocker the caller started): the agent's process, and
 * freeze's worker (src/snapshot/waiter.ts), from its freeze.start line.
 */
async function freezeWaitingForQuietMoment(setup: HookSetup): Promise<{ hook: Spawned; worker: number }> {
  const hook = spawnHook(setup, 'pre-freeze-script', ['freeze']);
  await waitFor('window.blocked in the log', () => (readLog(setup).some((line) => line['event'] === 'window.blocked') ? true : undefined));
  const worker = workerOf(readLog(setup), hook.child.pid);
  assert.ok(worker !== undefined && worker !== hook.child.pid, 'the freeze runs in a worker of its own');
  return { hook, worker };
}

// The agent signals the process it started: the waiter (src/snapshot/waiter.ts), which answers at once, and
// its worker sees it gone and releases. An admin may signal the worker itself (the pid in the log).
for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
  test(`${signal} to a freeze waiting for a quiet moment: exit 1 at once, the worker releases everything, freeze.aborted`, { timeout: TEST_TIMEOUT_MS }, async () => {
    const setup = setupWith({ snapshot: { freeze_timeout: '30', long_query_time: '1' } });
    const blocker = await startBlocker(30);
    try {
      const { hook, worker } = await freezeWaitingForQuietMoment(setup);
      const signalledAt = Date.now();
      hook.child.kill(signal);
      const { code } = await new Promise<{ code: number | null }>((resolve) => hook.child.once('exit', (exitCode) => resolve({ code: exitCode })));
      const exitMs = Date.now() - signalledAt;
      assert.equal(code, 1, hook.stderr());
      assert.ok(exitMs < 500, `the agent's process exited ${exitMs} ms after ${signal}`);
      // The relay goes on until the worker has released: an agent reading to EOF sees the end of it.
      await closedWithin(hook, 5000);
      const closedMs = Date.now() - signalledAt;
      assert.ok(closedMs < 3000, `output closed ${closedMs} ms after ${signal}`);
      assert.equal(
        hook.stderr(),
        `freeze failed: freeze aborted by ${signal}; its worker releases everything it took\n` +
          `freeze failed: freeze aborted because the agent's process ${hook.child.pid} ended; nothing is held\n`,
      );

      const log = readLog(setup);
      assert.equal(lineOf(log, 'freeze.aborted')['agentPid'], hook.child.pid);
      assert.equal(lineOf(log, 'freeze.failed')['code'], 'ABORTED');
      assert.equal(lineOf(log, 'freeze.failed')['pid'], worker);
      await assertNothingLeft();
    } finally {
      await blocker.stop();
    }
  });
}

test('SIGTERM to a freeze\'s worker: the worker releases everything and the agent\'s process exits 1, naming the signal', { timeout: TEST_TIMEOUT_MS }, async () => {
  const setup = setupWith({ snapshot: { freeze_timeout: '30', long_query_time: '1' } });
  const blocker = await startBlocker(30);
  try {
    const { hook, worker } = await freezeWaitingForQuietMoment(setup);
    process.kill(worker, 'SIGTERM');
    const { code } = await closedWithin(hook, 5000);
    assert.equal(code, 1, hook.stderr());
    assert.equal(hook.stderr(), 'freeze failed: freeze aborted by SIGTERM; nothing is held\n');
    const log = readLog(setup);
    assert.equal(lineOf(log, 'freeze.aborted')['signal'], 'SIGTERM');
    assert.equal(lineOf(log, 'freeze.failed')['code'], 'ABORTED');
    await assertNothingLeft();
  } finally {
    await blocker.stop();
  }
});

// ---------------------------------------------------------------------------------------------------
// 9. two freezes at once

test('a second freeze while one waits for a quiet moment: exit 1 at once, another freeze is running', { timeout: TEST_TIMEOUT_MS }, async () => {
  const setup = setupWith({ snapshot: { freeze_timeout: '30', long_query_time: '1' } });
  const blocker = await startBlocker(30);
  try {
    const { hook: first, worker: firstWorker } = await freezeWaitingForQuietMoment(setup);

    const second = await runHook(setup, 'pre-freeze-script', ['freeze'], { timeoutMs: 15_000 });
    assert.equal(second.code, 1, second.stderr);
    assert.ok(second.ms < 3000, `the second freeze took ${second.ms} ms`);
    // The pid named is the first freeze's worker, the process that holds the freeze lock.
    assert.match(second.stderr, new RegExp(`^freeze failed: another freeze is running \\(pid ${firstWorker}\\)`));
    const busy = readLog(setup).find((line) => line['event'] === 'freeze.failed' && line['pid'] !== firstWorker);
    assert.ok(busy, `the second freeze logged freeze.failed: ${events(readLog(setup)).join(', ')}`);
    assert.equal(busy['code'], 'BUSY');

    first.child.kill('SIGTERM');
    const { code } = await closedWithin(first, 5000);
    assert.equal(code, 1, first.stderr());
    const firstFailed = readLog(setup).find((line) => line['event'] === 'freeze.failed' && line['pid'] === firstWorker);
    assert.equal(firstFailed?.['code'], 'ABORTED');
    await assertNothingLeft();
  } finally {
    await blocker.stop();
  }
});

// ---------------------------------------------------------------------------------------------------
// 7. usage

test('usage errors: exit 2 with a usage line, nothing logged', { timeout: TEST_TIMEOUT_MS }, async () => {
  const setup = setupWith();
  const cases: Array<{ name: string; args: string[]; usage: RegExp }> = [
    { name: 'post-thaw-script', args: [], usage: /^usage: post-thaw-script thaw\|freezeFail \[scriptArg\] \(got no arguments\)\n$/ },
    { name: 'post-thaw-script', args: ['bogus'], usage: /^usage: post-thaw-script thaw\|freezeFail \[scriptArg\] \(got "bogus"\)\n$/ },
    { name: 'pre-freeze-script', args: ['bogus'], usage: /^usage: pre-freeze-script \[freeze\] \[scriptArg\] \(got "bogus"\)\n$/ },
    // no channel from a freeze on its descriptor 3
    { name: 'pre-freeze-mysql-lock', args: [], usage: /^pre-freeze-mysql-lock is started by pre-freeze-script; it is not run by hand\n$/ },
  ];
  for (const { name, args, usage } of cases) {
    const result = await runHook(setup, name, args);
    const command = [name, ...args].join(' ');
    assert.equal(result.code, 2, `${command}: ${result.stderr}`);
    assert.match(result.stderr, usage, command);
    assert.equal(result.stdout, '', command);
  }
  assert.deepEqual(readLog(setup), [], 'a usage error is not an operation: nothing is logged');
  assert.equal(fs.existsSync(setup.runDir), false, 'nothing was started');
  await assertNothingLeft();
});

// ---------------------------------------------------------------------------------------------------
// 8. the admin's command line

test('vmware-mysql-snapshot: --version, --help, status, status --json, an unknown command', { timeout: TEST_TIMEOUT_MS }, async () => {
  const setup = setupWith();
  const packageJson = JSON.parse(fs.readFileSync(path.resolve(__dirname, '..', '..', '..', 'package.json'), 'utf8')) as { version: string };

  const version = await runHook(setup, 'vmware-mysql-snapshot', ['--version']);
  assert.equal(version.code, 0, version.stderr);
  assert.equal(version.stdout.trim(), packageJson.version);

  const help = await runHook(setup, 'vmware-mysql-snapshot', ['--help']);
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /^Usage: vmware-mysql-snapshot /);
  for (const command of ['freeze', 'thaw', 'status']) {
    assert.match(help.stdout, new RegExp(`^\\s+${command}\\b`, 'm'), `--help lists ${command}`);
  }

  const status = await runHook(setup, 'vmware-mysql-snapshot', ['status']);
  assert.equal(status.code, 0, status.stderr);
  assert.match(status.stdout, /^idle: no lock held, no freeze running\n/);

  const json = await runHook(setup, 'vmware-mysql-snapshot', ['status', '--json']);
  assert.equal(json.code, 0, json.stderr);
  const report = JSON.parse(json.stdout) as { phase: string; current: unknown; runDir: string };
  assert.equal(report.phase, 'idle');
  assert.equal(report.current, null);
  assert.equal(report.runDir, setup.runDir);

  const nonsense = await runHook(setup, 'vmware-mysql-snapshot', ['nonsense']);
  assert.notEqual(nonsense.code, 0, 'an unknown command fails');
  assert.equal(nonsense.code, 2, nonsense.stderr);
  assert.match(nonsense.stderr, /unknown command 'nonsense'/);

  assert.deepEqual(readLog(setup), [], 'the CLI above ran no operation: nothing is logged');
  await assertNothingLeft();
});

// ---------------------------------------------------------------------------------------------------
// 4. server down (last: it stops and restarts the shared server)

test('the server is down: freeze skips (or fails with if_server_down = fail), thaw needs no MySQL', { timeout: TEST_TIMEOUT_MS }, async () => {
  const skip = setupWith();
  const fail = setupWith({ snapshot: { if_server_down: 'fail' } });
  await server.stop();
  try {
    const skipped = await runHook(skip, 'pre-freeze-script', ['freeze']);
    assert.equal(skipped.code, 0, skipped.stderr);
    assert.match(skipped.stdout, /^the server is not running: nothing to quiesce \(if_server_down = skip\)\n$/);
    assert.equal(skipped.stderr, '');
    assert.deepEqual(events(readLog(skip)), ['freeze.start', 'freeze.server_down']);

    const failed = await runHook(fail, 'pre-freeze-script', ['freeze']);
    assert.equal(failed.code, 1, failed.stderr);
    assert.match(failed.stderr, /^freeze failed: the server is not running \(socket /);
    assert.ok(failed.stderr.includes(server.socket), failed.stderr);
    assert.equal(lineOf(readLog(fail), 'freeze.failed')['code'], 'SERVER_DOWN');

    // The agent thaws after the skipped freeze: nothing held, and MySQL is not needed to find that out.
    const thawed = await runHook(skip, 'post-thaw-script', ['thaw']);
    assert.equal(thawed.code, 0, thawed.stderr);
    assert.equal(thawed.stdout, 'nothing was held\n');
    const thawLog = readLog(skip).filter((line) => line['op'] === 'thaw');
    assert.deepEqual(events(thawLog), ['thaw.start', 'thaw.nothing_held']);
    assert.deepEqual(ourHolders(), [], 'no pre-freeze-mysql-lock process is left');
  } finally {
    await server.start();
  }
  await assertNothingLeft();
});
