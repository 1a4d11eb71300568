/**
 * What held up a lock attempt, in words, and advice that fits the cause: a pure function of the report
 * of src/server/blockers.ts, so that it carries the unit tests. An idle session inside LOCK TABLES or an
 * open transaction is named, with what it must do (or that it must be killed); "raise freeze_timeout"
 * is only offered where waiting longer can help (a statement that is running and will end).
 */
import { LOCK_TABLES_MODES, serverText, type LockHolder, type LockWaitReport } from '../server/blockers';

export type Cause =
  /** an idle session inside LOCK TABLES: nothing ends it but UNLOCK TABLES, its disconnect, or a KILL */
  | 'idle_lock_tables'
  /** an idle session in an open transaction, usually behind a DDL queued on its table */
  | 'idle_transaction'
  /** a running statement: it ends by itself */
  | 'running_statement'
  /** another backup's lock (FTWRL, BACKUP STAGE, LOCK INSTANCE FOR BACKUP) */
  | 'other_backup'
  /** the holders could not be named (no source of lock holders on this server) */
  | 'unknown';

export interface LockAdvice {
  cause: Cause;
  /** who held the lock up, in one sentence */
  summary: string;
  /** what to do */
  advice: string;
  /** whether a longer freeze_timeout could have helped */
  waitingHelps: boolean;
  /** the sessions at the root of the wait (those that wait for nobody), for the log and the history */
  culprits: Culprit[];
}

export interface Culprit {
  thread: number;
  user: string;
  host: string;
  command: string;
  seconds: number;
  cause: Exclude<Cause, 'unknown'>;
  /** e.g. "LOCK TABLES WRITE on app.t" */
  holds: string;
  statement: string | null;
}

export interface AdviceContext {
  freezeTimeout: number;
  killLongQueries: 'off' | 'select' | 'all';
}

const SHOWN = 3;
/** in the text of our holder's lock statements (src/server/processlist.ts holderTag) */
const HOLDER_TAG = 'vmware-mysql-snapshot holder';
const BACKUP_MODES = /^(BACKUP_(FTWRL\d|START|FLUSH|WAIT_FLUSH|BLOCK_DDL|BLOCK_COMMIT|END)|SHARED)$/;

/** Advice for one report; undefined when it names no wait (the thread no longer waited). */
export function adviseOnLockWait(report: LockWaitReport, context: AdviceContext): LockAdvice | undefined {
  if (report.waiter === null) return undefined;
  const waiting = describeWaiter(report);
  if (report.unavailable !== undefined) {
    return {
      cause: 'unknown',
      summary: `${waiting}; the sessions holding it cannot be named: ${report.unavailable}`,
      advice:
        'look for a session idle inside LOCK TABLES or an open transaction (SHOW PROCESSLIST, Command Sleep) and end it; a longer freeze_timeout helps only if what holds the lock is a statement that will end',
      waitingHelps: false,
      culprits: [],
    };
  }
  const culprits = roots(report.holders).map(culprit);
  if (culprits.length === 0) return undefined;
  const chain = describeChain(report.holders);
  const worst = culprits.find((one) => one.cause === 'idle_lock_tables') ?? culprits.find((one) => one.cause === 'idle_transaction') ?? culprits.find((one) => one.cause === 'other_backup') ?? culprits[0];
  if (worst === undefined) return undefined;
  const summary = `${waiting}, held up by ${chain}`;
  const idle = culprits.filter((one) => one.cause === 'idle_lock_tables' || one.cause === 'idle_transaction');
  if (idle.length > 0) {
    return { cause: worst.cause, summary, advice: idle.slice(0, SHOWN).map(idleAdvice).join('; ') + '; waiting longer cannot help', waitingHelps: false, culprits };
  }
  if (worst.cause === 'other_backup') {
    return {
      cause: 'other_backup',
      summary,
      advice: `another backup holds a global lock (thread ${worst.thread}, ${accountOf(worst)}): schedule the snapshot apart from it, or raise freeze_timeout above its lock time`,
      waitingHelps: true,
      culprits,
    };
  }
  const kill = context.killLongQueries === 'off' ? ', or set kill_long_queries = select (or all) to kill such statements' : '';
  return {
    cause: 'running_statement',
    summary,
    advice: `the statement will end by itself: raise freeze_timeout (now ${context.freezeTimeout} s) or take the snapshot when it is not running${kill}`,
    waitingHelps: true,
    culprits,
  };
}

