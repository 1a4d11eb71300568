/**
 * `vmware-mysql-snapshot doctor`: checks what a freeze needs, for the configured lock mode, without
 * taking any lock: the connection, privileges (with the GRANT that adds the missing ones), the binary
 * log, the connections the account may open, replica state, whether the holders of a lock can be named, run_dir, the log file,
 * coordinates_file, the installed hooks, and whether qemu-ga runs ours (and stops a snapshot whose freeze failed).
 */
import fs = require('node:fs');
import path = require('node:path');
import type { RowDataPacket } from 'mysql2/promise';
import type { Settings } from '../config/settings';
import { firstSupported, parseReplicaStatus, replicaStatusStatements } from '../server/coordinates';
import { probeOnce, thawProbeFor } from '../snapshot/fsthaw';
import { chooseMode, unsupportedReason, type ServerTraits } from '../server/lockmodes';
import { describeGaleraNode, galeraRefusal, gcacheCoverSeconds, isDonorNow, lockEffect, nameValues, readGaleraNode, type GaleraNode } from '../server/galera';
import { type LockMode } from '../config/settings';
import { lockVisibility } from '../server/blockers';
import { globalPrivileges, missingPrivileges } from '../server/privileges';
import { CONNECTIONS_NEEDED, grantStatement, openSession, type Session } from '../server/session';
import { connectionLimit, limitTooLow } from '../server/connectionlimit';
import { packageLoads } from '../runtime/packages';
import { checkParentDirectories, checkRunDir, runDirExists } from '../state/statedir';
import { agentChecks } from './agentbudget';
import { qemuGaCheck } from './qemuga';

export type Verdict = 'ok' | 'warn' | 'fail';

export interface Check {
  name: string;
  verdict: Verdict;
  detail: string;
  /** what to do about a warn or fail */
  fix?: string;
}

const HOOK_PLACES = [
  '/usr/sbin/pre-freeze-script',
  '/usr/sbin/post-thaw-script',
  '/etc/vmware-tools/backupScripts.d',
  '/etc/qemu/fsfreeze-hook.d',
  '/etc/qemu-ga/fsfreeze-hook.d',
];

export async function runDoctor(settings: Settings): Promise<Check[]> {
  const checks: Check[] = [{ name: 'configuration', verdict: settings.warnings.length > 0 ? 'warn' : 'ok', detail: settings.file, ...(settings.warnings.length > 0 ? { fix: settings.warnings.join('; ') } : {}) }];
  let session: Session | undefined;
  try {
    session = await openSession(settings.client, { connectTimeoutMs: 5000 });
    checks.push({ name: 'connection', verdict: 'ok', detail: `${session.server.version} as ${session.server.account}` });
  } catch (error) {
    const down = (error as { code?: string }).code === 'SERVER_DOWN';
    checks.push({
      name: 'connection',
      verdict: down && settings.ifServerDown === 'skip' ? 'warn' : 'fail',
      detail: (error as Error).message,
      ...(down ? { fix: `start the server; with if_server_down = ${settings.ifServerDown} a freeze now ${settings.ifServerDown === 'skip' ? 'skips' : 'fails'}` } : {}),
    });
  }
  if (session !== undefined) {
    try {
      checks.push(...(await serverChecks(settings, session)), releaseCheck(settings, session));
    } finally {
      await session.close();
    }
  }
  checks.push(runDirCheck(settings), logFileCheck(settings));
  if (settings.coordinatesFile !== null) checks.push(coordinatesFileCheck(settings.coordinatesFile));
  checks.push(...writtenFileChecks(settings));
  const agents = agentChecks(settings);
  const hooks = hooksCheck();
  // The other agents' scripts are not links to us: their checks below say what is installed.
  checks.push(agents.length > 0 && hooks.detail === 'none installed' ? { name: 'hooks', verdict: 'ok', detail: 'no VMware or QEMU hook; other agents below' } : hooks, ...agents);
  const qemu = qemuGaCheck({ root: '/', executable: fs.realpathSync(process.execPath) });
  if (qemu !== undefined) checks.push({ name: 'qemu-ga', ...qemu });
  const executable = executableCheck();
  if (executable !== undefined) checks.push(executable);
  return checks;
}

/** Whether the lock will end at the filesystem thaw (release_at = filesystem_thaw) or at thaw. */
function releaseCheck(settings: Settings, session: Session): Check {
  if (settings.releaseAt === 'post_thaw') return { name: 'release', verdict: 'ok', detail: 'at thaw (release_at = post_thaw)' };
  const probe = thawProbeFor(session.server.datadir);
  const problem = 'directory' in probe ? probeOnce(probe.directory) : probe.why;
  if (problem === undefined) return { name: 'release', verdict: 'ok', detail: `when the filesystem of ${session.server.datadir} thaws after the snapshot` };
  return {
    name: 'release',
    verdict: 'warn',
    detail: `at thaw, not at the filesystem thaw: ${problem}`,
    fix: `run the hook on the server's own machine, or set release_at = post_thaw in ${settings.file} to make that the rule`,
  };
}

