/**
 * One hook operation (freeze, thaw, freezeFail) from configuration to exit code: the single place that
 * logs a failure and maps it to the exit code. Nobody reads our stdout under VMware Tools; the log is
 * the record. Admins running it by hand get one line on stdout or stderr.
 */
import fs = require('node:fs');
import { configFilePath, DEFAULTS, loadSettings, withAgentDefaults, type Settings } from '../config/settings';
import type { Operation } from '../agents/dispatch';
import type { AgentId } from '../agents/profiles';
import { EXIT, HookError } from '../errors';
import { describeCoordinates } from '../server/coordinates';
import type { FreezeProgress } from './freeze';
import { readAhead, type RunRecord } from '../state/history';
import type { EarlyRelease } from './thaw';
import type { HolderProcess } from './holderprocess';
import type { Logger } from '../log';
import { recordOutcome } from './outcome';
import type { Waiter } from './waiter';

export interface RunOptions {
  configPath?: string;
  environment?: NodeJS.ProcessEnv;
  /** scriptArg from the agent, logged */
  scriptArg?: string;
  /** the agent whose name we were started under: its default freeze_timeout applies (agents/profiles.ts) */
  agent?: AgentId;
  /** freeze: a lock holder spawned at start-up, still waiting for its configuration */
  holder?: HolderProcess;
  /** freeze: the agent's process, waiting for our exit code (src/snapshot/waiter.ts) */
  waiter?: Waiter;
}

export async function runOperation(operation: Operation, options: RunOptions = {}): Promise<number> {
  const environment = options.environment ?? process.env;
  let settings: Settings;
  try {
    settings = withAgentDefaults(loadSettings(configFilePath(options.configPath, environment), { needCredentials: operation === 'freeze' }), options.agent);
  } catch (error) {
    await options.holder?.stop();
    const hookError = asHookError(error);
    // A freeze refused for what only freeze needs (the credentials) is recorded where thaw will look for
    // it: the thaw that follows ends a snapshot the lock did not cover (src/snapshot/thaw.ts).
    const readable = operation === 'freeze' ? settingsWithoutCredentials(configFilePath(options.configPath, environment)) : undefined;
    const { createLogger } = await import('../log');
    if (readable === undefined) {
      // Without a valid configuration we do not know its log_file: record the failure in the default one.
      return report(createLogger(DEFAULTS.logFile, operation), operation, hookError, error);
    }
    const logger = createLogger(readable.logFile, operation);
    const code = report(logger, operation, hookError, error);
    await recordOutcome(readable, logger, { operation, at: Date.now(), result: 'failed', code: hookError.code, message: hookError.message, attempts: 0 });
    return code;
  }
  // Thaw: writers are waiting behind the lock; ask for the release before loading the logger or anything else.
  const early = operation === 'freeze' ? 'none' : await (await import('./thaw')).releaseEarly(settings);
  const { createLogger } = await import('../log');
  const logger = createLogger(settings.logFile, operation);
  for (const warning of settings.warnings) {
    logger.warn({ event: 'config.warning' }, warning);
    say(2, `warning: ${warning}\n`);
  }
  const progress: FreezeProgress = { phase: 'waiting', attempts: 0, blockers: [] };
  try {
    return operation === 'freeze'
      ? await runFreeze(settings, logger, options, progress)
      : await runThaw(settings, logger, operation, early);
  } catch (error) {
    const hookError = asHookError(error);
    const lockWait = operation === 'freeze' ? progress.lockWait : undefined;
    const code = report(logger, operation, hookError, error, lockWait === undefined ? {} : { cause: lockWait.cause, heldUpBy: lockWait.culprits, advice: lockWait.advice, source: lockWait.source });
    const failure: RunRecord = { operation, at: Date.now(), result: 'failed', code: hookError.code, message: hookError.message };
    if (operation === 'freeze') Object.assign(failure, { attempts: progress.attempts, blockers: progress.blockers, ...(lockWait === undefined ? {} : { lockWait }) });
    await recordOutcome(settings, logger, failure);
    return code;
  }
}

