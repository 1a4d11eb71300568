/**
 * Where the snapshot stands in the replication streams: this server's binary-log position and GTID, and,
 * on a replica, the EXECUTED position of every source channel (what a replica seeded from the snapshot
 * continues from). Statements are chosen by trying and falling back on a syntax error, since the
 * spellings differ between MySQL, MariaDB and their versions; columns are matched by name, both spellings.
 */
import type { RowDataPacket } from 'mysql2/promise';
import { formatPosition, GALERA_LOCKED_STATEMENT, parseGaleraLocked, readGaleraLocked, type GaleraLocked, type GaleraPosition, type GaleraState } from './galera';
import { printable } from './printable';
import type { Session } from './session';
import { ER_PARSE_ERROR, firstAccepted } from './statements';

export interface ReplicaChannel {
  /** MySQL Channel_Name / MariaDB Connection_name; '' is the default channel */
  channel: string;
  sourceHost: string | null;
  sourcePort: number | null;
  /** Relay_Source_Log_File / Relay_Master_Log_File: the source's binlog that holds the last EXECUTED event */
  sourceLogFile: string | null;
  /** Exec_Source_Log_Pos / Exec_Master_Log_Pos */
  sourceLogPosition: number | null;
  /** MySQL Executed_Gtid_Set, MariaDB gtid_slave_pos (for this channel's domain) */
  gtid: string | null;
  /** MariaDB Using_Gtid (No, Slave_Pos, Current_Pos); MySQL Auto_Position */
  usingGtid: string | null;
  sqlRunning: boolean;
  ioRunning: boolean;
}

export interface Coordinates {
  /** null: the server has no binary log (nothing to replicate from this snapshot directly) */
  binlog: { file: string; position: number } | null;
  /** this server's executed GTIDs: MySQL gtid_executed, MariaDB gtid_binlog_pos */
  gtid: string | null;
  /** MariaDB gtid_slave_pos, when set (the position a replica of a replica continues from) */
  gtidSlavePos?: string | null;
  /** one entry per replication channel; absent when the server is no replica */
  replication?: ReplicaChannel[];
  /** set when the replica status could not be read (e.g. a missing privilege): the reason */
  replicationUnknown?: string;
  /** a Galera node: its cluster state uuid and the seqno of its last committed write-set, under the lock */
  galera?: GaleraPosition;
  /** a Galera node: wsrep_local_state under the lock (2, Donor/Desynced, once the lock has desynced it) */
  galeraState?: GaleraState | null;
}

const ER_SPECIFIC_ACCESS_DENIED = 1227;

type Row = Record<string, unknown>;

/** Runs the first statement the server understands, falling back on a syntax error only. */
export function firstSupported(session: Session, statements: readonly string[]): Promise<{ statement: string; rows: Row[] }> {
  return firstAccepted(session, statements, SYNTAX_ERROR);
}

const SYNTAX_ERROR: ReadonlySet<number> = new Set([ER_PARSE_ERROR]);

function errno(error: unknown): unknown {
  return (error as { errno?: unknown }).errno;
}

/** Statements for the binary-log status, the likely one first (one round trip in the usual case). */
export function binlogStatusStatements(isMariaDB: boolean): string[] {
  return isMariaDB
    ? ['SHOW MASTER STATUS', 'SHOW BINLOG STATUS']
    : ['SHOW BINARY LOG STATUS', 'SHOW MASTER STATUS'];
}

export function replicaStatusStatements(isMariaDB: boolean): string[] {
  return isMariaDB
    ? ['SHOW ALL SLAVES STATUS', 'SHOW REPLICA STATUS', 'SHOW SLAVE STATUS']
    : ['SHOW REPLICA STATUS', 'SHOW SLAVE STATUS'];
}

/**
 * Whether the coordinates must include replica channels: asked by freeze before locking, so that a
 * server that is no replica gets no replica-status statements while writers are blocked.
 */
export type ReplicationProbe = { kind: 'replica' } | { kind: 'none' } | { kind: 'unknown'; reason: string };

export async function probeReplication(session: Session): Promise<ReplicationProbe> {
  try {
    const { rows } = await firstSupported(session, replicaStatusStatements(session.server.isMariaDB));
    return rows.length > 0 ? { kind: 'replica' } : { kind: 'none' };
  } catch (error) {
    if (errno(error) !== ER_SPECIFIC_ACCESS_DENIED) throw error;
    if (session.server.isMariaDB && !(await replicaThreadsRunning(session))) return { kind: 'none' };
    const privilege = session.server.isMariaDB ? 'REPLICA MONITOR' : 'REPLICATION CLIENT';
    return { kind: 'unknown', reason: `cannot read the replica status: the account lacks ${privilege}` };
  }
}

