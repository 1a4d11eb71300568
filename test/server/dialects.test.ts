/**
 * The MySQL-family dialects this project cannot install here (MySQL 8.0 before and after 8.0.22, 8.4 LTS,
 * 9.x, the calendar version 26.x, Percona Server 5.7 and 8.0), against EMULATIONS of their protocol
 * answers (test/support/fakemysql.ts: what each profile answers and what it is based on). For each
 * dialect: the coordinates src/server/coordinates.ts reads and the statements it tries on the way, the lock
 * modes src/server/lockmodes.ts offers, the privilege check of src/server/session.ts, and one freeze / thaw of the BUILT
 * executable over TCP against the emulation.
 *
 * These tests prove that our statements, fallbacks and column names fit the documented dialects; they
 * cannot prove that a real server answers as its manual says.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import type { RowDataPacket } from 'mysql2';
import { readCoordinates, readCoordinatesFromLogStatus, type Coordinates } from '../../src/server/coordinates';
import { HookError } from '../../src/errors';
import { chooseMode, lockPlan, unsupportedReason, type ServerTraits } from '../../src/server/lockmodes';
import { LOCK_MODES, type LockMode, type LockModeSetting } from '../../src/config/settings';
import { checkPrivileges } from '../../src/server/privileges';
import { openSession, type Session } from '../../src/server/session';
import { readProcesslist } from '../../src/server/processlist';
import { DIALECTS, EMULATED_DATADIR, normalize, startFakeServer, type DialectName, type FakeChannel, type FakeServer, type FakeState } from '../support/fakemysql';
import { type HookSetup, lineOf, makeHookSetup, ourHolders, quoteOptionValue, readLog, runHook, writeConfig } from '../support/hook';
import type { TestServer } from '../support/mariadb';

/** A multi-source GTID set as MySQL prints it: a newline after each comma. */
const GTID_EXECUTED = '3e11fa47-71ca-11e1-9e33-c80aa9429562:1-77,\n4a5b6c7d-0000-11ef-8000-0242ac110002:1-1234';
const GTID_ONE_LINE = GTID_EXECUTED.replace(/\n/g, '');

function channel(name: string, host: string, execPosition: number, options: Partial<FakeChannel> = {}): FakeChannel {
  return {
    name,
    sourceHost: host,
    sourcePort: 3306,
    readFile: 'mysql-bin.000008',
    readPosition: 9_000,
    execFile: 'mysql-bin.000007',
    execPosition,
    ioRunning: true,
    sqlRunning: true,
    autoPosition: true,
    retrievedGtidSet: '4a5b6c7d-0000-11ef-8000-0242ac110002:1-1300',
    ...options,
  };
}

interface Expectation {
  dialect: DialectName;
  channels: FakeChannel[];
  /** the binary-log status statements readCoordinates tries, with the answer each gets */
  binlogTried: Array<[string, 'rows' | number]>;
  replicaTried: Array<[string, 'rows' | number]>;
  auto: LockMode;
  supported: LockMode[];
  /** lock_mode for the end-to-end run, and the mode it resolves to */
  e2eMode: LockModeSetting;
  e2eResolved: LockMode;
}

const MASTER_STATUS_FALLBACK: Array<[string, 'rows' | number]> = [['SHOW BINARY LOG STATUS', 1064], ['SHOW MASTER STATUS', 'rows']];
const BINARY_LOG_STATUS: Array<[string, 'rows' | number]> = [['SHOW BINARY LOG STATUS', 'rows']];
const SLAVE_STATUS_FALLBACK: Array<[string, 'rows' | number]> = [['SHOW REPLICA STATUS', 1064], ['SHOW SLAVE STATUS', 'rows']];
const REPLICA_STATUS: Array<[string, 'rows' | number]> = [['SHOW REPLICA STATUS', 'rows']];

