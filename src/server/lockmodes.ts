/**
 * The lock modes: what each takes and releases, which servers offer it, and which one `auto` picks.
 *
 * | mode          | blocks                                              | the snapshot is                         |
 * |---------------|-----------------------------------------------------|-----------------------------------------|
 * | ftwrl         | all writes, commits and DDL                         | exactly at the recorded coordinates     |
 * | backup_stage  | commits, DDL, non-transactional writes (MariaDB)    | exactly at the recorded coordinates     |
 * | backup_locks  | DDL, non-transactional writes (+ binlog on 5.7)     | exact on Percona 5.7 with LOCK BINLOG;  |
 * |               |                                                     | crash-consistent on 8.x                 |
 * | instance      | DDL only; InnoDB commits go on                      | crash-consistent; the recorded          |
 * |               |                                                     | coordinates are a lower bound           |
 */
import type { LockMode, LockModeSetting } from '../config/settings';
import { backupStagePausesGalera } from './galera';
import type { ServerInfo } from './session';

export type { LockMode, LockModeSetting };

/** What freeze learns about the server to choose and check a mode. */
export interface ServerTraits extends Pick<ServerInfo, 'version' | 'isMariaDB'> {
  /** Percona Server's have_backup_locks = YES */
  backupLocks: boolean;
  /** a Galera node (wsrep_on with a provider): the lock must also pause its replication (src/server/galera.ts) */
  galera?: boolean;
}

export interface LockPlan {
  mode: LockMode;
  /** seconds all lock statements together may wait on the server */
  boundSeconds: number;
  /** run in order; each bounded on the server */
  lock: string[];
  /** run in order to release */
  unlock: string[];
  /** where the coordinates come from while locked */
  coordinatesFrom: 'status' | 'log_status';
  /** whether the lock stops commits (the coordinates are then exact) */
  exact: boolean;
}

export function versionNumbers(version: string): [number, number, number] {
  const match = /^(\d+)\.(\d+)\.(\d+)/.exec(version);
  return match === null ? [0, 0, 0] : [Number(match[1]), Number(match[2]), Number(match[3])];
}

function atLeast(version: string, major: number, minor: number): boolean {
  const [actualMajor, actualMinor] = versionNumbers(version);
  return actualMajor > major || (actualMajor === major && actualMinor >= minor);
}

/** Why a mode cannot be used on this server, or undefined if it can. */
export function unsupportedReason(mode: LockMode, server: ServerTraits): string | undefined {
  switch (mode) {
    case 'ftwrl':
      return undefined;
    case 'backup_stage':
      if (!server.isMariaDB || !atLeast(server.version, 10, 4)) return `BACKUP STAGE needs MariaDB 10.4 or later (this is ${server.version})`;
      if (server.galera === true && !backupStagePausesGalera(versionNumbers(server.version))) {
        return `on a Galera node BACKUP STAGE pauses replication only from MariaDB 10.5.25, 10.6.18, 10.11.8, 11.4.2 (MDEV-33211; this is ${server.version}): before that the appliers commit under it`;
      }
      return undefined;
    case 'backup_locks':
      return server.backupLocks ? undefined : `backup locks need Percona Server with have_backup_locks (this is ${server.version})`;
    case 'instance':
      return !server.isMariaDB && atLeast(server.version, 8, 0) ? undefined : `LOCK INSTANCE FOR BACKUP needs MySQL 8.0 or later (this is ${server.version})`;
  }
}

/** The mode `auto` takes: the gentlest lock that still gives a snapshot at exactly the recorded coordinates. */
export function chooseMode(server: ServerTraits): { mode: LockMode; reason: string } {
  if (server.galera === true && server.isMariaDB) {
    return unsupportedReason('backup_stage', server) === undefined
      ? { mode: 'backup_stage', reason: 'Galera node: BACKUP STAGE desyncs and pauses the node at BLOCK_DDL, then BLOCK_COMMIT stops its commits while running transactions go on' }
      : { mode: 'ftwrl', reason: 'Galera node on a MariaDB whose BACKUP STAGE does not pause replication (before MDEV-33211): FLUSH TABLES WITH READ LOCK desyncs and pauses the node' };
  }
  if (server.galera === true) {
    return { mode: 'ftwrl', reason: 'Galera node: FLUSH TABLES WITH READ LOCK desyncs and pauses the node, so that its position stands still under the lock' };
  }
  if (unsupportedReason('backup_stage', server) === undefined) {
    return { mode: 'backup_stage', reason: 'MariaDB 10.4+: BACKUP STAGE BLOCK_COMMIT stops commits, DDL and non-transactional writes while running transactions go on' };
  }
  if (server.backupLocks && !atLeast(server.version, 8, 0)) {
    return { mode: 'backup_locks', reason: 'Percona Server 5.7: LOCK TABLES FOR BACKUP and LOCK BINLOG FOR BACKUP stop DDL, non-transactional writes and binlog commits only' };
  }
  if (!server.isMariaDB) {
    return { mode: 'ftwrl', reason: 'MySQL: LOCK INSTANCE FOR BACKUP and 8.x backup locks let InnoDB commit during the snapshot, so it would not match the recorded coordinates; set lock_mode = instance to accept that' };
  }
  return { mode: 'ftwrl', reason: 'MariaDB before 10.4 has no backup stages' };
}

