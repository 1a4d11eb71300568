import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { HookError } from '../../src/errors';
import { withAgentDefaults } from '../../src/config/settings';
import {
  CONFIG_ENV,
  DEFAULT_CONFIG_FILE,
  DEFAULTS,
  configFilePath,
  loadSettings,
  type LoadOptions,
  type Settings,
} from '../../src/config/settings';

const CONFIG = '/etc/vmware-mysql-snapshot.cnf';
const DEBIAN = '/etc/mysql/debian.cnf';

const DEBIAN_CNF = [
  '# Automatically generated for Debian scripts. DO NOT TOUCH!',
  '[client]',
  'host     = localhost',
  'user     = debian-sys-maint',
  'password = "Deb#pass word"',
  'socket   = /var/run/mysqld/mysqld.sock',
  '[mysql_upgrade]',
  'host     = otherhost',
  'user     = upgrader',
  'password = other',
  'socket   = /var/run/mysqld/mysqld.sock',
  'basedir  = /usr',
  '',
].join('\n');

interface FakeFile {
  text: string;
  mode?: number;
  uid?: number;
}

function errnoError(code: string, file: string): Error {
  return Object.assign(new Error(`${code}: ${file}`), { code });
}

/** Load options over an in-memory file system; files default to mode 0600 owned by root. */
function fakeOptions(files: Record<string, FakeFile | string>, extra: Partial<LoadOptions> = {}): LoadOptions {
  const lookup = (file: string): FakeFile => {
    const found = files[file];
    if (found === undefined) throw errnoError('ENOENT', file);
    return typeof found === 'string' ? { text: found } : found;
  };
  return {
    needCredentials: true,
    readFile: (file) => lookup(file).text,
    stat: (file) => {
      const found = lookup(file);
      return { mode: 0o100000 | (found.mode ?? 0o600), uid: found.uid ?? 0 };
    },
    listDir: (directory) => {
      throw errnoError('ENOENT', directory);
    },
    effectiveUid: 0,
    ...extra,
  };
}

function load(text: string, extra: Partial<LoadOptions> = {}, otherFiles: Record<string, FakeFile | string> = {}): Settings {
  return loadSettings(CONFIG, fakeOptions({ [CONFIG]: text, ...otherFiles }, extra));
}

/** The problems listed in the thrown HookError. */
function problemsOf(text: string, extra: Partial<LoadOptions> = {}, otherFiles: Record<string, FakeFile | string> = {}): string[] {
  const error = configError(() => load(text, extra, otherFiles));
  const [header, ...lines] = error.message.split('\n');
  assert.match(header, new RegExp(`^configuration file ${CONFIG} has ${lines.length} problems?:$`));
  return lines.map((line) => {
    assert.match(line, /^ {2}- /);
    return line.slice(4);
  });
}

function configError(action: () => unknown): HookError {
  try {
    action();
  } catch (error) {
    assert.ok(error instanceof HookError, `expected a HookError, got ${String(error)}`);
    assert.equal(error.code, 'CONFIG');
    assert.equal(error.exitCode, 2);
    return error;
  }
  assert.fail('expected a HookError');
}

function onlyProblem(text: string, extra: Partial<LoadOptions> = {}, otherFiles: Record<string, FakeFile | string> = {}): string {
  const problems = problemsOf(text, extra, otherFiles);
  assert.equal(problems.length, 1, problems.join('\n'));
  return problems[0];
}

const MINIMAL = '[client]\nuser = backup\npassword = pw\n';

test('configFilePath: --config beats the environment, which beats the default', () => {
  assert.equal(configFilePath('/cli.cnf', { [CONFIG_ENV]: '/env.cnf' }), '/cli.cnf');
  assert.equal(configFilePath(undefined, { [CONFIG_ENV]: '/env.cnf' }), '/env.cnf');
  assert.equal(configFilePath(undefined, {}), DEFAULT_CONFIG_FILE);
  assert.equal(configFilePath('', { [CONFIG_ENV]: '' }), DEFAULT_CONFIG_FILE);
  assert.equal(DEFAULT_CONFIG_FILE, '/etc/vmware-mysql-snapshot.cnf');
  assert.equal(CONFIG_ENV, 'VMWARE_MYSQL_SNAPSHOT_CONFIG');
});

