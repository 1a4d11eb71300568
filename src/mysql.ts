/**
 * The MySQL/MariaDB session: connecting with errors that say what to fix, the processlist, the binary-log
 * coordinates, privilege checks, and a KILL that first proves the connection is ours.
 */
import * as mysql from 'mysql2/promise';
import type { ClientSettings } from './config';
import { HookError } from './errors';
import { lockPrivileges, type LockMode } from './lockmodes';
import { ER_BAD_FIELD_ERROR, ER_NO_SUCH_TABLE, ER_PARSE_ERROR, firstAccepted } from './statements';
import type { ProcessRow } from './window';

export interface ServerInfo {
  version: string;
  isMariaDB: boolean;
  connectionId: number;
  /** CURRENT_USER(): the account the server matched, as user@host */
  account: string;
  logBin: boolean;
  /** epoch ms at which the server started (now - Uptime): with the connection id it names one connection */
  startedAt: number;
  /** @@datadir, as the server names it (on this machine, or in a container or elsewhere) */
  datadir: string;
}

/** An authenticated connection; a Session also knows what it is connected to. */
export interface Link {
  readonly connection: mysql.Connection;
  /** whether one query may hold several statements (only our own, constant ones: see openLink) */
  readonly multipleStatements: boolean;
  close(): Promise<void>;
  /** Closes the socket at once, without waiting for a running statement. */
  destroy(): void;
}

export interface Session extends Link {
  readonly server: ServerInfo;
}

/** Identifies one connection for a KILL: same server lifetime, same id, same user. */
export interface ConnectionProof {
  id: number;
  user: string;
  serverStartedAt: number;
}

const SERVER_DOWN_CODES = new Set(['ENOENT', 'ECONNREFUSED']);

/**
 * Connects and logs in, and sends no statement: the holder's connection, whose server freeze's session
 * has described (see describedSession). `multipleStatements`: several statements in one query, for the
 * holder, which sends only statements of its own and saves round trips while writers wait.
 */
export async function openLink(client: ClientSettings, options: { connectTimeoutMs?: number; multipleStatements?: boolean } = {}): Promise<Link> {
  const multipleStatements = options.multipleStatements ?? false;
  let connection: mysql.Connection;
  try {
    connection = await mysql.createConnection({
      user: client.user,
      password: client.password,
      ...(client.socket !== undefined || client.host === undefined || client.host === 'localhost'
        ? { socketPath: client.socket ?? '/run/mysqld/mysqld.sock' }
        : { host: client.host, port: client.port ?? 3306 }),
      connectTimeout: options.connectTimeoutMs ?? 10_000,
      supportBigNumbers: true,
      multipleStatements,
      // Rows parsed as they come, not by code generated and compiled for each new set of columns: our
      // processes are short-lived and most statements run once (1-2 ms less for the first, ~0.5 ms for
      // each further one). The processlist, polled, is read with a compiled parser (readProcesslist).
      disableEval: true,
    });
  } catch (error) {
    throw connectError(error, client);
  }
  // A server that goes away emits 'error' on an idle connection: the next query reports it; never crash.
  connection.on('error', () => undefined);
  return { connection, multipleStatements, close: () => connection.end().catch(() => connection.destroy()), destroy: () => connection.destroy() };
}

/** A connection that knows its server: its version, our connection id and account, its start time. */
export async function openSession(client: ClientSettings, options: { connectTimeoutMs?: number; multipleStatements?: boolean } = {}): Promise<Session> {
  const link = await openLink(client, options);
  try {
    return { ...link, server: await readServerInfo(link.connection) };
  } catch (error) {
    link.destroy();
    throw serverError(error, 'reading the server version');
  }
}

/**
 * A session on a link to the server another session of ours has described: the holder's, with what
 * freeze's session read, and the connection id the server gave the link in its handshake. (Were the
 * server restarted between the two, the start time would name the wrong lifetime, and a KILL of this
 * connection would be refused as not proven ours, never the reverse.)
 */