/**
 * The statements of a mode. `boundSeconds` bounds each lock statement on the server where the dialect
 * allows (MariaDB's max_statement_time; everywhere the session's lock_wait_timeout is set as well);
 * `tag` marks them as ours in the processlist.
 */
export const BOUND_TOKEN = '{bound}';

/** A plan statement with the time left of the bound filled in (at least 0.05 s). */
export function boundStatement(statement: string, remainingSeconds: number): string {
  return statement.replace(BOUND_TOKEN, Math.max(0.05, remainingSeconds).toFixed(3));
}

export function lockPlan(mode: LockMode, server: ServerTraits, boundSeconds: number, tag: string): LockPlan {
  // {bound} is replaced by the holder with what is left of boundSeconds when each statement starts, so
  // that all of a mode's statements together wait no longer than lock_wait_timeout (MariaDB only: MySQL
  // has no per-statement bound for these; there freeze's client-side bound caps the total).
  const bound = server.isMariaDB ? `SET STATEMENT max_statement_time=${BOUND_TOKEN} FOR ` : '';
  switch (mode) {
    case 'ftwrl':
      return {
        mode,
        boundSeconds,
        // Flushing without the global lock first makes the locked flush short (and is not binlogged).
        lock: [`${bound}FLUSH NO_WRITE_TO_BINLOG TABLES ${tag}`, `${bound}FLUSH TABLES WITH READ LOCK ${tag}`],
        unlock: ['UNLOCK TABLES'],
        coordinatesFrom: 'status',
        exact: true,
      };
    case 'backup_stage':
      return {
        mode,
        boundSeconds,
        lock: [`${bound}BACKUP STAGE START ${tag}`, `${bound}BACKUP STAGE BLOCK_COMMIT ${tag}`],
        unlock: ['BACKUP STAGE END'],
        coordinatesFrom: 'status',
        exact: true,
      };
    case 'backup_locks': {
      const binlogLock = !atLeast(server.version, 8, 0); // LOCK BINLOG FOR BACKUP exists up to 5.7
      return {
        mode,
        boundSeconds,
        lock: binlogLock ? [`LOCK TABLES FOR BACKUP ${tag}`, `LOCK BINLOG FOR BACKUP ${tag}`] : [`LOCK TABLES FOR BACKUP ${tag}`],
        unlock: binlogLock ? ['UNLOCK BINLOG', 'UNLOCK TABLES'] : ['UNLOCK TABLES'],
        coordinatesFrom: binlogLock ? 'status' : 'log_status',
        exact: binlogLock,
      };
    }
    case 'instance':
      return { mode, boundSeconds, lock: [`LOCK INSTANCE FOR BACKUP ${tag}`], unlock: ['UNLOCK INSTANCE'], coordinatesFrom: 'log_status', exact: false };
  }
}

/** The global privileges a mode needs (any one name of each group will do). */
export function lockPrivileges(mode: LockMode, server: Pick<ServerInfo, 'isMariaDB'> & { version?: string }): Array<{ grant: string; anyOf: string[] }> {
  switch (mode) {
    case 'ftwrl':
      return [{ grant: 'RELOAD', anyOf: server.isMariaDB ? ['RELOAD'] : ['RELOAD', 'FLUSH_TABLES'] }];
    case 'backup_stage':
      return [{ grant: 'RELOAD', anyOf: ['RELOAD'] }];
    case 'backup_locks':
      // Percona 5.7 checks RELOAD; 8.0 (from 8.0.13-4) has dynamic privileges and checks BACKUP_ADMIN.
      return atLeast(server.version ?? '8.0.0', 8, 0) ? [{ grant: 'BACKUP_ADMIN', anyOf: ['BACKUP_ADMIN'] }] : [{ grant: 'RELOAD', anyOf: ['RELOAD'] }];
    case 'instance':
      return [{ grant: 'BACKUP_ADMIN', anyOf: ['BACKUP_ADMIN'] }];
  }
}
