/**
 * Loads and validates the configuration file (my.cnf syntax, sections [client] and [snapshot]).
 * Every problem is collected and reported in one HookError('CONFIG'); a password value is never shown.
 */
import fs = require('node:fs');
import path = require('node:path');
import { HookError } from '../errors';
import { profileById, type AgentId } from '../agents/profiles';
import { describeReadError, errorCode, readOptionFile, type OptionEntry, type ParsedOptions } from './optionfile';

/** The lock modes (server/lockmodes.ts says what each takes); `auto` picks one per server. */
export const LOCK_MODES = ['ftwrl', 'backup_stage', 'backup_locks', 'instance'] as const;
export type LockMode = (typeof LOCK_MODES)[number];
export type LockModeSetting = LockMode | 'auto';

export const DEFAULT_CONFIG_FILE = '/etc/vmware-mysql-snapshot.cnf';
export const CONFIG_ENV = 'VMWARE_MYSQL_SNAPSHOT_CONFIG';

export interface ClientSettings {
  user: string;
  password?: string;
  host?: string;
  port?: number;
  socket?: string;
  /** The server's RSA public key (PEM), for a password asked in full over TCP (server/authplugins.ts). */
  serverPublicKeyPath?: string;
}

export interface Settings {
  /** The config file that was read. */
  file: string;
  client: ClientSettings;
  /** Seconds, may be fractional, > 0. */
  lockWaitTimeout: number;
  /** Seconds, may be fractional, >= 0. */
  longQueryTime: number;
  /** Seconds, > 0. */
  maxLockTime: number;
  /** Seconds, > 0: the configured value, else the calling agent's default (withAgentDefaults), else 300. */
  freezeTimeout: number;
  /** Whether the configuration sets freeze_timeout (an agent's default applies only when it does not). */
  freezeTimeoutSet: boolean;
  /** Absolute path. */
  runDir: string;
  /** Absolute path. */
  logFile: string;
  ignoreCommands: string[];
  ignoreUsers: string[];
  ifServerDown: 'skip' | 'fail';
  /** FLUSH TABLES WITH READ LOCK, a gentler mode, or the gentlest exact one (auto); see src/server/lockmodes.ts */
  lockMode: LockModeSetting;
  /** Absolute path of a JSON file written (and fsynced) with the coordinates before freeze returns. */
  coordinatesFile: string | null;
  /** KILL QUERY statements that hold up a waiting lock: none, SELECTs only, or any. */
  killLongQueries: 'off' | 'select' | 'all';
  /** Seconds a lock attempt waits before it kills the statements holding it up. */
  killLongQueriesAfter: number;
  /** Stop a replica's SQL thread while locking (multi-threaded appliers can deadlock against FTWRL). */
  replicaSqlThread: 'keep' | 'stop';
  /** Release when the data directory's filesystem thaws after the snapshot (src/snapshot/fsthaw.ts), or only at post-thaw. */
  releaseAt: 'filesystem_thaw' | 'post_thaw';
  /** The last runs (results, timings, coordinates, blockers), for status and check: persistent, small. */
  historyFile: string;
  /** Prometheus node_exporter textfile metrics, written atomically after each run; null: none. */
  metricsFile: string | null;
  /** Run through /bin/sh after a failed freeze or thaw, the failure in VMS_* variables; null: none. */
  notifyCommand: string | null;
  /** Seconds notify_command may run before it is killed. */
  notifyTimeout: number;
  /** Non-fatal findings, e.g. a config file holding a password that others can read. */
  warnings: string[];
}

export const DEFAULTS = {
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
} as const;

export interface LoadOptions {
  /** When true, a configuration without a user is a problem. */
  needCredentials: boolean;
  readFile?: (p: string) => string;
  stat?: (p: string) => { mode: number; uid: number };
  listDir?: (d: string) => string[];
  /** The effective uid to assume; defaults to process.geteuid(). Lets tests exercise the ownership check. */
  effectiveUid?: number;
}

/** `--config` beats the environment variable, which beats the default. An empty value counts as unset. */
export function configFilePath(cliPath: string | undefined, env: NodeJS.ProcessEnv): string {
  if (cliPath !== undefined && cliPath !== '') return cliPath;
  const fromEnvironment = env[CONFIG_ENV];
  if (fromEnvironment !== undefined && fromEnvironment !== '') return fromEnvironment;
  return DEFAULT_CONFIG_FILE;
}

