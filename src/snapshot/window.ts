/**
 * "Is this a quiet moment?": which processlist threads would hold up FLUSH TABLES WITH READ LOCK for
 * longer than we accept. A pure function of the rows, so that it carries the unit tests.
 */
import { serverText } from '../server/blockers';
import type { ProcessRow } from '../server/processlist';

export type { ProcessRow };
/**
 * Threads that run no statement holding tables open, whatever their Time says. `Daemon` is the event
 * scheduler and InnoDB's purge threads (huge Time values); replication threads idle for hours.
 */
export const BUILTIN_IGNORED_COMMANDS = [
  'Sleep',
  'Daemon',
  'Binlog Dump',
  'Binlog Dump GTID',
  'Connect',
  'Connect Out',
  'Delayed insert',
  'Register Slave',
  'Slave_IO',
  'Slave_SQL',
  'Slave_worker',
] as const;

export const BUILTIN_IGNORED_USERS = ['system user', 'event_scheduler'] as const;

export interface WindowRules {
  longQueryMs: number;
  ignoreCommands: readonly string[];
  ignoreUsers: readonly string[];
  /** our own connections: the poller, the holder */
  ownIds: ReadonlySet<number>;
}

export function windowRules(options: {
  longQueryTime: number;
  ignoreCommands: readonly string[];
  ignoreUsers: readonly string[];
  ownIds: Iterable<number>;
}): WindowRules {
  return {
    longQueryMs: options.longQueryTime * 1000,
    ignoreCommands: [...BUILTIN_IGNORED_COMMANDS, ...options.ignoreCommands].map(lower),
    ignoreUsers: [...BUILTIN_IGNORED_USERS, ...options.ignoreUsers].map(lower),
    ownIds: new Set(options.ownIds),
  };
}

/** The threads that make this moment not quiet, longest-running first. Empty means: lock now. */
export function findBlockers(rows: readonly ProcessRow[], rules: WindowRules): ProcessRow[] {
  return rows
    .filter((row) => isBlocker(row, rules))
    .sort((a, b) => b.timeMs - a.timeMs);
}

function isBlocker(row: ProcessRow, rules: WindowRules): boolean {
  if (rules.ownIds.has(row.id)) return false;
  if (rules.ignoreCommands.includes(lower(row.command))) return false;
  if (rules.ignoreUsers.includes(lower(row.user))) return false;
  // A thread with no statement text holds no table open for a statement (e.g. idle in a transaction).
  if (row.info === null || row.info.trim() === '') return false;
  return row.timeMs >= rules.longQueryMs;
}

/** Whether kill_long_queries may kill this statement: `select` kills read-only SELECTs only, `all` any. */
export function isKillable(row: ProcessRow, kill: 'off' | 'select' | 'all'): boolean {
  if (kill === 'off') return false;
  if (kill === 'all') return true;
  // Leading comments and parentheses aside, a SELECT that locks nothing for writing (no FOR UPDATE/SHARE, no INTO).
  const statement = (row.info ?? '').replace(/\/\*[\s\S]*?\*\//g, ' ').replace(/^[\s(]+/, '');
  return /^select\b/i.test(statement) && !/\bfor\s+(update|share)\b|\block\s+in\s+share\s+mode\b|\binto\b/i.test(statement);
}

/** Names one blocker, so that it is logged once however many polls see it: its thread and statement. */
export function blockerKey(row: ProcessRow): string {
  return `${row.id}\u0000${row.info ?? ''}`;
}

/** Statement text for the log and the terminal: one line, bounded, control characters escaped. */
export function statementPreview(info: string | null, limit = 200): string {
  return serverText(info, limit);
}

function lower(text: string): string {
  return text.toLowerCase();
}
