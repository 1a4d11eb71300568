/**
 * install.sh, end to end: the layout it makes in a DESTDIR, that a second run changes nothing, that it
 * refuses to replace someone else's hook, --uninstall and --purge, and that the INSTALLED executable
 * completes a freeze/thaw cycle under every installed name and in a bare environment (no Node anywhere).
 *
 * The installed symlinks point at /usr/local/sbin/vmware-mysql-snapshot on the target system, never into
 * DESTDIR, so they cannot be followed here. The agents call a hook by its full path (VMware Tools through
 * `bash -c '/usr/sbin/pre-freeze-script freeze'`, the fsfreeze-hook dispatcher as `"$file" freeze`), and
 * exec'ing a symlink runs its target with that path as argv[0]. The tests do the same by hand: they
 * read each installed link, check that it points at the installed executable, and run DESTDIR + target
 * with argv[0] set to the path the agent uses.
 */
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CONFIG_ENV, DEFAULTS, loadSettings } from '../../src/config/settings';
import { makeHookSetup, readLog, type HookSetup } from '../support/hook';
import { startMariaDB, type TestServer, tryInsert } from '../support/mariadb';
import { sleep } from '../support/wait';

/** This file compiles to build/test/e2e/install.test.js. */
const REPO = path.resolve(__dirname, '..', '..', '..');
const INSTALL_SH = path.join(REPO, 'install.sh');
const TEMPLATE = path.join(REPO, 'config', 'vmware-mysql-snapshot.cnf');
const LOGROTATE_SOURCE = path.join(REPO, 'logrotate', 'vmware-mysql-snapshot');
const VERSION = (JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string }).version;

const EXE = '/usr/local/sbin/vmware-mysql-snapshot';
const LEGACY_HOOKS = ['/usr/sbin/pre-freeze-script', '/usr/sbin/post-thaw-script', '/usr/sbin/pre-freeze-mysql-lock'];
const BACKUP_SCRIPTS_D_HOOK = '/etc/vmware-tools/backupScripts.d/50-mysql';
const QEMU_HOOK = '/etc/qemu/fsfreeze-hook.d/mysql';
const ALL_HOOKS = [...LEGACY_HOOKS, BACKUP_SCRIPTS_D_HOOK, QEMU_HOOK];
const CONFIG = '/etc/vmware-mysql-snapshot.cnf';
const LOGROTATE = '/etc/logrotate.d/vmware-mysql-snapshot';
const TMPFILES = '/usr/lib/tmpfiles.d/vmware-mysql-snapshot.conf';
const MANIFEST = '/var/lib/vmware-mysql-snapshot/install-manifest';
const BACKUP_SUFFIX = '.before-vmware-mysql-snapshot';

const IS_ROOT = process.getuid?.() === 0;
/** Installed files belong to root when install.sh runs as root; otherwise it leaves them to the caller. */
const OWNER = IS_ROOT ? { uid: 0, gid: 0 } : { uid: process.getuid?.() ?? -1, gid: process.getgid?.() ?? -1 };
const NOBODY = 65534;

const ACTION_LINE = /^(created|installed|replaced|kept|removed|moved aside|restored) +(\S+)/;

// ------------------------------------------------------------------------------------------- helpers

const temporaryDirectories: string[] = [];

function tempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  temporaryDirectories.push(dir);
  return dir;
}

after(() => {
  for (const dir of temporaryDirectories) fs.rmSync(dir, { recursive: true, force: true });
});

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs install.sh with DESTDIR and nothing else from our environment but PATH (no PREFIX). */
function runInstall(destdir: string | undefined, args: string[], wrapper: string[] = []): Result {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH };
  if (destdir !== undefined) env['DESTDIR'] = destdir;
  const [command, ...commandArgs] = [...wrapper, INSTALL_SH, ...args];
  const result = spawnSync(command ?? INSTALL_SH, commandArgs, { env, encoding: 'utf8', timeout: 60_000 });
  if (result.error) throw result.error;
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

function install(destdir: string, args: string[] = []): Result {
  const result = runInstall(destdir, args);
  assert.equal(result.code, 0, `install.sh ${args.join(' ')} failed:\n${result.stdout}\n${result.stderr}`);
  return result;
}

function onDisk(destdir: string, target: string): string {
  return path.join(destdir, target);
}

function exists(file: string): boolean {
  try {
    fs.lstatSync(file);
    return true;
  } catch {
    return false;
  }
}