/**
 * Reads and validates `file`. Throws HookError('CONFIG') when the file cannot be read or has problems.
 * Without a user (allowed only when `needCredentials` is false) `client.user` is the empty string.
 */
export function loadSettings(file: string, options: LoadOptions): Settings {
  const parsed = readConfigFile(file, options);
  const problems = [...parsed.problems];
  const sections = collectSections(parsed.entries, problems);
  const client = resolveClient(file, sections.get('client') ?? new Map(), options, problems);
  const snapshot = sections.get('snapshot') ?? new Map<string, ValuedEntry>();

  const lockWaitTimeout = readDuration(snapshot, 'lock_wait_timeout', DEFAULTS.lockWaitTimeout, problems);
  const freezeTimeout = readDuration(snapshot, 'freeze_timeout', DEFAULTS.freezeTimeout, problems);
  const settings: Settings = {
    file,
    client: client.settings,
    lockWaitTimeout,
    longQueryTime: readDuration(snapshot, 'long_query_time', DEFAULTS.longQueryTime, problems),
    maxLockTime: readDuration(snapshot, 'max_lock_time', DEFAULTS.maxLockTime, problems),
    freezeTimeout,
    freezeTimeoutSet: snapshot.has('freeze_timeout'),
    runDir: readAbsolutePath(snapshot, 'run_dir', DEFAULTS.runDir, problems),
    logFile: readAbsolutePath(snapshot, 'log_file', DEFAULTS.logFile, problems),
    ignoreCommands: readList(snapshot, 'ignore_commands'),
    ignoreUsers: readList(snapshot, 'ignore_users'),
    ifServerDown: readChoice(snapshot, 'if_server_down', ['skip', 'fail'], DEFAULTS.ifServerDown, problems),
    lockMode: readChoice(snapshot, 'lock_mode', [...LOCK_MODES, 'auto'], DEFAULTS.lockMode, problems),
    coordinatesFile: snapshot.has('coordinates_file') ? readAbsolutePath(snapshot, 'coordinates_file', '', problems) || null : null,
    killLongQueries: readChoice(snapshot, 'kill_long_queries', ['off', 'select', 'all'], DEFAULTS.killLongQueries, problems),
    killLongQueriesAfter: readDuration(snapshot, 'kill_long_queries_after', DEFAULTS.killLongQueriesAfter, problems),
    replicaSqlThread: readChoice(snapshot, 'replica_sql_thread', ['keep', 'stop'], DEFAULTS.replicaSqlThread, problems),
    releaseAt: readChoice(snapshot, 'release_at', ['filesystem_thaw', 'post_thaw'], DEFAULTS.releaseAt, problems),
    historyFile: readAbsolutePath(snapshot, 'history_file', DEFAULTS.historyFile, problems),
    metricsFile: snapshot.has('metrics_file') ? readAbsolutePath(snapshot, 'metrics_file', '', problems) || null : null,
    notifyCommand: snapshot.get('notify_command')?.value.trim() || null,
    notifyTimeout: readDuration(snapshot, 'notify_timeout', DEFAULTS.notifyTimeout, problems),
    warnings: [],
  };
  if (settings.killLongQueries !== 'off' && settings.killLongQueriesAfter >= lockWaitTimeout) {
    problems.push(
      `${file}: kill_long_queries_after (${settings.killLongQueriesAfter}) must be shorter than lock_wait_timeout (${lockWaitTimeout}), ` +
        'or the attempt is given up before anything is killed',
    );
  }

  if (freezeTimeout < lockWaitTimeout) {
    problems.push(
      `${file}: freeze_timeout (${freezeTimeout}) is shorter than lock_wait_timeout (${lockWaitTimeout}): ` +
        'raise freeze_timeout or lower lock_wait_timeout',
    );
  }
  if (options.needCredentials && !client.userGiven) {
    problems.push(
      `${file}: [client] has no user: set user (and password), or defaults_file = /etc/mysql/debian.cnf`,
    );
  }
  const allEntries = [...parsed.entries, ...client.defaultsEntries];
  const filesRead = unique([file, ...client.defaultsFilesRead, ...allEntries.map((entry) => entry.file)]);
  const safety = checkFiles(filesRead, allEntries, options);
  problems.push(...safety.problems);
  if (problems.length > 0) {
    const noun = problems.length === 1 ? 'problem' : 'problems';
    const list = [...problems].sort(byFileAndLine).map((problem) => `  - ${problem}`).join('\n');
    throw new HookError('CONFIG', `configuration file ${file} has ${problems.length} ${noun}:\n${list}`);
  }
  settings.warnings = safety.warnings;
  return settings;
}

