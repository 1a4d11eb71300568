/**
 * Thaw and freezeFail: ask the holder to release at once, make sure it is gone, and say whether the lock
 * was held for the whole snapshot. Needs no MySQL unless the holder does not end.
 *
 * The request is a signal (RELEASE_SIGNAL), sent only after the holder state in run_dir has proven the
 * PID is our holder: no socket and no module to load between our start and the writers' release. The
 * answer is the holder's final state, which it writes right after its UNLOCK, before it exits.
 */
import path = require('node:path');
import type { Settings } from '../config/settings';
import type { Operation } from '../agents/dispatch';
import { HookError } from '../errors';
import type { Logger } from '../log';
import { identify, isSameProcess, signalIfSame, stopProcess, waitForExit, type ProcessIdentity } from '../state/processes';
import { findClaimants } from '../state/holderclaim';
import { heldMs, isOurHolderState, RELEASE_SIGNAL, type HolderState, type LastRun } from './holderstate';
import { readHistory, unansweredFailedFreeze } from '../state/history';
import { checkRunDir, LAST_FILE, readJson, removeFile, runDirExists, STATE_FILE, writeJson } from '../state/statedir';

/** How long a holder asked to release may take to release, record it and exit before it is stopped. */
const HOLDER_EXIT_MS = 3000;

export interface ThawResult {
  outcome: 'released' | 'nothing_held' | 'inconsistent';
  /** why the snapshot may not be consistent */
  problem?: string;
  heldMs: number | null;
  state?: HolderState;
}

/** What releaseEarly did: nothing (no holder to ask, or any doubt), or asked, and the holder ended or not. */
export type EarlyRelease = 'none' | 'ended' | 'asked';

/**
 * The writers are waiting: signal a holder that holds before anything else is loaded or logged, then
 * wait for it to end before loading anything: our own start-up work (the logger, the records) would take
 * a core from its UNLOCK and from the writers it wakes, on a machine where the server needs them most.
 * Best effort and silent: thaw() then does everything else, with the checks and the messages.
 */
export async function releaseEarly(settings: Settings): Promise<EarlyRelease> {
  let holder: HolderState['holder'];
  try {
    if (!runDirExists(settings.runDir)) return 'none';
    checkRunDir(settings.runDir);
    const read = readJson(settings.runDir, STATE_FILE, isOurHolderState);
    if (read.kind !== 'ok' || read.value.phase !== 'held' || !signalIfSame(read.value.holder, RELEASE_SIGNAL)) return 'none';
    holder = read.value.holder;
  } catch {
    return 'none';
  }
  return (await waitForExit(holder, HOLDER_EXIT_MS, 2)) ? 'ended' : 'asked';
}

export async function thaw(settings: Settings, logger: Logger, operation: Exclude<Operation, 'freeze'>, early: EarlyRelease = 'none'): Promise<ThawResult> {
  const result = await releaseAndJudge(settings, logger, operation, early);
  if (operation !== 'thaw' || result.outcome === 'inconsistent') return result;
  return afterFailedFreeze(settings, logger, result) ?? result;
}

async function releaseAndJudge(settings: Settings, logger: Logger, operation: Exclude<Operation, 'freeze'>, early: EarlyRelease): Promise<ThawResult> {
  // Never "nothing was held" on the state file's word alone: a holder of ours that claims run_dir
  // (src/state/holderclaim.ts) is found, released and reported even if its state is gone or garbage.
  if (!runDirExists(settings.runDir)) return (await releaseClaimants(settings, logger, operation, 'run_dir is missing')) ?? nothingHeld(logger, operation, 'no run directory');
  checkRunDir(settings.runDir);
  const read = readJson(settings.runDir, STATE_FILE, isOurHolderState);
  if (read.kind === 'missing') return (await releaseClaimants(settings, logger, operation, 'its state is missing')) ?? nothingHeld(logger, operation, 'no holder state');
  if (read.kind === 'untrusted') {
    // Nothing in it can be believed, so nothing is signalled on its account; only a holder proven ours
    // by its claim on run_dir is released.
    logger.warn({ event: 'thaw.failed', reason: read.reason }, `untrusted state: ${read.reason}`);
    const found = await releaseClaimants(settings, logger, operation, `its state could not be trusted (${read.reason})`);
    if (found !== undefined) return found;
    removeFile(settings.runDir, STATE_FILE);
    return { outcome: 'inconsistent', problem: `the holder state could not be trusted (${read.reason})`, heldMs: null };
  }
  const result = await releaseHolder(settings, logger, operation, read.value, early);
  await runLeftovers(settings, logger, result.state ?? read.value);
  record(settings, logger, operation, result.state ?? read.value, result);
  // Any other holder of ours still claiming run_dir holds a lock nobody recorded: released too.
  const why = result.outcome === 'nothing_held' ? 'the state in run_dir names a holder that holds nothing' : `the state in run_dir names holder ${read.value.holder.pid}`;
  return worse(result, await releaseClaimants(settings, logger, operation, why));
}

