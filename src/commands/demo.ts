/**
 * `vmware-mysql-snapshot demo`: a real freeze, a hold with writes waiting, and a real thaw, against a
 * throwaway MariaDB in a temporary directory (only the mariadbd binaries are used, never a system
 * database). A writer inserts every 50 ms on its own connection while `lock-test --hold 3` runs; then the
 * demo shows what the database saw: the writer's stall against the hold time, the writes the lock
 * blocked, that none was lost, and the hook log. Everything is removed afterwards, also on Ctrl-C.
 */
import fs = require('node:fs');
import os = require('node:os');
import path = require('node:path');
import { Writable } from 'node:stream';
import type { Connection, RowDataPacket } from 'mysql2/promise';
import { CONFIG_ENV, loadSettings, type Settings } from '../config/settings';
import { lockTest, type LockTestResult } from './locktest';
import { formatStatus, readStatus } from './status';
import { findMariaDBBinaries, INSTALL_HINT, ThrowawayMariaDB } from './throwaway';

const HOLD_SECONDS = 3;
const WRITE_EVERY_MS = 50;
/** An insert slower than this waited for the lock; the writer's stall may differ from the hold by this much. */
const STALL_TOLERANCE_MS = 250;
const INTERRUPTED_EXIT = 130;

export interface DemoOptions {
  output?: NodeJS.WritableStream;
}

const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const secs = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
const errorText = (error: unknown): string => (error instanceof Error ? error.message : String(error));

/** Inserts into app.t every WRITE_EVERY_MS on its own connection, recording each insert's latency. */
class Writer {
  readonly latencies: number[] = [];
  readonly errors: string[] = [];
  pendingSince: number | undefined;
  private stopped = false;
  private stopRequested = (): void => undefined;
  /** A destroyed mysql2 connection never settles its pending query: the loop must not wait for it. */
  private readonly stopping = new Promise<void>((resolve) => (this.stopRequested = resolve));
  private readonly done: Promise<void>;

  constructor(private readonly connection: Connection) {
    connection.on('error', () => undefined);
    this.done = this.loop();
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      const started = (this.pendingSince = performance.now());
      const insert = this.connection.query('INSERT INTO app.t (v, note) VALUES (?, ?)', [this.latencies.length, 'writer']).then(
        () => void this.latencies.push(performance.now() - started),
        (error: unknown) => void (this.stopped ? undefined : this.errors.push(errorText(error))),
      );
      await Promise.race([insert, this.stopping]);
      this.pendingSince = undefined;
      await delay(WRITE_EVERY_MS);
    }
  }

  /** Whether `count` inserts have completed within timeoutMs. */
  async waitFor(count: number, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.latencies.length < count && Date.now() < deadline) await delay(10);
    return this.latencies.length >= count;
  }

  /** Lets the current insert finish. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
    this.connection.destroy();
  }

  /** Does not wait for an insert still waiting for the lock. */
  kill(): void {
    this.stopped = true;
    this.stopRequested();
    this.connection.destroy();
  }
}

/** Indents everything written through it, live lines (\r) included. */
class Indented extends Writable {
  private atLineStart = true;

  constructor(
    private readonly target: NodeJS.WritableStream,
    private readonly indent: string,
  ) {
    super({ decodeStrings: false });
  }

  override _write(chunk: Buffer | string, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    let text = '';
    for (const character of chunk.toString()) {
      if (this.atLineStart && character !== '\n' && character !== '\r') text += this.indent;
      text += character;
      this.atLineStart = character === '\n' || character === '\r';
    }
    this.target.write(text);
    callback();
  }
}

interface Probe {
  errno: number | undefined;
  message: string;
  ms: number;
}

class Demo {
  private interrupted: NodeJS.Signals | undefined;
  private interruptStep: (error: Error) => void = () => undefined;
  private inLockTest = false;
  private readonly failures: string[] = [];
  private currentStep = 0;
  private dir: string | undefined;
  private server: ThrowawayMariaDB | undefined;
  private writer: Writer | undefined;
  private settings: Settings | undefined;
  private readonly savedConfigEnv = process.env[CONFIG_ENV];

