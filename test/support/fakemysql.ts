/**
 * EMULATED MySQL-family servers for the dialect tests: MySQL 8.0, 8.4 LTS, 9.x, a calendar version (26.x)
 * and Percona Server 5.7 / 8.0 cannot be installed here, so a small server built on mysql2's server API
 * answers the statements this project sends the way each of those servers answers them. These are
 * EMULATIONS, NOT THE REAL SERVERS: they prove that our statements, fallbacks and column parsing match
 * the documented behaviour of each dialect, not that the real server behaves as documented.
 *
 * What each profile's answers are based on (../shared/docs/mysql-locking.md and the manuals it cites):
 * - binary-log status: `SHOW MASTER STATUS` up to 8.3 (8.2/8.3 deprecate it), removed in 8.4, so a 1064
 *   syntax error on 8.4, 9.x and 26.x; `SHOW BINARY LOG STATUS` from 8.2 on, a 1064 before (8.0, 5.7);
 *   `SHOW BINLOG STATUS` is MariaDB only (1064 everywhere here). Columns File, Position, Binlog_Do_DB,
 *   Binlog_Ignore_DB, Executed_Gtid_Set (a multi-source set is printed with a newline after each comma).
 * - replica status: `SHOW REPLICA STATUS` from 8.0.22 (1064 before, and on Percona 5.7), with the
 *   Source_/Replica_ column names; `SHOW SLAVE STATUS` up to 8.3 (deprecated from 8.0.22: warning 1287),
 *   removed in 8.4 (1064), with the Master_/Slave_ names; one row per channel (Channel_Name, '' for the
 *   default channel); an empty result (columns, no rows) on a server that is no replica; `SHOW ALL SLAVES
 *   STATUS` is MariaDB only (1064). `STOP|START REPLICA` from 8.0.22, `STOP|START SLAVE` up to 8.3.
 * - GTID: `@@global.gtid_executed` (also with the newline after each comma); MariaDB's gtid_binlog_pos
 *   and gtid_slave_pos are unknown system variables (1193).
 * - performance_schema.log_status (8.0.14+; a 1146 "doesn't exist" on 5.7): SERVER_UUID, LOCAL (JSON:
 *   gtid_executed, binary_log_file, binary_log_position), REPLICATION (JSON, channels), STORAGE_ENGINES;
 *   needs BACKUP_ADMIN.
 * - processlist: information_schema.PROCESSLIST everywhere (TIME in whole seconds; TIME_MS only on Percona,
 *   whose manual documents it, a 1054 unknown column elsewhere), deprecated from 8.0.35 (each read answers with warning 1287 "'INFORMATION_SCHEMA.
 *   PROCESSLIST' is deprecated and will be removed in a future release. Please use performance_schema.
 *   processlist instead"); performance_schema.processlist from 8.0.22 (a 1146 before). Without PROCESS
 *   an account sees only its own threads.
 * - locks: `FLUSH TABLES WITH READ LOCK` everywhere (RELOAD; FLUSH_TABLES also from 8.0.23); `LOCK INSTANCE
 *   FOR BACKUP` / `UNLOCK INSTANCE` on MySQL 8.0+ (BACKUP_ADMIN; 1064 on 5.7); Percona backup locks
 *   (have_backup_locks = YES): `LOCK TABLES FOR BACKUP` (RELOAD on 5.7, BACKUP_ADMIN from 8.0.13-4),
 *   `LOCK BINLOG FOR BACKUP` / `UNLOCK BINLOG` on 5.7 only (removed in Percona 8.0: 1064); `UNLOCK TABLES`
 *   releases FTWRL and the table backup lock; a session's locks are released when it disconnects.
 *   MariaDB syntax (`SET STATEMENT ... FOR`, `BACKUP STAGE`) is a 1064.
 * - privileges: SHOW GRANTS prints the static privileges in one line and, on 8.0+, the dynamic ones
 *   (BACKUP_ADMIN, REPLICATION_SLAVE_ADMIN, CONNECTION_ADMIN, FLUSH_TABLES ...) in a second line, as
 *   MySQL does; a statement lacking its privilege answers 1227 "Access denied; you need (at least one of)
 *   the X privilege(s) for this operation".
 * Not emulated: the authentication plugin (every profile offers mysql_native_password, where 8.4 and
 * later default to caching_sha2_password and 9.x removed native passwords), TLS, real lock waits between
 * sessions, and the exact text after "near" in a syntax error (the statement minus its first word).
 */
import { createHash } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import type * as net from 'node:net';
import * as path from 'node:path';
import * as mysql from 'mysql2';

export type DialectName = 'mysql-8.0.20' | 'mysql-8.0.42' | 'mysql-8.4' | 'mysql-9.x' | 'mysql-26.x' | 'percona-5.7' | 'percona-8.0';

export interface DialectProfile {
  name: DialectName;
  /** what @@version answers */
  version: string;
  versionComment: string;
  /** SHOW BINARY LOG STATUS (MySQL 8.2+) */
  binaryLogStatus: boolean;
  /** SHOW MASTER STATUS (removed in 8.4) */
  masterStatus: boolean;
  /** the REPLICA keyword: SHOW REPLICA STATUS, STOP/START REPLICA (8.0.22+) */
  replicaKeyword: boolean;
  /** the SLAVE keyword (removed in 8.4) */
  slaveKeyword: boolean;
  /** warning 1287 on the SLAVE forms (deprecated from 8.0.22) */
  slaveDeprecated: boolean;
  /** performance_schema.log_status (8.0.14+) */
  logStatus: boolean;
  /** LOCK INSTANCE FOR BACKUP (8.0+) */
  lockInstance: boolean;
  /** Percona: have_backup_locks, LOCK TABLES FOR BACKUP */
  backupLocks: boolean;
  /** Percona 5.7: LOCK BINLOG FOR BACKUP, UNLOCK BINLOG */
  binlogBackupLock: boolean;
  /** performance_schema.processlist (8.0.22+) */
  performanceSchemaProcesslist: boolean;
  /** information_schema.PROCESSLIST answers with warning 1287 (8.0.35+) */
  processlistDeprecated: boolean;
  /** Percona's information_schema.PROCESSLIST also has TIME_MS (milliseconds) */
  processlistTimeMs: boolean;
  /** dynamic privileges such as BACKUP_ADMIN (8.0+) */
  dynamicPrivileges: boolean;
  /** the FLUSH_TABLES privilege (8.0.23+) */
  flushTablesPrivilege: boolean;
  /** the open temporary tables of the applier in SHOW GLOBAL STATUS */
  tempTablesStatus: readonly string[];
}

const MYSQL_COMMUNITY = 'MySQL Community Server - GPL';

const MYSQL_80_MODERN = {
  binaryLogStatus: false,
  masterStatus: true,
  replicaKeyword: true,
  slaveKeyword: true,
  slaveDeprecated: true,
  logStatus: true,
  lockInstance: true,
  backupLocks: false,
  binlogBackupLock: false,
  performanceSchemaProcesslist: true,
  processlistDeprecated: true,
  processlistTimeMs: false,
  dynamicPrivileges: true,
  flushTablesPrivilege: true,
  tempTablesStatus: ['Replica_open_temp_tables', 'Slave_open_temp_tables'],
} as const;

