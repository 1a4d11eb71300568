/**
 * `vmware-mysql-snapshot lock-test [--hold SECONDS]`: the admin's manual test of a real snapshot window.
 * It runs the real freeze, holds the lock as long as a snapshot would take, watches on its own session
 * who waits for the lock, thaws, and reports: time to lock, hold time, coordinates, blocked sessions and
 * the longest wait.
 *
 * Freeze and thaw run as the guest agent runs them: this very executable started under the names
 * pre-freeze-script (`freeze`) and post-thaw-script (`thaw`). The freeze process exits once the lock is
 * held, exactly as under VMware Tools, so the test also proves that the detached holder outlives it and
 * that the hook's stdout reaches EOF when it exits. Running freeze in this process instead would leave its
 * signal handlers installed (a Ctrl-C during the hold would log a bogus freeze.aborted) and keep the
 * holder's parent alive throughout, which is not what an agent sees. Both run in their own process group:
 * a Ctrl-C reaches this process only, which forwards it to a running freeze (the agent's abort: it
 * releases everything) or, during the hold, thaws before it exits. The lock is never left held.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs = require('node:fs');
import path = require('node:path');
import { CONFIG_ENV, configFilePath, loadSettings, type Settings } from '../config/settings';
import { describeCoordinates, type Coordinates } from '../server/coordinates';
import { POST_THAW_NAME, PRE_FREEZE_NAME } from '../agents/dispatch';
import { EXIT, HookError } from '../errors';
import { openSession, type Session } from '../server/session';
import { readProcesslist } from '../server/processlist';
import { heldMs, isLastRun, isOurHolderState, type HolderState, type LastRun } from '../snapshot/holderstate';
import { LAST_FILE, readJson, STATE_FILE } from '../state/statedir';
import { lastRun, readHistory, type LockWaitSummary } from '../state/history';
import { statementPreview } from '../snapshot/window';
import { serverText } from '../server/blockers';
import { type ProcessRow } from '../server/processlist';

export const DEFAULT_HOLD_SECONDS = 10;
const TICK_MS = 250;
const INTERRUPTED_EXIT = 130;
/** How much of the end of the log file is searched for this run's lock.acquired line. */
const LOG_TAIL_BYTES = 1024 * 1024;

export interface LockTestOptions {
  configPath?: string;
  holdSeconds: number;
  /** Show a live line (redrawn with \r about 4 times a second) while freezing and holding. */
  terminal: boolean;
  /** Where the live line and the report go (default process.stdout). Errors go to process.stderr. */
  output?: NodeJS.WritableStream;
}

/** A session seen waiting for the lock, at its longest. */
export interface BlockedSession {
  id: number;
  user: string;
  host: string;
  state: string;
  /** the longest time the processlist showed it in its statement */
  waitedMs: number;
  statement: string;
}

