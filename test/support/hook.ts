/**
 * Runs the built single executable under the names it is installed as (symlinks in a private bin
 * directory), against a throwaway server, with its own option file, run directory and log file.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CONFIG_ENV } from '../../src/config/settings';
import { TEST_USER, type TestServer } from './mariadb';

/** This file compiles to build/test/support/hook.js; the executable is built to dist/ at the root. */
export const EXECUTABLE: string = path.resolve(__dirname, '..', '..', '..', 'dist', 'vmware-mysql-snapshot');

export const HOOK_NAMES = [
  'pre-freeze-script',
  'post-thaw-script',
  'pre-freeze-mysql-lock',
  'vmware-mysql-snapshot',
  '50-mysql',
  'mysql',
] as const;

const DEFAULT_TIMEOUT_MS = 60_000;

export interface HookSetup {
  dir: string;
  binDir: string;
  configFile: string;
  runDir: string;
  logFile: string;
}

export interface HookSetupOptions {
  /** keys to override or add in [snapshot] */
  snapshot?: Record<string, string>;
  /** keys to override or add in [client]; null: write no [client] key but socket */
  client?: Record<string, string> | null;
  /** run_dir somewhere else than in the setup's own directory (the benchmark puts it on tmpfs) */
  runDir?: string;
}

