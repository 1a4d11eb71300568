/**
 * A throwaway MariaDB server for `vmware-mysql-snapshot demo`: only the installed binaries (mariadbd,
 * mariadb-install-db) are used, never the system service or its files. The server gets a fresh data
 * directory in a temporary directory, `--no-defaults`, its own socket and a free port on 127.0.0.1, and
 * is removed afterwards. Production code (it ships in the executable), so it imports node: built-ins and
 * mysql2 only.
 *
 * How a throwaway mariadbd is laid out, started, waited for and stopped (MariadbdProcess, serverArgs,
 * installArgs) is shared with the tests' servers (test/support/mariadb.ts), which add a template data
 * directory, restarts on the same data and raw signals.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs = require('node:fs');
import net = require('node:net');
import os = require('node:os');
import path = require('node:path');
import * as mysql from 'mysql2/promise';

const SERVER_BINARY = 'mariadbd';
const INSTALL_BINARY = 'mariadb-install-db';
const EXTRA_DIRECTORIES = ['/usr/sbin', '/usr/bin'];
const READY_POLL_MS = 50;
const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 30_000;
/** sun_path holds 108 bytes including the terminating NUL. */
const SOCKET_PATH_LIMIT = 107;
/**
 * Small files: a throwaway server needs seconds, not a production-sized buffer pool and redo log (and a
 * copied template data directory then starts without resizing them).
 */
const STORAGE_ARGS = ['--innodb-buffer-pool-size=32M', '--innodb-log-file-size=16M'];
/** Signals after which the process is still there. */
const RESUMABLE_SIGNALS: readonly NodeJS.Signals[] = ['SIGSTOP', 'SIGCONT', 'SIGTSTP', 'SIGTTIN', 'SIGTTOU'];

export const INSTALL_HINT = 'sudo apt-get install mariadb-server';

/** Thrown when mariadbd or mariadb-install-db cannot be found; the message says how to install them. */
export class MariaDBMissingError extends Error {
  constructor(missing: string[]) {
    super(
      `${missing.join(' and ')} not found in PATH, ${EXTRA_DIRECTORIES.join(' or ')}. ` +
        `Install the MariaDB server binaries: ${INSTALL_HINT} ` +
        '(only the binaries are used, on a temporary data directory: the system service is not needed and not touched)',
    );
    this.name = 'MariaDBMissingError';
  }
}

export interface MariaDBBinaries {
  server: string;
  install: string;
}

/** mariadbd and mariadb-install-db from PATH, /usr/sbin or /usr/bin; undefined if either is missing. */
export function findMariaDBBinaries(): MariaDBBinaries | undefined {
  const server = findBinary(SERVER_BINARY);
  const install = findBinary(INSTALL_BINARY);
  return server !== undefined && install !== undefined ? { server, install } : undefined;
}

function requireBinaries(): MariaDBBinaries {
  const found = findMariaDBBinaries();
  if (found !== undefined) return found;
  throw new MariaDBMissingError([SERVER_BINARY, INSTALL_BINARY].filter((name) => findBinary(name) === undefined));
}

// ---- a throwaway mariadbd: its files, its arguments, its process ------------------------------------

/** A throwaway server's own directory: its data directory, socket, PID file and error log. */
export interface ServerFiles {
  dir: string;
  datadir: string;
  socket: string;
  errorLog: string;
}

export function serverFiles(dir: string): ServerFiles {
  const socket = path.join(dir, 'mysqld.sock');
  if (Buffer.byteLength(socket) > SOCKET_PATH_LIMIT) {
    throw new Error(`socket path ${socket} is longer than ${SOCKET_PATH_LIMIT} bytes: set TMPDIR to a shorter path`);
  }
  return { dir, datadir: path.join(dir, 'data'), socket, errorLog: path.join(dir, 'error.log') };
}

/** mariadb-install-db for a fresh data directory whose root logs in by socket, as the administrator. */
export function installArgs(datadir: string): string[] {
  return [
    '--no-defaults',
    `--datadir=${datadir}`,
    '--auth-root-authentication-method=socket',
    '--skip-test-db',
    ...STORAGE_ARGS,
    ...(isRoot() ? ['--user=root'] : [`--auth-root-socket-user=${administratorName()}`]),
  ];
}

