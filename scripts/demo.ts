/**
 * `npm run demo`: one freeze/thaw cycle of the built executable against a throwaway local MariaDB,
 * with a writer that keeps inserting, to show what a snapshot looks like from the database's side.
 */
import * as fs from 'node:fs';
import type { Connection } from 'mysql2/promise';
import { makeHookSetup, readLog, runHook, type HookResult, type HookSetup } from '../test/support/hook';
import { mariadbInstalled, startMariaDB, type TestServer } from '../test/support/mariadb';

const HOLD_MS = 2000;
const WRITE_EVERY_MS = 50;
const STALL_TOLERANCE_MS = 250;

const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const secs = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
const print = (line = ''): void => void process.stdout.write(`${line}\n`);
/** Once interrupted, the demo's own steps go quiet while the clean-up reports. */
let interrupted = false;
const say = (line = ''): void => (interrupted ? undefined : print(line));
let currentStep = 0;
const step = (n: number, title: string): void => say(`\n[${(currentStep = n)}] ${title}`);
const detail = (line: string): void => say(`    ${line}`);
const errorText = (error: unknown): string => (error instanceof Error ? error.message : String(error));

const failures: string[] = [];
function expect(ok: boolean, stepNumber: number, what: string): boolean {
  if (!ok && !interrupted) {
    failures.push(`step ${stepNumber}: ${what}`);
    detail(`NOT AS EXPECTED: ${what}`);
  }
  return ok;
}

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
    this.done = this.loop();
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      const started = (this.pendingSince = performance.now());
      const insert = this.connection.query('INSERT INTO app.t (v, note) VALUES (?, ?)', [this.latencies.length, 'writer']).then(
        () => { this.latencies.push(performance.now() - started); },
        (error: unknown) => { if (!this.stopped) this.errors.push(errorText(error)); },
      );
      await Promise.race([insert, this.stopping]);
      this.pendingSince = undefined;
      await delay(WRITE_EVERY_MS);
    }
  }

  /** Succeeds once `count` inserts have completed, or false after timeoutMs. */
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

let server: TestServer | undefined;
let setup: HookSetup | undefined;
let writer: Writer | undefined;
let frozen = false;

async function cleanUp(): Promise<void> {
  writer?.kill();
  // Interrupted while locked: let the hook release its holder process before the server goes away.
  if (frozen && setup !== undefined) await runHook(setup, 'post-thaw-script', ['thaw'], { timeoutMs: 10_000 }).catch(() => undefined);
  await server?.remove().catch((error: unknown) => print(`    cannot remove the server: ${errorText(error)}`));
  if (setup !== undefined) fs.rmSync(setup.dir, { recursive: true, force: true });
}

function showHook(result: HookResult): void {
  detail(`exit ${result.code ?? result.signal} after ${result.ms} ms`);
  const lines = (stream: string, text: string): string[] => text.split('\n').filter(Boolean).map((line) => `${stream}: ${line}`);
  [...lines('stdout', result.stdout), ...lines('stderr', result.stderr)].forEach(detail);
}

/** A write from another connection must give up with error 1205 while the lock is held. */
async function tryBlockedWrite(s: TestServer): Promise<void> {
  const connection = await s.connect();
  const started = performance.now();
  try {
    await connection.query('SET SESSION lock_wait_timeout = 1');
    await connection.query('INSERT INTO app.t (v, note) VALUES (?, ?)', [-1, 'while locked']);
    expect(false, 5, 'an INSERT succeeded while the lock was held');
  } catch (error) {
    const { errno } = error as { errno?: number };
    detail(`a write from another connection (lock_wait_timeout = 1) failed after ${secs(performance.now() - started)}:`);
    detail(`  error ${errno}: ${errorText(error)}`);
    expect(errno === 1205, 5, `the blocked INSERT failed with error ${errno}, not 1205 (lock wait timeout)`);
  } finally {
    connection.destroy();
  }
}

