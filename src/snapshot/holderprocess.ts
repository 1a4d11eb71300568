/**
 * The freeze side of a lock holder: the detached child process, started early so that its start-up
 * overlaps freeze's own work, and its messages as a queue of events that freeze awaits in order.
 *
 *   freeze                         holder
 *   start (credentials) ------->   connects, prepares its session
 *                       <-------   connected (its connection id)
 *   lock (plan)        ------->    runs the lock statements, reads the coordinates
 *                       <-------   locked | failed
 *   ack                ------->    from now on outlives freeze (without it, it releases when freeze goes)
 */
import path = require('node:path');
import type { Settings } from '../config/settings';
import { Channel } from './channel';
import { identify, stopProcess } from '../state/processes';
import { SpawnedHolder } from './spawnholder';
import type { FromHolder, HolderStart, LockRequest, ToHolder } from './holderstate';
import { VERSION } from '../version';

export type HolderEvent =
  | FromHolder
  | { type: 'exit'; code: number | null; signal: NodeJS.Signals | null }
  | { type: 'spawn-error'; message: string }
  | { type: 'timeout' }
  | { type: 'aborted' };

export class HolderProcess {
  /** the server's id for the holder's connection, once it has reported it */
  connectionId: number | undefined;
  private readonly events: HolderEvent[] = [];
  private waiter: ((event: HolderEvent) => void) | undefined;
  private exited = false;
  /** none if it could not be started */
  private readonly channel: Channel<FromHolder, ToHolder> | undefined;
  /** its exit status, reported once the channel is closed too: its last message comes first */
  private exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;

  /** Takes over a holder just started (spawnholder.ts; freeze's first one is started by src/runtime/seamain.ts). */
  constructor(private readonly child: SpawnedHolder = SpawnedHolder.spawn()) {
    const socket = child.channel;
    if (socket !== null) {
      this.channel = Channel.ofSocket<FromHolder, ToHolder>(socket);
      this.channel.listen({
        message: (message) => {
          if (message.type !== 'connected') return this.push(message);
          // Only ever awaited before the lock request, and only if it had not come yet: never queued, so
          // that a 'connected' that came while freeze was polling is not taken for the answer to 'lock'.
          this.connectionId = message.connectionId;
          this.waiter?.(message);
        },
        closed: () => this.reportExit(),
      });
    }
    child.onEnd((end) => {
      this.exited = true;
      if (end.type === 'spawn-error') {
        this.channel?.close();
        return this.push(end);
      }
      this.exit = { code: end.code, signal: end.signal };
      this.reportExit();
    });
  }

  private reportExit(): void {
    if (this.exit === undefined || this.channel?.isOpen === true) return;
    this.push({ type: 'exit', ...this.exit });
    this.exit = undefined;
  }

  /** Hands over what it needs (the socket holds it until the holder reads it). */
  begin(start: Omit<HolderStart, 'type' | 'version'>): this {
    void this.channel?.send({ type: 'start', version: VERSION, ...start });
    return this;
  }

  /** Whether its process has ended (its last messages may still be queued). */
  get hasExited(): boolean {
    return this.exited;
  }

  get pid(): number {
    return this.child.pid;
  }

  private push(event: HolderEvent): void {
    const waiter = this.waiter;
    if (waiter !== undefined) {
      this.waiter = undefined;
      waiter(event);
    } else {
      this.events.push(event);
    }
  }

  /** The next event, or `timeout` after `timeoutMs`, or `aborted` when `abort` fires. */
  next(timeoutMs: number, abort: AbortSignal): Promise<HolderEvent> {
    const queued = this.events.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    if (abort.aborted) return Promise.resolve({ type: 'aborted' });
    return new Promise((resolve) => {
      const finish = (event: HolderEvent): void => {
        clearTimeout(timer);
        abort.removeEventListener('abort', onAbort);
        this.waiter = undefined;
        resolve(event);
      };
      const onAbort = (): void => finish({ type: 'aborted' });
      const timer = setTimeout(() => finish({ type: 'timeout' }), timeoutMs);
      abort.addEventListener('abort', onAbort, { once: true });
      this.waiter = finish;
    });
  }

  lock(request: Omit<LockRequest, 'type'>): void {
    void this.channel?.send({ type: 'lock', ...request });
  }

  /**
   * From here the holder outlives us. The channel is left to our exit, a moment from now, to close:
   * closing a socket here makes Node build process.stderr (~0.5 ms, while writers wait on the lock).
   * The ack is with the kernel by then, so the holder reads it before the end of the channel.
   */
  async acknowledge(): Promise<void> {
    await this.channel?.send({ type: 'ack' });
    this.child.unref();
  }

  /** Ends a holder that does not hold the lock for us. Our own unreaped child: its PID is proven ours. */
  async stop(): Promise<void> {
    if (this.exited) return;
    void this.channel?.send({ type: 'abort' });
    const identity = identify(this.pid);
    if (identity !== null) await stopProcess(identity, 2000);
  }
}

/** Starts the holder for one lock attempt of this configuration (or begins one spawned earlier). */
export function startHolder(settings: Settings, attempt: number, spawned: HolderProcess = new HolderProcess()): HolderProcess {
  return spawned.begin(
    {
      client: settings.client,
      lockWaitTimeout: settings.lockWaitTimeout,
      maxLockTime: settings.maxLockTime,
      freezeTimeout: settings.freezeTimeout,
      runDir: settings.runDir,
      logFile: settings.logFile,
      configFile: path.resolve(settings.file),
      freezePid: process.pid,
      attempt,
    },
  );
}