  private readonly onSignal = (signal: NodeJS.Signals): void => {
    if (this.interrupted !== undefined) return;
    this.interrupted = signal;
    // lock-test handles the signal itself (it thaws before it returns); any other step is cut short.
    if (!this.inLockTest) this.interruptStep(new Error(`interrupted by ${signal}`));
  };

  constructor(private readonly output: NodeJS.WritableStream) {}

  private print(line = ''): void {
    this.output.write(`${line}\n`);
  }

  /** The demo's own steps go quiet once interrupted, while the clean-up reports. */
  private say(line = ''): void {
    if (this.interrupted === undefined) this.print(line);
  }

  /** Starts step n; throws once interrupted, so that a step cut short does not go on to the next. */
  private step(n: number, title: string): void {
    if (this.interrupted !== undefined) throw new Error(`interrupted by ${this.interrupted}`);
    this.currentStep = n;
    this.say(`\n[${n}] ${title}`);
  }

  private detail(line: string): void {
    this.say(`    ${line}`);
  }

  private expect(ok: boolean, what: string): boolean {
    if (!ok && this.interrupted === undefined) {
      this.failures.push(`step ${this.currentStep}: ${what}`);
      this.detail(`NOT AS EXPECTED: ${what}`);
    }
    return ok;
  }

  async run(): Promise<number> {
    const begun = performance.now();
    this.say(`vmware-mysql-snapshot demo: a real freeze, writes waiting for ${HOLD_SECONDS} s, and a thaw, against a throwaway MariaDB`);
    const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
    for (const signal of signals) process.on(signal, this.onSignal);
    const interruption = new Promise<never>((_, reject) => (this.interruptStep = reject));
    interruption.catch(() => undefined);
    try {
      await Promise.race([this.steps(), interruption]);
      if (this.interrupted !== undefined) throw new Error(`interrupted by ${this.interrupted}`);
    } catch (error) {
      if (this.interrupted === undefined) {
        this.failures.push(`step ${this.currentStep}: ${errorText(error)}`);
        this.print(`    ERROR: ${errorText(error)}`);
      } else {
        this.print(`\n    ${errorText(error)}`);
      }
    } finally {
      this.print('\n[7] Clean up');
      await this.cleanUp();
      for (const signal of signals) process.removeListener(signal, this.onSignal);
    }
    const took = secs(performance.now() - begun);
    if (this.interrupted !== undefined) {
      this.print(`\nDemo interrupted after ${took}.`);
      return INTERRUPTED_EXIT;
    }
    if (this.failures.length === 0) {
      this.print(`\nDemo OK in ${took}: writes waited during the snapshot window, none were lost.`);
      return 0;
    }
    this.print([`\nDemo FAILED in ${took}:`, ...this.failures.map((failure) => `  - ${failure}`)].join('\n'));
    return 1;
  }

