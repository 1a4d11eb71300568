/**
 * Release at thaw's start. Thaw is this executable, and the runtime takes tens of milliseconds to start
 * before thaw could ask the holder anything: where no filesystem is frozen (Google, AWS, VMware with its
 * sync driver off) writers would wait for that start-up on every snapshot. So once freeze has exited,
 * the holder watches for the thaw itself: a process of this very executable (/proc/PID/exe), run by our
 * own user, whose name and arguments make it thaw or freezeFail (agents/dispatch.ts), for the same
 * configuration file as the freeze (two servers on one machine have a configuration each). Its exec is the
 * agent's word that the snapshot is over; the lock ends then, and thaw, once its runtime is up, finds it
 * released and reports as before. Nothing is signalled or written: the watch only reads /proc.
 *
 * New processes are found cheaply: the last field of /proc/loadavg is the last PID the kernel handed out
 * (in our PID namespace), read every POLL_MS; only when it moves is /proc listed for new PIDs. A new
 * process is looked at until it has exec'd (an agent forks a shell or itself, then execs the hook in the
 * same PID) or for CANDIDATE_MS. Anything we cannot read leaves the lock to thaw's request.
 *
 * "Has exec'd" means the new image's arguments are in place, not only its executable: the kernel points
 * /proc/PID/exe at the new file before it has set up the new image's arguments and environment, and
 * until then cmdline and environ read empty (execInProgress). A process judged in that window was missed,
 * and the lock then waited for thaw's request (~100 ms; 7 thaws in 200 over seven benchmark runs).
 */
import fs = require('node:fs');
import path = require('node:path');
import { dispatch } from '../agents/dispatch';
import { configFilePath } from '../config/settings';

/** How often /proc/loadavg is read: ~20 us each, about 1% of a core while the lock is held. */
const POLL_MS = 2;
/** How long a new process may take to exec the hook before it stops being looked at. */
const CANDIDATE_MS = 2000;

export interface ThawStart {
  pid: number;
  /** the name it was started under and its operation */
  name: string;
  operation: 'thaw' | 'freezeFail';
  /** epoch ms: when the watch saw it */
  seenAt: number;
}

/** What a process's /proc entries say about it, or undefined if it is gone or unreadable. */
export interface ProcessView {
  exe: string;
  uid: { real: number; effective: number };
  argv: string[];
  /** the configuration file it reads: its environment's, else the default, as an absolute path */
  configFile: string;
}

/** What a thaw must share with us: the executable, the user, the configuration file. */
export interface Own {
  exe: string;
  uid: number;
  configFile: string;
}

/** Whether this process is a thaw of ours: the same executable, the same user, a thaw or freezeFail invocation. */
export function thawOperation(view: ProcessView, own: Own): 'thaw' | 'freezeFail' | undefined {
  if (view.exe !== own.exe || view.uid.real !== own.uid || view.uid.effective !== own.uid || view.configFile !== own.configFile) return undefined;
  const [argv0, ...args] = view.argv;
  if (argv0 === undefined) return undefined;
  const invocation = dispatch(path.basename(argv0), args);
  return invocation.kind === 'hook' && invocation.operation !== 'freeze' ? invocation.operation : undefined;
}

/**
 * Whether the process is still inside execve(2): its executable is already the new one, its arguments
 * not yet (an empty cmdline; a running program has at least its name).
 */
export function execInProgress(view: ProcessView): boolean {
  return view.argv.length === 0;
}

export class ThawStartWatch {
  private timer: NodeJS.Timeout | undefined;
  private lastPid: string | undefined;
  private known = new Set<string>();
  /** new processes not yet exec'd into something we can judge: PID -> when first seen */
  private readonly candidates = new Map<string, number>();
  private readonly own: Own;

  /** `configFile`: freeze's, as an absolute path. */
  constructor(configFile: string, private readonly seen: (start: ThawStart) => void) {
    this.own = { exe: fs.readlinkSync('/proc/self/exe'), uid: process.getuid?.() ?? 0, configFile };
  }

  /**
   * Notes the processes running now, at the lock, before freeze learns of it: every process started after
   * this is judged once watching starts, a thaw the agent started before freeze's acknowledgement reached
   * us included. False if this machine's /proc cannot tell (thaw's request then ends the hold).
   */
  mark(): boolean {
    this.lastPid = lastPid();
    const pids = processIds();
    if (this.lastPid === undefined || pids === undefined) return false;
    this.known = pids;
    return true;
  }

  /** Starts watching (freeze has acknowledged the lock), from what mark() noted. */
  start(): void {
    this.timer = setInterval(() => this.poll(), POLL_MS);
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private poll(): void {
    const last = lastPid();
    if (last !== this.lastPid) {
      this.lastPid = last;
      const pids = processIds() ?? this.known;
      const now = Date.now();
      for (const pid of pids) if (!this.known.has(pid)) this.candidates.set(pid, now);
      this.known = pids;
    }
    for (const [pid, firstSeen] of this.candidates) {
      const exe = executableOf(pid);
      if (exe === undefined) {
        this.candidates.delete(pid); // gone
        continue;
      }
      if (exe === this.own.exe) {
        const view = readProcess(pid, exe);
        if (view === undefined || !execInProgress(view)) {
          this.candidates.delete(pid); // ours, exec'd: judged once, now
          const operation = view === undefined ? undefined : thawOperation(view, this.own);
          if (view === undefined || operation === undefined) continue;
          this.stop();
          return this.seen({ pid: Number(pid), name: path.basename(view.argv[0] ?? ''), operation, seenAt: Date.now() });
        }
        // still inside execve: judged at a later poll
      }
      if (Date.now() - firstSeen > CANDIDATE_MS) this.candidates.delete(pid);
    }
  }
}

function lastPid(): string | undefined {
  try {
    return fs.readFileSync('/proc/loadavg', 'latin1').trim().split(' ').pop();
  } catch {
    return undefined;
  }
}

function processIds(): Set<string> | undefined {
  try {
    return new Set(fs.readdirSync('/proc').filter((entry) => /^\d+$/.test(entry)));
  } catch {
    return undefined;
  }
}

function executableOf(pid: string): string | undefined {
  try {
    return fs.readlinkSync(`/proc/${pid}/exe`);
  } catch {
    return undefined;
  }
}

/** The rest of what /proc says of a process whose executable `exe` was just read. */
function readProcess(pid: string, exe: string): ProcessView | undefined {
  try {
    const uids = /^Uid:\s+(\d+)\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'latin1'));
    const argv = nulSeparated(fs.readFileSync(`/proc/${pid}/cmdline`, 'latin1'));
    const environment = Object.fromEntries(nulSeparated(fs.readFileSync(`/proc/${pid}/environ`, 'latin1')).map((entry) => [entry.slice(0, entry.indexOf('=')), entry.slice(entry.indexOf('=') + 1)]));
    if (uids === null) return undefined;
    const configFile = path.resolve(fs.readlinkSync(`/proc/${pid}/cwd`), configFilePath(undefined, environment));
    return { exe, uid: { real: Number(uids[1]), effective: Number(uids[2]) }, argv, configFile };
  } catch {
    return undefined;
  }
}

function nulSeparated(text: string): string[] {
  const parts = text.split('\0');
  if (parts.at(-1) === '') parts.pop();
  return parts;
}
