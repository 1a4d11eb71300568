/**
 * Freeze: wait for a quiet moment, start the detached holder, and exit 0 only once it holds the lock.
 * Every way out other than "locked" leaves nothing held: the agent never calls thaw after a failed freeze.
 */
import type { RowDataPacket } from 'mysql2/promise';
import type { Settings } from '../config/settings';
import { Deadline, monotonic, type Clock } from '../clock';
import { HookError } from '../errors';
import { acquireFreezeLock } from '../state/freezelock';
import { thawProbeFor } from './fsthaw';
import type { Logger } from '../log';
import { probeReplication, type Coordinates, type ReplicationProbe } from '../server/coordinates';
import { describeGaleraNode, galeraRefusal, isDonorNow, lockEffect, nameValues, readGaleraNode, type GaleraNode } from '../server/galera';
import { startHolder, type HolderEvent, type HolderProcess } from './holderprocess';
import { chooseMode, lockPlan, unsupportedReason, type LockPlan, type ServerTraits } from '../server/lockmodes';
import { type LockMode } from '../config/settings';
import { printable } from '../server/printable';
import { checkPrivileges } from '../server/privileges';
import { holderTag, killConnectionIfOurs, readProcesslist } from '../server/processlist';
import { isServerDown, openSession, serverError, type Session } from '../server/session';
import { stopAppliers } from '../server/replica';
import { identify, isSameProcess } from '../state/processes';
import { findClaimants } from '../state/holderclaim';
import { isOurHolderState, type LastRun } from './holderstate';
import type { BlockerSummary, LockWaitSummary } from '../state/history';
import { ensureRunDir, LAST_FILE, PROGRESS_FILE, readJson, removeFile, STATE_FILE, writeJson } from '../state/statedir';
import { blockerKey, findBlockers, isKillable, statementPreview, windowRules, type WindowRules } from './window';
import { type ProcessRow } from '../server/processlist';
import { isLockWaitState, lookUpLockWait, serverText, type LockWaitReport } from '../server/blockers';
import { adviceText, adviseOnLockWait, type LockAdvice } from './lockadvice';

const POLL_INTERVAL_MS = 250;
/** After an abandoned attempt, let the writers that queued behind it drain before the next one. */
const RETRY_PAUSE_MS = 1000;
/** Time for the holder to start and connect, on top of lock_wait_timeout. */
const HOLDER_CONNECT_MS = 10_000;
/** How long past lock_wait_timeout we wait for the holder's own answer before abandoning it. */
const LOCK_ANSWER_GRACE_MS = 500;
/** While the lock statement waits, who holds it up is looked up this often (the first time sooner). */
const LOOKUP_INTERVAL_MS = 1000;
/** Holders that exited before locking (their connection lost, or killed) replaced per freeze before giving up. */
const MAX_REPLACED_HOLDERS = 3;

export interface FreezeResult {
  outcome: 'locked' | 'skipped';
  /** the lock taken, and whether it stops commits (the snapshot is then exactly at the coordinates) */
  lock?: { mode: LockMode; exact: boolean; server: string; isMariaDB: boolean };
  coordinates?: Coordinates;
  attempts: number;
  /** from freeze start to lock held */
  totalMs: number;
  /** the FLUSH statement alone, last attempt */
  lockMs?: number;
  holderPid?: number;
  /** release_at = filesystem_thaw: the data directory whose filesystem's thaw ends the hold */
  thawProbe?: string;
  /**
   * Tells the holder that freeze has logged the lock and is about to exit 0; until then a holder whose
   * freeze disappears releases at once.
   */
  acknowledge: () => Promise<void>;
  /** Instead of acknowledging: ends the holder, releasing the lock, before freeze reports its failure. */
  abandon: () => Promise<void>;
}

/** What a running freeze is doing, kept in run_dir/freeze.json for `status`, and for the history. */
export interface FreezeProgress {
  phase: 'waiting' | 'locking';
  attempts: number;
  /** every statement that kept us waiting, with the longest time it was seen running */
  blockers: BlockerSummary[];
  /** who held up the lock (or a statement we waited for) when last looked up, with advice */
  lockWait?: LockWaitSummary;
}

/**
 * `early`: a holder the caller started before loading this module (and mysql2), so that the two
 * start-ups overlap; it only connects and waits for 'lock', and is stopped if this freeze fails.
 */
