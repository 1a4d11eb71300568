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
import { spawn, type ChildProcess } from 'node:child_process';
import type { Settings } from './config';
import { HOLDER_NAME } from './dispatch';
import { identify, stopProcess } from './processes';
import type { FromHolder, HolderStart, LockRequest, ToHolder } from './state';
import { VERSION } from './version';

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

  private constructor(private readonly child: ChildProcess) {
    child.on('message', (message: FromHolder) => {
      if (message.type !== 'connected') return this.push(message);
      // Only ever awaited before the lock request, and only if it had not come yet: never queued, so
      // that a 'connected' that came while freeze was polling is not taken for the answer to 'lock'.
      this.connectionId = message.connectionId;
      this.waiter?.(message);
    });
    child.on('error', (error) => this.push({ type: 'spawn-error', message: `cannot start the lock holder ${process.execPath}: ${error.message}` }));
    child.on('exit', (code, signal) => {
      this.exited = true;
      this.push({ type: 'exit', code, signal });
    });
  }

  /**
   * Starts a holder: the same executable under the name pre-freeze-mysql-lock, in its own session, with
   * no inherited stdio (qemu-ga waits for EOF on our stdout), `/` as its directory (run_dir once it has
   * its configuration), an environment without anything of the caller's, and the credentials on the
   * private IPC channel.
   */
  static spawn(environment: NodeJS.ProcessEnv = holderEnvironment(process.env)): HolderProcess {
    const child = spawn(process.execPath, [], {
      argv0: HOLDER_NAME,
      detached: true,
      stdio: ['ignore', 'ignore', 'ignore', 'ipc'],
      cwd: '/',
      env: environment,
    });
    return new HolderProcess(child);
  }

  /** Hands over what it needs (the channel buffers it until the holder is up). */
  begin(start: Omit<HolderStart, 'type' | 'version'>): this {
    this.send({ type: 'start', version: VERSION, ...start });
    return this;
  }

  get pid(): number {
    return this.child.pid ?? 0;
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
    this.send({ type: 'lock', ...request });
  }

  /**
   * From here the holder outlives us. Disconnect only once the ack is written to the channel: closing
   * it with the write still queued would drop the ack, and the holder would release.
   */
  acknowledge(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.child.send({ type: 'ack' } satisfies ToHolder, (error) => {
        if (error) return reject(error);
        this.child.disconnect();
        this.child.unref();
        resolve();
      });
    });
  }

  private send(message: ToHolder): void {
    if (this.child.connected) this.child.send(message);
  }

  /** Ends a holder that does not hold the lock for us. Our own unreaped child: its PID is proven ours. */
  async stop(): Promise<void> {
    if (this.exited) return;
    this.send({ type: 'abort' });
    const identity = identify(this.pid);
    if (identity !== null) await stopProcess(identity, 2000);
  }
}

/** Starts the holder for one lock attempt of this configuration (or begins one spawned earlier). */
export function startHolder(settings: Settings, attempt: number, spawned: HolderProcess = HolderProcess.spawn()): HolderProcess {
  return spawned.begin(
    {
      client: settings.client,
      lockWaitTimeout: settings.lockWaitTimeout,
      maxLockTime: settings.maxLockTime,
      runDir: settings.runDir,
      logFile: settings.logFile,
      freezePid: process.pid,
      attempt,
    },
  );
}

/**
 * The holder's environment: nothing of ours but a safe PATH and the locale. No credentials (they go over
 * the IPC channel), and no NODE_OPTIONS or other variable that could inject code into a root process.
 */
export function holderEnvironment(environment: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const kept: NodeJS.ProcessEnv = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' };
  for (const name of ['LANG', 'LC_ALL', 'TZ']) {
    const value = environment[name];
    if (value !== undefined) kept[name] = value;
  }
  return kept;
}
