/**
 * pre-freeze-mysql-lock: the process that takes FLUSH TABLES WITH READ LOCK on its own connection and
 * holds it across the snapshot. Started detached by freeze, which hands it the credentials over their
 * private channel (src/snapshot/channel.ts). While it holds, it writes nothing outside run_dir (the filesystems
 * may be frozen): it releases first and logs afterwards.
 */
import fs = require('node:fs');
import net = require('node:net');
import path = require('node:path');
import { Channel } from './channel';
import { readCoordinates, readCoordinatesFromLogStatus, type Coordinates } from '../server/coordinates';
import { desyncRefusal } from '../server/galera';
import { ThawWatch } from './fsthaw';
import { ThawStartWatch } from './thawstart';
import { describedSession, openLink, serverError, withSession, type Link, type Session } from '../server/session';
import { killConnectionIfOurs } from '../server/processlist';
import { identify, type ProcessIdentity } from '../state/processes';
import { monotonic } from '../clock';
import { VERSION } from '../version';
import { boundStatement, type LockPlan } from '../server/lockmodes';
import { heldMs, type FromHolder, type HolderStart, type HolderState, type LockRequest, RELEASE_SIGNAL, type ReleaseReason, type ToHolder } from './holderstate';
import { removeFile, STATE_FILE, writeJson } from '../state/statedir';
import { newClaimPath } from '../state/holderclaim';
import { HookError } from '../errors';

/** ER_LOCK_WAIT_TIMEOUT, ER_STATEMENT_TIMEOUT (MariaDB max_statement_time), ER_QUERY_TIMEOUT (MySQL) */
const LOCK_TIMEOUT_ERRNOS = new Set([1205, 1969, 3024]);
const START_MESSAGE_TIMEOUT_MS = 10_000;
/**
 * Released at thaw's start or at the filesystem thaw, nobody waits for our end, and the writers we freed
 * resume right then, beside thaw's runtime starting. What is left to us (closing our connection, which
 * the server tears down; the logger; logging; the runtime's end: 10-15 ms of CPU) would take a core from
 * them, so it waits this long first. Measured with the logger loaded at our start: the writer through
 * 7.4-8.9 ms after thaw's exec instead of 11.4-13.3 (BENCHMARKS.md, #20). thaw waits for our end, but its
 * own runtime takes longer than this to get there.
 */
const WRITERS_FIRST_MS = 25;
const UNAWAITED_RELEASES: ReadonlySet<ReleaseReason | undefined> = new Set(['thaw_started', 'filesystem_thaw']);

/**
 * Ends a lock just taken that is not kept (its coordinates unread, a Galera node not desynced, its state
 * unsaved). Errors are ignored: the lock also ends with the connection, which the caller closes.
 */
async function giveBack(session: Session, plan: LockPlan): Promise<void> {
  for (const statement of plan.unlock) await session.connection.query(statement).catch(() => undefined);
}

export async function runHolder(): Promise<number> {
  const channel = Channel.ofHolder<ToHolder, FromHolder>();
  if (channel === undefined) {
    process.stderr.write('pre-freeze-mysql-lock is started by pre-freeze-script; it is not run by hand\n');
    return 2;
  }
  const start = await firstMessage(channel);
  if (start === undefined) return 1;
  if (start.version !== VERSION) {
    // The executable was replaced (an upgrade) between freeze starting and this holder starting.
    const message = `the executable was replaced during the freeze (freeze ${String(start.version)}, holder ${VERSION}); run the freeze again`;
    await channel.send({ type: 'failed', code: 'INTERNAL', message, timedOut: false });
    return 1;
  }
  // Started in `/`; from now on in its run_dir, so that /proc/PID/cwd tells whose holder this is.
  try {
    process.chdir(start.runDir);
  } catch {
    // freeze made it; if it is gone, writing the state fails later and is handled there
  }
  return new Holder(start, channel).run();
}

type HolderChannel = Channel<ToHolder, FromHolder>;

/** Freeze's first message, if it is a start and comes in time. What follows it waits for the holder. */
function firstMessage(channel: HolderChannel): Promise<HolderStart | undefined> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => finish(undefined), START_MESSAGE_TIMEOUT_MS);
    const finish = (message: ToHolder | undefined): void => {
      clearTimeout(timer);
      channel.listen(undefined);
      resolve(message?.type === 'start' ? message : undefined);
    };
    channel.listen({ message: finish, closed: () => finish(undefined) });
  });
}