export interface HookRun {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface LockTestResult {
  exitCode: number;
  /** the signal that interrupted the test, if one did */
  interrupted?: NodeJS.Signals;
  freeze?: HookRun;
  thaw?: HookRun;
  /** the lock was held after freeze (false: freeze failed, or skipped a stopped server) */
  locked: boolean;
  /** freeze, from start to exit 0 (what the agent waits before the snapshot) */
  timeToLockMs?: number;
  attempts?: number;
  /** the lock statements alone, last attempt */
  lockStatementMs?: number;
  /** freeze's own count, from its start to the lock (without starting the process) */
  freezeTotalMs?: number;
  /** from lock to release, as the holder recorded it */
  heldMs?: number | null;
  lockMode?: string;
  coordinates?: Coordinates;
  /** the holder let go before thaw (max_lock_time, a lost connection): its phase */
  releasedEarly?: string;
  /** distinct sessions seen waiting on the lock, longest wait first; undefined when not watched */
  blocked?: BlockedSession[];
  /** why the processlist could not be watched */
  monitorProblem?: string;
  /** who held up freeze's lock (or a statement it waited for), as freeze recorded it in the history */
  lockWait?: LockWaitSummary;
  report: string;
}

/** The CLI command: returns the exit code. */
export async function runLockTest(options: LockTestOptions): Promise<number> {
  return (await lockTest(options)).exitCode;
}

/** Processlist states of a session waiting on a snapshot lock (FTWRL, BACKUP STAGE, backup locks, MDL). */
const LOCK_WAIT_STATE =
  /^Waiting for (?:global read lock|commit lock|backup lock|table flush|tables|table level lock|(?:[a-z ]+ )?metadata lock|binlog lock|backup (?:binlog|tables) lock)/i;

export function isLockWait(state: string | null): boolean {
  return state !== null && LOCK_WAIT_STATE.test(state);
}

export async function lockTest(options: LockTestOptions): Promise<LockTestResult> {
  const output = options.output ?? process.stdout;
  const holdMs = options.holdSeconds * 1000;
  if (!Number.isFinite(holdMs) || holdMs < 0 || holdMs > 86_400_000) {
    return usageError(`--hold must be a number of seconds from 0 to 86400, not ${options.holdSeconds}`);
  }
  const configFile = path.resolve(configFilePath(options.configPath, process.env));
  let settings: Settings;
  try {
    settings = loadSettings(configFile, { needCredentials: true });
  } catch (error) {
    if (!(error instanceof HookError)) throw error;
    process.stderr.write(`lock-test: ${error.message}\n`);
    return { exitCode: error.exitCode, locked: false, report: '' };
  }
  if (!runsAsExecutable()) {
    return usageError('lock-test runs the hook itself, so it needs the built executable: npm run build, then dist/vmware-mysql-snapshot lock-test');
  }
  return new LockTest(settings, configFile, holdMs, options.terminal, output).run();
}

function usageError(message: string): LockTestResult {
  process.stderr.write(`lock-test: ${message}\n`);
  return { exitCode: EXIT.config, locked: false, report: '' };
}

/** process.execPath is this program only in the single executable (under plain node it is node). */
function runsAsExecutable(): boolean {
  try {
    return (require('node:sea') as { isSea(): boolean }).isSea();
  } catch {
    return false;
  }
}

class LockTest {
  private interrupted: NodeJS.Signals | undefined;
  private wake: () => void = () => undefined;
  private freezeChild: ChildProcess | undefined;
  private monitor: Session | undefined;
  private monitorProblem: string | undefined;
  /** the monitoring session was opened (it may have been lost later) */
  private watched = false;
  private readonly blocked = new Map<number, BlockedSession>();
  private readonly ownIds = new Set<number>();
  private liveShown = false;
  private readonly onSignal = (signal: NodeJS.Signals): void => {
    if (this.interrupted === undefined) {
      this.interrupted = signal;
      // A running freeze is told as the agent would tell it: it releases everything and exits 1.
      if (this.freezeChild?.exitCode === null) this.freezeChild.kill(signal);
    }
    this.wake();
  };

  constructor(
    private readonly settings: Settings,
    private readonly configFile: string,
    private readonly holdMs: number,
    private readonly terminal: boolean,
    private readonly output: NodeJS.WritableStream,
  ) {}

  async run(): Promise<LockTestResult> {
    const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
    for (const signal of signals) process.on(signal, this.onSignal);
    try {
      return await this.test();
    } finally {
      this.clearLive();
      await this.monitor?.close();
      for (const signal of signals) process.removeListener(signal, this.onSignal);
    }
  }

  private async test(): Promise<LockTestResult> {
    await this.openMonitor();
    if (this.interrupted !== undefined) {
      process.stderr.write(`lock-test: interrupted by ${this.interrupted} before freezing: nothing was done\n`);
      return { exitCode: INTERRUPTED_EXIT, interrupted: this.interrupted, locked: false, report: '' };
    }
    const freezeStartedAt = Date.now();
    const freeze = await this.freeze();
    const result: LockTestResult = { exitCode: freeze.code, freeze, locked: false, report: '' };
    const lockWait = this.freezeLockWait(freezeStartedAt);
    if (lockWait !== undefined) result.lockWait = lockWait;
    if (freeze.code !== 0) {
      // Freeze failed (or was interrupted): it released everything itself; the agent would not thaw.
      return this.finish(result);
    }
    result.timeToLockMs = freeze.ms;
    // No holder state after exit 0: the server was down and freeze skipped it (if_server_down = skip).
    const state = readJson(this.settings.runDir, STATE_FILE, isOurHolderState);
    if (state.kind === 'ok') {
      result.locked = true;
      if (state.value.connection !== null) this.ownIds.add(state.value.connection.id);
      result.releasedEarly = state.value.phase === 'held' ? await this.hold() : state.value.phase;
    }
    const thaw = await this.thaw();
    result.thaw = thaw;
    result.exitCode = thaw.code === 0 && this.interrupted !== undefined ? INTERRUPTED_EXIT : thaw.code;
    this.readOutcome(result);
    return this.finish(result);
  }

