/**
 * After each operation: record it in the history, refresh the Prometheus textfile, and on a failure run
 * the admin's notify_command. Called by freeze before it returns (the filesystems are not frozen yet)
 * and by thaw after they thawed; never by the holder.
 */
import type { Settings } from '../config/settings';
import { lastRun, recordRun, type History, type ReadAhead, type RunRecord } from '../state/history';
import type { Logger } from '../log';
import { writeFileAtomic } from '../state/statedir';

/** `ahead`: the history as read earlier (see readAhead). */
export async function recordOutcome(settings: Settings, logger: Logger, run: RunRecord, ahead?: ReadAhead): Promise<void> {
  const recorded = recordRun(settings.historyFile, run, ahead);
  if ('movedAside' in recorded && recorded.movedAside !== undefined) {
    const { file, reason } = recorded.movedAside;
    logger.warn({ event: 'history.moved_aside', file: settings.historyFile, movedTo: file, reason }, `the history ${settings.historyFile} could not be read (${reason}): moved it to ${file} and started a new one`);
  }
  if ('error' in recorded) {
    logger.warn({ event: 'history.unwritable', file: settings.historyFile, error: recorded.error }, `cannot record the run in ${settings.historyFile}: ${recorded.error}`);
  } else if (settings.metricsFile !== null) {
    try {
      writeMetrics(settings.metricsFile, recorded.history);
    } catch (error) {
      logger.warn({ event: 'metrics.unwritable', file: settings.metricsFile, error: (error as Error).message }, `cannot write metrics_file ${settings.metricsFile}: ${(error as Error).message}`);
    }
  }
  if (settings.notifyCommand !== null && (run.result === 'failed' || run.result === 'inconsistent')) {
    await notify(settings, logger, run);
  }
}

/** The node_exporter textfile format; written to a temporary file and renamed, as node_exporter asks. */
export function formatMetrics(history: History): string {
  const success = lastRun(history, (run) => run.operation === 'freeze' && run.result === 'locked');
  const release = lastRun(history, (run) => run.operation !== 'freeze' && typeof run.holdMs === 'number');
  const metrics: Array<[string, 'gauge' | 'counter', string, number | undefined]> = [
    ['last_success_timestamp_seconds', 'gauge', 'Time of the last freeze that took the lock.', success === undefined ? undefined : success.at / 1000],
    ['last_time_to_lock_seconds', 'gauge', 'Time the last successful freeze took to find a quiet moment and lock.', success?.timeToLockMs === undefined ? undefined : success.timeToLockMs / 1000],
    ['last_hold_seconds', 'gauge', 'How long the lock was held in the last released run.', release?.holdMs === undefined || release.holdMs === null ? undefined : release.holdMs / 1000],
    ['freezes_total', 'counter', 'Freezes that tried to lock.', history.totals.freezes],
    ['attempts_total', 'counter', 'Lock attempts (a freeze retries after an abandoned attempt).', history.totals.attempts],
    ['failures_total', 'counter', 'Freezes or thaws that failed.', history.totals.failures],
    ['expired_holds_total', 'counter', 'Holds released by max_lock_time before thaw came.', history.totals.expired],
    ['inconsistent_total', 'counter', 'Snapshots that thaw reported as possibly inconsistent.', history.totals.inconsistent],
  ];
  const lines: string[] = [];
  for (const [name, type, help, value] of metrics) {
    if (value === undefined) continue;
    lines.push(`# HELP vmware_mysql_snapshot_${name} ${help}`, `# TYPE vmware_mysql_snapshot_${name} ${type}`, `vmware_mysql_snapshot_${name} ${value}`);
  }
  return `${lines.join('\n')}\n`;
}

export function writeMetrics(file: string, history: History): void {
  writeFileAtomic(file, formatMetrics(history), { mode: 0o644 });
}

/**
 * The admin's command from the root-only configuration, through /bin/sh (so that it may use pipes and
 * redirections), with the failure in VMS_* variables and nothing else of ours in its environment. Killed
 * with its process group after notify_timeout.
 */
async function notify(settings: Settings, logger: Logger, run: RunRecord): Promise<void> {
  const command = settings.notifyCommand ?? '';
  // Loaded on a failure only: node:child_process takes ~6 ms to load, and this module is loaded on thaw's
  // way to the release (hook.ts imports it).
  // (require, not import(): the program runs as a vm.Script, where import() has no loader; src/runtime/seamain.ts)
  const { spawn } = require('node:child_process') as typeof import('node:child_process');
  const os = require('node:os') as typeof import('node:os');
  const environment: NodeJS.ProcessEnv = {
    PATH: '/usr/sbin:/usr/bin:/sbin:/bin',
    VMS_OPERATION: run.operation,
    VMS_RESULT: run.result,
    VMS_CODE: run.code ?? '',
    VMS_MESSAGE: run.message ?? '',
    VMS_HOST: os.hostname(),
    VMS_TIME: new Date(run.at).toISOString(),
    VMS_LOG_FILE: settings.logFile,
    VMS_CONFIG: settings.file,
  };
  const started = Date.now();
  const outcome = await new Promise<string>((resolve) => {
    const child = spawn('/bin/sh', ['-c', command], { env: environment, stdio: 'ignore', detached: true, cwd: '/' });
    const timer = setTimeout(() => {
      try {
        process.kill(-(child.pid ?? 0), 'SIGKILL');
      } catch {
        // already gone
      }
      resolve(`killed after notify_timeout (${settings.notifyTimeout} s)`);
    }, settings.notifyTimeout * 1000);
    child.on('error', (error) => {
      clearTimeout(timer);
      resolve(`could not start: ${error.message}`);
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve(code === 0 ? 'ok' : `exit ${signal ?? code}`);
    });
  });
  const fields = { event: outcome === 'ok' ? 'notify.sent' : 'notify.failed', command, ms: Date.now() - started, outcome };
  if (outcome === 'ok') logger.info(fields, 'notify_command ran');
  else logger.warn(fields, `notify_command ${outcome}`);
}