async function serverChecks(settings: Settings, session: Session): Promise<Check[]> {
  const checks: Check[] = [];
  const [rows] = await session.connection.query<RowDataPacket[]>("SHOW GLOBAL VARIABLES WHERE Variable_name IN ('have_backup_locks', 'wsrep_on')");
  const variables = nameValues(rows);
  const galera = variables.get('wsrep_on')?.toUpperCase() === 'ON' ? await readGaleraNode(session) : undefined;
  const traits: ServerTraits = { version: session.server.version, isMariaDB: session.server.isMariaDB, backupLocks: variables.get('have_backup_locks') === 'YES', galera: galera !== undefined };
  let mode: LockMode = 'ftwrl';
  if (settings.lockMode === 'auto') {
    const choice = chooseMode(traits);
    mode = choice.mode;
    checks.push({ name: 'lock mode', verdict: 'ok', detail: `auto: ${choice.mode} (${choice.reason})` });
  } else {
    const unsupported = unsupportedReason(settings.lockMode, traits);
    mode = settings.lockMode;
    checks.push(
      unsupported === undefined
        ? { name: 'lock mode', verdict: 'ok', detail: settings.lockMode }
        : { name: 'lock mode', verdict: 'fail', detail: `${settings.lockMode}: ${unsupported}`, fix: `set lock_mode = auto or ftwrl in ${settings.file}` },
    );
  }
  const needs = { mode, killQueries: settings.killLongQueries !== 'off', stopApplier: settings.replicaSqlThread === 'stop' };
  try {
    const granted = await globalPrivileges(session);
    const missing = missingPrivileges(granted, session.server, needs);
    checks.push(
      missing.length === 0
        ? { name: 'privileges', verdict: 'ok', detail: `all that ${mode} needs` }
        : { name: 'privileges', verdict: 'fail', detail: `missing ${missing.join(', ')}`, fix: grantStatement(missing, session.server.account) },
    );
  } catch (error) {
    checks.push({ name: 'privileges', verdict: 'warn', detail: `cannot read SHOW GRANTS: ${(error as Error).message}` });
  }
  checks.push(await connectionsCheck(session));
  checks.push(
    session.server.logBin
      ? { name: 'binary log', verdict: 'ok', detail: 'on: the coordinates can seed a replica' }
      : { name: 'binary log', verdict: 'warn', detail: 'off: snapshots record no binary-log position', fix: 'enable log_bin to seed replicas from snapshots' },
  );
  checks.push(await replicaCheck(session, settings));
  checks.push(await lockHoldersCheck(session));
  if (galera !== undefined) checks.push(...galeraChecks(galera, mode));
  return checks;
}

/** A day: how long after its snapshot an image is still expected to join its cluster by IST. */
const IST_HORIZON_SECONDS = 24 * 3600;

/** The node, its state and what the lock does to it; whether a restored image can join by IST; a state transfer it donates now. */
export function galeraChecks(node: GaleraNode, mode: LockMode): Check[] {
  const refusal = galeraRefusal(node);
  const checks: Check[] = [
    refusal === undefined
      ? { name: 'galera', verdict: 'ok', detail: `${describeGaleraNode(node)}; ${lockEffect(node, mode)}` }
      : { name: 'galera', verdict: 'fail', detail: `${describeGaleraNode(node)}: a freeze is refused`, fix: refusal },
  ];
  if (isDonorNow(node)) {
    checks.push({
      name: 'galera donor',
      verdict: 'warn',
      detail: `the node is Donor/Desynced without wsrep_desync (wsrep_desync_count = ${node.desyncCount}): it donates a state transfer (SST method ${node.sstMethod ?? '?'}) or another backup desynced it`,
      fix: 'snapshot after the transfer ends, or another node; a lock now may wait behind it',
    });
  }
  checks.push(gcacheCheck(node));
  return checks;
}