function sha256(file: string): string {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

/** Every path below `root`: type, mode, owner, link target or content hash, and inode (a rewrite shows). */
function listing(root: string): string[] {
  const lines: string[] = [];
  const walk = (dir: string): void => {
    for (const name of fs.readdirSync(dir).sort()) {
      const file = path.join(dir, name);
      const status = fs.lstatSync(file);
      const relative = `/${path.relative(root, file)}`;
      const mode = (status.mode & 0o7777).toString(8);
      const owner = `${status.uid}:${status.gid}`;
      if (status.isSymbolicLink()) {
        lines.push(`${relative} link ${owner} -> ${fs.readlinkSync(file)} inode ${status.ino}`);
      } else if (status.isDirectory()) {
        lines.push(`${relative} dir ${mode} ${owner}`);
        walk(file);
      } else {
        lines.push(`${relative} file ${mode} ${owner} sha256 ${sha256(file)} inode ${status.ino}`);
      }
    }
  };
  walk(root);
  return lines;
}

function paths(root: string): string[] {
  return listing(root).map((line) => line.split(' ')[0] ?? '');
}

function readManifest(destdir: string): string[] {
  return fs.readFileSync(onDisk(destdir, MANIFEST), 'utf8').split('\n').filter((line) => line !== '');
}

function actionLines(output: string): Array<{ action: string; file: string }> {
  return output
    .split('\n')
    .map((line) => ACTION_LINE.exec(line))
    .filter((match): match is RegExpExecArray => match !== null)
    .map((match) => ({ action: match[1] ?? '', file: match[2] ?? '' }));
}

function assertMode(file: string, mode: number, kind: 'file' | 'directory' = 'file'): void {
  const status = fs.lstatSync(file);
  assert.ok(kind === 'file' ? status.isFile() : status.isDirectory(), `${file} is a ${kind}`);
  assert.equal((status.mode & 0o7777).toString(8), mode.toString(8), `mode of ${file}`);
  assert.deepEqual({ uid: status.uid, gid: status.gid }, OWNER, `owner of ${file}`);
}

function assertOurLink(destdir: string, target: string): void {
  const file = onDisk(destdir, target);
  assert.ok(fs.lstatSync(file).isSymbolicLink(), `${target} is a symlink`);
  assert.equal(fs.readlinkSync(file), EXE, `${target} points at the installed executable (without DESTDIR)`);
}

function assertAbsent(destdir: string, target: string): void {
  assert.ok(!exists(onDisk(destdir, target)), `${target} is not there`);
}

const FOREIGN_SCRIPT = '#!/bin/sh\n# another vendor\'s freeze hook\necho "freezing the other database"\nsync\nexit 0\n# line 6\n';

// ---------------------------------------------------------------------------------- layout and files

test('install.sh --help explains the options, and why the executable is root-owned with mode 700', () => {
  const result = runInstall(undefined, ['--help']);
  assert.equal(result.code, 0);
  for (const option of ['--prefix', '--binary', '--backup-scripts-d', '--qemu', '--force', '--uninstall', '--purge', 'DESTDIR']) {
    assert.ok(result.stdout.includes(option), `--help mentions ${option}`);
  }
  assert.match(result.stdout, /mode 700/);
  assert.match(result.stdout, /Azure, Commvault\/Nutanix/);
  const unknown = runInstall(undefined, ['--frobnicate']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown argument: --frobnicate/);
});

test('a default install: the executable, the legacy hook names, config, logrotate, tmpfiles and the manifest', () => {
  const destdir = tempDir('vms-install-');
  const result = install(destdir);

  assertMode(onDisk(destdir, EXE), 0o700);
  assert.equal(sha256(onDisk(destdir, EXE)), sha256(path.join(REPO, 'dist', 'vmware-mysql-snapshot')));
  for (const hook of LEGACY_HOOKS) assertOurLink(destdir, hook);
  assertAbsent(destdir, BACKUP_SCRIPTS_D_HOOK);
  assertAbsent(destdir, QEMU_HOOK);

  assertMode(onDisk(destdir, CONFIG), 0o600);
  assert.equal(fs.readFileSync(onDisk(destdir, CONFIG), 'utf8'), fs.readFileSync(TEMPLATE, 'utf8'));
  assertMode(onDisk(destdir, LOGROTATE), 0o644);
  assert.equal(fs.readFileSync(onDisk(destdir, LOGROTATE), 'utf8'), fs.readFileSync(LOGROTATE_SOURCE, 'utf8'));
  assertMode(onDisk(destdir, TMPFILES), 0o644);
  const tmpfilesLines = fs.readFileSync(onDisk(destdir, TMPFILES), 'utf8').split('\n').filter((line) => !line.startsWith('#') && line.trim() !== '');
  assert.deepEqual(tmpfilesLines, ['d /run/vmware-mysql-snapshot 0700 root root -']);

  // The manifest lists every path that was created (and only those), without DESTDIR, once each.
  const manifest = readManifest(destdir);
  assert.equal(new Set(manifest).size, manifest.length, 'no duplicate manifest lines');
  for (const entry of manifest) {
    assert.ok(entry.startsWith('/') && !entry.startsWith(destdir), `${entry} is a path on the target system`);
    assert.ok(exists(onDisk(destdir, entry)), `${entry} exists`);
  }
  const created = paths(destdir).filter((entry) => entry !== MANIFEST);
  assert.deepEqual([...manifest].sort(), created.sort(), 'the manifest lists exactly what was created');

  // One line per action, and the ones that matter are there.
  const actions = actionLines(result.stdout);
  assert.ok(actions.some(({ action, file }) => action === 'installed' && file === onDisk(destdir, EXE)));
  for (const hook of LEGACY_HOOKS) {
    assert.ok(actions.some(({ action, file }) => action === 'installed' && file === onDisk(destdir, hook)), `installed ${hook}`);
  }
  assert.ok(actions.some(({ action, file }) => action === 'installed' && file === onDisk(destdir, CONFIG)));
});

test('running install.sh a second time changes nothing', () => {
  const destdir = tempDir('vms-install-');
  install(destdir);
  const before = listing(destdir);
  const manifest = fs.readFileSync(onDisk(destdir, MANIFEST), 'utf8');

  for (const args of [[], ['--force']]) {
    const again = install(destdir, args);
    assert.deepEqual(listing(destdir), before, `install.sh ${args.join(' ')} again changed the files`);
    assert.equal(fs.readFileSync(onDisk(destdir, MANIFEST), 'utf8'), manifest);
    const actions = actionLines(again.stdout);
    assert.ok(actions.length >= 7, again.stdout);
    assert.deepEqual(actions.filter(({ action }) => action !== 'kept'), [], 'every line says kept');
    assert.ok(again.stdout.includes(`kept        ${onDisk(destdir, CONFIG)} (existing configuration, not overwritten)`));
  }
  assert.ok(!paths(destdir).some((entry) => entry.endsWith(BACKUP_SUFFIX)), 'no backups were made');
});

test('a foreign /usr/sbin/pre-freeze-script stops the install with nothing changed; --force moves it aside; --uninstall puts it back', () => {
  const destdir = tempDir('vms-install-');
  const foreign = onDisk(destdir, '/usr/sbin/pre-freeze-script');
  fs.mkdirSync(path.dirname(foreign), { recursive: true });
  fs.writeFileSync(foreign, FOREIGN_SCRIPT, { mode: 0o755 });
  fs.chmodSync(foreign, 0o755);
  const before = listing(destdir);

  const refused = runInstall(destdir, []);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, new RegExp(`-rwxr-xr-x .* ${foreign.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`), 'the ls -l line');
  for (const line of FOREIGN_SCRIPT.split('\n').slice(0, 5)) assert.ok(refused.stderr.includes(`| ${line}`), `shows "${line}"`);
  assert.ok(!refused.stderr.includes('# line 6'), 'only the first 5 lines');
  assert.match(refused.stderr, /--force/);
  assert.match(refused.stderr, /nothing was changed/);
  assert.deepEqual(listing(destdir), before, 'nothing was installed');

  const forced = install(destdir, ['--force']);
  assert.ok(forced.stdout.includes(`moved aside ${foreign} -> ${foreign}${BACKUP_SUFFIX}`), forced.stdout);
  assertOurLink(destdir, '/usr/sbin/pre-freeze-script');
  assert.equal(fs.readFileSync(`${foreign}${BACKUP_SUFFIX}`, 'utf8'), FOREIGN_SCRIPT, 'the foreign script is kept');

  const afterForce = listing(destdir);
  install(destdir, ['--force']);
  assert.deepEqual(listing(destdir), afterForce, 'a second --force changes nothing and makes no new backup');

  const removed = install(destdir, ['--uninstall']);
  assert.ok(removed.stdout.includes(`restored    ${foreign}`), removed.stdout);
  const status = fs.lstatSync(foreign);
  assert.ok(status.isFile());
  assert.equal(status.mode & 0o7777, 0o755);
  assert.equal(fs.readFileSync(foreign, 'utf8'), FOREIGN_SCRIPT);
  assertAbsent(destdir, `/usr/sbin/pre-freeze-script${BACKUP_SUFFIX}`);
  assertAbsent(destdir, '/usr/sbin/post-thaw-script');
  assertAbsent(destdir, EXE);
});