export async function freeze(settings: Settings, logger: Logger, abort: AbortSignal, progress: FreezeProgress, early?: HolderProcess): Promise<FreezeResult> {
  // From the moment the agent started us: the time to lock it sees (and freeze_timeout) include our start-up.
  // process.uptime() (monotonic) rather than performance.timeOrigin, whose module takes ~2 ms to load.
  // freeze_timeout is measured from begunAt on the monotonic clock; startedAt is for status to show.
  const uptimeMs = process.uptime() * 1000;
  const begunAt = monotonic.now() - uptimeMs;
  const startedAt = Date.now() - Math.round(uptimeMs);
  let holder: HolderProcess | undefined = early;
  let locked = false;
  let releaseFreezeLock: (() => void) | undefined;
  let opening: Promise<Session> | undefined;
  try {
    ensureRunDir(settings.runDir);
    // Our connection's handshake overlaps taking the freeze lock; if that fails, it is closed unused.
    opening = openSession(settings.client);
    opening.catch(() => undefined); // awaited below, or closed in the finally
    releaseFreezeLock = await acquireFreezeLock(settings.runDir);
    refuseIfHeld(settings, logger);
    holder ??= startHolder(settings, 1);
    let session: Session;
    try {
      session = await opening;
      opening = undefined;
    } catch (error) {
      opening = undefined;
      if (isServerDown(error) && settings.ifServerDown === 'skip') {
        logger.warn({ event: 'freeze.server_down', error: (error as Error).message }, 'the server is not running: nothing to quiesce, the snapshot goes ahead (if_server_down = skip)');
        return { outcome: 'skipped', attempts: 0, totalMs: Math.round(monotonic.now() - begunAt), acknowledge: async () => undefined, abandon: async () => undefined };
      }
      throw error;
    }
    let restartAppliers: string[] = [];
    try {
      const traits = await serverTraits(session);
      const galera = traits.galera === true ? await checkGaleraNode(session) : undefined;
      const mode = resolveLockMode(settings, traits, logger);
      if (galera !== undefined) logGaleraNode(logger, galera, mode);
      await checkPrivileges(session, { mode, killQueries: settings.killLongQueries !== 'off', stopApplier: settings.replicaSqlThread === 'stop' });
      if (settings.replicaSqlThread === 'stop') {
        restartAppliers = await stopAppliersLogged(session, logger, new Deadline(settings.freezeTimeout * 1000, monotonic, begunAt));
      }
      const replication = await probeReplication(session);
      const thawProbe = chooseThawProbe(settings, session, logger);
      const freezer = new Freezer(settings, logger, abort, session, { startedAt, begunAt }, { mode, traits, afterRelease: restartAppliers, replication, thawProbe, galera: galera !== undefined }, progress);
      try {
        const result = await freezer.run(holder);
        locked = true;
        return result;
      } finally {
        holder = freezer.holder;
      }
    } finally {
      // On success the holder starts the appliers again after its release; otherwise we do it now.
      if (!locked) for (const statement of restartAppliers) await session.connection.query(statement).catch(() => undefined);
      // Locked: our exit, a moment from now, closes the socket. Writers wait on the lock until thaw, and
      // closing it here cost them ~0.4 ms more.
      if (!locked) await session.close();
    }
  } finally {
    // Refused before it was used (another freeze runs, or a lock is held): never left open.
    if (opening !== undefined) await opening.then((unused) => unused.close(), () => undefined);
    if (!locked) await holder?.stop();
    if (releaseFreezeLock !== undefined) {
      removeFile(settings.runDir, PROGRESS_FILE);
      releaseFreezeLock();
    }
  }
}

/** release_at = filesystem_thaw: the data directory whose filesystem the holder watches (src/snapshot/fsthaw.ts). */
function chooseThawProbe(settings: Settings, session: Session, logger: Logger): string | null {
  if (settings.releaseAt !== 'filesystem_thaw') return null;
  const probe = thawProbeFor(session.server.datadir);
  if ('directory' in probe) return probe.directory;
  logger.info({ event: 'thaw_watch.off', reason: probe.why }, `the lock is released at post-thaw, not at the filesystem thaw: ${probe.why}`);
  return null;
}

/**
 * A second freeze while a holder holds (or takes) the lock fails, whether its state names it or only its
 * claim on run_dir proves it (src/state/holderclaim.ts); state left by a dead holder is cleared.
 */
