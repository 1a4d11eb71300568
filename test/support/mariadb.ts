/**
 * Throwaway MariaDB servers for the integration and end-to-end tests.
 *
 * A template data directory is made once per machine and user (mariadb-install-db takes seconds) and
 * copied for every server. Each server gets its own directory under os.tmpdir(), its own socket and a
 * free TCP port on 127.0.0.1. Every server still running when the test process exits is SIGKILLed.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import * as mysql from 'mysql2/promise';
import { findBinary, freePort } from '../../src/throwaway';

const runFile = promisify(execFile);

export const TEST_USER: { name: 'snapshot'; password: string } = {
  name: 'snapshot',
  password: `p#a;s's"w=o rd`,
};

export interface TestServer {
  readonly dir: string;
  readonly datadir: string;
  readonly socket: string;
  readonly port: number;
  /** process id of the current mariadbd (changes with every start) */
  readonly pid: number;
  /** Runs SQL as the administrator over the socket, on a short-lived connection. */
  query<T = any>(sql: string, params?: unknown[]): Promise<T>;
  /** A new connection: the administrator over the socket by default. */
  connect(options?: ConnectOptions): Promise<mysql.Connection>;
  /** Clean shutdown: SIGTERM, wait for exit, SIGKILL after 30 s. Idempotent. */
  stop(): Promise<void>;
  /** A raw signal to mariadbd (fault tests: SIGSTOP, SIGCONT, SIGKILL). */
  kill(signal?: NodeJS.Signals): void;
  /** Starts again on the same data directory, socket and port after stop() or kill(). */
  start(): Promise<void>;
  /** stop() and delete the directory. */
  remove(): Promise<void>;
}

export interface ConnectOptions {
  user?: string;
  password?: string;
  tcp?: boolean;
}

export interface StartOptions {
  /** default true */
  logBin?: boolean;
  /** default 1 */
  serverId?: number;
  extraArgs?: string[];
}

const BINARY_DIRECTORIES = ['/usr/sbin', '/usr/bin'];
const SERVER_BINARY = 'mariadbd';
const INSTALL_BINARY = 'mariadb-install-db';
const READY_POLL_MS = 50;
const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 30_000;
/** sun_path holds 108 bytes including the terminating NUL. */
const SOCKET_PATH_LIMIT = 107;
/** Options that shape the files mariadb-install-db writes, so that the copies start without resizing. */
const STORAGE_ARGS = ['--innodb-buffer-pool-size=32M', '--innodb-log-file-size=16M'];

/** Signals after which the process is still there. */
const RESUMABLE_SIGNALS: readonly NodeJS.Signals[] = ['SIGSTOP', 'SIGCONT', 'SIGTSTP', 'SIGTTIN', 'SIGTTOU'];

const runningProcesses = new Set<ChildProcess>();
let templateBuilt: Promise<string> | undefined;

function killRunningServers(): void {
  for (const child of runningProcesses) child.kill('SIGKILL');
}

process.on('exit', killRunningServers);
// 'exit' is not emitted when a signal ends the process (the test runner cancelling a file): kill the
// servers, then let the signal do what it would have done.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(signal, () => {
    killRunningServers();
    process.kill(process.pid, signal);
  });
}

export function mariadbInstalled(): boolean {
  return findBinary(SERVER_BINARY) !== undefined && findBinary(INSTALL_BINARY) !== undefined;
}

export async function startMariaDB(options: StartOptions = {}): Promise<TestServer> {
  const template = await ensureTemplate();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vms-mariadb-'));
  const port = await freePort();
  const server = new MariaDBServer(dir, port, serverArgs(dir, port, options));
  try {
    await runFile('cp', ['-a', template, server.datadir]);
    await server.start();
    await createFixtures(server);
  } catch (error) {
    await server.remove();
    throw error;
  }
  return server;
}

/**
 * A server on an existing data directory, such as a copy of another server's taken while it was stopped
 * (what a restored VM snapshot holds). The directory is moved into the new server's own directory; the
 * binary-log index, whose entries name the files by the absolute path the original server was started
 * with, is rewritten to name the moved files (the basename, `binlog`, stays the same). No fixtures are
 * created: the data is the original's.
 */
export async function startMariaDBOnDatadir(datadir: string, options: StartOptions = {}): Promise<TestServer> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vms-mariadb-'));
  const port = await freePort();
  const server = new MariaDBServer(dir, port, serverArgs(dir, port, options));
  try {
    await moveDirectory(datadir, server.datadir);
    rewriteBinlogIndex(server.datadir);
    await server.start();
  } catch (error) {
    await server.remove();
    throw error;
  }
  return server;
}

