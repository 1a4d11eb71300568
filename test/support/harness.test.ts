/**
 * The throwaway-server harness itself: if this file fails, the end-to-end tests cannot be trusted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { TEST_USER, mariadbInstalled, startMariaDB, type TestServer } from './mariadb';

// No silent skip: without MariaDB these tests must fail, or CI would report a pass that tested nothing.
test('MariaDB is installed (apt-get install mariadb-server)', () => {
  assert.ok(mariadbInstalled(), 'mariadbd and mariadb-install-db not found: apt-get install -y mariadb-server');
});

interface OneRow {
  one: number;
}

interface MasterStatus {
  File: string;
  Position: number;
}

async function selectOne(server: TestServer, options: { user?: string; password?: string; tcp?: boolean }): Promise<number> {
  const connection = await server.connect(options);
  try {
    const [rows] = await connection.query('SELECT 1 AS one');
    return (rows as OneRow[])[0].one;
  } finally {
    await connection.end();
  }
}

function runningPid(server: TestServer): number | undefined {
  try {
    return server.pid;
  } catch {
    return undefined;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const snapshotUser = { user: TEST_USER.name, password: TEST_USER.password };

test('a throwaway MariaDB server', async (context) => {
  const started = Date.now();
  const server = await startMariaDB();
  let lastPid = server.pid;
  context.diagnostic(`server started in ${Date.now() - started} ms (${server.dir})`);
  try {
    await context.test('root connects over the socket', async () => {
      assert.equal(await selectOne(server, {}), 1);
    });

    await context.test('the snapshot user connects over the socket', async () => {
      assert.equal(await selectOne(server, snapshotUser), 1);
    });

    await context.test('the snapshot user connects over TCP', async () => {
      assert.equal(await selectOne(server, { ...snapshotUser, tcp: true }), 1);
    });

    await context.test('a wrong password is refused', async () => {
      await assert.rejects(server.connect({ user: TEST_USER.name, password: 'wrong' }), /Access denied/);
    });

    await context.test('the snapshot user has exactly the granted privileges', async () => {
      const connection = await server.connect(snapshotUser);
      try {
        const [rows] = await connection.query('SHOW GRANTS');
        const grants = (rows as Array<Record<string, string>>).map((row) => Object.values(row)[0]).join('\n');
        assert.match(grants, /GRANT RELOAD, PROCESS, BINLOG MONITOR ON \*\.\*/);
      } finally {
        await connection.end();
      }
    });

    await context.test('binary logging is on: SHOW MASTER STATUS names a binlog file', async () => {
      const rows = await server.query<MasterStatus[]>('SHOW MASTER STATUS');
      assert.equal(rows.length, 1);
      assert.match(rows[0].File, /^binlog\.\d+$/);
    });

    await context.test('stop and start keep the data', async () => {
      await server.query('INSERT INTO app.t (v, note) VALUES (?, ?)', [42, 'kept']);
      const firstPid = server.pid;
      await server.stop();
      await server.stop();
      assert.throws(() => server.pid, /not running/);
      await server.start();
      assert.notEqual(server.pid, firstPid);
      const rows = await server.query<Array<{ v: number; note: string }>>('SELECT v, note FROM app.t');
      assert.deepEqual(rows.map((row) => ({ ...row })), [{ v: 42, note: 'kept' }]);
    });

    await context.test('a killed server starts again and recovers committed data', async () => {
      await server.query('INSERT INTO app.t (v, note) VALUES (?, ?)', [43, 'after crash']);
      server.kill('SIGKILL');
      await server.start();
      const rows = await server.query<Array<{ total: number }>>('SELECT COUNT(*) AS total FROM app.t');
      assert.equal(Number(rows[0].total), 2);
    });
  } finally {
    lastPid = runningPid(server) ?? lastPid;
    await server.remove();
  }
  assert.equal(fs.existsSync(server.dir), false, 'remove() deletes the directory');
  assert.equal(isAlive(lastPid), false, 'remove() stops mariadbd');
  await server.remove();
});

test('two servers run side by side with their own ports and sockets', async () => {
  const [first, second] = await Promise.all([startMariaDB({ serverId: 1 }), startMariaDB({ logBin: false, serverId: 2 })]);
  try {
    assert.notEqual(first.port, second.port);
    assert.notEqual(first.socket, second.socket);
    const secondLogBin = await second.query<Array<{ Value: string }>>("SHOW GLOBAL VARIABLES LIKE 'log_bin'");
    assert.equal(secondLogBin[0].Value, 'OFF');
    const firstServerId = await first.query<Array<{ id: number }>>('SELECT @@server_id AS id');
    assert.equal(Number(firstServerId[0].id), 1);
  } finally {
    await Promise.all([first.remove(), second.remove()]);
  }
});