function refuseIfHeld(settings: Settings, logger: Logger): void {
  clearStateUnlessHeld(settings, logger);
  const claimant = findClaimants(settings.runDir)[0];
  if (claimant !== undefined) {
    throw new HookError('BUSY', `a lock is already held or being taken by holder pid ${claimant.pid} (it claims run_dir ${settings.runDir}): run "post-thaw-script thaw" to release it first`);
  }
}

function clearStateUnlessHeld(settings: Settings, logger: Logger): void {
  const read = readJson(settings.runDir, STATE_FILE, isOurHolderState);
  if (read.kind === 'missing') return;
  if (read.kind === 'untrusted') {
    logger.warn({ event: 'freeze.stale_state', reason: read.reason }, `ignoring and removing untrusted state: ${read.reason}`);
    removeFile(settings.runDir, STATE_FILE);
    return;
  }
  const state = read.value;
  const live = (state.phase === 'locking' || state.phase === 'held') && isSameProcess(state.holder);
  if (live) {
    const since = state.lockedAt === undefined ? '' : ` since ${new Date(state.lockedAt).toISOString()}`;
    throw new HookError(
      'BUSY',
      `a lock is already ${state.phase === 'held' ? 'held' : 'being taken'} by holder pid ${state.holder.pid}${since}: run "post-thaw-script thaw" to release it first`,
    );
  }
  logger.warn({ event: 'freeze.stale_state', phase: state.phase, holderPid: state.holder.pid }, `clearing state of an earlier run (phase ${state.phase}, holder ${state.holder.pid} is gone)`);
  const last: LastRun = { ...state, thaw: { operation: 'freeze', at: Date.now(), outcome: state.phase === 'held' ? 'inconsistent' : 'nothing_held' } };
  writeJson(settings.runDir, LAST_FILE, last);
  removeFile(settings.runDir, STATE_FILE);
}

async function serverTraits(session: Session): Promise<ServerTraits> {
  const [rows] = await session.connection.query<RowDataPacket[]>("SHOW GLOBAL VARIABLES WHERE Variable_name IN ('have_backup_locks', 'wsrep_on')");
  const variables = nameValues(rows);
  return {
    version: session.server.version,
    isMariaDB: session.server.isMariaDB,
    backupLocks: variables.get('have_backup_locks') === 'YES',
    galera: variables.get('wsrep_on')?.toUpperCase() === 'ON',
  };
}

/**
 * A Galera node must be a consistent member to be worth a snapshot: in the primary component, Synced or
 * desynced (not joining or catching up). Refused before anything is held. undefined: wsrep_on without
 * a provider, no cluster.
 */
async function checkGaleraNode(session: Session): Promise<GaleraNode | undefined> {
  let node: GaleraNode | undefined;
  try {
    node = await readGaleraNode(session);
  } catch (error) {
    throw serverError(error, 'reading the Galera status');
  }
  if (node === undefined) return undefined;
  const refusal = galeraRefusal(node);
  if (refusal !== undefined) throw new HookError('SERVER', `${refusal}; nothing is held`);
  return node;
}

function logGaleraNode(logger: Logger, node: GaleraNode, mode: LockMode): void {
  const fields = { event: 'galera.node', localState: node.localState, localStateComment: node.localStateComment, clusterSize: node.clusterSize, clusterStatus: node.clusterStatus, desync: node.desync, position: node.position };
  const text = `${describeGaleraNode(node)}: ${lockEffect(node, mode)}`;
  if (isDonorNow(node)) logger.warn(fields, `${text}; it is a state-transfer donor right now, and the lock may wait behind the transfer`);
  else logger.info(fields, text);
}

function resolveLockMode(settings: Settings, traits: ServerTraits, logger: Logger): LockMode {
  if (settings.lockMode === 'auto') {
    const { mode, reason } = chooseMode(traits);
    logger.info({ event: 'lock.mode', mode, reason }, `lock_mode = auto: ${mode} (${reason})`);
    return mode;
  }
  const unsupported = unsupportedReason(settings.lockMode, traits);
  if (unsupported !== undefined) {
    throw new HookError('CONFIG', `lock_mode = ${settings.lockMode} cannot be used on this server: ${unsupported}. Set lock_mode = auto or ftwrl in ${settings.file}`);
  }
  return settings.lockMode;
}

async function stopAppliersLogged(session: Session, logger: Logger, deadline: Deadline): Promise<string[]> {
  const stopped = await stopAppliers(session, deadline);
  if (stopped === undefined) return [];
  if (stopped.leftRunning) {
    logger.warn({ event: 'replica.applier', channels: stopped.channels }, 'the replica applier kept temporary tables open until freeze_timeout: left running');
  } else {
    logger.info({ event: 'replica.applier', channels: stopped.channels }, `stopped the replica applier (${stopped.channels.map((name) => printable(name) || 'default').join(', ')}) until the release`);
  }
  return stopped.restart;
}

