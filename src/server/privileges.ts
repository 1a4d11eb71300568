/**
 * Which privileges a freeze needs, which the account has, and the GRANT that adds what is missing.
 */
import type { RowDataPacket } from 'mysql2/promise';
import type { LockMode } from '../config/settings';
import { HookError } from '../errors';
import { lockPrivileges } from './lockmodes';
import { grantStatement, type ServerInfo, type Session } from './session';

/** Global privileges of the current account, from SHOW GRANTS (which, unlike I_S, includes roles). */
export async function globalPrivileges(session: Session): Promise<Set<string>> {
  const [rows] = await session.connection.query<RowDataPacket[]>('SHOW GRANTS');
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
