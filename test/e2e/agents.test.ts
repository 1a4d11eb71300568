/**
 * The other agents, end to end: install.sh --gcp --azure --nutanix --veeam --aws into a DESTDIR, then the
 * INSTALLED entry points called as each agent's code calls them, against a throwaway MariaDB.
 *
 * None of these agents can run here (they need their cloud or hypervisor), so each is EMULATED from its
 * source's contract (the team's docs/hook-contract.md, "Other agents"):
 * - Google (google_guest_agent snapshot listener): executes /etc/google/snapshots/pre.sh and post.sh
 *   directly with one argument, the disk list; the agent's environment and working directory; stdin
 *   /dev/null, stdout /dev/null, stderr a pipe read to EOF (Go's cmd.Run); on timeout_in_seconds the
 *   script is SIGKILLed (the script only, not its group).
 * - Azure (VMSnapshotLinux ScriptRunner): refuses scripts not root-owned with no group/other bits and a
 *   plugin JSON not root 600; runs `sh SCRIPT PARAMS`; stdout/stderr are pipes it never reads; it polls
 *   the direct child only and never kills it; post runs even after a failed pre.
 * - Nutanix Guest Tools: root-owned 700 scripts without CR characters, run directly, no arguments
 *   (unconfirmed), output read; SIGKILL on its (unconfirmed) timeout.
 * - Veeam: uploads the selected .sh to /tmp under a name of its own and runs it over SSH as the job's
 *   user (root with "elevate"): a bare session environment, working directory /tmp, output read.
 * - AWS (SSM agent, aws:runShellScript): the document's script through `sh -c`, as the leader of its own
 *   process group, output read to EOF; on ExecutionTimeout the whole group gets SIGKILL (exit 137).
 * The emulation is faithful to the contract, not to the agents' code, which is not run.
 *
 * The wrappers exec PREFIX/libexec/vmware-mysql-snapshot/AGENT-hook, a path on the target system. So that
 * they run here unchanged, PREFIX is a fresh directory name under /tmp which, after the install, is made
 * a symlink to DESTDIR + PREFIX. The configuration comes from VMWARE_MYSQL_SNAPSHOT_CONFIG in the agent's
 * environment (the only change to what the agents pass), and TZ marks the holders this file starts.
 */
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type StdioOptions } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CONFIG_ENV } from '../../src/config/settings';
import { HOLDER_MARKER, makeHookSetup, ourHolders, readLog, writeConfig, type HookSetup, type HookSetupOptions } from '../support/hook';
import { startMariaDB, tryInsert, type TestServer } from '../support/mariadb';
import { sleep, waitFor } from '../support/wait';

const REPO = path.resolve(__dirname, '..', '..', '..');
const INSTALL_SH = path.join(REPO, 'install.sh');
const NOBODY = 65534;

let server: TestServer;
let destdir: string;
let prefix: string;
const temporary: string[] = [];

before(async () => {
  server = await startMariaDB();
  await server.query('INSERT INTO app.t (v, note) VALUES (1, ?), (2, ?), (3, ?)', ['seed', 'seed', 'seed']);
  destdir = fs.mkdtempSync(path.join(os.tmpdir(), 'vms-agents-destdir-'));
  prefix = fs.mkdtempSync(path.join(os.tmpdir(), 'vms-agents-prefix-'));
  temporary.push(destdir, prefix);
  const result = install(destdir, ['--prefix', prefix, '--gcp', '--azure', '--nutanix', '--veeam', '--aws']);
  assert.equal(result.code, 0, result.stderr);
  fs.rmdirSync(prefix);
  fs.symlinkSync(destdir + prefix, prefix);
});