type Attempt = { result: 'locked'; coordinates: Coordinates; waitedMs: number } | { result: 'timeout' } | { result: 'refused'; reason: string };

/** What a lookup found: the report and the advice drawn from it. */
interface LockWait {
  report: LockWaitReport;
  advice: LockAdvice;
}

function waitKey(wait: LockWait): string {
  return [wait.report.waiter?.thread, wait.advice.cause, ...wait.advice.culprits.map((one) => one.thread)].join(' ');
}

/** The advice as the history and status keep it. */
function summarize(wait: LockWait): LockWaitSummary {
  const { advice, report } = wait;
  return {
    cause: advice.cause,
    summary: advice.summary,
    advice: advice.advice,
    source: report.source,
    culprits: advice.culprits.map((one) => ({ thread: one.thread, user: one.user, host: one.host, seconds: one.seconds, cause: one.cause, holds: one.holds })),
  };
}

class Freezer {
  private readonly loggedBlockers = new Map<string, BlockerSummary>();
  private readonly identity = identify(process.pid);
  /** the holder for the next attempt, started ahead of it */
  holder: HolderProcess | undefined;
  private attempts = 0;
  private replaced = 0;
  private lastBlockers: ProcessRow[] = [];
  /** who held up the lock statement of the current attempt, while it waited */
  private attemptWait: LockWait | undefined;
  /** who held up the last attempt that timed out */
  private lockTimeoutWait: LockWait | undefined;
  /** who holds up a statement we wait for in the quiet-moment poll (e.g. an ALTER behind an idle transaction) */
  private windowWait: LockWait | undefined;
  private windowLookupAt: Deadline | undefined;
  /** what ended the last try: a statement running in the quiet-moment poll, the lock timing out, or a lock given back */
  private lastObstacle: 'window' | 'lock' | { refused: string } | undefined;
  private readonly deadline: Deadline;

  constructor(
    private readonly settings: Settings,
    private readonly logger: Logger,
    private readonly abort: AbortSignal,
    private readonly session: Session,
    /** startedAt: wall clock, shown by status; begunAt: the same moment on `clock`, which every bound is measured on */
    private readonly start: { startedAt: number; begunAt: number },
    private readonly lock: { mode: LockMode; traits: ServerTraits; afterRelease: string[]; replication: ReplicationProbe; thawProbe: string | null; galera: boolean },
    private readonly progress: FreezeProgress,
    private readonly clock: Clock = monotonic,
  ) {
    this.deadline = new Deadline(settings.freezeTimeout * 1000, clock, start.begunAt);
  }

  /** Best effort: status shows it, nothing depends on it. */
  private saveProgress(phase: FreezeProgress['phase']): void {
    this.progress.phase = phase;
    this.progress.attempts = this.attempts;
    try {
      writeJson(this.settings.runDir, PROGRESS_FILE, { identity: this.identity, startedAt: this.start.startedAt, ...this.progress });
    } catch {
      // run_dir was checked at start; a failure here only costs status its detail
    }
  }

  async run(firstHolder: HolderProcess): Promise<FreezeResult> {
    this.holder = firstHolder;
    const deadline = this.deadline;
    this.saveProgress('waiting');
    while (true) {
      this.throwIfAborted();
      if (deadline.passed()) throw this.timeoutError();
      const blockers = await this.blockers();
      if (blockers.length > 0) {
        this.lastObstacle = 'window';
        await this.pause(Math.min(POLL_INTERVAL_MS, deadline.remainingMs()));
        continue;
      }
      this.attempts += 1;
      this.saveProgress('locking');
      const holder = this.holder ?? startHolder(this.settings, this.attempts);
      this.holder = holder;
      const attempt = await this.attemptLock(holder);
      if (attempt.result === 'locked') {
        return {
          outcome: 'locked',
          lock: {
            mode: this.lock.mode,
            exact: this.plan(holder).exact,
            server: this.session.server.version,
            isMariaDB: this.session.server.isMariaDB,
          },
          coordinates: attempt.coordinates,
          attempts: this.attempts,
          totalMs: Math.round(this.clock.now() - this.start.begunAt),
          lockMs: attempt.waitedMs,
          holderPid: holder.pid,
          ...(this.lock.thawProbe === null ? {} : { thawProbe: this.lock.thawProbe }),
          acknowledge: () => holder.acknowledge(),
          abandon: () => holder.stop(),
        };
      }
      // The next holder starts now, so that it is ready when the next quiet moment comes.
      this.holder = startHolder(this.settings, this.attempts + 1);
      this.lastObstacle = attempt.result === 'refused' ? { refused: attempt.reason } : 'lock';
      this.saveProgress('waiting');
      await this.pause(Math.min(RETRY_PAUSE_MS, deadline.remainingMs()));
    }
  }