export interface ServerOptions {
  /** a binary log (default true), so that a freeze records real coordinates */
  logBin?: boolean;
  /** default 1 */
  serverId?: number;
  extraArgs?: readonly string[];
}

/** mariadbd with nothing of the system's: `--no-defaults`, its own files, 127.0.0.1 only. */
export function serverArgs(files: ServerFiles, port: number, options: ServerOptions = {}): string[] {
  return [
    '--no-defaults',
    `--datadir=${files.datadir}`,
    `--socket=${files.socket}`,
    `--port=${port}`,
    '--bind-address=127.0.0.1',
    `--pid-file=${path.join(files.dir, 'mysqld.pid')}`,
    `--log-error=${files.errorLog}`,
    '--skip-name-resolve',
    ...STORAGE_ARGS,
    '--max-connections=2000',
    ...(isRoot() ? ['--user=root'] : []),
    ...(options.logBin === false ? [] : [`--log-bin=${path.join(files.datadir, 'binlog')}`, `--server-id=${options.serverId ?? 1}`, '--binlog-format=ROW']),
    ...(options.extraArgs ?? []),
  ];
}

/** A logged-in connection over the socket as the administrator (root, or the user we run as). */
export function connectAsAdministrator(socket: string, options: { user?: string; password?: string | undefined } = {}): Promise<mysql.Connection> {
  return mysql.createConnection({ socketPath: socket, user: options.user ?? administratorName(), password: options.password, connectTimeout: 5000 });
}

/** Our children that run in their own process group: killed with their groups if we exit first. */
const liveGroups = new Set<GroupChild>();

/** SIGKILL to every throwaway server (and mariadb-install-db) still running: for exits we cannot delay. */
export function killThrowawayProcesses(): void {
  for (const group of liveGroups) group.signal('SIGKILL');
}

/** A child started as the leader of its own process group (detached), so that we stop it in order. */
export class GroupChild {
  readonly exited: Promise<void>;
  private alive = true;

  constructor(readonly child: ChildProcess) {
    if (liveGroups.size === 0) process.on('exit', killThrowawayProcesses);
    liveGroups.add(this);
    this.exited = new Promise((resolve) => {
      const done = (): void => {
        this.alive = false;
        liveGroups.delete(this);
        if (liveGroups.size === 0) process.removeListener('exit', killThrowawayProcesses);
        resolve();
      };
      child.once('exit', done);
      child.once('error', done); // a spawn failure may never emit 'exit'
    });
  }

  get running(): boolean {
    return this.alive;
  }

  signal(signal: NodeJS.Signals): void {
    if (this.alive) signalGroup(this.child, signal);
  }

  /** SIGTERM (and SIGCONT, which a stopped process needs to see it), SIGKILL after 30 s; resolves once gone. */
  async stop(): Promise<void> {
    if (!this.alive) return;
    const killTimer = setTimeout(() => this.signal('SIGKILL'), STOP_TIMEOUT_MS);
    this.signal('SIGTERM');
    this.signal('SIGCONT');
    await this.exited;
    clearTimeout(killTimer);
  }
}

/**
 * One mariadbd at a time on one server's files: started, waited for until the administrator can log in
 * over its socket, signalled, stopped; started again on the same data after it stopped or was killed.
 */
export class MariadbdProcess {
  private current: GroupChild | undefined;
  /** a signal that may end the current process was sent to it */
  private terminating = false;

  constructor(
    private readonly binary: string,
    private readonly files: ServerFiles,
    private readonly args: readonly string[],
  ) {}

  /** The running mariadbd's process id; undefined if none runs. */
  get pid(): number | undefined {
    return this.current?.running === true ? this.current.child.pid : undefined;
  }

