/**
 * Soak test: many freeze / thaw cycles of the BUILT executable against a throwaway MariaDB under load.
 *
 *   npm run build && node build/scripts/soak.js [--cycles 200] [--writers 6] [--seed N] [--freeze-filesystem] [--json]
 *
 * Several writer connections insert rows in a loop, counting the acknowledgements; another connection
 * now and then runs a long statement (UPDATE ... SLEEP(x), SELECT SLEEP(x) FROM ..., SELECT SLEEP(x); x
 * 0.5-3 s); every cycle holds the lock for a random 0-300 ms between freeze and thaw. Every cycle must
 * either lock with the right coordinates (while locked, SHOW MASTER STATUS and @@gtid_binlog_pos equal the
 * recorded ones) and thaw with exit 0, or fail cleanly (non-zero exit, nothing held afterwards). At the
 * end: no lock left (an INSERT with lock_wait_timeout = 1 works), no holder process left, no connection of
 * the hook left, no acknowledged write lost (acknowledgements == rows), no writer or long statement
 * interrupted. Exits 1 if any of these fails, and then keeps the hook's log for a post-mortem.
 *
 * --freeze-filesystem (root, a loop device): the server's data directory is on a loop-mounted ext4 that is
 * frozen (`fsfreeze -f`) for each cycle's hold and thawed before thaw, as the agents do. Then also: a lock
 * released at the filesystem thaw (release_at = filesystem_thaw) must have seen the freeze only after it
 * began and its end only after the thaw began; a hold too short for the probe to see leaves it to thaw.
 *
 * Also measured, not an invariant: the longest writer stall outside the locked windows (the README's
 * promise is that writers never wait behind a lock attempt for longer than lock_wait_timeout). When a
 * writer has waited for longer than STALL_CAPTURE_MS outside a locked window, the server's processlist is
 * captured, so that a long stall can be explained.
 *
 * runSoak() is exported for test/e2e/soak.test.ts, which runs a short version.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import type { Connection, RowDataPacket } from 'mysql2/promise';
import { makeHookSetup, readLog, runHook, type HookResult, type HookSetup, type LogLine } from '../test/support/hook';
import { mountLoopFilesystem, type LoopFilesystem } from '../test/support/loopfs';
import { mariadbInstalled, startMariaDB, type TestServer, tryInsert } from '../test/support/mariadb';

export interface SoakOptions {
  cycles: number;
  writers: number;
  /** seed of the random choices (hold times, pauses, long statements); timing still varies from run to run */
  seed?: number;
  /** longest random hold between freeze and thaw, ms (default 300) */
  maxHoldMs?: number;
  /** longest random pause between cycles, ms (default 200) */
  maxPauseMs?: number;
  /** run the long statements (default true) */
  longStatements?: boolean;
  /** the random pause between two long statements, ms (default [500, 4000]) */
  longStatementPauseMs?: [number, number];
  /** start no new cycle after this long (ms from the start); the summary says cutShort */
  maxDurationMs?: number;
  /** put the data directory on a loop-mounted filesystem and freeze it for each hold (default false) */
  freezeFilesystem?: boolean;
  /** progress lines (default: none) */
  progress?: (line: string) => void;
}

export interface Stats {
  count: number;
  median: number;
  p95: number;
  max: number;
}

export type Phase = 'setup' | 'freeze' | 'held' | 'thaw' | 'pause' | 'end';

export interface CycleRecord {
  cycle: number;
  outcome: 'locked' | 'failed cleanly' | 'violation';
  freezeCode: number | null;
  thawCode?: number | null;
  freezeMs?: number;
  timeToLockMs?: number;
  heldMs?: number;
  /** --freeze-filesystem: whether the lock ended at the filesystem thaw or at thaw */
  releasedAt?: 'filesystem_thaw' | 'thaw';
  attempts?: number;
  /** freeze's failure code from the log (FREEZE_TIMEOUT, ...) */
  failure?: string;
  /** what freeze said when it failed */
  detail?: string;
}

export interface StallCapture {
  at: string;
  cycle: number;
  phase: Phase;
  /** how long the oldest pending writer INSERT had been waiting */
  pendingMs: number;
  /** the server's non-idle threads at that moment */
  processlist: string[];
}

export interface Stall {
  ms: number;
  /** when the INSERT started */
  at: string;
  /** the cycles and phases the INSERT overlapped, e.g. "12 freeze, 12 held" */
  during: string;
}

