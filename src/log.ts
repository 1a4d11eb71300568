/**
 * JSON lines, written synchronously (an asynchronous logger loses lines when the process exits or the
 * filesystem freezes). Every line carries the operation, the pid and an `event` name (listed in the README).
 *
 * If the log file cannot be opened (unwritable, its filesystem full or missing), the operation still goes
 * ahead and logs to stderr: the snapshot matters more than its log, and the coordinates are also in
 * run_dir and on stdout.
 */
import fs = require('node:fs');
import pino from 'pino';
import { openOwnedFile, trustedOwners } from './safepath';

export type Logger = pino.Logger;

export function createLogger(logFile: string, operation: string): Logger {
  const base = { op: operation, pid: process.pid };
  const options: pino.LoggerOptions = {
    base,
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  };
  let fd = 2;
  let openError: Error | undefined;
  try {
    fd = openLogFile(logFile);
  } catch (error) {
    openError = error as Error;
  }
  const logger = pino(options, new LineWriter(fd, logFile, base));
  if (openError !== undefined) {
    logger.warn({ event: 'log.unwritable', logFile, error: openError.message }, `cannot open log file ${logFile}; logging to stderr`);
  }
  return logger;
}

const { O_WRONLY, O_APPEND, O_CREAT } = fs.constants;

/**
 * Opens the log for appending. We are root and the path may be in a shared directory: never through a
 * symlink, never anything but a regular file of root's (or ours) that nobody else can write (a FIFO would
 * block every write; another user's file would let her read our lines and forge others), and never under
 * a directory that another user could change.
 */
function openLogFile(logFile: string): number {
  return openOwnedFile(logFile, O_WRONLY | O_APPEND | O_CREAT, trustedOwners(), 0o640);
}

/**
 * A synchronous destination that never throws: one write(2) per line; if the file refuses a line (disk
 * full, I/O error), that line and the rest go to stderr.
 */
class LineWriter {
  constructor(
    private fd: number,
    private readonly logFile: string,
    private readonly base: Record<string, unknown>,
  ) {}

  write(line: string): void {
    try {
      fs.writeSync(this.fd, line);
    } catch (error) {
      if (this.fd === 2) return;
      this.fd = 2;
      const notice = { level: 'warn', time: new Date().toISOString(), ...this.base, event: 'log.unwritable', logFile: this.logFile, error: (error as Error).message, msg: `cannot write log file ${this.logFile}; logging to stderr` };
      this.write(`${JSON.stringify(notice)}\n`);
      this.write(line);
    }
  }
}
