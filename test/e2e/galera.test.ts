/**
 * The hook on a Galera node, end to end: three MariaDB Galera nodes on loopback (Debian's galera-4), node
 * 3 with its data directory on a loop-mounted ext4, writers on nodes 1 and 2, and the BUILT executable
 * freezing node 3 (src/server/galera.ts).
 *
 * - The position recorded (uuid:seqno) is node 3's own at the lock: it stands still while held (the node
 *   is desynced and paused), and it is in grastate.dat of an image of the filesystem taken while frozen.
 * - The writers on node 1 and 2 keep committing while node 3 is held and its filesystem frozen.
 * - That image, started as a fourth node, joins by IST and holds the same data as the others.
 * - A node outside the primary component is refused, naming the state; a node desynced on purpose is
 *   snapshotted, and the log says so; both lock modes work; doctor tells the node's state and warnings.
 * Needs root and a loop device (the filesystem), galera-4 and rsync (.ci/run installs them).
 */
import { after, before, test as nodeTest, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type HookSetup, type HookSetupOptions, lineOf, makeHookSetup, ourHolders, readLog, runHook } from '../support/hook';
import { copyImage, loopFilesystemSkipReason, mountImageFile, mountLoopFilesystem, type LoopFilesystem } from '../support/loopfs';
import { checksum, errorLog, galeraUnavailable, readGrastate, startGaleraCluster, startWriter, waitConverged, waitSynced, wsrepStatus, type GaleraCluster, type GaleraNode, type Writer } from '../support/galera';
import type { TestServer } from '../support/mariadb';
import { sleep, waitFor } from '../support/wait';

let filesystem: LoopFilesystem;
let cluster: GaleraCluster;
let node1: TestServer;
let node2: TestServer;
let node3: TestServer;

const unavailable = galeraUnavailable() ?? loopFilesystemSkipReason();
const test = (name: string, body: (context: TestContext) => Promise<void>): void =>
  void (unavailable === undefined ? nodeTest(name, body) : nodeTest(name, { skip: unavailable }));

before(async () => {
  if (unavailable !== undefined) return;
  filesystem = await mountLoopFilesystem();
  cluster = await startGaleraCluster({ size: 3, datadirs: [undefined, undefined, path.join(filesystem.mountPoint, 'data')] });
  [node1, node2, node3] = cluster.nodes.map((node) => node.server) as [TestServer, TestServer, TestServer];
});

after(async () => {
  // Each step whatever the one before did: a frozen filesystem or a node left behind would outlive us.
  await filesystem?.thaw().catch(() => undefined);
  await cluster?.remove().catch(() => undefined);
  await filesystem?.remove();
});

function newSetup(context: TestContext, server: TestServer, options: HookSetupOptions = {}): HookSetup {
  const setup = makeHookSetup(server, options);
  context.after(async () => {
    await filesystem.thaw().catch(() => undefined);
    await runHook(setup, 'post-thaw-script', ['freezeFail']);
  });
  return setup;
}

function writers(context: TestContext, started: Writer[]): Writer[] {
  context.after(async () => {
    await Promise.all(started.map((writer) => writer.stop()));
  });
  return started;
}

interface Position {
  uuid: string;
  seqno: number;
}

async function ownPosition(server: TestServer): Promise<Position & { state: string }> {
  const status = await wsrepStatus(server);
  return { uuid: status.get('wsrep_local_state_uuid') ?? '', seqno: Number(status.get('wsrep_last_committed')), state: status.get('wsrep_local_state') ?? '' };
}

/**
 * The pause is in force when the lock statement returns (the position stands still), but the node's
 * state shows Donor/Desynced only once the cluster has delivered its desync: a moment later, at most.
 */
async function desyncedWhileHeld(server: TestServer, setup: HookSetup): Promise<void> {
  await waitFor('the held node to show Donor/Desynced (wsrep_local_state = 2)', async () => ((await ownPosition(server)).state === '2' ? true : undefined), {
    timeoutMs: 15_000,
    pollMs: 50,
    // Seen twice in CI before the holder checked the node's state under the lock: the server only pauses a
    // node its wsrep state machine does not count Synced at that moment (src/server/galera.ts,
    // desyncRefusal). What the node and the hook said by then:
    describe: async () => {
      const status = await wsrepStatus(server);
      const events = readLog(setup).map((line) => String(line['event']));
      return `wsrep_local_state ${status.get('wsrep_local_state')} (${status.get('wsrep_local_state_comment')}), wsrep_desync_count ${status.get('wsrep_desync_count')}; the hook's events: ${events.join(', ')}`;
    },
  });
}