const SEVERITY: Record<ThawResult['outcome'], number> = { nothing_held: 0, released: 1, inconsistent: 2 };

function worse(a: ThawResult, b: ThawResult | undefined): ThawResult {
  return b !== undefined && SEVERITY[b.outcome] > SEVERITY[a.outcome] ? b : a;
}

/** last.json for status, and the state removed: only if it is still the state of the holder we acted on. */
function record(settings: Settings, logger: Logger, operation: string, state: HolderState, result: ThawResult): void {
  writeLast(settings, logger, { ...state, thaw: { operation, at: Date.now(), outcome: result.outcome } });
  const now = readJson(settings.runDir, STATE_FILE, isOurHolderState);
  // A freeze that started meanwhile has its own holder and state: never ours to remove.
  if (now.kind === 'ok' && !sameHolder(now.value.holder, state.holder)) return;
  removeFile(settings.runDir, STATE_FILE);
}

/** last.json, for status. The lock is released and judged already: a full run_dir only costs status its last run. */
function writeLast(settings: Settings, logger: Logger, last: LastRun): void {
  try {
    writeJson(settings.runDir, LAST_FILE, last);
  } catch (error) {
    const file = path.join(settings.runDir, LAST_FILE);
    logger.warn({ event: 'state.unwritable', file, error: (error as Error).message }, `cannot write ${file}: ${(error as Error).message}`);
  }
}

function sameHolder(a: ProcessIdentity, b: ProcessIdentity): boolean {
  return a.pid === b.pid && a.startTime === b.startTime;
}

/**
 * The holders of ours that claim run_dir although no trusted state led us to them: each is asked to
 * release (stopped if it does not), and judged by the final state it writes, if that names it.
 * Undefined if there is none.
 */
async function releaseClaimants(settings: Settings, logger: Logger, operation: 'thaw' | 'freezeFail', why: string): Promise<ThawResult | undefined> {
  // A holder started after us belongs to a freeze that started after us: never ours to release.
  const ownStart = Number(identify(process.pid)?.startTime ?? Number.POSITIVE_INFINITY);
  const claimants = findClaimants(settings.runDir).filter((holder) => Number(holder.startTime) < ownStart);
  let result: ThawResult | undefined;
  for (const holder of claimants) {
    logger.warn({ event: 'thaw.holder_found', holderPid: holder.pid, reason: why }, `found lock holder ${holder.pid} of run_dir ${settings.runDir} although ${why}: releasing it`);
    const asked = signalIfSame(holder, RELEASE_SIGNAL);
    if (!(asked && (await waitForExit(holder, HOLDER_EXIT_MS, 2)))) {
      logger.warn({ event: 'thaw.failed', holderPid: holder.pid }, `the holder did not end within ${HOLDER_EXIT_MS} ms of the request to release; stopping it`);
      if (await stopProcess(holder, 1000)) logger.warn({ event: 'holder.killed', holderPid: holder.pid }, `stopped the unresponsive holder ${holder.pid}`);
    }
    const final = runDirExists(settings.runDir) ? readFinalState(settings.runDir, holder) : undefined;
    if (final !== undefined) {
      const judged = judge(logger, operation, final, true);
      await runLeftovers(settings, logger, final);
      record(settings, logger, operation, final, judged);
      result = result === undefined ? judged : worse(result, judged);
    } else {
      const problem = `lock holder ${holder.pid} held run_dir's lock although ${why}; it is released, but whether the lock covered the snapshot cannot be told`;
      logger.error({ event: 'thaw.inconsistent', operation, holderPid: holder.pid }, `${operation}: ${problem}; the snapshot may not be consistent`);
      result = { outcome: 'inconsistent', problem, heldMs: null };
    }
  }
  return result;
}