/**
 * The settings for a hook run by `agent`: freeze_timeout, when the configuration does not set it, is the
 * agent's default, which leaves the freeze time to end before the agent gives up on it.
 */
export function withAgentDefaults(settings: Settings, agent: AgentId | undefined): Settings {
  if (agent === undefined || settings.freezeTimeoutSet) return settings;
  return { ...settings, freezeTimeout: profileById(agent).defaultFreezeTimeout };
}

type ValuedEntry = OptionEntry & { value: string };
type Section = ReadonlyMap<string, ValuedEntry>;

const CREDENTIAL_KEYS = ['user', 'password', 'host', 'port', 'socket', 'server_public_key_path'] as const;
type CredentialKey = (typeof CREDENTIAL_KEYS)[number];

const KNOWN_KEYS: ReadonlyMap<string, readonly string[]> = new Map([
  ['client', [...CREDENTIAL_KEYS, 'defaults_file']],
  [
    'snapshot',
    [
      'lock_wait_timeout',
      'long_query_time',
      'max_lock_time',
      'freeze_timeout',
      'run_dir',
      'log_file',
      'ignore_commands',
      'ignore_users',
      'if_server_down',
      'lock_mode',
      'coordinates_file',
      'kill_long_queries',
      'kill_long_queries_after',
      'replica_sql_thread',
      'release_at',
      'history_file',
      'metrics_file',
      'notify_command',
      'notify_timeout',
    ],
  ],
]);

interface DurationRule {
  allowZero: boolean;
  maximum: number | undefined;
}

const DURATION_RULES: ReadonlyMap<string, DurationRule> = new Map([
  ['lock_wait_timeout', { allowZero: false, maximum: 3600 }],
  ['long_query_time', { allowZero: true, maximum: undefined }],
  ['max_lock_time', { allowZero: false, maximum: 86400 }],
  ['freeze_timeout', { allowZero: false, maximum: 86400 }],
  ['kill_long_queries_after', { allowZero: true, maximum: 3600 }],
  ['notify_timeout', { allowZero: false, maximum: 3600 }],
]);

interface ResolvedClient {
  settings: ClientSettings;
  /** A user entry exists, or cannot be known because defaults_file failed (both reported on their own). */
  userGiven: boolean;
  defaultsEntries: OptionEntry[];
  defaultsFilesRead: string[];
}

function readConfigFile(file: string, options: LoadOptions): ParsedOptions {
  try {
    return readOptionFile(file, options.readFile, options.listDir);
  } catch (error) {
    throw configReadError(file, error);
  }
}

function configReadError(file: string, error: unknown): HookError {
  const code = errorCode(error);
  if (code === 'ENOENT') {
    return new HookError(
      'CONFIG',
      `configuration file ${file} not found: create it (install.sh writes a template) ` +
        `or point ${CONFIG_ENV} or --config at another file`,
      { cause: error },
    );
  }
  if (code === 'UNSAFE_PATH') {
    return new HookError(
      'CONFIG',
      `configuration file ${file} is not safe to read as root: ${(error as Error).message} ` +
        '(it and every directory above it must belong to root and be writable by nobody else)',
      { cause: error },
    );
  }
  if (code === 'EACCES' || code === 'EPERM') {
    return new HookError(
      'CONFIG',
      `configuration file ${file} cannot be read (permission denied): run as root, ` +
        `or fix its mode (chown root ${file}; chmod 600 ${file})`,
      { cause: error },
    );
  }
  return new HookError('CONFIG', `configuration file ${file} cannot be read (${describeReadError(error)})`, {
    cause: error,
  });
}