after(async () => {
  for (const pid of ourHolders()) killQuietly(pid, 'SIGKILL');
  await server?.remove();
  for (const dir of temporary) fs.rmSync(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------------
// helpers

interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
  killed: boolean;
}

function install(root: string, args: string[]): { code: number | null; stdout: string; stderr: string } {
  const result = spawnSync(INSTALL_SH, args, { env: { PATH: process.env.PATH, DESTDIR: root }, encoding: 'utf8', timeout: 60_000 });
  if (result.error) throw result.error;
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

function killQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // gone already
  }
}

function onDisk(target: string): string {
  return destdir + target;
}

/** The environment of an agent: what it would pass, plus where the configuration is, and our marker. */
function agentEnvironment(setup: HookSetup, base: NodeJS.ProcessEnv = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' }): NodeJS.ProcessEnv {
  return { ...base, [CONFIG_ENV]: setup.configFile, TZ: HOLDER_MARKER };
}

interface AgentRun {
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  cwd: string;
  stdio: StdioOptions;
  /** which pipes the agent reads to EOF before it counts the script finished */
  reads: { stdout: boolean; stderr: boolean };
  timeoutMs: number;
  /** how the agent ends a script past its time: SIGKILL of the child, of its process group, or nothing */
  kill: 'child' | 'group' | 'none';
  /** a process group of its own (the SSM agent) */
  detached?: boolean;
  uid?: number;
}

/** Runs a script as the agent does and reports as the agent would see it. */
function runAsAgent(run: AgentRun): Promise<Result> {
  const started = Date.now();
  const child = spawn(run.command, run.args, { env: run.env, cwd: run.cwd, stdio: run.stdio, detached: run.detached ?? false, ...(run.uid === undefined ? {} : { uid: run.uid, gid: run.uid }) });
  let stdout = '';
  let stderr = '';
  let killed = false;
  if (run.reads.stdout) child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  if (run.reads.stderr) child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const pipesClosed = Promise.all(
    (['stdout', 'stderr'] as const).filter((name) => run.reads[name] && child[name] !== null).map((name) => new Promise<void>((resolve) => child[name]?.once('close', () => resolve()))),
  );
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    const timer =
      run.kill === 'none'
        ? undefined
        : setTimeout(() => {
            killed = true;
            if (run.kill === 'group' && child.pid !== undefined) killQuietly(-child.pid, 'SIGKILL');
            else child.kill('SIGKILL');
          }, run.timeoutMs);
    void Promise.all([exited, pipesClosed]).then(([exit]) => {
      clearTimeout(timer);
      // Pipes an agent never reads stay open here; they are closed now that the process has exited.
      child.stdout?.destroy();
      child.stderr?.destroy();
      resolve({ ...exit, stdout, stderr, ms: Date.now() - started, killed });
    });
  });
}

/** Google's guest agent: the script itself, argv [script, disks], stdout /dev/null, stderr read, SIGKILL at the timeout. */
function google(setup: HookSetup, script: 'pre.sh' | 'post.sh', timeoutMs = 60_000): Promise<Result> {
  const file = onDisk(`/etc/google/snapshots/${script}`);
  assert.ok((fs.statSync(file).mode & 0o111) !== 0, `${file} is executable`);
  return runAsAgent({ command: file, args: ['1/2,3/4'], env: agentEnvironment(setup, { PATH: '/usr/bin:/bin', HOME: '/root' }), cwd: '/', stdio: ['ignore', 'ignore', 'pipe'], reads: { stdout: false, stderr: true }, timeoutMs, kill: 'child' });
}

/** Azure's ScriptRunner: checks the plugin JSON and the script's owner and mode, then `sh SCRIPT`; pipes never read; never killed. */
function azure(setup: HookSetup, which: 'pre' | 'post'): Promise<Result> {
  const configFile = onDisk('/etc/azure/VMSnapshotScriptPluginConfig.json');
  assertRootOnly(configFile, 0o600);
  const config = JSON.parse(fs.readFileSync(configFile, 'utf8')) as Record<string, unknown>;
  assert.equal(config['pluginName'], 'ScriptRunner');
  const script = onDisk(String(config[which === 'pre' ? 'preScriptLocation' : 'postScriptLocation']));
  assertRootOnly(script);
  const params = (config[which === 'pre' ? 'preScriptParams' : 'postScriptParams'] as string[] | undefined) ?? [];
  return runAsAgent({ command: 'sh', args: [script, ...params], env: agentEnvironment(setup), cwd: '/', stdio: ['ignore', 'pipe', 'pipe'], reads: { stdout: false, stderr: false }, timeoutMs: 0, kill: 'none' });
}