const EXPECTATIONS: Expectation[] = [
  {
    dialect: 'mysql-8.0.20',
    channels: [channel('', '10.0.0.1', 4_321, { autoPosition: false })],
    binlogTried: MASTER_STATUS_FALLBACK,
    replicaTried: SLAVE_STATUS_FALLBACK,
    auto: 'ftwrl',
    supported: ['ftwrl', 'instance'],
    e2eMode: 'ftwrl',
    e2eResolved: 'ftwrl',
  },
  {
    dialect: 'mysql-8.0.42',
    channels: [channel('', '10.0.0.1', 4_321)],
    binlogTried: MASTER_STATUS_FALLBACK,
    replicaTried: REPLICA_STATUS,
    auto: 'ftwrl',
    supported: ['ftwrl', 'instance'],
    e2eMode: 'auto',
    e2eResolved: 'ftwrl',
  },
  {
    dialect: 'mysql-8.4',
    channels: [channel('', '10.0.0.1', 4_321), channel('east', '10.0.0.2', 777, { execFile: 'east-bin.000002', sqlRunning: false })],
    binlogTried: BINARY_LOG_STATUS,
    replicaTried: REPLICA_STATUS,
    auto: 'ftwrl',
    supported: ['ftwrl', 'instance'],
    e2eMode: 'instance',
    e2eResolved: 'instance',
  },
  {
    dialect: 'mysql-9.x',
    channels: [],
    binlogTried: BINARY_LOG_STATUS,
    replicaTried: REPLICA_STATUS,
    auto: 'ftwrl',
    supported: ['ftwrl', 'instance'],
    e2eMode: 'instance',
    e2eResolved: 'instance',
  },
  {
    dialect: 'mysql-26.x',
    channels: [channel('', '10.0.0.1', 4_321), channel('west', '10.0.0.3', 555)],
    binlogTried: BINARY_LOG_STATUS,
    replicaTried: REPLICA_STATUS,
    auto: 'ftwrl',
    supported: ['ftwrl', 'instance'],
    e2eMode: 'ftwrl',
    e2eResolved: 'ftwrl',
  },
  {
    dialect: 'percona-5.7',
    channels: [channel('', '10.0.0.1', 4_321)],
    binlogTried: MASTER_STATUS_FALLBACK,
    replicaTried: SLAVE_STATUS_FALLBACK,
    auto: 'backup_locks',
    supported: ['ftwrl', 'backup_locks'],
    e2eMode: 'auto',
    e2eResolved: 'backup_locks',
  },
  {
    dialect: 'percona-8.0',
    channels: [channel('', '10.0.0.1', 4_321)],
    binlogTried: MASTER_STATUS_FALLBACK,
    replicaTried: REPLICA_STATUS,
    auto: 'ftwrl',
    supported: ['ftwrl', 'backup_locks', 'instance'],
    e2eMode: 'backup_locks',
    e2eResolved: 'backup_locks',
  },
];

function state(expectation: Expectation, overrides: Partial<FakeState> = {}): Partial<FakeState> {
  return { gtidExecuted: GTID_EXECUTED, channels: structuredClone(expectation.channels), ...overrides };
}

/** What readCoordinates must find: the fake's binlog, its GTID on one line, and every channel. */
function expectedCoordinates(fake: FakeServer): Coordinates {
  const coordinates: Coordinates = { binlog: fake.state.binlog, gtid: GTID_ONE_LINE };
  if (fake.state.channels.length > 0) {
    coordinates.replication = fake.state.channels.map((entry) => ({
      channel: entry.name,
      sourceHost: entry.sourceHost,
      sourcePort: entry.sourcePort,
      sourceLogFile: entry.execFile,
      sourceLogPosition: entry.execPosition,
      gtid: GTID_ONE_LINE,
      usingGtid: entry.autoPosition ? 'Auto_Position' : 'No',
      sqlRunning: entry.sqlRunning,
      ioRunning: entry.ioRunning,
    }));
  }
  return coordinates;
}

