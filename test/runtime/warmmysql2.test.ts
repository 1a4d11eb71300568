/**
 * mysql2's warm-up at build time (scripts/warmmysql2.ts), run here against mysql2 as installed: the
 * server it makes answers every kind of packet our sessions read, as a real server would, so that the
 * code cache holds the paths the holder takes while writers wait.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as mysql from 'mysql2/promise';
import { warmUpMysql2 } from '../../scripts/warmmysql2';

test('the mysql2 warm-up logs in and reads OK packets, result sets (one and two per query) and errors', async () => {
  const summary = await warmUpMysql2(mysql);
  assert.deepEqual(summary, { ok: 2, resultSets: 6, rows: 12, errors: 2 });
});