/** `galera`: the server is a Galera node (freeze asked before locking): its position is read as well. */
export async function readCoordinates(session: Session, replication: ReplicationProbe = { kind: 'replica' }, galera = false): Promise<Coordinates> {
  const coordinates = session.server.isMariaDB ? await readMariadbPosition(session, galera) : await readMysqlPosition(session);
  if (galera && coordinates.galeraState === undefined) await addGalera(session, coordinates);
  await addReplication(session, coordinates, replication);
  return coordinates;
}

async function addGalera(session: Session, coordinates: Coordinates): Promise<void> {
  setGalera(coordinates, await readGaleraLocked(session));
}

function setGalera(coordinates: Coordinates, { position, state }: GaleraLocked): void {
  if (position !== null) coordinates.galera = position;
  coordinates.galeraState = state;
}

const MARIADB_GTID = 'SELECT @@global.gtid_binlog_pos AS binlogPos, @@global.gtid_slave_pos AS slavePos';

/**
 * MariaDB keeps the GTID positions in variables, apart from the binary-log status. A session that allows
 * several statements per query (the holder's, while writers wait) reads both in one round trip.
 */
async function readMariadbPosition(session: Session, galera: boolean): Promise<Coordinates> {
  const [usual] = binlogStatusStatements(true);
  if (session.multipleStatements) {
    try {
      const [results] = await session.connection.query<RowDataPacket[][]>(`${usual}; ${MARIADB_GTID}${galera ? `; ${GALERA_LOCKED_STATEMENT}` : ''}`);
      const coordinates = mariadbCoordinates(results[0] ?? [], results[1]?.[0]);
      if (galera) setGalera(coordinates, parseGaleraLocked(results[2] ?? []));
      return coordinates;
    } catch (error) {
      if (errno(error) !== ER_PARSE_ERROR) throw error; // the other spelling, one statement at a time
    }
  }
  const status = await firstSupported(session, binlogStatusStatements(true));
  const [rows] = await session.connection.query<RowDataPacket[]>(MARIADB_GTID);
  return mariadbCoordinates(status.rows, rows[0]);
}

function mariadbCoordinates(status: readonly Row[], gtid: Row | undefined): Coordinates {
  return { binlog: parseBinlogStatus(status), gtid: text(gtid?.['binlogPos']), gtidSlavePos: text(gtid?.['slavePos']) };
}

async function readMysqlPosition(session: Session): Promise<Coordinates> {
  const status = await firstSupported(session, binlogStatusStatements(false));
  return { binlog: parseBinlogStatus(status.rows), gtid: text(status.rows[0]?.['Executed_Gtid_Set']) ?? (await readMysqlGtidExecuted(session)) };
}

async function readMysqlGtidExecuted(session: Session): Promise<string | null> {
  try {
    const [rows] = await session.connection.query<RowDataPacket[]>('SELECT @@global.gtid_executed AS gtid');
    return text(rows[0]?.['gtid']);
  } catch {
    return null;
  }
}

async function addReplication(session: Session, coordinates: Coordinates, probe: ReplicationProbe): Promise<void> {
  if (probe.kind === 'none') return;
  if (probe.kind === 'unknown') {
    coordinates.replicationUnknown = probe.reason;
    return;
  }
  let rows: Row[];
  try {
    rows = (await firstSupported(session, replicaStatusStatements(session.server.isMariaDB))).rows;
  } catch (error) {
    if (errno(error) !== ER_SPECIFIC_ACCESS_DENIED) throw error;
    if (session.server.isMariaDB && !(await replicaThreadsRunning(session))) return; // no replica to describe
    const privilege = session.server.isMariaDB ? 'REPLICA MONITOR' : 'REPLICATION CLIENT';
    coordinates.replicationUnknown = `cannot read the replica status: the account lacks ${privilege}`;
    return;
  }
  const channels = parseReplicaStatus(rows);
  if (channels.length > 0) coordinates.replication = channels;
}

/** MariaDB's Slaves_running status needs no privilege: whether any replication thread runs. */
async function replicaThreadsRunning(session: Session): Promise<boolean> {
  const [rows] = await session.connection.query<RowDataPacket[]>("SHOW GLOBAL STATUS LIKE 'Slaves_running'");
  return Number(rows[0]?.['Value'] ?? 1) > 0;
}

export function parseBinlogStatus(rows: readonly Row[]): Coordinates['binlog'] {
  const row = rows[0];
  if (row === undefined || text(row['File']) === null) return null;
  return { file: String(row['File']), position: Number(row['Position']) };
}