/** Nutanix Guest Tools: root 700 scripts without CR, run directly, output read, SIGKILL on its timeout. */
function nutanix(setup: HookSetup, script: 'pre_freeze' | 'post_thaw'): Promise<Result> {
  const file = onDisk(`/usr/local/sbin/${script}`);
  assertRootOnly(file, 0o700);
  assert.ok(!fs.readFileSync(file, 'latin1').includes('\r'), `${file} has no CR`);
  return runAsAgent({ command: file, args: [], env: agentEnvironment(setup), cwd: '/', stdio: ['ignore', 'pipe', 'pipe'], reads: { stdout: true, stderr: true }, timeoutMs: 60_000, kill: 'child' });
}

/** Veeam: the selected script uploaded to /tmp under its own name, run over SSH in /tmp (as root with "elevate"). */
function veeam(setup: HookSetup, script: 'pre-freeze.sh' | 'post-thaw.sh', uid?: number): Promise<Result> {
  const uploaded = path.join(os.tmpdir(), `veeam-${process.pid}-${Date.now()}-${script}`);
  fs.copyFileSync(onDisk(`${prefix}/share/vmware-mysql-snapshot/veeam/${script}`), uploaded);
  fs.chmodSync(uploaded, 0o755);
  temporary.push(uploaded);
  const session = { PATH: '/usr/bin:/bin', HOME: uid === undefined ? '/root' : '/nonexistent', SHELL: '/bin/sh', LANG: 'C' };
  return runAsAgent({ command: '/bin/sh', args: ['-c', uploaded], env: agentEnvironment(setup, session), cwd: os.tmpdir(), stdio: ['ignore', 'pipe', 'pipe'], reads: { stdout: true, stderr: true }, timeoutMs: 600_000, kill: 'child', ...(uid === undefined ? {} : { uid }) });
}

/** The shell script of the shipped SSM document, with {{ command }} replaced as SSM does. */
function ssmScript(command: string): string {
  const yaml = fs.readFileSync(onDisk(`${prefix}/share/vmware-mysql-snapshot/aws/ssm-document.yaml`), 'utf8');
  const start = yaml.indexOf('      runCommand:\n        - |\n');
  assert.ok(start >= 0, 'the document has a runCommand block');
  const body = yaml
    .slice(start + '      runCommand:\n        - |\n'.length)
    .split('\n')
    .filter((line) => line.startsWith('          ') || line === '')
    .map((line) => line.slice(10))
    .join('\n');
  return body.replaceAll('{{ command }}', command);
}

/** The SSM agent: `sh -c SCRIPT` as a process-group leader, output read to EOF, SIGKILL of the group at ExecutionTimeout. */
function ssm(setup: HookSetup, command: string, timeoutMs = 10_000, script = ssmScript(command)): Promise<Result> {
  const workdir = fs.mkdtempSync(path.join(os.tmpdir(), 'vms-ssm-'));
  temporary.push(workdir);
  return runAsAgent({ command: 'sh', args: ['-c', script], env: agentEnvironment(setup), cwd: workdir, stdio: ['ignore', 'pipe', 'pipe'], reads: { stdout: true, stderr: true }, timeoutMs, kill: 'group', detached: true });
}

function assertRootOnly(file: string, mode?: number): void {
  const stat = fs.statSync(file);
  assert.equal(stat.uid, 0, `${file} is owned by root`);
  assert.equal(stat.mode & 0o077, 0, `${file} has no group or other bits`);
  if (mode !== undefined) assert.equal(stat.mode & 0o777, mode, `${file} mode`);
}