/**
 * A thaw that answers a failed freeze (no thaw or freezeFail since; src/state/history.ts) ends a snapshot
 * the lock did not cover, unless the lock of an earlier freeze was still held when that freeze failed.
 */
function afterFailedFreeze(settings: Settings, logger: Logger, result: ThawResult): ThawResult | undefined {
  const read = readHistory(settings.historyFile);
  if (read.kind !== 'ok') return undefined;
  const failed = unansweredFailedFreeze(read.value);
  if (failed === undefined) return undefined;
  const state = result.state;
  if (state?.lockedAt !== undefined && state.lockedAt <= failed.at && (state.releasedAt ?? Infinity) >= failed.at) return undefined;
  const why = failed.code === undefined ? (failed.message ?? 'no reason recorded') : `${failed.code}: ${failed.message ?? ''}`;
  const problem = `freeze failed at ${new Date(failed.at).toISOString()} (${why}) and no freezeFail followed: the guest agent went on, and the snapshot that this thaw ends was taken without the lock`;
  // last.json (for status) says what this thaw found.
  if (state !== undefined) writeLast(settings, logger, { ...state, thaw: { operation: 'thaw', at: Date.now(), outcome: 'inconsistent' } });
  logger.error({ event: 'thaw.inconsistent', operation: 'thaw', failedFreezeAt: failed.at, failedFreezeCode: failed.code, heldMs: result.heldMs }, `thaw: ${problem}; the snapshot may not be consistent`);
  return { ...result, outcome: 'inconsistent', problem };
}

function nothingHeld(logger: Logger, operation: string, why: string): ThawResult {
  logger.info({ event: 'thaw.nothing_held', operation }, `${operation}: nothing to release (${why})`);
  return { outcome: 'nothing_held', heldMs: null };
}

async function releaseHolder(settings: Settings, logger: Logger, operation: 'thaw' | 'freezeFail', state: HolderState, early: EarlyRelease): Promise<ThawResult> {
  const alive = early !== 'none' || isSameProcess(state.holder);
  let final = state;
  if (alive && (state.phase === 'held' || state.phase === 'locking')) {
    const asked = early !== 'none' || signalIfSame(state.holder, RELEASE_SIGNAL);
    const ended = early === 'ended' || (early === 'none' && asked && (await waitForExit(state.holder, HOLDER_EXIT_MS, 2)));
    if (!ended) {
      if (asked) logger.warn({ event: 'thaw.failed', holderPid: state.holder.pid }, `the holder did not end within ${HOLDER_EXIT_MS} ms of the request to release; stopping it`);
      await forceRelease(settings, logger, state);
    }
    final = readFinalState(settings.runDir, state.holder) ?? state;
  } else if (alive) {
    // Released already (expired or lost) and finishing its log: let it end.
    if (!(await waitForExit(state.holder, HOLDER_EXIT_MS))) await stopProcess(state.holder, 1000);
  }
  return judge(logger, operation, final, alive);
}

/** The state the holder wrote after its release; a newer holder's state is none of ours. */
function readFinalState(runDir: string, holder: ProcessIdentity): HolderState | undefined {
  const read = readJson(runDir, STATE_FILE, isOurHolderState);
  return read.kind === 'ok' && sameHolder(read.value.holder, holder) ? read.value : undefined;
}

