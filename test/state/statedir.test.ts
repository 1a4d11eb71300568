/** run_dir safety, process proof and the freeze lock, on real files and processes. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { HookError } from '../../src/errors';
import { holderEnvironment } from '../../src/snapshot/spawnholder';
import { acquireFreezeLock } from '../../src/state/freezelock';
import { identify, isSameProcess, signalIfSame, stopProcess } from '../../src/state/processes';
import { isHolderState } from '../../src/snapshot/holderstate';
import { checkRunDir, ensureRunDir, readJson, removeFile, writeJson } from '../../src/state/statedir';

function temporaryDirectory(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'vms-unit-'));
}

const isObject = (value: unknown): value is { a: number } => typeof value === 'object' && value !== null && 'a' in value;

test('ensureRunDir creates the directory with mode 700, also under a missing parent', () => {
  const base = temporaryDirectory();
  const runDir = path.join(base, 'missing', 'run');
  ensureRunDir(runDir);
  assert.equal(fs.statSync(runDir).mode & 0o777, 0o700);
  ensureRunDir(runDir); // again: fine
});

test('a run_dir that is a symlink, or writable by others, is refused with the fix in the message', () => {
  const base = temporaryDirectory();
  const real = path.join(base, 'real');
  fs.mkdirSync(real, { mode: 0o700 });
  const link = path.join(base, 'link');
  fs.symlinkSync(real, link);
  assert.throws(() => checkRunDir(link), (error: HookError) => error.code === 'UNSAFE' && /not a directory.*Remove it/.test(error.message));
  const open = path.join(base, 'open');
  fs.mkdirSync(open);
  fs.chmodSync(open, 0o777);
  assert.throws(() => checkRunDir(open), /writable by group or others \(mode 0777\)/);
});

test('writeJson writes atomically with mode 600 and replaces a planted symlink instead of following it', () => {
  const runDir = temporaryDirectory();
  const victim = path.join(runDir, 'victim');
  fs.writeFileSync(victim, 'precious');
  fs.symlinkSync(victim, path.join(runDir, 'state.json'));
  writeJson(runDir, 'state.json', { a: 1 });
  assert.equal(fs.readFileSync(victim, 'utf8'), 'precious', 'the symlink target is untouched');
  assert.ok(fs.lstatSync(path.join(runDir, 'state.json')).isFile());
  assert.equal(fs.statSync(path.join(runDir, 'state.json')).mode & 0o777, 0o600);
  assert.deepEqual(readJson(runDir, 'state.json', isObject), { kind: 'ok', value: { a: 1 } });
  assert.deepEqual(fs.readdirSync(runDir).sort(), ['state.json', 'victim']);
});

test('readJson distrusts symlinks, group/world-writable files and corrupted content', () => {
  const runDir = temporaryDirectory();
  assert.deepEqual(readJson(runDir, 'state.json', isObject), { kind: 'missing' });
  fs.writeFileSync(path.join(runDir, 'target'), '{"a":1}');
  fs.symlinkSync(path.join(runDir, 'target'), path.join(runDir, 'state.json'));
  assert.match(untrusted(runDir), /is a symlink/);
  removeFile(runDir, 'state.json');
  assert.ok(fs.existsSync(path.join(runDir, 'target')), 'removeFile removes the link, not its target');
  writeJson(runDir, 'state.json', { a: 1 });
  fs.chmodSync(path.join(runDir, 'state.json'), 0o666);
  assert.match(untrusted(runDir), /writable by group or others/);
  fs.writeFileSync(path.join(runDir, 'state.json'), '{"a":', { mode: 0o600 });
  fs.chmodSync(path.join(runDir, 'state.json'), 0o600);
  assert.match(untrusted(runDir), /corrupted/);
  fs.writeFileSync(path.join(runDir, 'state.json'), '{"b":2}');
  assert.match(untrusted(runDir), /unexpected content/);
});

function untrusted(runDir: string): string {
  const result = readJson(runDir, 'state.json', isObject);
  assert.equal(result.kind, 'untrusted');
  return result.kind === 'untrusted' ? result.reason : '';
}

test('a process is proven by PID, start time and name; a reused PID with another start time is not ours', async () => {
  const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)'], { argv0: 'pre-freeze-mysql-lock', stdio: 'ignore' });
  await new Promise((resolve) => child.once('spawn', resolve));
  const identity = identify(child.pid ?? 0);
  assert.ok(identity !== null);
  assert.equal(identity.name, 'pre-freeze-mysql-lock');
  assert.ok(isSameProcess(identity));
  assert.equal(isSameProcess({ ...identity, startTime: String(Number(identity.startTime) - 1) }), false);
  assert.equal(identity.exe, fs.realpathSync(process.execPath));
  assert.equal(signalIfSame({ ...identity, name: 'something-else' }, 'SIGKILL'), false, 'no signal to an unproven process');
  assert.equal(signalIfSame({ ...identity, exe: '/usr/bin/other' }, 'SIGKILL'), false, 'nor to another executable');
  assert.ok(isSameProcess(identity), 'it survived');
  assert.equal(await stopProcess(identity, 2000), true);
  assert.equal(identify(-1), null);
});

test('the holder environment keeps PATH and the locale only', () => {
  const environment = holderEnvironment({ PATH: '/evil', NODE_OPTIONS: '--require x', MYSQL_PWD: 'secret', LANG: 'C.UTF-8', HOME: '/root' });
  assert.deepEqual(environment, { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8' });
});

test('one freeze at a time; the lock of a freeze that died is taken over at once', async () => {
  const runDir = temporaryDirectory();
  const release = await acquireFreezeLock(runDir);
  await assert.rejects(acquireFreezeLock(runDir), (error: HookError) => error.code === 'BUSY' && /another freeze is running \(pid \d+\)/.test(error.message));
  release();
  assert.equal(fs.existsSync(path.join(runDir, 'freeze.lock')), false, 'released at once, synchronously');
  const again = await acquireFreezeLock(runDir);
  // Pretend its owner died: an owner record naming a process that no longer exists.
  writeJson(runDir, 'freeze.owner.json', { pid: 2 ** 22 + 1, startTime: '1', name: 'pre-freeze-script', exe: '/usr/local/sbin/vmware-mysql-snapshot' });
  const taken = await acquireFreezeLock(runDir);
  taken();
  again(); // taken over: releasing it again is harmless
});

test('holder state validation rejects malformed records', () => {
  const good = { version: 1, phase: 'held', holder: { pid: 1234, startTime: '99', name: 'pre-freeze-mysql-lock', exe: '/usr/local/sbin/vmware-mysql-snapshot' }, startedAt: 1 };
  assert.ok(isHolderState(good));
  assert.equal(isHolderState({ ...good, phase: 'bogus' }), false);
  assert.equal(isHolderState({ ...good, holder: { ...good.holder, pid: 1 } }), false, 'never PID 1');
  assert.equal(isHolderState({ ...good, version: 2 }), false);
  assert.equal(isHolderState(null), false);
});

test('a freeze lock between its taking and its owner record: busy while that freeze lives, taken over at once when it is dead', async () => {
  const runDir = temporaryDirectory();
  const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)'], { argv0: 'pre-freeze-script', stdio: 'ignore' });
  await new Promise((resolve) => child.once('spawn', resolve));
  const starting = identify(child.pid ?? 0);
  assert.ok(starting !== null);
  // What a freeze leaves from the moment it made the lock directory to the moment it renamed its record.
  fs.mkdirSync(path.join(runDir, 'freeze.lock'));
  writeJson(runDir, `freeze.candidate.${starting.pid}.json`, starting);
  await assert.rejects(acquireFreezeLock(runDir), (error: HookError) => error.code === 'BUSY' && /another freeze is starting/.test(error.message));
  assert.deepEqual(fs.readdirSync(runDir).filter((name) => name.startsWith('freeze.candidate.')), [`freeze.candidate.${starting.pid}.json`], 'the refused freeze took its own record away');
  assert.equal(await stopProcess(starting, 2000), true);
  const release = await acquireFreezeLock(runDir);
  assert.deepEqual(fs.readdirSync(runDir).filter((name) => name.startsWith('freeze.')).sort(), ['freeze.lock', 'freeze.owner.json'], 'the dead freeze\'s record is gone, ours is the owner\'s');
  release();
  assert.deepEqual(fs.readdirSync(runDir), []);
});
