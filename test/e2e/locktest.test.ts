/**
 * `vmware-mysql-snapshot lock-test` and `vmware-mysql-snapshot demo`, end to end: the BUILT executable
 * against a throwaway MariaDB with a writer running (lock-test), and on its own (demo, which starts its
 * own server).
 */
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Connection } from 'mysql2/promise';
import { CONFIG_ENV } from '../../src/config/settings';
import { HOLDER_MARKER, makeHookSetup, ourHolders, readLog, runHook, spawnHook, type HookResult, type HookSetup } from '../support/hook';
import { startMariaDB, type TestServer, tryInsert } from '../support/mariadb';
import { sleep } from '../support/wait';

let server: TestServer;

before(async () => {
  server = await startMariaDB();
});

after(async () => {
  await server.remove();
});

/** Inserts into app.t every 50 ms on its own connection until stopped. */
class Writer {
  inserts = 0;
  readonly errors: string[] = [];
  private stopped = false;
  private readonly done: Promise<void>;

  constructor(private readonly connection: Connection) {
    this.done = this.loop();
  }

  static async start(): Promise<Writer> {
    const writer = new Writer(await server.connect());
    for (let i = 0; i < 200 && writer.inserts < 3; i += 1) await sleep(10);
    assert.ok(writer.inserts >= 3, 'the writer is writing');
    return writer;
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      try {
        await this.connection.query("INSERT INTO app.t (v, note) VALUES (1, 'lock-test writer')");
        this.inserts += 1;
      } catch (error) {
        if (!this.stopped) this.errors.push((error as Error).message);
      }
      await sleep(50);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
    await this.connection.end();
  }
}

/** A setup whose lock, should a failing test leave one, is released when the test ends. */
function newSetup(context: TestContext): HookSetup {
  const setup = makeHookSetup(server);
  context.after(async () => {
    await runHook(setup, 'post-thaw-script', ['freezeFail']);
    fs.rmSync(setup.dir, { recursive: true, force: true });
  });
  return setup;
}

/** The report's `label: value` lines (indented or not), by label. */
function reportOf(stdout: string): Map<string, string> {
  const report = new Map<string, string>();
  for (const line of stdout.split(/\r?\n/)) {
    const match = /^\s*(config|freeze|time to lock|hold time|coordinates|blocked sessions|longest wait|interrupted|released early|thaw):\s+(.*)$/.exec(line);
    if (match?.[1] !== undefined && match[2] !== undefined && !report.has(match[1])) report.set(match[1], match[2].trim());
  }
  return report;
}

function field(report: Map<string, string>, label: string, output: string): string {
  const value = report.get(label);
  assert.ok(value !== undefined, `the report has no "${label}:" line:\n${output}`);
  return value;
}

function secondsIn(value: string): number {
  const match = /^(\d+(?:\.\d+)?) s\b/.exec(value);
  assert.ok(match?.[1] !== undefined, `"${value}" does not start with a number of seconds`);
  return Number(match[1]);
}

function describe(result: HookResult): string {
  return `exit ${result.code ?? result.signal}\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`;
}

async function assertNothingHeld(setup: HookSetup): Promise<void> {
  assert.deepEqual(ourHolders(), [], 'no lock holder process is left');
  assert.equal(await tryInsert(server), 'ok', 'writes flow');
  const status = await runHook(setup, 'vmware-mysql-snapshot', ['status', '--json']);
  assert.equal(JSON.parse(status.stdout).phase, 'idle', status.stdout);
  assert.equal(fs.existsSync(path.join(setup.runDir, 'state.json')), false, 'no holder state is left');
}

/** Waits until the holder of `setup` holds the lock. */
async function waitUntilHeld(setup: HookSetup, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const state = JSON.parse(fs.readFileSync(path.join(setup.runDir, 'state.json'), 'utf8')) as { phase?: string };
      if (state.phase === 'held') return;
    } catch {
      // not yet there
    }
    assert.ok(Date.now() < deadline, 'the lock was not held in time');
    await sleep(20);
  }
}