test('a minimal file gets every default', () => {
  const settings = load(MINIMAL);
  assert.deepEqual(settings, {
    file: CONFIG,
    client: { user: 'backup', password: 'pw' },
    lockWaitTimeout: 2,
    longQueryTime: 1,
    maxLockTime: 60,
    freezeTimeout: 300,
    freezeTimeoutSet: false,
    runDir: '/run/vmware-mysql-snapshot',
    logFile: '/var/log/vmware-mysql-snapshot.log',
    ignoreCommands: [],
    ignoreUsers: [],
    ifServerDown: 'skip',
    lockMode: 'ftwrl',
    coordinatesFile: null,
    killLongQueries: 'off',
    killLongQueriesAfter: 1,
    replicaSqlThread: 'keep',
    releaseAt: 'filesystem_thaw',
    historyFile: '/var/lib/vmware-mysql-snapshot/history.json',
    metricsFile: null,
    notifyCommand: null,
    notifyTimeout: 10,
    warnings: [],
  });
  assert.deepEqual(DEFAULTS, {
    lockWaitTimeout: 2,
    longQueryTime: 1,
    maxLockTime: 60,
    freezeTimeout: 300,
    runDir: '/run/vmware-mysql-snapshot',
    logFile: '/var/log/vmware-mysql-snapshot.log',
    ifServerDown: 'skip',
    lockMode: 'ftwrl',
    killLongQueries: 'off',
    killLongQueriesAfter: 1,
    replicaSqlThread: 'keep',
    releaseAt: 'filesystem_thaw',
    historyFile: '/var/lib/vmware-mysql-snapshot/history.json',
    notifyTimeout: 10,
  });
});

test('lock mode, coordinates file, kill_long_queries and replica_sql_thread', () => {
  const settings = load(`${MINIMAL}[snapshot]\nlock-mode = AUTO\ncoordinates_file = /var/lib/mysql/snapshot.json\nkill_long_queries = select\nkill_long_queries_after = 0.5\nreplica_sql_thread = stop\n`);
  assert.equal(settings.lockMode, 'auto');
  assert.equal(settings.coordinatesFile, '/var/lib/mysql/snapshot.json');
  assert.equal(settings.killLongQueries, 'select');
  assert.equal(settings.killLongQueriesAfter, 0.5);
  assert.equal(settings.replicaSqlThread, 'stop');
  assert.equal(
    onlyProblem(`${MINIMAL}[snapshot]\nlock_mode = gentle\n`),
    `${CONFIG}:5: lock_mode = "gentle" is not valid: expected ftwrl, backup_stage, backup_locks, instance or auto`,
  );
  assert.match(onlyProblem(`${MINIMAL}[snapshot]\ncoordinates_file = relative.json\n`), /coordinates_file/);
  assert.equal(
    onlyProblem(`${MINIMAL}[snapshot]\nkill_long_queries = all\nkill_long_queries_after = 2\n`),
    `${CONFIG}: kill_long_queries_after (2) must be shorter than lock_wait_timeout (2), or the attempt is given up before anything is killed`,
  );
});

test('release_at: filesystem_thaw by default, post_thaw, and nothing else', () => {
  assert.equal(load(`${MINIMAL}[snapshot]\nrelease-at = POST_THAW\n`).releaseAt, 'post_thaw');
  assert.equal(load(`${MINIMAL}[snapshot]\nrelease_at = filesystem_thaw\n`).releaseAt, 'filesystem_thaw');
  assert.equal(
    onlyProblem(`${MINIMAL}[snapshot]\nrelease_at = thaw\n`),
    `${CONFIG}:5: release_at = "thaw" is not valid: expected filesystem_thaw or post_thaw`,
  );
});