function gcacheCheck(node: GaleraNode): Check {
  const size = node.gcacheBytes === null ? 'unknown' : `${(node.gcacheBytes / 1024 ** 2).toFixed(0)} MiB`;
  const held = node.cachedDownto === null || node.cachedDownto <= 0 ? '' : `; it holds write-sets ${node.cachedDownto} to ${node.position.seqno}`;
  const cover = gcacheCoverSeconds(node);
  if (cover === undefined) {
    return { name: 'galera gcache', verdict: 'ok', detail: `gcache.size ${size}${held}; no write-sets yet to tell how long it lasts` };
  }
  const rate = node.writesetBytes / node.uptimeSeconds;
  const detail = `gcache.size ${size} holds about ${hours(cover)} of write-sets at the rate since start (${(rate / 1024).toFixed(1)} KiB/s over ${hours(node.uptimeSeconds)})${held}`;
  if (cover >= IST_HORIZON_SECONDS) return { name: 'galera gcache', verdict: 'ok', detail: `${detail}: an image restored within a day of its snapshot joins by IST` };
  const needed = Math.ceil((rate * IST_HORIZON_SECONDS) / 1024 ** 2);
  return {
    name: 'galera gcache',
    verdict: 'warn',
    detail: `${detail}: an image restored more than ${hours(cover)} after its snapshot cannot join by IST, only by a full SST`,
    fix: `raise gcache.size in wsrep_provider_options to about ${needed}M on every node (a day of write-sets) if restored images should join by IST`,
  };
}

function hours(seconds: number): string {
  return seconds < 3600 ? `${(seconds / 60).toFixed(0)} min` : `${(seconds / 3600).toFixed(1)} h`;
}

/** Whether a freeze whose lock waits can name the sessions holding it up (src/server/blockers.ts). */
async function lockHoldersCheck(session: Session): Promise<Check> {
  try {
    const visibility = await lockVisibility(session);
    if (visibility.source !== null) return { name: 'lock holders', verdict: 'ok', detail: `named when a lock waits, from ${visibility.detail}` };
    return { name: 'lock holders', verdict: 'warn', detail: `${visibility.detail}: a freeze whose lock waits cannot say who holds it up`, ...(visibility.fix === undefined ? {} : { fix: visibility.fix }) };
  } catch (error) {
    return { name: 'lock holders', verdict: 'warn', detail: `cannot tell whether lock holders can be named: ${(error as Error).message}` };
  }
}

/** A freeze opens two connections of the account at once: freeze's session and the lock holder's. */
async function connectionsCheck(session: Session): Promise<Check> {
  const account = session.server.account;
  try {
    const { limit, source } = await connectionLimit(session);
    const needs = `the hook needs ${CONNECTIONS_NEEDED} connections of ${account} at once (freeze's and the lock holder's)`;
    if (!limitTooLow(limit)) return { name: 'connections', verdict: 'ok', detail: `${needs}; ${limit === 0 ? 'no limit' : `${source} allows ${limit}`}` };
    const at = account.lastIndexOf('@');
    const quoted = at < 0 ? account : `'${account.slice(0, at)}'@'${account.slice(at + 1)}'`;
    return {
      name: 'connections',
      verdict: 'fail',
      detail: `${source} is ${limit}: ${needs}`,
      fix: source.startsWith('the account') ? `ALTER USER ${quoted} WITH MAX_USER_CONNECTIONS 0; (or at least ${CONNECTIONS_NEEDED + 1})` : `SET GLOBAL max_user_connections = 0; (and in my.cnf), or give ${account} its own MAX_USER_CONNECTIONS of at least ${CONNECTIONS_NEEDED + 1}`,
    };
  } catch (error) {
    return { name: 'connections', verdict: 'warn', detail: `cannot read max_user_connections (${(error as Error).message}); the hook needs ${CONNECTIONS_NEEDED} connections of ${account} at once` };
  }
}

async function replicaCheck(session: Session, settings: Settings): Promise<Check> {
  try {
    const { rows } = await firstSupported(session, replicaStatusStatements(session.server.isMariaDB));
    const channels = parseReplicaStatus(rows);
    if (channels.length === 0) return { name: 'replica', verdict: 'ok', detail: 'not a replica' };
    const described = channels.map((channel) => `${channel.channel || 'default'} from ${channel.sourceHost} (SQL ${channel.sqlRunning ? 'running' : 'stopped'})`);
    return { name: 'replica', verdict: 'ok', detail: `${described.join(', ')}; replica_sql_thread = ${settings.replicaSqlThread}` };
  } catch (error) {
    const privilege = session.server.isMariaDB ? 'REPLICA MONITOR' : 'REPLICATION CLIENT';
    return { name: 'replica', verdict: 'warn', detail: `cannot read the replica status (${(error as Error).message})`, fix: grantStatement([privilege], session.server.account) };
  }
}

function runDirCheck(settings: Settings): Check {
  if (!runDirExists(settings.runDir)) {
    const parent = path.dirname(settings.runDir);
    return fs.existsSync(parent)
      ? { name: 'run_dir', verdict: 'ok', detail: `${settings.runDir} (created with mode 700 at the first freeze)` }
      : { name: 'run_dir', verdict: 'ok', detail: `${settings.runDir} (created with its parent ${parent} at the first freeze)` };
  }
  try {
    checkRunDir(settings.runDir);
    return { name: 'run_dir', verdict: 'ok', detail: settings.runDir };
  } catch (error) {
    return { name: 'run_dir', verdict: 'fail', detail: (error as Error).message };
  }
}

