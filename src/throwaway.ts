/**
 * A throwaway MariaDB server for `vmware-mysql-snapshot demo`: only the installed binaries (mariadbd,
 * mariadb-install-db) are used, never the system service or its files. The server gets a fresh data
 * directory in a temporary directory, `--no-defaults`, its own socket and a free port on 127.0.0.1, and
 * is removed afterwards. Production code (it ships in the executable), so it imports node: built-ins and
 * mysql2 only.
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
/** Small files: the demo needs seconds, not a production-sized buffer pool and redo log. */
const STORAGE_ARGS = ['--innodb-buffer-pool-size=32M', '--innodb-log-file-size=16M'];

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
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private removed = false;
  private readonly killOnExit = (): void => {
    if (this.child !== undefined) signalGroup(this.child, 'SIGKILL');
  };

  /** Makes the directory only; start() does the rest. remove() at any time after this cleans up. */
  constructor(options: ThrowawayOptions = {}) {
    this.dir = fs.mkdtempSync(path.join(socketParent(options.parentDir), 'vms-mariadb-'));
    this.datadir = path.join(this.dir, 'data');
    this.socket = path.join(this.dir, 'mysqld.sock');
  }

  /**
   * mariadb-install-db into a fresh data directory, mariadbd on it, then the fixtures: the snapshot user
   * and app.t. Throws MariaDBMissingError without the binaries.
   */
  async start(): Promise<void> {
    const binaries = requireBinaries();
    const administrator = administratorName();
    await this.run(binaries.install, [
      '--no-defaults',
      `--datadir=${this.datadir}`,
      '--auth-root-authentication-method=socket',
      '--skip-test-db',
      ...STORAGE_ARGS,
      ...(isRoot() ? ['--user=root'] : [`--auth-root-socket-user=${administrator}`]),
    ]);
    this.port = await freePort();
    this.throwIfRemoved();
    // Its own process group: a Ctrl-C at the terminal reaches us, and we stop the server in order.
    const child = spawn(binaries.server, this.serverArgs(), { stdio: 'ignore', detached: true });
    this.track(child);
    await this.waitUntilReady(child);
    await this.createFixtures();
  }

  private serverArgs(): string[] {
    return [
      '--no-defaults',
      `--datadir=${this.datadir}`,
      `--socket=${this.socket}`,
      `--port=${this.port}`,
      '--bind-address=127.0.0.1',
      `--pid-file=${path.join(this.dir, 'mysqld.pid')}`,
      `--log-error=${path.join(this.dir, 'error.log')}`,
      '--skip-name-resolve',
      ...STORAGE_ARGS,
      // A binary log, so that the freeze records real coordinates.
      `--log-bin=${path.join(this.datadir, 'binlog')}`,
      '--server-id=1',
      '--binlog-format=ROW',
      ...(isRoot() ? ['--user=root'] : []),
    ];
  }

  /** A new connection over the socket: the administrator, or the snapshot user. */
  connect(as: 'administrator' | 'snapshot' = 'administrator'): Promise<mysql.Connection> {
    const credentials = as === 'snapshot' ? { user: this.snapshotUser.name, password: this.snapshotUser.password } : { user: administratorName() };
    return mysql.createConnection({ socketPath: this.socket, ...credentials, connectTimeout: 5000 });
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
    const child = this.child;
    if (child === undefined) return this.exited;
    const killTimer = setTimeout(() => signalGroup(child, 'SIGKILL'), STOP_TIMEOUT_MS);
    signalGroup(child, 'SIGTERM');
    signalGroup(child, 'SIGCONT');
    await this.exited;
    clearTimeout(killTimer);
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

  private track(child: ChildProcess): void {
    this.child = child;
    process.on('exit', this.killOnExit);
    this.exited = new Promise((resolve) => {
      const done = (): void => {
        if (this.child === child) this.child = undefined;
        process.removeListener('exit', this.killOnExit);
        resolve();
      };
      child.once('exit', done);
      child.once('error', done); // a spawn failure may never emit 'exit'
    });
  }

  /** Runs a helper (mariadb-install-db) to completion as a tracked child, so that remove() can end it. */
  private async run(file: string, args: string[]): Promise<void> {
    this.throwIfRemoved();
    // detached: its own process group, so that stop() also ends the mariadbd --bootstrap it runs.
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let output = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    this.track(child);
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

  private async waitUntilReady(child: ChildProcess): Promise<void> {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      this.throwIfRemoved();
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
      const [rows] = await connection.query<mysql.RowDataPacket[]>('SELECT @@version AS version');
      this.version = String(rows[0]?.['version'] ?? '');
      await connection.end();
      return true;
    } catch {
      return false;
    }
  }

  private async createFixtures(): Promise<void> {
    const { name, password } = this.snapshotUser;
    for (const host of ['localhost', '127.0.0.1']) {
      await this.query('CREATE USER ?@? IDENTIFIED BY ?', [name, host, password]);
      try {
        await this.query('GRANT RELOAD, PROCESS, BINLOG MONITOR ON *.* TO ?@?', [name, host]);
      } catch {
        // MariaDB before 10.5 has no BINLOG MONITOR: REPLICATION CLIENT reads the binary-log position there.
        await this.query('GRANT RELOAD, PROCESS, REPLICATION CLIENT ON *.* TO ?@?', [name, host]);
      }
    }
    await this.query('CREATE DATABASE app');
    await this.query('CREATE TABLE app.t (id INT AUTO_INCREMENT PRIMARY KEY, v INT, note VARCHAR(100)) ENGINE=InnoDB');
  }

  private startError(message: string): Error {
    let tail = '(no error.log)';
    try {
      tail = lastLines(fs.readFileSync(path.join(this.dir, 'error.log'), 'utf8'), 30);
    } catch {
      // none written
    }
    return new Error(`${message} (${this.dir}); end of error.log:\n${tail}`);
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

function isRoot(): boolean {
  return process.geteuid?.() === 0;
}

/** The socket-authenticated superuser: root, or the current user's own account when not running as root. */
function administratorName(): string {
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