test('every setting is read, with fractional seconds, lists and normalised keys', () => {
  const text = [
    '# comment',
    '[client]',
    'user = backup',
    'password = "a#b;c\'d=e f"',
    'host = db.example.com',
    'port = 3307',
    'socket = /run/mysqld/mysqld.sock',
    '[snapshot]',
    'lock-wait-timeout = 0.5',
    'long_query_time = 0',
    'max_lock_time = 120.25',
    'freeze_timeout = 600',
    'run_dir = /run/custom',
    'log_file = /var/log/custom.log',
    'ignore_commands = Binlog Dump, Binlog Dump GTID ,, ',
    'ignore-users = event_scheduler,  system user',
    'if_server_down = FAIL',
  ].join('\n');
  const settings = load(text);
  assert.deepEqual(settings.client, {
    user: 'backup',
    password: "a#b;c'd=e f",
    host: 'db.example.com',
    port: 3307,
    socket: '/run/mysqld/mysqld.sock',
  });
  assert.equal(settings.lockWaitTimeout, 0.5);
  assert.equal(settings.longQueryTime, 0);
  assert.equal(settings.maxLockTime, 120.25);
  assert.equal(settings.freezeTimeout, 600);
  assert.equal(settings.runDir, '/run/custom');
  assert.equal(settings.logFile, '/var/log/custom.log');
  assert.deepEqual(settings.ignoreCommands, ['Binlog Dump', 'Binlog Dump GTID']);
  assert.deepEqual(settings.ignoreUsers, ['event_scheduler', 'system user']);
  assert.equal(settings.ifServerDown, 'fail');
  assert.deepEqual(settings.warnings, []);
});

test('an empty password is allowed', () => {
  assert.equal(load('[client]\nuser = backup\npassword =\n').client.password, '');
});

test('defaults_file supplies credentials from its [client] section only', () => {
  const settings = load(`[client]\ndefaults_file = ${DEBIAN}\n`, {}, { [DEBIAN]: DEBIAN_CNF });
  assert.deepEqual(settings.client, {
    user: 'debian-sys-maint',
    password: 'Deb#pass word',
    host: 'localhost',
    socket: '/var/run/mysqld/mysqld.sock',
  });
});

test('defaults-file is accepted and keys in our [client] override those of the defaults file', () => {
  const settings = load(
    `[client]\ndefaults-file = ${DEBIAN}\nhost = 127.0.0.1\nport = 3306\n`,
    {},
    { [DEBIAN]: DEBIAN_CNF },
  );
  assert.deepEqual(settings.client, {
    user: 'debian-sys-maint',
    password: 'Deb#pass word',
    host: '127.0.0.1',
    port: 3306,
    socket: '/var/run/mysqld/mysqld.sock',
  });
});

test('in the defaults file a later [client] key wins and other keys are ignored', () => {
  const defaults = '[client]\nuser = first\nbasedir = /usr\nssl-ca = /x\n[client]\nuser = second\n';
  const settings = load(`[client]\ndefaults_file = ${DEBIAN}\n`, {}, { [DEBIAN]: defaults });
  assert.deepEqual(settings.client, { user: 'second' });
});

test('a missing defaults file is a problem naming both files', () => {
  const problem = onlyProblem(`[client]\ndefaults_file = ${DEBIAN}\n`);
  assert.equal(problem, `${CONFIG}:2: defaults_file ${DEBIAN} named in ${CONFIG} cannot be read (not found)`);
});

test('an unreadable defaults file is a problem naming both files', () => {
  const problem = onlyProblem(`[client]\nuser = x\ndefaults_file = ${DEBIAN}\n`, {
    readFile: (file) => {
      if (file === CONFIG) return `[client]\nuser = x\ndefaults_file = ${DEBIAN}\n`;
      throw errnoError('EACCES', file);
    },
  });
  assert.match(problem, new RegExp(`${CONFIG}:3: .*${DEBIAN}.*permission denied`));
});

test('defaults_file must be an absolute path', () => {
  const problem = onlyProblem('[client]\nuser = x\ndefaults_file = debian.cnf\n');
  assert.equal(problem, `${CONFIG}:3: defaults_file = "debian.cnf" is not an absolute path`);
});

test('problems inside the defaults file are reported without their values', () => {
  const problems = problemsOf(`[client]\ndefaults_file = ${DEBIAN}\n`, {}, {
    [DEBIAN]: '[client]\nuser = u\npassword = "Secret1\nport = 99999\n',
  });
  assert.deepEqual(problems, [
    `${DEBIAN}:3: password: unterminated " quote (or text after the closing quote)`,
    `${DEBIAN}:4: port is not a port number: expected an integer from 1 to 65535`,
  ]);
});

