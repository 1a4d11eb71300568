/**
 * Who a waiting thread waits for: the sessions that hold the metadata locks it wants, named (thread, user,
 * host, how long idle, the lock and the table), and whom those wait for in turn. The locks come from
 * performance_schema.metadata_locks (MySQL 5.7+, MariaDB 10.5+, when the mdl instrument is on) or
 * MariaDB's information_schema.METADATA_LOCK_INFO (the metadata_lock_info plugin); where neither is
 * there, the report says so and how to make one available, and names nobody it cannot prove.
 */
import { printable } from './printable';
import type { RowDataPacket } from 'mysql2/promise';
import { readProcesslist, type ProcessRow } from './processlist';
import type { Session } from './session';

export type LockSource = 'performance_schema' | 'metadata_lock_info';

/** One metadata lock, as both sources spell it: PS's OBJECT_TYPE and LOCK_TYPE, MDL_ prefix dropped. */
export interface MetadataLock {
  thread: number;
  /** BACKUP, GLOBAL, COMMIT, SCHEMA, TABLE, ... */
  namespace: string;
  /** SHARED_NO_READ_WRITE, INTENTION_EXCLUSIVE, BACKUP_DDL, ... */
  mode: string;
  schema: string | null;
  table: string | null;
  granted: boolean;
}

/** A thread that holds a lock the waiter wants (or, for a table flush, runs a statement with tables open). */
export interface LockHolder {
  thread: number;
  user: string;
  host: string;
  command: string;
  /** how long it has been in its current state: for a Sleep thread, how long it has been idle */
  seconds: number;
  state: string | null;
  statement: string | null;
  /** the locks it holds that the waiter wants (empty for a table flush: it has tables open) */
  locks: Array<Pick<MetadataLock, 'namespace' | 'mode' | 'schema' | 'table'>>;
  /** if it waits itself: whom it waits for */
  waitsFor: LockHolder[];
}

export interface LockWaitReport {
  /** the thread we asked about, as the processlist showed it; null if it no longer waited */
  waiter: { thread: number; state: string | null; seconds: number; statement: string | null } | null;
  source: LockSource | null;
  /** why the holders could not be named, and how to make that possible */
  unavailable?: string;
  holders: LockHolder[];
}

export interface Visibility {
  source: LockSource | null;
  /** what we found, or why none can be used */
  detail: string;
  /** how to make lock holders nameable, when they are not */
  fix?: string;
}

/** Processlist states of a thread waiting for a lock (not for a table flush). */
const LOCK_WAIT_STATE = /^Waiting for .*lock\b/i;
const TABLE_FLUSH_STATE = /^Waiting for table flush/i;
/** Table lock modes only LOCK TABLES takes: an idle thread holding one is inside LOCK TABLES. */
export const LOCK_TABLES_MODES: ReadonlySet<string> = new Set(['SHARED_NO_READ_WRITE', 'SHARED_NO_WRITE', 'SHARED_READ_ONLY']);
const MAX_DEPTH = 3;
const MDL_INSTRUMENT = 'wait/lock/metadata/sql/mdl';

/**
 * Text the server gave us (user, host, schema, table, state, statement) as we show it: one line, bounded,
 * control characters escaped (printable.ts). Every such string in a message goes through here.
 */
export function serverText(text: string | null | undefined, limit = 200): string {
  if (text === null || text === undefined) return '';
  const oneLine = printable(text.replace(/\s+/g, ' ').trim());
  return oneLine.length > limit ? `${oneLine.slice(0, limit)}…` : oneLine;
}

/** Whether the processlist state is a wait for a metadata lock, global read lock, backup or commit lock. */
export function isLockWaitState(state: string | null): boolean {
  return state !== null && (LOCK_WAIT_STATE.test(state) || TABLE_FLUSH_STATE.test(state));
}

const visibilityCache = new WeakMap<Session, Visibility>();

/** Which source of lock holders this server offers to this account (asked once per session). */
export async function lockVisibility(session: Session): Promise<Visibility> {
  const known = visibilityCache.get(session);
  if (known !== undefined) return known;
  const found = await probeVisibility(session);
  visibilityCache.set(session, found);
  return found;
}