  /** What the freeze that started at `since` recorded about who held up its lock. */
  private freezeLockWait(since: number): LockWaitSummary | undefined {
    const history = readHistory(this.settings.historyFile);
    if (history.kind !== 'ok') return undefined;
    const run = lastRun(history.value, (one) => one.operation === 'freeze');
    return run !== undefined && run.at >= since ? run.lockWait : undefined;
  }

  private async openMonitor(): Promise<void> {
    try {
      this.monitor = await openSession(this.settings.client, { connectTimeoutMs: 5000 });
      this.ownIds.add(this.monitor.server.connectionId);
      this.watched = true;
    } catch (error) {
      // Freeze will say what is wrong in its own words; the test goes on without watching.
      this.monitorProblem = `cannot watch the processlist: ${(error as Error).message}`;
    }
  }

  /** pre-freeze-script freeze, as the agent runs it. */
  private async freeze(): Promise<HookRun> {
    const started = Date.now();
    const ticker = setInterval(() => this.showLive(`freezing: waiting for a quiet moment and the lock ${seconds(Date.now() - started)}`), TICK_MS);
    this.showLive('freezing: waiting for a quiet moment and the lock');
    try {
      return await this.runHook(PRE_FREEZE_NAME, ['freeze'], (child) => (this.freezeChild = child));
    } catch (error) {
      return { code: EXIT.failure, stdout: '', stderr: `cannot start ${process.execPath} as ${PRE_FREEZE_NAME}: ${(error as Error).message}`, ms: Date.now() - started };
    } finally {
      clearInterval(ticker);
      this.freezeChild = undefined;
    }
  }

  /** post-thaw-script thaw; in this process if the executable cannot be started (replaced meanwhile). */
  private async thaw(): Promise<HookRun> {
    this.showLive('thawing');
    const run = await this.runHook(POST_THAW_NAME, ['thaw']).catch(() => undefined);
    if (run !== undefined) return run;
    const started = Date.now();
    const { runOperation } = await import('../snapshot/hook');
    const code = await runOperation('thaw', { configPath: this.configFile });
    return { code, stdout: '', stderr: '', ms: Date.now() - started };
  }

  /** This executable under an agent's name, in its own process group, with this configuration. */
  private runHook(name: string, args: string[], started?: (child: ChildProcess) => void): Promise<HookRun> {
    const begun = Date.now();
    const child = spawn(process.execPath, args, {
      argv0: name,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, [CONFIG_ENV]: this.configFile },
    });
    started?.(child);
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    return new Promise((resolve, reject) => {
      child.once('error', reject);
      // 'close': it has exited and its stdout and stderr are at EOF (the holder keeps neither open).
      child.once('close', (code, signal) => {
        const killed = signal === null ? '' : `${name} was killed by ${signal}\n`;
        resolve({ code: code ?? EXIT.failure, stdout, stderr: `${stderr}${killed}`, ms: Date.now() - begun });
      });
    });
  }

  /** Holds for --hold, watching the processlist. Returns the holder's phase if it let go by itself. */
  private async hold(): Promise<string | undefined> {
    const since = Date.now();
    let releasedEarly: string | undefined;
    for (;;) {
      await this.watch();
      const held = Date.now() - since;
      const state = readJson(this.settings.runDir, STATE_FILE, isOurHolderState);
      if (state.kind !== 'ok' || state.value.phase !== 'held') {
        releasedEarly = state.kind === 'ok' ? state.value.phase : 'gone';
        break;
      }
      if (this.interrupted !== undefined || held >= this.holdMs) break;
      this.showLive(this.liveText(held));
      await this.pause(Math.min(TICK_MS, this.holdMs - held));
    }
    return releasedEarly;
  }

  private liveText(held: number): string {
    const waiting = this.currentlyWaiting;
    const longest = waiting.length === 0 ? '' : `, longest ${seconds(Math.max(...waiting.map((row) => row.timeMs)))}`;
    const sessions = this.monitor === undefined ? 'sessions waiting: not watched' : `${waiting.length} session(s) waiting on the lock${longest}`;
    return `holding ${seconds(held)} of ${seconds(this.holdMs)} | ${sessions} | Ctrl-C releases`;
  }

