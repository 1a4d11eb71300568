/**
 * Proof that a snapshot taken under the hook's lock is consistent, with the test playing the hypervisor.
 *
 * An origin MariaDB (binary log in ROW format, GTID) takes small transactions from several concurrent
 * writers. In every cycle the BUILT executable freezes; while it holds the lock, mariadbd is SIGSTOPped and
 * its whole data directory (tables, redo log, binary logs) is copied: an atomic image, as a VM snapshot is.
 * Then SIGCONT and thaw. A second MariaDB started on the copy must recover cleanly, hold exactly the
 * transactions that the origin's binary log has up to the coordinates the hook recorded (none after), and,
 * seeded with those coordinates (GTID in two cycles, file and position in one), replicate from the origin
 * until its data is identical.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import type { Connection, RowDataPacket } from 'mysql2/promise';
import { makeHookSetup, readLog, runHook, type HookSetup } from '../support/hook';
import { startMariaDB, startMariaDBOnDatadir, type TestServer } from '../support/mariadb';
import { waitFor } from '../support/wait';

const runFile = promisify(execFile);

const WRITERS = 4;
const CYCLES = 3;
/** The cycle (0-based) whose replica is seeded with MASTER_LOG_FILE / MASTER_LOG_POS instead of the GTID. */
const FILE_POSITION_CYCLE = 1;
/** Commits every cycle waits for before it freezes, so that each snapshot lands among running writers. */
const COMMITS_BETWEEN_CYCLES = 150;
const REPLICATION_USER = { name: 'repl', password: 'repl-secret' };
/** A writer's transaction ids: writer w (0-based) commits (w + 1) * TXN_BASE + seq, seq = 0, 1, 2, ... */
const TXN_BASE = 1_000_000;
/** Row ids: txn * ROWS_PER_TXN_SLOT + k, k < the number of rows of that transaction. */
const ROWS_PER_TXN_SLOT = 10;

interface Coordinates {
  binlog: { file: string; position: number };
  gtid: string;
}

interface Copy {
  cycle: number;
  server: TestServer;
  coordinates: Coordinates;
  mode: 'gtid' | 'file';
}

let origin: TestServer;
let setup: HookSetup;
const writers: Writer[] = [];
const copies: Copy[] = [];
const scratch: string[] = [];

before(async () => {
  origin = await startMariaDB({ logBin: true, serverId: 1 });
  await origin.query(
    'CREATE TABLE app.events (id BIGINT PRIMARY KEY, txn BIGINT NOT NULL, writer INT NOT NULL, seq INT NOT NULL, k TINYINT NOT NULL, note VARCHAR(40)) ENGINE=InnoDB',
  );
  await origin.query('CREATE TABLE app.counter (id INT PRIMARY KEY, n BIGINT NOT NULL) ENGINE=InnoDB');
  await origin.query('INSERT INTO app.counter VALUES (1, 0)');
  await origin.query('CREATE USER ?@? IDENTIFIED BY ?', [REPLICATION_USER.name, '127.0.0.1', REPLICATION_USER.password]);
  await origin.query('GRANT REPLICATION SLAVE ON *.* TO ?@?', [REPLICATION_USER.name, '127.0.0.1']);
  setup = makeHookSetup(origin, { snapshot: { lock_wait_timeout: '2', long_query_time: '1', freeze_timeout: '30', max_lock_time: '60' } });
  scratch.push(setup.dir);
  for (let w = 0; w < WRITERS; w += 1) writers.push(new Writer(w, await origin.connect()));
});

after(async () => {
  // A lock left by a failed assertion would stall the clean-up below.
  if (setup !== undefined) await runHook(setup, 'post-thaw-script', ['freezeFail']).catch(() => undefined);
  origin?.kill('SIGCONT');
  await Promise.all(writers.map((writer) => writer.stop()));
  await Promise.all(copies.map((copy) => copy.server.remove()));
  await origin?.remove();
  for (const dir of scratch) fs.rmSync(dir, { recursive: true, force: true });
});

/** One connection committing small transactions in a loop: BEGIN; INSERT 1-3 rows; UPDATE the counter; COMMIT. */
class Writer {
  /** transaction id -> the number of rows it inserted, for every COMMIT the server acknowledged */
  readonly acknowledged = new Map<number, number>();
  readonly errors: string[] = [];
  private seq = 0;
  private running = true;
  private readonly done: Promise<void>;

  constructor(
    readonly index: number,
    private readonly connection: Connection,
  ) {
    this.done = this.loop();
  }