test('lock-test --hold 2 freezes, holds 2 s while a writer waits, thaws, and reports', async (context) => {
  const setup = newSetup(context);
  const writer = await Writer.start();
  let result: HookResult;
  try {
    result = await runHook(setup, 'vmware-mysql-snapshot', ['lock-test', '--hold', '2']);
  } finally {
    await writer.stop();
  }
  const output = describe(result);
  assert.equal(result.code, 0, output);
  assert.deepEqual(writer.errors, [], 'the writer only waited');
  assert.ok(!result.stdout.includes('\r'), `no live line without a terminal:\n${output}`);
  const report = reportOf(result.stdout);

  assert.equal(field(report, 'config', output), setup.configFile);
  assert.ok(secondsIn(field(report, 'time to lock', output)) < 10, output);
  assert.match(field(report, 'time to lock', output), /1 attempt/);
  const held = secondsIn(field(report, 'hold time', output));
  assert.ok(held >= 1.9 && held < 3.5, `hold time ${held} s is not about 2 s:\n${output}`);
  assert.match(field(report, 'coordinates', output), /^binlog binlog\.\d+:\d+, gtid \d+-\d+-\d+/);
  const blocked = Number(field(report, 'blocked sessions', output));
  assert.ok(blocked >= 1, `the writer was not seen blocked:\n${output}`);
  const longest = field(report, 'longest wait', output);
  const waited = secondsIn(longest);
  assert.ok(waited >= 1.5 && waited < 3.5, `longest wait ${waited} s is not about 2 s:\n${output}`);
  assert.match(longest, /Waiting for .*lock.*INSERT INTO app\.t/);
  assert.match(field(report, 'thaw', output), /^exit 0: released after \d+ ms/);

  // The coordinates are those freeze logged, and the run went through the hook's own names.
  const log = readLog(setup);
  const acquired = log.find((entry) => entry['event'] === 'lock.acquired');
  assert.ok(acquired, `no lock.acquired in the log: ${log.map((entry) => entry['event']).join(', ')}`);
  assert.ok(field(report, 'coordinates', output).startsWith(`binlog ${acquired['coordinates'].binlog.file}:${acquired['coordinates'].binlog.position}`));
  assert.ok(log.some((entry) => entry['event'] === 'thaw.released'), 'thaw released the lock');
  await assertNothingHeld(setup);
});

test('lock-test on a terminal redraws one live line with the hold time and the waiting sessions', async (context) => {
  const setup = newSetup(context);
  const writer = await Writer.start();
  const command = `${path.join(setup.binDir, 'vmware-mysql-snapshot')} lock-test --hold 2`;
  let result: HookResult;
  try {
    result = await runUnderTerminal(command, { PATH: process.env.PATH, [CONFIG_ENV]: setup.configFile, TZ: HOLDER_MARKER });
  } finally {
    await writer.stop();
  }
  const output = describe(result);
  assert.equal(result.code, 0, output);
  const redraws = result.stdout.match(/\rholding \d+\.\d s of 2\.0 s \| \d+ session\(s\) waiting on the lock/g) ?? [];
  assert.ok(redraws.length >= 4, `expected the live line redrawn about 4 times a second, got ${redraws.length}:\n${JSON.stringify(result.stdout)}`);
  assert.match(result.stdout, /\rholding \d+\.\d s of 2\.0 s \| 1 session\(s\) waiting on the lock, longest \d+\.\d s \| Ctrl-C releases/);
  // The live line is cleared before the report, which follows as on a pipe.
  const report = reportOf(result.stdout);
  assert.ok(Number(field(report, 'blocked sessions', output)) >= 1, output);
  assert.match(field(report, 'thaw', output), /^exit 0/);
  await assertNothingHeld(setup);
});