export interface SoakSummary {
  ok: boolean;
  seed: number;
  cycles: number;
  /** fewer cycles than asked, because maxDurationMs passed */
  cutShort: boolean;
  writers: number;
  locked: number;
  failedCleanly: number;
  /** every broken invariant, one line each */
  violations: string[];
  /** freeze exit codes and failure codes of the cycles that did not lock: "exit 1 FREEZE_TIMEOUT" -> count */
  failureCodes: Record<string, number>;
  /** lock attempts given up (lock.timeout / lock.abandoned log events) */
  abandonedAttempts: number;
  /** freeze's own totalMs (lock.acquired), including the wait for a quiet moment */
  timeToLockMs: Stats;
  /** the holder's heldMs: random hold + thaw */
  holdMs: Stats;
  /** --freeze-filesystem: cycles whose lock ended at the filesystem thaw; null without it */
  releasedAtFilesystemThaw: number | null;
  longestHoldCycle: number | null;
  /** the longest time one writer INSERT took, minus the part of it inside a locked window */
  longestStallOutsideLock: Stall;
  longestStallMs: number;
  stallCaptures: StallCapture[];
  acknowledged: number;
  rows: number;
  writerErrors: number;
  longStatements: number;
  longStatementErrors: number;
  leakedLock: boolean;
  leakedHolders: number[];
  leftoverConnections: number;
  lockWaitTimeoutS: number;
  elapsedMs: number;
  /** holder processes of other runs (listening outside our run_dir) seen during the soak: other tests on
   * this machine, some of which signal the first holder they find, may have disturbed ours */
  foreignHoldersSeen: number;
  /** the hook's log, kept when an invariant failed */
  keptLog: string | null;
  records: CycleRecord[];
}

const LOCK_WAIT_TIMEOUT_S = 1;
const SNAPSHOT_SETTINGS = {
  lock_wait_timeout: String(LOCK_WAIT_TIMEOUT_S),
  long_query_time: '1',
  freeze_timeout: '10',
  max_lock_time: '30',
};
const FREEZE_RUN_TIMEOUT_MS = 40_000;
const THAW_RUN_TIMEOUT_MS = 20_000;
const HOLDER_NAME = 'pre-freeze-mysql-lock';
/** Writer inserts slower than this are kept for the stall analysis. */
const SLOW_INSERT_MS = 20;
/** A writer waiting this long outside a locked window gets the processlist captured. */
const STALL_CAPTURE_MS = 1500;
const MAX_STALL_CAPTURES = 20;
const SETTLE_MS = 3000;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const errorText = (error: unknown): string => (error instanceof Error ? error.message : String(error));
const iso = (ms: number): string => new Date(ms).toISOString();

/** mulberry32: a small seeded generator, so that a run can be repeated. */
function randomGenerator(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function stats(values: number[]): Stats {
  if (values.length === 0) return { count: 0, median: 0, p95: 0, max: 0 };
  const sorted = [...values].sort((a, b) => a - b);
  const at = (fraction: number): number => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(fraction * sorted.length) - 1))] ?? 0;
  return { count: sorted.length, median: at(0.5), p95: at(0.95), max: sorted[sorted.length - 1] ?? 0 };
}

/** Inserts rows in a loop on its own connection, counting the acknowledged ones. */
class Writer {
  acknowledged = 0;
  readonly errors: string[] = [];
  /** [start, end] (epoch ms) of every insert slower than SLOW_INSERT_MS */
  readonly slow: Array<[number, number]> = [];
  /** start of the INSERT now waiting for the server, if any */
  pendingSince: number | undefined;
  private running = true;
  private readonly done: Promise<void>;

  constructor(
    private readonly index: number,
    private readonly connection: Connection,
  ) {
    this.done = this.loop();
  }

  private async loop(): Promise<void> {
    let seq = 0;
    while (this.running) {
      const start = (this.pendingSince = Date.now());
      try {
        await this.connection.query('INSERT INTO app.soak (writer, seq, at) VALUES (?, ?, ?)', [this.index, seq, start]);
        this.acknowledged += 1;
        seq += 1;
      } catch (error) {
        this.errors.push(`writer ${this.index}: ${errorText(error)}`);
        await sleep(100);
      }
      this.pendingSince = undefined;
      const end = Date.now();
      if (end - start >= SLOW_INSERT_MS) this.slow.push([start, end]);
      await sleep(2);
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.done;
    await this.connection.end().catch(() => undefined);
  }
}

/** Now and then a long statement on its own connection: what makes a lock attempt wait or a window close. */
class LongStatements {
  count = 0;
  readonly errors: string[] = [];
  private running = true;
  private wake: () => void = () => undefined;
  private readonly done: Promise<void>;

  constructor(
    private readonly connection: Connection,
    private readonly random: () => number,
    private readonly pauseMs: [number, number],
  ) {
    this.done = this.loop();
  }