const MYSQL_84_ON = {
  ...MYSQL_80_MODERN,
  binaryLogStatus: true,
  masterStatus: false,
  slaveKeyword: false,
  slaveDeprecated: false,
  tempTablesStatus: ['Replica_open_temp_tables'],
} as const;

export const DIALECTS: Readonly<Record<DialectName, DialectProfile>> = {
  'mysql-8.0.20': {
    name: 'mysql-8.0.20',
    version: '8.0.20',
    versionComment: MYSQL_COMMUNITY,
    ...MYSQL_80_MODERN,
    replicaKeyword: false,
    slaveDeprecated: false,
    performanceSchemaProcesslist: false,
    processlistDeprecated: false,
    flushTablesPrivilege: false,
    tempTablesStatus: ['Slave_open_temp_tables'],
  },
  'mysql-8.0.42': { name: 'mysql-8.0.42', version: '8.0.42', versionComment: MYSQL_COMMUNITY, ...MYSQL_80_MODERN },
  'mysql-8.4': { name: 'mysql-8.4', version: '8.4.6', versionComment: MYSQL_COMMUNITY, ...MYSQL_84_ON },
  'mysql-9.x': { name: 'mysql-9.x', version: '9.4.0', versionComment: MYSQL_COMMUNITY, ...MYSQL_84_ON },
  // The first calendar-versioned release; assumed to answer as 9.x does (nothing removed beyond 9.x).
  'mysql-26.x': { name: 'mysql-26.x', version: '26.7.0', versionComment: MYSQL_COMMUNITY, ...MYSQL_84_ON },
  'percona-5.7': {
    name: 'percona-5.7',
    version: '5.7.44-48',
    versionComment: 'Percona Server (GPL), Release 48, Revision 497f936a373',
    binaryLogStatus: false,
    masterStatus: true,
    replicaKeyword: false,
    slaveKeyword: true,
    slaveDeprecated: false,
    logStatus: false,
    lockInstance: false,
    backupLocks: true,
    binlogBackupLock: true,
    performanceSchemaProcesslist: false,
    processlistDeprecated: false,
    processlistTimeMs: true,
    dynamicPrivileges: false,
    flushTablesPrivilege: false,
    tempTablesStatus: ['Slave_open_temp_tables'],
  },
  'percona-8.0': {
    name: 'percona-8.0',
    version: '8.0.42-33',
    versionComment: 'Percona Server (GPL), Release 33, Revision 9dc49998',
    ...MYSQL_80_MODERN,
    backupLocks: true,
    processlistTimeMs: true,
  },
};

export interface FakeChannel {
  name: string;
  sourceHost: string;
  sourcePort: number;
  /** the source's binlog the receiver reads (Source_Log_File) and how far (Read_Source_Log_Pos) */
  readFile: string;
  readPosition: number;
  /** the source's binlog and position of the last EXECUTED event */
  execFile: string;
  execPosition: number;
  ioRunning: boolean;
  sqlRunning: boolean;
  autoPosition: boolean;
  retrievedGtidSet: string;
}

export interface FakeState {
  /** null: log_bin = OFF */
  binlog: { file: string; position: number } | null;
  /** gtid_executed as MySQL prints it ('' when no GTID was ever executed) */
  gtidExecuted: string;
  serverUuid: string;
  uptime: number;
  channels: FakeChannel[];
  /** the one account that may log in */
  user: string;
  password: string;
  /** global privileges of that account, e.g. RELOAD, PROCESS, REPLICATION CLIENT, BACKUP_ADMIN */
  grants: string[];
  /** extra processlist rows (other clients' statements); time in seconds, fractions kept for TIME_MS */
  otherThreads: Array<{ id: number; user: string; host: string; db: string | null; command: string; time: number; state: string | null; info: string | null }>;
  /** open temporary tables of the applier (Replica_open_temp_tables) */
  openTempTables: number;
}

export interface ReceivedStatement {
  connection: number;
  sql: string;
  /** 'ok', 'rows' or the error number answered */
  answer: 'ok' | 'rows' | number;
  at: number;
}

export interface LockEvent {
  connection: number;
  lock: string;
  action: 'acquired' | 'released';
  /** the statement that took or released it, or 'disconnect' */
  by: string;
  at: number;
}

export interface ErrorAnswer {
  errno: number;
  sqlState: string;
  message: string;
}

type Value = string | number | null | Record<string, unknown>;
interface Column {
  name: string;
  type: 'int' | 'string' | 'decimal' | 'json';
}
interface Result {
  columns: Column[];
  rows: Value[][];
  warnings?: Warning[];
}
interface Warning {
  level: 'Warning' | 'Note';
  code: number;
  message: string;
}
type Answer = { kind: 'ok'; warnings?: Warning[] } | { kind: 'rows'; result: Result } | { kind: 'error'; error: ErrorAnswer };

export interface FakeServer {
  readonly dialect: DialectProfile;
  readonly port: number;
  readonly state: FakeState;
  /** every statement received, in order, from every connection */
  readonly statements: ReceivedStatement[];
  readonly lockEvents: LockEvent[];
  /** the statements one connection sent, in order */
  statementsOf(connection: number): string[];
  /** the ids of connections that ever sent a statement matching the pattern */
  connectionsThatSent(pattern: RegExp): number[];
  /** locks held now, by connection */
  heldLocks(): Map<number, string[]>;
  /** answers statements matching the pattern with an error (e.g. to emulate a future removal) */
  /** A connected session's variable, as its SET statements left it (undefined if never set). */
  sessionVariable(connection: number, name: string): string | undefined;
  failWhen(pattern: RegExp, error: ErrorAnswer): void;
  /** [client] settings for src/server/session.ts openSession */
  client(): { user: string; password: string; host: string; port: number };
  close(): Promise<void>;
}

/** The defaults: a primary with a binary log and GTIDs, not a replica, with the privileges ftwrl needs. */
export function defaultState(dialect: DialectProfile): FakeState {
  return {
    binlog: { file: 'binlog.000042', position: 1_234_567 },
    gtidExecuted: '3e11fa47-71ca-11e1-9e33-c80aa9429562:1-77',
    serverUuid: '3e11fa47-71ca-11e1-9e33-c80aa9429562',
    uptime: 86_400,
    channels: [],
    user: 'snapshot',
    password: 'fake-secret',
    grants: ['RELOAD', 'PROCESS', 'REPLICATION CLIENT', ...(dialect.dynamicPrivileges ? ['BACKUP_ADMIN'] : [])],
    otherThreads: [],
    openTempTables: 0,
  };
}

const MYSQL2_ROOT = path.dirname(require.resolve('mysql2'));
// Not in mysql2's public exports: loaded by path to write ERR packets with a real SQLSTATE.
const Packet = require(path.join(MYSQL2_ROOT, 'lib', 'packets', 'packet.js')) as PacketClass;