/** One entry per channel, whichever spelling the server uses (Source_ / Master_, Replica_ / Slave_). */
export function parseReplicaStatus(rows: readonly Row[]): ReplicaChannel[] {
  return rows.map((row) => {
    const pick = (...names: string[]): unknown => names.map((name) => row[name]).find((value) => value !== undefined);
    const autoPosition = pick('Auto_Position');
    return {
      channel: text(pick('Channel_Name', 'Connection_name', 'Connection_Name')) ?? '',
      sourceHost: text(pick('Source_Host', 'Master_Host')),
      sourcePort: numberOrNull(pick('Source_Port', 'Master_Port')),
      sourceLogFile: text(pick('Relay_Source_Log_File', 'Relay_Master_Log_File')),
      sourceLogPosition: numberOrNull(pick('Exec_Source_Log_Pos', 'Exec_Master_Log_Pos')),
      gtid: channelGtid(row),
      usingGtid: text(pick('Using_Gtid')) ?? (autoPosition === undefined ? null : Number(autoPosition) === 1 ? 'Auto_Position' : 'No'),
      sqlRunning: text(pick('Replica_SQL_Running', 'Slave_SQL_Running')) === 'Yes',
      ioRunning: text(pick('Replica_IO_Running', 'Slave_IO_Running')) === 'Yes',
    };
  });
}

/** Coordinates under LOCK INSTANCE FOR BACKUP (MySQL 8.0+): performance_schema.log_status, then replicas. */
export async function readCoordinatesFromLogStatus(session: Session, replication: ReplicationProbe = { kind: 'replica' }, galera = false): Promise<Coordinates> {
  const [rows] = await session.connection.query<RowDataPacket[]>('SELECT LOCAL FROM performance_schema.log_status');
  const coordinates: Coordinates = parseLogStatus(rows[0]);
  if (galera) await addGalera(session, coordinates);
  await addReplication(session, coordinates, replication);
  return coordinates;
}

/**
 * A channel's executed GTIDs. MySQL: Executed_Gtid_Set. MariaDB's SHOW ALL SLAVES STATUS repeats the
 * server-wide gtid_slave_pos (every domain) in each row, and Gtid_IO_Pos also lists the domains the
 * receiver was started from: keep the domains whose GTIDs this channel's source wrote (a GTID is
 * domain-server-sequence; Master_Server_Id names the source), or all of Gtid_IO_Pos's if none is
 * (a source that only relays other servers' domains).
 */
function channelGtid(row: Row): string | null {
  const executed = text(row['Executed_Gtid_Set']);
  if (executed !== null) return executed;
  const slavePos = text(row['Gtid_Slave_Pos']);
  const ioPos = text(row['Gtid_IO_Pos']);
  if (slavePos === null || ioPos === null) return slavePos;
  const received = ioPos.split(',').map((gtid) => gtid.trim().split('-'));
  const sourceId = text(row['Master_Server_Id']);
  const fromSource = received.filter((parts) => parts[1] === sourceId);
  const domains = new Set((fromSource.length > 0 ? fromSource : received).map((parts) => parts[0]));
  const own = slavePos.split(',').map((gtid) => gtid.trim()).filter((gtid) => domains.has(gtid.split('-')[0]));
  return own.length > 0 ? own.join(',') : null;
}

/**
 * Coordinates from MySQL's performance_schema.log_status (used with LOCK INSTANCE FOR BACKUP, which
 * does not stop commits: the table is read under the server's own brief lock, so its parts agree).
 */
export function parseLogStatus(row: Row | undefined): Pick<Coordinates, 'binlog' | 'gtid'> {
  const local = parseJson(row?.['LOCAL']);
  const file = text(local?.['binary_log_file']);
  return {
    binlog: file === null ? null : { file, position: Number(local?.['binary_log_position']) },
    gtid: text(local?.['gtid_executed']),
  };
}

function parseJson(value: unknown): Record<string, unknown> | null {
  if (value === null || value === undefined) return null;
  if (typeof value === 'object') return value as Record<string, unknown>;
  try {
    return JSON.parse(String(value)) as Record<string, unknown>;
  } catch {
    return null;
  }
}

function text(value: unknown): string | null {
  if (value === null || value === undefined) return null;
  const string = String(value).replace(/\s*\n\s*/g, '');
  return string === '' ? null : string;
}

function numberOrNull(value: unknown): number | null {
  if (value === null || value === undefined || value === '') return null;
  const number = Number(value);
  return Number.isFinite(number) ? number : null;
}

/** A one-line human summary for the log and stdout. */
export function describeCoordinates(coordinates: Coordinates | undefined): string {
  if (coordinates === undefined) return 'no coordinates';
  const parts = [coordinates.binlog ? `binlog ${coordinates.binlog.file}:${coordinates.binlog.position}` : 'no binary log'];
  if (coordinates.gtid) parts.push(`gtid ${coordinates.gtid}`);
  if (coordinates.galera) parts.push(`galera ${formatPosition(coordinates.galera)}`);
  for (const channel of coordinates.replication ?? []) {
    const name = channel.channel === '' ? 'source' : `source '${channel.channel}'`;
    const position = channel.sourceLogFile ? `${channel.sourceLogFile}:${channel.sourceLogPosition}` : 'no position';
    parts.push(`${name} ${channel.sourceHost ?? '?'} executed ${position}${channel.gtid ? ` gtid ${channel.gtid}` : ''}`);
  }
  return printable(parts.join(', '));
}