/** The statements received since `mark`, comments removed, with their answers. */
function triedSince(fake: FakeServer, mark: number): Array<[string, 'rows' | 'ok' | number]> {
  return fake.statements.slice(mark).map((statement) => [normalize(statement.sql), statement.answer]);
}

async function traitsOf(session: Session): Promise<ServerTraits> {
  const [rows] = await session.connection.query<RowDataPacket[]>("SHOW GLOBAL VARIABLES LIKE 'have_backup_locks'");
  return { version: session.server.version, isMariaDB: session.server.isMariaDB, backupLocks: rows[0]?.['Value'] === 'YES' };
}

async function withSession<T>(fake: FakeServer, use: (session: Session) => Promise<T>): Promise<T> {
  const session = await openSession(fake.client());
  try {
    return await use(session);
  } finally {
    await session.close();
  }
}

const scratch: string[] = [];
after(() => {
  for (const dir of scratch) fs.rmSync(dir, { recursive: true, force: true });
});

/** A hook setup whose [client] reaches the fake over TCP (host and port only: no socket). */
function hookSetup(fake: FakeServer, snapshot: Record<string, string>): HookSetup {
  const setup = makeHookSetup({ socket: '/nonexistent/mysqld.sock' } as TestServer);
  scratch.push(setup.dir);
  const client = fake.client();
  const settings = {
    run_dir: setup.runDir,
    log_file: setup.logFile,
    lock_wait_timeout: '2',
    long_query_time: '1',
    max_lock_time: '30',
    freeze_timeout: '20',
    ...snapshot,
  };
  writeConfig(
    setup,
    [
      '[client]',
      `user = ${client.user}`,
      `password = ${quoteOptionValue(client.password)}`,
      `host = ${client.host}`,
      `port = ${client.port}`,
      '[snapshot]',
      ...Object.entries(settings).map(([key, value]) => `${key} = ${value}`),
      '',
    ].join('\n'),
  );
  return setup;
}