  private plan(holder: HolderProcess): LockPlan {
    return lockPlan(this.lock.mode, this.lock.traits, this.settings.lockWaitTimeout, holderTag(holder.pid));
  }

  private rules(longQueryTime: number): WindowRules {
    return windowRules({
      longQueryTime,
      ignoreCommands: this.settings.ignoreCommands,
      ignoreUsers: this.settings.ignoreUsers,
      ownIds: this.ownIds(),
    });
  }

  private async blockers(): Promise<ProcessRow[]> {
    const rows = await readProcesslist(this.session).catch((error: unknown) => {
      throw serverError(error, 'reading the processlist');
    });
    // Statements we may kill if they hold up the lock do not make us wait for them.
    const blockers = findBlockers(rows, this.rules(this.settings.longQueryTime)).filter(
      (row) => !isKillable(row, this.settings.killLongQueries),
    );
    for (const row of blockers) {
      const key = blockerKey(row);
      const seen = this.loggedBlockers.get(key);
      if (seen !== undefined) {
        seen.seconds = Math.max(seen.seconds, row.timeMs / 1000);
        continue;
      }
      const summary = { thread: row.id, user: row.user, seconds: row.timeMs / 1000, statement: statementPreview(row.info, 120) };
      this.loggedBlockers.set(key, summary);
      this.progress.blockers.push(summary);
      this.saveProgress('waiting');
      this.logger.info(
        { event: 'window.blocked', thread: row.id, user: row.user, host: row.host, db: row.db, command: row.command, seconds: row.timeMs / 1000, state: row.state, statement: statementPreview(row.info) },
        `waiting: thread ${row.id} (${row.user}) has run a statement for ${(row.timeMs / 1000).toFixed(1)} s`,
      );
    }
    this.lastBlockers = blockers;
    await this.lookUpWindowWait(blockers);
    return blockers;
  }

  /** The connections of ours: never blockers, never named as holders. */
  private ownIds(): number[] {
    return [this.session.server.connectionId, ...(this.holder?.connectionId !== undefined ? [this.holder.connectionId] : [])];
  }

  /**
   * A statement we wait for that itself waits for a lock (an ALTER queued behind an idle transaction)
   * will not end by itself: find whom it waits for, once a second at most.
   */
  private async lookUpWindowWait(blockers: readonly ProcessRow[]): Promise<void> {
    const waiting = blockers.find((row) => isLockWaitState(row.state));
    if (waiting === undefined) {
      this.windowWait = undefined;
      return;
    }
    if (this.windowLookupAt !== undefined && !this.windowLookupAt.passed()) return;
    this.windowLookupAt = new Deadline(LOOKUP_INTERVAL_MS, this.clock);
    const found = await this.lookUp(waiting.id);
    if (found === undefined) return;
    // Logged once per waiter, cause and culprits: the seconds in the text change at every lookup.
    const changed = this.windowWait === undefined || waitKey(this.windowWait) !== waitKey(found);
    this.windowWait = found;
    this.progress.lockWait = summarize(found);
    this.saveProgress('waiting');
    if (changed) {
      this.logger.info(
        { event: 'window.held_up', thread: waiting.id, cause: found.advice.cause, heldUpBy: found.advice.culprits, source: found.report.source, advice: found.advice.advice },
        `waiting: ${adviceText(found.advice)}`,
      );
    }
  }

  /** Who `thread` waits for, with advice; undefined if it no longer waits or the lookup failed (logged). */
  private async lookUp(thread: number): Promise<LockWait | undefined> {
    let report: LockWaitReport;
    try {
      report = await lookUpLockWait(this.session, thread, this.ownIds());
    } catch (error) {
      this.logger.debug({ event: 'lock.lookup_failed', thread, error: (error as Error).message }, `could not look up who holds up thread ${thread}: ${serverText((error as Error).message)}`);
      return undefined;
    }
    const advice = adviseOnLockWait(report, { freezeTimeout: this.settings.freezeTimeout, killLongQueries: this.settings.killLongQueries });
    return advice === undefined ? undefined : { report, advice };
  }

