/**
 * release_at = filesystem_thaw, end to end: the BUILT executable against a MariaDB whose data directory
 * is on a loop-mounted ext4 that the test freezes and thaws with fsfreeze between freeze and thaw, as the
 * agents do around the snapshot (src/snapshot/fsthaw.ts). Needs root and a loop device, as CI has.
 */
import { after, before, test as nodeTest, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Connection } from 'mysql2/promise';
import { PROBE_NAME } from '../../src/snapshot/fsthaw';
import { type HookSetup, type HookSetupOptions, lineOf, makeHookSetup, ourHolders, readLog, runHook } from '../support/hook';
import { loopFilesystemSkipReason, mountLoopFilesystem, type LoopFilesystem } from '../support/loopfs';
import { startMariaDB, type TestServer, tryInsert } from '../support/mariadb';
import { sleep, waitFor } from '../support/wait';

let filesystem: LoopFilesystem;
let other: LoopFilesystem;
let server: TestServer;

const unavailable = loopFilesystemSkipReason();
const test = (name: string, body: (context: TestContext) => Promise<void>): void =>
  void (unavailable === undefined ? nodeTest(name, body) : nodeTest(name, { skip: unavailable }));

before(async () => {
  if (unavailable !== undefined) return;
  [filesystem, other] = await Promise.all([mountLoopFilesystem(), mountLoopFilesystem(16)]);
  server = await startMariaDB({ datadir: path.join(filesystem.mountPoint, 'data') });
});

after(async () => {
  await server?.remove();
  await Promise.all([filesystem?.remove(), other?.remove()]);
});

function newSetup(context: TestContext, options: HookSetupOptions = {}): HookSetup {
  const setup = makeHookSetup(server, options);
  context.after(async () => {
    await Promise.all([filesystem.thaw(), other.thaw()]);
    await runHook(setup, 'post-thaw-script', ['freezeFail']);
  });
  return setup;
}

/** An INSERT on a connection of its own, started now; `done` says when it returned. */
async function startWriter(): Promise<{ connection: Connection; result: Promise<number>; done: () => boolean }> {
  const connection = await server.connect();
  let finished = false;
  const result = connection.query("INSERT INTO app.t (v, note) VALUES (1, 'writer')").then(() => {
    finished = true;
    return Date.now();
  });
  await waitFor('the writer to wait for the lock', async () => {
    const rows = await server.query<unknown[]>("SELECT 1 FROM information_schema.PROCESSLIST WHERE INFO LIKE 'INSERT INTO app.t (v, note) VALUES (1, _writer_)' AND STATE LIKE '%lock%'");
    return rows.length > 0 ? true : undefined;
  }, { timeoutMs: 5000 }).catch(async (error: unknown) => {
    connection.destroy();
    throw error;
  });
  return { connection, result, done: () => finished };
}

