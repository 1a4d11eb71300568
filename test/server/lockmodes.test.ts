/** Lock modes per server, coordinates parsing for both column spellings, killable statements. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describeCoordinates, parseBinlogStatus, parseLogStatus, parseReplicaStatus } from '../../src/server/coordinates';
import { seedStatements } from '../../src/state/coordinatesfile';
import { boundStatement, chooseMode, lockPlan, unsupportedReason } from '../../src/server/lockmodes';
import { isKillable } from '../../src/snapshot/window';
import { type ProcessRow } from '../../src/server/processlist';

const mariadb1011 = { version: '10.11.19-MariaDB-0+deb12u1-log', isMariaDB: true, backupLocks: false };
const mariadb103 = { version: '10.3.39-MariaDB', isMariaDB: true, backupLocks: false };
const mysql84 = { version: '8.4.3', isMariaDB: false, backupLocks: false };
const mysql26 = { version: '26.7.0', isMariaDB: false, backupLocks: false };
const percona57 = { version: '5.7.44-48', isMariaDB: false, backupLocks: true };
const percona80 = { version: '8.0.39-30', isMariaDB: false, backupLocks: true };

test('auto picks the gentlest lock that keeps the snapshot at the recorded coordinates', () => {
  assert.equal(chooseMode(mariadb1011).mode, 'backup_stage');
  assert.equal(chooseMode(mariadb103).mode, 'ftwrl');
  assert.equal(chooseMode(percona57).mode, 'backup_locks');
  assert.equal(chooseMode(percona80).mode, 'ftwrl', 'Percona 8 backup locks let InnoDB commit');
  assert.equal(chooseMode(mysql84).mode, 'ftwrl');
  assert.match(chooseMode(mysql84).reason, /lock_mode = instance/);
});

test('each mode says why a server cannot use it, calendar versions included', () => {
  assert.equal(unsupportedReason('backup_stage', mariadb1011), undefined);
  assert.match(unsupportedReason('backup_stage', mysql84) ?? '', /MariaDB 10\.4 or later \(this is 8\.4\.3\)/);
  assert.equal(unsupportedReason('instance', mysql26), undefined);
  assert.match(unsupportedReason('instance', mariadb1011) ?? '', /MySQL 8\.0 or later/);
  assert.equal(unsupportedReason('backup_locks', percona80), undefined);
  assert.match(unsupportedReason('backup_locks', mysql84) ?? '', /Percona/);
});

test('lock statements are bounded and tagged as ours; releases match', () => {
  const ftwrl = lockPlan('ftwrl', mariadb1011, 2, '/* tag */');
  assert.deepEqual(ftwrl.lock, [
    'SET STATEMENT max_statement_time={bound} FOR FLUSH NO_WRITE_TO_BINLOG TABLES /* tag */',
    'SET STATEMENT max_statement_time={bound} FOR FLUSH TABLES WITH READ LOCK /* tag */',
  ]);
  assert.equal(ftwrl.boundSeconds, 2);
  // The holder fills in what is left of the bound, so both statements together wait at most 2 s.
  assert.equal(boundStatement(ftwrl.lock[1] ?? '', 2 - 0.8), 'SET STATEMENT max_statement_time=1.200 FOR FLUSH TABLES WITH READ LOCK /* tag */');
  assert.equal(boundStatement(ftwrl.lock[1] ?? '', -1), 'SET STATEMENT max_statement_time=0.050 FOR FLUSH TABLES WITH READ LOCK /* tag */');
  assert.deepEqual(lockPlan('ftwrl', mysql84, 2, '/* tag */').lock, ['FLUSH NO_WRITE_TO_BINLOG TABLES /* tag */', 'FLUSH TABLES WITH READ LOCK /* tag */']);
  assert.deepEqual(lockPlan('backup_stage', mariadb1011, 1.5, '/* t */').unlock, ['BACKUP STAGE END']);
  const percona = lockPlan('backup_locks', percona57, 2, '/* t */');
  assert.deepEqual(percona.lock, ['LOCK TABLES FOR BACKUP /* t */', 'LOCK BINLOG FOR BACKUP /* t */']);
  assert.deepEqual(percona.unlock, ['UNLOCK BINLOG', 'UNLOCK TABLES']);
  assert.equal(percona.exact, true);
  assert.equal(lockPlan('backup_locks', percona80, 2, '').coordinatesFrom, 'log_status');
  const instance = lockPlan('instance', mysql84, 2, '/* t */');
  assert.deepEqual([instance.lock, instance.unlock, instance.exact], [['LOCK INSTANCE FOR BACKUP /* t */'], ['UNLOCK INSTANCE'], false]);
});