for (const expectation of EXPECTATIONS) {
  const profile = DIALECTS[expectation.dialect];
  describe(`${expectation.dialect} (emulated ${profile.version})`, () => {
    let fake: FakeServer;

    before(async () => {
      fake = await startFakeServer(expectation.dialect, state(expectation));
    });

    after(async () => {
      await fake.close();
    });

    test('openSession reads the version and the account; MySQL, not MariaDB', async () => {
      await withSession(fake, async (session) => {
        assert.equal(session.server.version, profile.version);
        assert.equal(session.server.isMariaDB, false);
        assert.equal(session.server.account, 'snapshot@%');
        assert.equal(session.server.logBin, true);
        assert.ok(Math.abs(session.server.startedAt - (Date.now() - fake.state.uptime * 1000)) < 5000, 'startedAt = now - Uptime');
      });
    });

    test('a wrong password is refused with 1045, which openSession reports as ACCESS', async () => {
      await assert.rejects(openSession({ ...fake.client(), password: 'wrong' }), (error: unknown) => {
        assert.ok(error instanceof HookError);
        assert.equal(error.code, 'ACCESS');
        return true;
      });
    });

    test(`readCoordinates: ${expectation.binlogTried.map(([statement]) => statement).join(' -> ')}, then ${expectation.replicaTried.map(([statement]) => statement).join(' -> ')}`, async () => {
      await withSession(fake, async (session) => {
        const mark = fake.statements.length;
        const coordinates = await readCoordinates(session);
        assert.deepEqual(coordinates, expectedCoordinates(fake));
        assert.deepEqual(triedSince(fake, mark), [...expectation.binlogTried, ...expectation.replicaTried]);
      });
    });

    if (profile.logStatus) {
      test('readCoordinatesFromLogStatus: performance_schema.log_status, then the replica status', async () => {
        await withSession(fake, async (session) => {
          const mark = fake.statements.length;
          const coordinates = await readCoordinatesFromLogStatus(session);
          assert.deepEqual(coordinates, expectedCoordinates(fake));
          assert.deepEqual(triedSince(fake, mark), [['SELECT LOCAL FROM performance_schema.log_status', 'rows'], ...expectation.replicaTried]);
        });
      });
    } else {
      test('readCoordinatesFromLogStatus: performance_schema.log_status does not exist (1146)', async () => {
        await withSession(fake, async (session) => {
          await assert.rejects(readCoordinatesFromLogStatus(session), { errno: 1146 });
        });
      });
    }

    test(`lock modes: auto takes ${expectation.auto}; ${expectation.supported.join(', ')} supported`, async () => {
      const traits = await withSession(fake, traitsOf);
      assert.equal(traits.backupLocks, profile.backupLocks, 'have_backup_locks');
      assert.equal(chooseMode(traits).mode, expectation.auto);
      for (const mode of LOCK_MODES) {
        const reason = unsupportedReason(mode, traits);
        assert.equal(reason === undefined, expectation.supported.includes(mode), `${mode}: ${reason ?? 'supported'}`);
      }
      for (const mode of expectation.supported) {
        const plan = lockPlan(mode, traits, 2, '/* tag */');
        // No MariaDB-only syntax on a MySQL-family server.
        for (const statement of [...plan.lock, ...plan.unlock]) assert.doesNotMatch(statement, /SET STATEMENT|BACKUP STAGE/, `${mode}: ${statement}`);
      }
      if (expectation.supported.includes('backup_locks')) {
        const plan = lockPlan('backup_locks', traits, 2, '');
        const binlogLock = profile.binlogBackupLock;
        assert.deepEqual(plan.lock.map(normalize), binlogLock ? ['LOCK TABLES FOR BACKUP', 'LOCK BINLOG FOR BACKUP'] : ['LOCK TABLES FOR BACKUP']);
        assert.deepEqual(plan.unlock, binlogLock ? ['UNLOCK BINLOG', 'UNLOCK TABLES'] : ['UNLOCK TABLES']);
        assert.equal(plan.coordinatesFrom, binlogLock ? 'status' : 'log_status');
        assert.equal(plan.exact, binlogLock);
      }
      if (expectation.supported.includes('instance')) {
        const plan = lockPlan('instance', traits, 2, '');
        assert.deepEqual({ lock: plan.lock.map(normalize), unlock: plan.unlock, from: plan.coordinatesFrom, exact: plan.exact }, { lock: ['LOCK INSTANCE FOR BACKUP'], unlock: ['UNLOCK INSTANCE'], from: 'log_status', exact: false });
      }
    });

    test(`checkPrivileges for lock_mode ${expectation.e2eResolved}: the grants of SHOW GRANTS suffice; each missing privilege is named with its GRANT`, async () => {
      await withSession(fake, (session) => checkPrivileges(session, { mode: expectation.e2eResolved }));
      // Each case: the grants taken away (a privilege and those that would also do) and the one to name.
      const lockPrivilege: Record<LockMode, { remove: string[]; named: string } | undefined> = {
        ftwrl: { remove: ['RELOAD', 'FLUSH_TABLES'], named: 'RELOAD' },
        backup_stage: undefined,
        // Percona 5.7 is one of the gaps below.
        backup_locks: profile.dynamicPrivileges ? { remove: ['BACKUP_ADMIN', 'RELOAD'], named: 'BACKUP_ADMIN' } : undefined,
        instance: { remove: ['BACKUP_ADMIN'], named: 'BACKUP_ADMIN' },
      };
      const cases = [lockPrivilege[expectation.e2eResolved], { remove: ['PROCESS'], named: 'PROCESS' }, { remove: ['REPLICATION CLIENT', 'SUPER'], named: 'REPLICATION CLIENT' }];
      const granted = fake.state.grants;
      try {
        for (const missing of cases) {
          if (missing === undefined) continue;
          fake.state.grants = granted.filter((grant) => !missing.remove.includes(grant));
          await withSession(fake, async (session) => {
            await assert.rejects(checkPrivileges(session, { mode: expectation.e2eResolved }), (error: unknown) => {
              assert.ok(error instanceof HookError);
              assert.equal(error.code, 'PRIVILEGE');
              assert.match(error.message, new RegExp(`lacks the ${missing.named} privilege`));
              assert.ok(error.message.includes(`GRANT ${missing.named} ON *.* TO 'snapshot'@'%';`), error.message);
              return true;
            });
          });
        }
      } finally {
        fake.state.grants = granted;
      }
    });

    test(`the built executable: vmware-mysql-snapshot freeze (lock_mode ${expectation.e2eMode}) locks with ${expectation.e2eResolved} and records the coordinates; thaw unlocks`, { timeout: 60_000 }, async () => {
      const setup = hookSetup(fake, { lock_mode: expectation.e2eMode });
      const mark = fake.statements.length;
      const eventsMark = fake.lockEvents.length;
      let holder = -1;
      const frozen = await runHook(setup, 'vmware-mysql-snapshot', ['freeze']);
      try {
        assert.equal(frozen.code, 0, `freeze: ${frozen.stdout} ${frozen.stderr}`);
        const acquired = lineOf(readLog(setup), 'lock.acquired', 'last');
        assert.equal(acquired['lockMode'], expectation.e2eResolved);
        // The emulated server's data directory is not on this machine: nothing to watch, thaw releases.
        assert.equal(lineOf(readLog(setup), 'thaw_watch.off', 'last')['reason'], `the server's data directory ${EMULATED_DATADIR} is not a directory on this machine`);
        assert.deepEqual(acquired['coordinates'], expectedCoordinates(fake));

        const traits = await withSession(fake, traitsOf);
        const plan = lockPlan(expectation.e2eResolved, traits, 2, '');
        const firstLock = normalize(plan.lock[0] ?? '');
        const lockers = [...new Set(fake.statements.slice(mark).filter((statement) => normalize(statement.sql) === firstLock).map((statement) => statement.connection))];
        assert.equal(lockers.length, 1, `one connection (the holder) sent ${firstLock}`);
        holder = lockers[0] ?? -1;
        const held = fake.heldLocks().get(holder) ?? [];
        const holding = plan.lock.map(normalize).filter((statement) => statement !== 'FLUSH NO_WRITE_TO_BINLOG TABLES');
        assert.deepEqual([...held].sort(), [...holding].sort(), 'the holder holds the lock while frozen');

        const holderStatements = fake.statementsOf(holder).map(normalize);
        const lockAt = holderStatements.indexOf(firstLock);
        assert.deepEqual(holderStatements.slice(lockAt, lockAt + plan.lock.length), plan.lock.map(normalize), 'the lock statements, in order');
        const beforeLock = holderStatements.slice(0, lockAt);
        // At connect, a wait_timeout that outlasts freeze's wait for a quiet moment (freeze_timeout + 60 s);
        // just before the lock, in one statement: lock_wait_timeout, and the dead-man switch (wait_timeout =
        // max_lock_time + 10). Nothing else before: freeze's session read the server.
        assert.deepEqual(beforeLock, ['SET SESSION wait_timeout = 80', 'SET SESSION wait_timeout = 40, lock_wait_timeout = 2'], `the holder's statements before its lock: ${holderStatements.join('; ')}`);
        assert.equal(fake.sessionVariable(holder, 'lock_wait_timeout'), '2');
        assert.equal(fake.sessionVariable(holder, 'wait_timeout'), '40');
        const afterLock = holderStatements.slice(lockAt + plan.lock.length);
        const readsFirst = plan.coordinatesFrom === 'log_status' ? 'SELECT LOCAL FROM performance_schema.log_status' : expectation.binlogTried[0]?.[0];
        assert.equal(afterLock[0], readsFirst, `the coordinates are read under the lock: ${afterLock.join('; ')}`);
        // Expected fallbacks: a syntax error (1064) for a statement spelling the server lacks, and once per
        // session a missing performance_schema.processlist (1146, before 8.0.22) before information_schema's.
        const expectedFallback = (statement: { answer?: unknown; sql: string }): boolean =>
          statement.answer === 1064 || (statement.answer === 1146 && /FROM performance_schema\.processlist/.test(statement.sql));
        const errors = fake.statements.slice(mark).filter((statement) => typeof statement.answer === 'number' && !expectedFallback(statement));
        assert.deepEqual(errors, [], 'no statement failed except the expected fallbacks');
        const processlistMisses = fake.statements.slice(mark).filter((statement) => statement.answer === 1146);
        assert.ok(processlistMisses.length <= 2, `the missing processlist source is tried once per session, not at every poll: ${processlistMisses.length}`);
      } finally {
        const thawed = await runHook(setup, 'vmware-mysql-snapshot', ['thaw']);
        assert.equal(thawed.code, 0, `thaw: ${thawed.stdout} ${thawed.stderr}`);
      }
      const traits = await withSession(fake, traitsOf);
      const plan = lockPlan(expectation.e2eResolved, traits, 2, '');
      assert.deepEqual([...fake.heldLocks().keys()], [], 'nothing is held after thaw');
      const events = fake.lockEvents.slice(eventsMark);
      const released = events.filter((event) => event.action === 'released');
      assert.ok(released.length > 0 && released.every((event) => plan.unlock.includes(normalize(event.by)) && event.connection === holder), `released by the holder's ${plan.unlock.join(', ')}, not by a disconnect: ${JSON.stringify(events)}`);
      const holderStatements = fake.statementsOf(holder).map(normalize);
      assert.deepEqual(holderStatements.slice(-plan.unlock.length), plan.unlock, `the holder's last statements unlock: ${holderStatements.join('; ')}`);
      assert.deepEqual(ourHolders(), [], 'no lock holder is left');
      assert.ok(readLog(setup).some((line) => line['event'] === 'lock.released'), 'the holder logged the release');
    });
  });
}

