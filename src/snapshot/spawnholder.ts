/**
 * Starts a freeze's lock holder: this executable under the name pre-freeze-mysql-lock, in its own session,
 * with no inherited stdio (qemu-ga and the SSM agent read our stdout to EOF), `/` as its directory
 * (run_dir once it has its configuration), an environment without anything of the caller's, and a
 * private channel as its descriptor 3: one end of a socket pair, the other end ours (channel.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type net = require('node:net');
import { HOLDER_NAME } from '../agents/dispatch';

/** How a holder's process ended: it exited, or it could not be started at all. */
export type HolderEnd =
  | { type: 'exit'; code: number | null; signal: NodeJS.Signals | null }
  | { type: 'spawn-error'; message: string };

export class SpawnedHolder {
  private end: HolderEnd | undefined;
  private listener: ((end: HolderEnd) => void) | undefined;

  private constructor(private readonly child: ChildProcess) {
    child.once('error', (error: NodeJS.ErrnoException) => {
      // Also emitted for a failed kill(); only a holder that never started ends here.
      if (child.pid === undefined) this.ended({ type: 'spawn-error', message: `cannot start the lock holder ${process.execPath}: ${error.code ?? error.message}` });
    });
    child.once('exit', (code, signal) => this.ended({ type: 'exit', code, signal }));
  }

  static spawn(environment: NodeJS.ProcessEnv = holderEnvironment(process.env)): SpawnedHolder {
    return new SpawnedHolder(
      spawn(process.execPath, [], {
        argv0: HOLDER_NAME,
        cwd: '/',
        env: environment,
        detached: true,
        stdio: ['ignore', 'ignore', 'ignore', 'pipe'],
      }),
    );
  }

  /** 0 if it could not be started */
  get pid(): number {
    return this.child.pid ?? 0;
  }

  /** Our end of the channel, or null if the holder could not be started. */
  get channel(): net.Socket | null {
    return this.child.pid === undefined ? null : ((this.child.stdio[3] as net.Socket | null | undefined) ?? null);
  }

  /** The listener is called once, when the holder exits or fails to start (at once if it already has). */
  onEnd(listener: (end: HolderEnd) => void): void {
    this.listener = listener;
    if (this.end !== undefined) listener(this.end);
  }

  /** Freeze no longer waits for it: it outlives us. */
  unref(): void {
    this.child.unref();
  }

  private ended(end: HolderEnd): void {
    if (this.end !== undefined) return;
    this.end = end;
    this.listener?.(end);
  }
}

/**
 * The holder's environment: nothing of ours but a safe PATH and the locale. No credentials (they go over
 * the channel), and no NODE_OPTIONS or other variable that could inject code into a root process.
 */
export function holderEnvironment(environment: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const kept: NodeJS.ProcessEnv = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' };
  for (const name of ['LANG', 'LC_ALL', 'TZ']) {
    const value = environment[name];
    if (value !== undefined) kept[name] = value;
  }
  return kept;
}