async function probeVisibility(session: Session): Promise<Visibility> {
  const { isMariaDB, account } = session.server;
  const problems: string[] = [];
  const performanceSchema = await probePerformanceSchema(session, account);
  if (performanceSchema.ok) return { source: 'performance_schema', detail: 'performance_schema.metadata_locks (the mdl instrument is on)' };
  problems.push(performanceSchema.problem);
  let fix = performanceSchema.fix;
  if (isMariaDB) {
    const plugin = await probeMetadataLockInfo(session, account);
    if (plugin.ok) return { source: 'metadata_lock_info', detail: 'information_schema.METADATA_LOCK_INFO (the metadata_lock_info plugin)' };
    problems.unshift(plugin.problem);
    // performance_schema is on but not usable yet: its fix first (no restart needed), the plugin as the other way.
    fix = performanceSchema.off ? plugin.fix : `${performanceSchema.fix}; or ${plugin.fix}`;
  }
  return { source: null, detail: `the holders of a lock cannot be named: ${problems.join('; ')}`, fix };
}

type Probe = { ok: true } | { ok: false; problem: string; fix: string; off?: boolean };

async function probePerformanceSchema(session: Session, account: string): Promise<Probe> {
  const keep = "performance_schema_instrument = 'wait/lock/metadata/sql/mdl=ON' in the server's option file";
  const off: Probe = {
    ok: false,
    off: true,
    problem: 'performance_schema is off',
    fix: session.server.isMariaDB
      ? "INSTALL SONAME 'metadata_lock_info' (once, as an administrator; it stays installed)"
      : `start the server with performance_schema = ON and ${keep}`,
  };
  try {
    const [on] = await session.connection.query<RowDataPacket[]>('SELECT @@GLOBAL.performance_schema AS value');
    if (Number(on[0]?.['value']) !== 1) return off;
    const [instrument] = await session.connection.query<RowDataPacket[]>('SELECT ENABLED AS enabled FROM performance_schema.setup_instruments WHERE NAME = ?', [MDL_INSTRUMENT]);
    if (String(instrument[0]?.['enabled'] ?? '') !== 'YES') {
      return {
        ok: false,
        problem: `performance_schema's ${MDL_INSTRUMENT} instrument is off`,
        fix: `UPDATE performance_schema.setup_instruments SET ENABLED = 'YES' WHERE NAME = '${MDL_INSTRUMENT}' (until the server restarts; to keep it: ${keep})`,
      };
    }
    await session.connection.query('SELECT 1 FROM performance_schema.metadata_locks m JOIN performance_schema.threads t ON t.THREAD_ID = m.OWNER_THREAD_ID LIMIT 1');
    return { ok: true };
  } catch (error) {
    const errno = Number((error as { errno?: unknown }).errno);
    if (errno === 1193) return off; // ER_UNKNOWN_SYSTEM_VARIABLE: built without it
    if (errno === 1142 || errno === 1044) {
      return { ok: false, problem: `${account} may not read performance_schema.metadata_locks`, fix: `GRANT SELECT ON performance_schema.* TO ${account}` };
    }
    return { ok: false, problem: `performance_schema.metadata_locks cannot be read: ${serverText((error as Error).message)}`, fix: off.fix };
  }
}

async function probeMetadataLockInfo(session: Session, account: string): Promise<Probe> {
  const install: Probe = { ok: false, problem: 'the metadata_lock_info plugin is not loaded', fix: "INSTALL SONAME 'metadata_lock_info' (once, as an administrator; it stays installed)" };
  try {
    const [plugin] = await session.connection.query<RowDataPacket[]>("SELECT PLUGIN_STATUS AS status FROM information_schema.PLUGINS WHERE PLUGIN_NAME = 'METADATA_LOCK_INFO'");
    if (plugin.length === 0) return install;
    if (String(plugin[0]?.['status']) !== 'ACTIVE') return { ...install, problem: `the metadata_lock_info plugin is ${serverText(String(plugin[0]?.['status']))}` };
    await session.connection.query('SELECT THREAD_ID FROM information_schema.METADATA_LOCK_INFO LIMIT 1');
    return { ok: true };
  } catch (error) {
    return { ok: false, problem: `information_schema.METADATA_LOCK_INFO cannot be read by ${account}: ${serverText((error as Error).message)}`, fix: `GRANT PROCESS ON *.* TO ${account}` };
  }
}