interface PacketInstance {
  offset: number;
  writeInt8(value: number): void;
  writeInt16(value: number): void;
  writeString(value: string, encoding: string): void;
}
type PacketClass = new (sequenceId: number, buffer: Buffer, start: number, end: number) => PacketInstance;

interface ColumnPacket {
  catalog: string;
  schema: string;
  table: string;
  orgTable: string;
  name: string;
  orgName: string;
  characterSet: number;
  columnLength: number;
  columnType: number;
  flags: number;
  decimals: number;
}

/** The part of mysql2's server-side connection we use (lib/base/connection.js, commands/server_handshake.js). */
interface ServerConnection extends EventEmitter {
  serverHandshake(args: Record<string, unknown>): void;
  writeColumns(columns: ColumnPacket[]): void;
  writeTextRow(values: Array<string | null>): void;
  writeEof(warnings?: number, statusFlags?: number): void;
  writeOk(args?: { affectedRows?: number; serverStatus?: number; warningCount?: number }): void;
  writePacket(packet: PacketInstance): void;
  sequenceId: number;
  stream: net.Socket;
}

interface Session {
  id: number;
  connection: ServerConnection;
  user: string;
  host: string;
  connectedAt: number;
  commandStartedAt: number;
  locks: Set<string>;
  variables: Map<string, string>;
  warnings: Warning[];
  /** the statement being answered, for the processlist's INFO */
  current: string | null;
  closed: boolean;
}

const SERVER_STATUS_AUTOCOMMIT = 0x0002;
/** LONG_PASSWORD .. PLUGIN_AUTH without COMPRESS, SSL, CONNECT_ATTRS, SESSION_TRACK, QUERY_ATTRIBUTES */
const CAPABILITIES = 0x000ff7df;
const UTF8_GENERAL_CI = 33;
const BINARY = 63;
const TYPE = { int: 8, string: 253, decimal: 246, json: 245 } as const;

const FIRST_CONNECTION_ID = 11;
const EVENT_SCHEDULER_ID = 5;

export async function startFakeServer(dialect: DialectName | DialectProfile, state: Partial<FakeState> = {}): Promise<FakeServer> {
  const profile = typeof dialect === 'string' ? DIALECTS[dialect] : dialect;
  const fake = new Fake(profile, { ...defaultState(profile), ...state });
  await fake.listen();
  return fake;
}

class Fake implements FakeServer {
  readonly statements: ReceivedStatement[] = [];
  readonly lockEvents: LockEvent[] = [];
  private readonly sessions = new Map<number, Session>();
  private readonly sockets = new Set<net.Socket>();
  private readonly failures: Array<{ pattern: RegExp; error: ErrorAnswer }> = [];
  private nextId = FIRST_CONNECTION_ID;
  private readonly server = mysql.createServer(undefined as unknown as (conn: unknown) => void) as unknown as EventEmitter & {
    listen(...args: unknown[]): unknown;
    close(callback: () => void): void;
    _server: net.Server;
  };
  private readonly startedAt = Date.now();
  port = 0;