  private async loop(): Promise<void> {
    while (this.running) {
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, this.pauseMs[0] + this.random() * (this.pauseMs[1] - this.pauseMs[0]));
      });
      if (!this.running) break;
      const seconds = (0.5 + this.random() * 2.5).toFixed(2);
      const kind = this.random();
      const sql =
        kind < 0.4
          ? `UPDATE app.soak_long SET v = v + SLEEP(${seconds}) WHERE id = 1`
          : kind < 0.7
            ? `SELECT SLEEP(${seconds}) FROM app.soak_long WHERE id = 1`
            : `SELECT SLEEP(${seconds})`;
      try {
        this.count += 1;
        await this.connection.query(sql);
      } catch (error) {
        this.errors.push(`${sql}: ${errorText(error)}`);
      }
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    this.wake();
    await this.done;
    await this.connection.end().catch(() => undefined);
  }
}

interface HolderProcess {
  pid: number;
  /** its working directory: `/` until it has its configuration, then its run_dir */
  cwd: string;
}

function holderProcesses(): HolderProcess[] {
  const holders: HolderProcess[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv0 = fs.readFileSync(`/proc/${entry}/cmdline`, 'latin1').split('\0')[0] ?? '';
      const state = fs.readFileSync(`/proc/${entry}/stat`, 'latin1').split(') ')[1]?.[0];
      if (path.basename(argv0) !== HOLDER_NAME || state === 'Z') continue;
      holders.push({ pid: Number(entry), cwd: readlinkQuiet(`/proc/${entry}/cwd`) });
    } catch {
      // gone meanwhile
    }
  }
  return holders;
}

function readlinkQuiet(file: string): string {
  try {
    return fs.readlinkSync(file);
  } catch {
    return '';
  }
}

/**
 * Holder processes that may be ours: not there before the soak started, and not provably another run's
 * (a holder working in another run_dir belongs to another test on this machine).
 */
function ourHolders(setup: HookSetup, before: ReadonlySet<number>): number[] {
  return holderProcesses()
    .filter((holder) => !before.has(holder.pid) && !isForeign(holder, setup))
    .map((holder) => holder.pid);
}

function isForeign(holder: HolderProcess, setup: HookSetup): boolean {
  if (holder.cwd === '/' || holder.cwd === '') return false; // not configured yet (or gone): may be ours
  return holder.cwd !== setup.runDir && holder.cwd !== fs.realpathSync(setup.runDir);
}

async function hookConnections(server: TestServer): Promise<number> {
  const rows = await server.query<RowDataPacket[]>("SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE USER = 'snapshot'");
  return Number(rows[0]?.['n'] ?? 0);
}

/** Polls until nothing of ours is left (holder process, hook connection) or SETTLE_MS passes; what is left. */
async function leftovers(server: TestServer, setup: HookSetup, before: ReadonlySet<number>): Promise<{ holders: number[]; connections: number }> {
  const deadline = Date.now() + SETTLE_MS;
  for (;;) {
    const holders = ourHolders(setup, before);
    const connections = await hookConnections(server);
    if ((holders.length === 0 && connections === 0) || Date.now() > deadline) return { holders, connections };
    await sleep(50);
  }
}

async function runQuietly(setup: HookSetup, name: string, args: string[], timeoutMs: number): Promise<HookResult | Error> {
  try {
    return await runHook(setup, name, args, { timeoutMs });
  } catch (error) {
    return error instanceof Error ? error : new Error(String(error));
  }
}

const WINDOW_END_EVENTS = new Set(['lock.released', 'lock.expired', 'lock.lost', 'thaw.inconsistent', 'thaw.released', 'thaw.failed', 'freeze.start']);

/**
 * Locked windows from the log: from lock.acquired to the holder's release (lock.released, lock.expired,
 * lock.lost); a holder that died without a word is taken to have held the lock until thaw noticed.
 */
function lockedWindows(lines: Array<Record<string, any>>): Array<[number, number]> {
  const windows: Array<[number, number]> = [];
  let start: number | undefined;
  for (const line of lines) {
    const event = String(line['event']);
    const time = Date.parse(String(line['time']));
    if (event === 'lock.acquired') start = time;
    else if (start !== undefined && WINDOW_END_EVENTS.has(event)) {
      windows.push([start, time]);
      start = undefined;
    }
  }
  if (start !== undefined) windows.push([start, Number.POSITIVE_INFINITY]);
  return windows;
}

function stallOutside(insert: [number, number], windows: Array<[number, number]>): number {
  let inside = 0;
  for (const [from, to] of windows) inside += Math.max(0, Math.min(insert[1], to) - Math.max(insert[0], from));
  return insert[1] - insert[0] - inside;
}