describe('gaps found against the emulated dialects', () => {
  test(
    'MySQL 8.0.22+: the processlist is read from performance_schema.processlist, not the deprecated information_schema.PROCESSLIST',
    {},
    async () => {
      const fake = await startFakeServer('mysql-8.4');
      try {
        await withSession(fake, async (session) => {
          const mark = fake.statements.length;
          await readProcesslist(session);
          const [warnings] = await session.connection.query<RowDataPacket[]>('SHOW WARNINGS');
          assert.deepEqual(warnings, [], 'no deprecation warning');
          assert.match(triedSince(fake, mark)[0]?.[0] ?? '', /FROM performance_schema\.processlist/i);
        });
      } finally {
        await fake.close();
      }
    },
  );

  test(
    'a MySQL release that removes information_schema.PROCESSLIST (as announced) still freezes',
    { timeout: 60_000 },
    async () => {
      const fake = await startFakeServer('mysql-26.x', { gtidExecuted: GTID_EXECUTED });
      fake.failWhen(/information_schema\.PROCESSLIST/i, { errno: 1109, sqlState: '42S02', message: "Unknown table 'PROCESSLIST' in information_schema" });
      const setup = hookSetup(fake, { lock_mode: 'instance' });
      try {
        const frozen = await runHook(setup, 'vmware-mysql-snapshot', ['freeze']);
        assert.equal(frozen.code, 0, `freeze: ${frozen.stderr}`);
      } finally {
        await runHook(setup, 'vmware-mysql-snapshot', ['thaw']);
        await fake.close();
      }
    },
  );

  for (const dialect of ['mysql-8.0.20', 'percona-5.7'] as const) {
    test(
      `replica_sql_thread = stop on ${dialect} (no REPLICA keyword before 8.0.22) stops and restarts the applier with STOP/START SLAVE`,
      { timeout: 60_000 },
      async () => {
        const fake = await startFakeServer(dialect, { gtidExecuted: GTID_EXECUTED, channels: [channel('', '10.0.0.1', 4_321)], grants: ['RELOAD', 'PROCESS', 'REPLICATION CLIENT', 'SUPER'] });
        const setup = hookSetup(fake, { replica_sql_thread: 'stop' });
        try {
          const frozen = await runHook(setup, 'vmware-mysql-snapshot', ['freeze']);
          assert.equal(frozen.code, 0, `freeze: ${frozen.stderr}`);
          assert.equal(fake.state.channels[0]?.sqlRunning, false);
        } finally {
          await runHook(setup, 'vmware-mysql-snapshot', ['thaw']);
          await fake.close();
        }
      },
    );
  }

  test(
    'Percona 8.0 lock_mode = backup_locks: RELOAD alone does not pass the privilege check (LOCK TABLES FOR BACKUP needs BACKUP_ADMIN from 8.0.13-4)',
    {},
    async () => {
      const fake = await startFakeServer('percona-8.0', { grants: ['RELOAD', 'PROCESS', 'REPLICATION CLIENT'] });
      try {
        await withSession(fake, async (session) => {
          await assert.rejects(checkPrivileges(session, { mode: 'backup_locks' }), /BACKUP_ADMIN/);
        });
      } finally {
        await fake.close();
      }
    },
  );

  test(
    'Percona 5.7 lock_mode = backup_locks without RELOAD: the GRANT named is RELOAD (5.7 has no BACKUP_ADMIN)',
    {},
    async () => {
      const fake = await startFakeServer('percona-5.7', { grants: ['PROCESS', 'REPLICATION CLIENT'] });
      try {
        await withSession(fake, async (session) => {
          await assert.rejects(checkPrivileges(session, { mode: 'backup_locks' }), (error: unknown) => {
            assert.ok(error instanceof HookError);
            assert.ok(error.message.includes("GRANT RELOAD ON *.* TO 'snapshot'@'%';"), error.message);
            return true;
          });
        });
      } finally {
        await fake.close();
      }
    },
  );
});