for (const [key, goodValue] of [
  ['lock_wait_timeout', '1'],
  ['max_lock_time', '1'],
  ['freeze_timeout', '300'],
] as const) {
  test(`${key} must be a plain number of seconds greater than 0`, () => {
    for (const bad of ['2s', '-1', '0', '0.0', 'abc', 'NaN', 'Infinity', '1e3', '+5', '1.', ' ', '0x10']) {
      const problem = onlyProblem(`${MINIMAL}[snapshot]\n${key} = ${bad}\n`);
      assert.match(problem, new RegExp(`^${CONFIG}:5: ${key} = ".*" is not valid: expected a number of seconds greater than 0`));
    }
    assert.doesNotThrow(() => load(`${MINIMAL}[snapshot]\n${key} = ${goodValue}\n`));
  });
}

test('an empty duration is a problem', () => {
  const problem = onlyProblem(`${MINIMAL}[snapshot]\nmax_lock_time =\n`);
  assert.match(problem, /max_lock_time = "" is not valid/);
});

test('long_query_time may be 0 but not negative or with a unit', () => {
  assert.equal(load(`${MINIMAL}[snapshot]\nlong_query_time = 0\n`).longQueryTime, 0);
  assert.equal(load(`${MINIMAL}[snapshot]\nlong_query_time = .25\n`).longQueryTime, 0.25);
  assert.equal(load(`${MINIMAL}[snapshot]\nlong_query_time = 100000\n`).longQueryTime, 100000);
  for (const bad of ['-0.5', '1ms', '']) {
    assert.match(onlyProblem(`${MINIMAL}[snapshot]\nlong_query_time = ${bad}\n`), /expected a number of seconds \(0 or more\)/);
  }
});

test('durations have upper limits', () => {
  assert.equal(load(`${MINIMAL}[snapshot]\nlock_wait_timeout = 3600\nfreeze_timeout = 3600\n`).lockWaitTimeout, 3600);
  assert.match(onlyProblem(`${MINIMAL}[snapshot]\nlock_wait_timeout = 3600.5\nfreeze_timeout = 86400\n`), /lock_wait_timeout = "3600.5" .*at most 3600/);
  assert.equal(load(`${MINIMAL}[snapshot]\nmax_lock_time = 86400\n`).maxLockTime, 86400);
  assert.match(onlyProblem(`${MINIMAL}[snapshot]\nmax_lock_time = 86401\n`), /max_lock_time = "86401" .*at most 86400/);
  assert.equal(load(`${MINIMAL}[snapshot]\nfreeze_timeout = 86400\n`).freezeTimeout, 86400);
  assert.match(onlyProblem(`${MINIMAL}[snapshot]\nfreeze_timeout = 90000\n`), /freeze_timeout = "90000" .*at most 86400/);
});

test('freeze_timeout must not be shorter than lock_wait_timeout', () => {
  const problem = onlyProblem(`${MINIMAL}[snapshot]\nlock_wait_timeout = 30\nfreeze_timeout = 10\n`);
  assert.equal(
    problem,
    `${CONFIG}: freeze_timeout (10) is shorter than lock_wait_timeout (30): raise freeze_timeout or lower lock_wait_timeout`,
  );
  assert.equal(load(`${MINIMAL}[snapshot]\nlock_wait_timeout = 10\nfreeze_timeout = 10\n`).freezeTimeout, 10);
});

test('port must be an integer from 1 to 65535', () => {
  for (const bad of ['0', '65536', '-1', '3306.5', 'mysql', '', '3306 tcp']) {
    assert.match(onlyProblem(`${MINIMAL}port = ${bad}\n`), new RegExp(`^${CONFIG}:4: port is not a port number`));
  }
  assert.equal(load(`${MINIMAL}port = 1\n`).client.port, 1);
  assert.equal(load(`${MINIMAL}port = 65535\n`).client.port, 65535);
});

test('user and host must not be empty; socket, run_dir and log_file must be absolute', () => {
  assert.equal(onlyProblem('[client]\nuser =\n'), `${CONFIG}:2: user is empty`);
  assert.equal(onlyProblem(`${MINIMAL}host = ""\n`), `${CONFIG}:4: host is empty`);
  assert.equal(
    onlyProblem(`${MINIMAL}socket = mysqld.sock\n`),
    `${CONFIG}:4: socket is not an absolute path: it must start with /`,
  );
  assert.equal(
    onlyProblem(`${MINIMAL}[snapshot]\nrun_dir = run/here\n`),
    `${CONFIG}:5: run_dir = "run/here" is not an absolute path: it must start with /`,
  );
  assert.equal(
    onlyProblem(`${MINIMAL}[snapshot]\nlog_file = snapshot.log\n`),
    `${CONFIG}:5: log_file = "snapshot.log" is not an absolute path: it must start with /`,
  );
});

