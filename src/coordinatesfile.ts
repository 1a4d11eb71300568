/**
 * coordinates_file: the coordinates as JSON, written and fsynced before freeze returns, so that the file
 * is inside the snapshot (next to the data it describes), with the statements that seed a replica.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Coordinates } from './coordinates';
import type { LockMode } from './lockmodes';

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

/** Atomic (a new file renamed into place, never through a symlink) and durable (file and directory fsynced). */
export function writeCoordinatesFile(file: string, record: CoordinatesRecord): void {
  const directory = path.dirname(file);
  const temporary = path.join(directory, `.${path.basename(file)}.${process.pid}.tmp`);
  const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = fs.constants;
  fs.rmSync(temporary, { force: true });
  const fd = fs.openSync(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o640);
  try {
    fs.writeSync(fd, `${JSON.stringify(record, null, 2)}\n`);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(temporary, file);
  const directoryFd = fs.openSync(directory, fs.constants.O_RDONLY);
  try {
    fs.fsyncSync(directoryFd);
  } finally {
    fs.closeSync(directoryFd);
  }
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
  };
}