  private currentlyWaiting: ProcessRow[] = [];

  /** One look at the processlist: the sessions in a lock wait, other than ours. */
  private async watch(): Promise<void> {
    if (this.monitor === undefined) return;
    let rows: ProcessRow[];
    try {
      rows = await readProcesslist(this.monitor);
    } catch (error) {
      this.monitorProblem = `stopped watching the processlist: ${(error as Error).message}`;
      this.monitor.destroy();
      this.monitor = undefined;
      return;
    }
    this.currentlyWaiting = rows.filter((row) => !this.ownIds.has(row.id) && isLockWait(row.state) && !(row.info ?? '').includes('vmware-mysql-snapshot holder'));
    for (const row of this.currentlyWaiting) {
      const seen = this.blocked.get(row.id);
      if (seen !== undefined && seen.waitedMs >= row.timeMs) continue;
      this.blocked.set(row.id, { id: row.id, user: row.user, host: row.host, state: row.state ?? '', waitedMs: row.timeMs, statement: statementPreview(row.info, 100) });
    }
  }

  /** Sleeps for ms, or until a signal arrives. */
  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wake = () => undefined;
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, ms));
      this.wake = done;
    });
  }

  /** What thaw recorded (last.json) and what freeze logged (lock.acquired). */
  private readOutcome(result: LockTestResult): void {
    if (this.watched) result.blocked = [...this.blocked.values()].sort((a, b) => b.waitedMs - a.waitedMs);
    const last = readJson(this.settings.runDir, LAST_FILE, isLastRun);
    const run: LastRun | undefined = last.kind === 'ok' ? last.value : undefined;
    if (run !== undefined && result.locked) {
      result.heldMs = heldMs(run);
      result.coordinates = run.coordinates;
      if (run.lockMode !== undefined) result.lockMode = run.lockMode;
    }
    const acquired = lastLockAcquired(this.settings.logFile, run);
    if (acquired !== undefined) {
      if (typeof acquired['attempts'] === 'number') result.attempts = acquired['attempts'];
      if (typeof acquired['lockMs'] === 'number') result.lockStatementMs = acquired['lockMs'];
      if (typeof acquired['totalMs'] === 'number') result.freezeTotalMs = acquired['totalMs'];
      if (result.coordinates === undefined && typeof acquired['coordinates'] === 'object') result.coordinates = acquired['coordinates'] as Coordinates;
    }
  }

  private finish(result: LockTestResult): LockTestResult {
    this.clearLive();
    if (this.monitorProblem !== undefined) result.monitorProblem = this.monitorProblem;
    if (this.interrupted !== undefined) result.interrupted = this.interrupted;
    result.report = formatReport(result, this.holdMs, this.configFile);
    this.output.write(result.report);
    return result;
  }

  private showLive(text: string): void {
    if (!this.terminal) return;
    this.liveShown = true;
    this.output.write(`\r${text}\x1b[K`);
  }

  private clearLive(): void {
    if (!this.liveShown) return;
    this.liveShown = false;
    this.output.write('\r\x1b[K');
  }
}