/** history_file and metrics_file: their directories must be ours alone (as every file root writes). */
function writtenFileChecks(settings: Settings): Check[] {
  const files: Array<[string, string | null]> = [['history_file', settings.historyFile], ['metrics_file', settings.metricsFile]];
  return files.flatMap(([name, file]): Check[] => {
    if (file === null) return [];
    if (!fs.existsSync(path.dirname(file))) return [{ name, verdict: 'ok', detail: `${file} (its directory is created at the first freeze)` }];
    try {
      checkParentDirectories(file, name);
      return [{ name, verdict: 'ok', detail: file }];
    } catch (error) {
      return [{ name, verdict: 'fail', detail: (error as Error).message }];
    }
  });
}

function logFileCheck(settings: Settings): Check {
  const target = fs.existsSync(settings.logFile) ? settings.logFile : path.dirname(settings.logFile);
  try {
    checkParentDirectories(settings.logFile, 'log_file');
    fs.accessSync(target, fs.constants.W_OK);
    const stat = fs.lstatSync(settings.logFile, { throwIfNoEntry: false });
    if (stat !== undefined && !stat.isFile()) throw new Error(`${settings.logFile} is not a regular file`);
    return { name: 'log file', verdict: 'ok', detail: settings.logFile };
  } catch (error) {
    return { name: 'log file', verdict: 'warn', detail: `${(error as Error).message}: freeze goes ahead but logs to stderr only`, fix: `make ${settings.logFile} writable by root` };
  }
}

function coordinatesFileCheck(file: string): Check {
  try {
    checkParentDirectories(file, 'coordinates_file');
    fs.accessSync(path.dirname(file), fs.constants.W_OK);
    return { name: 'coordinates_file', verdict: 'ok', detail: file };
  } catch (error) {
    return { name: 'coordinates_file', verdict: 'fail', detail: `${(error as Error).message}: a freeze would fail`, fix: `create ${path.dirname(file)}` };
  }
}

function hooksCheck(): Check {
  const found: string[] = [];
  for (const place of HOOK_PLACES) {
    const stat = fs.lstatSync(place, { throwIfNoEntry: false });
    if (stat === undefined) continue;
    if (!stat.isDirectory()) {
      found.push(describeHook(place));
      continue;
    }
    for (const entry of fs.readdirSync(place).sort()) found.push(describeHook(path.join(place, entry)));
  }
  const ours = found.filter((line) => line.endsWith('(ours)'));
  if (ours.length === 0) {
    return { name: 'hooks', verdict: 'warn', detail: found.length === 0 ? 'none installed' : `only others: ${found.join('; ')}`, fix: 'sudo ./install.sh (see --help for the layouts)' };
  }
  return { name: 'hooks', verdict: 'ok', detail: found.join('; ') };
}

/**
 * The single executable loads the program and its libraries with the code caches it was built with; V8
 * refuses a cache made by another runtime build, which only costs start-up time. Nothing to report
 * outside it.
 */
function executableCheck(): Check | undefined {
  const loads = packageLoads();
  if (loads.length === 0) return undefined;
  const detail = loads.map((load) => `${load.name} ${load.ms} ms${load.cacheAccepted ? '' : ' (compiled: code cache refused)'}`).join(', ');
  return loads.every((load) => load.cacheAccepted)
    ? { name: 'executable', verdict: 'ok', detail: `program and libraries loaded with their code caches: ${detail}` }
    : { name: 'executable', verdict: 'warn', detail, fix: 'rebuild the executable (npm run build): its code caches were not made by its own runtime, so every start compiles the program and the libraries' };
}

function describeHook(file: string): string {
  try {
    const real = fs.realpathSync(file);
    return real === fs.realpathSync(process.execPath) ? `${file} (ours)` : `${file} -> ${real}`;
  } catch {
    return `${file} (dangling)`;
  }
}

export function formatChecks(checks: readonly Check[]): string {
  const width = Math.max(...checks.map((check) => check.name.length));
  const lines = checks.map((check) => {
    const mark = check.verdict === 'ok' ? 'ok  ' : check.verdict === 'warn' ? 'WARN' : 'FAIL';
    const fix = check.fix === undefined ? '' : `\n${' '.repeat(width + 8)}fix: ${check.fix}`;
    return `${mark}  ${check.name.padEnd(width)}  ${check.detail}${fix}`;
  });
  const failed = checks.filter((check) => check.verdict === 'fail').length;
  lines.push(failed === 0 ? 'a freeze would work' : `${failed} problem(s) would make a freeze fail`);
  return `${lines.join('\n')}\n`;
}