test('the lock ends when the data directory filesystem thaws, before thaw is called', async (context) => {
  const setup = newSetup(context);
  const entriesBefore = fs.readdirSync(server.datadir).sort();
  const frozen = await runHook(setup, 'pre-freeze-script', ['freeze']);
  assert.equal(frozen.code, 0, frozen.stderr);
  const writer = await startWriter();
  context.after(() => writer.connection.destroy());

  const acquired = lineOf(readLog(setup), 'lock.acquired');
  assert.equal(acquired['thawProbe'], `${server.datadir}/`);
  assert.match(String(acquired['msg']), /; held until the filesystem of .+ thaws, thaw or for at most 30 s$/);
  const holding = await runHook(setup, 'vmware-mysql-snapshot', ['status']);
  assert.match(holding.stdout, new RegExp(`^  releases when the filesystem of ${server.datadir}/? thaws after the snapshot, or at thaw$`, 'm'));
  await filesystem.freeze();
  await sleep(300);
  assert.equal(writer.done(), false, 'the writer waits while the filesystem is frozen');
  assert.equal(ourHolders().length, 1, 'the holder holds while the filesystem is frozen');

  const thawedAt = Date.now();
  await filesystem.thaw();
  const proceededAt = await writer.result;
  assert.ok(proceededAt >= thawedAt);
  await waitFor('the holder to exit', () => (ourHolders().length === 0 ? true : undefined));

  const releasedLine = lineOf(readLog(setup), 'lock.released');
  assert.equal(releasedLine['reason'], 'filesystem_thaw');
  const freeze = releasedLine['filesystemFreeze'] as { directory: string; seenAt: number; thawedAt: number };
  assert.equal(freeze.directory, `${server.datadir}/`);
  assert.ok(freeze.seenAt < thawedAt && freeze.thawedAt >= thawedAt, 'the freeze was seen before the thaw, and the thaw after');

  const released = await runHook(setup, 'vmware-mysql-snapshot', ['status']);
  assert.match(released.stdout, /^released \(released: the filesystem of .+ thawed after the snapshot\) at .+; thaw has not run yet$/m);

  const thawed = await runHook(setup, 'post-thaw-script', ['thaw']);
  assert.equal(thawed.code, 0, thawed.stderr);
  assert.match(thawed.stdout, /^released after \d+ ms, when the filesystem of .+ thawed \(\d+ ms ago\)/);
  const after = await runHook(setup, 'vmware-mysql-snapshot', ['status']);
  assert.match(after.stdout, /thaw +released; held [\d.]+ m?s, to the filesystem thaw/);
  assert.equal(lineOf(readLog(setup), 'thaw.released')['phase'], 'released');
  assert.deepEqual(fs.readdirSync(server.datadir).sort(), entriesBefore, 'the probe left nothing in the data directory');
  assert.equal(fs.existsSync(path.join(server.datadir, PROBE_NAME)), false);
  assert.equal(await tryInsert(server), 'ok');
});

test('release_at = post_thaw: the lock outlasts the filesystem thaw until thaw', async (context) => {
  const setup = newSetup(context, { snapshot: { release_at: 'post_thaw' } });
  const frozen = await runHook(setup, 'pre-freeze-script', ['freeze']);
  assert.equal(frozen.code, 0, frozen.stderr);
  await filesystem.freeze();
  await sleep(100);
  await filesystem.thaw();
  assert.equal(await tryInsert(server), 'ER_LOCK_WAIT_TIMEOUT', 'still locked a second after the thaw');
  const thawed = await runHook(setup, 'post-thaw-script', ['thaw']);
  assert.equal(thawed.code, 0, thawed.stderr);
  // At thaw's start (its exec seen), or at its request if its runtime came up first on a loaded machine.
  assert.match(thawed.stdout, /^released after \d+ ms(, as post-thaw-script thaw started|\n$)/);
  assert.ok(['thaw_started', 'requested'].includes(String(lineOf(readLog(setup), 'lock.released')['reason'])));
});

test('the freeze and thaw of another filesystem, or none, leave the lock to thaw', async (context) => {
  const setup = newSetup(context);
  const frozen = await runHook(setup, 'pre-freeze-script', ['freeze']);
  assert.equal(frozen.code, 0, frozen.stderr);
  const datadirBefore = fs.statSync(server.datadir);
  await other.freeze();
  await sleep(100);
  await other.thaw();
  assert.equal(await tryInsert(server), 'ER_LOCK_WAIT_TIMEOUT', 'still locked a second after the other filesystem thawed');
  const datadirAfter = fs.statSync(server.datadir);
  assert.equal(datadirAfter.ctimeMs, datadirBefore.ctimeMs, 'the probes changed nothing in the data directory');
  assert.equal(datadirAfter.mtimeMs, datadirBefore.mtimeMs);
  const thawed = await runHook(setup, 'post-thaw-script', ['thaw']);
  assert.equal(thawed.code, 0, thawed.stderr);
  // At thaw's start (its exec seen), or at its request if its runtime came up first on a loaded machine.
  assert.match(thawed.stdout, /^released after \d+ ms(, as post-thaw-script thaw started|\n$)/);
  assert.ok(['thaw_started', 'requested'].includes(String(lineOf(readLog(setup), 'lock.released')['reason'])));
});