function newSetup(context: TestContext, snapshot: HookSetupOptions['snapshot'] = {}): HookSetup {
  const setup = makeHookSetup(server, { snapshot: { lock_wait_timeout: '2', long_query_time: '1', ...snapshot } });
  // No freeze_timeout unless the test sets one: the agent's default applies.
  if (snapshot['freeze_timeout'] === undefined) writeConfig(setup, fs.readFileSync(setup.configFile, 'utf8').replace(/^freeze_timeout = .*\n/m, ''));
  context.after(async () => {
    for (const pid of ourHolders()) killQuietly(pid, 'SIGKILL');
    await sleep(100);
    fs.rmSync(setup.dir, { recursive: true, force: true });
  });
  return setup;
}

/** A statement that keeps freeze waiting for a quiet moment until it is killed. */
async function startBlocker(context: TestContext): Promise<() => Promise<void>> {
  const connection = await server.connect();
  const id = (connection as unknown as { threadId: number }).threadId;
  const running = connection.query('SELECT SLEEP(120)').catch(() => undefined);
  await sleep(1200);
  const stop = async (): Promise<void> => {
    await server.query(`KILL ${Number(id)}`).catch(() => undefined);
    await running;
    await connection.end().catch(() => undefined);
  };
  context.after(stop);
  return stop;
}

async function assertLockHeld(): Promise<void> {
  assert.equal(await tryInsert(server), 'ER_LOCK_WAIT_TIMEOUT', 'a write waits while the lock is held');
}

async function assertNothingHeld(): Promise<void> {
  assert.equal(await tryInsert(server), 'ok', 'a write goes through: nothing is held');
  assert.deepEqual(ourHolders(), [], 'no lock holder of ours is running');
}

function freezeStart(setup: HookSetup): Record<string, unknown> | undefined {
  return readLog(setup).find((line) => line['event'] === 'freeze.start');
}

// ---------------------------------------------------------------------------------------------------
// the layouts

