/**
 * The MySQL/MariaDB session: connecting directly to the server, what it is, and errors that say what to
 * fix. The processlist and our KILL are in processlist.ts, privilege checks in privileges.ts.
 */
import net = require('node:net');
import * as mysql from 'mysql2/promise';
import type { ClientSettings } from '../config/settings';
import { HookError } from '../errors';
import { readTrustedFile } from '../safepath';
import { authPlugins } from './authplugins';
import { printable } from './printable';
import { provenSocketPath, provenTcpStream, serverOwners } from './endpoint';

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
const DEFAULT_SOCKET = '/run/mysqld/mysqld.sock';

/** The hook's account needs this many connections at once: freeze's session and the lock holder's (see connectionlimit.ts). */
export const CONNECTIONS_NEEDED = 2;
/** ER_TOO_MANY_USER_CONNECTIONS, ER_USER_LIMIT_REACHED: a login refused for the account's connection limit */
const CONNECTION_LIMIT_ERRNOS = new Set([1203, 1226]);

/**
 * Connects and logs in, and sends no statement: the holder's connection, whose server freeze's session
 * has described (see describedSession). `multipleStatements`: several statements in one query, for the
 * holder, which sends only statements of its own and saves round trips while writers wait.
 */
export async function openLink(client: ClientSettings, options: { connectTimeoutMs?: number; multipleStatements?: boolean } = {}): Promise<Link> {
  const multipleStatements = options.multipleStatements ?? false;
  const connectTimeout = options.connectTimeoutMs ?? 10_000;
  let connection: mysql.Connection;
  try {
    const endpoint = await provenEndpoint(client, connectTimeout);
    connection = await mysql.createConnection({
      user: client.user,
      password: client.password,
      ...endpoint,
      authPlugins: authPlugins({ password: client.password ?? '', provenSocket: 'socketPath' in endpoint, ...serverPublicKey(client) }),
      connectTimeout,
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

/** Where mysql2 connects: a proven socket path, or a TCP stream already proven (see endpoint.ts). */
async function provenEndpoint(client: ClientSettings, timeoutMs: number): Promise<{ socketPath: string } | { stream: net.Socket }> {
  const owners = serverOwners();
  if (usesSocket(client)) return { socketPath: provenSocketPath(client.socket ?? DEFAULT_SOCKET, owners) };
  return { stream: await provenTcpStream(client.host ?? 'localhost', client.port ?? 3306, owners, timeoutMs) };
}

function serverPublicKey(client: ClientSettings): { serverPublicKey?: string } {
  if (client.serverPublicKeyPath === undefined) return {};
  try {
    return { serverPublicKey: readTrustedFile(client.serverPublicKeyPath).text };
  } catch (error) {
    throw new HookError('CONFIG', `server_public_key_path ${client.serverPublicKeyPath} cannot be used (${(error as Error).message})`, { cause: error });
  }
}

function usesSocket(client: ClientSettings): boolean {
  return client.socket !== undefined || client.host === undefined || client.host === 'localhost';
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
    version: printable(String(row['version'])),
    isMariaDB: /mariadb/i.test(String(row['version'])),
    connectionId: Number(row['id']),
    account: printable(String(row['account'])),
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
  return usesSocket(client)
    ? `socket ${client.socket ?? DEFAULT_SOCKET}`
    : `${client.host}:${client.port ?? 3306}`;
}

export function connectError(error: unknown, client: ClientSettings): HookError {
  const code = String((error as { code?: unknown }).code);
  const message = printable((error as Error).message);
  if (SERVER_DOWN_CODES.has(code)) {
    return new HookError('SERVER_DOWN', `the server is not running (${describeTarget(client)}: ${code})`, { cause: error });
  }
  if (error instanceof HookError) return error;
  if (/is not sent in clear/.test(message)) return new HookError('UNSAFE', `refusing to log in to ${describeTarget(client)}: ${message}`, { cause: error });
  if (code === 'ER_ACCESS_DENIED_ERROR' || code === 'ER_DBACCESS_DENIED_ERROR') {
    return new HookError(
      'ACCESS',
      `the server refused the login (${message}): check user and password in [client] of the configuration file`,
      { cause: error },
    );
  }
  if (CONNECTION_LIMIT_ERRNOS.has(Number((error as { errno?: unknown }).errno))) {
    return new HookError(
      'SERVER',
      `the server refused a connection of user ${client.user} (${message}): the hook needs ${CONNECTIONS_NEEDED} connections of its account at once (freeze's and the lock holder's); raise the account's MAX_USER_CONNECTIONS or the server's max_user_connections (vmware-mysql-snapshot doctor checks it)`,
      { cause: error },
    );
  }
  return serverError(error, `connecting to ${describeTarget(client)}`);
}

/** Any other server error, with the missing privilege and the GRANT that adds it where we can tell. */
export function serverError(error: unknown, doing: string, account?: string): HookError {
  if (error instanceof HookError) return error;
  const errno = (error as { errno?: unknown }).errno;
  const message = printable((error as Error).message);
  if (isConnectionLost(error)) {
    return new HookError('SERVER', `lost the connection to the server while ${doing} (${message}): is it restarting?`, { cause: error });
  }
  if (errno === ER_UNKNOWN_COM_ERROR && /WSREP/i.test(message)) {
    return new HookError(
      'SERVER',
      `this Galera node refuses statements while ${doing} (${message}): it is outside the primary component or not yet synced (see wsrep_cluster_status and wsrep_local_state); ` +
        'snapshot a Synced node of the primary component, or restore the cluster first; nothing is held',
      { cause: error },
    );
  }
  if (errno === 1227 || errno === 1142) {
    const privileges = /\(at least one of\) the (.+?) privilege/.exec(message)?.[1];
    const grant = privileges === undefined ? '' : `: ${grantStatement(privileges.split(/,\s*/).slice(-1), account)}`;
    return new HookError('PRIVILEGE', `missing privilege while ${doing} (${message})${grant}`, { cause: error });
  }
  return new HookError('SERVER', `server error while ${doing}: ${message}`, { cause: error });
}

/** ER_UNKNOWN_COM_ERROR: what a Galera node without the primary component answers ("WSREP has not yet prepared node ...") */
const ER_UNKNOWN_COM_ERROR = 1047;

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
