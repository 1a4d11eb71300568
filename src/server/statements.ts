/**
 * Spellings differ between MySQL, MariaDB and their versions: try the statements in order and fall back
 * to the next one only on the given error numbers (a syntax error, a missing table), never on others.
 */
import type { RowDataPacket } from 'mysql2/promise';
import type { Session } from './session';

export const ER_PARSE_ERROR = 1064;
export const ER_NO_SUCH_TABLE = 1146;
export const ER_BAD_FIELD_ERROR = 1054;

export async function firstAccepted(
  session: Session,
  statements: readonly string[],
  fallBackOn: ReadonlySet<number>,
  parameters: unknown[] = [],
  /** compiled: rows parsed by code generated for this result's columns (see openSession) */
  options: { compiled?: boolean } = {},
): Promise<{ statement: string; rows: RowDataPacket[] }> {
  let lastError: unknown;
  for (const statement of statements) {
    try {
      const [rows] = await session.connection.query<RowDataPacket[]>({ sql: statement, values: parameters, ...(options.compiled ? { disableEval: false } : {}) });
      return { statement, rows };
    } catch (error) {
      if (!fallBackOn.has(Number((error as { errno?: unknown }).errno))) throw error;
      lastError = error;
    }
  }
  throw lastError;
}
