/**
 * The hook on a REPLICA, end to end: real throwaway MariaDB servers (a primary, a second primary with its
 * own GTID domain for a named multi-source connection 'east', and a replica of both with a parallel
 * applier and log_slave_updates), writers running on both primaries, and the BUILT executable freezing
 * the replica.
 *
 * - The coordinates recorded for each replication channel are the EXECUTED source position
 *   (Relay_Master_Log_File, Exec_Master_Log_Pos) and GTID; while the lock holds the applier is stuck,
 *   the position is a real one in the primary's binary log, and the replica's data is exactly the
 *   primary's binary log decoded up to it. After thaw the replica catches up.
 * - replica_sql_thread = stop stops the appliers that ran (only those), and starts them again at thaw, or
 *   at once when freeze fails.
 * - coordinates_file on a replica holds the replication channels and the seeding statements.
 */
import type { ReplicaChannel } from '../../src/server/coordinates';
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import type { Connection, RowDataPacket } from 'mysql2/promise';
import { type HookSetup, lineOf, makeHookSetup, ourHolders, readLog, runHook } from '../support/hook';
import { startMariaDB, TEST_USER, type TestServer, tryInsert } from '../support/mariadb';
import { sleep, waitFor } from '../support/wait';

const runFile = promisify(execFile);

const REPLICATION_USER = { name: 'repl', password: 'repl-secret' };
/** The GTID domains: the primary's default one, the replica's own, and the 'east' primary's. */
const DOMAIN = { primary: 0, replica: 2, east: 3 } as const;
/** A writer's row ids: writer w commits rows (w + 1) * ID_BASE + seq * 10 + k. */
const ID_BASE = 100_000_000;

type Channel = ReplicaChannel;

interface Recorded {
  binlog: { file: string; position: number } | null;
  gtid: string | null;
  gtidSlavePos?: string | null;
  replication?: Channel[];
  replicationUnknown?: string;
}

/** One source of the replica: its server, the connection name on the replica, and its schema. */
interface Source {
  server: TestServer;
  connectionName: string;
  schema: string;
  domain: number;
}

let primary: TestServer;
let east: TestServer;
let replica: TestServer;
let sources: Source[] = [];
const writers: Writer[] = [];
const scratch: string[] = [];

before(async () => {
  [primary, east, replica] = await Promise.all([
    startMariaDB({ logBin: true, serverId: 1 }),
    startMariaDB({ logBin: true, serverId: 3, extraArgs: [`--gtid-domain-id=${DOMAIN.east}`] }),
    startMariaDB({
      logBin: true,
      serverId: 2,
      extraArgs: ['--log-slave-updates', '--slave-parallel-threads=4', `--gtid-domain-id=${DOMAIN.replica}`, '--relay-log=relay-bin'],
    }),
  ]);
  sources = [
    { server: primary, connectionName: '', schema: 'main', domain: DOMAIN.primary },
    { server: east, connectionName: 'east', schema: 'eastdb', domain: DOMAIN.east },
  ];
  for (const host of ['localhost', '127.0.0.1']) {
    await replica.query('GRANT REPLICA MONITOR, REPLICATION SLAVE ADMIN ON *.* TO ?@?', [TEST_USER.name, host]);
  }

  // Each source's fixtures (users, the app schema) exist on the replica already: replicate from now on.
  const positions: string[] = [];
  for (const source of sources) {
    await source.server.query('CREATE USER ?@? IDENTIFIED BY ?', [REPLICATION_USER.name, '127.0.0.1', REPLICATION_USER.password]);
    await source.server.query('GRANT REPLICATION SLAVE ON *.* TO ?@?', [REPLICATION_USER.name, '127.0.0.1']);
    const [row] = await source.server.query<RowDataPacket[]>('SELECT @@global.gtid_binlog_pos AS pos');
    positions.push(String(row?.['pos']));
  }
  await replica.query('SET GLOBAL gtid_slave_pos = ?', [positions.filter((position) => position !== '').join(',')]);
  for (const source of sources) {
    const name = source.connectionName === '' ? '' : ` '${source.connectionName}'`;
    await replica.query(
      `CHANGE MASTER${name} TO MASTER_HOST = '127.0.0.1', MASTER_PORT = ${source.server.port}, MASTER_USER = '${REPLICATION_USER.name}', ` +
        `MASTER_PASSWORD = '${REPLICATION_USER.password}', MASTER_CONNECT_RETRY = 1, MASTER_USE_GTID = slave_pos`,
    );
  }
  await replica.query('START ALL SLAVES');
  await waitFor('both replication connections to run', async () => {
    const rows = await allSlavesStatus();
    return rows.length === 2 && rows.every((row) => row['Slave_IO_Running'] === 'Yes' && row['Slave_SQL_Running'] === 'Yes') ? true : undefined;
  }, { timeoutMs: 20_000, describe: describeSlaves });

  for (const source of sources) {
    await source.server.query(`CREATE DATABASE ${source.schema}`);
    await source.server.query(`CREATE TABLE ${source.schema}.events (id BIGINT PRIMARY KEY, writer INT NOT NULL, seq INT NOT NULL, note VARCHAR(40)) ENGINE=InnoDB`);
    await source.server.query(`CREATE TABLE ${source.schema}.counter (id INT PRIMARY KEY, n BIGINT NOT NULL) ENGINE=InnoDB`);
    await source.server.query(`INSERT INTO ${source.schema}.counter VALUES (1, 0)`);
  }
  writers.push(new Writer(0, 'main', await primary.connect()), new Writer(1, 'main', await primary.connect()), new Writer(2, 'eastdb', await east.connect()));
  await waitForCatchUp('the replica to apply the schemas');
});