  private async loop(): Promise<void> {
    while (this.running) {
      const seq = this.seq;
      const txn = (this.index + 1) * TXN_BASE + seq;
      const rows = 1 + ((seq * 7 + this.index) % 3);
      const values = Array.from({ length: rows }, (_, k) => [txn * ROWS_PER_TXN_SLOT + k, txn, this.index, seq, k, `w${this.index} s${seq}`]);
      let stage = 'BEGIN';
      try {
        await this.connection.query('BEGIN');
        stage = 'INSERT';
        await this.connection.query('INSERT INTO app.events (id, txn, writer, seq, k, note) VALUES ?', [values]);
        stage = 'UPDATE';
        await this.connection.query('UPDATE app.counter SET n = n + 1 WHERE id = 1');
        stage = 'COMMIT';
        await this.connection.query('COMMIT');
        this.acknowledged.set(txn, rows);
        this.seq += 1;
      } catch (error) {
        // Nothing here should ever fail; a failed COMMIT would leave the outcome unknown, so it is an error too.
        this.errors.push(`writer ${this.index} txn ${txn} at ${stage}: ${(error as Error).message}`);
        this.running = false;
      }
    }
  }

  get commits(): number {
    return this.acknowledged.size;
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.done;
    await this.connection.end().catch(() => undefined);
  }
}

function totalCommits(): number {
  return writers.reduce((sum, writer) => sum + writer.commits, 0);
}

/** SIGSTOP is delivered asynchronously: wait until every thread of mariadbd has stopped. */
async function waitUntilStopped(pid: number): Promise<void> {
  await waitFor(`mariadbd ${pid} to stop`, async () => {
    const states = fs.readdirSync(`/proc/${pid}/task`).map((task) => {
      try {
        return fs.readFileSync(`/proc/${pid}/task/${task}/stat`, 'latin1').split(') ')[1]?.[0];
      } catch {
        return 'T'; // the thread has gone
      }
    });
    return states.every((state) => state === 'T' || state === 't') ? true : undefined;
  }, { timeoutMs: 5000 });
}

function lastAcquired(): Coordinates {
  const line = readLog(setup).filter((entry) => entry['event'] === 'lock.acquired').at(-1);
  assert.ok(line, 'the log has a lock.acquired line');
  const coordinates = line['coordinates'] as Coordinates;
  assert.equal(typeof coordinates?.binlog?.file, 'string', `coordinates recorded: ${JSON.stringify(line)}`);
  assert.equal(typeof coordinates.binlog.position, 'number');
  assert.equal(typeof coordinates.gtid, 'string', 'a GTID is recorded');
  return coordinates;
}

function mariadbBinlog(): string {
  for (const candidate of ['/usr/bin/mariadb-binlog', '/usr/bin/mysqlbinlog']) {
    if (fs.existsSync(candidate)) return candidate;
  }
  return 'mariadb-binlog';
}

interface BinlogContent {
  /** ids of the app.events rows inserted by committed transactions */
  ids: Set<number>;
  transactions: Set<number>;
}

/**
 * The origin's binary log decoded from its first file up to the recorded coordinates: every row inserted
 * into app.events by a transaction that committed before that position. A transaction left open at the
 * position (the lock would then have been taken mid-transaction) is an error.
 */
async function originContentAt(coordinates: Coordinates): Promise<BinlogContent> {
  const logs = await origin.query<RowDataPacket[]>('SHOW BINARY LOGS');
  const names = logs.map((row) => String(row['Log_name'])).filter((name) => name <= coordinates.binlog.file);
  assert.equal(names.at(-1), coordinates.binlog.file, `the recorded binlog file is on the origin: ${names.join(', ')}`);
  const { stdout } = await runFile(
    mariadbBinlog(),
    ['--no-defaults', `--stop-position=${coordinates.binlog.position}`, '--base64-output=decode-rows', '-v', ...names.map((name) => path.join(origin.datadir, name))],
    { maxBuffer: 512 * 1024 * 1024 },
  );
  const content: BinlogContent = { ids: new Set(), transactions: new Set() };
  let pending: Array<{ id: number; txn: number }> = [];
  let inOpenTransaction = false;
  let row: { id?: number; txn?: number } | undefined;
  const flushRow = (): void => {
    if (row?.id !== undefined && row.txn !== undefined) pending.push({ id: row.id, txn: row.txn });
    row = undefined;
  };
  for (const line of stdout.split('\n')) {
    if (line.startsWith('### ')) {
      if (line === '### INSERT INTO `app`.`events`') {
        flushRow();
        row = {};
        continue;
      }
      const column = /^###\s+@(\d+)=(-?\d+)/.exec(line);
      if (row !== undefined && column !== null) {
        if (column[1] === '1') row.id = Number(column[2]);
        if (column[1] === '2') row.txn = Number(column[2]);
        continue;
      }
      if (line !== '### SET') flushRow();
      continue;
    }
    flushRow();
    if (/^(BEGIN|START TRANSACTION)\b/.test(line)) {
      inOpenTransaction = true;
      pending = [];
    } else if (/^COMMIT\b/.test(line)) {
      for (const { id, txn } of pending) {
        content.ids.add(id);
        content.transactions.add(txn);
      }
      pending = [];
      inOpenTransaction = false;
    } else if (/^ROLLBACK\b/.test(line)) {
      pending = [];
      inOpenTransaction = false;
    }
  }
  flushRow();
  assert.ok(!inOpenTransaction && pending.length === 0, `the recorded position ${coordinates.binlog.file}:${coordinates.binlog.position} is inside a transaction`);
  return content;
}