  constructor(
    readonly dialect: DialectProfile,
    readonly state: FakeState,
  ) {
    this.server.on('connection', (connection: ServerConnection) => this.accept(connection));
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server._server.once('error', reject);
      this.server.listen(0, '127.0.0.1', () => {
        const address = this.server._server.address();
        this.port = typeof address === 'object' && address !== null ? address.port : 0;
        resolve();
      });
    });
  }

  client(): { user: string; password: string; host: string; port: number } {
    return { user: this.state.user, password: this.state.password, host: '127.0.0.1', port: this.port };
  }

  statementsOf(connection: number): string[] {
    return this.statements.filter((statement) => statement.connection === connection).map((statement) => statement.sql);
  }

  connectionsThatSent(pattern: RegExp): number[] {
    return [...new Set(this.statements.filter((statement) => pattern.test(statement.sql)).map((statement) => statement.connection))];
  }

  heldLocks(): Map<number, string[]> {
    const held = new Map<number, string[]>();
    for (const session of this.sessions.values()) if (session.locks.size > 0) held.set(session.id, [...session.locks]);
    return held;
  }

  /** A connected session's variable, as its SET statements left it (undefined if never set). */
  sessionVariable(connection: number, name: string): string | undefined {
    return this.sessions.get(connection)?.variables.get(name);
  }

  failWhen(pattern: RegExp, error: ErrorAnswer): void {
    this.failures.push({ pattern, error });
  }

  close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private accept(connection: ServerConnection): void {
    const id = this.nextId;
    this.nextId += 1;
    const socket = connection.stream;
    this.sockets.add(socket);
    // A client that goes away mid-packet makes the connection emit 'error': that is not our failure.
    connection.on('error', () => undefined);
    const session: Session = {
      id,
      connection,
      user: '',
      host: `${socket.remoteAddress ?? '127.0.0.1'}:${socket.remotePort ?? 0}`,
      connectedAt: Date.now(),
      commandStartedAt: Date.now(),
      locks: new Set(),
      variables: new Map(),
      warnings: [],
      current: null,
      closed: false,
    };
    socket.once('close', () => {
      this.sockets.delete(socket);
      this.disconnect(session);
    });
    connection.serverHandshake({
      protocolVersion: 10,
      serverVersion: this.dialect.version,
      connectionId: id,
      statusFlags: SERVER_STATUS_AUTOCOMMIT,
      characterSet: UTF8_GENERAL_CI,
      capabilityFlags: CAPABILITIES,
      authCallback: (
        params: { user: string; authPluginData1: Buffer; authPluginData2: Buffer; authToken: Buffer },
        callback: (error: null, mysqlError?: { message: string; code: number }) => void,
      ) => {
        const scramble = Buffer.concat([params.authPluginData1, params.authPluginData2]);
        if (params.user !== this.state.user || !nativePasswordMatches(this.state.password, scramble, params.authToken)) {
          callback(null, { message: `Access denied for user '${params.user}'@'${socket.remoteAddress ?? ''}' (using password: YES)`, code: 1045 });
          return;
        }
        session.user = params.user;
        this.sessions.set(id, session);
        callback(null);
        connection.sequenceId = 0;
      },
    });
    // mysql2 hands statements that start with SET or PREPARE to 'stmt_prepare' instead of 'query'.
    const onStatement = (sql: string): void => this.answer(session, sql);
    connection.on('query', onStatement);
    connection.on('stmt_prepare', onStatement);
  }

  private disconnect(session: Session): void {
    if (session.closed) return;
    session.closed = true;
    for (const lock of session.locks) this.lockEvents.push({ connection: session.id, lock, action: 'released', by: 'disconnect', at: Date.now() });
    session.locks.clear();
    this.sessions.delete(session.id);
  }

  private answer(session: Session, sql: string): void {
    session.commandStartedAt = Date.now();
    session.current = sql;
    let answer: Answer;
    try {
      answer = this.execute(session, sql);
    } catch (error) {
      answer = { kind: 'error', error: { errno: 1105, sqlState: 'HY000', message: `fake server: ${(error as Error).message}` } };
    }
    this.statements.push({ connection: session.id, sql, answer: answer.kind === 'error' ? answer.error.errno : answer.kind, at: Date.now() });
    if (session.closed) return; // e.g. KILL of its own connection
    const connection = session.connection;
    if (answer.kind === 'error') {
      session.warnings = [{ level: 'Warning', code: answer.error.errno, message: answer.error.message }];
      connection.writePacket(errorPacket(answer.error));
    } else if (answer.kind === 'ok') {
      session.warnings = answer.warnings ?? [];
      connection.writeOk({ affectedRows: 0, serverStatus: SERVER_STATUS_AUTOCOMMIT, warningCount: session.warnings.length });
    } else {
      session.warnings = answer.result.warnings ?? [];
      connection.writeColumns(answer.result.columns.map(columnPacket));
      for (const row of answer.result.rows) connection.writeTextRow(row.map(textValue));
      connection.writeEof(session.warnings.length, SERVER_STATUS_AUTOCOMMIT);
    }
    session.current = null;
    session.commandStartedAt = Date.now();
    // mysql2's server side does not restart the sequence at each command: the next command comes as 0.
    connection.sequenceId = 0;
  }

  private execute(session: Session, sql: string): Answer {
    for (const failure of this.failures) if (failure.pattern.test(sql)) return { kind: 'error', error: failure.error };
    const statement = normalize(sql);
    const upper = statement.toUpperCase();
    if (upper.startsWith('SELECT ')) return this.select(session, statement);
    if (upper.startsWith('SHOW ')) return this.show(session, statement, upper);
    return this.command(session, statement, upper);
  }

  // ---- SELECT ----------------------------------------------------------------------------------------

  private select(session: Session, statement: string): Answer {
    const match = /^SELECT\s+(.+?)(?:\s+FROM\s+([\w.`]+)(?:\s+WHERE\s+(\w+)\s*=\s*('[^']*'|\d+))?)?$/i.exec(statement);
    if (match === null) return syntaxError(statement);
    const items = splitList(match[1] ?? '').map(parseItem);
    const table = match[2]?.replace(/`/g, '').toLowerCase();
    if (table === undefined) {
      const values: Value[] = [];
      for (const item of items) {
        const value = this.expression(session, item.expression);
        if ('errno' in value) return { kind: 'error', error: value };
        values.push(value.value);
      }
      return { kind: 'rows', result: { columns: items.map((item, index) => ({ name: item.name, type: typeOf(values[index] ?? null) })), rows: [values] } };
    }
    const source = this.table(session, table);
    if ('errno' in source) return { kind: 'error', error: source };
    let rows = source.rows;
    if (match[3] !== undefined && match[4] !== undefined) {
      const column = match[3].toUpperCase();
      const wanted = match[4].startsWith("'") ? match[4].slice(1, -1) : Number(match[4]);
      if (!(column in (source.types))) return { kind: 'error', error: unknownColumn(match[3], 'where clause') };
      rows = rows.filter((row) => row[column] === wanted);
    }
    const columns: Column[] = [];
    const projected: Value[][] = rows.map(() => []);
    for (const item of items) {
      const term = /^(\w+)(?:\s*([*/])\s*(\d+))?$/.exec(item.expression);
      const column = term?.[1]?.toUpperCase();
      if (term === null || column === undefined || !(column in source.types)) {
        return { kind: 'error', error: unknownColumn(term?.[1] ?? item.expression, 'field list') };
      }
      const factor = term[3] === undefined ? undefined : Number(term[3]);
      columns.push({ name: item.name, type: factor === undefined ? (source.types[column] ?? 'string') : 'int' });
      rows.forEach((row, index) => {
        const value = row[column] ?? null;
        projected[index]?.push(factor === undefined || value === null ? value : term[2] === '*' ? Number(value) * factor : Number(value) / factor);
      });
    }
    return { kind: 'rows', result: { columns, rows: projected, warnings: source.warnings } };
  }

  private expression(session: Session, expression: string): { value: Value } | ErrorAnswer {
    const upper = expression.toUpperCase().replace(/\s+/g, '');
    const variable = /^@@(?:(GLOBAL|SESSION|LOCAL)\.)?(\w+)$/.exec(upper);
    if (variable?.[2] !== undefined) {
      const name = variable[2].toLowerCase();
      const value = variable[1] === 'GLOBAL' ? this.globalVariable(name) : (session.variables.get(name) ?? this.globalVariable(name));
      return value === undefined ? { errno: 1193, sqlState: 'HY000', message: `Unknown system variable '${name}'` } : { value };
    }
    switch (upper) {
      case 'CONNECTION_ID()':
        return { value: session.id };
      case 'CURRENT_USER()':
      case 'CURRENT_USER':
        return { value: `${this.state.user}@%` };
      case 'USER()':
        return { value: `${session.user}@${session.host.replace(/:\d+$/, '')}` };
      case 'VERSION()':
        return { value: this.dialect.version };
      case 'UNIX_TIMESTAMP(NOW(3))':
        return { value: (Date.now() / 1000).toFixed(3) };
      case 'UNIX_TIMESTAMP()':
        return { value: Math.floor(Date.now() / 1000) };
    }
    if (/^-?\d+$/.test(upper)) return { value: Number(upper) };
    const literal = /^'([^']*)'$/.exec(expression.trim());
    if (literal !== null) return { value: literal[1] ?? '' };
    return unknownColumn(expression, 'field list');
  }

  private globalVariable(name: string): Value | undefined {
    const variables: Record<string, Value> = {
      version: this.dialect.version,
      version_comment: this.dialect.versionComment,
      log_bin: this.state.binlog === null ? 0 : 1,
      // a path that is nothing on the machine running the tests: the server "runs elsewhere"
      datadir: EMULATED_DATADIR,
      server_uuid: this.state.serverUuid,
      gtid_executed: this.state.gtidExecuted,
      gtid_mode: this.state.gtidExecuted === '' ? 'OFF' : 'ON',
      wait_timeout: '28800',
      lock_wait_timeout: '31536000',
      ...(this.dialect.backupLocks ? { have_backup_locks: 'YES' } : {}),
    };
    return variables[name];
  }

  private table(session: Session, table: string): { rows: Array<Record<string, Value>>; types: Record<string, Column['type']>; warnings?: Warning[] } | ErrorAnswer {
    switch (table) {
      case 'information_schema.processlist':
        return {
          rows: this.processlist(session),
          types: this.dialect.processlistTimeMs ? { ...PROCESSLIST_TYPES, TIME_MS: 'int' } : PROCESSLIST_TYPES,
          ...(this.dialect.processlistDeprecated ? { warnings: [deprecated("'INFORMATION_SCHEMA.PROCESSLIST'", 'performance_schema.processlist')] } : {}),
        };
      case 'performance_schema.processlist':
        return this.dialect.performanceSchemaProcesslist ? { rows: this.processlist(session), types: { ...PROCESSLIST_TYPES, EXECUTION_ENGINE: 'string' } } : noSuchTable(table);
      case 'performance_schema.log_status': {
        if (!this.dialect.logStatus) return noSuchTable(table);
        if (!this.has(['BACKUP_ADMIN'])) return denied(['BACKUP_ADMIN']);
        const { binlog } = this.state;
        const local = { gtid_executed: this.state.gtidExecuted, binary_log_file: binlog?.file ?? '', binary_log_position: binlog?.position ?? 0 };
        const replication = { channels: this.state.channels.map((channel) => ({ channel_name: channel.name, relay_log_file: `relay-bin-${channel.name || 'default'}.000002`, relay_log_position: channel.execPosition })) };
        return {
          rows: [{ SERVER_UUID: this.state.serverUuid, LOCAL: local, REPLICATION: replication, STORAGE_ENGINES: { InnoDB: { LSN: 123456789, LSN_checkpoint: 123456000 } } }],
          types: { SERVER_UUID: 'string', LOCAL: 'json', REPLICATION: 'json', STORAGE_ENGINES: 'json' },
        };
      }
      default:
        return noSuchTable(table);
    }
  }

  private processlist(session: Session): Array<Record<string, Value>> {
    const now = Date.now();
    const rows: Array<Record<string, Value>> = [
      { ID: EVENT_SCHEDULER_ID, USER: 'event_scheduler', HOST: 'localhost', DB: null, COMMAND: 'Daemon', TIME: Math.floor((now - this.startedAt) / 1000) + this.state.uptime, STATE: 'Waiting on empty queue', INFO: null },
    ];
    for (const channel of this.state.channels) {
      if (channel.ioRunning) rows.push({ ID: 6 + rows.length, USER: 'system user', HOST: '', DB: null, COMMAND: 'Connect', TIME: 3600, STATE: 'Waiting for source to send event', INFO: null });
      if (channel.sqlRunning) rows.push({ ID: 6 + rows.length, USER: 'system user', HOST: '', DB: null, COMMAND: 'Query', TIME: 0, STATE: 'Replica has read all relay log; waiting for more updates', INFO: null });
    }
    for (const other of this.sessions.values()) {
      const running = other === session;
      rows.push({
        ID: other.id,
        USER: other.user,
        HOST: other.host,
        DB: null,
        COMMAND: running ? 'Query' : 'Sleep',
        TIME: Math.floor((now - other.commandStartedAt) / 1000),
        TIME_MS: now - other.commandStartedAt,
        STATE: running ? 'executing' : null,
        INFO: running ? other.current : null,
      });
    }
    for (const other of this.state.otherThreads) {
      rows.push({ ID: other.id, USER: other.user, HOST: other.host, DB: other.db, COMMAND: other.command, TIME: Math.floor(other.time), TIME_MS: Math.round(other.time * 1000), STATE: other.state, INFO: other.info });
    }
    // Without PROCESS an account sees its own threads only.
    return this.has(['PROCESS']) ? rows : rows.filter((row) => row['USER'] === session.user);
  }

  // ---- SHOW -------------------------------------------------------------------------------------------

  private show(session: Session, statement: string, upper: string): Answer {
    let match: RegExpExecArray | null;
    if ((match = /^SHOW (?:(GLOBAL|SESSION) )?(STATUS|VARIABLES)(?: LIKE '([^']*)'| WHERE VARIABLE_NAME IN \(('[^']*'(?:, *'[^']*')*)\))?$/.exec(upper)) !== null) {
      const pattern = /LIKE '([^']*)'/i.exec(statement)?.[1];
      // WHERE Variable_name IN ('a', 'b'): names compared without regard to case, as the servers do
      const names = match[4] === undefined ? undefined : new Set([...match[4].matchAll(/'([^']*)'/g)].map((name) => (name[1] ?? '').toLowerCase()));
      const all = match[2] === 'STATUS' ? this.statusVariables() : this.variableList(session);
      const rows = Object.entries(all).filter(([name]) => (pattern === undefined || like(name, pattern)) && (names === undefined || names.has(name.toLowerCase())));
      return { kind: 'rows', result: { columns: [{ name: 'Variable_name', type: 'string' }, { name: 'Value', type: 'string' }], rows: rows.map(([name, value]) => [name, String(value)]) } };
    }
    if (/^SHOW GRANTS(?: FOR CURRENT_USER(?:\(\))?)?$/.test(upper)) return this.showGrants();
    if (upper === 'SHOW WARNINGS') {
      return { kind: 'rows', result: { columns: [{ name: 'Level', type: 'string' }, { name: 'Code', type: 'int' }, { name: 'Message', type: 'string' }], rows: session.warnings.map((warning) => [warning.level, warning.code, warning.message]) } };
    }
    if (upper === 'SHOW MASTER STATUS') return this.dialect.masterStatus ? this.binlogStatus() : syntaxError(statement);
    if (upper === 'SHOW BINARY LOG STATUS') return this.dialect.binaryLogStatus ? this.binlogStatus() : syntaxError(statement);
    if ((match = /^SHOW (REPLICA|SLAVE) STATUS(?: FOR CHANNEL (.+))?$/.exec(upper)) !== null) {
      const replica = match[1] === 'REPLICA';
      if (replica ? !this.dialect.replicaKeyword : !this.dialect.slaveKeyword) return syntaxError(statement);
      if (!this.has(['REPLICATION CLIENT', 'SUPER'])) return accessDenied(['SUPER', 'REPLICATION CLIENT']);
      const channel = match[2] === undefined ? undefined : unquote(/FOR CHANNEL (.+)$/i.exec(statement)?.[1] ?? '');
      const warnings = !replica && this.dialect.slaveDeprecated ? [deprecated("'SHOW SLAVE STATUS'", 'SHOW REPLICA STATUS')] : undefined;
      return { kind: 'rows', result: { ...this.replicaStatus(replica ? 'source' : 'master', channel), ...(warnings ? { warnings } : {}) } };
    }
    return syntaxError(statement);
  }

  private statusVariables(): Record<string, Value> {
    const status: Record<string, Value> = { Uptime: this.state.uptime + Math.floor((Date.now() - this.startedAt) / 1000), Threads_connected: this.sessions.size };
    for (const name of this.dialect.tempTablesStatus) status[name] = this.state.openTempTables;
    return status;
  }

  private variableList(session: Session): Record<string, Value> {
    const names = ['version', 'version_comment', 'log_bin', 'server_uuid', 'gtid_executed', 'gtid_mode', 'wait_timeout', 'lock_wait_timeout', 'have_backup_locks'];
    const list: Record<string, Value> = {};
    for (const name of names) {
      const value = session.variables.get(name) ?? this.globalVariable(name);
      if (value !== undefined) list[name] = name === 'log_bin' ? (value === 1 ? 'ON' : 'OFF') : value;
    }
    return list;
  }

  private showGrants(): Answer {
    const account = `\`${this.state.user}\`@\`%\``;
    const dynamic = new Set(['BACKUP_ADMIN', 'REPLICATION_SLAVE_ADMIN', 'CONNECTION_ADMIN', 'FLUSH_TABLES', 'SYSTEM_VARIABLES_ADMIN', 'REPLICATION_APPLIER']);
    const staticGrants = this.state.grants.filter((grant) => !dynamic.has(grant));
    const dynamicGrants = this.state.grants.filter((grant) => dynamic.has(grant));
    const lines = [`GRANT ${staticGrants.length > 0 ? staticGrants.join(', ') : 'USAGE'} ON *.* TO ${account}`];
    if (dynamicGrants.length > 0) lines.push(`GRANT ${dynamicGrants.join(',')} ON *.* TO ${account}`);
    return { kind: 'rows', result: { columns: [{ name: `Grants for ${this.state.user}@%`, type: 'string' }], rows: lines.map((line) => [line]) } };
  }

  private binlogStatus(): Answer {
    if (!this.has(['REPLICATION CLIENT', 'SUPER'])) return accessDenied(['SUPER', 'REPLICATION CLIENT']);
    const columns: Column[] = ['File', 'Position', 'Binlog_Do_DB', 'Binlog_Ignore_DB', 'Executed_Gtid_Set'].map((name) => ({ name, type: name === 'Position' ? 'int' : 'string' }));
    const { binlog } = this.state;
    return { kind: 'rows', result: { columns, rows: binlog === null ? [] : [[binlog.file, binlog.position, '', '', this.state.gtidExecuted]] } };
  }

  private replicaStatus(spelling: 'source' | 'master', channelName: string | undefined): Result {
    // 5.7 lacks the last three columns of 8.0 (public key and network namespace).
    const names = versionMajor(this.dialect.version) < 8 ? REPLICA_STATUS_COLUMNS.slice(0, -3) : REPLICA_STATUS_COLUMNS;
    const columns: Column[] = names.map((name) => ({ name: spelling === 'source' ? name : masterSpelling(name), type: REPLICA_INT_COLUMNS.has(name) ? 'int' : 'string' }));
    const channels = this.state.channels.filter((channel) => channelName === undefined || channel.name === channelName);
    const rows = channels.map((channel) => {
      const values: Record<string, Value> = {
        Replica_IO_State: channel.ioRunning ? (spelling === 'source' ? 'Waiting for source to send event' : 'Waiting for master to send event') : '',
        Source_Host: channel.sourceHost,
        Source_User: 'repl',
        Source_Port: channel.sourcePort,
        Connect_Retry: 60,
        Source_Log_File: channel.readFile,
        Read_Source_Log_Pos: channel.readPosition,
        Relay_Log_File: `relay-bin-${channel.name || 'default'}.000002`,
        Relay_Log_Pos: channel.execPosition,
        Relay_Source_Log_File: channel.execFile,
        Replica_IO_Running: channel.ioRunning ? 'Yes' : 'No',
        Replica_SQL_Running: channel.sqlRunning ? 'Yes' : 'No',
        Last_Errno: 0,
        Skip_Counter: 0,
        Exec_Source_Log_Pos: channel.execPosition,
        Relay_Log_Space: 4096,
        Until_Condition: 'None',
        Until_Log_Pos: 0,
        Source_SSL_Allowed: 'No',
        Seconds_Behind_Source: channel.sqlRunning ? 0 : null,
        Source_SSL_Verify_Server_Cert: 'No',
        Last_IO_Errno: 0,
        Last_SQL_Errno: 0,
        Source_Server_Id: 1,
        Source_UUID: '4a5b6c7d-0000-11ef-8000-0242ac110002',
        Source_Info_File: 'mysql.slave_master_info',
        SQL_Delay: 0,
        Replica_SQL_Running_State: channel.sqlRunning ? 'Replica has read all relay log; waiting for more updates' : '',
        Source_Retry_Count: 86400,
        Retrieved_Gtid_Set: channel.retrievedGtidSet,
        // MySQL prints the replica's whole gtid_executed in every channel's row.
        Executed_Gtid_Set: this.state.gtidExecuted,
        Auto_Position: channel.autoPosition ? 1 : 0,
        Channel_Name: channel.name,
        Get_Source_public_key: 0,
      };
      return names.map((name) => values[name] ?? (REPLICA_INT_COLUMNS.has(name) ? 0 : ''));
    });
    return { columns, rows };
  }

  /**
   * SET [SESSION|GLOBAL] a = 1, [SESSION|GLOBAL] b = 2: as MySQL, a variable without a scope takes the
   * last one named before it; all are checked before any is set.
   */
  private setVariables(session: Session, list: string): Answer {
    let scope = 'SESSION';
    const assignments: Array<{ scope: string; name: string; value: string }> = [];
    for (const item of splitList(list)) {
      const match = /^(?:(SESSION|LOCAL|GLOBAL) |@@(SESSION|LOCAL|GLOBAL)\.)?(\w+)\s*=\s*(.+)$/i.exec(item);
      if (match === null) return syntaxError(`SET ${list}`);
      scope = (match[1] ?? match[2] ?? scope).toUpperCase();
      const name = (match[3] ?? '').toLowerCase();
      if (this.globalVariable(name) === undefined && !['sql_mode', 'names', 'autocommit', 'max_execution_time'].includes(name)) {
        return { kind: 'error', error: { errno: 1193, sqlState: 'HY000', message: `Unknown system variable '${name}'` } };
      }
      if (scope === 'GLOBAL' && !this.has(['SUPER', 'SYSTEM_VARIABLES_ADMIN'])) return accessDenied(['SUPER', 'SYSTEM_VARIABLES_ADMIN']);
      assignments.push({ scope, name, value: unquote(match[4] ?? '') });
    }
    for (const { name, value } of assignments) session.variables.set(name, value);
    return { kind: 'ok' };
  }

  // ---- everything else --------------------------------------------------------------------------------

  private command(session: Session, statement: string, upper: string): Answer {
    let match: RegExpExecArray | null;
    if (/^SET STATEMENT /.test(upper) || /^BACKUP STAGE /.test(upper)) return syntaxError(statement); // MariaDB only
    if (/^SET /.test(upper) && !/^SET NAMES /.test(upper)) return this.setVariables(session, statement.slice(4));
    if (/^FLUSH (?:NO_WRITE_TO_BINLOG |LOCAL )?TABLES$/.test(upper)) return this.flushPrivilege() ?? { kind: 'ok' };
    if (upper === 'FLUSH TABLES WITH READ LOCK') return this.flushPrivilege() ?? this.acquire(session, 'FLUSH TABLES WITH READ LOCK', statement);
    if (upper === 'LOCK INSTANCE FOR BACKUP') {
      if (!this.dialect.lockInstance) return syntaxError(statement);
      return this.has(['BACKUP_ADMIN']) ? this.acquire(session, 'LOCK INSTANCE FOR BACKUP', statement) : accessDenied(['BACKUP_ADMIN']);
    }
    if (upper === 'UNLOCK INSTANCE') return this.dialect.lockInstance ? this.release(session, ['LOCK INSTANCE FOR BACKUP'], statement) : syntaxError(statement);
    if (upper === 'LOCK TABLES FOR BACKUP') {
      if (!this.dialect.backupLocks) return syntaxError(statement);
      const privilege = this.dialect.dynamicPrivileges ? 'BACKUP_ADMIN' : 'RELOAD';
      return this.has([privilege]) ? this.acquire(session, 'LOCK TABLES FOR BACKUP', statement) : accessDenied([privilege]);
    }
    if (upper === 'LOCK BINLOG FOR BACKUP') {
      if (!this.dialect.binlogBackupLock) return syntaxError(statement);
      return this.has(['RELOAD']) ? this.acquire(session, 'LOCK BINLOG FOR BACKUP', statement) : accessDenied(['RELOAD']);
    }
    if (upper === 'UNLOCK BINLOG') return this.dialect.binlogBackupLock ? this.release(session, ['LOCK BINLOG FOR BACKUP'], statement) : syntaxError(statement);
    if (upper === 'UNLOCK TABLES') return this.release(session, ['FLUSH TABLES WITH READ LOCK', 'LOCK TABLES FOR BACKUP'], statement);
    if ((match = /^(STOP|START) (REPLICA|SLAVE)(?: (SQL_THREAD|IO_THREAD))?(?: FOR CHANNEL (.+))?$/.exec(upper)) !== null) {
      return this.replicaThreads(statement, match[1] === 'START', match[2] === 'REPLICA', match[3], match[4] === undefined ? undefined : unquote(/FOR CHANNEL (.+)$/i.exec(statement)?.[1] ?? ''));
    }
    if ((match = /^KILL (?:(CONNECTION|QUERY) )?(\d+)$/.exec(upper)) !== null) return this.kill(session, Number(match[2]), match[1] === 'QUERY');
    if (/^(BEGIN|COMMIT|ROLLBACK|DO \d+)$/.test(upper)) return { kind: 'ok' };
    return syntaxError(statement);
  }

  private flushPrivilege(): Answer | undefined {
    const names = this.dialect.flushTablesPrivilege ? ['RELOAD', 'FLUSH_TABLES'] : ['RELOAD'];
    return this.has(names) ? undefined : accessDenied(names);
  }

  private acquire(session: Session, lock: string, statement: string): Answer {
    if (!session.locks.has(lock)) {
      session.locks.add(lock);
      this.lockEvents.push({ connection: session.id, lock, action: 'acquired', by: statement, at: Date.now() });
    }
    return { kind: 'ok' };
  }

  private release(session: Session, locks: string[], statement: string): Answer {
    for (const lock of locks) {
      if (!session.locks.delete(lock)) continue;
      this.lockEvents.push({ connection: session.id, lock, action: 'released', by: statement, at: Date.now() });
    }
    return { kind: 'ok' };
  }

  private replicaThreads(statement: string, start: boolean, replica: boolean, thread: string | undefined, channelName: string | undefined): Answer {
    if (replica ? !this.dialect.replicaKeyword : !this.dialect.slaveKeyword) return syntaxError(statement);
    const privileges = this.dialect.dynamicPrivileges ? ['SUPER', 'REPLICATION_SLAVE_ADMIN'] : ['SUPER'];
    if (!this.has(privileges)) return accessDenied(privileges);
    const channels = this.state.channels.filter((channel) => channelName === undefined || channel.name === channelName);
    if (channelName !== undefined && channels.length === 0) {
      return { kind: 'error', error: { errno: 3074, sqlState: 'HY000', message: `Replication channel '${channelName}' does not exist.` } };
    }
    if (this.state.channels.length === 0) {
      return { kind: 'error', error: { errno: 1200, sqlState: 'HY000', message: 'The server is not configured as replica; fix in config file or with CHANGE REPLICATION SOURCE TO' } };
    }
    for (const channel of channels) {
      if (thread === undefined || thread === 'SQL_THREAD') channel.sqlRunning = start;
      if (thread === undefined || thread === 'IO_THREAD') channel.ioRunning = start;
    }
    const word = start ? 'START' : 'STOP';
    return { kind: 'ok', ...(!replica && this.dialect.slaveDeprecated ? { warnings: [deprecated(`'${word} SLAVE'`, `${word} REPLICA`)] } : {}) };
  }

  private kill(session: Session, id: number, queryOnly: boolean): Answer {
    const target = this.sessions.get(id);
    if (target === undefined) return { kind: 'error', error: { errno: 1094, sqlState: 'HY000', message: `Unknown thread id: ${id}` } };
    if (target.user !== session.user && !this.has(['SUPER', 'CONNECTION_ADMIN'])) {
      return { kind: 'error', error: { errno: 1095, sqlState: 'HY000', message: `You are not owner of thread ${id}` } };
    }
    // Statements are answered at once here, so KILL QUERY finds nothing to interrupt.
    if (!queryOnly) {
      this.disconnect(target);
      target.connection.stream.destroy();
    }
    return { kind: 'ok' };
  }

  private has(anyOf: readonly string[]): boolean {
    return this.state.grants.some((grant) => grant === 'ALL PRIVILEGES' || anyOf.includes(grant));
  }
}