test('the position recorded is the node\'s own at the lock; the others keep committing while it is held and frozen; an image taken then joins by IST with the same data', async (context) => {
  const coordinatesFile = path.join(fs.mkdtempSync(path.join(path.dirname(filesystem.mountPoint), 'coords-')), 'coordinates.json');
  const setup = newSetup(context, node3, { snapshot: { lock_mode: 'auto', coordinates_file: coordinatesFile } });
  const [onNode1, onNode2] = writers(context, [await startWriter(node1, 'node1'), await startWriter(node2, 'node2')]) as [Writer, Writer];
  const writingSince = Date.now();
  await sleep(1000);
  const before = onNode1.longestSince(writingSince);

  const frozen = await runHook(setup, 'pre-freeze-script', ['freeze']);
  assert.equal(frozen.code, 0, frozen.stderr);
  const heldSince = Date.now();
  const log = readLog(setup);
  assert.equal(lineOf(log, 'lock.mode')['mode'], 'backup_stage', 'auto picks BACKUP STAGE on a Galera node whose BACKUP STAGE pauses it');
  const node = lineOf(log, 'galera.node');
  assert.equal(node['localState'], 4);
  assert.equal(node['clusterSize'], 3);
  assert.match(String(node['msg']), /desyncs and pauses this node at BACKUP STAGE BLOCK_DDL/);
  const recorded = (lineOf(log, 'lock.acquired')['coordinates'] as { galera: Position }).galera;
  assert.match(String(lineOf(log, 'lock.acquired')['msg']), new RegExp(`galera ${recorded.uuid}:${recorded.seqno}`));

  const own = await ownPosition(node3);
  assert.deepEqual({ uuid: own.uuid, seqno: own.seqno }, recorded, 'the position recorded is the node\'s own while held');
  await desyncedWhileHeld(node3, setup);
  const status = await runHook(setup, 'vmware-mysql-snapshot', ['status']);
  assert.match(status.stdout, new RegExp(`^  galera position ${recorded.uuid}:${recorded.seqno}: a node restored from this snapshot joins by IST`, 'm'));
  const record = JSON.parse(fs.readFileSync(coordinatesFile, 'utf8')) as { coordinates: { galera: Position }; galera: { position: string; grastate: string; join: string[] } };
  assert.deepEqual(record.coordinates.galera, recorded);
  assert.equal(record.galera.position, `${recorded.uuid}:${recorded.seqno}`);
  assert.match(record.galera.grastate, new RegExp(`^uuid:\\s+${recorded.uuid}\\nseqno:\\s+${recorded.seqno}\\n`, 'm'));
  assert.ok(record.galera.join.some((step) => step.includes('gvwstate.dat')));

  await sleep(500);
  const stillOwn = await ownPosition(node3);
  assert.deepEqual({ uuid: stillOwn.uuid, seqno: stillOwn.seqno }, recorded, 'the paused node\'s position stands still while held');
  // Nothing asks node 3 anything while its filesystem is frozen: InnoDB's status waits for its log writer.
  await filesystem.freeze();
  const frozenAt = Date.now();
  await sleep(1000);
  // The disk as a hypervisor's snapshot holds it: copied while the filesystem is frozen and the lock held.
  const image = await copyImage(filesystem);
  // In order: the fourth node, then its filesystem (which deletes the image), or the image alone if never mounted.
  const restoredParts: { node?: GaleraNode; filesystem?: LoopFilesystem } = {};
  context.after(async () => {
    if (restoredParts.node !== undefined) {
      cluster.nodes.splice(cluster.nodes.indexOf(restoredParts.node), 1);
      await restoredParts.node.server.remove();
    }
    if (restoredParts.filesystem !== undefined) await restoredParts.filesystem.remove();
    else fs.rmSync(path.dirname(image), { recursive: true, force: true });
  });
  await sleep(Math.max(0, 2500 - (Date.now() - frozenAt)));
  const others = await ownPosition(node1);
  assert.ok(others.seqno > recorded.seqno + 20, `node 1 went on committing (at ${others.seqno}, node 3 held at ${recorded.seqno})`);
  const frozenMs = Date.now() - frozenAt;
  await filesystem.thaw();
  await waitFor('the holder to release at the filesystem thaw', () => (ourHolders().length === 0 ? true : undefined));
  const heldMs = Date.now() - heldSince;
  const thawed = await runHook(setup, 'post-thaw-script', ['thaw']);
  assert.equal(thawed.code, 0, thawed.stderr);
  assert.equal(lineOf(readLog(setup), 'lock.released')['reason'], 'filesystem_thaw');
  const history = JSON.parse(fs.readFileSync(path.join(setup.dir, 'history.json'), 'utf8')) as { runs: Array<{ operation: string; coordinates?: { galera?: Position } }> };
  assert.deepEqual(history.runs.filter((run) => run.operation === 'freeze').map((run) => run.coordinates?.galera), [recorded], 'the history has the position');
  const lastRuns = await runHook(setup, 'vmware-mysql-snapshot', ['status']);
  assert.match(lastRuns.stdout, new RegExp(`freeze +locked; .*galera ${recorded.uuid}:${recorded.seqno}`));

  const stallNode1 = onNode1.longestSince(heldSince);
  const stallNode2 = onNode2.longestSince(heldSince);
  const [done1, done2] = await Promise.all([onNode1.stop(), onNode2.stop()]);
  context.diagnostic(
    `node 3 held ${heldMs} ms (its filesystem frozen ${frozenMs} ms of it): longest writer stall on node 1 ${stallNode1} ms, on node 2 ${stallNode2} ms ` +
      `(${done1.inserts} + ${done2.inserts} inserts; longest on node 1 in the second before the freeze: ${before} ms)`,
  );
  assert.deepEqual([...done1.failures, ...done2.failures], []);
  assert.ok(stallNode1 < 1000 && stallNode2 < 1000, 'the writers on the other nodes did not wait for the held node');
  await waitSynced(node3);

  const restored = await mountImageFile(image);
  restoredParts.filesystem = restored;
  const datadir = path.join(restored.mountPoint, 'data');
  const saved = readGrastate(datadir);
  assert.deepEqual({ uuid: saved.uuid, seqno: saved.seqno }, recorded, 'the image\'s grastate.dat holds the position recorded');
  const fourth = await cluster.join(datadir);
  restoredParts.node = fourth;
  assert.match(errorLog(fourth.server), /IST received/, 'joined by IST');
  assert.doesNotMatch(errorLog(fourth.server), /SST request/i);
  const servers = cluster.nodes.map((member) => member.server);
  await waitConverged(servers);
  const sums = await Promise.all(servers.map((server) => checksum(server, 'app.t')));
  assert.equal(new Set(sums).size, 1, `CHECKSUM TABLE app.t on the four nodes: ${sums.join(', ')}`);
  const [counted] = await fourth.server.query<Array<{ rows: number }>>('SELECT COUNT(*) AS `rows` FROM app.t');
  assert.ok(Number(counted?.rows) > done1.inserts, 'the fourth node holds the writers\' rows');
});