/** Every metadata lock on the server, granted or (performance_schema only) pending. */
async function readLocks(session: Session, source: LockSource): Promise<MetadataLock[]> {
  if (source === 'performance_schema') {
    const [rows] = await session.connection.query<RowDataPacket[]>(
      'SELECT t.PROCESSLIST_ID AS thread, m.OBJECT_TYPE AS namespace, m.LOCK_TYPE AS mode, m.OBJECT_SCHEMA AS `schema`, m.OBJECT_NAME AS `table`, m.LOCK_STATUS AS status ' +
        'FROM performance_schema.metadata_locks m JOIN performance_schema.threads t ON t.THREAD_ID = m.OWNER_THREAD_ID WHERE t.PROCESSLIST_ID IS NOT NULL',
    );
    return rows.map((row) => ({
      thread: Number(row['thread']),
      namespace: String(row['namespace'] ?? '').toUpperCase(),
      mode: String(row['mode'] ?? ''),
      schema: nameOrNull(row['schema']),
      table: nameOrNull(row['table']),
      granted: row['status'] === 'GRANTED',
    }));
  }
  const [rows] = await session.connection.query<RowDataPacket[]>(
    'SELECT THREAD_ID AS thread, LOCK_TYPE AS type, LOCK_MODE AS mode, TABLE_SCHEMA AS `schema`, TABLE_NAME AS `table` FROM information_schema.METADATA_LOCK_INFO',
  );
  return rows.map((row) => ({
    thread: Number(row['thread']),
    namespace: namespaceOf(String(row['type'] ?? '')),
    mode: String(row['mode'] ?? '').replace(/^MDL_/, ''),
    schema: nameOrNull(row['schema']),
    table: nameOrNull(row['table']),
    granted: true, // the plugin lists granted locks only
  }));
}

function nameOrNull(value: unknown): string | null {
  return value === null || value === undefined || value === '' ? null : String(value);
}

/** METADATA_LOCK_INFO's LOCK_TYPE ("Table metadata lock", "Backup lock", ...) as a PS OBJECT_TYPE. */
function namespaceOf(type: string): string {
  const lower = type.toLowerCase();
  if (lower.startsWith('backup')) return 'BACKUP';
  if (lower.startsWith('global')) return 'GLOBAL';
  if (lower.startsWith('commit')) return 'COMMIT';
  if (lower.startsWith('schema')) return 'SCHEMA';
  if (lower.startsWith('table')) return 'TABLE';
  return type.toUpperCase().replace(/ METADATA LOCK$| LOCK$/, '').replace(/ /g, '_');
}

/**
 * Looks up, while `waiterId` still waits, whom it waits for. `ownIds`: our own connections (never named).
 * Never throws for want of a source: the report says what is missing.
 */
export async function lookUpLockWait(session: Session, waiterId: number, ownIds: Iterable<number>): Promise<LockWaitReport> {
  const visibility = await lockVisibility(session);
  const [processes, locks] = await Promise.all([
    readProcesslist(session),
    visibility.source === null ? Promise.resolve<MetadataLock[] | null>(null) : readLocks(session, visibility.source),
  ]);
  return explainWait(processes, locks, waiterId, new Set(ownIds), visibility);
}

/** The report from the processlist and the locks (null: no source). Pure. */
export function explainWait(processes: readonly ProcessRow[], locks: readonly MetadataLock[] | null, waiterId: number, ownIds: ReadonlySet<number>, visibility: Visibility): LockWaitReport {
  const waiterRow = processes.find((row) => row.id === waiterId);
  const report: LockWaitReport = {
    waiter: waiterRow === undefined ? null : { thread: waiterRow.id, state: waiterRow.state, seconds: waiterRow.timeMs / 1000, statement: waiterRow.info },
    source: visibility.source,
    holders: [],
  };
  if (waiterRow === undefined || !isLockWaitState(waiterRow.state)) return report;
  const needsLocks = !TABLE_FLUSH_STATE.test(waiterRow.state ?? '');
  if (needsLocks && locks === null) {
    report.unavailable = visibility.fix === undefined ? visibility.detail : `${visibility.detail}; to name them: ${visibility.fix}`;
    return report;
  }
  const byId = new Map(processes.map((row) => [row.id, row]));
  report.holders = holdersOf(waiterRow, byId, locks ?? [], new Set([...ownIds, waiterId]), 1);
  return report;
}