// ---- protocol helpers ---------------------------------------------------------------------------------

function nativePasswordMatches(password: string, scramble: Buffer, token: Buffer): boolean {
  if (password === '') return token.length === 0;
  const sha1 = (...parts: Buffer[]): Buffer => createHash('sha1').update(Buffer.concat(parts)).digest();
  const stage1 = sha1(Buffer.from(password, 'utf8'));
  const stage2 = sha1(stage1);
  const mask = sha1(scramble, stage2);
  const expected = Buffer.alloc(20);
  for (let index = 0; index < 20; index += 1) expected[index] = (stage1[index] ?? 0) ^ (mask[index] ?? 0);
  return token.length === 20 && expected.equals(token);
}

function errorPacket(error: ErrorAnswer): PacketInstance {
  const length = 4 + 1 + 2 + 6 + Buffer.byteLength(error.message, 'utf8');
  const packet = new Packet(0, Buffer.alloc(length), 0, length);
  packet.offset = 4;
  packet.writeInt8(0xff);
  packet.writeInt16(error.errno);
  packet.writeString(`#${error.sqlState}`, 'utf8');
  packet.writeString(error.message, 'utf8');
  return packet;
}

function columnPacket(column: Column): ColumnPacket {
  const numeric = column.type === 'int' || column.type === 'decimal';
  return {
    catalog: 'def',
    schema: '',
    table: '',
    orgTable: '',
    name: column.name,
    orgName: column.name,
    characterSet: numeric ? BINARY : UTF8_GENERAL_CI,
    columnLength: numeric ? 21 : 1024,
    columnType: TYPE[column.type],
    flags: 0,
    decimals: column.type === 'decimal' ? 3 : 0,
  };
}

