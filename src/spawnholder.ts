/**
 * Starts a freeze's lock holder: this executable under the name pre-freeze-mysql-lock, in its own session,
 * with no inherited stdio (qemu-ga waits for EOF on our stdout), `/` as its directory (run_dir once it has
 * its configuration), an environment without anything of the caller's, and a private channel as its
 * descriptor 3: one end of a socket pair, the other end ours (src/channel.ts).
 *
 * Through the runtime's process and pipe bindings rather than node:child_process. The holder's start-up
 * is the longer path of every freeze, so freeze starts it before it loads anything else, from the
 * executable's main script (src/seamain.ts); node:child_process, with the streams and the networking it
 * loads, would cost ~5 ms before the first spawn. These bindings are the ones node:child_process itself
 * spawns with; the runtime is pinned (package.json) and the tests run the built executable.
 */
import { HOLDER_NAME } from './dispatch';

/** libuv's process handle, as node:child_process drives it */
interface ProcessHandle {
  pid: number;
  /** the signal's name, or '' */
  onexit: (exitCode: number, signalCode: string) => void;
  spawn(file: string, args: string[], cwd: string, envPairs: string[], stdio: object[], flags: number): number;
  close(): void;
  unref(): void;
}

type ExitListener = (code: number | null, signal: NodeJS.Signals | null) => void;

export class SpawnedHolder {
  private exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private listener: ExitListener | undefined;

  private constructor(
    /** 0 if it could not be started */
    readonly pid: number,
    /** our end of the channel: a pipe handle, for net.Socket({ handle }) */
    readonly channel: object,
    private readonly handle: ProcessHandle | undefined,
    /** why it could not be started */
    readonly error: string | undefined,
  ) {}

  static spawn(environment: NodeJS.ProcessEnv = holderEnvironment(process.env)): SpawnedHolder {
    const { Process, constants } = binding<{ Process: new () => ProcessHandle; constants: { kProcessFlagDetached: number } }>('process_wrap');
    const { Pipe, constants: pipeTypes } = binding<{ Pipe: new (type: number) => { close(): void }; constants: { SOCKET: number } }>('pipe_wrap');
    const channel = new Pipe(pipeTypes.SOCKET);
    const handle = new Process();
    // As node:child_process calls it (scripts/build.ts checks that the pinned runtime still does).
    const errno = handle.spawn(
      process.execPath,
      [HOLDER_NAME],
      '/',
      Object.entries(environment).map(([name, value]) => `${name}=${value}`),
      [{ type: 'ignore' }, { type: 'ignore' }, { type: 'ignore' }, { type: 'pipe', handle: channel }],
      constants.kProcessFlagDetached,
    );
    if (errno < 0) {
      handle.close();
      channel.close();
      const { getSystemErrorName } = require('node:util') as typeof import('node:util');
      const error = `cannot start the lock holder ${process.execPath}: ${getSystemErrorName(errno)}`;
      return new SpawnedHolder(0, channel, undefined, error);
    }
    const spawned = new SpawnedHolder(handle.pid, channel, handle, undefined);
    handle.onexit = (exitCode, signalCode) => {
      handle.close();
      spawned.exited(signalCode === '' ? exitCode : null, signalCode === '' ? null : (signalCode as NodeJS.Signals));
    };
    return spawned;
  }

  /** The listener is called once, when the holder exits (at once if it already has). */
  onExit(listener: ExitListener): void {
    this.listener = listener;
    if (this.exit !== undefined) listener(this.exit.code, this.exit.signal);
  }

  /** Freeze no longer waits for it: it outlives us. */
  unref(): void {
    this.handle?.unref();
  }

  private exited(code: number | null, signal: NodeJS.Signals | null): void {
    this.exit = { code, signal };
    this.listener?.(code, signal);
  }
}

/**
 * process.binding() is deprecated, without a warning unless NODE_PENDING_DEPRECATION=1 is in the caller's
 * environment: then the warning would reach the agent's output, about our internals, not its concern.
 */
function binding<T>(name: string): T {
  const quiet = process.noDeprecation;
  process.noDeprecation = true;
  try {
    return (process as unknown as { binding(name: string): T }).binding(name);
  } finally {
    process.noDeprecation = quiet;
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