for (const [flags, present] of [
  [['--backup-scripts-d'], [BACKUP_SCRIPTS_D_HOOK]],
  [['--qemu'], [QEMU_HOOK]],
  [['--backup-scripts-d', '--qemu'], [BACKUP_SCRIPTS_D_HOOK, QEMU_HOOK]],
] as const) {
  test(`install.sh ${flags.join(' ')}: ${present.join(' and ')} instead of the legacy names`, () => {
    const destdir = tempDir('vms-install-');
    install(destdir, [...flags]);
    assertMode(onDisk(destdir, EXE), 0o700);
    for (const hook of ALL_HOOKS) {
      if ((present as readonly string[]).includes(hook)) assertOurLink(destdir, hook);
      else assertAbsent(destdir, hook);
    }
    const manifest = readManifest(destdir);
    for (const hook of present) assert.ok(manifest.includes(hook));
    assertMode(onDisk(destdir, path.dirname(present[0])), 0o755, 'directory');
    const before = listing(destdir);
    install(destdir, [...flags]);
    assert.deepEqual(listing(destdir), before, 'idempotent');
  });
}

test('switching to another layout removes the links of the previous one (VMware would run both)', () => {
  const destdir = tempDir('vms-install-');
  install(destdir);
  const switched = install(destdir, ['--backup-scripts-d']);
  for (const hook of LEGACY_HOOKS) {
    assertAbsent(destdir, hook);
    assert.ok(switched.stdout.includes(`removed     ${onDisk(destdir, hook)} (no longer installed)`), switched.stdout);
  }
  assertOurLink(destdir, BACKUP_SCRIPTS_D_HOOK);
  const manifest = readManifest(destdir);
  for (const hook of LEGACY_HOOKS) assert.ok(!manifest.includes(hook));
  assert.ok(manifest.includes(BACKUP_SCRIPTS_D_HOOK));
});

test('--uninstall removes exactly the paths in the manifest and keeps the config', () => {
  const destdir = tempDir('vms-install-');
  // Someone else's files in the same directories.
  const bystanders = ['/usr/sbin/other-tool', '/etc/logrotate.d/other'];
  for (const bystander of bystanders) {
    fs.mkdirSync(path.dirname(onDisk(destdir, bystander)), { recursive: true });
    fs.writeFileSync(onDisk(destdir, bystander), `${bystander}\n`);
  }
  const before = listing(destdir);
  install(destdir);
  const manifest = readManifest(destdir);
  for (const bystander of bystanders) assert.ok(!manifest.includes(bystander));
  fs.appendFileSync(onDisk(destdir, CONFIG), '[client]\nuser = admin-edited\n');
  const edited = sha256(onDisk(destdir, CONFIG));

  const result = install(destdir, ['--uninstall']);
  for (const entry of manifest) {
    if (entry === CONFIG) continue;
    assert.ok(!exists(onDisk(destdir, entry)), `${entry} was removed`);
  }
  assertAbsent(destdir, MANIFEST);
  assert.equal(sha256(onDisk(destdir, CONFIG)), edited, 'the config is kept as it was');
  assert.ok(result.stdout.includes(`kept        ${onDisk(destdir, CONFIG)} (--purge removes it)`), result.stdout);
  const configEntry = listing(destdir).filter((line) => line.startsWith(`${CONFIG} `));
  assert.deepEqual(listing(destdir), [...before, ...configEntry].sort(), 'only the config is left of the install');
  // Every removal was reported, and nothing outside the manifest was removed.
  const removed = actionLines(result.stdout).filter(({ action }) => action === 'removed').map(({ file }) => file.replace(/\/$/, ''));
  const expected = [...manifest.filter((entry) => entry !== CONFIG), MANIFEST].map((entry) => onDisk(destdir, entry)).filter((file) => !exists(file));
  assert.deepEqual([...removed].sort(), expected.sort());
});