async function runFreeze(settings: Settings, logger: Logger, { scriptArg, agent, holder: spawned, waiter }: RunOptions, progress: FreezeProgress): Promise<number> {
  logger.info({ event: 'freeze.start', scriptArg, agent, agentPid: waiter?.pid, freezeTimeout: settings.freezeTimeout, config: settings.file }, 'freeze requested');
  // The holder's start-up (a second process, which loads mysql2) overlaps our loading of freeze and
  // mysql2 and our checks: it only connects, and takes the lock when freeze says so.
  const { startHolder } = await import('./holderprocess');
  const holder = startHolder(settings, 1, spawned);
  const { freeze, abortError } = await import('./freeze');
  // Read now, while the holder starts: once it holds, only the write is left for the writers to wait on.
  const history = readAhead(settings.historyFile);
  const abort = new AbortController();
  const onSignal = (signal: NodeJS.Signals): void => {
    logger.warn({ event: 'freeze.aborted', signal }, `received ${signal}: releasing everything`);
    abort.abort(`by ${signal}`);
  };
  const signals = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const;
  for (const signal of signals) process.on(signal, onSignal);
  // The agent's process gone (it gave up: its timeout, a signal): it reports no lock, so none may stay.
  const waiterGone = (): void => {
    logger.warn({ event: 'freeze.aborted', agentPid: waiter?.pid }, `the agent's process ${waiter?.pid} ended (the agent gave up on the freeze): releasing everything`);
    abort.abort(`because the agent's process ${waiter?.pid} ended`);
  };
  const unwatch = waiter?.watch(waiterGone);
  let result: Awaited<ReturnType<typeof freeze>>;
  try {
    result = await freeze(settings, logger, abort.signal, progress, holder);
  } finally {
    unwatch?.();
    for (const signal of signals) process.off(signal, onSignal);
  }
  if (result.outcome === 'skipped') {
    await recordOutcome(settings, logger, { operation: 'freeze', at: Date.now(), result: 'skipped', message: 'the server is not running' });
    say(1, 'the server is not running: nothing to quiesce (if_server_down = skip)\n');
    return EXIT.ok;
  }
  const where = describeCoordinates(result.coordinates);
  logger.info(
    { event: 'lock.acquired', lockMode: result.lock?.mode, coordinates: result.coordinates, attempts: result.attempts, totalMs: result.totalMs, lockMs: result.lockMs, holderPid: result.holderPid, maxLockTime: settings.maxLockTime, thawProbe: result.thawProbe },
    `locked (${result.lock?.mode}): ${where} (${result.totalMs} ms, ${result.attempts} attempt(s)); held until ${result.thawProbe === undefined ? '' : `the filesystem of ${result.thawProbe} thaws, `}thaw or for at most ${settings.maxLockTime} s`,
  );
  try {
    if (settings.coordinatesFile !== null && result.coordinates !== undefined && result.lock !== undefined) {
      const { coordinatesRecord, writeCoordinatesFile } = await import('../state/coordinatesfile');
      try {
        writeCoordinatesFile(settings.coordinatesFile, coordinatesRecord({ ...result.lock, lockMode: result.lock.mode, coordinates: result.coordinates }));
      } catch (error) {
        throw new HookError('CONFIG', `cannot write coordinates_file ${settings.coordinatesFile}: ${(error as Error).message}`, { exitCode: EXIT.failure, cause: error });
      }
    }
    // The last look before the lock is ours to keep: an agent that gave up would never thaw it.
    if (waiter !== undefined && !waiter.isAlive) {
      waiterGone();
      throw abortError(abort.signal);
    }
  } catch (error) {
    // Freeze fails: the holder, not yet acknowledged, releases before we say so.
    await result.abandon();
    throw error;
  }
  await result.acknowledge();
  say(1, `locked: ${where} after ${result.totalMs} ms\n`);
  // The filesystems freeze only after we exit: the last moment to write outside run_dir.
  await recordOutcome(settings, logger, {
    operation: 'freeze',
    at: Date.now(),
    result: 'locked',
    timeToLockMs: result.totalMs,
    attempts: result.attempts,
    ...(result.lock ? { lockMode: result.lock.mode } : {}),
    ...(result.coordinates ? { coordinates: result.coordinates } : {}),
    blockers: progress.blockers,
    ...(progress.lockWait === undefined ? {} : { lockWait: progress.lockWait }),
  }, history);
  return EXIT.ok;
}

