/**
 * Galera nodes from their status (src/server/galera.ts): which states a snapshot refuses, what the lock
 * does, the lock mode auto picks, grastate.dat and the join steps, doctor's gcache and donor warnings.
 * The states a real cluster on one machine cannot be held in on demand (Joining, Joined, a donor) are
 * here, from the status rows MariaDB 10.11 with galera-4 26.4 shows (seen on the test cluster); the
 * rest runs against a real cluster in test/e2e/galera.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  backupStagePausesGalera,
  galeraRefusal,
  gcacheCoverSeconds,
  grastate,
  isDonorNow,
  joinSteps,
  lockEffect,
  desyncRefusal,
  parseGaleraLocked,
  parseGaleraNode,
  parseGaleraPosition,
  parseSize,
  providerOption,
  type GaleraNode,
} from '../../src/server/galera';
import { chooseMode, unsupportedReason, versionNumbers } from '../../src/server/lockmodes';
import { describeCoordinates } from '../../src/server/coordinates';
import { coordinatesRecord } from '../../src/state/coordinatesfile';
import { galeraChecks } from '../../src/commands/doctor';

const UUID = '3232f8ac-effe-11f1-b238-aeb6c69664c7';

function status(overrides: Record<string, string> = {}): Map<string, string> {
  return new Map(
    Object.entries({
      wsrep_provider_name: 'Galera',
      wsrep_cluster_status: 'Primary',
      wsrep_ready: 'ON',
      wsrep_local_state: '4',
      wsrep_local_state_comment: 'Synced',
      wsrep_cluster_size: '3',
      wsrep_desync_count: '0',
      wsrep_local_state_uuid: UUID,
      wsrep_last_committed: '2238',
      wsrep_local_cached_downto: '1',
      wsrep_replicated_bytes: '1048576',
      wsrep_received_bytes: '1048576',
      uptime: '3600',
      ...overrides,
    }),
  );
}

function variables(overrides: Record<string, string> = {}): Map<string, string> {
  return new Map(
    Object.entries({
      wsrep_on: 'ON',
      wsrep_desync: 'OFF',
      wsrep_provider_options: 'base_dir = /var/lib/mysql/; gcache.dir = /var/lib/mysql/; gcache.name = galera.cache; gcache.page_size = 128M; gcache.size = 128M; gcs.fc_limit = 16',
      wsrep_sst_method: 'rsync',
      ...overrides,
    }),
  );
}

function node(statusOverrides: Record<string, string> = {}, variableOverrides: Record<string, string> = {}): GaleraNode {
  const parsed = parseGaleraNode(variables(variableOverrides), status(statusOverrides));
  assert.ok(parsed);
  return parsed;
}

test('a Galera node is one with wsrep_on and a provider loaded', () => {
  assert.equal(parseGaleraNode(variables({ wsrep_on: 'OFF' }), status()), undefined);
  assert.equal(parseGaleraNode(new Map(), new Map()), undefined, 'MySQL or MariaDB without wsrep');
  assert.equal(parseGaleraNode(variables(), new Map([['wsrep_provider_name', '']])), undefined, 'wsrep_provider = none');
  const synced = node();
  assert.deepEqual(synced.position, { uuid: UUID, seqno: 2238 });
  assert.equal(synced.gcacheBytes, 128 * 1024 ** 2);
  assert.equal(synced.clusterSize, 3);
});

test('a snapshot is refused outside the primary component and while joining or catching up, naming the state and what to do', () => {
  assert.match(galeraRefusal(node({ wsrep_cluster_status: 'non-Primary', wsrep_ready: 'OFF' })) ?? '', /not in the primary component \(wsrep_cluster_status = non-Primary, wsrep_ready = OFF\): it has lost quorum.*Snapshot a node of the primary component/);
  assert.match(galeraRefusal(node({ wsrep_cluster_status: 'Disconnected', wsrep_ready: 'OFF', wsrep_local_state: '0', wsrep_local_state_comment: 'Initialized' })) ?? '', /wsrep_cluster_status = Disconnected/);
  assert.match(galeraRefusal(node({ wsrep_ready: 'OFF' })) ?? '', /does not accept statements \(wsrep_ready = OFF, wsrep_local_state = 4, Synced\): wait until wsrep_ready = ON/);
  // A joiner is in the primary component but not ready: its state is what to name.
  assert.match(galeraRefusal(node({ wsrep_local_state: '1', wsrep_local_state_comment: 'Joining', wsrep_ready: 'OFF' })) ?? '', /still joining the cluster \(a state transfer runs\) \(wsrep_local_state = 1, Joining, wsrep_ready = OFF\).*Wait until it is Synced \(wsrep_local_state = 4\)/);
  assert.match(galeraRefusal(node({ wsrep_local_state: '3', wsrep_local_state_comment: 'Joined' })) ?? '', /catching up with the cluster after its state transfer \(wsrep_local_state = 3, Joined, wsrep_ready = ON\)/);
  assert.equal(galeraRefusal(node()), undefined, 'Synced');
  assert.equal(galeraRefusal(node({ wsrep_local_state: '2', wsrep_local_state_comment: 'Donor/Desynced', wsrep_desync_count: '1' }, { wsrep_desync: 'ON' })), undefined, 'desynced on purpose');
});

test('what the lock does: desync and pause a Synced node, only pause a desynced one; a donor is told apart from wsrep_desync', () => {
  assert.match(lockEffect(node(), 'ftwrl'), /desyncs and pauses this node once FLUSH TABLES WITH READ LOCK holds; the other nodes keep committing/);
  assert.match(lockEffect(node(), 'backup_stage'), /at BACKUP STAGE BLOCK_DDL/);
  const desynced = node({ wsrep_local_state: '2', wsrep_desync_count: '1' }, { wsrep_desync: 'ON' });
  assert.match(lockEffect(desynced, 'ftwrl'), /desynced on purpose \(wsrep_desync = ON\): the lock \(ftwrl\) only pauses it/);
  assert.equal(isDonorNow(desynced), false);
  const donor = node({ wsrep_local_state: '2', wsrep_local_state_comment: 'Donor/Desynced', wsrep_desync_count: '1' });
  assert.equal(isDonorNow(donor), true);
  const checks = galeraChecks(donor, 'ftwrl');
  const warning = checks.find((check) => check.name === 'galera donor');
  assert.equal(warning?.verdict, 'warn');
  assert.match(warning?.detail ?? '', /donates a state transfer \(SST method rsync\)/);
});

test('auto on a Galera node: backup_stage where it pauses the node (MDEV-33211), else ftwrl; backup_stage is refused where it does not pause', () => {
  const fixed = { version: '10.11.19-MariaDB-0+deb12u1-log', isMariaDB: true, backupLocks: false, galera: true };
  const before = { version: '10.11.6-MariaDB-0+deb12u1-log', isMariaDB: true, backupLocks: false, galera: true };
  assert.equal(chooseMode(fixed).mode, 'backup_stage');
  assert.match(chooseMode(fixed).reason, /desyncs and pauses the node at BLOCK_DDL/);
  assert.equal(chooseMode(before).mode, 'ftwrl');
  assert.match(unsupportedReason('backup_stage', before) ?? '', /MDEV-33211; this is 10\.11\.6/);
  assert.equal(unsupportedReason('backup_stage', { ...before, galera: false }), undefined, 'no cluster, no pause needed');
  assert.equal(chooseMode({ version: '8.0.36-28.1', isMariaDB: false, backupLocks: true, galera: true }).mode, 'ftwrl', 'Percona XtraDB Cluster');
  for (const [version, pauses] of [['10.6.17', false], ['10.6.18', true], ['10.5.25', true], ['11.3.2', false], ['11.4.2', true], ['11.8.1', true], ['10.11.8', true]] as const) {
    assert.equal(backupStagePausesGalera(versionNumbers(version)), pauses, version);
  }
});

test('the position, grastate.dat and the steps to join, in the coordinates and coordinates_file', () => {
  const position = parseGaleraPosition([
    { Variable_name: 'wsrep_local_state_uuid', Value: UUID },
    { Variable_name: 'wsrep_last_committed', Value: '2238' },
  ]);
  assert.deepEqual(position, { uuid: UUID, seqno: 2238 });
  assert.equal(parseGaleraPosition([]), null);
  assert.equal(grastate({ uuid: UUID, seqno: 2238 }), `# GALERA saved state\nversion: 2.1\nuuid:    ${UUID}\nseqno:   2238\nsafe_to_bootstrap: 0\n`);
  const steps = joinSteps({ uuid: UUID, seqno: 2238 }).join('\n');
  assert.match(steps, /remove gvwstate\.dat/);
  assert.match(steps, /never with --wsrep-new-cluster/);
  assert.match(steps, /wsrep_local_cached_downto <= 2239/);
  const coordinates = { binlog: { file: 'binlog.000002', position: 4711 }, gtid: '0-1-12', galera: { uuid: UUID, seqno: 2238 } };
  assert.equal(describeCoordinates(coordinates), `binlog binlog.000002:4711, gtid 0-1-12, galera ${UUID}:2238`);
  const record = coordinatesRecord({ server: '10.11.19-MariaDB', isMariaDB: true, lockMode: 'ftwrl', exact: true, coordinates });
  assert.equal(record.galera?.position, `${UUID}:2238`);
  assert.equal(record.galera?.grastate, grastate({ uuid: UUID, seqno: 2238 }));
  assert.equal(coordinatesRecord({ server: '10.11', isMariaDB: true, lockMode: 'ftwrl', exact: true, coordinates: { binlog: null, gtid: null } }).galera, undefined);
});

test('under the lock: a node the lock desynced is kept; one it only paused (it was not Synced at that moment) is given back', () => {
  const locked = (localState: string, comment: string) =>
    parseGaleraLocked([
      { Variable_name: 'wsrep_local_state_uuid', Value: UUID },
      { Variable_name: 'wsrep_last_committed', Value: '2238' },
      { Variable_name: 'wsrep_local_state', Value: localState },
      { Variable_name: 'wsrep_local_state_comment', Value: comment },
    ]);
  const desynced = locked('2', 'Donor/Desynced');
  assert.deepEqual(desynced, { position: { uuid: UUID, seqno: 2238 }, state: { localState: 2, comment: 'Donor/Desynced' } });
  assert.equal(desyncRefusal(desynced.state), undefined);
  // MariaDB's make_global_read_lock_block_commit only pauses a node whose wsrep state is not Synced: it
  // then reads Synced or Joined under the lock, and holding it would stall the cluster by flow control.
  for (const [state, comment] of [['4', 'Synced'], ['3', 'Joined']] as const) {
    assert.equal(
      desyncRefusal(locked(state, comment).state),
      `the lock did not desync this Galera node (wsrep_local_state = ${state}, ${comment}, under the lock): it was paused but still takes part in flow control, so holding it would stall every node of the cluster; it was released at once`,
    );
  }
  const unreported = parseGaleraLocked([{ Variable_name: 'wsrep_local_state_uuid', Value: UUID }, { Variable_name: 'wsrep_last_committed', Value: '7' }]);
  assert.deepEqual(unreported, { position: { uuid: UUID, seqno: 7 }, state: null });
  assert.equal(desyncRefusal(unreported.state), undefined, 'a state the server did not report is no reason to give the lock back');
  assert.equal(desyncRefusal(undefined), undefined, 'no Galera node');
});

test('doctor: the gcache against the write rate since start, and how long an image can wait to join by IST', () => {
  assert.equal(parseSize('128M'), 128 * 1024 ** 2);
  assert.equal(parseSize('1G'), 1024 ** 3);
  assert.equal(parseSize('4096'), 4096);
  assert.equal(parseSize('lots'), null);
  assert.equal(providerOption('a = 1; gcache.size = 32M; gcache.page_size = 128M', 'gcache.size'), '32M');
  // 2 MiB in an hour: 128M lasts 64 hours
  assert.equal(Math.round(gcacheCoverSeconds(node()) ?? 0), 64 * 3600);
  const roomy = galeraChecks(node(), 'ftwrl').find((check) => check.name === 'galera gcache');
  assert.equal(roomy?.verdict, 'ok');
  assert.match(roomy?.detail ?? '', /holds about 64\.0 h of write-sets .*joins by IST/);
  // 1 GiB an hour: 128M lasts 7.5 minutes
  const busy = node({ wsrep_replicated_bytes: String(1024 ** 3), wsrep_received_bytes: '0' });
  const tight = galeraChecks(busy, 'ftwrl').find((check) => check.name === 'galera gcache');
  assert.equal(tight?.verdict, 'warn');
  assert.match(tight?.detail ?? '', /holds about 8 min .*more than 8 min after its snapshot cannot join by IST, only by a full SST/);
  assert.match(tight?.fix ?? '', /raise gcache\.size in wsrep_provider_options to about 24576M/);
  const idle = galeraChecks(node({ wsrep_replicated_bytes: '0', wsrep_received_bytes: '0' }), 'ftwrl').find((check) => check.name === 'galera gcache');
  assert.match(idle?.detail ?? '', /no write-sets yet/);
  const refused = galeraChecks(node({ wsrep_local_state: '1', wsrep_local_state_comment: 'Joining' }), 'ftwrl')[0];
  assert.equal(refused?.verdict, 'fail');
});
