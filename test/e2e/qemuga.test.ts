/**
 * The QEMU guest agent, for real: Debian's qemu-ga (7.2) drives the hook as install.sh --qemu lays it out
 * (the link in fsfreeze-hook.d, our dispatcher as qemu-ga's fsfreeze hook), against a MariaDB whose data
 * directory is on a loop-mounted ext4 of the test's own, with the test playing the host over qemu-ga's
 * QMP-style JSON protocol on a unix socket of its own (`qemu-ga -m unix-listen`).
 *
 * Safety on a shared machine: the test only ever sends `guest-fsfreeze-freeze-list` naming its own loop
 * mount (a bare guest-fsfreeze-freeze would freeze every filesystem, the root included), and whatever
 * happens it sends guest-fsfreeze-thaw, runs fsfreeze -u on its mount, and unmounts it. qemu-ga runs in
 * a mount namespace of its own without the other tests' loop mounts, because guest-fsfreeze-thaw thaws
 * every filesystem it sees (it once thawed another test's frozen mount here).
 *
 * install.sh runs with DESTDIR and --prefix P: the installed link points at P/sbin/vmware-mysql-snapshot,
 * which the test makes a symlink to the copy in DESTDIR, so that qemu-ga runs everything as installed.
 * The dispatcher logs to /var/log/qga-fsfreeze-hook.log, as QEMU's does; the test reads its own lines.
 *
 * qemu-ga 7.2 runs the hook with its stdout and stderr on /dev/null; newer ones (about 9.1 on) read them
 * through pipes until EOF before they wait for it (qga/commands-posix.c, ga_run_command). That is
 * emulated by a wrapper set as qemu-ga's hook: it starts the real hook in a session of its own with stdin
 * on /dev/null and stdout/stderr on pipes, reads both to EOF, then reaps it and exits with its status,
 * recording when each happened.
 */
import { after, before, test as nodeTest, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import type { Connection, RowDataPacket } from 'mysql2/promise';
import { CONFIG_ENV } from '../../src/config/settings';
import { findBinary } from '../../src/commands/throwaway';
import { HOLDER_MARKER, lineOf, makeHookSetup, ourHolders, quoteOptionValue, readLog, runHook, writeConfig, type HookSetup, type LogLine } from '../support/hook';
import { loopFilesystemSkipReason, mountLoopFilesystem, type LoopFilesystem } from '../support/loopfs';
import { startMariaDB, startMariaDBOnDatadir, TEST_USER, tryInsert, type TestServer } from '../support/mariadb';
import { sleep, waitFor } from '../support/wait';

const runFile = promisify(execFile);

/** This file compiles to build/test/e2e/qemuga.test.js. */
const REPO = path.resolve(__dirname, '..', '..', '..');
const STOCK_DISPATCHER = '/etc/qemu/fsfreeze-hook';
const DISPATCHER_LOG = '/var/log/qga-fsfreeze-hook.log';
const QEMU_GA = findBinary('qemu-ga');

function skipReason(): string | undefined {
  const loop = loopFilesystemSkipReason();
  if (loop !== undefined) return loop;
  if (QEMU_GA === undefined) return process.env['VMS_REQUIRE_LOOPFS'] === '1' ? undefined : 'qemu-ga is not installed (Debian: qemu-guest-agent)';
  return undefined;
}
const unavailable = skipReason();
const test = (name: string, body: (context: TestContext) => Promise<void>): void =>
  void (unavailable === undefined ? nodeTest(name, { timeout: 180_000 }, body) : nodeTest(name, { skip: unavailable }));

let filesystem: LoopFilesystem;
let server: TestServer;
let setup: HookSetup;
let work: string;
let destdir: string;
/** the installed dispatcher and hook link, on disk */
let dispatcher: string;
let hookLink: string;
const extraMounts: string[] = [];
const restored: TestServer[] = [];

before(async () => {
  if (unavailable !== undefined) return;
  assert.ok(QEMU_GA !== undefined, 'qemu-ga is installed (CI: .ci/run installs qemu-guest-agent)');
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'vms-qemuga-'));
  destdir = path.join(work, 'root');
  const prefix = path.join(work, 'prefix');
  const installed = await runFile(path.join(REPO, 'install.sh'), ['--qemu', '--prefix', prefix], { env: { PATH: process.env['PATH'], DESTDIR: destdir } });
  assert.match(installed.stdout, /configured +\S+\/etc\/qemu\/qemu-ga\.conf/);
  fs.mkdirSync(path.join(prefix, 'sbin'), { recursive: true });
  fs.symlinkSync(path.join(destdir, prefix, 'sbin', 'vmware-mysql-snapshot'), path.join(prefix, 'sbin', 'vmware-mysql-snapshot'));
  dispatcher = path.join(destdir, 'etc/qemu/vmware-mysql-snapshot-fsfreeze-hook');
  hookLink = path.join(destdir, 'etc/qemu/fsfreeze-hook.d/mysql');
  assert.equal(fs.readlinkSync(hookLink), path.join(prefix, 'sbin', 'vmware-mysql-snapshot'));
  assert.equal(fs.realpathSync(hookLink), fs.realpathSync(path.join(destdir, prefix, 'sbin', 'vmware-mysql-snapshot')));

  filesystem = await mountLoopFilesystem();
  server = await startMariaDB({ datadir: path.join(filesystem.mountPoint, 'data'), logBin: true, serverId: 1 });
  await server.query('CREATE TABLE app.events (id BIGINT PRIMARY KEY, writer INT NOT NULL, seq INT NOT NULL) ENGINE=InnoDB');
  await server.query('CREATE TABLE app.counter (id INT PRIMARY KEY, n BIGINT NOT NULL) ENGINE=InnoDB');
  await server.query('INSERT INTO app.counter VALUES (1, 0)');
  setup = makeHookSetup(server, { snapshot: { lock_wait_timeout: '2', freeze_timeout: '30', max_lock_time: '60' } });
});