/** Sorts our own entries by section and key, reporting unknown names, repeated keys and keys without a value. */
function collectSections(entries: readonly OptionEntry[], problems: string[]): Map<string, Map<string, ValuedEntry>> {
  const sections = new Map<string, Map<string, ValuedEntry>>();
  const seen = new Map<string, OptionEntry>();
  const reportedSections = new Set<string>();
  for (const entry of entries) {
    const where = `${entry.file}:${entry.line}`;
    const knownKeys = KNOWN_KEYS.get(entry.section);
    if (knownKeys === undefined) {
      if (!reportedSections.has(entry.section)) {
        reportedSections.add(entry.section);
        problems.push(`${where}: unknown section [${entry.section}]: expected [client] or [snapshot]`);
      }
      continue;
    }
    if (!knownKeys.includes(entry.key)) {
      problems.push(unknownOptionProblem(where, entry));
      continue;
    }
    const identity = `${entry.section}\0${entry.key}`;
    const earlier = seen.get(identity);
    if (earlier !== undefined) {
      problems.push(
        `${where}: ${entry.key} is given twice in [${entry.section}] ` +
          `(also at ${earlier.file}:${earlier.line}): keep one`,
      );
      continue;
    }
    seen.set(identity, entry);
    if (entry.value === undefined) {
      problems.push(`${where}: ${entry.key} has no value: write ${entry.key} = VALUE`);
      continue;
    }
    const section = sections.get(entry.section) ?? new Map<string, ValuedEntry>();
    section.set(entry.key, { ...entry, value: entry.value });
    sections.set(entry.section, section);
  }
  return sections;
}

/**
 * A line such as `password S3cret`, `password: S3cret` or a bare `S3cret` reads as an option whose name
 * is the secret: the name is shown only when it is a known option's name or one typo away from one.
 */