test('--purge removes the config, the log files and the run directory as well', () => {
  const destdir = tempDir('vms-install-');
  fs.mkdirSync(onDisk(destdir, '/var/log'), { recursive: true });
  fs.writeFileSync(onDisk(destdir, '/var/log/syslog'), 'not ours\n');
  install(destdir);
  for (const log of ['vmware-mysql-snapshot.log', 'vmware-mysql-snapshot.log.1', 'vmware-mysql-snapshot.log.2.gz']) {
    fs.writeFileSync(onDisk(destdir, `/var/log/${log}`), '{}\n');
  }
  fs.mkdirSync(onDisk(destdir, '/run/vmware-mysql-snapshot'), { recursive: true, mode: 0o700 });
  fs.writeFileSync(onDisk(destdir, '/run/vmware-mysql-snapshot/last.json'), '{}\n');

  install(destdir, ['--uninstall', '--purge']);
  assert.deepEqual(paths(destdir), ['/run', '/var', '/var/log', '/var/log/syslog']);

  // --purge alone means --uninstall --purge.
  install(destdir);
  install(destdir, ['--purge']);
  assert.deepEqual(paths(destdir), ['/run', '/var', '/var/log', '/var/log/syslog']);
});

test('--uninstall without a manifest removes our links and files at the default places, and leaves a foreign link', () => {
  const destdir = tempDir('vms-install-');
  install(destdir);
  fs.rmSync(onDisk(destdir, MANIFEST));
  const lock = onDisk(destdir, '/usr/sbin/pre-freeze-mysql-lock');
  fs.rmSync(lock);
  fs.symlinkSync('/bin/true', lock);

  const result = install(destdir, ['--uninstall']);
  assert.match(result.stderr, /no manifest/);
  for (const target of [EXE, '/usr/sbin/pre-freeze-script', '/usr/sbin/post-thaw-script', LOGROTATE, TMPFILES]) {
    assertAbsent(destdir, target);
  }
  assert.equal(fs.readlinkSync(lock), '/bin/true', 'a link that is not ours stays');
  assert.ok(result.stdout.includes(`kept        ${lock} (now points at /bin/true`), result.stdout);
  assertMode(onDisk(destdir, CONFIG), 0o600);
});