test('if_server_down accepts skip or fail in any case', () => {
  assert.equal(load(`${MINIMAL}[snapshot]\nif_server_down = Skip\n`).ifServerDown, 'skip');
  assert.equal(load(`${MINIMAL}[snapshot]\nif_server_down = fail\n`).ifServerDown, 'fail');
  assert.equal(
    onlyProblem(`${MINIMAL}[snapshot]\nif_server_down = ignore\n`),
    `${CONFIG}:5: if_server_down = "ignore" is not valid: expected skip or fail`,
  );
});

test('unknown sections are reported once; unknown keys are reported with a hint', () => {
  assert.equal(
    onlyProblem(`${MINIMAL}[mysqld]\nport = 3306\nbind-address = 0.0.0.0\n`),
    `${CONFIG}:5: unknown section [mysqld]: expected [client] or [snapshot]`,
  );
  assert.match(onlyProblem(`${MINIMAL}[snapshot]\nlock_timeout = 5\n`), /^\/etc\/vmware-mysql-snapshot\.cnf:5: unknown option lock_timeout in \[snapshot\]: known options are lock_wait_timeout, /);
  assert.equal(
    onlyProblem(`${MINIMAL}[snapshot]\nuser = other\n`),
    `${CONFIG}:5: unknown option user in [snapshot] (it belongs in [client])`,
  );
});

test('a key given twice in the same section is a problem, also across spellings', () => {
  assert.equal(
    onlyProblem(`${MINIMAL}[snapshot]\nlock_wait_timeout = 1\nlock-wait-timeout = 1\n`),
    `${CONFIG}:6: lock_wait_timeout is given twice in [snapshot] (also at ${CONFIG}:5): keep one`,
  );
});

test('a key without a value is a problem', () => {
  assert.equal(onlyProblem(`${MINIMAL}[snapshot]\nrun_dir\n`), `${CONFIG}:5: run_dir has no value: write run_dir = VALUE`);
  assert.deepEqual(problemsOf('[client]\nuser\n'), [
    `${CONFIG}:2: user has no value: write user = VALUE`,
    `${CONFIG}: [client] has no user: set user (and password), or defaults_file = /etc/mysql/debian.cnf`,
  ]);
});

test('missing credentials are a problem only when credentials are needed', () => {
  assert.equal(
    onlyProblem('[snapshot]\nmax_lock_time = 5\n'),
    `${CONFIG}: [client] has no user: set user (and password), or defaults_file = /etc/mysql/debian.cnf`,
  );
  assert.equal(onlyProblem('', { needCredentials: true }).includes('[client] has no user'), true);
  const settings = load('[snapshot]\nmax_lock_time = 5\n', { needCredentials: false });
  assert.deepEqual(settings.client, { user: '' });
});

test('a defaults file without a user does not satisfy the credentials check', () => {
  const problem = onlyProblem(`[client]\ndefaults_file = ${DEBIAN}\n`, {}, { [DEBIAN]: '[mysqld]\nuser = mysql\n' });
  assert.match(problem, /\[client\] has no user/);
});