class Soak {
  readonly violations: string[] = [];
  readonly records: CycleRecord[] = [];
  readonly captures: StallCapture[] = [];
  /** phase changes: [epoch ms, cycle, phase] */
  readonly timeline: Array<[number, number, Phase]> = [];
  private cycle = 0;
  private phase: Phase = 'setup';
  private capturedCycle = -1;
  private readonly random: () => number;
  private readonly holdersBefore = new Set(holderProcesses().map((holder) => holder.pid));
  readonly writers: Writer[] = [];
  longStatements: LongStatements | undefined;
  private monitorRunning = true;
  private readonly foreignHolders = new Set<number>();
  private monitorDone: Promise<void> = Promise.resolve();

  constructor(
    readonly server: TestServer,
    readonly setup: HookSetup,
    private readonly admin: Connection,
    readonly seed: number,
    private readonly options: SoakOptions,
    private readonly filesystem?: LoopFilesystem,
  ) {
    this.random = randomGenerator(seed);
    this.enter(0, 'setup');
  }

  async startLoad(): Promise<void> {
    for (let index = 0; index < this.options.writers; index += 1) this.writers.push(new Writer(index, await this.server.connect()));
    if (this.options.longStatements !== false) {
      this.longStatements = new LongStatements(await this.server.connect(), randomGenerator(this.seed ^ 0x5bd1e995), this.options.longStatementPauseMs ?? [500, 4000]);
    }
    this.monitorDone = this.monitor(await this.server.connect());
  }

  async stopLoad(): Promise<void> {
    this.enter(this.cycle, 'end');
    this.monitorRunning = false;
    await this.monitorDone;
    await this.longStatements?.stop();
    await Promise.all(this.writers.map((writer) => writer.stop()));
  }

  private enter(cycle: number, phase: Phase): void {
    this.cycle = cycle;
    this.phase = phase;
    this.timeline.push([Date.now(), cycle, phase]);
  }

  /** Captures the processlist once per cycle when a writer waits too long outside a locked window. */
  private async monitor(connection: Connection): Promise<void> {
    let round = 0;
    try {
      while (this.monitorRunning) {
        await sleep(200);
        round += 1;
        if (round % 5 === 0) {
          for (const holder of holderProcesses()) {
            if (isForeign(holder, this.setup)) this.foreignHolders.add(holder.pid);
          }
        }
        if (this.phase !== 'freeze' && this.phase !== 'pause') continue;
        if (this.captures.length >= MAX_STALL_CAPTURES || this.capturedCycle === this.cycle) continue;
        const oldest = Math.min(...this.writers.map((writer) => writer.pendingSince ?? Number.POSITIVE_INFINITY));
        const pendingMs = Date.now() - oldest;
        if (!Number.isFinite(oldest) || pendingMs < STALL_CAPTURE_MS) continue;
        const [cycle, phase] = [this.cycle, this.phase];
        this.capturedCycle = cycle;
        const [rows] = await connection.query<RowDataPacket[]>(
          "SELECT ID, USER, COMMAND, TIME_MS, STATE, LEFT(INFO, 100) AS INFO FROM information_schema.PROCESSLIST WHERE COMMAND NOT IN ('Sleep', 'Daemon') AND ID <> CONNECTION_ID() ORDER BY TIME_MS DESC",
        );
        const processlist = rows.map((row) => `${row['ID']} ${row['USER']} ${row['COMMAND']} ${Math.round(Number(row['TIME_MS']))} ms [${row['STATE'] ?? ''}] ${row['INFO'] ?? ''}`);
        this.captures.push({ at: iso(Date.now()), cycle, phase, pendingMs, processlist });
      }
    } catch (error) {
      this.violations.push(`the stall monitor failed: ${errorText(error)}`);
    } finally {
      await connection.end().catch(() => undefined);
    }
  }

  cutShort = false;

  async run(startedAt: number): Promise<void> {
    const progress = this.options.progress ?? ((): void => undefined);
    for (let cycle = 1; cycle <= this.options.cycles; cycle += 1) {
      if (this.options.maxDurationMs !== undefined && Date.now() - startedAt > this.options.maxDurationMs) {
        this.cutShort = true;
        progress(`maxDurationMs (${this.options.maxDurationMs}) passed: stopping after ${cycle - 1} cycles`);
        break;
      }
      const record = await this.runCycle(cycle);
      this.records.push(record);
      if (cycle % 10 === 0 || record.outcome !== 'locked') {
        const locked = this.records.filter((r) => r.outcome === 'locked').length;
        progress(`cycle ${cycle}/${this.options.cycles}: ${record.outcome}${record.failure ? ` (${record.failure})` : ''}; ${locked} locked so far, ${this.violations.length} violation(s)`);
      }
      this.enter(cycle, 'pause');
      await sleep(this.random() * (this.options.maxPauseMs ?? 200));
    }
  }

