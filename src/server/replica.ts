/**
 * replica_sql_thread = stop: stop the replication applier before locking (multi-threaded appliers with
 * preserve_commit_order can deadlock against FTWRL: MySQL bugs #87489, #95863), but only at a moment when
 * it holds no temporary tables (a snapshot taken then would lose them), as XtraBackup's
 * --safe-slave-backup does. The statements that start it again are returned for the holder to run.
 */
import type { RowDataPacket } from 'mysql2/promise';
import { firstSupported, parseReplicaStatus, replicaStatusStatements } from './coordinates';
import { serverError, type Session } from './session';
import { sleep, type Deadline } from '../clock';

export interface StoppedApplier {
  /** statements that start the stopped appliers again */
  restart: string[];
  channels: string[];
  /** temporary tables stayed open until the deadline: the appliers were left running */
  leftRunning: boolean;
}

/**
 * A channel name as a string literal. A quote is doubled, which every sql_mode reads the same way; a
 * backslash is an escape character unless sql_mode has NO_BACKSLASH_ESCAPES, so it is doubled only then.
 */
export function quoteName(name: string, backslashEscapes: boolean): string {
  return `'${(backslashEscapes ? name.replaceAll('\\', '\\\\') : name).replaceAll("'", "''")}'`;
}

/** The applier statement in each spelling the server may understand, the likely one first. */
function applierStatements(isMariaDB: boolean, channel: string, verb: 'STOP' | 'START', backslashEscapes: boolean): string[] {
  if (isMariaDB) return [`${verb} SLAVE ${channel === '' ? '' : `${quoteName(channel, backslashEscapes)} `}SQL_THREAD`];
  // FOR CHANNEL '' names the default channel; without FOR CHANNEL, MySQL acts on every channel.
  const target = ` FOR CHANNEL ${quoteName(channel, backslashEscapes)}`;
  return [`${verb} REPLICA SQL_THREAD${target}`, `${verb} SLAVE SQL_THREAD${target}`];
}

async function escapesBackslashes(session: Session): Promise<boolean> {
  const [rows] = await session.connection.query<RowDataPacket[]>('SELECT @@SESSION.sql_mode AS mode');
  return !String(rows[0]?.['mode'] ?? '').toUpperCase().split(',').includes('NO_BACKSLASH_ESCAPES');
}

async function openTemporaryTables(session: Session): Promise<number> {
  const [rows] = await session.connection.query<RowDataPacket[]>("SHOW GLOBAL STATUS LIKE '%open_temp_tables'");
  return rows.reduce((total, row) => total + Number(row['Value'] ?? 0), 0);
}

/**
 * Stops every running applier and waits until no replicated temporary table is open (starting it
 * again for a moment between checks). Returns undefined if the server is no replica or none runs.
 */
export async function stopAppliers(session: Session, deadline: Deadline): Promise<StoppedApplier | undefined> {
  try {
    return await stopAppliersUntilSafe(session, deadline);
  } catch (error) {
    throw serverError(error, 'stopping the replica applier (replica_sql_thread = stop)', session.server.account);
  }
}

async function stopAppliersUntilSafe(session: Session, deadline: Deadline): Promise<StoppedApplier | undefined> {
  const { isMariaDB } = session.server;
  const { rows } = await firstSupported(session, replicaStatusStatements(isMariaDB));
  const running = parseReplicaStatus(rows).filter((channel) => channel.sqlRunning).map((channel) => channel.channel);
  if (running.length === 0) return undefined;
  // The holder runs the restarts on its own session, whose sql_mode is the same (the global one, as set
  // by the same account's init_connect). Only a name with a backslash needs to know it.
  const backslashEscapes = running.some((channel) => channel.includes('\\')) ? await escapesBackslashes(session) : true;
  const stops = running.map((channel) => applierStatements(isMariaDB, channel, 'STOP', backslashEscapes));
  const starts = running.map((channel) => applierStatements(isMariaDB, channel, 'START', backslashEscapes));
  const runAll = async (statements: string[][]): Promise<string[]> => {
    const used: string[] = [];
    for (const spellings of statements) used.push((await firstSupported(session, spellings)).statement);
    return used;
  };
  const stopped = await runAll(stops);
  while ((await openTemporaryTables(session)) > 0) {
    await runAll(starts);
    if (deadline.passed()) return { restart: [], channels: running, leftRunning: true };
    await sleep(1000);
    await runAll(stops);
  }
  // The holder runs these verbatim after its release: in the spelling this server understood.
  const spelling = stopped[0]?.includes(' SLAVE ') === true && !isMariaDB ? 1 : 0;
  const restart = starts.map((spellings) => spellings[spelling] ?? spellings[0] ?? '');
  return { restart, channels: running, leftRunning: false };
}
