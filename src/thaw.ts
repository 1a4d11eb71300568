/**
 * Thaw and freezeFail: tell the holder to release at once, make sure it is gone, and say whether the lock
 * was held for the whole snapshot. Needs no MySQL unless the holder does not answer.
 */
import * as net from 'node:net';
import * as path from 'node:path';
import type { Settings } from './config';
import type { Operation } from './dispatch';
import { HookError } from './errors';
import type { Logger } from './log';
import { isSameProcess, stopProcess, waitForExit } from './processes';
import { heldMs, isOurHolderState, type HolderState, type LastRun, type ReleaseReply, type ReleaseRequest } from './state';
import { checkRunDir, LAST_FILE, readJson, removeFile, runDirExists, SOCKET_FILE, STATE_FILE, writeJson } from './statedir';

const REPLY_TIMEOUT_MS = 3000;
const HOLDER_EXIT_MS = 3000;

export interface ThawResult {
  outcome: 'released' | 'nothing_held' | 'inconsistent';
  /** why the snapshot may not be consistent */
  problem?: string;
  heldMs: number | null;
  state?: HolderState;
}

/**
 * The writers are waiting: ask a holder that holds to release before anything else is loaded or
 * logged. Best effort and silent (undefined when there is nothing to ask, or on any doubt): thaw()
 * then does everything else, with the checks and the messages, and uses this reply if there is one.
 */
export async function releaseEarly(settings: Settings, operation: Exclude<Operation, 'freeze'>): Promise<ReleaseReply | undefined> {
  try {
    if (!runDirExists(settings.runDir)) return undefined;
    checkRunDir(settings.runDir);
    const read = readJson(settings.runDir, STATE_FILE, isOurHolderState);
    if (read.kind !== 'ok' || read.value.phase !== 'held' || !isSameProcess(read.value.holder)) return undefined;
    return await askHolder(settings.runDir, operation);
  } catch {
    return undefined;
  }
}

export async function thaw(settings: Settings, logger: Logger, operation: Exclude<Operation, 'freeze'>, early?: ReleaseReply): Promise<ThawResult> {
  if (!runDirExists(settings.runDir)) return nothingHeld(logger, operation, 'no run directory');
  checkRunDir(settings.runDir);
  const read = readJson(settings.runDir, STATE_FILE, isOurHolderState);
  if (read.kind === 'missing') return nothingHeld(logger, operation, 'no holder state');
  if (read.kind === 'untrusted') {
    // Nothing in it can be believed, so nothing is signalled on its account; a live holder still answers.
    logger.warn({ event: 'thaw.failed', reason: read.reason }, `untrusted state: ${read.reason}`);
    removeFile(settings.runDir, STATE_FILE);
    const reply = await askHolder(settings.runDir, operation).catch(() => undefined);
    return {
      outcome: 'inconsistent',
      problem: `the holder state could not be trusted (${read.reason})${reply === undefined ? '' : `; the holder released after ${reply.heldMs} ms`}`,
      heldMs: reply?.heldMs ?? null,
    };
  }
  const result = await releaseHolder(settings, logger, operation, read.value, early);
  await runLeftovers(settings, logger, result.state ?? read.value);
  const last: LastRun = { ...(result.state ?? read.value), thaw: { operation, at: Date.now(), outcome: result.outcome } };
  writeJson(settings.runDir, LAST_FILE, last);
  removeFile(settings.runDir, STATE_FILE);
  return result;
}

function nothingHeld(logger: Logger, operation: string, why: string): ThawResult {
  logger.info({ event: 'thaw.nothing_held', operation }, `${operation}: nothing to release (${why})`);
  return { outcome: 'nothing_held', heldMs: null };
}

async function releaseHolder(settings: Settings, logger: Logger, operation: 'thaw' | 'freezeFail', state: HolderState, early?: ReleaseReply): Promise<ThawResult> {
  const alive = early !== undefined || isSameProcess(state.holder);
  let final = state;
  if (alive && (state.phase === 'held' || state.phase === 'locking')) {
    const reply = early ?? await askHolder(settings.runDir, operation).catch((error: Error) => {
      logger.warn({ event: 'thaw.failed', holderPid: state.holder.pid, error: error.message }, `the holder did not answer (${error.message}); stopping it`);
      return undefined;
    });
    if (reply === undefined || !(await waitForExit(state.holder, HOLDER_EXIT_MS))) {
      await forceRelease(settings, logger, state);
    }
    final = readFinalState(settings.runDir) ?? state;
    if (reply !== undefined) final = { ...final, phase: reply.phase };
  } else if (alive) {
    // Released already (expired or lost) and finishing its log: let it end.
    if (!(await waitForExit(state.holder, HOLDER_EXIT_MS))) await stopProcess(state.holder, 1000);
  }
  return judge(logger, operation, final, alive);
}

function readFinalState(runDir: string): HolderState | undefined {
  const read = readJson(runDir, STATE_FILE, isOurHolderState);
  return read.kind === 'ok' ? read.value : undefined;
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
  logger.info({ ...fields, event: 'thaw.released' }, `${operation}: lock released after ${held} ms`);
  return { outcome: 'released', heldMs: held, state };
}

/** One request over the holder's socket; resolves with its reply. */
export function askHolder(runDir: string, reason: ReleaseRequest['reason']): Promise<ReleaseReply> {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection(path.join(runDir, SOCKET_FILE));
    let buffer = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer within ${REPLY_TIMEOUT_MS} ms`));
    }, REPLY_TIMEOUT_MS);
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(`${JSON.stringify({ op: 'release', reason } satisfies ReleaseRequest)}\n`));
    socket.on('data', (chunk: string) => (buffer += chunk));
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.on('end', () => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(buffer) as ReleaseReply);
      } catch {
        reject(new Error('an unreadable answer'));
      }
    });
  });
}

/** Statements the holder should have run after its release but could not (it died): e.g. restart the applier. */
async function runLeftovers(settings: Settings, logger: Logger, state: HolderState): Promise<void> {
  const statements = state.afterRelease ?? [];
  if (statements.length === 0 || state.lockedAt === undefined || settings.client.user === '') return;
  const { withSession } = await import('./mysql');
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
  const { killConnectionIfOurs, withSession } = await import('./mysql');
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
