/**
 * What a local user can do to a hook that runs as root (SECURITY.md): each attack is carried out for real
 * by a throwaway unprivileged user that this file creates (useradd) and removes (userdel), her steps run
 * as her with setpriv, against the BUILT executable run as root. Needs root; skipped otherwise.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Connection } from 'mysql2/promise';
import { closedWithin, EXECUTABLE, HOOK_NAMES, type HookSetup, makeHookSetup, parseLogLines, runHook, spawnCollected } from '../support/hook';
import { startMariaDB, type TestServer } from '../support/mariadb';
import { sleep, waitFor } from '../support/wait';

const isRoot = process.geteuid?.() === 0;
const skip = isRoot ? false : 'creates a user and runs the hook as root: run as root';
const SECRET = 'S3cretPassw0rdXyz';

interface Attacker {
  name: string;
  uid: number;
  gid: number;
  /** a directory of hers (mode 755), where she prepares her attacks */
  home: string;
}

let attacker: Attacker;
const attackerProcesses = new Set<ChildProcess>();
const directories: string[] = [];

before(() => {
  if (!isRoot) return;
  const name = `vmsatk${process.pid % 100000}`;
  execFileSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', '--user-group', name]);
  const uid = Number(execFileSync('id', ['-u', name], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', name], { encoding: 'utf8' }).trim());
  const home = tempDir('vms-attacker-');
  fs.chmodSync(home, 0o755);
  fs.chownSync(home, uid, gid);
  attacker = { name, uid, gid, home };
});

after(() => {
  for (const child of attackerProcesses) child.kill('SIGKILL');
  if (attacker !== undefined) execFileSync('userdel', [attacker.name]);
  for (const directory of directories) fs.rmSync(directory, { recursive: true, force: true });
});

function tempDir(prefix: string): string {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  directories.push(directory);
  return directory;
}

/** Starts a program as the attacker: her uid and gid, no supplementary groups. */
function asAttacker(program: string, args: string[]): ChildProcess {
  const child = spawn('setpriv', ['--reuid', String(attacker.uid), '--regid', String(attacker.gid), '--clear-groups', '--', program, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    cwd: attacker.home,
  });
  attackerProcesses.add(child);
  child.once('exit', () => attackerProcesses.delete(child));
  return child;
}

/** Runs a shell command as the attacker to completion. */
function attackerSh(command: string): void {
  execFileSync('setpriv', ['--reuid', String(attacker.uid), '--regid', String(attacker.gid), '--clear-groups', '--', '/bin/sh', '-c', command], { cwd: attacker.home });
}

/** A node script of hers, in her directory. */
function attackerScript(name: string, source: string): string {
  const file = path.join(attacker.home, name);
  fs.writeFileSync(file, source, { mode: 0o644 });
  fs.chownSync(file, attacker.uid, attacker.gid);
  return file;
}

/** A setup of root's (its directory 700) with the given config lines; no server needed. */
function rootSetup(client: Record<string, string>, snapshot: Record<string, string> = {}, extra = ''): HookSetup {
  const dir = tempDir('vms-sec-');
  const setup: HookSetup = { dir, binDir: path.join(dir, 'bin'), configFile: path.join(dir, 'hook.cnf'), runDir: path.join(dir, 'run'), logFile: path.join(dir, 'hook.log') };
  fs.mkdirSync(setup.binDir);
  for (const name of HOOK_NAMES) fs.symlinkSync(EXECUTABLE, path.join(setup.binDir, name));
  const values = { run_dir: setup.runDir, log_file: setup.logFile, history_file: path.join(dir, 'history.json'), ...snapshot };
  const lines = ['[client]', ...Object.entries(client).map(([key, value]) => `${key} = ${value}`), '[snapshot]', ...Object.entries(values).map(([key, value]) => `${key} = ${value}`), extra, ''];
  fs.writeFileSync(setup.configFile, lines.join('\n'), { mode: 0o600 });
  return setup;
}

test('1. an included directory she can write is refused at every run, while she flips a symlink in it', { skip, timeout: 120_000 }, async () => {
  const marker = path.join(tempDir('vms-marker-'), 'notify-ran');
  const harmless = path.join(tempDir('vms-harmless-'), 'harmless.cnf');
  fs.writeFileSync(harmless, '[snapshot]\nnotify_timeout = 5\n', { mode: 0o644 });
  const included = path.join(attacker.home, 'conf.d');
  attackerSh(`mkdir ${included} && printf '[snapshot]\\nnotify_command = touch ${marker}\\n' > ${attacker.home}/evil.cnf`);
  const setup = rootSetup({ user: 'snapshot', socket: '/nonexistent/mysqld.sock' }, { if_server_down: 'fail' }, `!includedir ${included}`);
  const flipper = asAttacker('/bin/sh', ['-c', `while true; do ln -sfn ${harmless} ${included}/x.cnf; ln -sfn ${attacker.home}/evil.cnf ${included}/x.cnf; done`]);
  try {
    for (let run = 0; run < 10; run++) {
      const result = await runHook(setup, 'pre-freeze-script', ['freeze'], { timeoutMs: 30_000 });
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr, /not safe/, result.stderr);
      assert.ok(result.stderr.includes(included), result.stderr);
    }
  } finally {
    flipper.kill('SIGKILL');
  }
  assert.equal(fs.existsSync(marker), false, 'her notify_command never ran as root');
});

test('1b. a file included from a root directory is checked on what was opened: her file behind a root symlink is refused', { skip }, async () => {
  const evil = path.join(attacker.home, 'evil2.cnf');
  attackerSh(`printf '[snapshot]\\nnotify_command = id\\n' > ${evil} && chmod 600 ${evil}`);
  const link = path.join(tempDir('vms-link-'), 'inc.cnf');
  fs.symlinkSync(evil, link);
  const setup = rootSetup({ user: 'snapshot', socket: '/nonexistent/mysqld.sock' }, {}, `!include ${link}`);
  const result = await runHook(setup, 'pre-freeze-script', ['freeze']);
  assert.equal(result.code, 2, result.stderr);
  assert.match(result.stderr, new RegExp(`owned by uid ${attacker.uid}`), result.stderr);
});

/** Her fake server: records every byte it receives; answers as MySQL 8 asking for caching_sha2_password full authentication. */
const FAKE_SERVER = `
const net = require('node:net'); const fs = require('node:fs');
const [kind, where, record] = process.argv.slice(2);
const handshake = () => {
  const body = Buffer.concat([Buffer.from([10]), Buffer.from('8.0.40\\0'), Buffer.from([1,0,0,0]), Buffer.alloc(8, 0x41), Buffer.from([0]),
    Buffer.from([0xff, 0xf7]), Buffer.from([33]), Buffer.from([2, 0]), Buffer.from([0xff, 0xdf]), Buffer.from([21]), Buffer.alloc(10),
    Buffer.alloc(12, 0x42), Buffer.from([0]), Buffer.from('caching_sha2_password\\0')]);
  const header = Buffer.from([body.length & 0xff, body.length >> 8, 0, 0]);
  return Buffer.concat([header, body]);
};
const server = net.createServer((socket) => {
  fs.appendFileSync(record, 'connection\\n');
  socket.on('data', (data) => { fs.appendFileSync(record, data.toString('hex') + '\\n'); socket.write(Buffer.from([2, 0, 0, 2, 1, 4])); });
  socket.on('error', () => {});
  socket.write(handshake());
});
if (kind === 'tcp') server.listen(Number(where), '127.0.0.1', () => console.log('listening'));
else server.listen(where, () => { fs.chmodSync(where, 0o777); console.log('listening'); });
`;

async function startFakeServer(kind: 'tcp' | 'socket', where: string, record: string): Promise<ChildProcess> {
  attackerSh(`: > ${record}`);
  const child = asAttacker(process.execPath, [attackerScript('fake-server.js', FAKE_SERVER), kind, where, record]);
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  await waitFor('her fake server to listen', () => (output.includes('listening') ? true : undefined), { timeoutMs: 10_000 });
  return child;
}

test('2. a fake server on the loopback port gets no byte of the login: the listener is hers', { skip }, async () => {
  const port = 20000 + (process.pid % 20000);
  const record = path.join(attacker.home, 'tcp-record.txt');
  const fake = await startFakeServer('tcp', String(port), record);
  try {
    const setup = rootSetup({ user: 'snapshot', password: SECRET, host: '127.0.0.1', port: String(port) }, { if_server_down: 'fail' });
    for (const [name, args] of [['pre-freeze-script', ['freeze']], ['vmware-mysql-snapshot', ['doctor']]] as const) {
      const result = await runHook(setup, name, [...args]);
      assert.notEqual(result.code, 0, result.stderr);
      assert.match(result.stdout + result.stderr, new RegExp(`belongs to uid ${attacker.uid}.*posing as the server`), result.stdout + result.stderr);
    }
    const received = fs.readFileSync(record, 'utf8').split('\n').filter((line) => line !== '' && line !== 'connection');
    assert.deepEqual(received, [], 'she received nothing: not a login packet, not a password');
  } finally {
    fake.kill('SIGKILL');
  }
});

test('2b. a socket she made in her directory is never connected to', { skip }, async () => {
  const socket = path.join(attacker.home, 'mysqld.sock');
  const record = path.join(attacker.home, 'socket-record.txt');
  const fake = await startFakeServer('socket', socket, record);
  try {
    const setup = rootSetup({ user: 'snapshot', password: SECRET, socket }, { if_server_down: 'fail' });
    const result = await runHook(setup, 'pre-freeze-script', ['freeze']);
    assert.notEqual(result.code, 0, result.stderr);
    assert.match(result.stderr, new RegExp(`belongs to uid ${attacker.uid}`), result.stderr);
    assert.equal(fs.readFileSync(record, 'utf8'), '', 'not even a connection');
  } finally {
    fake.kill('SIGKILL');
  }
});

test('3. a password on a malformed line is never printed (stderr, log)', { skip }, async () => {
  for (const line of [`password: ${SECRET}`, `password ${SECRET}`, SECRET, `port = ${SECRET}`]) {
    const setup = rootSetup({ user: 'snapshot', socket: '/nonexistent/mysqld.sock' }, {}, `[client]\n${line}`);
    // [client] twice is allowed by the parser: its keys are checked as one section.
    const result = await runHook(setup, 'pre-freeze-script', ['freeze']);
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /hook\.cnf:\d+/, result.stderr);
    assert.equal(result.stderr.toLowerCase().includes(SECRET.toLowerCase()), false, `${line}: ${result.stderr}`);
    const status = await runHook(setup, 'vmware-mysql-snapshot', ['check']);
    assert.equal((status.stdout + status.stderr).toLowerCase().includes(SECRET.toLowerCase()), false, status.stdout);
  }
});

