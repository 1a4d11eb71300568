/**
 * Nothing held without a record, nothing released without proof (issue #23): the BUILT executable under
 * its installed names against a real throwaway MariaDB, with the faults injected for real: run_dir on a
 * tiny tmpfs mounted here, a holder SIGSTOPped, state files replaced by garbage, run_dir's parent renamed
 * away, a server wait_timeout shorter than the wait, freezes SIGKILLed at any moment, an account limited
 * to one connection, a history holding garbage.
 *
 * After every case: no lock is held (a write from another connection goes through), no holder started
 * by this file is left.
 */
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { RowDataPacket } from 'mysql2/promise';
import { EXECUTABLE, lineOf, makeHookSetup, ourHolders, readLog, runHook, spawnCollected, closedWithin, type HookSetup, type HookSetupOptions } from '../support/hook';
import { startMariaDB, TEST_USER, type TestServer, tryInsert } from '../support/mariadb';
import { sleep, waitFor } from '../support/wait';

const TEST_TIMEOUT_MS = 90_000;

let server: TestServer;

before(async () => {
  server = await startMariaDB();
});

after(async () => {
  for (const pid of ourHolders()) killQuietly(pid, 'SIGKILL');
  await server?.remove();
});

function killQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // gone already
  }
}

/** A fresh setup; when the test ends: freezeFail, every holder of ours SIGKILLed (SIGCONT first), the directory removed. */
function newSetup(context: TestContext, options: HookSetupOptions = {}): HookSetup {
  const setup = makeHookSetup(server, options);
  context.after(async () => {
    for (const pid of ourHolders()) killQuietly(pid, 'SIGCONT');
    await runHook(setup, 'post-thaw-script', ['freezeFail'], { timeoutMs: 20_000 }).catch(() => undefined);
    for (const pid of ourHolders()) killQuietly(pid, 'SIGKILL');
    fs.rmSync(setup.dir, { recursive: true, force: true });
  });
  return setup;
}

async function assertNothingHeld(when: string): Promise<void> {
  assert.equal(await tryInsert(server), 'ok', `a write goes through ${when}: nothing is held`);
  await waitFor(`no holder of this file left ${when}`, () => (ourHolders().length === 0 ? true : undefined), { timeoutMs: 5000 });
}

function stateOf(setup: HookSetup): Record<string, any> | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(setup.runDir, 'state.json'), 'utf8')) as Record<string, any>;
  } catch {
    return undefined;
  }
}

/** Mounts a tmpfs of `size` for the test (unmounted whatever happens); undefined (test skipped) if mount is not allowed. */
function mountTmpfs(context: TestContext, size: string): string | undefined {
  const mountPoint = fs.mkdtempSync(path.join(os.tmpdir(), 'vms-records-tmpfs-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', mountPoint], { stdio: 'pipe' });
  } catch (error) {
    fs.rmSync(mountPoint, { recursive: true, force: true });
    context.skip(`cannot mount a tmpfs here (${String((error as { stderr?: unknown }).stderr ?? error).trim()})`);
    return undefined;
  }
  context.after(() => {
    try {
      execFileSync('umount', [mountPoint], { stdio: 'pipe' });
    } catch {
      execFileSync('umount', ['-l', mountPoint], { stdio: 'pipe' });
    }
    fs.rmSync(mountPoint, { recursive: true, force: true });
  });
  return mountPoint;
}

/** Fills the filesystem of `directory` to ENOSPC, then frees `freePages` pages of 4 KiB. */
function fillLeaving(directory: string, freePages: number): void {
  const filler = path.join(directory, 'filler');
  const fd = fs.openSync(filler, 'w');
  const chunk = Buffer.alloc(4096, 0x78);
  let written = 0;
  try {
    for (;;) written += fs.writeSync(fd, chunk);
  } catch (error) {
    assert.equal((error as NodeJS.ErrnoException).code, 'ENOSPC');
  } finally {
    fs.closeSync(fd);
  }
  fs.truncateSync(filler, Math.max(0, written - freePages * 4096));
}

// ===================================================================================================
// Invariant 1: no lock without a record