/** The lock.acquired line of the freeze that made `run` (same holder pid), from the end of the log. */
function lastLockAcquired(logFile: string, run: HolderState | undefined): Record<string, unknown> | undefined {
  let text: string;
  try {
    const fd = fs.openSync(logFile, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
    try {
      const stat = fs.fstatSync(fd);
      if (!stat.isFile()) return undefined;
      const length = Math.min(stat.size, LOG_TAIL_BYTES);
      const buffer = Buffer.alloc(length);
      fs.readSync(fd, buffer, 0, length, stat.size - length);
      text = buffer.toString('utf8');
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return undefined;
  }
  const lines = text.split('\n').reverse();
  for (const line of lines) {
    if (!line.includes('"lock.acquired"')) continue;
    try {
      const entry = JSON.parse(line) as Record<string, unknown>;
      if (entry['event'] !== 'lock.acquired') continue;
      if (run !== undefined && entry['holderPid'] !== run.holder.pid) continue;
      return entry;
    } catch {
      // a partial first line
    }
  }
  return undefined;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

function preciseSeconds(ms: number): string {
  return `${(ms / 1000).toFixed(2)} s`;
}

/** The report: one `label: value` line each, labels padded to one column. */
export function formatReport(result: LockTestResult, holdMs: number, configFile: string): string {
  const lines: Array<[string, string]> = [];
  const freeze = result.freeze;
  lines.push(['config', configFile]);
  if (freeze === undefined) return render(lines);
  if (freeze.code !== 0) {
    lines.push(['freeze', `FAILED with exit ${freeze.code} after ${preciseSeconds(freeze.ms)}: nothing is held`]);
    for (const line of outputLines(freeze)) lines.push(['', line]);
    lockWaitLines(result.lockWait, lines);
    if (result.interrupted !== undefined) lines.push(['interrupted', `by ${result.interrupted} while freezing`]);
    return render(lines);
  }
  if (!result.locked) {
    lines.push(['freeze', `exit 0 after ${preciseSeconds(freeze.ms)} without a lock: ${freeze.stdout.trim() || 'nothing held'}`]);
  } else {
    const detail = [
      result.freezeTotalMs === undefined ? '' : `locked ${result.freezeTotalMs} ms after freeze began`,
      result.attempts === undefined ? '' : `${result.attempts} attempt(s)`,
      result.lockStatementMs === undefined ? '' : `the lock statements took ${result.lockStatementMs} ms`,
    ].filter(Boolean).join(', ');
    lines.push(['time to lock', `${preciseSeconds(result.timeToLockMs ?? freeze.ms)} (pre-freeze-script, start to exit${detail ? `; ${detail}` : ''})`]);
    const held = result.heldMs === undefined || result.heldMs === null ? 'unknown' : preciseSeconds(result.heldMs);
    lines.push(['hold time', `${held} (asked for ${holdMs / 1000} s${result.lockMode ? `, lock_mode ${result.lockMode}` : ''})`]);
    lines.push(['coordinates', describeCoordinates(result.coordinates)]);
    lockWaitLines(result.lockWait, lines);
    for (const warning of freeze.stderr.split('\n').filter((line) => line.trim() !== '')) lines.push(['freeze said', warning.trim()]);
    if (result.blocked === undefined) {
      lines.push(['blocked sessions', `unknown (${result.monitorProblem ?? 'not watched'})`]);
    } else {
      lines.push(['blocked sessions', `${result.blocked.length}`]);
      const longest = result.blocked[0];
      lines.push([
        'longest wait',
        longest === undefined ? 'none' : `${preciseSeconds(longest.waitedMs)} (thread ${longest.id}, ${longest.user}, ${longest.state}${longest.statement ? `: ${longest.statement}` : ''})`,
      ]);
      if (result.monitorProblem !== undefined) lines.push(['', result.monitorProblem]);
    }
    if (result.releasedEarly !== undefined) lines.push(['released early', `the holder let go before thaw (${result.releasedEarly})`]);
  }
  if (result.interrupted !== undefined) lines.push(['interrupted', `by ${result.interrupted}: released before the end of the hold`]);
  const thaw = result.thaw;
  if (thaw !== undefined) {
    const said = outputLines(thaw);
    lines.push(['thaw', `exit ${thaw.code}${said.length > 0 ? `: ${said[0]}` : ''}`]);
    for (const line of said.slice(1)) lines.push(['', line]);
  }
  return render(lines);
}

/** Who held up the lock, and what to do: the culprits one line each. */
function lockWaitLines(wait: LockWaitSummary | undefined, lines: Array<[string, string]>): void {
  if (wait === undefined) return;
  lines.push(['held up by', wait.culprits.length === 0 ? wait.summary : `${wait.culprits.length} session(s)`]);
  for (const one of wait.culprits) {
    lines.push(['', `thread ${one.thread} (${serverText(one.user, 64)}@${serverText(one.host, 64)}, ${one.cause.replace(/_/g, ' ')}, ${one.seconds.toFixed(0)} s)${one.holds === '' ? '' : `: ${one.holds}`}`]);
  }
  lines.push(['advice', wait.advice]);
}

function outputLines(run: HookRun): string[] {
  return `${run.stdout}\n${run.stderr}`.split('\n').map((line) => line.trim()).filter((line) => line !== '');
}

function render(lines: ReadonlyArray<[string, string]>): string {
  const width = Math.max(...lines.map(([label]) => label.length)) + 2;
  return `${lines.map(([label, value]) => `${label === '' ? '' : `${label}:`}`.padEnd(width) + value).join('\n')}\n`;
}