test('lock_mode = ftwrl: the node is desynced and paused while held, at the position recorded, and Synced again after thaw', async (context) => {
  const setup = newSetup(context, node3, { snapshot: { lock_mode: 'ftwrl' } });
  const [onNode1] = writers(context, [await startWriter(node1, 'ftwrl')]) as [Writer];
  const frozen = await runHook(setup, 'pre-freeze-script', ['freeze']);
  assert.equal(frozen.code, 0, frozen.stderr);
  const heldSince = Date.now();
  const log = readLog(setup);
  assert.match(String(lineOf(log, 'galera.node')['msg']), /the lock \(ftwrl\) desyncs and pauses this node once FLUSH TABLES WITH READ LOCK holds/);
  const { galera: recorded, galeraState } = lineOf(log, 'lock.acquired')['coordinates'] as { galera: Position; galeraState: unknown };
  assert.deepEqual(galeraState, { localState: 2, comment: 'Donor/Desynced' }, 'the holder saw the node desynced under the lock, or gave the lock back');
  const own = await ownPosition(node3);
  assert.deepEqual({ uuid: own.uuid, seqno: own.seqno }, recorded);
  await desyncedWhileHeld(node3, setup);
  await sleep(1000);
  assert.deepEqual(await ownPosition(node3).then(({ uuid, seqno }) => ({ uuid, seqno })), recorded, 'paused: the position stands still');
  assert.ok((await ownPosition(node1)).seqno > recorded.seqno, 'node 1 went on committing');
  const thawed = await runHook(setup, 'post-thaw-script', ['thaw']);
  assert.equal(thawed.code, 0, thawed.stderr);
  const stall = onNode1.longestSince(heldSince);
  assert.ok(stall < 1000, `the writer on node 1 did not wait for the held node (longest insert ${stall} ms)`);
  await waitSynced(node3);
});