async function demo(): Promise<void> {
  step(1, 'MariaDB');
  if (!mariadbInstalled()) {
    detail('mariadbd and mariadb-install-db were not found. On Debian/Ubuntu install them with:');
    detail('  sudo apt-get install mariadb-server');
    detail('The demo runs only the mariadbd binary, on a temporary data directory: not the system service.');
    process.exit(1);
  }
  detail('mariadbd found');

  step(2, 'Throwaway server');
  let started = performance.now();
  server = await startMariaDB();
  detail(`started in ${secs(performance.now() - started)} (a first run also makes a template data directory)`);
  detail(`dir ${server.dir}, socket ${server.socket}`);
  setup = makeHookSetup(server);
  detail(`hook config ${setup.configFile}, log ${setup.logFile}`);

  step(3, `Background writer: an INSERT into app.t every ${WRITE_EVERY_MS} ms on its own connection`);
  writer = new Writer(await server.connect());
  if (!expect(await writer.waitFor(5, 5000), 3, 'the writer did not manage 5 inserts in 5 s')) return;
  detail(`${writer.latencies.length} inserts so far, the slowest ${Math.max(...writer.latencies).toFixed(1)} ms`);

  step(4, 'Freeze: pre-freeze-script freeze');
  const freeze = await runHook(setup, 'pre-freeze-script', ['freeze']);
  const lockedAt = performance.now();
  frozen = freeze.code === 0;
  showHook(freeze);
  if (!expect(freeze.code === 0 && /^locked: binlog \S+:\d+/.test(freeze.stdout), 4, 'freeze did not exit 0 with "locked: binlog file:position"')) return;

  step(5, `Locked: the hypervisor takes its snapshot now (holding ${HOLD_MS / 1000} s)`);
  await tryBlockedWrite(server);
  const status = await runHook(setup, 'vmware-mysql-snapshot', ['status']);
  detail(`vmware-mysql-snapshot status (exit ${status.code}):`);
  for (const line of status.stdout.trimEnd().split('\n')) detail(`  ${line}`);
  expect(status.code === 0 && status.stdout.startsWith('holding the lock'), 5, 'status did not report "holding the lock"');
  await delay(HOLD_MS - (performance.now() - lockedAt));
  const waiting = writer.pendingSince === undefined ? 0 : performance.now() - writer.pendingSince;
  detail(`writer: its current insert has been waiting ${secs(waiting)}`);
  expect(waiting > HOLD_MS / 2, 5, 'the writer was not blocked by the lock');

  step(6, 'Thaw: post-thaw-script thaw');
  const thaw = await runHook(setup, 'post-thaw-script', ['thaw']);
  frozen = false;
  showHook(thaw);
  const released = /^released after (\d+) ms/.exec(thaw.stdout);
  expect(thaw.code === 0 && released !== null, 6, 'thaw did not exit 0 with "released after N ms"');
  started = performance.now();
  const proceeded = await writer.waitFor(writer.latencies.length + 1, 5000);
  if (!expect(proceeded, 6, 'the writer made no progress within 5 s of the thaw')) return;
  detail(`writer: its next insert succeeded ${Math.round(performance.now() - started)} ms after the thaw returned`);
  await writer.stop();
  const stall = Math.max(...writer.latencies);
  const heldMs = released !== null ? Number(released[1]) : performance.now() - lockedAt;
  const typical = [...writer.latencies].sort((a, b) => a - b)[Math.floor(writer.latencies.length / 2)];
  detail(`writer: ${writer.latencies.length} inserts, ${writer.errors.length} errors, typical ${typical.toFixed(1)} ms`);
  detail(`writer: longest stall ${secs(stall)}, the lock was held ${secs(heldMs)} (the demo held it ${secs(HOLD_MS)} + thaw)`);
  expect(writer.errors.length === 0, 6, `the writer had errors: ${writer.errors.join('; ')}`);
  const [{ rows }] = await server.query<Array<{ rows: number }>>("SELECT COUNT(*) AS `rows` FROM app.t WHERE note = 'writer'");
  detail(`table app.t holds ${rows} writer rows`);
  expect(Number(rows) === writer.latencies.length, 6, `app.t holds ${rows} writer rows, not ${writer.latencies.length}`);
  expect(Math.abs(stall - heldMs) < STALL_TOLERANCE_MS, 6, 'the longest stall does not match the time the lock was held');

  step(7, `Hook log ${setup.logFile} (last lines)`);
  const log = readLog(setup);
  for (const entry of log.slice(-8)) detail(`${entry.event}: ${entry.msg}`);
  const events = new Set(log.map((entry) => entry.event));
  expect(events.has('lock.acquired') && events.has('lock.released'), 7, 'the log lacks lock.acquired or lock.released');
}

async function main(): Promise<number> {
  const begun = performance.now();
  say('vmware-mysql-snapshot demo: one freeze/thaw cycle against a throwaway MariaDB');
  // test/support/mariadb kills its servers on these signals and raises them again, which lands here.
  const interruption = new Promise<never>((_, reject) => {
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      process.on(signal, () => {
        if (!interrupted) reject(new Error(`interrupted by ${signal}`));
        interrupted = true;
      });
    }
  });
  try {
    await Promise.race([demo(), interruption]);
  } catch (error) {
    failures.push(`step ${currentStep}: ${errorText(error)}`);
    print(`    ${interrupted ? '' : 'ERROR: '}${errorText(error)}`);
  } finally {
    print('\n[8] Clean up');
    await cleanUp();
    print('    writer stopped, server stopped, temporary directories removed');
  }
  const took = secs(performance.now() - begun);
  if (interrupted) print(`\nDemo interrupted after ${took}.`);
  else if (failures.length === 0) print(`\nDemo OK in ${took}: writes waited during the snapshot window, none were lost.`);
  else print([`\nDemo FAILED in ${took}:`, ...failures.map((failure) => `  - ${failure}`)].join('\n'));
  return interrupted ? 130 : failures.length === 0 ? 0 : 1;
}

void main().then((code) => process.exit(code));