test('all problems are reported together in one error, in the order of the file', () => {
  const text = [
    'stray = 1',
    '[client]',
    'port = 70000',
    'password = "Hunter2',
    '[snapshot]',
    'lock_wait_timeout = 5s',
    'max_lock_time = -3',
    'if_server_down = maybe',
    'bogus = yes',
    'bogus = again',
    '[other]',
    'x = 1',
  ].join('\n');
  const error = configError(() => load(text));
  assert.ok(error.message.startsWith(`configuration file ${CONFIG} has 10 problems:\n  - `));
  assert.deepEqual(problemsOf(text), [
    `${CONFIG}:1: option outside of any [section]`,
    `${CONFIG}:3: port is not a port number: expected an integer from 1 to 65535`,
    `${CONFIG}:4: password: unterminated " quote (or text after the closing quote)`,
    `${CONFIG}:6: lock_wait_timeout = "5s" is not valid: expected a number of seconds greater than 0 and at most 3600, such as 2 or 0.5, without a unit`,
    `${CONFIG}:7: max_lock_time = "-3" is not valid: expected a number of seconds greater than 0 and at most 86400, such as 2 or 0.5, without a unit`,
    `${CONFIG}:8: if_server_down = "maybe" is not valid: expected skip or fail`,
    `${CONFIG}:9: not a known option in [snapshot] (the line is not shown: it may hold a password); write KEY = VALUE, known options are lock_wait_timeout, long_query_time, max_lock_time, freeze_timeout, run_dir, log_file, ignore_commands, ignore_users, if_server_down, lock_mode, coordinates_file, kill_long_queries, kill_long_queries_after, replica_sql_thread, release_at, history_file, metrics_file, notify_command, notify_timeout`,
    `${CONFIG}:10: not a known option in [snapshot] (the line is not shown: it may hold a password); write KEY = VALUE, known options are lock_wait_timeout, long_query_time, max_lock_time, freeze_timeout, run_dir, log_file, ignore_commands, ignore_users, if_server_down, lock_mode, coordinates_file, kill_long_queries, kill_long_queries_after, replica_sql_thread, release_at, history_file, metrics_file, notify_command, notify_timeout`,
    `${CONFIG}:12: unknown section [other]: expected [client] or [snapshot]`,
    `${CONFIG}: [client] has no user: set user (and password), or defaults_file = /etc/mysql/debian.cnf`,
  ]);
});

test('a single problem is worded in the singular', () => {
  const error = configError(() => load(`${MINIMAL}port = x\n`));
  assert.ok(error.message.startsWith(`configuration file ${CONFIG} has 1 problem:\n  - `));
});

test('password values never appear in problems', () => {
  const secret = 'Hunter2-very-secret';
  const text = [
    '[client]',
    'user = u',
    `password = ${secret}`,
    `password = ${secret}`,
    '[snapshot]',
    `password = ${secret}`,
    `pasword = ${secret}`,
    '[mysql]',
    `password = ${secret}`,
    '[client]',
    `password = '${secret}`,
  ].join('\n');
  const error = configError(() => load(text));
  assert.doesNotMatch(error.message, /Hunter2/);
  assert.equal(problemsOf(text).length, 5);
});

test('a missing configuration file gets its own message', () => {
  const error = configError(() => loadSettings(CONFIG, fakeOptions({})));
  assert.equal(
    error.message,
    `configuration file ${CONFIG} not found: create it (install.sh writes a template) ` +
      'or point VMWARE_MYSQL_SNAPSHOT_CONFIG or --config at another file',
  );
});

test('an unreadable configuration file says to run as root or fix its mode', () => {
  const error = configError(() =>
    loadSettings(CONFIG, {
      needCredentials: true,
      readFile: (file) => {
        throw errnoError('EACCES', file);
      },
    }),
  );
  assert.match(error.message, /^configuration file \/etc\/vmware-mysql-snapshot\.cnf cannot be read \(permission denied\): run as root/);
  assert.match(error.message, /fix its mode/);
});

test('a world-readable config file holding a password gives a warning', () => {
  const settings = loadSettings(CONFIG, fakeOptions({ [CONFIG]: { text: MINIMAL, mode: 0o644 } }));
  assert.deepEqual(settings.warnings, [
    `${CONFIG} holds a password and is readable by group or others (mode 0644): chmod 600 ${CONFIG}`,
  ]);
});

test('group access alone also gives the warning; mode 0600 or no password gives none', () => {
  const groupReadable = loadSettings(CONFIG, fakeOptions({ [CONFIG]: { text: MINIMAL, mode: 0o640 } }));
  assert.equal(groupReadable.warnings.length, 1);
  assert.match(groupReadable.warnings[0], /\(mode 0640\)/);
  assert.deepEqual(loadSettings(CONFIG, fakeOptions({ [CONFIG]: { text: MINIMAL, mode: 0o600 } })).warnings, []);
  const noPassword = '[client]\nuser = u\n';
  assert.deepEqual(loadSettings(CONFIG, fakeOptions({ [CONFIG]: { text: noPassword, mode: 0o644 } })).warnings, []);
});

test('a readable defaults file holding a password gives a warning about that file', () => {
  const settings = loadSettings(
    CONFIG,
    fakeOptions({
      [CONFIG]: { text: `[client]\ndefaults_file = ${DEBIAN}\n`, mode: 0o644 },
      [DEBIAN]: { text: DEBIAN_CNF, mode: 0o604 },
    }),
  );
  assert.deepEqual(settings.warnings, [
    `${DEBIAN} holds a password and is readable by group or others (mode 0604): chmod 600 ${DEBIAN}`,
  ]);
});