export function describedSession(link: Link, server: Omit<ServerInfo, 'connectionId'>): Session {
  return { ...link, server: { ...server, connectionId: link.connection.threadId } };
}

/** A short-lived session for one piece of work, always closed afterwards. */
export async function withSession<T>(client: ClientSettings, options: { connectTimeoutMs?: number }, work: (session: Session) => Promise<T>): Promise<T> {
  const session = await openSession(client, options);
  try {
    return await work(session);
  } finally {
    await session.close();
  }
}

async function readServerInfo(connection: mysql.Connection): Promise<ServerInfo> {
  const [rows] = await connection.query<mysql.RowDataPacket[]>(
    'SELECT @@version AS version, CONNECTION_ID() AS id, CURRENT_USER() AS account, @@log_bin AS logBin, @@datadir AS datadir, UNIX_TIMESTAMP(NOW(3)) AS now',
  );
  const [status] = await connection.query<mysql.RowDataPacket[]>("SHOW GLOBAL STATUS LIKE 'Uptime'");
  const row = rows[0] ?? {};
  const uptime = Number(status[0]?.['Value'] ?? 0);
  return {
    version: String(row['version']),
    isMariaDB: /mariadb/i.test(String(row['version'])),
    connectionId: Number(row['id']),
    account: String(row['account']),
    logBin: Number(row['logBin']) === 1,
    startedAt: Math.round((Number(row['now']) - uptime) * 1000),
    datadir: String(row['datadir']),
  };
}

export function isServerDown(error: unknown): boolean {
  if (error instanceof HookError) return error.code === 'SERVER_DOWN';
  return SERVER_DOWN_CODES.has(String((error as { code?: unknown }).code));
}

function describeTarget(client: ClientSettings): string {
  return client.socket !== undefined || client.host === undefined || client.host === 'localhost'
    ? `socket ${client.socket ?? '/run/mysqld/mysqld.sock'}`
    : `${client.host}:${client.port ?? 3306}`;
}

export function connectError(error: unknown, client: ClientSettings): HookError {
  const code = String((error as { code?: unknown }).code);
  const message = (error as Error).message;
  if (SERVER_DOWN_CODES.has(code)) {
    return new HookError('SERVER_DOWN', `the server is not running (${describeTarget(client)}: ${code})`, { cause: error });
  }
  if (code === 'ER_ACCESS_DENIED_ERROR' || code === 'ER_DBACCESS_DENIED_ERROR') {
    return new HookError(
      'ACCESS',
      `the server refused the login (${message}): check user and password in [client] of the configuration file`,
      { cause: error },
    );
  }
  return serverError(error, `connecting to ${describeTarget(client)}`);
}

/** Any other server error, with the missing privilege and the GRANT that adds it where we can tell. */
export function serverError(error: unknown, doing: string, account?: string): HookError {
  if (error instanceof HookError) return error;
  const errno = (error as { errno?: unknown }).errno;
  const message = (error as Error).message;
  if (isConnectionLost(error)) {
    return new HookError('SERVER', `lost the connection to the server while ${doing} (${message}): is it restarting?`, { cause: error });
  }
  if (errno === 1227 || errno === 1142) {
    const privileges = /\(at least one of\) the (.+?) privilege/.exec(message)?.[1];
    const grant = privileges === undefined ? '' : `: ${grantStatement(privileges.split(/,\s*/).slice(-1), account)}`;
    return new HookError('PRIVILEGE', `missing privilege while ${doing} (${message})${grant}`, { cause: error });
  }
  return new HookError('SERVER', `server error while ${doing}: ${message}`, { cause: error });
}

const CONNECTION_LOST_CODES = new Set(['PROTOCOL_CONNECTION_LOST', 'ECONNRESET', 'EPIPE', 'ER_SERVER_SHUTDOWN', 'ER_CONNECTION_KILLED']);

function isConnectionLost(error: unknown): boolean {
  const code = String((error as { code?: unknown }).code);
  return CONNECTION_LOST_CODES.has(code) || /closed state|connection lost/i.test((error as Error).message ?? '');
}