  private async steps(): Promise<void> {
    this.step(1, 'MariaDB binaries');
    const binaries = findMariaDBBinaries();
    if (binaries === undefined) {
      this.detail('mariadbd and mariadb-install-db were not found (in PATH, /usr/sbin, /usr/bin). On Debian/Ubuntu install them with:');
      this.detail(`  ${INSTALL_HINT}`);
      this.detail('The demo runs only the binaries, on a temporary data directory: not the system service, not its databases.');
      this.expect(false, 'the MariaDB server binaries are not installed');
      return;
    }
    this.detail(`${binaries.server}, ${binaries.install}`);

    this.step(2, 'Throwaway server and hook configuration');
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vms-demo-'));
    const started = performance.now();
    const server = (this.server = new ThrowawayMariaDB({ parentDir: this.dir }));
    await server.start();
    this.detail(`MariaDB ${server.version} started in ${secs(performance.now() - started)} (mariadb-install-db, then mariadbd --no-defaults)`);
    this.detail(`data ${server.datadir}, socket ${server.socket}, port ${server.port} on 127.0.0.1`);
    const configFile = this.writeConfig(server, this.dir);
    process.env[CONFIG_ENV] = configFile;
    const settings = (this.settings = loadSettings(configFile, { needCredentials: true }));
    this.detail(`config ${configFile} (mode 600; ${CONFIG_ENV} points at it for this run)`);
    this.detail(`account ${server.snapshotUser.name} (RELOAD, PROCESS, BINLOG MONITOR), run_dir ${settings.runDir}, log ${settings.logFile}`);

    this.step(3, `Background writer: an INSERT into app.t every ${WRITE_EVERY_MS} ms on its own connection`);
    const writer = (this.writer = new Writer(await server.connect()));
    if (!this.expect(await writer.waitFor(5, 5000), 'the writer did not manage 5 inserts in 5 s')) return;
    this.detail(`${writer.latencies.length} inserts so far, the slowest ${Math.max(...writer.latencies).toFixed(1)} ms`);

    this.step(4, `vmware-mysql-snapshot lock-test --hold ${HOLD_SECONDS}: the real freeze, a ${HOLD_SECONDS} s hold (the snapshot), the real thaw`);
    const terminal = this.output === process.stdout && process.stdout.isTTY === true;
    const watcher = this.watchDuringHold(server, settings);
    this.inLockTest = true;
    let result: LockTestResult;
    try {
      result = await lockTest({ configPath: configFile, holdSeconds: HOLD_SECONDS, terminal, output: new Indented(this.output, '    ') });
    } finally {
      this.inLockTest = false;
      watcher.stop();
    }
    if (this.interrupted !== undefined) throw new Error(`interrupted by ${this.interrupted}; lock-test released the lock`);
    const observed = await watcher.done;
    this.expect(result.exitCode === 0, `lock-test exited ${result.exitCode}, not 0`);
    if (!this.expect(result.locked, 'lock-test did not hold the lock')) return;
    this.expect(result.coordinates?.binlog !== null && result.coordinates?.binlog !== undefined, 'the report has no binary-log coordinates');

    this.step(5, 'What the database saw');
    const proceeded = await writer.waitFor(writer.latencies.length + 1, 5000);
    this.expect(proceeded, 'the writer made no progress within 5 s of the thaw');
    await writer.stop();
    const stall = Math.max(...writer.latencies);
    const held = result.heldMs ?? 0;
    const sorted = [...writer.latencies].sort((a, b) => a - b);
    const typical = sorted[Math.floor(sorted.length / 2)] ?? 0;
    const stalled = writer.latencies.filter((ms) => ms > STALL_TOLERANCE_MS).length;
    this.detail(`writer: ${writer.latencies.length} inserts, ${writer.errors.length} errors, typical ${typical.toFixed(1)} ms`);
    this.detail(`writer: its longest stall ${secs(stall)}; the lock was held ${secs(held)}`);
    this.expect(writer.errors.length === 0, `the writer had errors: ${writer.errors.join('; ')}`);
    this.expect(Math.abs(stall - held) < STALL_TOLERANCE_MS, `the writer's longest stall (${secs(stall)}) does not match the hold (${secs(held)})`);
    const probe = observed.probe;
    if (probe === undefined) {
      this.expect(false, 'the hold was not seen, so no write was tried during it');
    } else {
      this.detail(`a write from another connection (lock_wait_timeout = 1) gave up after ${secs(probe.ms)}: error ${probe.errno ?? '-'}: ${probe.message}`);
      this.expect(probe.errno === 1205, `the blocked INSERT ended with ${probe.errno ?? 'success'}, not error 1205 (lock wait timeout)`);
    }
    const blockedWrites = stalled + (probe?.errno === 1205 ? 1 : 0);
    const blockedSessions = result.blocked?.length ?? 0;
    this.detail(`writes blocked by the lock: ${blockedWrites} (${stalled} of the writer's, ${probe?.errno === 1205 ? 1 : 0} from the other connection); lock-test saw ${blockedSessions} blocked session(s)`);
    this.expect(stalled === 1, `${stalled} of the writer's inserts waited longer than ${STALL_TOLERANCE_MS} ms, not 1`);
    this.expect(blockedSessions >= 2, `lock-test saw ${blockedSessions} blocked session(s), not the writer and the other connection`);
    if (observed.status !== undefined) {
      this.detail('vmware-mysql-snapshot status, during the hold:');
      for (const line of observed.status.trimEnd().split('\n')) this.detail(`  ${line}`);
    }
    const rows = await server.query<RowDataPacket[]>("SELECT COUNT(*) AS `rows` FROM app.t WHERE note = 'writer'");
    const count = Number(rows[0]?.['rows']);
    this.detail(`table app.t holds ${count} writer rows: ${count === writer.latencies.length ? 'none lost' : 'NOT the number written'}`);
    this.expect(count === writer.latencies.length, `app.t holds ${count} writer rows, not ${writer.latencies.length}`);

    this.step(6, `The hook log ${settings.logFile}`);
    const log = readLog(settings.logFile);
    for (const entry of log) this.detail(`${String(entry['op']).padEnd(6)} ${String(entry['event']).padEnd(15)} ${String(entry['msg'])}`);
    const events = new Set(log.map((entry) => entry['event']));
    this.expect(events.has('lock.acquired') && events.has('thaw.released'), 'the log lacks lock.acquired or thaw.released');
  }

