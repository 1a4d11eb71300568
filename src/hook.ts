/**
 * One hook operation (freeze, thaw, freezeFail) from configuration to exit code: the single place that
 * logs a failure and maps it to the exit code. Nobody reads our stdout under VMware Tools; the log is
 * the record. Admins running it by hand get one line on stdout or stderr.
 */
import { configFilePath, DEFAULTS, loadSettings, type Settings } from './config';
import type { Operation } from './dispatch';
import { EXIT, HookError } from './errors';
import { describeCoordinates } from './coordinates';
import { createLogger, type Logger } from './log';

export interface RunOptions {
  configPath?: string;
  environment?: NodeJS.ProcessEnv;
  /** scriptArg from the agent, logged */
  scriptArg?: string;
}

export async function runOperation(operation: Operation, options: RunOptions = {}): Promise<number> {
  const environment = options.environment ?? process.env;
  let settings: Settings;
  try {
    settings = loadSettings(configFilePath(options.configPath, environment), { needCredentials: operation === 'freeze' });
  } catch (error) {
    // Without a valid configuration we do not know its log_file: record the failure in the default one.
    return report(createLogger(DEFAULTS.logFile, operation), operation, error);
  }
  const logger = createLogger(settings.logFile, operation);
  for (const warning of settings.warnings) {
    logger.warn({ event: 'config.warning' }, warning);
    process.stderr.write(`warning: ${warning}\n`);
  }
  try {
    return operation === 'freeze'
      ? await runFreeze(settings, logger, options.scriptArg)
      : await runThaw(settings, logger, operation);
  } catch (error) {
    return report(logger, operation, error);
  }
}

async function runFreeze(settings: Settings, logger: Logger, scriptArg: string | undefined): Promise<number> {
  logger.info({ event: 'freeze.start', scriptArg, config: settings.file }, 'freeze requested');
  const { freeze } = await import('./freeze');
  const abort = new AbortController();
  const onSignal = (signal: NodeJS.Signals): void => {
    logger.warn({ event: 'freeze.aborted', signal }, `received ${signal}: releasing everything`);
    abort.abort();
  };
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(signal, onSignal);
  const result = await freeze(settings, logger, abort.signal);
  if (result.outcome === 'skipped') {
    process.stdout.write('the server is not running: nothing to quiesce (if_server_down = skip)\n');
    return EXIT.ok;
  }
  const where = describeCoordinates(result.coordinates);
  logger.info(
    { event: 'lock.acquired', lockMode: result.lock?.mode, coordinates: result.coordinates, attempts: result.attempts, totalMs: result.totalMs, lockMs: result.lockMs, holderPid: result.holderPid, maxLockTime: settings.maxLockTime },
    `locked (${result.lock?.mode}): ${where} (${result.totalMs} ms, ${result.attempts} attempt(s)); held until thaw or for at most ${settings.maxLockTime} s`,
  );
  if (settings.coordinatesFile !== null && result.coordinates !== undefined && result.lock !== undefined) {
    // Before the acknowledgement: if this fails, freeze fails and the unacknowledged holder releases.
    const { coordinatesRecord, writeCoordinatesFile } = await import('./coordinatesfile');
    try {
      writeCoordinatesFile(settings.coordinatesFile, coordinatesRecord({ ...result.lock, lockMode: result.lock.mode, coordinates: result.coordinates }));
    } catch (error) {
      throw new HookError('CONFIG', `cannot write coordinates_file ${settings.coordinatesFile}: ${(error as Error).message}`, { exitCode: EXIT.failure, cause: error });
    }
  }
  await result.acknowledge();
  process.stdout.write(`locked: ${where} after ${result.totalMs} ms\n`);
  return EXIT.ok;
}

async function runThaw(settings: Settings, logger: Logger, operation: 'thaw' | 'freezeFail'): Promise<number> {
  logger.info({ event: 'thaw.start', operation }, `${operation} requested`);
  const { thaw } = await import('./thaw');
  const result = await thaw(settings, logger, operation);
  if (result.outcome === 'inconsistent') {
    if (operation === 'freezeFail') {
      process.stdout.write(`nothing held any more (${result.problem})\n`);
      return EXIT.ok;
    }
    process.stderr.write(`${operation}: ${result.problem}: the snapshot may not be consistent\n`);
    return EXIT.inconsistent;
  }
  process.stdout.write(result.outcome === 'released' ? `released after ${result.heldMs} ms\n` : 'nothing was held\n');
  return EXIT.ok;
}

function report(logger: Logger, operation: string, error: unknown): number {
  const hookError =
    error instanceof HookError ? error : new HookError('INTERNAL', `unexpected error: ${(error as Error)?.message ?? String(error)}`, { cause: error });
  const event = operation === 'freeze' ? 'freeze.failed' : 'thaw.failed';
  // The stack goes to the log for us, never to the admin's terminal.
  const stack = hookError.code === 'INTERNAL' ? (error as Error)?.stack : undefined;
  logger.error({ event, code: hookError.code, error: hookError.message, stack }, `${operation} failed: ${hookError.message}`);
  process.stderr.write(`${operation} failed: ${hookError.message}\n`);
  return hookError.exitCode;
}