  private async runCycle(cycle: number): Promise<CycleRecord> {
    const setup = this.setup;
    const logBefore = readLog(setup).length;
    this.enter(cycle, 'freeze');
    const frozen = await runQuietly(setup, 'pre-freeze-script', ['freeze'], FREEZE_RUN_TIMEOUT_MS);
    if (frozen instanceof Error) {
      this.violations.push(`cycle ${cycle}: freeze did not finish: ${frozen.message.split('\n')[0]}`);
      await runQuietly(setup, 'post-thaw-script', ['freezeFail'], THAW_RUN_TIMEOUT_MS);
      return { cycle, outcome: 'violation', freezeCode: null };
    }
    if (frozen.code !== 0) return this.failedCycle(cycle, frozen, logBefore);

    // Locked: the recorded coordinates must be the server's while the lock is held.
    this.enter(cycle, 'held');
    const problems: string[] = [];
    const acquired = readLog(setup).slice(logBefore).find((line) => line['event'] === 'lock.acquired');
    const recorded = acquired?.['coordinates'] as { binlog?: { file: string; position: number } | null; gtid?: string | null } | undefined;
    const [[status], [gtid]] = await Promise.all([
      this.admin.query<RowDataPacket[]>('SHOW MASTER STATUS').then(([rows]) => rows),
      this.admin.query<RowDataPacket[]>('SELECT @@global.gtid_binlog_pos AS pos').then(([rows]) => rows),
    ]);
    if (acquired === undefined) problems.push('freeze exited 0 without a lock.acquired log line');
    else {
      const actual = { file: String(status?.['File']), position: Number(status?.['Position']) };
      if (recorded?.binlog?.file !== actual.file || recorded?.binlog?.position !== actual.position) {
        problems.push(`recorded binlog ${JSON.stringify(recorded?.binlog)} but SHOW MASTER STATUS says ${JSON.stringify(actual)} while locked`);
      }
      if ((recorded?.gtid ?? '') !== String(gtid?.['pos'] ?? '')) {
        problems.push(`recorded gtid ${String(recorded?.gtid)} but @@gtid_binlog_pos is ${String(gtid?.['pos'])} while locked`);
      }
    }
    // The snapshot: the agent freezes the filesystems after freeze has exited and thaws them before thaw.
    const frozenAt = Date.now();
    await this.filesystem?.freeze();
    await sleep(this.random() * (this.options.maxHoldMs ?? 300));
    const thawingAt = Date.now();
    await this.filesystem?.thaw();
    this.enter(cycle, 'thaw');
    const thawed = await runQuietly(setup, 'post-thaw-script', ['thaw'], THAW_RUN_TIMEOUT_MS);
    const thawCode = thawed instanceof Error ? null : thawed.code;
    if (thawCode !== 0) problems.push(`thaw: ${thawed instanceof Error ? thawed.message.split('\n')[0] : `exit ${thawed.code}: ${thawed.stderr.trim()}`}`);
    const cycleLines = readLog(setup).slice(logBefore);
    const released = cycleLines.find((line) => line['event'] === 'thaw.released');
    const record: CycleRecord = {
      cycle,
      outcome: 'locked',
      freezeCode: 0,
      thawCode,
      freezeMs: frozen.ms,
      timeToLockMs: Number(acquired?.['totalMs'] ?? frozen.ms),
      attempts: Number(acquired?.['attempts'] ?? 0),
    };
    if (released !== undefined) record.heldMs = Number(released['heldMs']);
    if (this.filesystem !== undefined) record.releasedAt = this.checkFilesystemRelease(cycleLines, frozenAt, thawingAt, problems);
    if (problems.length > 0) {
      this.violations.push(...problems.map((problem) => `cycle ${cycle}: ${problem}`));
      record.outcome = 'violation';
      if (thawCode !== 0) await runQuietly(setup, 'post-thaw-script', ['freezeFail'], THAW_RUN_TIMEOUT_MS);
    }
    return record;
  }

  /** A release at the filesystem thaw may only follow a freeze that began, and a thaw that began, while locked. */
  private checkFilesystemRelease(lines: readonly LogLine[], frozenAt: number, thawingAt: number, problems: string[]): 'filesystem_thaw' | 'thaw' {
    const released = lines.find((line) => line['event'] === 'lock.released');
    if (released?.['reason'] !== 'filesystem_thaw') return 'thaw';
    const freeze = released['filesystemFreeze'] as { seenAt?: number; thawedAt?: number } | undefined;
    if (freeze?.seenAt === undefined || freeze.thawedAt === undefined) problems.push('released at the filesystem thaw without its times');
    else {
      if (freeze.seenAt < frozenAt) problems.push(`the holder saw a freeze at ${iso(freeze.seenAt)}, before it began (${iso(frozenAt)})`);
      if (freeze.thawedAt < thawingAt) problems.push(`the holder saw the thaw at ${iso(freeze.thawedAt)}, before it began (${iso(thawingAt)})`);
    }
    return 'filesystem_thaw';
  }