after(async () => {
  await Promise.all(writers.map((writer) => writer.stop()));
  await Promise.all([primary, east, replica].map((server) => server?.remove()));
  for (const dir of scratch) fs.rmSync(dir, { recursive: true, force: true });
});

/** Commits small transactions in a loop: BEGIN; INSERT 1-3 rows; UPDATE the counter; COMMIT. */
class Writer {
  readonly errors: string[] = [];
  commits = 0;
  private running = true;
  private readonly done: Promise<void>;

  constructor(
    readonly index: number,
    private readonly schema: string,
    private readonly connection: Connection,
  ) {
    this.done = this.loop();
  }

  private async loop(): Promise<void> {
    for (let seq = 0; this.running; seq += 1) {
      const rows = 1 + (seq % 3);
      const values = Array.from({ length: rows }, (_, k) => [(this.index + 1) * ID_BASE + seq * 10 + k, this.index, seq, `w${this.index} s${seq}`]);
      try {
        await this.connection.query('BEGIN');
        await this.connection.query(`INSERT INTO ${this.schema}.events (id, writer, seq, note) VALUES ?`, [values]);
        await this.connection.query(`UPDATE ${this.schema}.counter SET n = n + 1 WHERE id = 1`);
        await this.connection.query('COMMIT');
        this.commits += 1;
      } catch (error) {
        this.errors.push(`writer ${this.index} seq ${seq}: ${(error as Error).message}`);
        this.running = false;
      }
      await sleep(2);
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.done;
    await this.connection.end().catch(() => undefined);
  }
}

async function allSlavesStatus(): Promise<RowDataPacket[]> {
  return replica.query<RowDataPacket[]>('SHOW ALL SLAVES STATUS');
}

async function slaveStatus(connectionName: string): Promise<RowDataPacket> {
  const row = (await allSlavesStatus()).find((candidate) => candidate['Connection_name'] === connectionName);
  assert.ok(row, `the replica has the connection '${connectionName}'`);
  return row;
}

async function describeSlaves(): Promise<string> {
  const keys = ['Connection_name', 'Slave_IO_Running', 'Slave_SQL_Running', 'Relay_Master_Log_File', 'Exec_Master_Log_Pos', 'Read_Master_Log_Pos', 'Gtid_Slave_Pos', 'Last_IO_Error', 'Last_SQL_Error'];
  return (await allSlavesStatus()).map((row) => keys.map((key) => `${key}=${String(row[key])}`).join(' ')).join(' | ');
}

async function masterStatus(server: TestServer): Promise<{ file: string; position: number }> {
  const [row] = await server.query<RowDataPacket[]>('SHOW MASTER STATUS');
  return { file: String(row?.['File']), position: Number(row?.['Position']) };
}

/** Waits until the replica has executed everything each source has in its binary log right now. */
async function waitForCatchUp(what: string, timeoutMs = 60_000): Promise<void> {
  const targets = await Promise.all(sources.map(async (source) => ({ source, status: await masterStatus(source.server) })));
  await waitFor(what, async () => {
    for (const { source, status } of targets) {
      const row = await slaveStatus(source.connectionName);
      if (row['Slave_SQL_Running'] !== 'Yes' && row['Last_SQL_Error'] !== '') throw new Error(`the applier of '${source.connectionName}' stopped: ${String(row['Last_SQL_Error'])}`);
      const file = String(row['Relay_Master_Log_File']);
      if (file < status.file || (file === status.file && Number(row['Exec_Master_Log_Pos']) < status.position)) return undefined;
    }
    return true;
  }, { timeoutMs, describe: describeSlaves });
}

function newSetup(context: TestContext, snapshot: Record<string, string> = {}): HookSetup {
  const setup = makeHookSetup(replica, { snapshot: { lock_wait_timeout: '2', freeze_timeout: '30', max_lock_time: '60', ...snapshot } });
  scratch.push(setup.dir);
  context.after(async () => {
    // A lock left by a failed assertion would stall the other tests.
    await runHook(setup, 'post-thaw-script', ['freezeFail']).catch(() => undefined);
  });
  return setup;
}

function recordedCoordinates(setup: HookSetup): Recorded {
  return lineOf(readLog(setup), 'lock.acquired', 'last')['coordinates'] as Recorded;
}

function channelOf(coordinates: Recorded, connectionName: string): Channel {
  const channel = coordinates.replication?.find((candidate) => candidate.channel === connectionName);
  assert.ok(channel, `coordinates.replication has the channel '${connectionName}': ${JSON.stringify(coordinates)}`);
  return channel;
}

function mariadbBinlog(): string {
  for (const candidate of ['/usr/bin/mariadb-binlog', '/usr/bin/mysqlbinlog']) if (fs.existsSync(candidate)) return candidate;
  return 'mariadb-binlog';
}

interface BinlogPrefix {
  /** the row ids of `schema`.events inserted by transactions committed before the position */
  ids: Set<number>;
  /** the last GTID of the source's domain before the position */
  lastGtid: string | undefined;
}

/**
 * A source's binary log decoded from its first file up to `file`:`position`. A transaction left open at
 * the position (the replica would then have executed half a transaction) is an error.
 */
async function binlogPrefix(source: Source, file: string, position: number): Promise<BinlogPrefix> {
  const logs = await source.server.query<RowDataPacket[]>('SHOW BINARY LOGS');
  const names = logs.map((row) => String(row['Log_name'])).filter((name) => name <= file);
  assert.equal(names.at(-1), file, `the executed file ${file} is in the binary log of the source '${source.connectionName}': ${names.join(', ')}`);
  const { stdout } = await runFile(
    mariadbBinlog(),
    ['--no-defaults', `--stop-position=${position}`, '--base64-output=decode-rows', '-v', ...names.map((name) => path.join(source.server.datadir, name))],
    { maxBuffer: 512 * 1024 * 1024 },
  );
  const prefix: BinlogPrefix = { ids: new Set(), lastGtid: undefined };
  const insert = `### INSERT INTO \`${source.schema}\`.\`events\``;
  let pending: number[] = [];
  let inTransaction = false;
  let inInsert = false;
  for (const line of stdout.split('\n')) {
    const gtid = /\bGTID (\d+)-(\d+)-(\d+)\b/.exec(line);
    if (gtid !== null && Number(gtid[1]) === source.domain) prefix.lastGtid = `${gtid[1]}-${gtid[2]}-${gtid[3]}`;
    if (line.startsWith('### ')) {
      if (line === insert) inInsert = true;
      else if (/^###\s+@1=(-?\d+)/.test(line) && inInsert) {
        pending.push(Number(/^###\s+@1=(-?\d+)/.exec(line)?.[1]));
        inInsert = false;
      } else if (line !== '### SET' && !/^###\s+@\d+=/.test(line)) inInsert = false;
      continue;
    }
    if (/^(BEGIN|START TRANSACTION)\b/.test(line)) {
      inTransaction = true;
      pending = [];
    } else if (/^COMMIT\b/.test(line)) {
      for (const id of pending) prefix.ids.add(id);
      pending = [];
      inTransaction = false;
    } else if (/^ROLLBACK\b/.test(line)) {
      pending = [];
      inTransaction = false;
    }
  }
  assert.ok(!inTransaction, `the executed position ${file}:${position} of '${source.connectionName}' is inside a transaction`);
  return prefix;
}

/** The GTID of `domain` in a MariaDB GTID position such as 0-1-57,3-3-12. */
function gtidOfDomain(position: string | null | undefined, domain: number): string | undefined {
  return (position ?? '').split(',').map((part) => part.trim()).find((part) => part.startsWith(`${domain}-`));
}

async function freeze(setup: HookSetup): Promise<void> {
  const frozen = await runHook(setup, 'pre-freeze-script', ['freeze'], { timeoutMs: 45_000 });
  assert.equal(frozen.code, 0, `freeze: ${frozen.stderr}`);
}

async function thaw(setup: HookSetup): Promise<void> {
  const thawed = await runHook(setup, 'post-thaw-script', ['thaw']);
  assert.equal(thawed.code, 0, `thaw: ${thawed.stderr}`);
  assert.deepEqual(ourHolders(), [], 'no lock holder is left');
}

test('freeze on the replica records, per channel, the executed source position and GTID; the data is the primary\'s at that position', { timeout: 120_000 }, async (context) => {
  const setup = newSetup(context);
  await waitFor('the writers to commit', async () => (writers.every((writer) => writer.commits > 20) ? true : undefined), { timeoutMs: 10_000 });
  await freeze(setup);
  const coordinates = recordedCoordinates(setup);
  assert.equal(coordinates.replicationUnknown, undefined, 'REPLICA MONITOR lets the hook read the replica status');
  assert.equal(coordinates.replication?.length, 2, `one entry per channel: ${JSON.stringify(coordinates.replication)}`);

  // While locked the applier cannot commit: nothing moves on the replica while the primaries write on.
  const before = await allSlavesStatus();
  const [slavePos] = await replica.query<RowDataPacket[]>('SELECT @@global.gtid_slave_pos AS pos, @@global.gtid_binlog_pos AS binlogPos');
  assert.equal(await tryInsert(replica), 'ER_LOCK_WAIT_TIMEOUT', 'a write on the replica waits for the lock');
  const after = await allSlavesStatus();
  for (const source of sources) {
    const was = before.find((row) => row['Connection_name'] === source.connectionName);
    const now = after.find((row) => row['Connection_name'] === source.connectionName);
    assert.equal(now?.['Exec_Master_Log_Pos'], was?.['Exec_Master_Log_Pos'], `the applier of '${source.connectionName}' is stuck while locked`);
  }
  assert.equal(coordinates.gtid, String(slavePos?.['binlogPos']), "the replica's own gtid_binlog_pos");
  assert.equal(coordinates.gtidSlavePos, String(slavePos?.['pos']), "the replica's gtid_slave_pos");

  const report: string[] = [];
  for (const source of sources) {
    const recorded = channelOf(coordinates, source.connectionName);
    const status = after.find((row) => row['Connection_name'] === source.connectionName);
    assert.ok(status);
    // The EXECUTED position, not the one read: Relay_Master_Log_File / Exec_Master_Log_Pos.
    assert.deepEqual(
      { file: recorded.sourceLogFile, position: recorded.sourceLogPosition },
      { file: String(status['Relay_Master_Log_File']), position: Number(status['Exec_Master_Log_Pos']) },
      `channel '${source.connectionName}': the executed position`,
    );
    assert.equal(recorded.sourceHost, '127.0.0.1');
    assert.equal(recorded.sourcePort, source.server.port);
    assert.equal(recorded.usingGtid, 'Slave_Pos');
    // The channel's own domain is right; the value as a whole is not gtid_slave_pos (see the todo test below).
    assert.equal(gtidOfDomain(recorded.gtid, source.domain), gtidOfDomain(String(slavePos?.['pos']), source.domain), `channel '${source.connectionName}': the GTID of domain ${source.domain}`);
    assert.equal(recorded.sqlRunning, true);
    assert.equal(recorded.ioRunning, true);

    // A real position in the source's binary log, at or before where the source is now.
    const sourceNow = await masterStatus(source.server);
    const file = recorded.sourceLogFile ?? '';
    const position = recorded.sourceLogPosition ?? -1;
    assert.ok(file < sourceNow.file || (file === sourceNow.file && position <= sourceNow.position), `${file}:${position} is at or before the source's ${sourceNow.file}:${sourceNow.position}`);
    assert.ok(position > 4, 'past the binlog header');

    // The replica's data is exactly the source's binary log decoded up to that position.
    const prefix = await binlogPrefix(source, file, position);
    assert.equal(prefix.lastGtid, gtidOfDomain(recorded.gtid, source.domain), `channel '${source.connectionName}': the last GTID of domain ${source.domain} before the position is the recorded one`);
    const rows = await replica.query<RowDataPacket[]>(`SELECT id FROM ${source.schema}.events`);
    const actual = new Set(rows.map((row) => Number(row['id'])));
    const missing = [...prefix.ids].filter((id) => !actual.has(id));
    const extra = [...actual].filter((id) => !prefix.ids.has(id));
    assert.deepEqual({ missing: missing.slice(0, 10), extra: extra.slice(0, 10) }, { missing: [], extra: [] }, `channel '${source.connectionName}': the replica's rows vs the source's binlog up to ${file}:${position} (${missing.length} missing, ${extra.length} extra)`);
    assert.ok(prefix.ids.size > 0, 'the replica has some of the source\'s rows');
    const [counter] = await replica.query<RowDataPacket[]>(`SELECT n FROM ${source.schema}.counter WHERE id = 1`);
    const [sourceRows] = await source.server.query<RowDataPacket[]>(`SELECT COUNT(*) AS n FROM ${source.schema}.events`);
    assert.ok(Number(sourceRows?.['n']) > actual.size, `the source '${source.connectionName}' has moved on meanwhile`);
    report.push(`'${source.connectionName}' ${file}:${position} ${recorded.gtid}: ${actual.size} rows, counter ${String(counter?.['n'])}, source at ${sourceNow.file}:${sourceNow.position}`);
  }
  context.diagnostic(report.join('; '));

  await thaw(setup);
  assert.equal(await tryInsert(replica), 'ok', 'writes on the replica flow again');
  await waitFor('the appliers to move past the recorded positions', async () => {
    const rows = await allSlavesStatus();
    return sources.every((source) => {
      const row = rows.find((candidate) => candidate['Connection_name'] === source.connectionName);
      const recorded = channelOf(coordinates, source.connectionName);
      return row !== undefined && (String(row['Relay_Master_Log_File']) > (recorded.sourceLogFile ?? '') || Number(row['Exec_Master_Log_Pos']) > (recorded.sourceLogPosition ?? 0));
    }) ? true : undefined;
  }, { timeoutMs: 20_000, describe: describeSlaves });
  await waitForCatchUp('the replica to catch up after thaw');
});

test(
  "each channel's gtid is the replica's gtid_slave_pos for that channel's domain, as src/server/coordinates.ts documents",
  {
    timeout: 60_000,
  },
  async (context) => {
    const setup = newSetup(context);
    await freeze(setup);
    const coordinates = recordedCoordinates(setup);
    const [row] = await replica.query<RowDataPacket[]>('SELECT @@global.gtid_slave_pos AS pos, @@global.gtid_current_pos AS currentPos');
    await thaw(setup);
    for (const source of sources) {
      const recorded = channelOf(coordinates, source.connectionName);
      assert.equal(recorded.gtid, gtidOfDomain(String(row?.['pos']), source.domain), `channel '${source.connectionName}' (gtid_current_pos ${String(row?.['currentPos'])})`);
    }
  },
);

test('replica_sql_thread = stop: the appliers that ran are stopped while locked and started again at thaw', { timeout: 120_000 }, async (context) => {
  const setup = newSetup(context, { replica_sql_thread: 'stop' });
  // One applier stopped by the admin beforehand: the hook must leave it stopped.
  await replica.query("STOP SLAVE 'east' SQL_THREAD");
  context.after(() => replica.query("START SLAVE 'east' SQL_THREAD"));
  await waitFor("the 'east' applier to stop", async () => ((await slaveStatus('east'))['Slave_SQL_Running'] === 'No' ? true : undefined), { timeoutMs: 10_000 });

  await freeze(setup);
  const applier = lineOf(readLog(setup), 'replica.applier', 'last');
  assert.deepEqual(applier['channels'], [''], `only the running applier is stopped: ${JSON.stringify(applier)}`);
  assert.equal((await slaveStatus(''))['Slave_SQL_Running'], 'No', 'the default applier is stopped while locked');
  assert.equal((await slaveStatus(''))['Slave_IO_Running'], 'Yes', 'the receiver keeps running');
  assert.equal((await slaveStatus('east'))['Slave_SQL_Running'], 'No');
  const coordinates = recordedCoordinates(setup);
  const status = await slaveStatus('');
  assert.deepEqual(
    { file: channelOf(coordinates, '').sourceLogFile, position: channelOf(coordinates, '').sourceLogPosition, running: channelOf(coordinates, '').sqlRunning },
    { file: String(status['Relay_Master_Log_File']), position: Number(status['Exec_Master_Log_Pos']), running: false },
    'the coordinates are those of the stopped applier',
  );

  await thaw(setup);
  assert.equal((await slaveStatus(''))['Slave_SQL_Running'], 'Yes', 'the default applier runs again after thaw');
  assert.equal((await slaveStatus('east'))['Slave_SQL_Running'], 'No', "the 'east' applier that the admin stopped stays stopped");
  assert.ok(readLog(setup).some((line) => line['event'] === 'lock.released'), 'the holder logged the release');
});

test('replica_sql_thread = stop: both appliers are stopped, and started again at thaw', { timeout: 120_000 }, async (context) => {
  const setup = newSetup(context, { replica_sql_thread: 'stop' });
  await freeze(setup);
  assert.deepEqual([...lineOf(readLog(setup), 'replica.applier', 'last')['channels']].sort(), ['', 'east']);
  for (const row of await allSlavesStatus()) assert.equal(row['Slave_SQL_Running'], 'No', `'${String(row['Connection_name'])}' is stopped while locked`);
  await thaw(setup);
  for (const row of await allSlavesStatus()) assert.equal(row['Slave_SQL_Running'], 'Yes', `'${String(row['Connection_name'])}' runs again after thaw`);
  await waitForCatchUp('the replica to catch up after thaw');
});

test('replica_sql_thread = stop: when freeze fails (freeze_timeout, a blocker), the appliers run again afterwards', { timeout: 120_000 }, async (context) => {
  const setup = newSetup(context, { replica_sql_thread: 'stop', long_query_time: '1', lock_wait_timeout: '1', freeze_timeout: '3' });
  const blocker = await replica.connect();
  const blocking = blocker.query('SELECT SLEEP(30)').catch(() => undefined);
  context.after(async () => {
    blocker.destroy();
    await blocking;
  });
  await waitFor('the blocker to run for over a second', async () => {
    const rows = await replica.query<RowDataPacket[]>("SELECT TIME_MS FROM information_schema.PROCESSLIST WHERE INFO = 'SELECT SLEEP(30)'");
    return Number(rows[0]?.['TIME_MS'] ?? 0) > 1200 ? true : undefined;
  }, { timeoutMs: 10_000 });
  const frozen = await runHook(setup, 'pre-freeze-script', ['freeze'], { timeoutMs: 45_000 });
  assert.equal(frozen.code, 1, `freeze fails: ${frozen.stdout} ${frozen.stderr}`);
  assert.equal(lineOf(readLog(setup), 'freeze.failed', 'last')['code'], 'FREEZE_TIMEOUT');
  assert.deepEqual([...lineOf(readLog(setup), 'replica.applier', 'last')['channels']].sort(), ['', 'east'], 'the appliers had been stopped');
  for (const row of await allSlavesStatus()) assert.equal(row['Slave_SQL_Running'], 'Yes', `'${String(row['Connection_name'])}' runs again after the failed freeze`);
  assert.deepEqual(ourHolders(), []);
});

test('coordinates_file on the replica: valid JSON with the replication channels and the seeding statements', { timeout: 120_000 }, async (context) => {
  const setup = newSetup(context, {});
  const file = path.join(setup.dir, 'coordinates.json');
  fs.appendFileSync(setup.configFile, `coordinates_file = ${file}\n`);
  await freeze(setup);
  assert.ok(fs.existsSync(file), 'the coordinates file exists after freeze');
  const record = JSON.parse(fs.readFileSync(file, 'utf8')) as { coordinates: Recorded; seedReplica: string[]; lockMode: string; exact: boolean; server: string };
  assert.deepEqual(record.coordinates, recordedCoordinates(setup), 'the file holds the logged coordinates');
  assert.deepEqual(record.coordinates.replication?.map((channel) => channel.channel).sort(), ['', 'east']);
  for (const channel of record.coordinates.replication ?? []) {
    assert.equal(typeof channel.sourceLogFile, 'string');
    assert.equal(typeof channel.sourceLogPosition, 'number');
  }
  assert.match(record.server, /MariaDB/);
  assert.equal(record.exact, true);
  assert.ok(Array.isArray(record.seedReplica) && record.seedReplica.length > 0, `seedReplica statements: ${JSON.stringify(record.seedReplica)}`);
  assert.ok(record.seedReplica.some((statement) => statement.includes(String(record.coordinates.gtid))), 'seeded from the replica\'s own GTID position');
  await thaw(setup);
});

test('without REPLICA MONITOR the replica status is unknown, and the coordinates say so', { timeout: 60_000 }, async (context) => {
  for (const host of ['localhost', '127.0.0.1']) await replica.query('REVOKE REPLICA MONITOR ON *.* FROM ?@?', [TEST_USER.name, host]);
  context.after(async () => {
    for (const host of ['localhost', '127.0.0.1']) await replica.query('GRANT REPLICA MONITOR ON *.* TO ?@?', [TEST_USER.name, host]);
  });
  const setup = newSetup(context);
  await freeze(setup);
  const coordinates = recordedCoordinates(setup);
  await thaw(setup);
  assert.equal(coordinates.replication, undefined);
  assert.match(coordinates.replicationUnknown ?? '', /REPLICA MONITOR/);
  assert.equal(typeof coordinates.binlog?.position, 'number', "the replica's own binary-log position is still recorded");
});

test('the writers saw no error and the replica ends identical to its sources', { timeout: 120_000 }, async () => {
  await Promise.all(writers.map((writer) => writer.stop()));
  assert.deepEqual(writers.flatMap((writer) => writer.errors), []);
  await waitForCatchUp('the replica to catch up with the stopped writers');
  for (const source of sources) {
    for (const table of ['events', 'counter']) {
      const [expected] = await source.server.query<RowDataPacket[]>(`CHECKSUM TABLE ${source.schema}.${table} EXTENDED`);
      const [actual] = await replica.query<RowDataPacket[]>(`CHECKSUM TABLE ${source.schema}.${table} EXTENDED`);
      assert.equal(String(actual?.['Checksum']), String(expected?.['Checksum']), `${source.schema}.${table} is identical on the replica`);
    }
  }
});
