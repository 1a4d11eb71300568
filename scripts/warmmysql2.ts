/**
 * mysql2's warm-up before its code cache is made (scripts/codecache.ts): the bundled client logs in over a
 * Unix socket to a small server made with mysql2's own server API and goes through what our sessions do:
 * the login (mysql_native_password, with our SHA-1), a statement answered with OK, result sets of text
 * rows (strings, integers, decimals, NULLs), two results from one query, an error, the goodbye. V8 then
 * finds these functions compiled in every process that loads mysql2 instead of compiling each at its
 * first call: the holder's first result set is its coordinates, read while writers wait on the lock.
 *
 * The server side is mysql2 as installed (node_modules), a module apart from the bundle: it is not cached.
 */
import fs = require('node:fs');
import os = require('node:os');
import path = require('node:path');
import type * as Mysql2Promise from 'mysql2/promise';

const SERVER_STATUS_AUTOCOMMIT = 0x0002;
const SERVER_MORE_RESULTS_EXISTS = 0x0008;
/** LONG_PASSWORD .. PLUGIN_AUTH (MULTI_STATEMENTS and MULTI_RESULTS among them), no SSL or COMPRESS */
const CAPABILITIES = 0x000ff7df;
const UTF8_GENERAL_CI = 33;
const BINARY = 63;
const TYPE = { longlong: 8, varString: 253, newDecimal: 246 } as const;

interface ServerConnection {
  serverHandshake(args: object): void;
  on(event: 'query' | 'stmt_prepare', listener: (sql: string) => void): void;
  on(event: 'error', listener: () => void): void;
  writeOk(args?: object): void;
  writeError(args: { message: string; code: number }): void;
  writeColumns(columns: object[]): void;
  writeTextRow(row: Array<string | null>): void;
  writeEof(warnings?: number, statusFlags?: number): void;
  sequenceId: number;
}

function column(name: string, type: keyof typeof TYPE): object {
  const numeric = type !== 'varString';
  return {
    catalog: 'def',
    schema: '',
    table: '',
    orgTable: '',
    name,
    orgName: name,
    characterSet: numeric ? BINARY : UTF8_GENERAL_CI,
    columnLength: numeric ? 21 : 1024,
    columnType: TYPE[type],
    flags: 0,
    decimals: type === 'newDecimal' ? 3 : 0,
  };
}

/** SET: OK; FAIL: an error; anything else: one result set per statement. */
function answer(connection: ServerConnection, sql: string): void {
  const statements = sql.split(';').map((statement) => statement.trim()).filter((statement) => statement !== '');
  if (/^SET /i.test(sql)) {
    connection.writeOk({ affectedRows: 0, serverStatus: SERVER_STATUS_AUTOCOMMIT });
  } else if (/^FAIL/i.test(sql)) {
    connection.writeError({ message: 'You have an error in your SQL syntax', code: 1064 });
  } else {
    statements.forEach((_, index) => {
      connection.writeColumns([column('File', 'varString'), column('Position', 'longlong'), column('Uptime', 'newDecimal'), column('Binlog_Do_DB', 'varString')]);
      connection.writeTextRow(['binlog.000001', '1386', '1763771234.567', null]);
      connection.writeTextRow(['binlog.000002', '4', '0.000', '']);
      connection.writeEof(0, SERVER_STATUS_AUTOCOMMIT | (index < statements.length - 1 ? SERVER_MORE_RESULTS_EXISTS : 0));
    });
  }
  // mysql2's server side does not restart the sequence at each command: the next command comes as 0.
  connection.sequenceId = 0;
}

/** What the client went through: each must have happened, or the warm-up missed a path. */
export interface WarmUpSummary {
  ok: number;
  resultSets: number;
  rows: number;
  errors: number;
}

export async function warmUpMysql2(client: typeof Mysql2Promise): Promise<WarmUpSummary> {
  const summary: WarmUpSummary = { ok: 0, resultSets: 0, rows: 0, errors: 0 };
  const serverApi = require('mysql2') as { createServer(handler: (connection: ServerConnection) => void): import('node:net').Server };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vms-mysql2-warmup-'));
  const socketPath = path.join(dir, 'mysqld.sock');
  const server = serverApi.createServer((connection) => {
    connection.on('error', () => undefined); // the client's goodbye closes the socket
    connection.serverHandshake({
      protocolVersion: 10,
      serverVersion: '10.11.0-MariaDB-warmup',
      connectionId: 7,
      statusFlags: SERVER_STATUS_AUTOCOMMIT,
      characterSet: UTF8_GENERAL_CI,
      capabilityFlags: CAPABILITIES,
      authCallback: (_params: object, callback: (error: null) => void) => {
        callback(null);
        connection.sequenceId = 0;
      },
    });
    // mysql2 hands statements that start with SET or PREPARE to 'stmt_prepare' instead of 'query'.
    connection.on('query', (sql) => answer(connection, sql));
    connection.on('stmt_prepare', (sql) => answer(connection, sql));
  });
  try {
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(socketPath, resolve));
    // The options of src/server/session.ts openLink.
    const connection = await client.createConnection({
      user: 'warmup',
      password: 'warm-up password',
      socketPath,
      connectTimeout: 10_000,
      supportBigNumbers: true,
      multipleStatements: true,
      disableEval: true,
    });
    connection.on('error', () => undefined);
    for (let round = 0; round < 2; round += 1) {
      await connection.query('SET SESSION wait_timeout = 40, lock_wait_timeout = 2');
      summary.ok += 1;
      const [rows] = await connection.query<Mysql2Promise.RowDataPacket[]>('SELECT 1');
      const [results] = await connection.query<Mysql2Promise.RowDataPacket[][]>('SHOW MASTER STATUS; SELECT 2');
      for (const set of [rows, ...results]) {
        summary.resultSets += 1;
        summary.rows += set.length;
      }
      await connection.query('FAIL').catch(() => (summary.errors += 1));
    }
    await connection.end();
    return summary;
  } finally {
    server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