  /**
   * While lock-test runs: once the holder holds, `status` as an admin would see it, and a write from
   * another connection that may wait only 1 s for locks.
   */
  private watchDuringHold(server: ThrowawayMariaDB, settings: Settings): { stop: () => void; done: Promise<{ probe?: Probe; status?: string }> } {
    let stopped = false;
    const done = (async (): Promise<{ probe?: Probe; status?: string }> => {
      while (!stopped) {
        const report = readStatus(settings);
        if (report.phase === 'holding') {
          const status = formatStatus(report);
          const probe = await tryBlockedWrite(server);
          return { probe, status };
        }
        await delay(20);
      }
      return {};
    })();
    return { stop: () => (stopped = true), done };
  }

  private writeConfig(server: ThrowawayMariaDB, dir: string): string {
    const file = path.join(dir, 'vmware-mysql-snapshot.cnf');
    const text = [
      '# written by vmware-mysql-snapshot demo for its throwaway server',
      '[client]',
      `user = ${server.snapshotUser.name}`,
      `password = "${server.snapshotUser.password}"`,
      `socket = ${server.socket}`,
      '',
      '[snapshot]',
      `run_dir = ${path.join(dir, 'run')}`,
      `log_file = ${path.join(dir, 'hook.log')}`,
      `history_file = ${path.join(dir, 'history.json')}`,
      'lock_wait_timeout = 2',
      'long_query_time = 1',
      'max_lock_time = 30',
      'freeze_timeout = 30',
      '',
    ].join('\n');
    fs.writeFileSync(file, text, { mode: 0o600 });
    fs.chmodSync(file, 0o600);
    return file;
  }

  private async cleanUp(): Promise<void> {
    this.writer?.kill();
    const settings = this.settings;
    // lock-test always thaws; should anything still hold (an unexpected error), release it before the server goes.
    if (settings !== undefined) {
      const phase = readStatus(settings).phase;
      if (phase === 'holding' || phase === 'locking') {
        const { runOperation } = await import('../snapshot/hook');
        await runOperation('thaw', { configPath: settings.file }).catch(() => undefined);
      }
    }
    await this.server?.remove().catch((error: unknown) => this.print(`    cannot remove the server: ${errorText(error)}`));
    if (this.dir !== undefined) fs.rmSync(this.dir, { recursive: true, force: true });
    if (this.savedConfigEnv === undefined) delete process.env[CONFIG_ENV];
    else process.env[CONFIG_ENV] = this.savedConfigEnv;
    this.print(`    writer stopped, server stopped, ${this.dir ?? 'nothing'} removed`);
  }
}

/** A write from another connection must give up with error 1205 while the lock is held. */
async function tryBlockedWrite(server: ThrowawayMariaDB): Promise<Probe> {
  const connection = await server.connect();
  connection.on('error', () => undefined);
  const started = performance.now();
  try {
    await connection.query('SET SESSION lock_wait_timeout = 1');
    await connection.query('INSERT INTO app.t (v, note) VALUES (?, ?)', [-1, 'while locked']);
    return { errno: undefined, message: 'the INSERT succeeded', ms: performance.now() - started };
  } catch (error) {
    return { errno: (error as { errno?: number }).errno, message: errorText(error), ms: performance.now() - started };
  } finally {
    connection.destroy();
  }
}

function readLog(file: string): Array<Record<string, unknown>> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  const entries: Array<Record<string, unknown>> = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    try {
      entries.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // not ours
    }
  }
  return entries;
}

export async function runDemo(options: DemoOptions = {}): Promise<number> {
  return new Demo(options.output ?? process.stdout).run();
}
