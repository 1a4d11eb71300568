/**
 * replica_sql_thread = stop against a real MariaDB whose replication connection has a name with a quote
 * and a backslash in it: freeze's session stops its applier, and the restart statement it hands to the
 * holder (whose session allows several statements per query) starts exactly that applier again, whether
 * or not sql_mode has NO_BACKSLASH_ESCAPES. The connection's source is a port nobody listens on: only
 * the applier (SQL thread) runs, which needs no source.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { RowDataPacket } from 'mysql2/promise';
import { Deadline } from '../../src/clock';
import { openSession } from '../../src/server/session';
import { quoteName, stopAppliers } from '../../src/server/replica';
import { startMariaDB, TEST_USER, type TestServer } from '../support/mariadb';

/** A quote, a backslash before a letter (an escape in the default sql_mode) and a semicolon. */
const CHANNEL = "o'brien\\n; x";

let server: TestServer;

before(async () => {
  server = await startMariaDB({ extraArgs: ['--relay-log=relay-bin'] });
  for (const host of ['localhost', '127.0.0.1']) {
    await server.query('GRANT REPLICA MONITOR, REPLICATION SLAVE ADMIN ON *.* TO ?@?', [TEST_USER.name, host]);
  }
  const name = quoteName(CHANNEL, true);
  await server.query(`CHANGE MASTER ${name} TO MASTER_HOST = '127.0.0.1', MASTER_PORT = 9, MASTER_USER = 'nobody', MASTER_CONNECT_RETRY = 1`);
});

after(async () => {
  await server?.remove();
});

async function applierRunning(): Promise<Map<string, boolean>> {
  const rows = await server.query<RowDataPacket[]>('SHOW ALL SLAVES STATUS');
  return new Map(rows.map((row) => [String(row['Connection_name']), row['Slave_SQL_Running'] === 'Yes']));
}

for (const noBackslashEscapes of [false, true]) {
  test(`a channel whose name has a quote, a backslash and a semicolon, sql_mode ${noBackslashEscapes ? 'with' : 'without'} NO_BACKSLASH_ESCAPES: stopped, and started again by the holder's statement`, async () => {
    await server.query(`START SLAVE ${quoteName(CHANNEL, true)} SQL_THREAD`);
    assert.deepEqual(await applierRunning(), new Map([[CHANNEL, true]]));
    const globalMode = String((await server.query<RowDataPacket[]>('SELECT @@GLOBAL.sql_mode AS mode'))[0]?.['mode']);
    if (noBackslashEscapes) await server.query('SET GLOBAL sql_mode = ?', [[globalMode, 'NO_BACKSLASH_ESCAPES'].filter(Boolean).join(',')]);
    const client = { user: TEST_USER.name, password: TEST_USER.password, socket: server.socket };
    const [freeze, holder] = await Promise.all([openSession(client), openSession(client, { multipleStatements: true })]);
    try {
      const stopped = await stopAppliers(freeze, new Deadline(10_000));
      assert.deepEqual(stopped?.channels, [CHANNEL]);
      assert.deepEqual(await applierRunning(), new Map([[CHANNEL, false]]));
      for (const statement of stopped?.restart ?? []) await holder.connection.query(statement);
      assert.deepEqual(await applierRunning(), new Map([[CHANNEL, true]]));
    } finally {
      await Promise.all([freeze.close(), holder.close()]);
      await server.query('SET GLOBAL sql_mode = ?', [globalMode]);
      await server.query(`STOP SLAVE ${quoteName(CHANNEL, true)} SQL_THREAD`);
    }
  });
}