test('each layout is installed where its agent looks, with the owner and mode it demands', () => {
  const wrapper = (file: string, agent: string, word: string): void => {
    const text = fs.readFileSync(onDisk(file), 'utf8');
    assert.match(text, /^#!\/bin\/sh\n/);
    assert.ok(text.includes(`exec ${prefix}/libexec/vmware-mysql-snapshot/${agent}-hook ${word} "$@"`), text);
  };
  for (const [file, agent, word] of [
    ['/etc/google/snapshots/pre.sh', 'gcp', 'freeze'],
    ['/etc/google/snapshots/post.sh', 'gcp', 'thaw'],
    ['/etc/azure/vmware-mysql-snapshot-pre.sh', 'azure', 'freeze'],
    ['/etc/azure/vmware-mysql-snapshot-post.sh', 'azure', 'thaw'],
    ['/usr/local/sbin/pre_freeze', 'nutanix', 'freeze'],
    ['/usr/local/sbin/post_thaw', 'nutanix', 'thaw'],
  ] as const) {
    wrapper(file, agent, word);
    assertRootOnly(onDisk(file), 0o700);
  }
  wrapper(`${prefix}/share/vmware-mysql-snapshot/veeam/pre-freeze.sh`, 'veeam', 'freeze');
  wrapper(`${prefix}/share/vmware-mysql-snapshot/veeam/post-thaw.sh`, 'veeam', 'thaw');
  for (const agent of ['gcp', 'azure', 'nutanix', 'veeam', 'aws']) {
    assert.equal(fs.readlinkSync(onDisk(`${prefix}/libexec/vmware-mysql-snapshot/${agent}-hook`)), `${prefix}/sbin/vmware-mysql-snapshot`);
  }
  const config = JSON.parse(fs.readFileSync(onDisk('/etc/azure/VMSnapshotScriptPluginConfig.json'), 'utf8')) as Record<string, unknown>;
  assert.equal(config['timeoutInSeconds'], 30, 'the template value; the Azure default freeze_timeout (20 s) + 4 s fits');
  assert.equal(config['preScriptLocation'], '/etc/azure/vmware-mysql-snapshot-pre.sh');
  assert.equal(config['fsFreezeEnabled'], true);
  assertRootOnly(onDisk('/etc/azure/VMSnapshotScriptPluginConfig.json'), 0o600);
  const document = fs.readFileSync(onDisk(`${prefix}/share/vmware-mysql-snapshot/aws/ssm-document.yaml`), 'utf8');
  assert.match(document, /^schemaVersion: '2.2'$/m);
  for (const command of ['pre-script', 'post-script', 'dry-run']) assert.match(document, new RegExp(`^      - ${command}$`, 'm'));
});

// ---------------------------------------------------------------------------------------------------
// Google

test('Google: pre.sh DISKS locks with the agent budget, post.sh DISKS releases', async (context) => {
  const setup = newSetup(context);
  const pre = await google(setup, 'pre.sh');
  assert.equal(pre.code, 0, pre.stderr);
  assert.equal(pre.killed, false);
  const start = freezeStart(setup);
  assert.equal(start?.['agent'], 'gcp');
  assert.equal(start?.['freezeTimeout'], 45);
  assert.equal(start?.['scriptArg'], '1/2,3/4');
  // Google freezes no filesystem: the lock lasts until post.sh.
  await sleep(300);
  await assertLockHeld();
  const post = await google(setup, 'post.sh');
  assert.equal(post.code, 0, post.stderr);
  await assertNothingHeld();
});

test('Google: a pre.sh the agent SIGKILLs while it waits leaves nothing held, and nothing is locked later', async (context) => {
  const setup = newSetup(context);
  const stopBlocker = await startBlocker(context);
  const pre = await google(setup, 'pre.sh', 3000);
  assert.equal(pre.killed, true);
  assert.equal(pre.signal, 'SIGKILL');
  await waitFor('the holder to notice its freeze died', () => (ourHolders().length === 0 ? true : undefined), { timeoutMs: 5000 });
  await stopBlocker();
  await sleep(1500);
  await assertNothingHeld();
  const post = await google(setup, 'post.sh');
  assert.notEqual(post.code, 194);
  await assertNothingHeld();
});

// ---------------------------------------------------------------------------------------------------
// Azure

test('Azure: sh pre-script locks, never read pipes do not stall it, sh post-script releases', async (context) => {
  const setup = newSetup(context);
  const pre = await azure(setup, 'pre');
  assert.equal(pre.code, 0);
  assert.equal(freezeStart(setup)?.['agent'], 'azure');
  assert.equal(freezeStart(setup)?.['freezeTimeout'], 20);
  await assertLockHeld();
  const post = await azure(setup, 'post');
  assert.equal(post.code, 0);
  await assertNothingHeld();
});

test('Azure: a blocked pre-script gives up within timeoutInSeconds, since Azure would never kill it', async (context) => {
  const setup = newSetup(context);
  await startBlocker(context);
  const limitMs = Number((JSON.parse(fs.readFileSync(onDisk('/etc/azure/VMSnapshotScriptPluginConfig.json'), 'utf8')) as { timeoutInSeconds: number }).timeoutInSeconds) * 1000;
  const pre = await azure(setup, 'pre');
  context.diagnostic(`blocked pre-script under Azure ended after ${pre.ms} ms (budget 20 s, timeoutInSeconds ${limitMs / 1000} s)`);
  assert.notEqual(pre.code, 0);
  assert.ok(pre.ms < limitMs, `pre ended after ${pre.ms} ms, before Azure's ${limitMs} ms`);
  assert.ok(pre.ms >= 19_000, `pre waited its budget (${pre.ms} ms)`);
  assert.deepEqual(ourHolders(), []);
});

// Azure runs post even when pre failed, after it has frozen the filesystems and taken the snapshot anyway.
test('Azure: post after a failed pre says the snapshot is not consistent (exit 3)', async (context) => {
  const setup = newSetup(context);
  fs.writeFileSync(setup.configFile, fs.readFileSync(setup.configFile, 'utf8').replace(/^password = .*$/m, 'password = wrong'));
  const pre = await azure(setup, 'pre');
  assert.notEqual(pre.code, 0);
  const post = await azure(setup, 'post');
  assert.equal(post.code, 3, post.stderr);
  // Azure does not read the scripts' output: the log says it.
  const inconsistent = readLog(setup).find((line) => line['event'] === 'thaw.inconsistent');
  assert.match(String(inconsistent?.['msg']), /freeze failed at .* and no freezeFail followed/);
});

// ---------------------------------------------------------------------------------------------------
// Nutanix and Veeam

test('Nutanix: pre_freeze locks, post_thaw releases', async (context) => {
  const setup = newSetup(context);
  const pre = await nutanix(setup, 'pre_freeze');
  assert.equal(pre.code, 0, pre.stderr);
  assert.equal(freezeStart(setup)?.['agent'], 'nutanix');
  await assertLockHeld();
  const post = await nutanix(setup, 'post_thaw');
  assert.equal(post.code, 0, post.stderr);
  await assertNothingHeld();
});

test('Veeam: the uploaded scripts, run from /tmp as root, lock and release', async (context) => {
  const setup = newSetup(context);
  const pre = await veeam(setup, 'pre-freeze.sh');
  assert.equal(pre.code, 0, pre.stderr);
  assert.equal(freezeStart(setup)?.['agent'], 'veeam');
  await assertLockHeld();
  const post = await veeam(setup, 'post-thaw.sh');
  assert.equal(post.code, 0, post.stderr);
  await assertNothingHeld();
});

test('Veeam: a job user without elevation gets a clear refusal and nothing is held', { skip: process.getuid?.() !== 0 ? 'needs root' : false }, async (context) => {
  const setup = newSetup(context);
  const pre = await veeam(setup, 'pre-freeze.sh', NOBODY);
  assert.notEqual(pre.code, 0);
  assert.doesNotMatch(pre.stderr, /^\s+at \S/m, 'no stack trace');
  assert.match(pre.stderr, /Permission denied|permission denied|root/);
  await assertNothingHeld();
});

// ---------------------------------------------------------------------------------------------------
// AWS

test('AWS: the SSM document runs freeze for pre-script and thaw for post-script', async (context) => {
  const setup = newSetup(context);
  const pre = await ssm(setup, 'pre-script');
  assert.equal(pre.code, 0, pre.stderr);
  assert.equal(freezeStart(setup)?.['agent'], 'aws');
  assert.equal(freezeStart(setup)?.['freezeTimeout'], 6);
  await assertLockHeld();
  const post = await ssm(setup, 'post-script');
  assert.equal(post.code, 0, post.stderr);
  await assertNothingHeld();
});

test('AWS: a blocked pre-script ends within the 10 s ExecutionTimeout with nothing held', async (context) => {
  const setup = newSetup(context);
  await startBlocker(context);
  const pre = await ssm(setup, 'pre-script');
  context.diagnostic(`blocked pre-script under AWS ended after ${pre.ms} ms (budget 6 s, agent limit 10 s)`);
  assert.equal(pre.killed, false, `pre ended by itself (${pre.ms} ms)`);
  assert.equal(pre.code, 1, pre.stderr);
  assert.ok(pre.ms < 10_000);
  assert.deepEqual(ourHolders(), []);
});

test('AWS: SIGKILL of the process group while freeze waits leaves nothing held, and nothing is locked later', async (context) => {
  // freeze_timeout configured above the agent's limit: the agent kills first.
  const setup = newSetup(context, { freeze_timeout: '30' });
  const stopBlocker = await startBlocker(context);
  const pre = await ssm(setup, 'pre-script', 3000);
  assert.equal(pre.killed, true);
  assert.equal(pre.signal, 'SIGKILL');
  await waitFor('the holder to notice its freeze died', () => (ourHolders().length === 0 ? true : undefined), { timeoutMs: 5000 });
  await stopBlocker();
  await sleep(1500);
  await assertNothingHeld();
});

test('AWS: SIGKILL of the process group while the holder\'s FLUSH waits behind an UPDATE: nothing held, nothing locked later', async (context) => {
  // The UPDATE is not "long" (long_query_time 10), so freeze tries at once and the FLUSH queues behind it.
  const setup = newSetup(context, { freeze_timeout: '30', lock_wait_timeout: '5', long_query_time: '10' });
  const writer = await server.connect();
  context.after(() => writer.end().catch(() => undefined));
  const update = writer.query('UPDATE app.t SET v = v + SLEEP(3) WHERE id <= 3');
  await sleep(200);
  const pre = await ssm(setup, 'pre-script', 1500);
  assert.equal(pre.killed, true, `pre exited ${pre.code} after ${pre.ms} ms: ${pre.stderr}`);
  assert.ok(!readLog(setup).some((line) => line['event'] === 'lock.acquired'), 'killed before the lock was taken');
  await update;
  await waitFor('the holder to notice its freeze died', () => (ourHolders().length === 0 ? true : undefined), { timeoutMs: 5000 });
  await sleep(500);
  await assertNothingHeld();
  const ours = (await server.query(`SELECT ID, INFO FROM information_schema.PROCESSLIST WHERE USER = 'snapshot'`)) as unknown[];
  assert.deepEqual(ours, [], 'no session of the hook is left on the server');
});

test('AWS: dry-run runs doctor and never exits 194; 194 from the hook becomes 1', async (context) => {
  const setup = newSetup(context);
  const dry = await ssm(setup, 'dry-run');
  assert.notEqual(dry.code, 194);
  assert.match(dry.stdout, /connection/);
  assert.deepEqual(ourHolders(), []);
  const stub = path.join(setup.dir, 'exit194');
  fs.writeFileSync(stub, '#!/bin/sh\nexit 194\n', { mode: 0o755 });
  const script = ssmScript('pre-script').replace(/^hook=.*$/m, `hook=${stub}`);
  const mapped = await ssm(setup, 'pre-script', 10_000, script);
  assert.equal(mapped.code, 1);
});

// ---------------------------------------------------------------------------------------------------
// install.sh for these layouts

test('install.sh: an Azure plugin configuration of someone else is kept without --force, moved aside with it, put back by --uninstall', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'vms-agents-azure-'));
  temporary.push(root);
  const foreign = '{"pluginName": "ScriptRunner", "preScriptLocation": "/opt/theirs/pre.sh"}\n';
  fs.mkdirSync(path.join(root, 'etc/azure'), { recursive: true });
  fs.writeFileSync(path.join(root, 'etc/azure/VMSnapshotScriptPluginConfig.json'), foreign, { mode: 0o600 });
  const refused = install(root, ['--azure']);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /VMSnapshotScriptPluginConfig.json exists and was not installed by vmware-mysql-snapshot/);
  assert.ok(!fs.existsSync(path.join(root, 'usr/local/sbin/vmware-mysql-snapshot')), 'nothing was changed');
  const forced = install(root, ['--azure', '--force']);
  assert.equal(forced.code, 0, forced.stderr);
  assert.equal(fs.readFileSync(path.join(root, 'etc/azure/VMSnapshotScriptPluginConfig.json.before-vmware-mysql-snapshot'), 'utf8'), foreign);
  assert.match(fs.readFileSync(path.join(root, 'etc/azure/VMSnapshotScriptPluginConfig.json'), 'utf8'), /vmware-mysql-snapshot-pre.sh/);
  const removed = install(root, ['--uninstall']);
  assert.equal(removed.code, 0, removed.stderr);
  assert.equal(fs.readFileSync(path.join(root, 'etc/azure/VMSnapshotScriptPluginConfig.json'), 'utf8'), foreign);
  assert.deepEqual(listTree(root), ['etc/', 'etc/azure/', 'etc/azure/VMSnapshotScriptPluginConfig.json', 'etc/vmware-mysql-snapshot.cnf']);
});