/** What the snapshot got: a lock held from freeze to now, or not. */
function judge(logger: Logger, operation: string, state: HolderState, wasAlive: boolean): ThawResult {
  const held = heldMs(state);
  const fields = { event: '', operation, holderPid: state.holder.pid, heldMs: held, phase: state.phase, coordinates: state.coordinates };
  let problem: string | undefined;
  if (state.phase === 'expired') {
    problem = `the lock was released after max_lock_time (${state.maxLockTime} s), before ${operation}`;
  } else if (state.phase === 'lost') {
    problem = `the lock was lost while held (${state.detail ?? 'connection closed'})`;
  } else if (state.phase === 'held' && !wasAlive) {
    problem = `the lock holder (pid ${state.holder.pid}) died while holding the lock`;
  } else if (state.phase === 'locking') {
    problem = 'the lock was still being taken';
  } else if (state.phase === 'aborted' && state.lockedAt === undefined) {
    return nothingHeld(logger, operation, `the last lock attempt ended: ${state.detail ?? 'aborted'}`);
  }
  if (problem !== undefined) {
    logger.error({ ...fields, event: 'thaw.inconsistent' }, `${operation}: ${problem}; the snapshot may not be consistent`);
    return { outcome: 'inconsistent', problem, heldMs: held, state };
  }
  logger.info({ ...fields, event: 'thaw.released' }, `${operation}: lock ${releasedText(state, held)}`);
  return { outcome: 'released', heldMs: held, state };
}

/** "released after 840 ms", and for a release at the filesystem thaw or at thaw's start, when that was. */
export function releasedText(state: HolderState | undefined, held: number | null, now = Date.now()): string {
  const start = state?.releaseReason === 'thaw_started' ? state.thawStart : undefined;
  if (start !== undefined) return `released after ${held} ms, as ${start.name} ${start.operation} started (pid ${start.pid}, ${Math.max(0, now - start.seenAt)} ms ago)`;
  const freeze = state?.releaseReason === 'filesystem_thaw' ? state.filesystemFreeze : undefined;
  if (freeze === undefined) return `released after ${held} ms`;
  return `released after ${held} ms, when the filesystem of ${freeze.directory} thawed (${Math.max(0, now - freeze.thawedAt)} ms ago)`;
}

/** Statements the holder should have run after its release but could not (it died): e.g. restart the applier. */
async function runLeftovers(settings: Settings, logger: Logger, state: HolderState): Promise<void> {
  const statements = state.afterRelease ?? [];
  if (statements.length === 0 || state.lockedAt === undefined || settings.client.user === '') return;
  const { withSession } = await import('../server/session');
  try {
    await withSession(settings.client, { connectTimeoutMs: 5000 }, async (session) => {
      for (const statement of statements) await session.connection.query(statement);
    });
    logger.info({ event: 'replica.applier', statements }, 'ran what the holder left undone after its release');
  } catch (error) {
    logger.error({ event: 'thaw.failed', statements, error: (error as Error).message }, `could not run ${statements.join('; ')}: ${(error as Error).message}; run it by hand`);
  }
}

/**
 * The holder did not answer: stop the process (after proving it is our holder), and KILL its connection
 * on the server (after proving the id is its own). Either ends the lock.
 */
async function forceRelease(settings: Settings, logger: Logger, state: HolderState): Promise<void> {
  if (await stopProcess(state.holder, 1000)) {
    logger.warn({ event: 'holder.killed', holderPid: state.holder.pid }, `stopped the unresponsive holder ${state.holder.pid}`);
  }
  if (state.connection === null || settings.client.user === '') return;
  const { withSession } = await import('../server/session');
  const { killConnectionIfOurs } = await import('../server/processlist');
  const proof = state.connection;
  try {
    const outcome = await withSession(settings.client, { connectTimeoutMs: 5000 }, (session) => killConnectionIfOurs(session, proof));
    if (outcome === 'killed') {
      logger.warn({ event: 'connection.killed', thread: proof.id }, `killed the holder's connection ${proof.id} on the server`);
    }
  } catch (error) {
    throw new HookError('SERVER', `could not make sure the holder's connection ${proof.id} is gone: ${(error as Error).message}`, { cause: error });
  }
}