test('5 and 7. files under a directory she controls, or owned by her, are not written by root', { skip }, async () => {
  const rootOnly = tempDir('vms-rootonly-');
  fs.chmodSync(rootOnly, 0o700);
  attackerSh(`ln -s ${rootOnly} ${attacker.home}/out`);
  const herLog = path.join(attacker.home, 'her.log');
  attackerSh(`: > ${herLog}`);
  const setup = rootSetup({ user: 'snapshot', socket: '/nonexistent/mysqld.sock' }, { log_file: herLog, metrics_file: `${attacker.home}/out/metrics.prom`, history_file: `${attacker.home}/out/history.json` });
  const result = await runHook(setup, 'pre-freeze-script', ['freeze']);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stderr, /cannot open log file/, result.stderr);
  assert.equal(fs.statSync(herLog).size, 0, 'her log file got nothing');
  assert.deepEqual(fs.readdirSync(rootOnly), [], 'nothing written through her symlink');
  const doctor = await runHook(setup, 'vmware-mysql-snapshot', ['doctor']);
  assert.match(doctor.stdout, /FAIL\s+history_file .*owned by uid/, doctor.stdout);
  assert.match(doctor.stdout, /log_file|log file/, doctor.stdout);

  const coordinatesSetup = rootSetup({ user: 'snapshot', socket: '/nonexistent/mysqld.sock' }, { coordinates_file: `${attacker.home}/out/coordinates.json` });
  const coordinatesDoctor = await runHook(coordinatesSetup, 'vmware-mysql-snapshot', ['doctor']);
  assert.match(coordinatesDoctor.stdout, /FAIL\s+coordinates_file .*owned by uid/, coordinatesDoctor.stdout);
});

