/**
 * coordinates_file: the coordinates as JSON, written and fsynced before freeze returns, so that the file
 * is inside the snapshot (next to the data it describes), with the statements that seed a replica.
 */
import os = require('node:os');
import type { Coordinates } from '../server/coordinates';
import { formatPosition, grastate, joinSteps } from '../server/galera';
import type { LockMode } from '../config/settings';
import { writeFileAtomic } from './statedir';

export interface CoordinatesRecord {
  takenAt: string;
  host: string;
  server: string;
  lockMode: LockMode;
  /** whether the lock stopped commits, so that the snapshot is exactly at these coordinates */
  exact: boolean;
  coordinates: Coordinates;
  /** statements that make a new replica of THIS server continue from the snapshot */
  seedReplica: string[];
  /** a Galera node: the position (uuid:seqno), the grastate.dat a node restored from the snapshot needs, and how it joins */
  galera?: { position: string; grastate: string; join: string[] };
}

export function seedStatements(coordinates: Coordinates, isMariaDB: boolean): string[] {
  if (coordinates.gtid !== null) {
    return isMariaDB
      ? [`SET GLOBAL gtid_slave_pos = '${coordinates.gtid}';`, "CHANGE MASTER TO MASTER_HOST = '...', MASTER_USE_GTID = slave_pos;"]
      : [
          'RESET BINARY LOGS AND GTIDS; -- RESET MASTER before MySQL 8.4',
          `SET GLOBAL gtid_purged = '${coordinates.gtid}';`,
          "CHANGE REPLICATION SOURCE TO SOURCE_HOST = '...', SOURCE_AUTO_POSITION = 1;",
        ];
  }
  if (coordinates.binlog === null) return [];
  const { file, position } = coordinates.binlog;
  return isMariaDB
    ? [`CHANGE MASTER TO MASTER_HOST = '...', MASTER_LOG_FILE = '${file}', MASTER_LOG_POS = ${position};`]
    : [`CHANGE REPLICATION SOURCE TO SOURCE_HOST = '...', SOURCE_LOG_FILE = '${file}', SOURCE_LOG_POS = ${position};`];
}

/** Atomic and durable: inside the snapshot, whole, before freeze returns. */
export function writeCoordinatesFile(file: string, record: CoordinatesRecord): void {
  writeFileAtomic(file, `${JSON.stringify(record, null, 2)}\n`, { mode: 0o640, durable: true });
}

export function coordinatesRecord(options: { server: string; isMariaDB: boolean; lockMode: LockMode; exact: boolean; coordinates: Coordinates }): CoordinatesRecord {
  return {
    takenAt: new Date().toISOString(),
    host: os.hostname(),
    server: options.server,
    lockMode: options.lockMode,
    exact: options.exact,
    coordinates: options.coordinates,
    seedReplica: seedStatements(options.coordinates, options.isMariaDB),
    ...(options.coordinates.galera === undefined
      ? {}
      : { galera: { position: formatPosition(options.coordinates.galera), grastate: grastate(options.coordinates.galera), join: joinSteps(options.coordinates.galera) } }),
  };
}