test('1. run_dir on a tiny, nearly full tmpfs: freeze either locks with its state recorded or fails naming the file and ENOSPC; never locked without a record, no .tmp left, nothing held after', { timeout: TEST_TIMEOUT_MS * 2 }, async (context) => {
  const mountPoint = mountTmpfs(context, '256k');
  if (mountPoint === undefined) return;
  const runDir = path.join(mountPoint, 'run');
  const setup = newSetup(context, { runDir });
  const outcomes: string[] = [];
  for (const freePages of [0, 1, 2, 3, 4, 6]) {
    fs.rmSync(runDir, { recursive: true, force: true });
    fs.rmSync(path.join(mountPoint, 'filler'), { force: true });
    fillLeaving(mountPoint, freePages);
    const frozen = await runHook(setup, 'pre-freeze-script', ['freeze'], { timeoutMs: 30_000 });
    if (frozen.code === 0) {
      outcomes.push(`${freePages} free: locked`);
      const state = stateOf(setup);
      assert.ok(state !== undefined, `locked with ${freePages} page(s) free: the holder's state is in run_dir`);
      assert.equal(state['phase'], 'held');
      assert.equal(await tryInsert(server), 'ER_LOCK_WAIT_TIMEOUT', 'the lock is held');
      fs.rmSync(path.join(mountPoint, 'filler'), { force: true }); // room for thaw's own records
      const thawed = await runHook(setup, 'post-thaw-script', ['thaw']);
      assert.equal(thawed.code, 0, thawed.stderr);
      assert.match(thawed.stdout, /^released after \d+ ms/);
    } else {
      outcomes.push(`${freePages} free: ${frozen.stderr.trim()}`);
      assert.equal(frozen.code, 1, frozen.stderr);
      assert.match(frozen.stderr, /ENOSPC/, 'the cause is named');
      assert.match(frozen.stderr, new RegExp(runDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')), 'the path is named');
      assert.doesNotMatch(frozen.stderr, /unexpected error|^\s+at /m);
      // Nothing held; and as the agent took its snapshot after a failed freeze, thaw says so (#18).
      const thawed = await runHook(setup, 'post-thaw-script', ['thaw']);
      assert.equal(thawed.code, 3, thawed.stderr);
      assert.match(thawed.stderr, /freeze failed at \S+ \(.*ENOSPC.*\) and no freezeFail followed/);
    }
    await assertNothingHeld(`after the run with ${freePages} page(s) free`);
    const leftovers = fs.existsSync(runDir) ? fs.readdirSync(runDir).filter((name) => name.endsWith('.tmp')) : [];
    assert.deepEqual(leftovers, [], 'no temporary file is left in run_dir');
  }
  context.diagnostic(outcomes.join('\n'));
  assert.ok(outcomes.some((outcome) => / free: locked$/.test(outcome)), 'with room enough, freeze locks');
  assert.ok(outcomes.some((outcome) => !/ free: locked$/.test(outcome)), 'with no room, freeze fails');
});

test('1b. run_dir fills up while the holder\'s FLUSH waits behind a long UPDATE: the lock, once taken, cannot be recorded, so the holder releases it and freeze fails naming the file and ENOSPC', { timeout: TEST_TIMEOUT_MS }, async (context) => {
  const mountPoint = mountTmpfs(context, '256k');
  if (mountPoint === undefined) return;
  const runDir = path.join(mountPoint, 'run');
  // The UPDATE is not "long" (long_query_time 10), so freeze tries at once and its FLUSH waits up to 8 s.
  const setup = newSetup(context, { runDir, snapshot: { lock_wait_timeout: '8', long_query_time: '10' } });
  const connection = await server.connect();
  connection.on('error', () => undefined);
  const update = connection.query('UPDATE app.t SET v = v + SLEEP(3) WHERE id = 1 /* records.test long update */').then(() => undefined, () => undefined);
  context.after(async () => {
    await update;
    connection.destroy();
  });
  await sleep(200);
  const freeze = spawnCollected(setup, 'pre-freeze-script', ['freeze']);
  await waitFor('the holder\'s FLUSH to wait behind the UPDATE', async () => {
    const rows = await server.query<RowDataPacket[]>("SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE '%FLUSH%vmware-mysql-snapshot holder%' AND ID <> CONNECTION_ID()");
    return rows.length > 0 ? true : undefined;
  });
  assert.equal(stateOf(setup)?.['phase'], 'locking', 'the attempt is recorded before the lock is taken');
  fillLeaving(mountPoint, 0);
  const result = await closedWithin(freeze, 20_000);
  await update;
  assert.equal(result.code, 1, freeze.stderr());
  assert.match(freeze.stderr(), /cannot record the lock holder's state in \S+\/run\/state\.json \(ENOSPC: no space left on device, write\); nothing is held/);
  await assertNothingHeld('after the failed freeze');
  assert.deepEqual(fs.readdirSync(runDir).filter((name) => name.endsWith('.tmp')), [], 'no temporary file is left in run_dir');
  const aborted = lineOf(readLog(setup), 'lock.aborted');
  assert.match(String(aborted['msg']), /cannot record the lock holder's state/);
  fs.rmSync(path.join(mountPoint, 'filler'), { force: true });
  // Nothing held; and as the agent took its snapshot after a failed freeze, thaw says so (#18).
  const thawed = await runHook(setup, 'post-thaw-script', ['thaw']);
  assert.equal(thawed.code, 3, thawed.stderr);
  assert.match(thawed.stderr, /freeze failed at \S+ \(.*ENOSPC.*\) and no freezeFail followed/);
});

// ===================================================================================================
// Invariant 2: thaw never says "nothing was held" while a holder of ours holds

test('2. a freeze started while a slow thaw runs (its holder SIGSTOPped): the thaw never acts on the new holder\'s state; a later thaw releases the new lock', { timeout: TEST_TIMEOUT_MS }, async (context) => {
  const setup = newSetup(context);
  const first = await runHook(setup, 'pre-freeze-script', ['freeze']);
  assert.equal(first.code, 0, first.stderr);
  const [holderA] = ourHolders();
  assert.ok(holderA !== undefined);
  process.kill(holderA, 'SIGSTOP');
  const slowThaw = spawnCollected(setup, 'post-thaw-script', ['thaw']);
  // Thaw asks, waits 3 s, stops the holder (SIGKILL after 1 s more): the moment it is gone, freeze again.
  await waitFor('thaw to end the stopped holder', () => (ourHolders().includes(holderA) ? undefined : true), { timeoutMs: 15_000, pollMs: 2 });
  const second = spawnCollected(setup, 'pre-freeze-script', ['freeze']);
  const slow = await closedWithin(slowThaw, 20_000);
  const frozen = await closedWithin(second, 30_000);
  context.diagnostic(`slow thaw: exit ${slow.code}: ${slowThaw.stdout().trim()} ${slowThaw.stderr().trim()}; second freeze: exit ${frozen.code}: ${second.stdout().trim()} ${second.stderr().trim()}`);
  assert.equal(slow.code, 0, slowThaw.stderr());
  if (frozen.code === 0) {
    const holderB = ourHolders()[0];
    assert.ok(holderB !== undefined && holderB !== holderA, 'the second freeze has its own holder');
    assert.equal(stateOf(setup)?.['holder']?.['pid'], holderB, 'its state was left alone by the slow thaw');
    assert.equal(await tryInsert(server), 'ER_LOCK_WAIT_TIMEOUT', 'the second lock is held');
    const thawed = await runHook(setup, 'post-thaw-script', ['thaw']);
    assert.equal(thawed.code, 0, thawed.stderr);
    assert.match(thawed.stdout, /^released after \d+ ms/, 'the later thaw releases the second lock');
  } else {
    assert.match(second.stderr(), /already held|being taken|another freeze/, 'refused while the first lock was being released');
  }
  await assertNothingHeld('after the thaws');
});

test('3. state.json replaced by garbage while held: status names the holder and says to thaw, check is CRITICAL, thaw releases it (found by its claim), a second thaw has nothing to do', { timeout: TEST_TIMEOUT_MS }, async (context) => {
  const setup = newSetup(context);
  const frozen = await runHook(setup, 'pre-freeze-script', ['freeze']);
  assert.equal(frozen.code, 0, frozen.stderr);
  const [holder] = ourHolders();
  fs.writeFileSync(path.join(setup.runDir, 'state.json'), 'garbage{', { mode: 0o600 });

  const status = await runHook(setup, 'vmware-mysql-snapshot', ['status']);
  assert.match(status.stdout, new RegExp(`lock holder pid ${holder} holds or takes a lock .* without a readable state: run "post-thaw-script thaw"`));
  assert.doesNotMatch(status.stdout, /idle: no lock held/);
  const check = await runHook(setup, 'vmware-mysql-snapshot', ['check']);
  assert.equal(check.code, 2, check.stdout);
  assert.match(check.stdout, /CRITICAL - lock holder pid \d+/);
  const refused = await runHook(setup, 'pre-freeze-script', ['freeze']);
  assert.equal(refused.code, 1, 'a second freeze is refused');
  assert.match(refused.stderr, new RegExp(`holder pid ${holder} \\(it claims run_dir`));

  assert.equal(await tryInsert(server), 'ER_LOCK_WAIT_TIMEOUT', 'still held');
  const thawed = await runHook(setup, 'post-thaw-script', ['thaw']);
  context.diagnostic(`thaw: exit ${thawed.code}: ${thawed.stdout}${thawed.stderr}`);
  assert.equal(thawed.code, 0, thawed.stderr);
  assert.match(thawed.stdout, /^released after \d+ ms/);
  lineOf(readLog(setup), 'thaw.holder_found');
  await assertNothingHeld('after thaw');
  const again = await runHook(setup, 'post-thaw-script', ['thaw']);
  assert.equal(again.code, 0);
  assert.match(again.stdout, /nothing was held/);
});

test('4. run_dir\'s parent renamed away and recreated while held: thaw finds the holder by its claim, releases it and exits 3 (it cannot tell how the hold went), never "nothing was held"', { timeout: TEST_TIMEOUT_MS }, async (context) => {
  const parent = fs.mkdtempSync(path.join(os.tmpdir(), 'vms-records-parent-'));
  const moved = `${parent}.moved`;
  context.after(() => {
    fs.rmSync(parent, { recursive: true, force: true });
    fs.rmSync(moved, { recursive: true, force: true });
  });
  const setup = newSetup(context, { runDir: path.join(parent, 'run') });
  const frozen = await runHook(setup, 'pre-freeze-script', ['freeze']);
  assert.equal(frozen.code, 0, frozen.stderr);
  fs.renameSync(parent, moved);
  fs.mkdirSync(parent, { mode: 0o755 });
  const status = await runHook(setup, 'vmware-mysql-snapshot', ['status']);
  assert.match(status.stdout, /lock holder pid \d+ holds or takes a lock/);
  const thawed = await runHook(setup, 'post-thaw-script', ['thaw']);
  context.diagnostic(`thaw: exit ${thawed.code}: ${thawed.stdout}${thawed.stderr}`);
  assert.equal(thawed.code, 3, thawed.stderr);
  assert.match(thawed.stderr, /lock holder \d+ held run_dir's lock although run_dir is missing; it is released/);
  await assertNothingHeld('after thaw');
});

// ===================================================================================================
// 5. the server's wait_timeout while freeze waits; a holder that lost its connection before locking

/** A statement that keeps freeze waiting for `seconds` (a blocker once past long_query_time, 1 s). */
async function startBlocker(seconds: number): Promise<{ done: Promise<void> }> {
  const connection = await server.connect();
  connection.on('error', () => undefined);
  const running = connection
    .query(`SELECT SLEEP(${seconds}) /* records.test blocker */`)
    .then(() => undefined, () => undefined)
    .then(() => connection.destroy());
  await sleep(1300);
  return { done: running };
}

test('5a. a server wait_timeout (2 s) shorter than freeze\'s wait for a quiet moment (5 s): the holder\'s idle connection survives and freeze locks', { timeout: TEST_TIMEOUT_MS }, async (context) => {
  const setup = newSetup(context);
  await server.query('SET GLOBAL wait_timeout = 2');
  context.after(() => server.query('SET GLOBAL wait_timeout = 28800'));
  const blocker = await startBlocker(5);
  const frozen = await runHook(setup, 'pre-freeze-script', ['freeze']);
  await blocker.done;
  assert.equal(frozen.code, 0, frozen.stderr);
  assert.equal(lineOf(readLog(setup), 'lock.acquired')['attempts'], 1, 'the first holder locked');
  const thawed = await runHook(setup, 'post-thaw-script', ['thaw']);
  assert.equal(thawed.code, 0, thawed.stderr);
  await assertNothingHeld('after thaw');
});

test('5b. the holder\'s connection KILLed while freeze waits for a quiet moment: the holder is replaced and freeze locks', { timeout: TEST_TIMEOUT_MS }, async (context) => {
  const setup = newSetup(context);
  const blocker = await startBlocker(6);
  const freeze = spawnCollected(setup, 'pre-freeze-script', ['freeze']);
  // The holder's connection idles from its start; freeze's own polls the processlist every 250 ms.
  const holderThread = await waitFor('the holder\'s idle connection', async () => {
    const rows = await server.query<RowDataPacket[]>("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ? AND COMMAND = 'Sleep' AND TIME_MS > 1500", [TEST_USER.name]);
    return rows[0]?.['ID'] as number | undefined;
  });
  await server.query(`KILL ${Number(holderThread)}`);
  const result = await closedWithin(freeze, 30_000);
  await blocker.done;
  assert.equal(result.code, 0, freeze.stderr());
  const abandoned = lineOf(readLog(setup), 'lock.abandoned');
  assert.match(String(abandoned['msg']), /the holder exited before it was told to lock.*it is replaced/);
  const thawed = await runHook(setup, 'post-thaw-script', ['thaw']);
  assert.equal(thawed.code, 0, thawed.stderr);
  await assertNothingHeld('after thaw');
});

// ===================================================================================================
// 6. a freeze lock whose owner died, whatever the moment

function ownIdentityLike(pid: number): Record<string, unknown> {
  return { pid, startTime: '1', name: 'pre-freeze-script', exe: fs.realpathSync(EXECUTABLE) };
}

async function deadPid(): Promise<number> {
  const child = spawn('true', [], { stdio: 'ignore' });
  await new Promise((resolve) => child.once('exit', resolve));
  return child.pid ?? 0;
}

test('6a. a freeze lock left between its taking and its owner record (only the dead freeze\'s candidate record), or with no record at all: the next freeze takes it over at once', { timeout: TEST_TIMEOUT_MS }, async (context) => {
  const setup = newSetup(context);
  for (const variant of ['candidate of a dead freeze', 'no record']) {
    fs.mkdirSync(path.join(setup.runDir, 'freeze.lock'), { recursive: true, mode: 0o700 });
    fs.chmodSync(setup.runDir, 0o700);
    if (variant === 'candidate of a dead freeze') {
      const pid = await deadPid();
      fs.writeFileSync(path.join(setup.runDir, `freeze.candidate.${pid}.json`), JSON.stringify(ownIdentityLike(pid)), { mode: 0o600 });
    }
    const frozen = await runHook(setup, 'pre-freeze-script', ['freeze']);
    assert.equal(frozen.code, 0, `${variant}: ${frozen.stderr}`);
    assert.ok(frozen.ms < 5000, `${variant}: at once (${frozen.ms} ms)`);
    const thawed = await runHook(setup, 'post-thaw-script', ['thaw']);
    assert.equal(thawed.code, 0, thawed.stderr);
    assert.deepEqual(fs.readdirSync(setup.runDir).filter((name) => name.startsWith('freeze.candidate.')), [], 'no candidate record left');
  }
  await assertNothingHeld('after the cycles');
});

test('6b. freeze SIGKILLed 10-150 ms after its start, 12 times: each next freeze locks (never "another freeze is starting")', { timeout: TEST_TIMEOUT_MS * 2 }, async (context) => {
  const setup = newSetup(context);
  for (let round = 0; round < 12; round += 1) {
    const delay = 10 + Math.round((round * 140) / 11);
    const victim = spawnCollected(setup, 'pre-freeze-script', ['freeze']);
    await sleep(delay);
    victim.child.kill('SIGKILL');
    await closedWithin(victim, 10_000);
    // Its holder, left without freeze, releases by itself; what matters is the freeze lock.
    await waitFor('the killed freeze\'s holder to go', () => (ourHolders().length === 0 ? true : undefined), { timeoutMs: 15_000 });
    const frozen = await runHook(setup, 'pre-freeze-script', ['freeze']);
    assert.equal(frozen.code, 0, `round ${round} (killed after ${delay} ms): ${frozen.stderr}`);
    const thawed = await runHook(setup, 'post-thaw-script', ['thaw']);
    assert.equal(thawed.code, 0, thawed.stderr);
  }
  await assertNothingHeld('after the rounds');
});

// ===================================================================================================
// 7. an account limited to one connection

test('7. an account with MAX_USER_CONNECTIONS 1: doctor fails the connections check, freeze fails saying the hook needs two connections; nothing held', { timeout: TEST_TIMEOUT_MS }, async (context) => {
  const setup = newSetup(context);
  await server.query(`GRANT USAGE ON *.* TO '${TEST_USER.name}'@'localhost' WITH MAX_USER_CONNECTIONS 1`);
  context.after(() => server.query(`GRANT USAGE ON *.* TO '${TEST_USER.name}'@'localhost' WITH MAX_USER_CONNECTIONS 0`));
  const doctor = await runHook(setup, 'vmware-mysql-snapshot', ['doctor']);
  context.diagnostic(doctor.stdout);
  assert.equal(doctor.code, 1, doctor.stdout);
  assert.match(doctor.stdout, /FAIL\s+connections\s+.*is 1: the hook needs 2 connections of .* at once/);
  assert.match(doctor.stdout, /fix: ALTER USER .* WITH MAX_USER_CONNECTIONS 0/);
  const frozen = await runHook(setup, 'pre-freeze-script', ['freeze']);
  assert.equal(frozen.code, 1, frozen.stderr);
  assert.match(frozen.stderr, /the hook needs 2 connections of its account at once/);
  await assertNothingHeld('after the refused freeze');
  await server.query(`GRANT USAGE ON *.* TO '${TEST_USER.name}'@'localhost' WITH MAX_USER_CONNECTIONS 0`);
  const healed = await runHook(setup, 'vmware-mysql-snapshot', ['doctor']);
  assert.match(healed.stdout, /ok\s+connections\s+the hook needs 2 connections/);
});

// ===================================================================================================
// 8. an unreadable history

test('8. history_file holding garbage: status and check say what to do; the next freeze moves it aside (logged), never replaces it silently', { timeout: TEST_TIMEOUT_MS }, async (context) => {
  const setup = newSetup(context);
  const historyFile = path.join(setup.dir, 'history.json');
  fs.writeFileSync(historyFile, 'not json at all', { mode: 0o600 });
  const status = await runHook(setup, 'vmware-mysql-snapshot', ['status']);
  assert.equal(status.code, 0, status.stderr);
  assert.match(status.stdout, /idle: no lock held/);
  assert.match(status.stdout, /problem: the history .* cannot be read .*: the next freeze or thaw moves it aside/);
  const check = await runHook(setup, 'vmware-mysql-snapshot', ['check']);
  assert.match(check.stdout, /UNKNOWN - .*moves it aside/);

  const frozen = await runHook(setup, 'pre-freeze-script', ['freeze']);
  assert.equal(frozen.code, 0, frozen.stderr);
  const moved = lineOf(readLog(setup), 'history.moved_aside');
  assert.equal(fs.readFileSync(String(moved['movedTo']), 'utf8'), 'not json at all', 'the old history is kept, aside');
  const thawed = await runHook(setup, 'post-thaw-script', ['thaw']);
  assert.equal(thawed.code, 0, thawed.stderr);
  const history = JSON.parse(fs.readFileSync(historyFile, 'utf8')) as { runs: unknown[] };
  assert.equal(history.runs.length, 2, 'a new history with this freeze and thaw');
  await assertNothingHeld('after thaw');
});

// ===================================================================================================
// 9. the real cause of a lost lock

test('9. a holder SIGSTOPped past its wait_timeout (max_lock_time 1 s + 10 s): thaw exits 3 naming the server\'s wait_timeout, not max_lock_time', { timeout: TEST_TIMEOUT_MS }, async (context) => {
  const setup = newSetup(context, { snapshot: { max_lock_time: '1' } });
  const frozen = await runHook(setup, 'pre-freeze-script', ['freeze']);
  assert.equal(frozen.code, 0, frozen.stderr);
  const [holder] = ourHolders();
  assert.ok(holder !== undefined);
  const connectionId = Number(stateOf(setup)?.['connection']?.['id']);
  process.kill(holder, 'SIGSTOP');
  await waitFor('the server to drop the stopped holder\'s connection', async () => {
    const rows = await server.query<RowDataPacket[]>('SELECT ID FROM information_schema.PROCESSLIST WHERE ID = ?', [connectionId]);
    return rows.length === 0 ? true : undefined;
  }, { timeoutMs: 20_000 });
  process.kill(holder, 'SIGCONT');
  const thawed = await runHook(setup, 'post-thaw-script', ['thaw']);
  context.diagnostic(`thaw: exit ${thawed.code}: ${thawed.stderr}`);
  assert.equal(thawed.code, 3, thawed.stderr);
  assert.match(thawed.stderr, /wait_timeout \(11 s, max_lock_time \+ 10 s\)/);
  assert.match(thawed.stderr, /did not run for about \d+ s/);
  assert.doesNotMatch(thawed.stderr, /max_lock_time \(1 s\) reached/);
  const lost = lineOf(readLog(setup), 'lock.lost');
  assert.ok(Number(lost['heldMs']) < 12_500, `the hold is counted to the server's drop (${lost['heldMs']} ms)`);
  await assertNothingHeld('after thaw');
});