test('6. a FIFO at history_file hangs nothing, and SIGTERM still ends freeze', { skip, timeout: 60_000 }, async () => {
  const setup = rootSetup({ user: 'snapshot', socket: '/nonexistent/mysqld.sock' });
  execFileSync('mkfifo', [path.join(setup.dir, 'history.json')]);
  for (const command of [['pre-freeze-script', ['freeze']], ['vmware-mysql-snapshot', ['status']], ['vmware-mysql-snapshot', ['check']]] as const) {
    const result = await runHook(setup, command[0], [...command[1]], { timeoutMs: 15_000 });
    assert.notEqual(result.code, null, `${command.join(' ')} ended by itself`);
  }
  // Her FIFO in her directory: refused as well, and a SIGTERM at any moment ends freeze.
  attackerSh(`mkfifo ${attacker.home}/history.fifo`);
  const herSetup = rootSetup({ user: 'snapshot', socket: '/nonexistent/mysqld.sock' }, { history_file: `${attacker.home}/history.fifo` });
  for (const delayMs of [0, 50, 150]) {
    const hook = spawnCollected(herSetup, 'pre-freeze-script', ['freeze']);
    await sleep(delayMs);
    hook.child.kill('SIGTERM');
    const ended = await closedWithin(hook, 10_000);
    assert.ok(ended.code !== null || ended.signal !== null, 'freeze ended after SIGTERM');
  }
});

