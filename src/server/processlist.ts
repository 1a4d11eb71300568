/**
 * The server's processlist: who runs what for how long, and a KILL of a connection that first proves
 * the connection is ours.
 */
import { ER_BAD_FIELD_ERROR, ER_NO_SUCH_TABLE, ER_PARSE_ERROR, firstAccepted } from './statements';
import { printable } from './printable';
import type { ConnectionProof, Session } from './session';

/** One thread of the processlist, as every server spells it. */
export interface ProcessRow {
  id: number;
  user: string;
  host: string;
  db: string | null;
  command: string;
  /** milliseconds the thread has been in its current state (MariaDB TIME_MS, else TIME * 1000) */
  timeMs: number;
  state: string | null;
  info: string | null;
}

/**
 * The processlist. MariaDB: information_schema.PROCESSLIST, with TIME_MS. MySQL: performance_schema's
 * (8.0.22+, no global mutex; the I_S table is deprecated from 8.0.35), falling back to I_S on older servers.
 */
export async function readProcesslist(session: Session): Promise<ProcessRow[]> {
  const columns = 'ID AS id, USER AS user, HOST AS host, DB AS db, COMMAND AS command, STATE AS state, INFO AS info';
  const sources = session.server.isMariaDB
    ? [`SELECT ${columns}, TIME_MS AS timeMs FROM information_schema.PROCESSLIST`]
    : [`SELECT ${columns}, TIME * 1000 AS timeMs FROM performance_schema.processlist`, `SELECT ${columns}, TIME * 1000 AS timeMs FROM information_schema.PROCESSLIST`];
  // Polled every 250 ms: remember which source this server has, instead of failing over at every poll.
  const known = processlistSource.get(session);
  const { statement, rows } = await firstAccepted(session, known === undefined ? sources : [known], SOURCE_MISSING, [], { compiled: true });
  processlistSource.set(session, statement);
  // Names made printable here; the statement text is kept as sent (its kind is read from it) and made
  // printable wherever it is shown (statementPreview).
  return rows.map((row) => ({
    id: Number(row['id']),
    user: printable(String(row['user'] ?? '')),
    host: printable(String(row['host'] ?? '')),
    db: row['db'] === null ? null : printable(String(row['db'])),
    command: printable(String(row['command'] ?? '')),
    timeMs: Number(row['timeMs'] ?? 0),
    state: row['state'] === null ? null : printable(String(row['state'])),
    info: row['info'] === null ? null : String(row['info']),
  }));
}

/** A missing table or column, or a syntax error: this server has another source. */
const SOURCE_MISSING: ReadonlySet<number> = new Set([ER_NO_SUCH_TABLE, ER_BAD_FIELD_ERROR, ER_PARSE_ERROR]);

const processlistSource = new WeakMap<Session, string>();

/** Marks the holder's lock statements, so that a waiting FLUSH is recognisably ours in the processlist. */
export function holderTag(pid: number): string {
  return `/* vmware-mysql-snapshot holder ${pid} */`;
}

/**
 * KILLs a connection only after proving it is the one we mean: the same server lifetime (ids restart at a
 * server restart), the same id, the same user, and a state our holder can be in (idle while it holds,
 * or running one of its own tagged statements). Returns what happened.
 */
export async function killConnectionIfOurs(
  session: Session,
  proof: ConnectionProof,
): Promise<'killed' | 'gone' | 'not-ours'> {
  if (Math.abs(session.server.startedAt - proof.serverStartedAt) > 2000) return 'gone'; // restarted since
  const columns = 'USER AS user, COMMAND AS command, INFO AS info';
  const { rows } = await firstAccepted(
    session,
    session.server.isMariaDB
      ? [`SELECT ${columns} FROM information_schema.PROCESSLIST WHERE ID = ?`]
      : [`SELECT ${columns} FROM performance_schema.processlist WHERE ID = ?`, `SELECT ${columns} FROM information_schema.PROCESSLIST WHERE ID = ?`],
    SOURCE_MISSING,
    [proof.id],
  );
  const row = rows[0];
  if (row === undefined) return 'gone';
  const info = row['info'] === null ? null : String(row['info']);
  const ourState = row['command'] === 'Sleep' || row['command'] === 'Killed' || info === null || info.includes('vmware-mysql-snapshot holder');
  if (String(row['user']) !== proof.user || !ourState) return 'not-ours';
  try {
    await session.connection.query(`KILL CONNECTION ${Number(proof.id)}`);
  } catch (error) {
    if ((error as { errno?: unknown }).errno === 1094) return 'gone'; // ER_NO_SUCH_THREAD: ended meanwhile
    throw error;
  }
  return 'killed';
}