test('a node desynced on purpose (wsrep_desync = ON) is snapshotted, and the log says so', async (context) => {
  await node2.query('SET GLOBAL wsrep_desync = ON');
  context.after(async () => {
    await node2.query('SET GLOBAL wsrep_desync = OFF');
    await waitSynced(node2);
  });
  const setup = newSetup(context, node2, { snapshot: { lock_mode: 'ftwrl' } });
  const frozen = await runHook(setup, 'pre-freeze-script', ['freeze']);
  assert.equal(frozen.code, 0, frozen.stderr);
  const node = lineOf(readLog(setup), 'galera.node');
  assert.equal(node['level'], 'info', 'information, not a warning');
  assert.equal(node['desync'], true);
  assert.match(String(node['msg']), /Donor\/Desynced \(wsrep_local_state = 2\).*desynced on purpose \(wsrep_desync = ON\): the lock \(ftwrl\) only pauses it/);
  const recorded = (lineOf(readLog(setup), 'lock.acquired')['coordinates'] as { galera: Position }).galera;
  const own = await ownPosition(node2);
  assert.deepEqual({ uuid: own.uuid, seqno: own.seqno }, recorded);
  const thawed = await runHook(setup, 'post-thaw-script', ['thaw']);
  assert.equal(thawed.code, 0, thawed.stderr);
});

test('a node outside the primary component is refused, naming its state, with nothing held; doctor says the same', async (context) => {
  await node2.query("SET GLOBAL wsrep_provider_options = 'gmcast.isolate=1'");
  context.after(async () => {
    await node2.query("SET GLOBAL wsrep_provider_options = 'gmcast.isolate=0'");
    await waitSynced(node2);
  });
  await waitFor('node 2 to lose the primary component', async () => ((await wsrepStatus(node2)).get('wsrep_cluster_status') !== 'Primary' ? true : undefined), { timeoutMs: 30_000, pollMs: 200 });
  const setup = newSetup(context, node2);
  const frozen = await runHook(setup, 'pre-freeze-script', ['freeze']);
  assert.equal(frozen.code, 1, frozen.stdout);
  assert.match(frozen.stderr, /^freeze failed: this Galera node is not in the primary component \(wsrep_cluster_status = non-Primary, wsrep_ready = OFF\): it has lost quorum.*; nothing is held\n$/);
  assert.equal(lineOf(readLog(setup), 'freeze.failed')['code'], 'SERVER');
  assert.deepEqual(ourHolders(), []);
  assert.equal(await node2.query('SELECT COUNT(*) FROM app.t').then(() => 'answers', (error: Error) => error.message), 'WSREP has not yet prepared node for application use', 'the node itself refuses statements');
  const doctor = await runHook(setup, 'vmware-mysql-snapshot', ['doctor']);
  assert.notEqual(doctor.code, 0);
  assert.match(doctor.stdout, /^FAIL {2}galera +Galera node of a \d-node cluster, .*non-Primary.*: a freeze is refused\n +fix: this Galera node is not in the primary component/m);
});

test('doctor on a Galera node: its state, what the lock does, and whether the gcache lets a restored image join by IST', async (context) => {
  const setup = newSetup(context, node3, { snapshot: { lock_mode: 'auto' } });
  // ~150 kB of write-sets for node 3 to receive, whatever ran before: 32M then lasts hours, not a day.
  await node1.query("INSERT INTO app.t (v, note) SELECT seq, REPEAT('w', 100) FROM app.seq_1_to_1000");
  await waitConverged([node1, node3]);
  const doctor = await runHook(setup, 'vmware-mysql-snapshot', ['doctor']);
  assert.match(doctor.stdout, /^ok +lock mode +auto: backup_stage \(Galera node: BACKUP STAGE desyncs and pauses the node at BLOCK_DDL/m);
  assert.match(doctor.stdout, /^ok +galera +Galera node of a 3-node cluster, Synced \(wsrep_local_state = 4\), Primary, at [0-9a-f-]+:\d+; the lock \(backup_stage\) desyncs and pauses this node at BACKUP STAGE BLOCK_DDL; the other nodes keep committing/m);
  assert.match(doctor.stdout, /^WARN +galera gcache +gcache\.size 32 MiB holds about [\d.]+ (h|min) of write-sets at the rate since start .*cannot join by IST, only by a full SST\n +fix: raise gcache\.size in wsrep_provider_options to about \d+M/m);
  assert.doesNotMatch(doctor.stdout, /galera donor/);
});