  /** `checkCancelled` throws to stop waiting (its owner was removed meanwhile). */
  async start(checkCancelled: () => void = () => undefined): Promise<void> {
    if (this.current?.running === true && !this.terminating) throw new Error(`mariadbd in ${this.files.dir} is already running`);
    await this.current?.exited;
    const started = new GroupChild(spawn(this.binary, [...this.args], { stdio: 'ignore', detached: true }));
    this.current = started;
    this.terminating = false;
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      checkCancelled();
      if (!started.running) throw this.startError('mariadbd exited during startup');
      if (await this.canLogIn()) return;
      if (Date.now() > deadline) {
        await this.stop();
        throw this.startError(`mariadbd did not accept connections within ${READY_TIMEOUT_MS / 1000} s`);
      }
      await delay(READY_POLL_MS);
    }
  }

  /** A raw signal (SIGSTOP, SIGCONT, SIGKILL ...); after one that ends it, start() waits for its exit. */
  signal(signal: NodeJS.Signals): void {
    if (this.current?.running !== true) return;
    if (!RESUMABLE_SIGNALS.includes(signal)) this.terminating = true;
    this.current.signal(signal);
  }

  /** Clean shutdown: SIGTERM, wait for the exit, SIGKILL after 30 s. Idempotent. */
  async stop(): Promise<void> {
    await this.current?.stop();
  }

  private async canLogIn(): Promise<boolean> {
    try {
      const connection = await connectAsAdministrator(this.files.socket);
      await connection.end();
      return true;
    } catch {
      return false;
    }
  }

  private startError(message: string): Error {
    let tail = '(no error.log)';
    try {
      tail = lastLines(fs.readFileSync(this.files.errorLog, 'utf8'), 30);
    } catch {
      // none written
    }
    return new Error(`${message} (${this.files.dir}); end of error.log:\n${tail}`);
  }
}

/**
 * What the hook and the demo need on a fresh server: the snapshot account with the documented grants
 * (from localhost and 127.0.0.1) and a table to write to, app.t.
 */
export async function createFixtures(query: (sql: string, params?: unknown[]) => Promise<unknown>, user: { name: string; password: string }): Promise<void> {
  for (const host of ['localhost', '127.0.0.1']) {
    await query('CREATE USER ?@? IDENTIFIED BY ?', [user.name, host, user.password]);
    try {
      await query('GRANT RELOAD, PROCESS, BINLOG MONITOR ON *.* TO ?@?', [user.name, host]);
    } catch {
      // MariaDB before 10.5 has no BINLOG MONITOR: REPLICATION CLIENT reads the binary-log position there.
      await query('GRANT RELOAD, PROCESS, REPLICATION CLIENT ON *.* TO ?@?', [user.name, host]);
    }
  }
  await query('CREATE DATABASE app');
  await query('CREATE TABLE app.t (id INT AUTO_INCREMENT PRIMARY KEY, v INT, note VARCHAR(100)) ENGINE=InnoDB');
}

// ---- the demo's server --------------------------------------------------------------------------------

export interface ThrowawayOptions {
  /** Where the server's own directory is made (default os.tmpdir()); /tmp instead if the socket path would be too long. */
  parentDir?: string;
}

/** A started server: the account to give the hook, and the administrator (socket authentication) for the rest. */
export class ThrowawayMariaDB {
  readonly dir: string;
  readonly datadir: string;
  readonly socket: string;
  port = 0;
  /** e.g. 10.11.6-MariaDB-0+deb12u1-log, once started */
  version = '';
  /** The hook's account: RELOAD, PROCESS, BINLOG MONITOR (from localhost and 127.0.0.1), a random password. */
  readonly snapshotUser = { name: 'snapshot', password: randomBytes(12).toString('base64url') };
  /** The table the demo writes to. */
  readonly table = 'app.t';
  private readonly files: ServerFiles;
  private installing: GroupChild | undefined;
  private mariadbd: MariadbdProcess | undefined;
  private removed = false;

  /** Makes the directory only; start() does the rest. remove() at any time after this cleans up. */
  constructor(options: ThrowawayOptions = {}) {
    this.files = serverFiles(fs.mkdtempSync(path.join(socketParent(options.parentDir), 'vms-mariadb-')));
    this.dir = this.files.dir;
    this.datadir = this.files.datadir;
    this.socket = this.files.socket;
  }

  /**
   * mariadb-install-db into a fresh data directory, mariadbd on it, then the fixtures: the snapshot user
   * and app.t. Throws MariaDBMissingError without the binaries.
   */
  async start(): Promise<void> {
    const binaries = requireBinaries();
    await this.install(binaries.install);
    this.port = await freePort();
    this.throwIfRemoved();
    this.mariadbd = new MariadbdProcess(binaries.server, this.files, serverArgs(this.files, this.port));
    await this.mariadbd.start(() => this.throwIfRemoved());
    const [row] = await this.query<Array<{ version: string }>>('SELECT @@version AS version');
    this.version = String(row?.version ?? '');
    await createFixtures((sql, params) => this.query(sql, params), this.snapshotUser);
  }