test('Ctrl-C during the hold thaws before lock-test exits', async (context) => {
  const setup = newSetup(context);
  const child = spawnHook(setup, 'vmware-mysql-snapshot', ['lock-test', '--hold', '60']);
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const closed = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  await waitUntilHeld(setup);
  assert.equal(await tryInsert(server), 'ER_LOCK_WAIT_TIMEOUT', 'the lock is held');
  const interruptedAt = Date.now();
  child.kill('SIGINT');
  const code = await closed;
  const output = `exit ${code}\nstdout:\n${stdout}\nstderr:\n${stderr}`;
  assert.equal(code, 130, output);
  assert.ok(Date.now() - interruptedAt < 10_000, 'it exits promptly');
  const report = reportOf(stdout);
  assert.match(field(report, 'interrupted', output), /SIGINT/);
  assert.match(field(report, 'thaw', output), /^exit 0: released after \d+ ms/);
  assert.ok(secondsIn(field(report, 'hold time', output)) < 30, output);
  await assertNothingHeld(setup);
});

test('lock-test with a bad --hold changes nothing and exits 2', async (context) => {
  const setup = newSetup(context);
  const result = await runHook(setup, 'vmware-mysql-snapshot', ['lock-test', '--hold', 'ten']);
  assert.equal(result.code, 2, describe(result));
  assert.match(result.stderr, /--hold/);
  assert.deepEqual(readLog(setup), [], 'no freeze was attempted');
});

test('demo: a throwaway MariaDB, lock-test with a writer, the report, and everything removed', async (context) => {
  const setup = newSetup(context);
  const result = await runHook(setup, 'vmware-mysql-snapshot', ['demo'], { timeoutMs: 120_000 });
  const output = describe(result);
  assert.equal(result.code, 0, output);
  assert.match(result.stdout, /\nDemo OK in \d+\.\d+ s: writes waited during the snapshot window, none were lost\./);
  const report = reportOf(result.stdout);
  assert.ok(secondsIn(field(report, 'time to lock', output)) < 10);
  const held = secondsIn(field(report, 'hold time', output));
  assert.ok(held >= 2.9 && held < 4.5, `hold time ${held} s is not about 3 s`);
  assert.match(field(report, 'coordinates', output), /^binlog binlog\.\d+:\d+/);
  assert.ok(Number(field(report, 'blocked sessions', output)) >= 2, 'the writer and the other connection were blocked');
  assert.match(result.stdout, /writer: its longest stall \d+\.\d+ s; the lock was held \d+\.\d+ s/);
  assert.match(result.stdout, /gave up after \d+\.\d+ s: error 1205/);
  assert.match(result.stdout, /table app\.t holds \d+ writer rows: none lost/);
  assert.match(result.stdout, /lock\.acquired/);
  assert.match(result.stdout, /thaw\.released/);
  const removed = /writer stopped, server stopped, (\S+) removed/.exec(result.stdout)?.[1];
  assert.ok(removed !== undefined, output);
  assert.equal(fs.existsSync(removed), false, `${removed} is left behind`);
  assert.deepEqual(processesMentioning(removed), [], 'no process of the demo is left');
  assert.deepEqual(ourHolders(), [], 'no lock holder process is left');
  // The setup's own configuration was not used: nothing happened there.
  assert.deepEqual(readLog(setup), []);
});

/** Runs a shell command under a pseudo-terminal (script(1) from bsdutils); stdout is what the terminal showed. */
function runUnderTerminal(command: string, env: NodeJS.ProcessEnv, timeoutMs = 60_000): Promise<HookResult> {
  const started = Date.now();
  const child = spawn('script', ['-qec', command, '/dev/null'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${command} did not finish within ${timeoutMs} ms\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`cannot run script(1) (bsdutils): ${error.message}`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - started });
    });
  });
}

/** PIDs whose command line mentions `text` (e.g. a mariadbd on the demo's directory). */
function processesMentioning(text: string): number[] {
  const pids: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (fs.readFileSync(`/proc/${entry}/cmdline`, 'latin1').includes(text)) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}