export interface HookResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface RunOptions {
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

export function makeHookSetup(server: TestServer, options: HookSetupOptions = {}): HookSetup {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vms-hook-'));
  const setup: HookSetup = {
    dir,
    binDir: path.join(dir, 'bin'),
    configFile: path.join(dir, 'hook.cnf'),
    runDir: options.runDir ?? path.join(dir, 'run'),
    logFile: path.join(dir, 'hook.log'),
  };
  fs.mkdirSync(setup.binDir);
  for (const name of HOOK_NAMES) fs.symlinkSync(EXECUTABLE, path.join(setup.binDir, name));
  writeConfig(setup, configText(setup, server, options));
  return setup;
}

export function writeConfig(setup: HookSetup, text: string): void {
  fs.writeFileSync(setup.configFile, text, { mode: 0o600 });
  // writeFileSync applies the mode only when it creates the file.
  fs.chmodSync(setup.configFile, 0o600);
}

/** Runs the hook to completion: resolves once it has exited and its stdout and stderr are closed. */
export function runHook(setup: HookSetup, name: string, args: string[], options: RunOptions = {}): Promise<HookResult> {
  const started = Date.now();
  const child = spawnHook(setup, name, args, { env: options.env });
  const output = collectOutput(child);
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      // A process it left behind may hold the pipes open: do not let them keep this process alive.
      child.stdout?.destroy();
      child.stderr?.destroy();
      const command = [name, ...args].join(' ');
      reject(new Error(`${command} did not finish within ${timeoutMs} ms\n${describeOutput(output)}`));
    }, timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${name} (${EXECUTABLE}: built by npm run build?): ${error.message}`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: output.stdout, stderr: output.stderr, ms: Date.now() - started });
    });
  });
}

/**
 * Marks the holders that this test process starts: other test files, benchmarks or a soak may run their
 * own holders on the machine at the same time. The holder keeps TZ from freeze's environment
 * (holderEnvironment), so TZ carries a zone name unique to this process (with offset 0).
 */
export const HOLDER_MARKER = `VMS${String(process.pid).replace(/\d/g, (digit) => 'abcdefghij'[Number(digit)] ?? '')}0`;

/** Live (non-zombie) lock holders started by this test process. */
export function ourHolders(): number[] {
  const pids: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv0 = fs.readFileSync(`/proc/${entry}/cmdline`, 'latin1').split('\0')[0] ?? '';
      if (path.basename(argv0) !== 'pre-freeze-mysql-lock') continue;
      const state = fs.readFileSync(`/proc/${entry}/stat`, 'latin1').split(') ')[1]?.[0];
      if (state === 'Z') continue;
      const environment = fs.readFileSync(`/proc/${entry}/environ`, 'latin1').split('\0');
      if (environment.includes(`TZ=${HOLDER_MARKER}`)) pids.push(Number(entry));
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return pids;
}

export function spawnHook(setup: HookSetup, name: string, args: string[], options: { env?: NodeJS.ProcessEnv } = {}): ChildProcess {
  const env = { PATH: process.env.PATH, [CONFIG_ENV]: setup.configFile, TZ: HOLDER_MARKER, ...options.env };
  return spawn(path.join(setup.binDir, name), args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
}

export interface Spawned {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** resolves with the exit code and signal once the process has exited and its pipes are closed */
  closed: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts the hook in the background, collecting its output. */
export function spawnCollected(setup: HookSetup, name: string, args: string[], options: { env?: NodeJS.ProcessEnv } = {}): Spawned {
  const child = spawnHook(setup, name, args, options);
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  return { child, stdout: () => stdout, stderr: () => stderr, closed };
}

/** Waits for `closed` at most `ms`; rejects (and SIGKILLs the process) after that. */
export async function closedWithin(hook: Spawned, ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      hook.child.kill('SIGKILL');
      reject(new Error(`the hook did not exit within ${ms} ms\nstdout: ${hook.stdout()}\nstderr: ${hook.stderr()}`));
    }, ms);
  });
  try {
    return await Promise.race([hook.closed, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** One line of the hook's log (pino's JSON). */
export type LogLine = Record<string, any>;

/** The events of log lines, in order. */
export function events(lines: readonly LogLine[]): string[] {
  return lines.map((line) => String(line['event']));
}

/** The first (or last) line of an event; fails the test, naming the events there are, if there is none. */
export function lineOf(lines: readonly LogLine[], event: string, which: 'first' | 'last' = 'first'): LogLine {
  const matching = lines.filter((entry) => entry['event'] === event);
  const line = which === 'first' ? matching[0] : matching.at(-1);
  assert.ok(line, `log has no ${event} line; events: ${events(lines).join(', ')}`);
  return line;
}

/**
 * The worker of a freeze (src/snapshot/waiter.ts): the process that does the freeze for the agent's
 * process `agentPid`, which waits for it. Its pid is in its freeze.start line.
 */
export function workerOf(lines: readonly LogLine[], agentPid: number | undefined): number | undefined {
  const start = lines.find((line) => line['event'] === 'freeze.start' && line['agentPid'] === agentPid);
  return start === undefined ? undefined : Number(start['pid']);
}

/** The log file's JSON lines, parsed; [] when there is no log file yet. */
export function readLog(setup: HookSetup): LogLine[] {
  let text: string;
  try {
    text = fs.readFileSync(setup.logFile, 'utf8');
  } catch {
    return [];
  }
  return parseLogLines(text);
}

/** JSON lines (the log's format) parsed, blank lines skipped. */
export function parseLogLines(text: string): LogLine[] {
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as Record<string, any>);
}

function configText(setup: HookSetup, server: TestServer, options: HookSetupOptions): string {
  const client: Record<string, string> =
    options.client === null
      ? { socket: server.socket }
      : {
          user: TEST_USER.name,
          password: quoteOptionValue(TEST_USER.password),
          socket: server.socket,
          ...options.client,
        };
  const snapshot: Record<string, string> = {
    run_dir: setup.runDir,
    log_file: setup.logFile,
    history_file: path.join(setup.dir, 'history.json'),
    lock_wait_timeout: '1',
    long_query_time: '1',
    max_lock_time: '30',
    freeze_timeout: '20',
    ...options.snapshot,
  };
  return [...section('client', client), ...section('snapshot', snapshot), ''].join('\n');
}

function section(name: string, values: Record<string, string>): string[] {
  return [`[${name}]`, ...Object.entries(values).map(([key, value]) => `${key} = ${value}`)];
}

/** A double-quoted option-file value: `\` and `"` are the characters to escape inside it. */
export function quoteOptionValue(value: string): string {
  return `"${value.replace(/[\\"]/g, (character) => `\\${character}`)}"`;
}

interface CapturedOutput {
  stdout: string;
  stderr: string;
}

function collectOutput(child: ChildProcess): CapturedOutput {
  const output: CapturedOutput = { stdout: '', stderr: '' };
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (output.stdout += chunk));
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (output.stderr += chunk));
  return output;
}

function describeOutput(output: CapturedOutput): string {
  return `stdout:\n${output.stdout}\nstderr:\n${output.stderr}`;
}
