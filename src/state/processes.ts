/**
 * Proof of a process's identity before we signal it. A PID alone proves nothing (PIDs are reused); the
 * pair (PID, start time in clock ticks since boot) names one process for the life of the machine, and
 * the executable and the name it runs under are further checks.
 */
import fs = require('node:fs');
import path = require('node:path');
import { Deadline, sleep } from '../clock';

export interface ProcessIdentity {
  pid: number;
  /** field 22 of /proc/PID/stat: start time in clock ticks after boot */
  startTime: string;
  /** basename of argv[0] */
  name: string;
  /** the executable (/proc/PID/exe) */
  exe: string;
}

/**
 * The start time of a live process (not a zombie: it holds nothing and waits only to be reaped), or null.
 * The pair (pid, start time) names one process even across execve(2), which keeps both.
 */
export function startTimeOf(pid: number): string | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
    // The command name (field 2) is in parentheses and may itself contain spaces or parentheses.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[0] === 'Z' ? null : (fields[19] ?? null);
  } catch {
    return null;
  }
}

export function identify(pid: number): ProcessIdentity | null {
  try {
    const startTime = startTimeOf(pid);
    if (startTime === null) return null;
    const argv0 = fs.readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0')[0] ?? '';
    return { pid, startTime, name: path.basename(argv0), exe: fs.readlinkSync(`/proc/${pid}/exe`) };
  } catch {
    return null;
  }
}

export function isSameProcess(expected: ProcessIdentity): boolean {
  const actual = identify(expected.pid);
  return (
    actual !== null &&
    actual.startTime === expected.startTime &&
    actual.name === expected.name &&
    // an upgrade that replaced the file while the process ran leaves it running the deleted one
    (actual.exe === expected.exe || actual.exe === `${expected.exe} (deleted)`)
  );
}

/** Sends `signal` only if the PID still names the expected process. Returns whether it was sent. */
export function signalIfSame(expected: ProcessIdentity, signal: NodeJS.Signals): boolean {
  if (!isSameProcess(expected)) return false;
  try {
    process.kill(expected.pid, signal);
    return true;
  } catch {
    return false;
  }
}

/** Waits until the process is gone (or is no longer the expected one). Returns whether it is gone. */
export async function waitForExit(expected: ProcessIdentity, timeoutMs: number, pollMs = 5): Promise<boolean> {
  const deadline = new Deadline(timeoutMs);
  while (isSameProcess(expected)) {
    if (deadline.passed()) return false;
    await sleep(pollMs);
  }
  return true;
}

/** SIGTERM, then SIGKILL after `graceMs`, always re-proving the identity first. */
export async function stopProcess(expected: ProcessIdentity, graceMs: number): Promise<boolean> {
  if (!signalIfSame(expected, 'SIGTERM')) return !isSameProcess(expected);
  if (await waitForExit(expected, graceMs)) return true;
  signalIfSame(expected, 'SIGKILL');
  return waitForExit(expected, 2000);
}