after(async () => {
  if (unavailable !== undefined) return;
  await thawEverything();
  if (setup !== undefined) await runHook(setup, 'post-thaw-script', ['freezeFail']).catch(() => undefined);
  for (const copy of restored) await copy.remove().catch(() => undefined);
  for (const mountPoint of extraMounts) await runFile('umount', [mountPoint]).catch(() => undefined);
  await server?.remove();
  await filesystem?.remove();
  if (setup !== undefined) fs.rmSync(setup.dir, { recursive: true, force: true });
  if (work !== undefined) fs.rmSync(work, { recursive: true, force: true });
});

/** The backstop: our mount thawed whatever qemu-ga did or did not do. */
async function thawEverything(): Promise<void> {
  if (filesystem === undefined) return;
  await runFile(findBinary('fsfreeze') ?? 'fsfreeze', ['-u', filesystem.mountPoint]).catch(() => undefined);
}

// ----------------------------------------------------------------------------------- qemu-ga and QMP

interface QmpReply {
  return?: unknown;
  error?: { class: string; desc: string };
}

/** One qemu-ga of the test's own: its socket, pidfile, state directory, log and (empty) configuration. */
class QemuGa {
  private readonly socketPath: string;
  private readonly process: ChildProcess;
  private socket: net.Socket | undefined;
  private buffer = '';
  private readonly waiting: Array<(reply: QmpReply) => void> = [];
  readonly logFile: string;
  private stderr = '';