async function moveDirectory(from: string, to: string): Promise<void> {
  try {
    fs.renameSync(from, to);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EXDEV') throw error;
    await runFile('cp', ['-a', from, to]);
    fs.rmSync(from, { recursive: true, force: true });
  }
}

function rewriteBinlogIndex(datadir: string): void {
  const index = path.join(datadir, 'binlog.index');
  if (!fs.existsSync(index)) return;
  const lines = fs.readFileSync(index, 'utf8').split('\n');
  const rewritten = lines.map((line) => (path.isAbsolute(line) ? path.join(datadir, path.basename(line)) : line));
  fs.writeFileSync(index, rewritten.join('\n'));
}

class MariaDBServer implements TestServer {
  readonly datadir: string;
  readonly socket: string;
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  /** a signal that may end the current process was sent to it */
  private terminating = false;

  constructor(
    readonly dir: string,
    readonly port: number,
    private readonly args: readonly string[],
  ) {
    this.datadir = path.join(dir, 'data');
    this.socket = socketPath(dir);
  }

  get pid(): number {
    if (this.child?.pid === undefined) throw new Error(`mariadbd in ${this.dir} is not running`);
    return this.child.pid;
  }

  /** After kill() with a terminating signal, waits for that process to exit first. */
  async start(): Promise<void> {
    if (this.child !== undefined && !this.terminating) {
      throw new Error(`mariadbd in ${this.dir} is already running`);
    }
    await this.exited;
    const child = spawn(requireBinary(SERVER_BINARY), this.args, {
      detached: false,
      stdio: 'ignore',
    });
    this.track(child);
    await this.waitUntilReady(child);
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (child === undefined) return this.exited;
    const killTimer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    child.kill('SIGTERM');
    // A stopped (SIGSTOP) server only sees the SIGTERM once it runs again.
    child.kill('SIGCONT');
    await this.exited;
    clearTimeout(killTimer);
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (this.child === undefined) return;
    if (!RESUMABLE_SIGNALS.includes(signal)) this.terminating = true;
    this.child.kill(signal);
  }

  async remove(): Promise<void> {
    await this.stop();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  async query<T = any>(sql: string, params?: unknown[]): Promise<T> {
    const connection = await this.connect();
    try {
      const [rows] = await connection.query(sql, params);
      return rows as T;
    } finally {
      await connection.end();
    }
  }

  connect(options: ConnectOptions = {}): Promise<mysql.Connection> {
    const where = options.tcp === true ? { host: '127.0.0.1', port: this.port } : { socketPath: this.socket };
    return mysql.createConnection({
      ...where,
      user: options.user ?? administratorName(),
      password: options.password,
    });
  }

  private track(child: ChildProcess): void {
    this.child = child;
    this.terminating = false;
    runningProcesses.add(child);
    this.exited = new Promise((resolve) => {
      child.once('exit', () => {
        runningProcesses.delete(child);
        if (this.child === child) this.child = undefined;
        resolve();
      });
      // A spawn failure emits 'error' and may never emit 'exit'.
      child.once('error', () => {
        runningProcesses.delete(child);
        if (this.child === child) this.child = undefined;
        resolve();
      });
    });
  }

  private async waitUntilReady(child: ChildProcess): Promise<void> {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      if (this.child !== child) throw this.startError('mariadbd exited during startup');
      if (await this.canConnect()) return;
      if (Date.now() > deadline) {
        await this.stop();
        throw this.startError(`mariadbd did not accept connections within ${READY_TIMEOUT_MS / 1000} s`);
      }
      await delay(READY_POLL_MS);
    }
  }

  private async canConnect(): Promise<boolean> {
    try {
      const connection = await this.connect();
      await connection.end();
      return true;
    } catch {
      return false;
    }
  }

  private startError(message: string): Error {
    return new Error(`${message} (${this.dir}); tail of error.log:\n${tailOf(path.join(this.dir, 'error.log'))}`);
  }
}