export function grantStatement(privileges: readonly string[], account = 'USER@HOST'): string {
  const at = account.lastIndexOf('@');
  const quoted = at < 0 ? account : `'${account.slice(0, at)}'@'${account.slice(at + 1)}'`;
  return `GRANT ${privileges.join(', ')} ON *.* TO ${quoted};`;
}

/** Global privileges of the current account, from SHOW GRANTS (which, unlike I_S, includes roles). */
export async function globalPrivileges(session: Session): Promise<Set<string>> {
  const [rows] = await session.connection.query<mysql.RowDataPacket[]>('SHOW GRANTS');
  const privileges = new Set<string>();
  for (const row of rows) {
    const line = String(Object.values(row)[0]);
    const match = /^GRANT (.+?) ON \*\.\* TO /i.exec(line);
    if (match?.[1] === undefined) continue;
    for (const privilege of match[1].split(',')) privileges.add(privilege.trim().toUpperCase());
  }
  return privileges;
}

/**
 * The privileges a freeze in `mode` needs that the account lacks, each as the name to GRANT. PROCESS
 * matters most: without it the processlist shows only our own threads and every moment looks quiet.
 */
export interface PrivilegeNeeds {
  mode: LockMode;
  /** kill_long_queries is on: KILL QUERY of other users' statements */
  killQueries?: boolean;
  /** replica_sql_thread = stop: stop and start the applier, read the replica status */
  stopApplier?: boolean;
}

export function missingPrivileges(granted: ReadonlySet<string>, server: Pick<ServerInfo, 'isMariaDB' | 'logBin'> & { version?: string }, needs: PrivilegeNeeds = { mode: 'ftwrl' }): string[] {
  if (granted.has('ALL PRIVILEGES') || granted.has('ALL')) return [];
  const { isMariaDB } = server;
  const required = [...lockPrivileges(needs.mode, server), { grant: 'PROCESS', anyOf: ['PROCESS'] }];
  if (server.logBin) {
    required.push(
      isMariaDB
        ? { grant: 'BINLOG MONITOR', anyOf: ['BINLOG MONITOR', 'REPLICATION CLIENT', 'SUPER'] }
        : { grant: 'REPLICATION CLIENT', anyOf: ['REPLICATION CLIENT', 'SUPER'] },
    );
  }
  if (needs.killQueries) {
    required.push(isMariaDB ? { grant: 'CONNECTION ADMIN', anyOf: ['CONNECTION ADMIN', 'SUPER'] } : { grant: 'CONNECTION_ADMIN', anyOf: ['CONNECTION_ADMIN', 'SUPER'] });
  }
  if (needs.stopApplier) {
    required.push(
      isMariaDB
        ? { grant: 'REPLICATION SLAVE ADMIN', anyOf: ['REPLICATION SLAVE ADMIN', 'SUPER'] }
        : { grant: 'REPLICATION_SLAVE_ADMIN', anyOf: ['REPLICATION_SLAVE_ADMIN', 'SUPER'] },
      isMariaDB
        ? { grant: 'REPLICA MONITOR', anyOf: ['REPLICA MONITOR', 'SLAVE MONITOR', 'REPLICATION CLIENT', 'SUPER'] }
        : { grant: 'REPLICATION CLIENT', anyOf: ['REPLICATION CLIENT', 'SUPER'] },
    );
  }
  return required.filter((need) => !need.anyOf.some((name) => granted.has(name))).map((need) => need.grant);
}

export async function checkPrivileges(session: Session, needs: PrivilegeNeeds = { mode: 'ftwrl' }): Promise<void> {
  let granted: Set<string>;
  try {
    granted = await globalPrivileges(session);
  } catch {
    return; // cannot tell: the statements themselves will name what is missing
  }
  const missing = missingPrivileges(granted, session.server, needs);
  if (missing.length > 0) {
    throw new HookError(
      'PRIVILEGE',
      `account ${session.server.account} lacks the ${missing.join(', ')} privilege${missing.length > 1 ? 's' : ''}: ` +
        `run ${grantStatement(missing, session.server.account)}`,
    );
  }
}

