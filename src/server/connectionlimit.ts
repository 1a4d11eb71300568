/**
 * How many connections the hook's account may have at once. The hook needs two: freeze's session and the
 * lock holder's (three for a moment when a stuck attempt is KILLed or thaw has to end a holder).
 */
import type { RowDataPacket } from 'mysql2/promise';
import { CONNECTIONS_NEEDED, type Session } from './session';

export interface ConnectionLimit {
  /** 0: no limit */
  limit: number;
  /** where it comes from, for the message */
  source: string;
}

/** The limit that applies to our account: its own MAX_USER_CONNECTIONS if set, else the global one. */
export async function connectionLimit(session: Session): Promise<ConnectionLimit> {
  const own = await accountLimit(session);
  if (own !== undefined && own !== 0) return { limit: own, source: `the account's MAX_USER_CONNECTIONS (${session.server.account})` };
  const [rows] = await session.connection.query<RowDataPacket[]>('SELECT @@GLOBAL.max_user_connections AS value');
  return { limit: Number(rows[0]?.['value'] ?? 0), source: 'the server\'s max_user_connections' };
}

/** MariaDB shows the account's limit in SHOW GRANTS, MySQL in SHOW CREATE USER. */
async function accountLimit(session: Session): Promise<number | undefined> {
  for (const statement of ['SHOW GRANTS', 'SHOW CREATE USER CURRENT_USER()']) {
    try {
      const [rows] = await session.connection.query<RowDataPacket[]>(statement);
      for (const row of rows) {
        const match = /MAX_USER_CONNECTIONS\s+(-?\d+)/i.exec(String(Object.values(row)[0]));
        if (match?.[1] !== undefined) return Number(match[1]);
      }
    } catch {
      // not this server's statement, or not allowed: try the next
    }
  }
  return undefined;
}

/** Whether a limit leaves the hook its connections (-1, MariaDB's "none but SUPER", does not). */
export function limitTooLow(limit: number): boolean {
  return limit !== 0 && limit < CONNECTIONS_NEEDED;
}
