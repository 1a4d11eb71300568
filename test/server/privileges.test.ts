/** Which privileges a freeze needs, and the GRANT that adds the missing ones. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { grantStatement, serverError } from '../../src/server/session';
import { missingPrivileges } from '../../src/server/privileges';

const mariadb = { isMariaDB: true, logBin: true };

test('RELOAD and PROCESS always, the binlog monitor privilege only with a binary log', () => {
  assert.deepEqual(missingPrivileges(new Set(), mariadb), ['RELOAD', 'PROCESS', 'BINLOG MONITOR']);
  assert.deepEqual(missingPrivileges(new Set(), { isMariaDB: true, logBin: false }), ['RELOAD', 'PROCESS']);
  assert.deepEqual(missingPrivileges(new Set(), { isMariaDB: false, logBin: true }), ['RELOAD', 'PROCESS', 'REPLICATION CLIENT']);
});

test('aliases and ALL PRIVILEGES satisfy the need', () => {
  assert.deepEqual(missingPrivileges(new Set(['RELOAD', 'PROCESS', 'REPLICATION CLIENT']), mariadb), []);
  assert.deepEqual(missingPrivileges(new Set(['RELOAD', 'PROCESS', 'SUPER']), mariadb), []);
  assert.deepEqual(missingPrivileges(new Set(['ALL PRIVILEGES']), { isMariaDB: false, logBin: true }), []);
  assert.deepEqual(missingPrivileges(new Set(['PROCESS']), mariadb), ['RELOAD', 'BINLOG MONITOR']);
  assert.deepEqual(missingPrivileges(new Set(['RELOAD', 'PROCESS', 'BINLOG MONITOR']), mariadb, { mode: 'ftwrl', killQueries: true }), ['CONNECTION ADMIN']);
  assert.deepEqual(missingPrivileges(new Set(['RELOAD', 'PROCESS', 'BINLOG MONITOR', 'SUPER']), mariadb, { mode: 'ftwrl', killQueries: true, stopApplier: true }), []);
  assert.deepEqual(missingPrivileges(new Set(['PROCESS', 'REPLICATION CLIENT']), { isMariaDB: false, logBin: true }, { mode: 'instance', stopApplier: true }), ['BACKUP_ADMIN', 'REPLICATION_SLAVE_ADMIN']);
});

test('the GRANT quotes the account as user@host', () => {
  assert.equal(grantStatement(['RELOAD', 'PROCESS'], 'snap@localhost'), "GRANT RELOAD, PROCESS ON *.* TO 'snap'@'localhost';");
  assert.equal(grantStatement(['RELOAD'], 'odd@user@%'), "GRANT RELOAD ON *.* TO 'odd@user'@'%';");
});

test('a server "access denied" names the privilege and the GRANT', () => {
  const error = Object.assign(new Error('Access denied; you need (at least one of) the SUPER, BINLOG MONITOR privilege(s) for this operation'), { errno: 1227 });
  const hookError = serverError(error, 'reading the binary log position', 'snap@localhost');
  assert.equal(hookError.code, 'PRIVILEGE');
  assert.match(hookError.message, /GRANT BINLOG MONITOR ON \*\.\* TO 'snap'@'localhost';/);
  const other = serverError(Object.assign(new Error('Deadlock'), { errno: 1213 }), 'locking');
  assert.equal(other.code, 'SERVER');
  assert.match(other.message, /server error while locking: Deadlock/);
});
