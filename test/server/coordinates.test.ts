/**
 * readCoordinates against a real MariaDB: the same position whether the session sends the binary-log
 * status and the GTID positions in one query (the holder's, allowed several statements) or one by one.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readCoordinates } from '../../src/server/coordinates';
import { openSession, type Session } from '../../src/server/session';
import { startMariaDB, TEST_USER, type TestServer } from '../support/mariadb';

let server: TestServer;
let unlogged: TestServer;

before(async () => {
  [server, unlogged] = await Promise.all([startMariaDB(), startMariaDB({ logBin: false, serverId: 2 })]);
  await server.query('INSERT INTO app.t (v, note) VALUES (1, ?)', ['moves the binlog on']);
});

after(async () => {
  await Promise.all([server.remove(), unlogged.remove()]);
});

/** A session whose queries are counted: one query is one round trip. */
async function countingSession(on: TestServer, multipleStatements: boolean): Promise<{ session: Session; queries: () => number }> {
  const session = await openSession({ user: TEST_USER.name, password: TEST_USER.password, socket: on.socket }, { multipleStatements });
  let count = 0;
  const query = session.connection.query.bind(session.connection);
  session.connection.query = ((...args: Parameters<typeof query>) => {
    count += 1;
    return query(...args);
  }) as typeof query;
  return { session, queries: () => count };
}

for (const multipleStatements of [true, false]) {
  test(`readCoordinates on MariaDB, ${multipleStatements ? 'several statements per query: one round trip' : 'one statement per query: two round trips'}`, async () => {
    const { session, queries } = await countingSession(server, multipleStatements);
    try {
      const coordinates = await readCoordinates(session, { kind: 'none' });
      assert.equal(queries(), multipleStatements ? 1 : 2);
      const [status] = await server.query<Array<{ File: string; Position: number }>>('SHOW MASTER STATUS');
      const [gtid] = await server.query<Array<{ binlogPos: string; slavePos: string }>>('SELECT @@global.gtid_binlog_pos AS binlogPos, @@global.gtid_slave_pos AS slavePos');
      assert.deepEqual(coordinates, { binlog: { file: status?.File, position: Number(status?.Position) }, gtid: gtid?.binlogPos, gtidSlavePos: gtid?.slavePos || null });
      assert.match(coordinates.gtid ?? '', /^0-1-\d+$/);
    } finally {
      await session.close();
    }
  });
}

test('readCoordinates on MariaDB without a binary log, several statements per query: no binlog position', async () => {
  const { session, queries } = await countingSession(unlogged, true);
  try {
    const coordinates = await readCoordinates(session, { kind: 'none' });
    assert.equal(queries(), 1);
    assert.equal(coordinates.binlog, null);
  } finally {
    await session.close();
  }
});