test('install.sh: timeoutInSeconds follows a configured freeze_timeout', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'vms-agents-timeout-'));
  temporary.push(root);
  fs.mkdirSync(path.join(root, 'etc'));
  fs.writeFileSync(path.join(root, 'etc/vmware-mysql-snapshot.cnf'), '[client]\nuser = x\n[snapshot]\nfreeze_timeout = 100\n', { mode: 0o600 });
  assert.equal(install(root, ['--azure']).code, 0);
  const config = JSON.parse(fs.readFileSync(path.join(root, 'etc/azure/VMSnapshotScriptPluginConfig.json'), 'utf8')) as { timeoutInSeconds: number };
  assert.equal(config.timeoutInSeconds, 105);
});

test('install.sh: every layout side by side, with --prefix; a second run changes nothing; --uninstall removes exactly what was installed', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'vms-agents-all-'));
  temporary.push(root);
  const before = listTree(root);
  const first = install(root, ['--prefix', '/opt/vms', '--vmware', '--qemu', '--gcp', '--azure', '--nutanix', '--veeam', '--aws']);
  assert.equal(first.code, 0, first.stderr);
  const tree = listTree(root);
  for (const file of [
    'usr/sbin/pre-freeze-script',
    'etc/qemu/fsfreeze-hook.d/mysql',
    'etc/google/snapshots/pre.sh',
    'etc/azure/VMSnapshotScriptPluginConfig.json',
    'usr/local/sbin/pre_freeze',
    'opt/vms/share/vmware-mysql-snapshot/veeam/post-thaw.sh',
    'opt/vms/share/vmware-mysql-snapshot/aws/ssm-document.yaml',
    'opt/vms/libexec/vmware-mysql-snapshot/aws-hook',
  ]) {
    assert.ok(tree.includes(file), `${file} installed`);
  }
  assert.match(fs.readFileSync(path.join(root, 'opt/vms/share/vmware-mysql-snapshot/aws/ssm-document.yaml'), 'utf8'), /hook=\/opt\/vms\/libexec\/vmware-mysql-snapshot\/aws-hook/);
  const second = install(root, ['--prefix', '/opt/vms', '--vmware', '--qemu', '--gcp', '--azure', '--nutanix', '--veeam', '--aws']);
  assert.equal(second.code, 0, second.stderr);
  assert.doesNotMatch(second.stdout, /^(installed|replaced|created|removed)/m, 'nothing changed');
  // A run with fewer layouts removes the others'.
  const fewer = install(root, ['--prefix', '/opt/vms', '--gcp']);
  assert.equal(fewer.code, 0, fewer.stderr);
  assert.ok(!fs.existsSync(path.join(root, 'etc/azure')), 'the Azure layout is gone');
  assert.ok(fs.existsSync(path.join(root, 'etc/google/snapshots/pre.sh')));
  assert.ok(!fs.existsSync(path.join(root, 'usr/sbin/pre-freeze-script')), 'no VMware link when only --gcp is named');
  const removed = install(root, ['--uninstall']);
  assert.equal(removed.code, 0, removed.stderr);
  assert.deepEqual(listTree(root), [...before, 'etc/', 'etc/vmware-mysql-snapshot.cnf']);
});

function listTree(root: string): string[] {
  const entries: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of fs.readdirSync(path.join(root, dir), { withFileTypes: true })) {
      const relative = path.join(dir, entry.name);
      if (entry.isDirectory() && !entry.isSymbolicLink()) {
        entries.push(`${relative}/`);
        walk(relative);
      } else {
        entries.push(relative);
      }
    }
  };
  walk('');
  return entries.sort();
}