/** Error-log lines of a recovered copy that are not normal recovery: errors, and anything corrupt or crashed that is not a recovery note. */
function abnormalErrorLogLines(server: TestServer): string[] {
  const text = fs.readFileSync(path.join(server.dir, 'error.log'), 'utf8');
  return text.split('\n').filter((line) => {
    if (/\[ERROR\]/i.test(line)) return true;
    if (/corrupt/i.test(line)) return true;
    if (/crash/i.test(line)) return !(/\[Note\]/.test(line) && /recover/i.test(line));
    return false;
  });
}

async function checkTables(server: TestServer): Promise<void> {
  const rows = await server.query<RowDataPacket[]>('CHECK TABLE app.events, app.counter, app.t, mysql.gtid_slave_pos EXTENDED');
  const bad = rows.filter((row) => row['Msg_type'] === 'error' || (row['Msg_type'] === 'status' && row['Msg_text'] !== 'OK'));
  assert.deepEqual(bad, [], `CHECK TABLE on the copy: ${JSON.stringify(rows)}`);
  assert.ok(rows.filter((row) => row['Msg_type'] === 'status').length >= 4, `CHECK TABLE reported on every table: ${JSON.stringify(rows)}`);
}

/** Every writer commits in order: its transactions in a consistent image are seq 0 .. n-1, without gaps. */
function assertPrefixes(transactions: Iterable<number>, where: string): void {
  const byWriter = new Map<number, number[]>();
  for (const txn of transactions) {
    const writer = Math.floor(txn / TXN_BASE) - 1;
    const list = byWriter.get(writer) ?? [];
    list.push(txn % TXN_BASE);
    byWriter.set(writer, list);
  }
  for (const [writer, seqs] of byWriter) {
    seqs.sort((a, b) => a - b);
    assert.equal(seqs.at(-1), seqs.length - 1, `${where}: writer ${writer}'s transactions are a gapless prefix (${seqs.length} transactions, last seq ${seqs.at(-1)})`);
  }
}

async function slaveStatus(server: TestServer): Promise<RowDataPacket> {
  const [status] = await server.query<RowDataPacket[]>('SHOW SLAVE STATUS');
  assert.ok(status, 'the replica has a slave status');
  return status;
}

function describeSlave(status: RowDataPacket): string {
  const keys = ['Slave_IO_Running', 'Slave_SQL_Running', 'Master_Log_File', 'Read_Master_Log_Pos', 'Relay_Master_Log_File', 'Exec_Master_Log_Pos', 'Last_IO_Error', 'Last_SQL_Error', 'Gtid_IO_Pos', 'Using_Gtid'];
  return keys.map((key) => `${key}=${String(status[key])}`).join(' ');
}