  /** While our lock statement waits: whom it waits for (kept for the timeout, shown by status). */
  private async lookUpAttemptWait(holder: HolderProcess): Promise<void> {
    if (holder.connectionId === undefined) return;
    const found = await this.lookUp(holder.connectionId);
    // An answer that comes after its attempt ended (it ran beside the wait) is of no use.
    if (found === undefined || holder !== this.holder) return;
    this.attemptWait = found;
    this.progress.lockWait = summarize(found);
    this.saveProgress('locking');
  }

  /** One attempt with a started holder: wait until it is connected, tell it to lock, wait for the answer. */
  private async attemptLock(holder: HolderProcess): Promise<Attempt> {
    const settings = this.settings;
    // E.g. the server closed its idle connection (a short wait_timeout) while we waited for a quiet moment:
    // it was never told to lock, so it held nothing, and another takes its place.
    if (holder.hasExited) {
      const event = await holder.next(HOLDER_CONNECT_MS, this.abort);
      // its own failure (a refused login...) says more than a retry would
      return this.replaceExited(holder, event) ?? this.unexpected(holder, event);
    }
    if (holder.connectionId === undefined) {
      const event = await holder.next(Math.min(HOLDER_CONNECT_MS, this.deadline.remainingMs()), this.abort);
      if (event.type === 'timeout') return this.abandon(holder, this.deadline.remainingMs() === 0 ? 'freeze_timeout passed before the holder connected' : 'the holder did not connect');
      const replaced = this.replaceExited(holder, event);
      if (replaced !== undefined) return replaced;
      if (event.type !== 'connected') return this.unexpected(holder, event);
    }
    const { connectionId: _, ...server } = this.session.server;
    const { afterRelease, replication, thawProbe, galera } = this.lock;
    this.attemptWait = undefined;
    const attemptStartedAt = this.clock.now();
    holder.lock({ plan: this.plan(holder), afterRelease, replication, server, thawProbe, galera });
    this.logger.debug({ event: 'lock.attempt', attempt: this.attempts, holderPid: holder.pid }, `lock attempt ${this.attempts}`);
    const killTimer = settings.killLongQueries === 'off' ? undefined : setTimeout(() => void this.killLongQueries(attemptStartedAt), settings.killLongQueriesAfter * 1000);
    try {
      const answerMs = settings.lockWaitTimeout * 1000 + LOCK_ANSWER_GRACE_MS;
      const waitMs = Math.min(answerMs, this.deadline.remainingMs());
      const event = await this.awaitAnswer(holder, waitMs);
      if (event.type === 'locked') return { result: 'locked', coordinates: event.coordinates, waitedMs: event.waitedMs };
      if (event.type === 'timeout') {
        const why = waitMs < answerMs ? `not locked when freeze_timeout (${settings.freezeTimeout} s) passed` : `not locked within lock_wait_timeout (${settings.lockWaitTimeout} s)`;
        return await this.abandon(holder, why);
      }
      if (event.type === 'failed' && event.timedOut) {
        this.logTimeout(event.message);
        await this.stopHolder(holder);
        return { result: 'timeout' };
      }
      if (event.type === 'refused') {
        await this.stopHolder(holder);
        this.logger.warn({ event: 'lock.refused', attempt: this.attempts, reason: event.reason }, `lock attempt ${this.attempts}: ${event.reason}; trying again at the next quiet moment`);
        return { result: 'refused', reason: event.reason };
      }
      return await this.unexpected(holder, event);
    } finally {
      clearTimeout(killTimer);
    }
  }

  /**
   * The holder's answer to 'lock', or `timeout` after `waitMs` (a little after lock_wait_timeout, cut short
   * where freeze_timeout comes first: no wait runs past it, so the agent's own limit is kept). While the statement
   * waits, who holds it up is looked up (the first time after half of lock_wait_timeout, at most 1 s):
   * once the server has timed it out, its wait is gone from the server's tables. A lookup runs beside
   * the wait, never in its way: a server that stops answering delays no answer and no deadline.
   */
  private async awaitAnswer(holder: HolderProcess, waitMs: number): Promise<HolderEvent> {
    const answerBy = new Deadline(waitMs, this.clock);
    let lookupAt = new Deadline(Math.min(LOOKUP_INTERVAL_MS, (this.settings.lockWaitTimeout * 1000) / 2), this.clock);
    let looking = false;
    for (;;) {
      const event = await holder.next(Math.min(answerBy.remainingMs(), lookupAt.remainingMs()), this.abort);
      if (event.type !== 'timeout' || answerBy.passed()) return event;
      if (!lookupAt.passed()) continue;
      lookupAt = new Deadline(LOOKUP_INTERVAL_MS, this.clock);
      if (looking) continue;
      looking = true;
      void this.lookUpAttemptWait(holder).finally(() => (looking = false));
    }
  }