  /** A new connection over the socket: the administrator, or the snapshot user. */
  connect(as: 'administrator' | 'snapshot' = 'administrator'): Promise<mysql.Connection> {
    return connectAsAdministrator(this.socket, as === 'snapshot' ? { user: this.snapshotUser.name, password: this.snapshotUser.password } : {});
  }

  /** Runs SQL as the administrator on a short-lived connection. */
  async query<T = unknown>(sql: string, params?: unknown[]): Promise<T> {
    const connection = await this.connect();
    try {
      const [rows] = await connection.query(sql, params);
      return rows as T;
    } finally {
      await connection.end().catch(() => connection.destroy());
    }
  }

  /** SIGTERM and wait (SIGKILL after 30 s). Idempotent. */
  async stop(): Promise<void> {
    await this.installing?.stop();
    await this.mariadbd?.stop();
  }

  /** Stops the server (or whatever start() is running) and deletes the directory. Idempotent. */
  async remove(): Promise<void> {
    this.removed = true;
    await this.stop();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  private throwIfRemoved(): void {
    if (this.removed) throw new Error('the throwaway server was removed while it started');
  }

  /** mariadb-install-db, in its own process group (it runs mariadbd --bootstrap), so that remove() ends both. */
  private async install(file: string): Promise<void> {
    this.throwIfRemoved();
    const child = spawn(file, installArgs(this.datadir), { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let output = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    this.installing = new GroupChild(child);
    const result = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>((resolve) => {
      child.once('error', (error) => resolve({ code: null, signal: null, error }));
      child.once('close', (code, signal) => resolve({ code, signal }));
    });
    this.throwIfRemoved();
    if (result.error !== undefined || result.code !== 0) {
      const how = result.error?.message ?? (result.signal !== null ? `killed by ${result.signal}` : `exit code ${result.code}`);
      throw new Error(`${path.basename(file)} failed (${how}):\n${lastLines(output, 20)}`);
    }
  }

}

/** Creates and starts a throwaway server; on failure nothing is left behind. */
export async function startThrowawayMariaDB(options: ThrowawayOptions = {}): Promise<ThrowawayMariaDB> {
  requireBinaries();
  const server = new ThrowawayMariaDB(options);
  try {
    await server.start();
  } catch (error) {
    await server.remove();
    throw error;
  }
  return server;
}

/** A parent directory short enough for DIR/vms-mariadb-XXXXXX/mysqld.sock. */
function socketParent(wanted: string | undefined): string {
  const fits = (parent: string): boolean => Buffer.byteLength(path.join(parent, 'vms-mariadb-XXXXXX', 'mysqld.sock')) <= SOCKET_PATH_LIMIT;
  if (wanted !== undefined && fits(wanted)) return wanted;
  return fits(os.tmpdir()) ? os.tmpdir() : '/tmp';
}

/** Signals the child's whole process group (it was started detached, as its leader). */
function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    child.kill(signal);
  }
}

export function isRoot(): boolean {
  return process.geteuid?.() === 0;
}

/** The socket-authenticated superuser: root, or the current user's own account when not running as root. */
export function administratorName(): string {
  return isRoot() ? 'root' : os.userInfo().username;
}

/** An executable file named `name` in PATH, /usr/sbin or /usr/bin (mariadbd is in sbin, often off PATH). */
export function findBinary(name: string): string | undefined {
  const pathDirectories = (process.env['PATH'] ?? '').split(path.delimiter).filter((entry) => entry !== '' && path.isAbsolute(entry));
  for (const directory of [...pathDirectories, ...EXTRA_DIRECTORIES]) {
    const candidate = path.join(directory, name);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      if (fs.statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const listener = net.createServer();
    listener.once('error', reject);
    listener.listen(0, '127.0.0.1', () => {
      const address = listener.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      listener.close(() => (port === 0 ? reject(new Error('no free TCP port on 127.0.0.1')) : resolve(port)));
    });
  });
}

function lastLines(text: string, count: number): string {
  return text.trimEnd().split('\n').slice(-count).join('\n');
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
