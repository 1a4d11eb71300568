/**
 * Throwaway MariaDB servers for the integration and end-to-end tests.
 *
 * A template data directory is made once per machine and user (mariadb-install-db takes seconds) and
 * copied for every server. Each server gets its own directory under os.tmpdir(), its own socket and a
 * free TCP port on 127.0.0.1. Every server still running when the test process exits is SIGKILLed.
 */
import { execFile, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import * as mysql from 'mysql2/promise';
import {
  administratorName,
  createFixtures,
  findBinary,
  freePort,
  installArgs,
  killThrowawayProcesses,
  MariadbdProcess,
  serverArgs,
  serverFiles,
  type ServerFiles,
  type ServerOptions,
} from '../../src/commands/throwaway';

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

export type StartOptions = ServerOptions & {
  /** a data directory elsewhere than in the server's own directory (e.g. on a filesystem to freeze); must not exist yet */
  datadir?: string;
  /** waited for once the server is up, before the fixtures are made (a Galera node: until it is ready for statements) */
  untilReady?: (server: TestServer) => Promise<void>;
};

const BINARY_DIRECTORIES = ['/usr/sbin', '/usr/bin'];
const SERVER_BINARY = 'mariadbd';
const INSTALL_BINARY = 'mariadb-install-db';

let templateBuilt: Promise<string> | undefined;

// 'exit' is not emitted when a signal ends the process (the test runner cancelling a file): kill the
// servers, then let the signal do what it would have done.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(signal, () => {
    killThrowawayProcesses();
    process.kill(process.pid, signal);
  });
}

/**
 * An INSERT into app.t that waits at most 1 s for locks, on a connection of its own: 'ok', or the error
 * code (ER_LOCK_WAIT_TIMEOUT while a freeze holds the lock), or the message of an error without one.
 */
export async function tryInsert(server: TestServer): Promise<string> {
  const connection = await server.connect();
  try {
    await connection.query('SET SESSION lock_wait_timeout = 1');
    await connection.query("INSERT INTO app.t (v, note) VALUES (7, 'probe')");
    return 'ok';
  } catch (error) {
    return (error as { code?: string }).code ?? (error instanceof Error ? error.message : String(error));
  } finally {
    await connection.end().catch(() => undefined);
  }
}

export function mariadbInstalled(): boolean {
  return findBinary(SERVER_BINARY) !== undefined && findBinary(INSTALL_BINARY) !== undefined;
}

export async function startMariaDB(options: StartOptions = {}): Promise<TestServer> {
  const template = await ensureTemplate();
  const server = await newServer(options);
  try {
    await runFile('cp', ['-a', template, server.datadir]);
    await server.start();
    await options.untilReady?.(server);
    await createFixtures((sql, params) => server.query(sql, params), TEST_USER);
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
  const server = await newServer(options);
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

async function newServer(options: StartOptions): Promise<MariaDBServer> {
  const own = serverFiles(fs.mkdtempSync(path.join(os.tmpdir(), 'vms-mariadb-')));
  const files = options.datadir === undefined ? own : { ...own, datadir: options.datadir };
  const port = await freePort();
  return new MariaDBServer(files, port, new MariadbdProcess(requireBinary(SERVER_BINARY), files, serverArgs(files, port, options)));
}

/** The process is src/commands/throwaway.ts's MariadbdProcess, as for the demo's server. */
class MariaDBServer implements TestServer {
  readonly dir: string;
  readonly datadir: string;
  readonly socket: string;

  constructor(
    files: ServerFiles,
    readonly port: number,
    private readonly mariadbd: MariadbdProcess,
  ) {
    this.dir = files.dir;
    this.datadir = files.datadir;
    this.socket = files.socket;
  }

  get pid(): number {
    const pid = this.mariadbd.pid;
    if (pid === undefined) throw new Error(`mariadbd in ${this.dir} is not running`);
    return pid;
  }

  /** After kill() with a terminating signal, waits for that process to exit first. */
  start(): Promise<void> {
    return this.mariadbd.start();
  }

  stop(): Promise<void> {
    return this.mariadbd.stop();
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    this.mariadbd.signal(signal);
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
  try {
    await runFile(requireBinary(INSTALL_BINARY), installArgs(datadir), { maxBuffer: 16 * 1024 * 1024 });
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