async function snapshotCycle(cycle: number): Promise<void> {
  // A new binary-log file every cycle, so that the decoded history spans several files.
  await origin.query('FLUSH BINARY LOGS');
  const target = totalCommits() + COMMITS_BETWEEN_CYCLES;
  await waitFor(`${COMMITS_BETWEEN_CYCLES} more commits`, async () => (totalCommits() >= target ? true : undefined), { timeoutMs: 30_000, describe: async () => `${totalCommits()} of ${target}; errors: ${writers.flatMap((w) => w.errors).join('; ')}` });

  const frozen = await runHook(setup, 'pre-freeze-script', ['freeze'], { timeoutMs: 45_000 });
  assert.equal(frozen.code, 0, `freeze: ${frozen.stderr}`);
  const coordinates = lastAcquired();

  const image = fs.mkdtempSync(path.join(os.tmpdir(), 'vms-snapshot-'));
  scratch.push(image);
  const copiedDatadir = path.join(image, 'data');
  const pid = origin.pid;
  let stoppedMs = 0;
  try {
    const stoppedAt = Date.now();
    origin.kill('SIGSTOP');
    await waitUntilStopped(pid);
    await runFile('cp', ['-a', origin.datadir, copiedDatadir]);
    stoppedMs = Date.now() - stoppedAt;
  } finally {
    origin.kill('SIGCONT');
  }
  const thawed = await runHook(setup, 'post-thaw-script', ['thaw']);
  assert.equal(thawed.code, 0, `thaw: ${thawed.stderr}`);

  const mode = cycle === FILE_POSITION_CYCLE ? 'file' : 'gtid';
  const copy = await startMariaDBOnDatadir(copiedDatadir, { logBin: true, serverId: 100 + cycle });
  copies.push({ cycle, server: copy, coordinates, mode });
  const log = `cycle ${cycle}: ${coordinates.binlog.file}:${coordinates.binlog.position} gtid ${coordinates.gtid}, mariadbd stopped for ${stoppedMs} ms`;

  // (a) it recovers cleanly.
  assert.deepEqual(abnormalErrorLogLines(copy), [], `${log}: the copy's error log`);
  await checkTables(copy);

  // (b) it holds exactly the origin's data at the recorded coordinates.
  const expected = await originContentAt(coordinates);
  assert.ok(expected.transactions.size > 0, 'the snapshot holds some transactions');
  const rows = await copy.query<RowDataPacket[]>('SELECT id, txn FROM app.events');
  const actualIds = new Set(rows.map((row) => Number(row['id'])));
  const missing = [...expected.ids].filter((id) => !actualIds.has(id));
  const extra = [...actualIds].filter((id) => !expected.ids.has(id));
  assert.deepEqual({ missing: missing.slice(0, 20), extra: extra.slice(0, 20) }, { missing: [], extra: [] }, `${log}: rows of the copy vs the origin's binary log up to the coordinates (${missing.length} missing, ${extra.length} extra)`);
  assert.equal(actualIds.size, expected.ids.size);
  const [counter] = await copy.query<RowDataPacket[]>('SELECT n FROM app.counter WHERE id = 1');
  assert.equal(Number(counter?.['n']), expected.transactions.size, `${log}: the counter equals the number of transactions up to the coordinates`);
  assertPrefixes(expected.transactions, log);
  const [gtid] = await copy.query<RowDataPacket[]>('SELECT @@global.gtid_binlog_pos AS pos');
  assert.equal(String(gtid?.['pos']), coordinates.gtid, `${log}: the copy's gtid_binlog_pos is the recorded GTID`);
  // The writers went on meanwhile: the snapshot is a strict past of the origin.
  const [now] = await origin.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM app.events');
  assert.ok(Number(now?.['n']) > actualIds.size, 'the origin has moved on since the snapshot');

  // (c) seeded from the recorded coordinates, it replicates from the origin.
  const source = `MASTER_HOST = '127.0.0.1', MASTER_PORT = ${origin.port}, MASTER_USER = '${REPLICATION_USER.name}', MASTER_PASSWORD = '${REPLICATION_USER.password}', MASTER_CONNECT_RETRY = 1`;
  if (mode === 'gtid') {
    await copy.query('SET GLOBAL gtid_slave_pos = ?', [coordinates.gtid]);
    await copy.query(`CHANGE MASTER TO ${source}, MASTER_USE_GTID = slave_pos`);
  } else {
    await copy.query(`CHANGE MASTER TO ${source}, MASTER_LOG_FILE = ?, MASTER_LOG_POS = ?, MASTER_USE_GTID = no`, [coordinates.binlog.file, coordinates.binlog.position]);
  }
  await copy.query('START SLAVE');
  await waitFor(`the replica of cycle ${cycle} to run`, async () => {
    const status = await slaveStatus(copy);
    return status['Slave_IO_Running'] === 'Yes' && status['Slave_SQL_Running'] === 'Yes' ? true : undefined;
  }, { timeoutMs: 20_000, describe: async () => describeSlave(await slaveStatus(copy)) });
  process.stdout.write(`${log}; ${actualIds.size} rows, ${expected.transactions.size} transactions in the snapshot; replica seeded by ${mode}\n`);
}