  /** A failed freeze must leave nothing: no lock, no holder, no connection; freezeFail then exits 0. */
  private async failedCycle(cycle: number, frozen: HookResult, logBefore: number): Promise<CycleRecord> {
    const lines = readLog(this.setup).slice(logBefore);
    const failedLine = lines.find((line) => line['event'] === 'freeze.failed');
    const failure = String(failedLine?.['code'] ?? `exit ${frozen.code}`);
    const detail = String(failedLine?.['error'] ?? frozen.stderr.trim());
    const record: CycleRecord = { cycle, outcome: 'failed cleanly', freezeCode: frozen.code, freezeMs: frozen.ms, failure, detail };
    const problems: string[] = [];
    if (frozen.signal !== null) problems.push(`freeze ended by ${frozen.signal}`);
    const probe = await tryInsert(this.server);
    if (probe !== 'ok') problems.push(`a write after the failed freeze got ${probe}`);
    const left = await leftovers(this.server, this.setup, this.holdersBefore);
    if (left.holders.length > 0) problems.push(`holder process(es) ${left.holders.join(', ')} left after the failed freeze`);
    if (left.connections > 0) problems.push(`${left.connections} hook connection(s) left after the failed freeze`);
    const failed = await runQuietly(this.setup, 'post-thaw-script', ['freezeFail'], THAW_RUN_TIMEOUT_MS);
    if (failed instanceof Error || failed.code !== 0) {
      problems.push(`freezeFail after the failed freeze: ${failed instanceof Error ? failed.message : `exit ${failed.code} ${failed.stderr.trim()}`}`);
    }
    if (problems.length > 0) {
      this.violations.push(...problems.map((problem) => `cycle ${cycle}: ${problem} (freeze exit ${frozen.code}: ${frozen.stderr.trim()})`));
      record.outcome = 'violation';
    }
    return record;
  }

  /** The cycles and phases an interval overlapped, from the timeline. */
  describeInterval(from: number, to: number): string {
    const parts: string[] = [];
    for (let i = 0; i < this.timeline.length; i += 1) {
      const [start, cycle, phase] = this.timeline[i]!;
      const end = this.timeline[i + 1]?.[0] ?? Number.POSITIVE_INFINITY;
      if (start < to && end > from) parts.push(`${cycle} ${phase}`);
    }
    return parts.join(', ');
  }