  constructor(readonly dir: string, hook: string) {
    fs.mkdirSync(path.join(dir, 'state'), { recursive: true });
    this.socketPath = path.join(dir, 'qga.sock');
    this.logFile = path.join(dir, 'qemu-ga.log');
    // QGA_CONF: not the machine's /etc/qemu/qemu-ga.conf. The hook's environment is qemu-ga's: CONFIG_ENV
    // names the test's configuration, TZ marks the holders as ours (support/hook.ts).
    const conf = path.join(dir, 'qemu-ga.conf');
    fs.writeFileSync(conf, '');
    const env = { PATH: process.env['PATH'], QGA_CONF: conf, [CONFIG_ENV]: setup.configFile, TZ: HOLDER_MARKER };
    const args = ['-m', 'unix-listen', '-p', this.socketPath, `-F${hook}`, '-f', path.join(dir, 'qemu-ga.pid'), '-t', path.join(dir, 'state'), '-l', this.logFile, '-v'];
    // guest-fsfreeze-thaw thaws every filesystem qemu-ga sees: in a mount namespace of its own, where
    // the loop mounts of other tests on this machine are unmounted (lazily, there only), it cannot thaw
    // one that another test froze. Its view of the root and of our own mount is the machine's.
    const hideOtherLoopMounts = `awk -v ours="$0" '$1 ~ /^\\/dev\\/loop/ && $2 != ours { print $2 }' /proc/self/mounts | while read -r mount; do umount -l "$mount"; done; exec "$@"`;
    this.process = spawn('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', hideOtherLoopMounts, filesystem.mountPoint, QEMU_GA ?? 'qemu-ga', ...args], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    this.process.stderr?.setEncoding('utf8').on('data', (chunk: string) => (this.stderr += chunk));
  }

  static async start(dir: string, hook: string): Promise<QemuGa> {
    const agent = new QemuGa(dir, hook);
    try {
      await agent.connect();
    } catch (error) {
      await agent.stop();
      throw error;
    }
    return agent;
  }

  private async connect(): Promise<void> {
    const socket = await waitFor('qemu-ga to listen on its socket', () =>
      new Promise<net.Socket | undefined>((resolve) => {
        if (this.process.exitCode !== null) {
          resolve(undefined);
          return;
        }
        const attempt = net.createConnection(this.socketPath);
        attempt.once('connect', () => resolve(attempt));
        attempt.once('error', () => resolve(undefined));
      }), { timeoutMs: 10_000, describe: () => `exit ${this.process.exitCode}, stderr: ${this.stderr}` });
    this.socket = socket;
    socket.setEncoding('latin1').on('data', (chunk: string) => this.receive(chunk));
    // 0xFF resets qemu-ga's parser (7.2 answers it with a parse error); guest-sync-delimited answers
    // after a 0xFF of its own, and the client drops every reply before the one that echoes its id
    // (qga/qapi-schema.json).
    const id = Math.floor(Math.random() * 1e9);
    socket.write(Buffer.from([0xff]));
    const replies: QmpReply[] = [];
    const synced = new Promise<void>((resolve) => {
      const next = (reply: QmpReply): void => {
        replies.push(reply);
        if (reply.return === id) resolve();
        else this.waiting.unshift(next);
      };
      this.waiting.push(next);
    });
    socket.write(`${JSON.stringify({ execute: 'guest-sync-delimited', arguments: { id } })}\n`);
    await Promise.race([synced, sleep(5000).then(() => assert.fail(`no reply echoes the id ${id}: ${JSON.stringify(replies)}`))]);
  }

  private receive(chunk: string): void {
    this.buffer += chunk.replace(/\xff/g, '');
    for (let end = this.buffer.indexOf('\n'); end >= 0; end = this.buffer.indexOf('\n')) {
      const line = this.buffer.slice(0, end).trim();
      this.buffer = this.buffer.slice(end + 1);
      if (line === '') continue;
      this.waiting.shift()?.(JSON.parse(line) as QmpReply);
    }
  }