describe('replica_sql_thread = stop on MySQL 8.4 (emulated), two channels', () => {
  async function cycle(channels: FakeChannel[]): Promise<{ fake: FakeServer; setup: HookSetup; whileLocked: boolean[]; sent: string[] }> {
    const fake = await startFakeServer('mysql-8.4', {
      gtidExecuted: GTID_EXECUTED,
      channels,
      grants: ['RELOAD', 'PROCESS', 'REPLICATION CLIENT', 'BACKUP_ADMIN', 'REPLICATION_SLAVE_ADMIN'],
    });
    const setup = hookSetup(fake, { replica_sql_thread: 'stop', lock_mode: 'instance' });
    try {
      const frozen = await runHook(setup, 'vmware-mysql-snapshot', ['freeze']);
      assert.equal(frozen.code, 0, `freeze: ${frozen.stderr}`);
      const whileLocked = fake.state.channels.map((entry) => entry.sqlRunning);
      const thawed = await runHook(setup, 'vmware-mysql-snapshot', ['thaw']);
      assert.equal(thawed.code, 0, `thaw: ${thawed.stderr}`);
      const sent = fake.statements.map((statement) => normalize(statement.sql)).filter((statement) => /^(STOP|START) (REPLICA|SLAVE)/.test(statement));
      return { fake, setup, whileLocked, sent };
    } finally {
      await fake.close();
    }
  }

  test('both appliers are stopped while locked and run again after thaw', { timeout: 60_000 }, async () => {
    const { fake, setup, whileLocked } = await cycle([channel('', '10.0.0.1', 4_321), channel('east', '10.0.0.2', 777)]);
    assert.deepEqual([...lineOf(readLog(setup), 'replica.applier', 'last')['channels']].sort(), ['', 'east']);
    assert.deepEqual(whileLocked, [false, false]);
    const coordinates = lineOf(readLog(setup), 'lock.acquired', 'last')['coordinates'] as Coordinates;
    assert.deepEqual(coordinates.replication?.map((entry) => [entry.channel, entry.sqlRunning]), [['', false], ['east', false]]);
    assert.deepEqual(fake.state.channels.map((entry) => entry.sqlRunning), [true, true]);
  });

  test(
    "an applier the admin stopped stays stopped: the default channel is addressed FOR CHANNEL ''",
    {
      timeout: 60_000,
    },
    async () => {
      const { fake, sent } = await cycle([channel('', '10.0.0.1', 4_321), channel('east', '10.0.0.2', 777, { sqlRunning: false })]);
      assert.deepEqual(fake.state.channels.map((entry) => entry.sqlRunning), [true, false], "'east' stays stopped");
      assert.deepEqual(sent, ["STOP REPLICA SQL_THREAD FOR CHANNEL ''", "START REPLICA SQL_THREAD FOR CHANNEL ''"]);
    },
  );
});