function holdersOf(waiter: ProcessRow, byId: ReadonlyMap<number, ProcessRow>, locks: readonly MetadataLock[], seen: Set<number>, depth: number): LockHolder[] {
  const state = waiter.state ?? '';
  let found: Array<{ row: ProcessRow; locks: LockHolder['locks'] }>;
  if (TABLE_FLUSH_STATE.test(state)) {
    // The flush waits for every running statement with tables open; those queued behind a lock do not count.
    found = [...byId.values()]
      .filter((row) => !seen.has(row.id) && row.command === 'Query' && row.info !== null && !isLockWaitState(row.state))
      .map((row) => ({ row, locks: [] }));
  } else {
    const wanted = wantedLocks(waiter, state, locks);
    const holding = new Map<number, LockHolder['locks']>();
    for (const lock of locks) {
      if (!lock.granted || seen.has(lock.thread) || !wanted.some((want) => sameObject(want, lock))) continue;
      const list = holding.get(lock.thread) ?? [];
      list.push({ namespace: lock.namespace, mode: lock.mode, schema: lock.schema, table: lock.table });
      holding.set(lock.thread, list);
    }
    found = [...holding].flatMap(([thread, held]) => {
      const row = byId.get(thread);
      // Threads gone from the processlist (system threads, or ended since) are not named.
      return row === undefined ? [] : [{ row, locks: [...held, ...lockTablesLocks(thread, locks, held)] }];
    });
  }
  const next = new Set([...seen, ...found.map(({ row }) => row.id)]);
  return found
    .sort((a, b) => b.row.timeMs - a.row.timeMs)
    .map(({ row, locks: held }) => ({
      thread: row.id,
      user: row.user,
      host: row.host,
      command: row.command,
      seconds: row.timeMs / 1000,
      state: row.state === '' ? null : row.state,
      statement: row.info,
      locks: held,
      waitsFor: depth < MAX_DEPTH && isLockWaitState(row.state) ? holdersOf(row, byId, locks, next, depth + 1) : [],
    }));
}

/** A LOCK TABLES holder found by its backup or global lock: add the tables it locked, which say what it is. */
function lockTablesLocks(thread: number, locks: readonly MetadataLock[], held: LockHolder['locks']): LockHolder['locks'] {
  if (held.some((lock) => lock.namespace === 'TABLE')) return [];
  return locks
    .filter((lock) => lock.thread === thread && lock.granted && lock.namespace === 'TABLE' && LOCK_TABLES_MODES.has(lock.mode))
    .map((lock) => ({ namespace: lock.namespace, mode: lock.mode, schema: lock.schema, table: lock.table }));
}

type Wanted = Pick<MetadataLock, 'namespace' | 'schema' | 'table'>;

/**
 * What the waiter waits for: its pending locks (performance_schema), or else, from its state, the
 * namespace of the global locks, or the tables (schemas) it has already locked on its way to the one it
 * waits for (METADATA_LOCK_INFO lists granted locks only).
 */
function wantedLocks(waiter: ProcessRow, state: string, locks: readonly MetadataLock[]): Wanted[] {
  const pending = locks.filter((lock) => lock.thread === waiter.id && !lock.granted);
  if (pending.length > 0) return pending;
  if (/backup lock|global read lock/i.test(state)) return [{ namespace: 'BACKUP', schema: null, table: null }, { namespace: 'GLOBAL', schema: null, table: null }];
  if (/commit lock/i.test(state)) return [{ namespace: 'COMMIT', schema: null, table: null }, { namespace: 'BACKUP', schema: null, table: null }];
  const own = locks.filter((lock) => lock.thread === waiter.id && lock.granted);
  if (/schema metadata lock/i.test(state)) return own.filter((lock) => lock.namespace === 'SCHEMA');
  return own.filter((lock) => lock.namespace === 'TABLE');
}

function sameObject(want: Wanted, lock: MetadataLock): boolean {
  if (want.namespace !== lock.namespace) return false;
  if (want.namespace === 'BACKUP' || want.namespace === 'GLOBAL' || want.namespace === 'COMMIT') return true;
  return want.schema === lock.schema && (want.namespace !== 'TABLE' || want.table === lock.table);
}