  /** lock.timeout: the attempt timed out on the server; who held it up, and what to do about it. */
  private logTimeout(error: string): void {
    const wait = this.attemptWait;
    this.lockTimeoutWait = wait;
    const base = `lock attempt ${this.attempts} timed out on the server (lock_wait_timeout ${this.settings.lockWaitTimeout} s)`;
    if (wait === undefined) {
      this.logger.warn({ event: 'lock.timeout', attempt: this.attempts, error }, `${base}; waiting for the next quiet moment`);
      return;
    }
    this.logger.warn(
      {
        event: 'lock.timeout',
        attempt: this.attempts,
        error,
        waiter: wait.report.waiter,
        source: wait.report.source,
        cause: wait.advice.cause,
        heldUpBy: wait.advice.culprits,
        holders: wait.report.holders,
        advice: wait.advice.advice,
        ...(wait.report.unavailable === undefined ? {} : { unavailable: wait.report.unavailable }),
      },
      `${base}: ${adviceText(wait.advice)}; waiting for the next quiet moment`,
    );
  }

  /**
   * A holder that exited before it was told to lock held nothing: it is replaced, a few times per freeze
   * (freeze_timeout bounds it too). Undefined for any other event, or once the replacements are used up.
   */
  private replaceExited(holder: HolderProcess, event: HolderEvent): Promise<Attempt> | undefined {
    if (event.type !== 'exit') return undefined;
    this.replaced += 1;
    if (this.replaced > MAX_REPLACED_HOLDERS) return undefined;
    return this.abandon(holder, `the holder exited before it was told to lock (${describeExit(event)}); it is replaced`);
  }

  private async abandon(holder: HolderProcess, why: string): Promise<Attempt> {
    // Looked up before the holder's connection is killed, while its wait is still on the server; bounded,
    // as the server may be the reason it did not answer.
    if (this.attemptWait === undefined) await Promise.race([this.lookUpAttemptWait(holder), new Promise<void>((resolve) => setTimeout(resolve, LOOKUP_INTERVAL_MS).unref())]);
    const wait = this.attemptWait;
    this.lockTimeoutWait = wait;
    await this.stopHolder(holder);
    this.logger.warn(
      { event: 'lock.abandoned', attempt: this.attempts, reason: why, ...(wait === undefined ? {} : { cause: wait.advice.cause, heldUpBy: wait.advice.culprits, advice: wait.advice.advice }) },
      `lock attempt ${this.attempts} abandoned: ${why}${wait === undefined ? '' : `: ${adviceText(wait.advice)}`}; waiting for the next quiet moment`,
    );
    return { result: 'timeout' };
  }

  /** Anything but an answer to the attempt ends the freeze: the holder is stopped first, its FLUSH KILLed. */
  private async unexpected(holder: HolderProcess, event: HolderEvent): Promise<never> {
    await this.stopHolder(holder);
    switch (event.type) {
      case 'aborted':
        throw abortError(this.abort);
      case 'failed':
        throw new HookError(event.code, event.message);
      case 'spawn-error':
        throw new HookError('INTERNAL', event.message);
      case 'exit':
        throw new HookError('INTERNAL', `the lock holder exited before locking (${describeExit(event)}); nothing is held`);
      default:
        throw new HookError('INTERNAL', `unexpected message from the lock holder: ${event.type}`);
    }
  }