  /** At the end: nothing may be left and nothing lost. */
  async summarize(startedAt: number): Promise<SoakSummary> {
    const probe = await tryInsert(this.server);
    const leakedLock = probe !== 'ok';
    if (leakedLock) this.violations.push(`a lock is left: a write with lock_wait_timeout = 1 got ${probe}`);
    const left = await leftovers(this.server, this.setup, this.holdersBefore);
    if (left.holders.length > 0) this.violations.push(`holder process(es) left: ${left.holders.join(', ')}`);
    if (left.connections > 0) this.violations.push(`${left.connections} connection(s) of the hook left on the server`);
    const counts = await this.server.query<RowDataPacket[]>('SELECT writer, COUNT(*) AS n FROM app.soak GROUP BY writer');
    const rowsByWriter = new Map(counts.map((row) => [Number(row['writer']), Number(row['n'])]));
    const acknowledged = this.writers.reduce((sum, writer) => sum + writer.acknowledged, 0);
    const rows = [...rowsByWriter.values()].reduce((sum, n) => sum + n, 0);
    this.writers.forEach((writer, index) => {
      if ((rowsByWriter.get(index) ?? 0) !== writer.acknowledged) {
        this.violations.push(`writer ${index}: ${writer.acknowledged} acknowledged inserts but ${rowsByWriter.get(index) ?? 0} rows`);
      }
    });
    const writerErrors = this.writers.flatMap((writer) => writer.errors);
    if (writerErrors.length > 0) this.violations.push(`${writerErrors.length} writer error(s), first: ${writerErrors[0]}`);
    const longErrors = this.longStatements?.errors ?? [];
    if (longErrors.length > 0) this.violations.push(`${longErrors.length} long statement(s) failed, first: ${longErrors[0]}`);
    if (this.records.length !== this.options.cycles && !this.cutShort) this.violations.push(`${this.records.length} of ${this.options.cycles} cycles ran`);

    const lines = readLog(this.setup);
    const windows = lockedWindows(lines);
    let longest: Stall = { ms: 0, at: '', during: '' };
    let longestOverall = 0;
    for (const insert of this.writers.flatMap((writer) => writer.slow)) {
      longestOverall = Math.max(longestOverall, insert[1] - insert[0]);
      const outside = stallOutside(insert, windows);
      if (outside > longest.ms) longest = { ms: outside, at: iso(insert[0]), during: this.describeInterval(insert[0], insert[1]) };
    }
    const locked = this.records.filter((record) => record.outcome === 'locked');
    const failureCodes: Record<string, number> = {};
    for (const record of this.records.filter((r) => r.freezeCode !== 0)) {
      const key = `exit ${record.freezeCode}${record.failure ? ` ${record.failure}` : ''}`;
      failureCodes[key] = (failureCodes[key] ?? 0) + 1;
    }
    const withHold = this.records.filter((record) => record.heldMs !== undefined);
    const longestHold = withHold.reduce<CycleRecord | undefined>((best, record) => (best === undefined || (record.heldMs ?? 0) > (best.heldMs ?? 0) ? record : best), undefined);
    let keptLog: string | null = null;
    if (this.violations.length > 0) {
      keptLog = path.join(os.tmpdir(), `vms-soak-${this.seed}-${Date.now()}.log`);
      fs.copyFileSync(this.setup.logFile, keptLog);
    }
    return {
      ok: this.violations.length === 0,
      seed: this.seed,
      cycles: this.records.length,
      cutShort: this.cutShort,
      writers: this.options.writers,
      locked: locked.length,
      failedCleanly: this.records.filter((record) => record.outcome === 'failed cleanly').length,
      violations: this.violations,
      failureCodes,
      abandonedAttempts: lines.filter((line) => line['event'] === 'lock.timeout' || line['event'] === 'lock.abandoned').length,
      timeToLockMs: stats(locked.map((record) => record.timeToLockMs ?? 0)),
      holdMs: stats(withHold.map((record) => record.heldMs ?? 0)),
      releasedAtFilesystemThaw: this.filesystem === undefined ? null : this.records.filter((record) => record.releasedAt === 'filesystem_thaw').length,
      longestHoldCycle: longestHold?.cycle ?? null,
      longestStallOutsideLock: longest,
      longestStallMs: longestOverall,
      stallCaptures: this.captures,
      acknowledged,
      rows,
      writerErrors: writerErrors.length,
      longStatements: this.longStatements?.count ?? 0,
      longStatementErrors: longErrors.length,
      leakedLock,
      leakedHolders: left.holders,
      leftoverConnections: left.connections,
      lockWaitTimeoutS: LOCK_WAIT_TIMEOUT_S,
      elapsedMs: Date.now() - startedAt,
      foreignHoldersSeen: this.foreignHolders.size,
      keptLog,
      records: this.records,
    };
  }
}

export async function runSoak(options: SoakOptions): Promise<SoakSummary> {
  const seed = options.seed ?? Math.floor(Math.random() * 2 ** 31);
  const startedAt = Date.now();
  const filesystem = options.freezeFilesystem === true ? await mountLoopFilesystem() : undefined;
  const server = await startMariaDB(filesystem === undefined ? {} : { datadir: path.join(filesystem.mountPoint, 'data') }).catch(async (error: unknown) => {
    await filesystem?.remove();
    throw error;
  });
  let setup: HookSetup | undefined;
  let admin: Connection | undefined;
  let soak: Soak | undefined;
  try {
    await server.query('CREATE TABLE app.soak (id BIGINT AUTO_INCREMENT PRIMARY KEY, writer INT NOT NULL, seq INT NOT NULL, at BIGINT NOT NULL) ENGINE=InnoDB');
    await server.query('CREATE TABLE app.soak_long (id INT PRIMARY KEY, v INT NOT NULL) ENGINE=InnoDB');
    await server.query('INSERT INTO app.soak_long VALUES (1, 0)');
    setup = makeHookSetup(server, { snapshot: SNAPSHOT_SETTINGS });
    admin = await server.connect();
    soak = new Soak(server, setup, admin, seed, options, filesystem);
    await soak.startLoad();
    await soak.run(startedAt);
    await soak.stopLoad();
    return await soak.summarize(startedAt);
  } finally {
    await filesystem?.thaw();
    if (setup !== undefined) await runQuietly(setup, 'post-thaw-script', ['freezeFail'], THAW_RUN_TIMEOUT_MS);
    await soak?.stopLoad().catch(() => undefined);
    await admin?.end().catch(() => undefined);
    await server.remove();
    await filesystem?.remove();
    if (setup !== undefined) fs.rmSync(setup.dir, { recursive: true, force: true });
  }
}