describe('a MySQL 9.x primary without a binary log (emulated)', () => {
  test('readCoordinates: no binlog, no GTID, no replication', async () => {
    const fake = await startFakeServer('mysql-9.x', { binlog: null, gtidExecuted: '' });
    try {
      await withSession(fake, async (session) => {
        assert.equal(session.server.logBin, false);
        const mark = fake.statements.length;
        assert.deepEqual(await readCoordinates(session), { binlog: null, gtid: null });
        assert.deepEqual(triedSince(fake, mark), [['SHOW BINARY LOG STATUS', 'rows'], ['SELECT @@global.gtid_executed AS gtid', 'rows'], ['SHOW REPLICA STATUS', 'rows']]);
        // No binary log: REPLICATION CLIENT is not needed.
        fake.state.grants = ['RELOAD', 'PROCESS'];
        await checkPrivileges(session, { mode: 'ftwrl' });
      });
    } finally {
      await fake.close();
    }
  });
});

describe('the quiet window on MySQL 8.4 (emulated processlist)', () => {
  test('a statement running for long_query_time or more keeps freeze waiting until freeze_timeout; short ones and system threads do not', { timeout: 60_000 }, async () => {
    const fake = await startFakeServer('mysql-8.4', {
      gtidExecuted: GTID_EXECUTED,
      otherThreads: [
        { id: 99, user: 'report', host: '10.0.0.9:51234', db: 'app', command: 'Query', time: 30, state: 'executing', info: 'SELECT SLEEP(600)' },
        { id: 98, user: 'app', host: '10.0.0.8:40000', db: 'app', command: 'Query', time: 0, state: 'executing', info: 'UPDATE t SET v = 1' },
        { id: 97, user: 'app', host: '10.0.0.8:40001', db: 'app', command: 'Sleep', time: 900, state: null, info: null },
      ],
    });
    const setup = hookSetup(fake, { lock_mode: 'instance', freeze_timeout: '3', lock_wait_timeout: '1' });
    try {
      const blocked = await runHook(setup, 'vmware-mysql-snapshot', ['freeze']);
      assert.equal(blocked.code, 1, `freeze fails: ${blocked.stderr}`);
      assert.equal(lineOf(readLog(setup), 'freeze.failed', 'last')['code'], 'FREEZE_TIMEOUT');
      const waits = readLog(setup).filter((line) => line['event'] === 'window.blocked');
      assert.deepEqual(waits.map((line) => [line['thread'], line['user'], line['seconds']]), [[99, 'report', 30]], 'only the long statement blocks');
      assert.deepEqual(fake.lockEvents, [], 'no lock was attempted');

      fake.state.otherThreads = fake.state.otherThreads.filter((thread) => thread.id !== 99);
      const frozen = await runHook(setup, 'vmware-mysql-snapshot', ['freeze']);
      assert.equal(frozen.code, 0, `freeze once the long statement is gone: ${frozen.stderr}`);
    } finally {
      await runHook(setup, 'vmware-mysql-snapshot', ['thaw']);
      await fake.close();
    }
  });
});