for (let cycle = 0; cycle < CYCLES; cycle += 1) {
  const how = cycle === FILE_POSITION_CYCLE ? 'binlog file and position' : 'GTID';
  test(`cycle ${cycle + 1}: a copy taken while frozen recovers cleanly, holds exactly the origin's transactions up to the recorded coordinates, and replicates from them (${how})`, { timeout: 120_000 }, async () => {
    await snapshotCycle(cycle);
  });
}

test('the replicas seeded from the snapshots catch up with the origin to identical data', { timeout: 120_000 }, async () => {
  assert.equal(copies.length, CYCLES, 'every cycle made a replica');
  await Promise.all(writers.map((writer) => writer.stop()));
  const writerErrors = writers.flatMap((writer) => writer.errors);
  assert.deepEqual(writerErrors, [], 'no writer saw an error');
  const [master] = await origin.query<RowDataPacket[]>('SHOW MASTER STATUS');
  const [originGtid] = await origin.query<RowDataPacket[]>('SELECT @@global.gtid_binlog_pos AS pos');
  const target = { file: String(master?.['File']), position: Number(master?.['Position']), gtid: String(originGtid?.['pos']) };

  for (const copy of copies) {
    await waitFor(`the replica of cycle ${copy.cycle} to catch up with ${JSON.stringify(target)}`, async () => {
      const status = await slaveStatus(copy.server);
      if (status['Slave_SQL_Running'] !== 'Yes' || status['Slave_IO_Running'] !== 'Yes') {
        throw new Error(`the replica of cycle ${copy.cycle} stopped: ${describeSlave(status)}`);
      }
      if (copy.mode === 'file') {
        return status['Relay_Master_Log_File'] === target.file && Number(status['Exec_Master_Log_Pos']) === target.position ? true : undefined;
      }
      const [replicaGtid] = await copy.server.query<RowDataPacket[]>('SELECT @@global.gtid_slave_pos AS pos');
      return String(replicaGtid?.['pos']) === target.gtid ? true : undefined;
    }, { timeoutMs: 60_000, describe: async () => describeSlave(await slaveStatus(copy.server)) });
  }

  const tables = ['app.events', 'app.counter', 'app.t'];
  const fingerprint = async (server: TestServer): Promise<Record<string, string>> => {
    const result: Record<string, string> = {};
    for (const row of await server.query<RowDataPacket[]>(`CHECKSUM TABLE ${tables.join(', ')} EXTENDED`)) {
      result[`checksum ${String(row['Table'])}`] = String(row['Checksum']);
    }
    for (const table of tables) {
      const [count] = await server.query<RowDataPacket[]>(`SELECT COUNT(*) AS n FROM ${table}`);
      result[`rows ${table}`] = String(count?.['n']);
    }
    return result;
  };
  const expected = await fingerprint(origin);
  for (const copy of copies) {
    assert.deepEqual(await fingerprint(copy.server), expected, `the replica of cycle ${copy.cycle} (${copy.mode}) equals the origin`);
  }
  process.stdout.write(`origin and ${copies.length} replicas: ${JSON.stringify(expected)}\n`);
});

test('no acknowledged commit was lost on the origin', async () => {
  const acknowledged = new Map<number, number>();
  for (const writer of writers) for (const [txn, rows] of writer.acknowledged) acknowledged.set(txn, rows);
  const rows = await origin.query<RowDataPacket[]>('SELECT txn, COUNT(*) AS n FROM app.events GROUP BY txn');
  const stored = new Map(rows.map((row) => [Number(row['txn']), Number(row['n'])]));
  const lost = [...acknowledged.keys()].filter((txn) => stored.get(txn) !== acknowledged.get(txn));
  const unacknowledged = [...stored.keys()].filter((txn) => !acknowledged.has(txn));
  assert.deepEqual({ lost: lost.slice(0, 20), unacknowledged: unacknowledged.slice(0, 20) }, { lost: [], unacknowledged: [] });
  const [counter] = await origin.query<RowDataPacket[]>('SELECT n FROM app.counter WHERE id = 1');
  assert.equal(Number(counter?.['n']), acknowledged.size, 'the counter equals the acknowledged commits');
  assert.ok(acknowledged.size >= CYCLES * COMMITS_BETWEEN_CYCLES);
  assertPrefixes(acknowledged.keys(), 'origin');
});