export function formatSummary(summary: SoakSummary): string {
  const ms = (value: number): string => `${Math.round(value)} ms`;
  const distribution = (s: Stats): string => `median ${ms(s.median)}, p95 ${ms(s.p95)}, max ${ms(s.max)} (${s.count})`;
  const failures = Object.entries(summary.failureCodes).map(([code, n]) => `${code}: ${n}`).join(', ');
  const stall = summary.longestStallOutsideLock;
  const lines = [
    `soak: ${summary.cycles} cycles${summary.cutShort ? ' (cut short by maxDurationMs)' : ''}, ${summary.writers} writers, seed ${summary.seed}`,
    `  locked                       ${summary.locked}`,
    `  failed cleanly               ${summary.failedCleanly}${failures ? ` (${failures})` : ''}`,
    `  abandoned lock attempts      ${summary.abandonedAttempts}`,
    `  time to lock                 ${distribution(summary.timeToLockMs)}`,
    `  hold time                    ${distribution(summary.holdMs)}${summary.longestHoldCycle !== null ? `; longest in cycle ${summary.longestHoldCycle}` : ''}`,
    ...(summary.releasedAtFilesystemThaw === null ? [] : [`  released at the fs thaw      ${summary.releasedAtFilesystemThaw} of ${summary.locked} locked cycles (the rest: holds too short for a probe to see, released at thaw)`]),
    `  longest writer stall         ${ms(stall.ms)} outside the locked windows (lock_wait_timeout ${summary.lockWaitTimeoutS} s)${stall.ms > 0 ? ` at ${stall.at}, during cycle/phase ${stall.during}` : ''}; ${ms(summary.longestStallMs)} overall`,
    `  writes                       ${summary.acknowledged} acknowledged, ${summary.rows} rows, ${summary.writerErrors} errors`,
    `  long statements              ${summary.longStatements} (${summary.longStatementErrors} failed)`,
    `  left at the end              lock: ${summary.leakedLock ? 'YES' : 'none'}; holders: ${summary.leakedHolders.length === 0 ? 'none' : summary.leakedHolders.join(', ')}; hook connections: ${summary.leftoverConnections}`,
    `  elapsed                      ${(summary.elapsedMs / 1000).toFixed(1)} s`,
  ];
  if (summary.foreignHoldersSeen > 0) {
    lines.push(`  note: ${summary.foreignHoldersSeen} holder process(es) of other runs were seen meanwhile: tests that signal "the" holder may have hit ours`);
  }
  const failedCycles = summary.records.filter((record) => record.outcome !== 'locked' && record.detail !== undefined);
  if (failedCycles.length > 0) {
    lines.push('failed freezes:', ...failedCycles.map((record) => `  - cycle ${record.cycle}: exit ${record.freezeCode} ${record.failure}: ${record.detail}`));
  }
  if (summary.stallCaptures.length > 0) {
    lines.push(`writers waiting > ${STALL_CAPTURE_MS} ms outside a locked window (processlist at that moment):`);
    for (const capture of summary.stallCaptures) {
      lines.push(`  - ${capture.at} cycle ${capture.cycle} ${capture.phase}: oldest pending insert ${ms(capture.pendingMs)}`);
      lines.push(...capture.processlist.map((entry) => `      ${entry}`));
    }
  }
  if (summary.violations.length > 0) lines.push(`VIOLATIONS (${summary.violations.length}):`, ...summary.violations.map((violation) => `  - ${violation}`));
  if (summary.keptLog !== null) lines.push(`the hook's log is kept in ${summary.keptLog}`);
  lines.push(summary.ok ? 'result: OK' : 'result: FAILED');
  return lines.join('\n');
}

function nonNegativeInteger(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const number = Number(value);
  if (!Number.isInteger(number) || number < 0) throw new Error(`--${name} must be a non-negative integer, not ${value}`);
  return number;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      cycles: { type: 'string' },
      writers: { type: 'string' },
      seed: { type: 'string' },
      json: { type: 'boolean' },
      'freeze-filesystem': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write('usage: node build/scripts/soak.js [--cycles 200] [--writers 6] [--seed N] [--freeze-filesystem] [--json]\n');
    return 0;
  }
  if (!mariadbInstalled()) {
    process.stderr.write('soak: the MariaDB server binaries are needed: apt-get install mariadb-server\n');
    return 2;
  }
  const options: SoakOptions = {
    cycles: nonNegativeInteger(values.cycles, 'cycles', 200),
    writers: nonNegativeInteger(values.writers, 'writers', 6),
    freezeFilesystem: values['freeze-filesystem'] === true,
    progress: (line) => process.stderr.write(`${line}\n`),
  };
  if (values.seed !== undefined) options.seed = nonNegativeInteger(values.seed, 'seed', 0);
  const summary = await runSoak(options);
  process.stdout.write(values.json ? `${JSON.stringify(summary, null, 2)}\n` : `${formatSummary(summary)}\n`);
  return summary.ok ? 0 : 1;
}

if (require.main === module) {
  main().then(
    (code) => process.exit(code),
    (error: unknown) => {
      process.stderr.write(`soak: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      process.exit(1);
    },
  );
}