test('a file that another user owns is refused: it decides what a root process writes', () => {
  const files = { [CONFIG]: { text: MINIMAL, uid: 1000 } };
  assert.equal(
    onlyProblem(MINIMAL, fakeOptions(files)),
    `${CONFIG}: owned by uid 1000, not by root, so that user could change what this root hook does: chown root ${CONFIG}`,
  );
  assert.deepEqual(loadSettings(CONFIG, fakeOptions(files, { effectiveUid: 1000 })).warnings, [], 'fine for its own user');
});

test('a file writable by group or others is refused', () => {
  const files = { [CONFIG]: { text: MINIMAL, mode: 0o100646 } };
  assert.equal(
    onlyProblem(MINIMAL, fakeOptions(files)),
    `${CONFIG}: writable by group or others (mode 0646), so anyone could change what this root hook does: chmod 600 ${CONFIG}`,
  );
});

test('a failing stat only skips the checks', () => {
  const settings = loadSettings(
    CONFIG,
    fakeOptions({ [CONFIG]: MINIMAL }, {
      stat: () => {
        throw errnoError('ENOENT', CONFIG);
      },
    }),
  );
  assert.deepEqual(settings.warnings, []);
});

test('loadSettings reads real files by default, including the defaults file', () => {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'config-test-'));
  try {
    const configFile = path.join(directory, 'snapshot.cnf');
    const defaultsFile = path.join(directory, 'debian.cnf');
    fs.writeFileSync(defaultsFile, DEBIAN_CNF, { mode: 0o600 });
    fs.writeFileSync(configFile, `[client]\ndefaults_file = ${defaultsFile}\n[snapshot]\nfreeze_timeout = 30\n`, {
      mode: 0o600,
    });
    const settings = loadSettings(configFile, { needCredentials: true, effectiveUid: 1000 });
    assert.equal(settings.file, configFile);
    assert.equal(settings.client.user, 'debian-sys-maint');
    assert.equal(settings.client.password, 'Deb#pass word');
    assert.equal(settings.freezeTimeout, 30);
    assert.deepEqual(settings.warnings, []);
  } finally {
    fs.rmSync(directory, { recursive: true, force: true });
  }
});

test('freeze_timeout: the calling agent default applies only when the configuration sets none', () => {
  const unset = load(MINIMAL);
  assert.equal(unset.freezeTimeoutSet, false);
  assert.equal(withAgentDefaults(unset, 'aws').freezeTimeout, 6);
  assert.equal(withAgentDefaults(unset, 'gcp').freezeTimeout, 45);
  assert.equal(withAgentDefaults(unset, 'azure').freezeTimeout, 20);
  assert.equal(withAgentDefaults(unset, 'vmware').freezeTimeout, 300);
  assert.equal(withAgentDefaults(unset, undefined).freezeTimeout, 300);
  const set = load(`${MINIMAL}[snapshot]\nfreeze_timeout = 300\n`);
  assert.equal(set.freezeTimeoutSet, true);
  assert.equal(withAgentDefaults(set, 'aws').freezeTimeout, 300, 'a configured value wins, even the default one');
});

test('a line that may hold a password is reported by file, line and key only, never by its text', () => {
  for (const line of ['password: S3cretXyz', 'password S3cretXyz', 'S3cretXyz', 'pass"word = S3cretXyz']) {
    const problem = onlyProblem(`[client]\nuser = backup\n${line}\n`);
    assert.match(problem, /^\/etc\/vmware-mysql-snapshot\.cnf:3: /, problem);
    assert.equal(problem.toLowerCase().includes('s3cretxyz'), false, problem);
  }
  for (const line of ['port = S3cretXyz', 'host = ""', 'socket = S3cretXyz']) {
    const problem = onlyProblem(`[client]\nuser = backup\n${line}\n`);
    assert.equal(problem.toLowerCase().includes('s3cretxyz'), false, problem);
  }
  assert.match(onlyProblem(`${MINIMAL}[snapshot]\nlock_wiat_timeout = 2\n`), /unknown option lock_wiat_timeout in \[snapshot\]: did you mean lock_wait_timeout\?/);
});