test('replica status is read by column name in either spelling, one entry per channel', () => {
  const mariadb = parseReplicaStatus([
    { Connection_name: '', Master_Host: 'db1', Master_Port: 3306, Relay_Master_Log_File: 'db1-bin.000007', Exec_Master_Log_Pos: 1234, Read_Master_Log_Pos: 9999, Gtid_Slave_Pos: '0-1-42', Using_Gtid: 'Slave_Pos', Slave_SQL_Running: 'Yes', Slave_IO_Running: 'Yes' },
    { Connection_name: 'east', Master_Host: 'db2', Master_Port: '3307', Relay_Master_Log_File: 'db2-bin.000002', Exec_Master_Log_Pos: '77', Gtid_Slave_Pos: '', Using_Gtid: 'No', Slave_SQL_Running: 'No', Slave_IO_Running: 'Yes' },
  ]);
  assert.deepEqual(mariadb[0], { channel: '', sourceHost: 'db1', sourcePort: 3306, sourceLogFile: 'db1-bin.000007', sourceLogPosition: 1234, gtid: '0-1-42', usingGtid: 'Slave_Pos', sqlRunning: true, ioRunning: true });
  assert.equal(mariadb[1]?.channel, 'east');
  assert.equal(mariadb[1]?.sourcePort, 3307);
  assert.equal(mariadb[1]?.gtid, null);
  const mysql = parseReplicaStatus([
    { Channel_Name: 'ch1', Source_Host: 'src', Source_Port: 3306, Relay_Source_Log_File: 'src-bin.000003', Exec_Source_Log_Pos: 4, Executed_Gtid_Set: 'aaaa:1-10,\nbbbb:1-3', Auto_Position: 1, Replica_SQL_Running: 'Yes', Replica_IO_Running: 'Connecting' },
  ]);
  assert.deepEqual(mysql[0], { channel: 'ch1', sourceHost: 'src', sourcePort: 3306, sourceLogFile: 'src-bin.000003', sourceLogPosition: 4, gtid: 'aaaa:1-10,bbbb:1-3', usingGtid: 'Auto_Position', sqlRunning: true, ioRunning: false });
});

test('binlog status and log_status; no binary log means null', () => {
  assert.deepEqual(parseBinlogStatus([{ File: 'b.000001', Position: '42', Executed_Gtid_Set: '' }]), { file: 'b.000001', position: 42 });
  assert.equal(parseBinlogStatus([]), null);
  assert.deepEqual(parseLogStatus({ LOCAL: '{"gtid_executed": "u:1-5", "binary_log_file": "bin.000009", "binary_log_position": 155}' }), { binlog: { file: 'bin.000009', position: 155 }, gtid: 'u:1-5' });
  assert.deepEqual(parseLogStatus({ LOCAL: { gtid_executed: '', binary_log_file: '' } }), { binlog: null, gtid: null });
  assert.equal(describeCoordinates({ binlog: null, gtid: null }), 'no binary log');
  assert.equal(
    describeCoordinates({ binlog: { file: 'b.1', position: 4 }, gtid: '0-1-2', replication: parseReplicaStatus([{ Master_Host: 'db1', Relay_Master_Log_File: 'x.9', Exec_Master_Log_Pos: 8 }]) }),
    'binlog b.1:4, gtid 0-1-2, source db1 executed x.9:8',
  );
});

test('seed statements per dialect', () => {
  assert.deepEqual(seedStatements({ binlog: { file: 'b.1', position: 4 }, gtid: '0-1-2' }, true), ["SET GLOBAL gtid_slave_pos = '0-1-2';", "CHANGE MASTER TO MASTER_HOST = '...', MASTER_USE_GTID = slave_pos;"]);
  assert.match(seedStatements({ binlog: { file: 'b.1', position: 4 }, gtid: null }, false)[0] ?? '', /SOURCE_LOG_FILE = 'b\.1', SOURCE_LOG_POS = 4/);
  assert.deepEqual(seedStatements({ binlog: null, gtid: null }, true), []);
});

function row(info: string): ProcessRow {
  return { id: 1, user: 'app', host: 'h', db: null, command: 'Query', timeMs: 5000, state: null, info };
}

test('kill_long_queries = select kills read-only SELECTs only', () => {
  assert.equal(isKillable(row('SELECT * FROM big'), 'select'), true);
  assert.equal(isKillable(row('/* report */ (SELECT 1) UNION (SELECT 2)'), 'select'), true);
  assert.equal(isKillable(row('SELECT * FROM t FOR UPDATE'), 'select'), false);
  assert.equal(isKillable(row('SELECT * FROM t LOCK IN SHARE MODE'), 'select'), false);
  assert.equal(isKillable(row('SELECT * INTO OUTFILE "/tmp/x" FROM t'), 'select'), false);
  assert.equal(isKillable(row('UPDATE t SET v = 1'), 'select'), false);
  assert.equal(isKillable(row('UPDATE t SET v = 1'), 'all'), true);
  assert.equal(isKillable(row('SELECT 1'), 'off'), false);
});