class Holder {
  private readonly identity: ProcessIdentity;
  /** our connection, from the start */
  private link: Link | undefined;
  /** the same connection, once freeze has told us which server it is connected to (with the lock request) */
  private session: Session | undefined;
  private state: HolderState;
  private acknowledged = false;
  private plan: LockPlan | undefined;
  private afterRelease: string[] = [];
  private statementRunning = false;
  private releasing: Promise<void> | undefined;
  private expiryTimer: NodeJS.Timeout | undefined;
  private thawWatch: ThawWatch | undefined;
  private thawStartWatch: ThawStartWatch | undefined;
  /** the state file as we last wrote it (inode, size, mtime): whether our record still stands in run_dir */
  private recorded: string | undefined;
  /** why the watch for the filesystem thaw ended without one (logged after the release) */
  private thawWatchProblem: string | undefined;
  /** our claim on run_dir (src/state/holderclaim.ts), from the lock request to our exit */
  private claim: net.Server | undefined;
  /** the server's wait_timeout for our connection while we hold, and when we last sent it a statement */
  private heldWaitTimeout = 0;
  private lastStatementAt = 0;
  private resolveDone: (code: number) => void = () => {};
  private readonly done = new Promise<number>((resolve) => (this.resolveDone = resolve));

  constructor(
    private readonly start: HolderStart,
    private readonly channel: HolderChannel,
  ) {
    this.identity = identify(process.pid) ?? { pid: process.pid, startTime: '', name: path.basename(process.argv0), exe: process.execPath };
    this.state = {
      version: 1,
      phase: 'locking',
      holder: this.identity,
      freezePid: start.freezePid,
      connection: null,
      startedAt: Date.now(),
      maxLockTime: start.maxLockTime,
    };
  }