async function runThaw(settings: Settings, logger: Logger, operation: 'thaw' | 'freezeFail', early: EarlyRelease): Promise<number> {
  logger.info({ event: 'thaw.start', operation, signalled: early !== 'none' }, `${operation} requested`);
  const { thaw, releasedText } = await import('./thaw');
  const result = await thaw(settings, logger, operation, early);
  const run: RunRecord = {
    operation,
    at: Date.now(),
    result: result.outcome,
    holdMs: result.heldMs,
    expired: result.state?.phase === 'expired',
    ...(result.state?.releaseReason === 'filesystem_thaw' ? { releasedAtFilesystemThaw: true } : {}),
    ...(result.state?.coordinates ? { coordinates: result.state.coordinates } : {}),
    ...(result.problem ? { message: result.problem } : {}),
  };
  if (operation === 'freezeFail') {
    // The agent says the snapshot failed: worth a notification, whatever we released.
    await recordOutcome(settings, logger, { ...run, result: 'failed', message: `the guest agent reported the snapshot failed (freezeFail)${result.problem ? `; ${result.problem}` : ''}` });
    say(1, result.outcome === 'released' ? `${releasedText(result.state, result.heldMs)}\n` : `nothing held any more${result.problem ? ` (${result.problem})` : ''}\n`);
    return EXIT.ok;
  }
  await recordOutcome(settings, logger, run);
  if (result.outcome === 'inconsistent') {
    say(2, `${operation}: ${result.problem}: the snapshot may not be consistent\n`);
    return EXIT.inconsistent;
  }
  say(1, result.outcome === 'released' ? `${releasedText(result.state, result.heldMs)}\n` : 'nothing was held\n');
  return EXIT.ok;
}

function settingsWithoutCredentials(file: string): Settings | undefined {
  try {
    return loadSettings(file, { needCredentials: false });
  } catch {
    return undefined;
  }
}

function asHookError(error: unknown): HookError {
  return error instanceof HookError ? error : new HookError('INTERNAL', `unexpected error: ${(error as Error)?.message ?? String(error)}`, { cause: error });
}

/** `fields`: more for the log line (freeze.failed: who held up the lock). */
function report(logger: Logger, operation: string, hookError: HookError, error: unknown = hookError, fields: Record<string, unknown> = {}): number {
  const event = operation === 'freeze' ? 'freeze.failed' : 'thaw.failed';
  // The stack goes to the log for us, never to the admin's terminal.
  const stack = hookError.code === 'INTERNAL' ? (error as Error)?.stack : undefined;
  logger.error({ event, code: hookError.code, error: hookError.message, stack, ...fields }, `${operation} failed: ${hookError.message}`);
  say(2, `${operation} failed: ${hookError.message}\n`);
  return hookError.exitCode;
}

/**
 * A line for an admin running us by hand (under the agents nobody reads it: the log is the record),
 * written straight to the descriptor: process.stdout would first build a stream over it, ~0.5 ms, and
 * freeze writes its line while writers wait. A reader that has gone away is no failure.
 */
function say(fd: 1 | 2, text: string): void {
  try {
    const bytes = Buffer.from(text);
    for (let written = 0; written < bytes.length; ) written += fs.writeSync(fd, bytes, written);
  } catch {
    // EPIPE or EAGAIN: nobody to tell
  }
}