function unknownOptionProblem(where: string, entry: OptionEntry): string {
  const known = [...KNOWN_KEYS.values()].flat();
  if (known.includes(entry.key)) return `${where}: unknown option ${entry.key} in [${entry.section}]${placementHint(entry)}`;
  const near = known.find((key) => editDistance(key, entry.key) <= 2);
  if (near !== undefined) return `${where}: unknown option ${entry.key} in [${entry.section}]: did you mean ${near}?`;
  // Words joined by underscores read as a misspelt option, not as a password.
  if (/^[a-z]+(?:_[a-z]+)+$/.test(entry.key)) return `${where}: unknown option ${entry.key} in [${entry.section}]${placementHint(entry)}`;
  return (
    `${where}: not a known option in [${entry.section}] (the line is not shown: it may hold a password); ` +
    `write KEY = VALUE, known options are ${(KNOWN_KEYS.get(entry.section) ?? []).join(', ')}`
  );
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

function placementHint(entry: OptionEntry): string {
  for (const [section, keys] of KNOWN_KEYS) {
    if (section !== entry.section && keys.includes(entry.key)) return ` (it belongs in [${section}])`;
  }
  return `: known options are ${(KNOWN_KEYS.get(entry.section) ?? []).join(', ')}`;
}

/** Our own [client] keys override those taken from the [client] section of defaults_file. */
function resolveClient(file: string, ownClient: Section, options: LoadOptions, problems: string[]): ResolvedClient {
  const defaults = readDefaultsFile(file, ownClient.get('defaults_file'), options, problems);
  const merged = new Map<CredentialKey, ValuedEntry>(defaults.credentials);
  for (const key of CREDENTIAL_KEYS) {
    const own = ownClient.get(key);
    if (own !== undefined) merged.set(key, own);
  }

  const user = merged.get('user');
  const settings: ClientSettings = { user: user === undefined ? '' : (requireNonEmpty(user, problems) ?? '') };
  const password = merged.get('password');
  if (password !== undefined) settings.password = password.value;
  const host = validated(merged.get('host'), requireNonEmpty, problems);
  if (host !== undefined) settings.host = host;
  const port = validated(merged.get('port'), parsePort, problems);
  if (port !== undefined) settings.port = port;
  const socket = validated(merged.get('socket'), parseAbsolutePath, problems);
  if (socket !== undefined) settings.socket = socket;
  const serverPublicKeyPath = validated(merged.get('server_public_key_path'), parseAbsolutePath, problems);
  if (serverPublicKeyPath !== undefined) settings.serverPublicKeyPath = serverPublicKeyPath;

  return {
    settings,
    userGiven: user !== undefined || defaults.failed,
    defaultsEntries: defaults.entries,
    defaultsFilesRead: defaults.filesRead,
  };
}

interface DefaultsFile {
  /** defaults_file is set but could not be used. */
  failed: boolean;
  credentials: Map<CredentialKey, ValuedEntry>;
  entries: OptionEntry[];
  filesRead: string[];
}

/** Someone else's file (e.g. /etc/mysql/debian.cnf): only the credentials of its [client] section are used. */
function readDefaultsFile(
  file: string,
  entry: ValuedEntry | undefined,
  options: LoadOptions,
  problems: string[],
): DefaultsFile {
  const none: DefaultsFile = { failed: false, credentials: new Map(), entries: [], filesRead: [] };
  if (entry === undefined) return none;
  const failed: DefaultsFile = { ...none, failed: true };
  const where = `${entry.file}:${entry.line}`;
  const defaultsFile = entry.value;
  if (!path.isAbsolute(defaultsFile)) {
    problems.push(`${where}: defaults_file = ${JSON.stringify(defaultsFile)} is not an absolute path`);
    return failed;
  }

  let parsed: ParsedOptions;
  try {
    parsed = readOptionFile(defaultsFile, options.readFile, options.listDir);
  } catch (error) {
    problems.push(
      `${where}: defaults_file ${defaultsFile} named in ${file} cannot be read (${describeReadError(error)})`,
    );
    return failed;
  }
  problems.push(...parsed.problems);

  const credentials = new Map<CredentialKey, ValuedEntry>();
  for (const candidate of parsed.entries) {
    if (candidate.section !== 'client' || !isCredentialKey(candidate.key)) continue;
    if (candidate.value === undefined) {
      problems.push(`${candidate.file}:${candidate.line}: ${candidate.key} has no value`);
      continue;
    }
    // Later entries win, as in MySQL.
    credentials.set(candidate.key, { ...candidate, value: candidate.value });
  }
  return { failed: false, credentials, entries: parsed.entries, filesRead: [defaultsFile] };
}

function isCredentialKey(key: string): key is CredentialKey {
  return (CREDENTIAL_KEYS as readonly string[]).includes(key);
}

/** [client] values are never shown: a password typed on the wrong line would be printed. */
function describeEntry(entry: ValuedEntry): string {
  if (entry.section === 'client') return `${entry.file}:${entry.line}: ${entry.key}`;
  return `${entry.file}:${entry.line}: ${entry.key} = ${JSON.stringify(entry.value)}`;
}

function validated<Value>(
  entry: ValuedEntry | undefined,
  validate: (entry: ValuedEntry, problems: string[]) => Value | undefined,
  problems: string[],
): Value | undefined {
  return entry === undefined ? undefined : validate(entry, problems);
}

function requireNonEmpty(entry: ValuedEntry, problems: string[]): string | undefined {
  if (entry.value.trim() !== '') return entry.value;
  problems.push(`${describeEntry(entry)} is empty`);
  return undefined;
}

function parsePort(entry: ValuedEntry, problems: string[]): number | undefined {
  const port = /^\d+$/.test(entry.value) ? Number(entry.value) : Number.NaN;
  if (Number.isInteger(port) && port >= 1 && port <= 65535) return port;
  problems.push(`${describeEntry(entry)} is not a port number: expected an integer from 1 to 65535`);
  return undefined;
}

function parseAbsolutePath(entry: ValuedEntry, problems: string[]): string | undefined {
  if (path.isAbsolute(entry.value)) return entry.value;
  problems.push(`${describeEntry(entry)} is not an absolute path: it must start with /`);
  return undefined;
}

/** Accepts plain decimal seconds (`2`, `0.5`, `.5`): no sign, exponent or unit. */
function parseSeconds(text: string): number | undefined {
  if (!/^(?:\d+(?:\.\d+)?|\.\d+)$/.test(text)) return undefined;
  const seconds = Number(text);
  return Number.isFinite(seconds) ? seconds : undefined;
}

function readDuration(section: Section, key: string, defaultSeconds: number, problems: string[]): number {
  const entry = section.get(key);
  const rule = DURATION_RULES.get(key);
  if (entry === undefined || rule === undefined) return defaultSeconds;
  const seconds = parseSeconds(entry.value);
  const inRange =
    seconds !== undefined &&
    (rule.allowZero || seconds > 0) &&
    (rule.maximum === undefined || seconds <= rule.maximum);
  if (inRange) return seconds;
  const lower = rule.allowZero ? 'a number of seconds (0 or more)' : 'a number of seconds greater than 0';
  const upper = rule.maximum === undefined ? '' : ` and at most ${rule.maximum}`;
  problems.push(`${describeEntry(entry)} is not valid: expected ${lower}${upper}, such as 2 or 0.5, without a unit`);
  return defaultSeconds;
}

function readAbsolutePath(section: Section, key: string, defaultPath: string, problems: string[]): string {
  const entry = section.get(key);
  if (entry === undefined) return defaultPath;
  return parseAbsolutePath(entry, problems) ?? defaultPath;
}

function readList(section: Section, key: string): string[] {
  const entry = section.get(key);
  if (entry === undefined) return [];
  return entry.value
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

function readChoice<T extends string>(section: Section, key: string, choices: readonly T[], defaultChoice: T, problems: string[]): T {
  const entry = section.get(key);
  if (entry === undefined) return defaultChoice;
  const choice = entry.value.trim().toLowerCase();
  const match = choices.find((candidate) => candidate === choice);
  if (match !== undefined) return match;
  problems.push(`${describeEntry(entry)} is not valid: expected ${choices.slice(0, -1).join(', ')} or ${choices.at(-1)}`);
  return defaultChoice;
}

/**
 * The files we read decide where a root process connects and which files it writes (log_file, run_dir),
 * so one that another user can change is refused, as MySQL ignores world-writable option files. A
 * password that others can read is already out: that is a warning, not a reason to fail the snapshot.
 */
function checkFiles(files: readonly string[], entries: readonly OptionEntry[], options: LoadOptions): { problems: string[]; warnings: string[] } {
  const stat = options.stat ?? ((file: string) => fs.statSync(file));
  const effectiveUid = options.effectiveUid ?? process.geteuid?.();
  const filesWithPassword = new Set(entries.filter((entry) => entry.key === 'password').map((entry) => entry.file));
  const problems: string[] = [];
  const warnings: string[] = [];
  for (const file of files) {
    let status: { mode: number; uid: number };
    try {
      status = stat(file);
    } catch {
      // It was readable a moment ago; a failing stat only means we cannot check it.
      continue;
    }
    const mode = (status.mode & 0o7777).toString(8).padStart(4, '0');
    if ((status.mode & 0o022) !== 0) {
      problems.push(`${file}: writable by group or others (mode ${mode}), so anyone could change what this root hook does: chmod 600 ${file}`);
    }
    if (effectiveUid !== undefined && status.uid !== 0 && status.uid !== effectiveUid) {
      problems.push(`${file}: owned by uid ${status.uid}, not by root, so that user could change what this root hook does: chown root ${file}`);
    }
    if (filesWithPassword.has(file) && (status.mode & 0o044) !== 0) {
      warnings.push(`${file} holds a password and is readable by group or others (mode ${mode}): chmod 600 ${file}`);
    }
  }
  return { problems, warnings };
}

function unique(items: readonly string[]): string[] {
  return [...new Set(items)];
}

/** Problems read "FILE:LINE: ..." or "FILE: ...": list them in the order of the file. */
function byFileAndLine(a: string, b: string): number {
  const position = (problem: string): [string, number] => {
    const match = /^(.*?):(\d+): /.exec(problem);
    return match === null ? [problem.split(': ')[0] ?? '', Number.MAX_SAFE_INTEGER] : [match[1] ?? '', Number(match[2])];
  };
  const [fileA, lineA] = position(a);
  const [fileB, lineB] = position(b);
  return fileA === fileB ? lineA - lineB : 0;
}