function serverArgs(dir: string, port: number, options: StartOptions): string[] {
  const args = [
    '--no-defaults',
    `--datadir=${path.join(dir, 'data')}`,
    `--socket=${socketPath(dir)}`,
    `--port=${port}`,
    '--bind-address=127.0.0.1',
    `--pid-file=${path.join(dir, 'mysqld.pid')}`,
    `--log-error=${path.join(dir, 'error.log')}`,
    '--skip-name-resolve',
    ...STORAGE_ARGS,
    '--max-connections=2000',
    ...rootUserArgs(),
  ];
  if (options.logBin !== false) {
    args.push(`--log-bin=${path.join(dir, 'data', 'binlog')}`, `--server-id=${options.serverId ?? 1}`);
    args.push('--binlog-format=ROW');
  }
  return [...args, ...(options.extraArgs ?? [])];
}

function socketPath(dir: string): string {
  const socket = path.join(dir, 'mysqld.sock');
  if (Buffer.byteLength(socket) > SOCKET_PATH_LIMIT) {
    throw new Error(`socket path ${socket} is longer than ${SOCKET_PATH_LIMIT} bytes: set TMPDIR to a shorter path`);
  }
  return socket;
}

function isRoot(): boolean {
  return process.geteuid?.() === 0;
}

function rootUserArgs(): string[] {
  return isRoot() ? ['--user=root'] : [];
}

/** The socket-authenticated superuser: root, or the current user's own account when not running as root. */
function administratorName(): string {
  return isRoot() ? 'root' : os.userInfo().username;
}

async function createFixtures(server: TestServer): Promise<void> {
  for (const host of ['localhost', '127.0.0.1']) {
    await server.query('CREATE USER ?@? IDENTIFIED BY ?', [TEST_USER.name, host, TEST_USER.password]);
    await server.query('GRANT RELOAD, PROCESS, BINLOG MONITOR ON *.* TO ?@?', [TEST_USER.name, host]);
  }
  await server.query('CREATE DATABASE app');
  await server.query(
    'CREATE TABLE app.t (id INT AUTO_INCREMENT PRIMARY KEY, v INT, note VARCHAR(100)) ENGINE=InnoDB',
  );
}

/**
 * The template data directory, made once per machine, user and server version. It is built under a
 * temporary name and renamed into place, so that concurrent test processes never see half of one.
 */
function ensureTemplate(): Promise<string> {
  if (templateBuilt === undefined) {
    templateBuilt = buildTemplate();
    // A failed build may be retried by the next server.
    templateBuilt.catch(() => (templateBuilt = undefined));
  }
  return templateBuilt;
}

async function buildTemplate(): Promise<string> {
  const template = path.join(os.tmpdir(), `vms-test-template-${serverVersion()}-${os.userInfo().uid}`);
  if (fs.existsSync(template)) return template;
  const building = fs.mkdtempSync(`${template}.building-`);
  try {
    await installDatabase(building);
    renameIntoPlace(building, template);
  } finally {
    fs.rmSync(building, { recursive: true, force: true });
  }
  return template;
}

async function installDatabase(datadir: string): Promise<void> {
  const args = [
    '--no-defaults',
    `--datadir=${datadir}`,
    '--auth-root-authentication-method=socket',
    '--skip-test-db',
    ...STORAGE_ARGS,
  ];
  args.push(...(isRoot() ? ['--user=root'] : [`--auth-root-socket-user=${os.userInfo().username}`]));
  try {
    await runFile(requireBinary(INSTALL_BINARY), args, { maxBuffer: 16 * 1024 * 1024 });
  } catch (error) {
    throw new Error(`${INSTALL_BINARY} failed: ${describeExecError(error)}`);
  }
}

function describeExecError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const { stdout, stderr } = error as Error & { stdout?: unknown; stderr?: unknown };
  return [error.message, stdout, stderr].filter((part) => typeof part === 'string' && part !== '').join('\n');
}

/** Another process may have won the race: its template is as good as ours. */
function renameIntoPlace(building: string, template: string): void {
  try {
    fs.renameSync(building, template);
  } catch (error) {
    if (!fs.existsSync(template)) throw error;
  }
}

function serverVersion(): string {
  const output = execFileSync(requireBinary(SERVER_BINARY), ['--version'], { encoding: 'utf8' });
  const match = /\bVer\s+(\S+)/.exec(output);
  if (match === null) throw new Error(`cannot read the version from: ${output.trim()}`);
  return match[1].replace(/[^A-Za-z0-9._-]/g, '_');
}

function requireBinary(name: string): string {
  const found = findBinary(name);
  if (found === undefined) throw new Error(`${name} not found in ${BINARY_DIRECTORIES.join(', ')} or PATH`);
  return found;
}


function tailOf(file: string, lines = 30): string {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no error.log)';
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