test('as a user other than root: refused without DESTDIR; with DESTDIR, files are left to that user', (context) => {
  // As root, run install.sh as nobody; otherwise as ourselves.
  let wrapper: string[] = [];
  let uid = process.getuid?.() ?? -1;
  if (IS_ROOT) {
    wrapper = ['setpriv', `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups'];
    uid = NOBODY;
    const readable = spawnSync(wrapper[0] ?? '', [...wrapper.slice(1), 'test', '-r', INSTALL_SH, '-a', '-r', path.join(REPO, 'dist', 'vmware-mysql-snapshot')]);
    if (readable.error !== undefined || readable.status !== 0) {
      context.skip('setpriv is missing, or the repository is not readable for nobody');
      return;
    }
  }
  const refused = runInstall(undefined, [], wrapper);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /must run as root/);

  const destdir = tempDir('vms-install-');
  fs.chownSync(destdir, uid, IS_ROOT ? NOBODY : (process.getgid?.() ?? -1));
  const staged = runInstall(destdir, [], wrapper);
  assert.equal(staged.code, 0, staged.stderr);
  assert.match(staged.stderr, /not running as root/);
  const status = fs.statSync(onDisk(destdir, EXE));
  assert.equal(status.uid, uid);
  assert.equal(status.mode & 0o7777, 0o700);
});

test('logrotate -d accepts the installed logrotate file', (context) => {
  const logrotate = ['/usr/sbin/logrotate', '/usr/bin/logrotate', '/sbin/logrotate'].find((candidate) => fs.existsSync(candidate));
  if (logrotate === undefined) {
    context.skip('logrotate is not installed');
    return;
  }
  const destdir = tempDir('vms-install-');
  install(destdir);
  const state = path.join(tempDir('vms-logrotate-'), 'status');
  const result = spawnSync(logrotate, ['-d', '-s', state, onDisk(destdir, LOGROTATE)], { encoding: 'utf8' });
  const output = `${result.stdout}${result.stderr}`;
  assert.equal(result.status, 0, output);
  assert.doesNotMatch(output, /error/i);
  assert.match(output, /rotating pattern: \/var\/log\/vmware-mysql-snapshot\.log/);
});

// ------------------------------------------------------------------------------------ config template

/**
 * The keys config.ts knows in `section`, as it lists them when it meets an unknown one (its key list is
 * not exported): the template must show every one of them.
 */
function knownKeys(section: 'client' | 'snapshot'): string[] {
  const file = path.join(tempDir('vms-keys-'), 'probe.cnf');
  fs.writeFileSync(file, `[${section}]\nno_such_key_at_all = 1\n`, { mode: 0o600 });
  try {
    loadSettings(file, { needCredentials: false });
  } catch (error) {
    const match = /known options are ([a-z_, ]+)/.exec((error as Error).message);
    if (match?.[1] !== undefined) return match[1].split(', ');
    throw new Error(`cannot read the known [${section}] keys from: ${(error as Error).message}`);
  }
  throw new Error('an unknown key was accepted');
}

function snakeCase(name: string): string {
  return name.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`);
}

test('the config template has every key commented out with its default, and parses with loadSettings', () => {
  const destdir = tempDir('vms-install-');
  install(destdir);
  const installed = onDisk(destdir, CONFIG);

  // As installed: all defaults, no warnings (mode 600, and root-owned when installed as root).
  const settings = loadSettings(installed, { needCredentials: false }) as unknown as Record<string, unknown>;
  for (const [name, value] of Object.entries(DEFAULTS)) assert.deepEqual(settings[name], value, name);
  assert.deepEqual(settings['client'], { user: '' });
  assert.deepEqual(settings['warnings'], []);

  // Every key config.ts knows is there, commented out, after a line that explains it; and no other.
  const lines = fs.readFileSync(installed, 'utf8').split('\n');
  let section = '';
  const found: Record<string, string[]> = { client: [], snapshot: [] };
  lines.forEach((line, index) => {
    const header = /^\[(\w+)\]$/.exec(line);
    if (header) section = header[1] ?? '';
    const key = /^#([a-z_]+) =/.exec(line);
    if (key === null) return;
    found[section]?.push(key[1] ?? '');
    assert.match(lines[index - 1] ?? '', /^# \S/, `${key[1]} has a line that explains it`);
  });
  assert.deepEqual([...(found['client'] ?? [])].sort(), knownKeys('client').sort(), '[client] keys');
  assert.deepEqual([...(found['snapshot'] ?? [])].sort(), knownKeys('snapshot').sort(), '[snapshot] keys');
  assert.ok(lines.includes('#defaults_file = /etc/mysql/debian.cnf'));

  // Uncommented (all but defaults_file, which names a file that may not exist here), the examples parse
  // as written and every key with a default shows that default.
  const uncommented = lines.map((line) => (/^#(?!defaults_file)[a-z_]+ =/.test(line) ? line.slice(1) : line)).join('\n');
  for (const name of Object.keys(DEFAULTS)) {
    assert.match(uncommented, new RegExp(`^${snakeCase(name)} = `, 'm'), `${snakeCase(name)} is in the template`);
  }
  const file = path.join(tempDir('vms-template-'), 'uncommented.cnf');
  fs.writeFileSync(file, uncommented, { mode: 0o600 });
  const full = loadSettings(file, { needCredentials: true }) as unknown as Record<string, unknown>;
  assert.deepEqual(full['client'], {
    user: 'snapshot',
    password: 's3cret#with;specials',
    socket: '/run/mysqld/mysqld.sock',
    host: '127.0.0.1',
    port: 3306,
    serverPublicKeyPath: '/var/lib/mysql/public_key.pem',
  });
  for (const [name, value] of Object.entries(DEFAULTS)) assert.deepEqual(full[name], value, `${snakeCase(name)} shows its default`);
  assert.deepEqual([full['ignoreCommands'], full['ignoreUsers']], [[], []]);
  assert.deepEqual(full['warnings'], []);
});

// ------------------------------------------------------------------- the installed executable at work

let server: TestServer;

before(async () => {
  server = await startMariaDB();
});

after(async () => {
  await server?.remove();
});

/** Lock holders started from the executable installed in `destdir` (other tests' holders do not count). */
function holderProcesses(destdir: string): number[] {
  const executable = onDisk(destdir, EXE);
  const pids: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv0 = fs.readFileSync(`/proc/${entry}/cmdline`, 'latin1').split('\0')[0] ?? '';
      const state = fs.readFileSync(`/proc/${entry}/stat`, 'latin1').split(') ')[1]?.[0];
      if (path.basename(argv0) !== 'pre-freeze-mysql-lock' || state === 'Z') continue;
      if (fs.readlinkSync(`/proc/${entry}/exe`).replace(/ \(deleted\)$/, '') === executable) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

async function assertReleased(destdir: string): Promise<void> {
  assert.equal(await tryInsert(server), 'ok', 'writes flow');
  for (let i = 0; i < 50 && holderProcesses(destdir).length > 0; i += 1) await sleep(20);
  assert.deepEqual(holderProcesses(destdir), [], 'no lock holder is left');
}

interface Command {
  /** the file that runs: DESTDIR + the link's target */
  file: string;
  /** the path the agent calls it by */
  argv0: string;
}

/** The installed hook `name` as the agent runs it, after checking that it leads to the installed executable. */
function installedCommand(destdir: string, name: string): Command {
  if (name === EXE) return { file: onDisk(destdir, EXE), argv0: EXE };
  assertOurLink(destdir, name);
  const file = onDisk(destdir, fs.readlinkSync(onDisk(destdir, name)));
  assertMode(file, 0o700);
  return { file, argv0: name };
}

function run(command: Command, args: string[], env: NodeJS.ProcessEnv, cwd?: string): Promise<Result> {
  const child = spawn(command.file, args, { argv0: command.argv0, env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  return collect(child, `${command.argv0} ${args.join(' ')}`);
}

function collect(child: ReturnType<typeof spawn>, what: string): Promise<Result> {
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      child.stdout?.destroy();
      child.stderr?.destroy();
      reject(new Error(`${what} did not finish within 60 s\n${stdout}\n${stderr}`));
    }, 60_000);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** What a freeze printed and logged, for a failure message. */
function describeRun(setup: HookSetup, result: Result): string {
  const events = readLog(setup).map((line) => `${String(line['event'])}: ${String(line['msg'])}`);
  return `stdout: ${result.stdout.trim()}\nstderr: ${result.stderr.trim()}\nlog:\n  ${events.join('\n  ')}`;
}

/** A config, run directory and log of its own; whatever a failing test leaves held is released after it. */
function newSetup(context: TestContext, destdir: string): HookSetup {
  const setup = makeHookSetup(server);
  temporaryDirectories.push(setup.dir);
  context.after(async () => {
    await run(installedCommand(destdir, EXE), ['--config', setup.configFile, 'thaw', '--failed'], { PATH: process.env.PATH });
  });
  return setup;
}

let legacyDestdir: string | undefined;
let directoryDestdir: string | undefined;

function installedFor(hookName: string): string {
  if (LEGACY_HOOKS.includes(hookName) || hookName === EXE) {
    legacyDestdir ??= (() => {
      const destdir = tempDir('vms-install-');
      install(destdir);
      return destdir;
    })();
    return legacyDestdir;
  }
  directoryDestdir ??= (() => {
    const destdir = tempDir('vms-install-');
    install(destdir, ['--backup-scripts-d', '--qemu']);
    return destdir;
  })();
  return directoryDestdir;
}

for (const [freezeName, freezeArgs, thawName, thawArgs] of [
  ['/usr/sbin/pre-freeze-script', ['freeze'], '/usr/sbin/post-thaw-script', ['thaw']],
  [BACKUP_SCRIPTS_D_HOOK, ['freeze'], BACKUP_SCRIPTS_D_HOOK, ['thaw']],
  [QEMU_HOOK, ['freeze'], QEMU_HOOK, ['thaw']],
  [EXE, ['freeze'], EXE, ['thaw']],
] as const) {
  test(`the installed executable: ${freezeName} ${freezeArgs.join(' ')}, writes blocked, ${path.basename(thawName)} ${thawArgs.join(' ')}`, async (context) => {
    const destdir = installedFor(freezeName);
    const setup = newSetup(context, destdir);
    const env = { PATH: process.env.PATH, [CONFIG_ENV]: setup.configFile };

    const frozen = await run(installedCommand(destdir, freezeName), [...freezeArgs], env);
    assert.equal(frozen.code, 0, frozen.stderr);
    assert.match(frozen.stdout, /^locked: /);
    assert.equal(await tryInsert(server), 'ER_LOCK_WAIT_TIMEOUT', `a write is blocked while frozen; ${describeRun(setup, frozen)}`);

    const status = await run(installedCommand(destdir, EXE), ['status', '--json'], env);
    assert.equal(status.code, 0, status.stderr);
    assert.equal((JSON.parse(status.stdout) as { phase: string }).phase, 'holding');

    const thawed = await run(installedCommand(destdir, thawName), [...thawArgs], env);
    assert.equal(thawed.code, 0, thawed.stderr);
    assert.match(thawed.stdout, /^released after \d+ ms/);
    await assertReleased(destdir);
    const events = readLog(setup).map((line) => String(line['event']));
    assert.ok(events.includes('lock.acquired') && events.includes('thaw.released'), events.join(', '));
  });
}

test('the installed executable in a bare environment (env -i, no node on PATH, no node_modules): --version and a freeze/thaw cycle', async (context) => {
  const destdir = installedFor(EXE);
  const executable = onDisk(destdir, EXE);
  const emptyPath = tempDir('vms-empty-path-');
  const cwd = tempDir('vms-bare-cwd-');
  const bare = (args: string[], extra: string[] = []): Promise<Result> =>
    collect(spawn('/usr/bin/env', ['-i', `PATH=${emptyPath}`, ...extra, executable, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] }), args.join(' '));

  const noNode = spawnSync('/usr/bin/env', ['-i', `PATH=${emptyPath}`, '/bin/sh', '-c', 'command -v node'], { cwd });
  assert.notEqual(noNode.status, 0, 'node is not reachable in that environment');

  const version = await bare(['--version']);
  assert.equal(version.code, 0, version.stderr);
  assert.equal(version.stdout.trim(), VERSION);

  // The admin CLI, with the config on the command line.
  const setup = newSetup(context, destdir);
  const frozen = await bare(['--config', setup.configFile, 'freeze']);
  assert.equal(frozen.code, 0, frozen.stderr);
  assert.equal(await tryInsert(server), 'ER_LOCK_WAIT_TIMEOUT', `a write is blocked while frozen; ${describeRun(setup, frozen)}`);
  const thawed = await bare(['--config', setup.configFile, 'thaw']);
  assert.equal(thawed.code, 0, thawed.stderr);
  await assertReleased(destdir);

  // The hook names, with the config in the environment: exactly PATH and the variable, as env -i sets.
  const env = { PATH: emptyPath, [CONFIG_ENV]: setup.configFile };
  const hookFrozen = await run(installedCommand(destdir, '/usr/sbin/pre-freeze-script'), ['freeze'], env, cwd);
  assert.equal(hookFrozen.code, 0, hookFrozen.stderr);
  assert.equal(await tryInsert(server), 'ER_LOCK_WAIT_TIMEOUT', `a write is blocked while frozen; ${describeRun(setup, hookFrozen)}`);
  const hookThawed = await run(installedCommand(destdir, '/usr/sbin/post-thaw-script'), ['thaw'], env, cwd);
  assert.equal(hookThawed.code, 0, hookThawed.stderr);
  await assertReleased(destdir);
});

// ------------------------------------------------------------------------------------ --qemu settings

const QEMU_DISPATCHER = '/etc/qemu/vmware-mysql-snapshot-fsfreeze-hook';
const QEMU_GA_CONF = '/etc/qemu/qemu-ga.conf';
const STOCK_QEMU_DISPATCHER = '/etc/qemu/fsfreeze-hook';

/** What qemu-ga itself makes of a qemu-ga.conf (-D dumps its settings), or undefined without qemu-ga. */
function qemuGaReads(conf: string): string | undefined {
  const result = spawnSync('qemu-ga', ['-D'], { env: { PATH: `${process.env.PATH}:/usr/sbin`, QGA_CONF: conf }, encoding: 'utf8' });
  return result.error === undefined && result.status === 0 ? result.stdout : undefined;
}

test('install.sh --qemu (Debian, Ubuntu): the dispatcher, and qemu-ga.conf made to run it; qemu-ga reads it; --uninstall removes it; says to restart qemu-ga', (context) => {
  const destdir = tempDir('vms-install-');
  const result = install(destdir, ['--qemu']);
  assertOurLink(destdir, QEMU_HOOK);
  assertMode(onDisk(destdir, QEMU_DISPATCHER), 0o700);
  assert.equal(fs.readFileSync(onDisk(destdir, QEMU_DISPATCHER), 'utf8'), fs.readFileSync(path.join(REPO, 'qemu', 'fsfreeze-hook'), 'utf8'));
  assert.ok(readManifest(destdir).includes(QEMU_DISPATCHER));
  const conf = onDisk(destdir, QEMU_GA_CONF);
  assertMode(conf, 0o644);
  assert.ok(result.stdout.includes(`configured  ${conf} (created: [general] fsfreeze-hook=${QEMU_DISPATCHER})`), result.stdout);
  assert.match(result.stderr, /restart it now \(systemctl restart qemu-guest-agent\)/);
  const read = qemuGaReads(conf);
  if (read === undefined) context.diagnostic('qemu-ga is not installed: its reading of qemu-ga.conf is not checked');
  else assert.match(read, new RegExp(`^fsfreeze-hook=${QEMU_DISPATCHER}$`, 'm'), read);

  const before = listing(destdir);
  const again = install(destdir, ['--qemu']);
  assert.deepEqual(listing(destdir), before, 'a second run changes nothing');
  assert.ok(again.stdout.includes(`kept        ${conf} (fsfreeze-hook=${QEMU_DISPATCHER})`), again.stdout);
  assert.doesNotMatch(again.stderr, /restart/, 'nothing to restart for');

  const removed = install(destdir, ['--uninstall']);
  assertAbsent(destdir, QEMU_GA_CONF);
  assertAbsent(destdir, QEMU_DISPATCHER);
  assert.ok(removed.stdout.includes(`removed     ${conf} (install.sh --qemu had made it)`), removed.stdout);
  assert.match(removed.stderr, /restart qemu-ga/);
});

test('install.sh --qemu with an admin\'s qemu-ga.conf: a line added to [general] (or the group), taken out by --uninstall or another layout byte for byte; an fsfreeze-hook the admin set is never changed', () => {
  for (const original of ['# mine\n[general]\nverbose=true\n\n[other]\nx=1\n', '[other]\nx=1', '']) {
    const destdir = tempDir('vms-install-');
    const conf = onDisk(destdir, QEMU_GA_CONF);
    fs.mkdirSync(path.dirname(conf), { recursive: true });
    fs.writeFileSync(conf, original, { mode: 0o640 });
    fs.chmodSync(conf, 0o640);
    install(destdir, ['--qemu']);
    const read = qemuGaReads(conf);
    if (read !== undefined) assert.match(read, new RegExp(`^fsfreeze-hook=${QEMU_DISPATCHER}$`, 'm'), `${JSON.stringify(original)}: ${read}`);
    if (original.includes('verbose')) assert.match(read ?? 'verbose=true', /^verbose=true$/m, 'the admin\'s settings stay');
    assert.equal(fs.statSync(conf).mode & 0o7777, 0o640, 'its mode is kept');
    // Another layout takes our line out, as --uninstall does.
    install(destdir, []);
    assert.equal(fs.readFileSync(conf, 'utf8'), original.endsWith('\n') || original === '' ? original : `${original}\n`, JSON.stringify(original));
    install(destdir, ['--qemu']);
    install(destdir, ['--uninstall']);
    assert.equal(fs.readFileSync(conf, 'utf8'), original.endsWith('\n') || original === '' ? original : `${original}\n`, JSON.stringify(original));
  }

  const destdir = tempDir('vms-install-');
  const conf = onDisk(destdir, QEMU_GA_CONF);
  fs.mkdirSync(path.dirname(conf), { recursive: true });
  const admins = '[general]\nfsfreeze-hook=/etc/qemu/fsfreeze-hook\n';
  fs.writeFileSync(conf, admins);
  const result = install(destdir, ['--qemu']);
  assert.equal(fs.readFileSync(conf, 'utf8'), admins, 'not changed');
  assert.ok(result.stderr.includes(`already sets fsfreeze-hook=/etc/qemu/fsfreeze-hook in [general]: not changed`), result.stderr);
  assert.ok(result.stderr.includes(`set fsfreeze-hook=${QEMU_DISPATCHER} there`), result.stderr);
  install(destdir, ['--uninstall']);
  assert.equal(fs.readFileSync(conf, 'utf8'), admins);
});

test('install.sh --qemu on RHEL and its kin: /etc/qemu-ga, and FSFREEZE_HOOK_PATHNAME in /etc/sysconfig/qemu-ga if it is the package\'s; --uninstall puts it back; an admin\'s value is never changed', () => {
  const sysconfig = '# qemu-ga\nFILTER_RPC_ARGS="--allow-rpcs=guest-fsfreeze-freeze"\nFSFREEZE_HOOK_PATHNAME=/etc/qemu-ga/fsfreeze-hook\n';
  const destdir = tempDir('vms-install-');
  const file = onDisk(destdir, '/etc/sysconfig/qemu-ga');
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, sysconfig);
  const result = install(destdir, ['--qemu']);
  assertOurLink(destdir, '/etc/qemu-ga/fsfreeze-hook.d/mysql');
  assertAbsent(destdir, QEMU_HOOK);
  assertAbsent(destdir, QEMU_GA_CONF);
  assertMode(onDisk(destdir, '/etc/qemu-ga/vmware-mysql-snapshot-fsfreeze-hook'), 0o700);
  const edited = fs.readFileSync(file, 'utf8');
  assert.match(edited, /^FSFREEZE_HOOK_PATHNAME=\/etc\/qemu-ga\/vmware-mysql-snapshot-fsfreeze-hook$/m);
  assert.doesNotMatch(edited, /^FSFREEZE_HOOK_PATHNAME=\/etc\/qemu-ga\/fsfreeze-hook$/m);
  // What the unit's shell-less EnvironmentFile= reading gives: the last assignment.
  const sourced = spawnSync('sh', ['-c', `. ${file}; printf %s "$FSFREEZE_HOOK_PATHNAME"`], { encoding: 'utf8' });
  assert.equal(sourced.stdout, '/etc/qemu-ga/vmware-mysql-snapshot-fsfreeze-hook');
  assert.match(result.stdout, /instead of the package's \/etc\/qemu-ga\/fsfreeze-hook; --uninstall puts it back/);
  install(destdir, ['--uninstall']);
  assert.equal(fs.readFileSync(file, 'utf8'), sysconfig, 'restored byte for byte');

  const custom = 'FSFREEZE_HOOK_PATHNAME=/usr/local/bin/my-hook\n';
  fs.writeFileSync(file, custom);
  const refused = install(destdir, ['--qemu']);
  assert.equal(fs.readFileSync(file, 'utf8'), custom);
  assert.match(refused.stderr, /sets FSFREEZE_HOOK_PATHNAME=\/usr\/local\/bin\/my-hook: not changed/);
});

test('the qemu dispatcher runs fsfreeze-hook.d as QEMU\'s stock one does (order, files skipped, log), but a failed freeze fails it, after thawing the scripts that froze', (context) => {
  if (!fs.existsSync(STOCK_QEMU_DISPATCHER)) {
    context.skip(`${STOCK_QEMU_DISPATCHER} (qemu-guest-agent) is not installed: nothing to compare with`);
    return;
  }
  const dir = tempDir('vms-dispatcher-');
  const hooks = path.join(dir, 'fsfreeze-hook.d');
  fs.mkdirSync(hooks);
  const trace = path.join(dir, 'trace');
  const script = (name: string, body = '', mode = 0o755): void => {
    fs.writeFileSync(path.join(hooks, name), `#!/bin/sh\necho "${name} $*" >> ${trace}\necho "${name} says $*"\n${body}`, { mode });
    fs.chmodSync(path.join(hooks, name), mode);
  };
  script('10-first');
  script('20-fails', '[ "$1" = freeze ] && exit 4\nexit 0\n');
  script('30-after');
  script('15-not-executable', '', 0o644);
  for (const ignored of ['40-x~', '40-x.bak', '40-x.orig', '40-x.rpmnew', '40-x.rpmsave', '40-x.sample', '40-x.dpkg-old', '40-x.dpkg-dist']) script(ignored);
  script('Z-capital');
  script('a-lower');
  // Both with their log in the test's directory instead of /var/log/qga-fsfreeze-hook.log.
  const copy = (source: string, name: string): string => {
    const file = path.join(dir, name);
    fs.writeFileSync(file, fs.readFileSync(source, 'utf8').replace(/^LOGFILE=.*$/m, `LOGFILE=${path.join(dir, `${name}.log`)}`), { mode: 0o755 });
    return file;
  };
  const stock = copy(STOCK_QEMU_DISPATCHER, 'stock');
  const ours = copy(path.join(REPO, 'qemu', 'fsfreeze-hook'), 'ours');
  const run = (dispatcher: string, operation: string): { status: number | null; trace: string[]; log: string[] } => {
    fs.rmSync(trace, { force: true });
    fs.rmSync(`${dispatcher}.log`, { force: true });
    const result = spawnSync(dispatcher, [operation], { encoding: 'utf8', env: { PATH: process.env.PATH, LC_ALL: 'C' } });
    // The log without its dates: "Thu Dec  4 ...: execute ..." -> "execute ...".
    const log = fs.readFileSync(`${dispatcher}.log`, 'utf8').split('\n').map((line) => line.replace(/^.*?: (execute|\S+ finished|\S+ says|a freeze failed)/, '$1'));
    return { status: result.status, trace: fs.existsSync(trace) ? fs.readFileSync(trace, 'utf8').trim().split('\n') : [], log };
  };

  const stockThaw = run(stock, 'thaw');
  const oursThaw = run(ours, 'thaw');
  assert.deepEqual(oursThaw, stockThaw, 'thaw: the same scripts, order, log and exit status 0');
  assert.deepEqual(stockThaw.trace, ['10-first thaw', '20-fails thaw', '30-after thaw', 'Z-capital thaw', 'a-lower thaw']);

  const stockFreeze = run(stock, 'freeze');
  const oursFreeze = run(ours, 'freeze');
  assert.equal(stockFreeze.status, 0, 'the stock dispatcher only logs a failed freeze');
  assert.equal(oursFreeze.status, 4, 'ours fails with the status of the freeze that failed');
  assert.deepEqual(oursFreeze.trace.slice(0, stockFreeze.trace.length), stockFreeze.trace, 'the same freezes in the same order');
  assert.deepEqual(oursFreeze.trace.slice(stockFreeze.trace.length), ['a-lower thaw', 'Z-capital thaw', '30-after thaw', '10-first thaw'], 'then the scripts that froze are thawed, last first');
  assert.deepEqual(oursFreeze.log.slice(0, stockFreeze.log.length - 1), stockFreeze.log.slice(0, -1), 'the same log lines');
  assert.ok(oursFreeze.log.some((line) => line.startsWith('a freeze failed (status=4)')), oursFreeze.log.join('\n'));
});