/**
 * The processlist. MariaDB: information_schema.PROCESSLIST, with TIME_MS. MySQL: performance_schema's
 * (8.0.22+, no global mutex; the I_S table is deprecated from 8.0.35), falling back to I_S on older servers.
 */
export async function readProcesslist(session: Session): Promise<ProcessRow[]> {
  const columns = 'ID AS id, USER AS user, HOST AS host, DB AS db, COMMAND AS command, STATE AS state, INFO AS info';
  const sources = session.server.isMariaDB
    ? [`SELECT ${columns}, TIME_MS AS timeMs FROM information_schema.PROCESSLIST`]
    : [`SELECT ${columns}, TIME * 1000 AS timeMs FROM performance_schema.processlist`, `SELECT ${columns}, TIME * 1000 AS timeMs FROM information_schema.PROCESSLIST`];
  // Polled every 250 ms: remember which source this server has, instead of failing over at every poll.
  const known = processlistSource.get(session);
  const { statement, rows } = await firstAccepted(session, known === undefined ? sources : [known], SOURCE_MISSING, [], { compiled: true });
  processlistSource.set(session, statement);
  return rows.map((row) => ({
    id: Number(row['id']),
    user: String(row['user'] ?? ''),
    host: String(row['host'] ?? ''),
    db: row['db'] === null ? null : String(row['db']),
    command: String(row['command'] ?? ''),
    timeMs: Number(row['timeMs'] ?? 0),
    state: row['state'] === null ? null : String(row['state']),
    info: row['info'] === null ? null : String(row['info']),
  }));
}

/** A missing table or column, or a syntax error: this server has another source. */
const SOURCE_MISSING: ReadonlySet<number> = new Set([ER_NO_SUCH_TABLE, ER_BAD_FIELD_ERROR, ER_PARSE_ERROR]);

const processlistSource = new WeakMap<Session, string>();

/** Marks the holder's lock statements, so that a waiting FLUSH is recognisably ours in the processlist. */
export function holderTag(pid: number): string {
  return `/* vmware-mysql-snapshot holder ${pid} */`;
}

/**
 * KILLs a connection only after proving it is the one we mean: the same server lifetime (ids restart at a
 * server restart), the same id, the same user, and a state our holder can be in (idle while it holds,
 * or running one of its own tagged statements). Returns what happened.
 */
export async function killConnectionIfOurs(
  session: Session,
  proof: ConnectionProof,
): Promise<'killed' | 'gone' | 'not-ours'> {
  if (Math.abs(session.server.startedAt - proof.serverStartedAt) > 2000) return 'gone'; // restarted since
  const columns = 'USER AS user, COMMAND AS command, INFO AS info';
  const { rows } = await firstAccepted(
    session,
    session.server.isMariaDB
      ? [`SELECT ${columns} FROM information_schema.PROCESSLIST WHERE ID = ?`]
      : [`SELECT ${columns} FROM performance_schema.processlist WHERE ID = ?`, `SELECT ${columns} FROM information_schema.PROCESSLIST WHERE ID = ?`],
    SOURCE_MISSING,
    [proof.id],
  );
  const row = rows[0];
  if (row === undefined) return 'gone';
  const info = row['info'] === null ? null : String(row['info']);
  const ourState = row['command'] === 'Sleep' || row['command'] === 'Killed' || info === null || info.includes('vmware-mysql-snapshot holder');
  if (String(row['user']) !== proof.user || !ourState) return 'not-ours';
  try {
    await session.connection.query(`KILL CONNECTION ${Number(proof.id)}`);
  } catch (error) {
    if ((error as { errno?: unknown }).errno === 1094) return 'gone'; // ER_NO_SUCH_THREAD: ended meanwhile
    throw error;
  }
  return 'killed';
}