  /**
   * kill_long_queries: the lock has waited kill_long_queries_after; KILL QUERY the statements of the
   * configured kind that were already running when it started (the ones it waits for), as XtraBackup's
   * --kill-long-queries-timeout does. Every kill is logged with the statement.
   */
  private async killLongQueries(attemptStartedAt: number): Promise<void> {
    try {
      const rows = await readProcesslist(this.session);
      const waitedSeconds = (this.clock.now() - attemptStartedAt) / 1000;
      const victims = findBlockers(rows, this.rules(waitedSeconds)).filter((row) => isKillable(row, this.settings.killLongQueries));
      for (const row of victims) {
        const fields = { thread: row.id, user: row.user, host: row.host, db: row.db, seconds: row.timeMs / 1000, statement: statementPreview(row.info) };
        try {
          await this.session.connection.query(`KILL QUERY ${Number(row.id)}`);
        } catch (error) {
          this.logger.error({ event: 'query.kill_failed', ...fields, error: (error as Error).message }, `could not kill the statement of thread ${row.id}: ${(error as Error).message}`);
          continue;
        }
        this.logger.warn(
          { event: 'query.killed', ...fields },
          `killed the statement of thread ${row.id} (${row.user}, running ${(row.timeMs / 1000).toFixed(1)} s) that held up the lock (kill_long_queries = ${this.settings.killLongQueries})`,
        );
      }
    } catch (error) {
      this.logger.warn({ event: 'query.killed', error: (error as Error).message }, `could not kill long queries: ${(error as Error).message}`);
    }
  }

  /** Stops a holder that does not hold the lock for us: its statement KILLed on the server, the process ended. */
  private async stopHolder(holder: HolderProcess): Promise<void> {
    if (this.holder === holder) this.holder = undefined;
    // The server side first: a FLUSH waiting there keeps writers waiting behind it.
    if (holder.connectionId !== undefined) {
      // The holder's connection: the id it reported, our account, the server lifetime our session saw.
      const proof = { id: holder.connectionId, user: this.settings.client.user, serverStartedAt: this.session.server.startedAt };
      const outcome = await killConnectionIfOurs(this.session, proof).catch(() => 'gone' as const);
      if (outcome === 'killed') {
        this.logger.warn({ event: 'connection.killed', thread: proof.id }, `killed the holder's connection ${proof.id} on the server`);
      }
    }
    await holder.stop();
  }

  private async pause(ms: number): Promise<void> {
    if (ms <= 0) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.abort.addEventListener('abort', done, { once: true });
    });
    this.throwIfAborted();
  }

  private throwIfAborted(): void {
    if (this.abort.aborted) throw abortError(this.abort);
  }

  /**
   * FREEZE_TIMEOUT, with what held up the last try and advice that fits: "raise freeze_timeout" only
   * where waiting longer can help.
   */
  private timeoutError(): HookError {
    const head = `no lock within freeze_timeout (${this.settings.freezeTimeout} s) after ${this.attempts} attempt(s)`;
    if (typeof this.lastObstacle === 'object') {
      return new HookError('FREEZE_TIMEOUT', `${head}: at the last attempt ${this.lastObstacle.refused}. Wait until the node is Synced (wsrep_local_state = 4) and freeze again`);
    }
    const wait = this.lastObstacle === 'lock' ? this.lockTimeoutWait : this.windowWait;
    const blockers = this.lastBlockers.slice(0, 3).map((row) => `thread ${row.id} (${serverText(row.user, 64)}, ${(row.timeMs / 1000).toFixed(0)} s): ${statementPreview(row.info, 80)}`);
    const running = this.lastObstacle === 'window' && blockers.length > 0 ? `; still running: ${blockers.join('; ')}` : '';
    if (wait !== undefined) {
      this.progress.lockWait = summarize(wait);
      return new HookError('FREEZE_TIMEOUT', `${head}${running}; ${adviceText(wait.advice)}`);
    }
    if (this.lastObstacle === 'lock') {
      return new HookError(
        'FREEZE_TIMEOUT',
        `${head}: the last attempt timed out on the server (lock_wait_timeout ${this.settings.lockWaitTimeout} s) and whom it waited for was not seen. Look for a session idle inside LOCK TABLES or an open transaction (SHOW PROCESSLIST, Command Sleep)`,
      );
    }
    return new HookError('FREEZE_TIMEOUT', `${head}${running}. Raise freeze_timeout or long_query_time, or add the user to ignore_users`);
  }
}

function describeExit(event: { code: number | null; signal: NodeJS.Signals | null }): string {
  return event.signal ?? `exit code ${event.code}`;
}

/** The abort's reason says why: "by SIGTERM", "because ..." (src/snapshot/hook.ts). */
export function abortError(abort: AbortSignal): HookError {
  return new HookError('ABORTED', `freeze aborted ${typeof abort.reason === 'string' ? abort.reason : 'by a signal'}; nothing is held`);
}