function textValue(value: Value): string | null {
  if (value === null) return null;
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

/** @@datadir of every emulated server: no directory here, as for a server on another machine */
export const EMULATED_DATADIR = '/nonexistent/emulated-mysql/data/';

function versionMajor(version: string): number {
  return Number(/^(\d+)/.exec(version)?.[1] ?? 0);
}

function typeOf(value: Value): Column['type'] {
  if (typeof value === 'number') return 'int';
  if (typeof value === 'string' && /^\d+\.\d{3}$/.test(value)) return 'decimal';
  if (value !== null && typeof value === 'object') return 'json';
  return 'string';
}

// ---- SQL helpers ----------------------------------------------------------------------------------------

/** Comments and the trailing semicolon removed, whitespace collapsed. */
export function normalize(sql: string): string {
  return sql
    .replace(/\/\*[\s\S]*?\*\//g, ' ')
    .replace(/;\s*$/, '')
    .replace(/\s+/g, ' ')
    .trim();
}

function splitList(list: string): string[] {
  const items: string[] = [];
  let depth = 0;
  let quote: string | undefined;
  let current = '';
  for (const character of list) {
    if (quote !== undefined) {
      if (character === quote) quote = undefined;
    } else if (character === "'" || character === '"' || character === '`') {
      quote = character;
    } else if (character === '(') {
      depth += 1;
    } else if (character === ')') {
      depth -= 1;
    } else if (character === ',' && depth === 0) {
      items.push(current.trim());
      current = '';
      continue;
    }
    current += character;
  }
  if (current.trim() !== '') items.push(current.trim());
  return items;
}

function parseItem(item: string): { expression: string; name: string } {
  const aliased = /^(.+?)\s+AS\s+[`'"]?(\w+)[`'"]?$/i.exec(item);
  return aliased === null ? { expression: item, name: item } : { expression: aliased[1] ?? item, name: aliased[2] ?? item };
}

/** A quoted string or name as the server reads it (sql_mode without NO_BACKSLASH_ESCAPES): `''` and `\'` are a quote. */
function unquote(text: string): string {
  const trimmed = text.trim();
  const quote = trimmed[0];
  if (trimmed.length < 2 || (quote !== "'" && quote !== '"' && quote !== '`') || !trimmed.endsWith(quote)) return trimmed;
  return trimmed.slice(1, -1).replace(new RegExp(`\\\\(.)|${quote}${quote}`, 'g'), (_, escaped: string | undefined) => escaped ?? quote);
}

function like(name: string, pattern: string): boolean {
  const expression = pattern.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/%/g, '.*').replace(/_/g, '.');
  return new RegExp(`^${expression}$`, 'i').test(name);
}

function syntaxError(statement: string): Answer {
  const near = statement.replace(/^\S+\s*/, '');
  return {
    kind: 'error',
    error: {
      errno: 1064,
      sqlState: '42000',
      message: `You have an error in your SQL syntax; check the manual that corresponds to your MySQL server version for the right syntax to use near '${near}' at line 1`,
    },
  };
}

function accessDenied(privileges: readonly string[]): Answer {
  return { kind: 'error', error: denied(privileges) };
}

function denied(privileges: readonly string[]): ErrorAnswer {
  return { errno: 1227, sqlState: '42000', message: `Access denied; you need (at least one of) the ${privileges.join(', ')} privilege(s) for this operation` };
}

function noSuchTable(table: string): ErrorAnswer {
  return { errno: 1146, sqlState: '42S02', message: `Table '${table}' doesn't exist` };
}

function unknownColumn(column: string, where: string): ErrorAnswer {
  return { errno: 1054, sqlState: '42S22', message: `Unknown column '${column}' in '${where}'` };
}

function deprecated(what: string, instead: string): Warning {
  return { level: 'Warning', code: 1287, message: `${what} is deprecated and will be removed in a future release. Please use ${instead} instead` };
}

const PROCESSLIST_TYPES: Record<string, Column['type']> = { ID: 'int', USER: 'string', HOST: 'string', DB: 'string', COMMAND: 'string', TIME: 'int', STATE: 'string', INFO: 'string' };

/** SHOW REPLICA STATUS columns of MySQL 8.0.22+ in order (8.0 manual, SHOW REPLICA STATUS). */
const REPLICA_STATUS_COLUMNS = [
  'Replica_IO_State', 'Source_Host', 'Source_User', 'Source_Port', 'Connect_Retry', 'Source_Log_File', 'Read_Source_Log_Pos',
  'Relay_Log_File', 'Relay_Log_Pos', 'Relay_Source_Log_File', 'Replica_IO_Running', 'Replica_SQL_Running', 'Replicate_Do_DB',
  'Replicate_Ignore_DB', 'Replicate_Do_Table', 'Replicate_Ignore_Table', 'Replicate_Wild_Do_Table', 'Replicate_Wild_Ignore_Table',
  'Last_Errno', 'Last_Error', 'Skip_Counter', 'Exec_Source_Log_Pos', 'Relay_Log_Space', 'Until_Condition', 'Until_Log_File',
  'Until_Log_Pos', 'Source_SSL_Allowed', 'Source_SSL_CA_File', 'Source_SSL_CA_Path', 'Source_SSL_Cert', 'Source_SSL_Cipher',
  'Source_SSL_Key', 'Seconds_Behind_Source', 'Source_SSL_Verify_Server_Cert', 'Last_IO_Errno', 'Last_IO_Error', 'Last_SQL_Errno',
  'Last_SQL_Error', 'Replicate_Ignore_Server_Ids', 'Source_Server_Id', 'Source_UUID', 'Source_Info_File', 'SQL_Delay',
  'SQL_Remaining_Delay', 'Replica_SQL_Running_State', 'Source_Retry_Count', 'Source_Bind', 'Last_IO_Error_Timestamp',
  'Last_SQL_Error_Timestamp', 'Source_SSL_Crl', 'Source_SSL_Crlpath', 'Retrieved_Gtid_Set', 'Executed_Gtid_Set', 'Auto_Position',
  'Replicate_Rewrite_DB', 'Channel_Name', 'Source_TLS_Version', 'Source_public_key_path', 'Get_Source_public_key', 'Network_Namespace',
];

const REPLICA_INT_COLUMNS = new Set([
  'Source_Port', 'Connect_Retry', 'Read_Source_Log_Pos', 'Relay_Log_Pos', 'Last_Errno', 'Skip_Counter', 'Exec_Source_Log_Pos',
  'Relay_Log_Space', 'Until_Log_Pos', 'Seconds_Behind_Source', 'Last_IO_Errno', 'Last_SQL_Errno', 'Source_Server_Id', 'SQL_Delay',
  'SQL_Remaining_Delay', 'Source_Retry_Count', 'Auto_Position', 'Get_Source_public_key',
]);

/** The SHOW SLAVE STATUS (and 5.7) spelling of a column: Source -> Master, Replica -> Slave. */
function masterSpelling(name: string): string {
  if (name === 'Source_public_key_path') return 'Master_public_key_path';
  if (name === 'Get_Source_public_key') return 'Get_master_public_key';
  return name.replace(/Source/g, 'Master').replace(/Replica(?=_)/g, 'Slave');
}
