/**
 * replica_sql_thread = stop: stop the replication applier before locking (multi-threaded appliers with
 * preserve_commit_order can deadlock against FTWRL: MySQL bugs #87489, #95863), but only at a moment when
 * it holds no temporary tables (a snapshot taken then would lose them), as XtraBackup's
 * --safe-slave-backup does. The statements that start it again are returned for the holder to run.
 */
import type { RowDataPacket } from 'mysql2/promise';
import { firstSupported, parseReplicaStatus, replicaStatusStatements } from './coordinates';
import type { Session } from './mysql';
import { sleep } from './processes';

export interface StoppedApplier {
  /** statements that start the stopped appliers again */
  restart: string[];
  channels: string[];
  /** temporary tables stayed open until the deadline: the appliers were left running */
  leftRunning: boolean;
}

function quoteName(name: string): string {
  return `'${name.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

function applierStatements(isMariaDB: boolean, channel: string, verb: 'STOP' | 'START'): string {
  if (isMariaDB) return `${verb} SLAVE ${channel === '' ? '' : `${quoteName(channel)} `}SQL_THREAD`;
  return `${verb} REPLICA SQL_THREAD${channel === '' ? '' : ` FOR CHANNEL ${quoteName(channel)}`}`;
}

async function openTemporaryTables(session: Session): Promise<number> {
  const [rows] = await session.connection.query<RowDataPacket[]>("SHOW GLOBAL STATUS LIKE '%open_temp_tables'");
  return rows.reduce((total, row) => total + Number(row['Value'] ?? 0), 0);
}

/**
 * Stops every running applier and waits until no replicated temporary table is open (starting it
 * again for a moment between checks). Returns undefined if the server is no replica or none runs.
 */
export async function stopAppliers(session: Session, deadline: number): Promise<StoppedApplier | undefined> {
  const { isMariaDB } = session.server;
  const { rows } = await firstSupported(session, replicaStatusStatements(isMariaDB));
  const running = parseReplicaStatus(rows).filter((channel) => channel.sqlRunning).map((channel) => channel.channel);
  if (running.length === 0) return undefined;
  const stop = async (): Promise<void> => {
    for (const channel of running) await session.connection.query(applierStatements(isMariaDB, channel, 'STOP'));
  };
  const restart = running.map((channel) => applierStatements(isMariaDB, channel, 'START'));
  await stop();
  while ((await openTemporaryTables(session)) > 0) {
    for (const statement of restart) await session.connection.query(statement);
    if (Date.now() >= deadline) return { restart: [], channels: running, leftRunning: true };
    await sleep(1000);
    await stop();
  }
  return { restart, channels: running, leftRunning: false };
}