test('4. escape sequences in a statement reach no terminal, log, history or status', { skip, timeout: 120_000 }, async () => {
  let server: TestServer | undefined;
  let blocker: Connection | undefined;
  try {
    server = await startMariaDB();
    const setup = makeHookSetup(server, { snapshot: { freeze_timeout: '3', lock_wait_timeout: '1', long_query_time: '0.2' } });
    directories.push(setup.dir);
    blocker = await server.connect();
    // Never awaited: a destroyed connection leaves its query's promise pending.
    void blocker.query("SELECT SLEEP(20) AS `\u001b[2J`, '\u001b]0;pwned\u0007\u009b31m' AS x").catch(() => undefined);
    await sleep(500);
    const result = await runHook(setup, 'pre-freeze-script', ['freeze']);
    assert.notEqual(result.code, 0, result.stderr);
    assert.match(result.stderr, /\\x1b/, 'the blocker is named, its escapes visible');
    const status = await runHook(setup, 'vmware-mysql-snapshot', ['status']);
    const check = await runHook(setup, 'vmware-mysql-snapshot', ['check']);
    const history: unknown = JSON.parse(fs.readFileSync(path.join(setup.dir, 'history.json'), 'utf8'));
    const log = parseLogLines(fs.readFileSync(setup.logFile, 'utf8'));
    assert.ok(JSON.stringify(history).includes('\\\\x1b'), 'the history names the statement, escaped');
    for (const [where, value] of [['freeze', result.stdout + result.stderr], ['status', status.stdout + status.stderr], ['check', check.stdout + check.stderr], ['history', history], ['log', log]] as const) {
      for (const text of strings(value)) assert.equal(CONTROL.test(text), false, `${where}: ${JSON.stringify(text).slice(0, 300)}`);
    }
    await server.query(`KILL ${Number(blocker.threadId)}`).catch(() => undefined);
  } finally {
    blocker?.destroy();
    await server?.remove();
  }
});

/** Control characters other than the newline that ends a line of output. */
// eslint-disable-next-line no-control-regex -- finding control characters is the point
const CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/;

function strings(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  if (Array.isArray(value)) return value.flatMap(strings);
  if (typeof value === 'object' && value !== null) return Object.values(value).flatMap(strings);
  return [];
}