  async run(): Promise<number> {
    this.channel.listen({
      message: (message) => {
        if (message.type === 'lock') {
          void this.lock(message);
        } else if (message.type === 'ack') {
          // The channel ends when freeze exits, a moment from now: from here that is no reason to release.
          this.acknowledged = true;
          this.watchForThaw();
          this.watchForThawStart();
        } else if (message.type === 'abort') {
          void this.stop('aborted', 'freeze aborted');
        }
      },
      // Freeze gone before it acknowledged the lock: it failed, the agent will not call thaw. Release now.
      closed: () => {
        if (!this.acknowledged) void this.stop('aborted', 'freeze exited before acknowledging the lock');
      },
    });
    for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
      process.on(signal, () => void this.stop('aborted', `received ${signal}`));
    }
    // thaw's request, sent after it proved from our state, or our claim on run_dir, that this PID is us
    process.on(RELEASE_SIGNAL, () => void this.stop('requested', 'post-thaw asked'));
    void this.connect();
    return this.done;
  }

  private send(message: FromHolder): Promise<void> {
    return this.channel.send(message);
  }

  /**
   * Connects as soon as we start, while freeze is still looking for a quiet moment, and sends nothing:
   * the id comes with the server's handshake (its own thread id: the hook connects to the server
   * directly, never through a proxy, see README), and freeze's session has read the rest.
   */
  private async connect(): Promise<void> {
    try {
      // Several statements per query: the coordinates in one round trip while writers wait.
      const linking = openLink(this.start.client, { multipleStatements: true });
      // The logger is used only after the release, but loaded now, while the connection is made: loading
      // it then would take a core from the writers just freed (WRITERS_FIRST_MS). Loading only reads (from the
      // executable itself when packaged) and writes nothing.
      import('../log').catch(() => undefined);
      this.link = await linking;
    } catch (error) {
      return this.fail(error, false);
    }
    if (this.releasing !== undefined) return;
    this.link.connection.on('error', () => void this.stop('lost', 'the server closed the connection'));
    void this.send({ type: 'connected', connectionId: this.link.connection.threadId });
    // Freeze may wait for a quiet moment longer than the server's wait_timeout: outlast it while idle
    // (lock() sets the dead-man's value). Not awaited: the lock request queues behind it on the connection.
    const idleSeconds = Math.ceil(this.start.freezeTimeout) + 60;
    this.link.connection.query(`SET SESSION wait_timeout = ${idleSeconds}`).catch(() => undefined);
  }

  private async lock(request: LockRequest): Promise<void> {
    const link = this.link;
    if (link === undefined || this.releasing !== undefined || this.plan !== undefined) return;
    const { maxLockTime, lockWaitTimeout, client } = this.start;
    const { plan } = request;
    const session = describedSession(link, request.server);
    this.session = session;
    this.plan = plan;
    this.afterRelease = request.afterRelease;
    // Our state from now on: until freeze said lock, it had not proven it may (one freeze at a time, no
    // lock already held), and an early holder must not touch the state of a lock someone else holds.
    const connection = { id: session.server.connectionId, user: client.user, serverStartedAt: session.server.startedAt };
    this.state = { ...this.state, connection, lockMode: plan.mode, afterRelease: request.afterRelease, ...(request.thawProbe === null ? {} : { thawProbe: request.thawProbe }) };
    // No lock without a record: the claim on run_dir and our state in it come first, or nothing is taken.
    try {
      this.claim = await claimRunDir(this.start.runDir);
      if (this.releasing !== undefined) return;
      this.saveState();
    } catch (error) {
      return this.fail(error, false);
    }
    // The lock statements are bounded on the server itself (see lockPlan), so a writer never waits
    // behind them for long even if we are gone: a FLUSH given up on by the client keeps running there.
    const startedAt = monotonic.now();
    this.heldWaitTimeout = Math.ceil(maxLockTime) + 10;
    try {
      // Dead-man switch: a hung holder loses its lock on the server a little after max_lock_time (set
      // only now: while freeze waits for a quiet moment this connection may idle for long).
      await session.connection.query(`SET SESSION wait_timeout = ${this.heldWaitTimeout}, lock_wait_timeout = ${Math.max(1, Math.ceil(lockWaitTimeout))}`);
      this.statementRunning = true;
      for (const statement of plan.lock) {
        await session.connection.query(boundStatement(statement, plan.boundSeconds - (monotonic.now() - startedAt) / 1000));
      }
    } catch (error) {
      this.statementRunning = false;
      if (this.releasing !== undefined) return;
      return this.fail(error, LOCK_TIMEOUT_ERRNOS.has(Number((error as { errno?: unknown }).errno)));
    }
    this.statementRunning = false;
    if (this.releasing !== undefined) return; // aborted while the statement ran: its socket is closed
    const lockedAt = Date.now();
    const waitedMs = Math.round(monotonic.now() - startedAt);
    let coordinates: Coordinates;
    try {
      coordinates =
        plan.coordinatesFrom === 'log_status'
          ? await readCoordinatesFromLogStatus(session, request.replication, request.galera)
          : await readCoordinates(session, request.replication, request.galera);
    } catch (error) {
      await giveBack(session, plan);
      return this.fail(error, false);
    }
    const refusal = request.galera ? desyncRefusal(coordinates.galeraState) : undefined;
    if (refusal !== undefined) {
      await giveBack(session, plan);
      await this.send({ type: 'refused', reason: refusal });
      return void this.stop('aborted', refusal);
    }
    this.lastStatementAt = Date.now();
    this.state = { ...this.state, phase: 'held', lockedAt, coordinates };
    try {
      this.saveState();
    } catch (error) {
      // Held but unrecorded: thaw could not tell this lock from none. Release it and say why.
      await giveBack(session, plan);
      this.state = { ...this.state, phase: 'locking' };
      return this.fail(error, false);
    }
    // A Node timer runs on the monotonic clock: a wall-clock step does not move max_lock_time.
    this.expiryTimer = setTimeout(() => void this.stop('expired', `max_lock_time (${maxLockTime} s) reached`), maxLockTime * 1000);
    this.markForThawStart();
    void this.send({ type: 'locked', coordinates, lockedAt, waitedMs });
  }

  /**
   * Once freeze has exited the agent freezes the filesystems, and the snapshot is taken while they are
   * frozen: a thaw of the data directory's filesystem seen from here ends the hold (src/snapshot/fsthaw.ts).
   */
  private watchForThaw(): void {
    const directory = this.state.thawProbe;
    if (directory === undefined || this.state.phase !== 'held' || this.releasing !== undefined) return;
    this.thawWatch = new ThawWatch(directory, {
      thawed: (freeze) => {
        this.state = { ...this.state, filesystemFreeze: freeze };
        void this.stop('filesystem_thaw', `the filesystem of ${directory} thawed after the snapshot`);
      },
      gaveUp: (why) => (this.thawWatchProblem = why),
    }).start();
  }

  /**
   * Where no filesystem is frozen, the hold ends when the agent starts thaw: seen from here at its exec,
   * not when its runtime is up and asks (src/snapshot/thawstart.ts). The processes running at the lock are
   * noted before freeze learns of it: the agent may start thaw before freeze's acknowledgement reaches us
   * (3 in 144 cycles of test/e2e/thawstart.test.ts, where thaw follows freeze at once), and a
   * watch that noted the processes only then would count that thaw as already there and miss it.
   */
  private markForThawStart(): void {
    const watch = new ThawStartWatch(this.start.configFile, (start) => {
      // Released this way, we are gone before thaw looks: it learns how the hold went from our final state
      // in run_dir, so only while our record there stands (not replaced, removed, or run_dir moved away).
      // Otherwise thaw finds us by our claim and asks, as it would without this watch.
      if (!this.recordStands()) return;
      this.state = { ...this.state, thawStart: start };
      void this.stop('thaw_started', `${start.name} ${start.operation} started (pid ${start.pid})`);
    });
    if (watch.mark()) this.thawStartWatch = watch;
  }

  /** Once freeze has acknowledged the lock: from then on a thaw's exec ends the hold. */
  private watchForThawStart(): void {
    if (this.state.phase !== 'held' || this.releasing !== undefined) return;
    this.thawStartWatch?.start();
  }

  private async fail(error: unknown, timedOut: boolean): Promise<void> {
    const hookError = serverError(error, 'taking FLUSH TABLES WITH READ LOCK', this.session?.server.account);
    await this.send({ type: 'failed', code: hookError.code, message: hookError.message, timedOut });
    await this.stop('aborted', hookError.message);
  }

  /**
   * Releases (or abandons the attempt) exactly once: UNLOCK on our own connection and the outcome
   * recorded in run_dir, before anything else. Resolves once released; the rest (closing, logging,
   * exiting) follows.
   */
  private stop(reason: ReleaseReason, detail: string): Promise<void> {
    if (this.releasing === undefined) {
      this.releasing = this.release(reason, detail);
      void this.releasing.then(() => this.finish(detail));
    }
    return this.releasing;
  }

  private async release(reason: ReleaseReason, detail: string): Promise<void> {
    clearTimeout(this.expiryTimer);
    this.thawWatch?.stop();
    this.thawStartWatch?.stop();
    const wasHeld = this.state.phase === 'held';
    let phase: HolderState['phase'] = reason === 'expired' ? 'expired' : reason === 'lost' ? 'lost' : wasHeld ? 'released' : 'aborted';
    if (wasHeld && reason !== 'lost') {
      try {
        for (const statement of this.plan?.unlock ?? []) await this.session?.connection.query(statement);
      } catch {
        phase = 'lost'; // the connection is gone, and with it the lock (the server released it)
      }
    } else if (this.statementRunning && this.session !== undefined) {
      await this.abandonLockStatement(this.session);
    }
    // After an abandoned attempt, freeze carries on and restarts what it stopped itself.
    const afterRelease = wasHeld ? await this.runAfterRelease() : [];
    // The real cause of a lost lock is known only now, whichever timer or event came first.
    const cause = wasHeld && phase === 'lost' ? this.lossCause(Date.now()) : undefined;
    this.state = {
      ...this.state,
      phase,
      releasedAt: cause?.at ?? Date.now(),
      releaseReason: cause === undefined ? reason : 'lost',
      detail: cause?.detail ?? detail,
      afterRelease,
    };
    if (this.claim === undefined) return; // a holder that never claimed run_dir has nothing to report there
    try {
      this.saveState();
    } catch {
      // Released already. A stale "locking" or "held" record must not outlive us (removing needs no space).
      try {
        removeFile(this.start.runDir, STATE_FILE);
      } catch {
        // run_dir itself is gone: thaw finds us by our claim while we live, and nothing after
      }
    }
  }

  /**
   * A connection lost while we held, after we had sent nothing for longer than the server's wait_timeout:
   * the server dropped it for idling, i.e. this process did not run (stopped, or starved) for that long.
   * Its timers, max_lock_time's included, fire late when it runs again, so they are not the cause.
   */
  private lossCause(now: number): { detail: string; at: number } | undefined {
    if (this.heldWaitTimeout === 0 || this.lastStatementAt === 0) return undefined;
    const silentMs = now - this.lastStatementAt;
    if (silentMs < this.heldWaitTimeout * 1000) return undefined;
    return {
      detail:
        `the server closed the holder's connection after its wait_timeout (${this.heldWaitTimeout} s, max_lock_time + 10 s): ` +
        `the holder did not run for about ${Math.round(silentMs / 1000)} s (stopped or starved), so the server dropped the lock, not max_lock_time`,
      at: this.lastStatementAt + this.heldWaitTimeout * 1000,
    };
  }

  /** E.g. restart the replica applier that freeze stopped; what fails is left in the state for thaw. */
  private async runAfterRelease(): Promise<string[]> {
    const remaining = [...this.afterRelease];
    while (remaining.length > 0 && this.session !== undefined && this.state.phase !== 'lost') {
      try {
        await this.session.connection.query(remaining[0] ?? '');
        remaining.shift();
      } catch {
        break;
      }
    }
    return remaining;
  }

  /** A FLUSH still waiting on the server would keep writers waiting: close our socket and KILL the id. */
  private async abandonLockStatement(session: Session): Promise<void> {
    session.destroy();
    const proof = this.state.connection;
    if (proof === null) return;
    try {
      await withSession(this.start.client, { connectTimeoutMs: 2000 }, (killer) => killConnectionIfOurs(killer, proof));
    } catch {
      // the server bounds the statement by lock_wait_timeout anyway
    }
  }

  /** After the release: from here on we may write to disk. */
  private async finish(detail: string): Promise<void> {
    if (UNAWAITED_RELEASES.has(this.state.releaseReason)) await new Promise((resolve) => setTimeout(resolve, WRITERS_FIRST_MS));
    await this.link?.close();
    this.claim?.close();
    const { phase } = this.state;
    // A holder never told to lock has nothing of its own to tell: whatever stopped it (a refused login,
    // freeze gone) reaches freeze, which logs it; a line here would only repeat it, and out of order.
    if (this.plan === undefined) return this.resolveDone(1);
    const { createLogger } = await import('../log'); // loaded at our start (connect), created only now: nothing is logged before the release
    const logger = createLogger(this.start.logFile, 'hold');
    const { filesystemFreeze } = this.state;
    const fields = { heldMs: heldMs(this.state), coordinates: this.state.coordinates, reason: this.state.releaseReason, filesystemFreeze };
    if (this.thawWatchProblem !== undefined) {
      logger.warn({ event: 'thaw_watch.failed', reason: this.thawWatchProblem }, `stopped watching for the filesystem thaw: ${this.thawWatchProblem}; the lock was left to post-thaw`);
    }
    const why = this.state.detail ?? detail;
    if (phase === 'released') logger.info({ event: 'lock.released', ...fields }, `lock released (${why})`);
    else if (phase === 'expired') logger.error({ event: 'lock.expired', ...fields }, `lock released by itself: ${why}; the snapshot may not be consistent`);
    else if (phase === 'lost') logger.error({ event: 'lock.lost', ...fields }, `lock lost: ${why}`);
    else logger.warn({ event: 'lock.aborted', ...fields }, `lock attempt stopped: ${why}`);
    this.resolveDone(phase === 'released' ? 0 : 1);
  }

  /** Whether the state file in run_dir is still the one we wrote last (one stat: this runs as writers wait). */
  private recordStands(): boolean {
    return this.recorded !== undefined && this.recorded === statKey(path.join(this.start.runDir, STATE_FILE));
  }

  /** Throws a HookError naming the file and the cause (ENOSPC, EACCES, ...) if the state cannot be written. */
  private saveState(): void {
    const file = path.join(this.start.runDir, STATE_FILE);
    try {
      writeJson(this.start.runDir, STATE_FILE, this.state);
      this.recorded = statKey(file);
    } catch (error) {
      throw new HookError(
        'UNSAFE',
        `cannot record the lock holder's state in ${file} (${(error as Error).message}); nothing is held. Free space in run_dir's filesystem or fix its permissions`,
        { cause: error },
      );
    }
  }
}

/** A file's identity and version as lstat sees it, or undefined if it is not there. */
function statKey(file: string): string | undefined {
  try {
    const stat = fs.lstatSync(file, { bigint: true, throwIfNoEntry: false });
    return stat === undefined ? undefined : `${stat.dev}:${stat.ino}:${stat.size}:${stat.mtimeNs}`;
  } catch {
    return undefined; // run_dir moved away or made unreadable: no record of ours stands there
  }
}

/** Listens on a new claim of run_dir (src/state/holderclaim.ts). */
function claimRunDir(runDir: string): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    // Anyone may connect to an abstract socket: nothing is read or answered on it.
    const server = net.createServer((socket) => socket.destroy());
    server.once('error', (error: NodeJS.ErrnoException) => {
      reject(new HookError('INTERNAL', `cannot claim run_dir ${runDir} for the lock holder: ${error.message}`, { cause: error }));
    });
    server.listen({ path: newClaimPath(runDir) }, () => {
      server.unref();
      resolve(server);
    });
  });
}