  /** One command and its reply (qemu-ga answers in order, one at a time); rejects once qemu-ga is stopped. */
  execute(command: string, args?: Record<string, unknown>): Promise<QmpReply> {
    const socket = this.socket;
    if (socket === undefined || socket.destroyed) return Promise.reject(new Error(`${command}: qemu-ga is not connected`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${command}: no reply from qemu-ga within 120 s\n${this.log()}`)), 120_000);
      this.waiting.push((reply) => {
        clearTimeout(timer);
        resolve(reply);
      });
      socket.write(`${JSON.stringify(args === undefined ? { execute: command } : { execute: command, arguments: args })}\n`);
    });
  }

  /** Freezes the test's loop mount only: never guest-fsfreeze-freeze, which freezes every filesystem. */
  freezeOurMount(): Promise<QmpReply> {
    return this.execute('guest-fsfreeze-freeze-list', { mountpoints: [filesystem.mountPoint] });
  }

  log(): string {
    try {
      return fs.readFileSync(this.logFile, 'utf8');
    } catch {
      return '';
    }
  }

  async stop(): Promise<void> {
    this.socket?.destroy();
    if (this.process.exitCode === null && this.process.signalCode === null) {
      const exited = new Promise((resolve) => this.process.once('exit', resolve));
      this.process.kill('SIGTERM');
      // qemu-ga 7.2 was seen here to log "received signal num 15, quitting" and then hang on a futex for
      // good (once, in a full run): it is killed after 5 s. Nothing is frozen by then (thawed above).
      if ((await Promise.race([exited.then(() => true), sleep(5000).then(() => false)])) === false) {
        this.process.kill('SIGKILL');
        await exited;
      }
    }
  }
}

/** A qemu-ga for one test; at the test's end: thawed (guest-fsfreeze-thaw and fsfreeze -u) and stopped. */
async function agentFor(context: TestContext, hook: string): Promise<QemuGa> {
  const agent = await QemuGa.start(fs.mkdtempSync(path.join(work, 'qga-')), hook);
  context.after(async () => {
    await agent.execute('guest-fsfreeze-thaw').catch(() => undefined);
    await thawEverything();
    await agent.stop();
  });
  return agent;
}

/** The dispatcher's log lines about the scripts in this test's DESTDIR, since `offset`. */
function dispatcherLines(offset: number): string[] {
  let text = '';
  try {
    text = fs.readFileSync(DISPATCHER_LOG, 'utf8').slice(offset);
  } catch {
    // not written yet
  }
  return text.split('\n').filter((line) => line.includes(destdir));
}

function dispatcherLogSize(): number {
  try {
    return fs.statSync(DISPATCHER_LOG).size;
  } catch {
    return 0;
  }
}

function setPassword(password: string): void {
  const text = fs.readFileSync(setup.configFile, 'utf8');
  writeConfig(setup, text.replace(/^password = .*$/m, `password = ${quoteOptionValue(password)}`));
}

function history(): { runs: Array<{ operation: string; result: string; message?: string; code?: string }> } {
  return JSON.parse(fs.readFileSync(path.join(setup.dir, 'history.json'), 'utf8')) as { runs: Array<{ operation: string; result: string; message?: string; code?: string }> };
}

/** A write into the data directory's filesystem goes through (it is not frozen). */
async function assertWritable(): Promise<void> {
  const probe = path.join(filesystem.mountPoint, 'writable-probe');
  const child = spawn('sh', ['-c', `echo x > ${probe} && sync ${probe}`]);
  const code = await Promise.race([new Promise((resolve) => child.once('exit', resolve)), sleep(5000).then(() => 'hung')]);
  if (code === 'hung') {
    await thawEverything();
    assert.fail('a write to the mount hung: it was frozen');
  }
  assert.equal(code, 0);
}

// ------------------------------------------------------------------------------------------- writers

/** Single-row transactions in a loop, each also counting itself in app.counter: one GTID each. */
class Writer {
  readonly acknowledged: number[] = [];
  readonly errors: string[] = [];
  private running = true;
  private readonly done: Promise<void>;

  constructor(
    readonly index: number,
    private readonly connection: Connection,
  ) {
    this.done = this.loop();
  }

  private async loop(): Promise<void> {
    for (let seq = 0; this.running; seq += 1) {
      try {
        await this.connection.query('BEGIN');
        await this.connection.query('INSERT INTO app.events VALUES (?, ?, ?)', [this.index * 1_000_000 + seq, this.index, seq]);
        await this.connection.query('UPDATE app.counter SET n = n + 1 WHERE id = 1');
        await this.connection.query('COMMIT');
        this.acknowledged.push(seq);
      } catch (error) {
        this.errors.push(`writer ${this.index} seq ${seq}: ${(error as Error).message}`);
        this.running = false;
      }
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.done;
    await this.connection.end().catch(() => undefined);
  }
}

function gtidSequence(gtid: string): number {
  const match = /^0-1-(\d+)$/.exec(gtid);
  assert.ok(match, `a GTID of domain 0, server 1: ${gtid}`);
  return Number(match[1]);
}

// --------------------------------------------------------------------------------------------- tests

test('a qemu-ga freeze/thaw under writes: the copy of the loop image taken while frozen, restored, holds exactly the transactions up to the recorded coordinates', async (context) => {
  setPassword(TEST_USER.password);
  const agent = await agentFor(context, dispatcher);
  const [baseline] = await server.query<RowDataPacket[]>('SELECT @@global.gtid_binlog_pos AS pos, (SELECT n FROM app.counter) AS n');
  const baseSequence = gtidSequence(String(baseline?.['pos']));
  const baseCount = Number(baseline?.['n']);
  const writers: Writer[] = [];
  for (let index = 0; index < 3; index += 1) writers.push(new Writer(index, await server.connect()));
  context.after(() => Promise.all(writers.map((writer) => writer.stop())));
  await waitFor('the writers to commit', () => (writers.every((writer) => writer.acknowledged.length > 50) ? true : undefined), { timeoutMs: 30_000 });
  const logOffset = dispatcherLogSize();

  const freezeStarted = Date.now();
  const frozen = await agent.freezeOurMount();
  const freezeMs = Date.now() - freezeStarted;
  assert.deepEqual(frozen, { return: 1 }, `qemu-ga froze exactly our mount; its log:\n${agent.log()}`);
  const image = path.join(work, 'snapshot.img');
  try {
    assert.deepEqual(await agent.execute('guest-fsfreeze-status'), { return: 'frozen' });
    // The host's snapshot: the loop image, copied while qemu-ga holds the filesystem frozen.
    await runFile('cp', ['--sparse=always', path.join(path.dirname(filesystem.mountPoint), 'image'), image]);
  } finally {
    const thawed = await agent.execute('guest-fsfreeze-thaw');
    assert.deepEqual(thawed, { return: 1 }, `qemu-ga thawed our mount; its log:\n${agent.log()}`);
  }
  context.diagnostic(`guest-fsfreeze-freeze-list took ${freezeMs} ms (the hook's freeze included)`);

  const acquired = lineOf(readLog(setup), 'lock.acquired', 'last');
  const coordinates = acquired['coordinates'] as { gtid: string; binlog: { file: string; position: number } };
  await waitFor('the thaw hook to have run', () => (readLog(setup).some((line: LogLine) => line['event'] === 'thaw.released' && line['time'] > acquired['time']) ? true : undefined), { timeoutMs: 10_000 });
  const released = lineOf(readLog(setup), 'thaw.released', 'last');
  assert.equal(released['operation'], 'thaw');
  assert.deepEqual(ourHolders(), [], 'no holder is left');
  assert.deepEqual(history().runs.slice(-2).map((run) => `${run.operation} ${run.result}`), ['freeze locked', 'thaw released']);
  // The dispatcher ran our hook for both, as QEMU's does, and logged it.
  const lines = dispatcherLines(logOffset);
  assert.ok(lines.some((line) => line.endsWith(`execute ${hookLink} freeze`)), lines.join('\n'));
  assert.ok(lines.some((line) => line.endsWith(`${hookLink} finished with status=0`)), lines.join('\n'));
  assert.ok(lines.some((line) => line.endsWith(`execute ${hookLink} thaw`)), lines.join('\n'));
  await Promise.all(writers.map((writer) => writer.stop()));
  assert.deepEqual(writers.flatMap((writer) => writer.errors), [], 'no write failed');

  // The host restores the snapshot: a second server on the copied image's data directory.
  const mountPoint = fs.mkdtempSync(path.join(work, 'restored-'));
  await runFile('mount', ['-o', 'loop', image, mountPoint]);
  extraMounts.push(mountPoint);
  const datadir = path.join(work, 'restored-data');
  await runFile('cp', ['-a', path.join(mountPoint, 'data'), datadir]);
  await runFile('umount', [mountPoint]);
  extraMounts.splice(extraMounts.indexOf(mountPoint), 1);
  const copy = await startMariaDBOnDatadir(datadir, { logBin: true, serverId: 2 });
  restored.push(copy);
  const [state] = await copy.query<RowDataPacket[]>('SELECT @@global.gtid_binlog_pos AS pos, (SELECT n FROM app.counter) AS n, (SELECT COUNT(*) FROM app.events) AS events');
  assert.equal(String(state?.['pos']), coordinates.gtid, 'the restored server is at the recorded GTID');
  // Every writer transaction is one GTID: the copy holds exactly those up to the coordinates.
  const expected = gtidSequence(coordinates.gtid) - baseSequence;
  assert.ok(expected > 0, 'the snapshot holds some of the writers\' transactions');
  assert.equal(Number(state?.['n']) - baseCount, expected, 'the counter counts exactly the transactions up to the coordinates');
  assert.equal(Number(state?.['events']), expected, 'as many rows as transactions up to the coordinates');
  const rows = await copy.query<RowDataPacket[]>('SELECT writer, COUNT(*) AS n, MAX(seq) AS last FROM app.events GROUP BY writer');
  for (const row of rows) assert.equal(Number(row['last']), Number(row['n']) - 1, `writer ${row['writer']}: a gapless prefix of its transactions`);
  const [origin] = await server.query<RowDataPacket[]>('SELECT COUNT(*) AS events FROM app.events');
  assert.ok(Number(origin?.['events']) > expected, 'the writers went on after the snapshot');
});

test('a failed freeze (wrong password) fails qemu-ga\'s freeze through our dispatcher; the thaw the host sends anyway exits 3, in the history, notify_command and check', async (context) => {
  const notified = path.join(setup.dir, 'notified.env');
  const config = fs.readFileSync(setup.configFile, 'utf8');
  writeConfig(setup, `${config.replace(/\n*$/, '\n')}notify_command = env | grep ^VMS_ | sort >> ${notified}\n`);
  context.after(() => {
    writeConfig(setup, config);
    setPassword(TEST_USER.password);
  });
  setPassword('not-the-password');
  const agent = await agentFor(context, dispatcher);
  const logOffset = dispatcherLogSize();

  const refused = await agent.freezeOurMount();
  assert.equal(refused.error?.desc, 'fsfreeze hook has failed with status 1', JSON.stringify(refused));
  assert.deepEqual(await agent.execute('guest-fsfreeze-status'), { return: 'thawed' }, 'qemu-ga froze nothing');
  await assertWritable();
  assert.equal(await tryInsert(server), 'ok', 'nothing is locked');
  const failed = history().runs.at(-1);
  assert.equal(`${failed?.operation} ${failed?.result} ${failed?.code}`, 'freeze failed ACCESS');

  // Proxmox sends the thaw whatever became of the freeze.
  fs.rmSync(notified, { force: true });
  assert.deepEqual(await agent.execute('guest-fsfreeze-thaw'), { return: 0 });
  const lines = dispatcherLines(logOffset);
  assert.ok(lines.some((line) => line.endsWith(`${hookLink} finished with status=1`)), `freeze: ${lines.join('\n')}`);
  assert.ok(lines.some((line) => line.endsWith(`${hookLink} finished with status=3`)), `thaw: ${lines.join('\n')}`);
  const inconsistent = lineOf(readLog(setup), 'thaw.inconsistent', 'last');
  assert.equal(inconsistent['failedFreezeCode'], 'ACCESS');
  assert.match(String(inconsistent['msg']), /^thaw: freeze failed at \S+ \(ACCESS: the server refused the login/);
  const thaw = history().runs.at(-1);
  assert.equal(`${thaw?.operation} ${thaw?.result}`, 'thaw inconsistent');
  assert.match(fs.readFileSync(notified, 'utf8'), /^VMS_RESULT=inconsistent$/m);
  const check = await runHook(setup, 'vmware-mysql-snapshot', ['check']);
  assert.equal(check.code, 2, check.stdout);
  assert.match(check.stdout, /CRITICAL - the last thaw reported an inconsistent snapshot at .*: freeze failed at /);
});

test('with QEMU\'s stock dispatcher a failed freeze is only logged and qemu-ga freezes anyway: the thaw still reports the snapshot as not consistent', async (context) => {
  context.after(() => setPassword(TEST_USER.password));
  // The stock dispatcher, beside the same fsfreeze-hook.d (it looks for it next to itself).
  const stock = path.join(destdir, 'etc/qemu/fsfreeze-hook');
  fs.copyFileSync(STOCK_DISPATCHER, stock);
  fs.chmodSync(stock, 0o755);
  context.after(() => fs.rmSync(stock, { force: true }));
  setPassword('not-the-password');
  const agent = await agentFor(context, stock);

  const frozen = await agent.freezeOurMount();
  try {
    assert.deepEqual(frozen, { return: 1 }, 'qemu-ga froze our mount although our freeze failed');
    assert.equal(history().runs.at(-1)?.result, 'failed');
  } finally {
    assert.deepEqual(await agent.execute('guest-fsfreeze-thaw'), { return: 1 });
  }
  const thaw = history().runs.at(-1);
  assert.equal(`${thaw?.operation} ${thaw?.result}`, 'thaw inconsistent', JSON.stringify(thaw));
  assert.match(thaw?.message ?? '', /^freeze failed at .*ACCESS/);
});

test('qemu-ga reading the hook\'s output through pipes until EOF (as 9.1 on do, emulated): freeze and thaw return as soon as the hook exits; the holder holds no pipe', async (context) => {
  setPassword(TEST_USER.password);
  // The emulation waits for EOF: a hook that leaves a child holding its stdout keeps it waiting.
  const leaky = path.join(fs.mkdtempSync(path.join(work, 'leaky-')), 'leaky');
  fs.writeFileSync(leaky, '#!/bin/sh\nsleep 2 &\nexit 0\n', { mode: 0o700 });
  const leakyWrapper = `${leaky}-wrapper`;
  fs.writeFileSync(leakyWrapper, pipeReadingWrapper(leaky), { mode: 0o700 });
  await runFile(leakyWrapper, ['freeze']);
  const leaked = JSON.parse(fs.readFileSync(`${leakyWrapper}.freeze.json`, 'utf8')) as { exitedAt: number; eofAt: number };
  assert.ok(leaked.eofAt - leaked.exitedAt >= 1500, `a leaked pipe delays EOF: ${JSON.stringify(leaked)}`);
  // Both what install.sh sets (our dispatcher) and our hook itself as the one qemu-ga runs.
  for (const target of [dispatcher, hookLink]) {
    const wrapper = path.join(fs.mkdtempSync(path.join(work, 'pipes-')), 'hook');
    fs.writeFileSync(wrapper, pipeReadingWrapper(target), { mode: 0o700 });
    const agent = await agentFor(context, wrapper);
    const frozen = await agent.freezeOurMount();
    try {
      assert.deepEqual(frozen, { return: 1 }, `${target}: ${JSON.stringify(frozen)}\n${agent.log()}`);
    } finally {
      assert.deepEqual(await agent.execute('guest-fsfreeze-thaw'), { return: 1 });
    }
    for (const operation of ['freeze', 'thaw']) {
      const record = JSON.parse(fs.readFileSync(`${wrapper}.${operation}.json`, 'utf8')) as { status: number; exitedAt: number; eofAt: number };
      assert.equal(record.status, 0, `${target} ${operation}: ${JSON.stringify(record)}`);
      // EOF comes with the hook's exit when nothing it left behind holds the pipes.
      assert.ok(record.eofAt - record.exitedAt < 1000, `${target} ${operation}: the pipes reached EOF ${record.eofAt - record.exitedAt} ms after the hook exited`);
      context.diagnostic(`${path.basename(target)} ${operation}: EOF ${record.eofAt - record.exitedAt} ms after the exit`);
    }
    assert.equal(history().runs.at(-1)?.result, 'released');
    await agent.stop();
  }
  assert.deepEqual(ourHolders(), []);
});

/**
 * The hook as qemu-ga 9.1 and later run it (ga_run_command): a new session, stdin on /dev/null, stdout
 * and stderr on pipes read to EOF, then the child reaped. Records when the child exited and when both
 * pipes reached EOF in HOOK.OPERATION.json, and exits with the child's status.
 */
function pipeReadingWrapper(target: string): string {
  return `#!${process.execPath}
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const operation = process.argv[2];
const child = spawn(${JSON.stringify(target)}, [operation], { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
let exitedAt = 0, status = null, open = 2, eofAt = 0, output = '';
for (const stream of [child.stdout, child.stderr]) {
  stream.setEncoding('utf8').on('data', (chunk) => (output += chunk));
  stream.on('end', () => { if (--open === 0) eofAt = Date.now(); });
}
child.on('exit', (code, signal) => { exitedAt = Date.now(); status = signal ?? code; });
child.on('close', () => {
  fs.writeFileSync(__filename + '.' + operation + '.json', JSON.stringify({ status, exitedAt, eofAt, output }));
  process.exit(typeof status === 'number' ? status : 1);
});
`;
}

test('doctor says whether the running qemu-ga runs our hook, and whether a failed freeze would stop the snapshot or only be logged', async (context) => {
  // doctor as installed: our hook is the executable that the links in fsfreeze-hook.d resolve to.
  const installed = fs.realpathSync(hookLink);
  const doctor = async (): Promise<{ verdict: string; detail: string }> => {
    const { stdout } = await runFile(installed, ['doctor', '--json'], { env: { PATH: process.env['PATH'], [CONFIG_ENV]: setup.configFile } }).catch((error: { stdout: string }) => error);
    const check = (JSON.parse(stdout) as Array<{ name: string; verdict: string; detail: string }>).find((entry) => entry.name === 'qemu-ga');
    assert.ok(check, stdout);
    return check;
  };
  const ours = await agentFor(context, dispatcher);
  const withOurs = await doctor();
  assert.match(withOurs.detail, new RegExp(`^qemu-ga \\(pid \\d+\\) runs our hook through ${dispatcher}: a freeze of ours that fails fails qemu-ga's freeze`), withOurs.detail);
  await ours.stop();

  const stock = path.join(destdir, 'etc/qemu/fsfreeze-hook');
  fs.copyFileSync(STOCK_DISPATCHER, stock);
  fs.chmodSync(stock, 0o755);
  context.after(() => fs.rmSync(stock, { force: true }));
  await agentFor(context, stock);
  const withStock = await doctor();
  assert.equal(withStock.verdict, 'warn');
  assert.match(withStock.detail, new RegExp(`^qemu-ga \\(pid \\d+\\) runs our hook through ${stock}, which always exits 0 \\(QEMU's dispatcher\\): a freeze of ours that fails is only logged`), withStock.detail);
});
