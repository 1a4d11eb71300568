/**
 * A freeze answers its agent from a process that ends in a fraction of a millisecond (#20).
 *
 * The agent waits for the process it started to end (and those that read our output, for its end too),
 * and only then freezes the filesystems or takes the snapshot; writers wait on the lock all that time. A
 * Node runtime takes 4-10 ms to end on a PVM guest (tearing down its address space), sh 0.1 ms. So before
 * anything is locked, the agent's process execs /bin/sh (the same process: the agent still waits on it),
 * and sh starts this executable again as the freeze's worker, which does everything. The worker writes its
 * lines to the agent's stdout and stderr itself; when it is done, it closes them and writes its exit code
 * on a pipe (its descriptor 3), and sh, the waiter, exits with that code at once. The worker's runtime
 * then ends in its own time, holding nothing the agent waits for.
 *
 * What the agent sees when it gives up on a freeze:
 * - SIGTERM, SIGINT or SIGHUP (vmtoolsd's timeout, a terminal's ^C): the waiter says so on stderr and
 *   exits 1 at once, as freeze always did on them. The worker sees its waiter gone within WATCH_MS,
 *   releases everything and says so; an agent that reads our output to EOF (Google's, the SSM agent) gets
 *   EOF once the worker is done.
 * - SIGKILL (Google's agent): the same without the waiter's line. The SSM agent kills the whole process
 *   group, the worker with it (it is in the waiter's group), and the lock holder, whose freeze vanished
 *   before acknowledging the lock, releases it (src/snapshot/holder.ts).
 * A worker that ends without writing its code (killed, or it could not start) fails the freeze.
 *
 * The worker knows its waiter by pid and start time (execve keeps both: a later process with the same pid
 * is not mistaken for it), given in its environment and removed from it at once.
 */
import fs = require('node:fs');
import { startTimeOf } from '../state/processes';

/** The worker's environment: its waiter (`pid:start time`), and the name the agent started us under. */
const WAITER_VARIABLE = 'VMS_FREEZE_WAITER';
const NAME_VARIABLE = 'VMS_FREEZE_AS';
/** The worker's end of the pipe its exit code goes on. */
const CODE_FD = 3;
/** How often the worker looks whether its waiter is still there. */
const WATCH_MS = 20;
const SHELL = '/bin/sh';

const abortedBy = (signal: string): string => `freeze failed: freeze aborted by SIG${signal}; its worker releases everything it took`;

/**
 * $0 is this executable, "$@" the agent's arguments. The worker gets the agent's stdout (saved on 4; an
 * agent may have closed it, and a failed `exec` would end sh) and stderr, and the pipe on 3; the reader
 * exits with the code, and the waiter with the reader. The waiter waits with `wait`, which a trapped
 * signal interrupts (a foreground pipeline would defer the trap).
 */
const WAITER_SCRIPT = `${['TERM', 'INT', 'HUP'].map((signal) => `trap "echo '${abortedBy(signal)}' >&2; exit 1" ${signal}`).join('\n')}
{ command exec 4>&1; } 2>/dev/null || exec 4>/dev/null
{ "$0" "$@" 3>&1 1>&4 4>&- & } | {
  IFS= read -r code
  case $code in
    [0-9]|[0-9][0-9]|[0-9][0-9][0-9]) exit "$code" ;;
  esac
  echo 'freeze failed: its worker ended without an exit code (see the log)' >&2
  exit 1
} 4>&- &
wait $!`;

/** sh's arguments for a waiter of `worker` started with `args`. */
export function waiterArguments(worker: string, args: readonly string[]): string[] {
  return ['sh', '-c', WAITER_SCRIPT, worker, ...args];
}

type Execve = (file: string, args: string[], environment: NodeJS.ProcessEnv) => never;

/**
 * Turns the agent's process into the waiter of a worker started under `name` with `args`. Returns only if
 * that cannot be done (no /bin/sh, a runtime without execve): the caller then freezes in this process.
 */
export function becomeWaiter(name: string, args: string[]): void {
  const startTime = startTimeOf(process.pid);
  const execve = (process as unknown as { execve?: Execve }).execve;
  if (startTime === null || execve === undefined || !isExecutable(SHELL)) return;
  const environment = { ...process.env, [WAITER_VARIABLE]: `${process.pid}:${startTime}`, [NAME_VARIABLE]: name };
  try {
    execve(SHELL, waiterArguments(process.execPath, args), environment);
  } catch {
    // not replaced: freeze here
  }
}

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The worker's view of its waiter: the agent's process, which exits with the code we give it. */
export class Waiter {
  private constructor(
    readonly pid: number,
    private readonly startTime: string,
    /** the name the agent started us under */
    readonly name: string,
    /** where our exit code goes */
    private readonly codeFd: number,
  ) {}

  /**
   * Ours if we are a worker (read from our environment, and removed from it so that no child inherits
   * it). No child of ours holds the pipe for our code open: Node marks inherited descriptors
   * close-on-exec when it starts (test/snapshot/waiter.test.ts checks it).
   */
  static ofWorker(environment: NodeJS.ProcessEnv = process.env, codeFd = CODE_FD): Waiter | undefined {
    const marker = environment[WAITER_VARIABLE];
    const name = environment[NAME_VARIABLE];
    delete environment[WAITER_VARIABLE];
    delete environment[NAME_VARIABLE];
    const match = /^([1-9][0-9]*):([0-9]+)$/.exec(marker ?? '');
    if (match === null || name === undefined) return undefined;
    return new Waiter(Number(match[1]), match[2] as string, name, codeFd);
  }

  /** Whether the agent's process is still there (a zombie is not: it waits only to be reaped). */
  get isAlive(): boolean {
    return startTimeOf(this.pid) === this.startTime;
  }

  /** Calls `gone` once, when the waiter is gone (at once if it is already); the result stops watching. */
  watch(gone: () => void): () => void {
    if (!this.isAlive) {
      gone();
      return () => undefined;
    }
    const timer = setInterval(() => {
      if (this.isAlive) return;
      clearInterval(timer);
      gone();
    }, WATCH_MS);
    return () => clearInterval(timer);
  }

  /**
   * The agent's process exits with `code` now. Our stdout and stderr (the agent's) are closed first: an
   * agent that reads them to EOF must not wait for the end of our runtime. Nothing is written after this.
   */
  exit(code: number): void {
    closeQuietly(1);
    closeQuietly(2);
    try {
      fs.writeSync(this.codeFd, `${code}\n`);
    } catch {
      // the waiter is gone: nobody is waiting for the code
    }
    closeQuietly(this.codeFd);
  }
}

function closeQuietly(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    // closed already
  }
}