/** One line for a message: summary and advice. */
export function adviceText(advice: LockAdvice): string {
  return `${advice.summary}. ${capitalize(advice.advice)}`;
}

function describeWaiter(report: LockWaitReport): string {
  const waiter = report.waiter;
  if (waiter === null) return '';
  const who = waiter.statement?.includes(HOLDER_TAG) === true ? `our lock statement (thread ${waiter.thread})` : `thread ${waiter.thread}`;
  return `${who} waited ${waiter.seconds.toFixed(1)} s (${serverText(waiter.state, 60) || 'no state'})`;
}

/** The holders, and for those that wait themselves, whom they wait for. */
function describeChain(holders: readonly LockHolder[]): string {
  const shown = holders.slice(0, SHOWN).map((holder) => {
    const own = describeHolder(holder);
    return holder.waitsFor.length === 0 ? own : `${own}, which waits for ${describeChain(holder.waitsFor)}`;
  });
  const more = holders.length > SHOWN ? ` and ${holders.length - SHOWN} more` : '';
  return `${shown.join('; ')}${more}`;
}

function describeHolder(holder: LockHolder): string {
  const what = holds(holder);
  const doing = holder.command === 'Sleep' ? `idle ${holder.seconds.toFixed(0)} s` : `${serverText(holder.command, 40)} ${holder.seconds.toFixed(0)} s${holder.statement === null ? '' : `: ${serverText(holder.statement, 80)}`}`;
  return `thread ${holder.thread} (${accountOf(holder)}, ${doing})${what === '' ? '' : ` holding ${what}`}`;
}

function holds(holder: Pick<LockHolder, 'locks'>): string {
  const tables = holder.locks.filter((lock) => lock.namespace === 'TABLE');
  const lockTables = tables.filter((lock) => LOCK_TABLES_MODES.has(lock.mode));
  if (lockTables.length > 0) {
    return lockTables.map((lock) => `LOCK TABLES ${lock.mode === 'SHARED_NO_READ_WRITE' ? 'WRITE' : 'READ'} on ${tableName(lock)}`).join(', ');
  }
  if (tables.length > 0) return `a metadata lock on ${[...new Set(tables.map(tableName))].join(', ')}`;
  const global = holder.locks.find((lock) => lock.namespace !== 'TABLE' && lock.namespace !== 'SCHEMA');
  return global === undefined ? '' : `the ${serverText(global.namespace.toLowerCase(), 20)} lock (${serverText(global.mode, 40)})`;
}

function tableName(lock: { schema: string | null; table: string | null }): string {
  return [lock.schema, lock.table].filter((part) => part !== null).map((part) => serverText(part, 64)).join('.');
}

/** The holders that wait for nobody: the ones to deal with. */
function roots(holders: readonly LockHolder[]): LockHolder[] {
  const found = new Map<number, LockHolder>();
  const walk = (list: readonly LockHolder[]): void => {
    for (const holder of list) {
      if (holder.waitsFor.length === 0) found.set(holder.thread, holder);
      else walk(holder.waitsFor);
    }
  };
  walk(holders);
  return [...found.values()];
}

function culprit(holder: LockHolder): Culprit {
  return {
    thread: holder.thread,
    user: holder.user,
    host: holder.host,
    command: holder.command,
    seconds: holder.seconds,
    cause: causeOf(holder),
    holds: holds(holder),
    statement: holder.statement,
  };
}

function causeOf(holder: LockHolder): Culprit['cause'] {
  if (holder.locks.some((lock) => (lock.namespace.startsWith('BACKUP') || lock.namespace === 'GLOBAL' || lock.namespace === 'COMMIT') && BACKUP_MODES.test(lock.mode))) return 'other_backup';
  if (holder.command !== 'Sleep') return 'running_statement';
  if (holder.locks.some((lock) => lock.namespace === 'TABLE' && LOCK_TABLES_MODES.has(lock.mode))) return 'idle_lock_tables';
  return 'idle_transaction';
}

function idleAdvice(one: Culprit): string {
  const who = `thread ${one.thread} (${accountOf(one)}, idle ${one.seconds.toFixed(0)} s)`;
  return one.cause === 'idle_lock_tables'
    ? `${who} must end its LOCK TABLES (UNLOCK TABLES, or disconnect) or be killed (KILL ${one.thread})`
    : `${who} must end its open transaction (COMMIT or ROLLBACK) or be killed (KILL ${one.thread})`;
}

function accountOf(one: { user: string; host: string }): string {
  return `${serverText(one.user, 64)}@${serverText(one.host, 64)}`;
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
