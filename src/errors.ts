/**
 * The one error type of the program. `code` is stable (tests and the log use it); the message names what
 * went wrong and the fix. The entry point logs it once and maps it to the exit code.
 */
export type ErrorCode =
  | 'CONFIG' // the configuration file is missing or wrong
  | 'USAGE' // bad command line
  | 'BUSY' // another freeze runs, or a lock is already held
  | 'SERVER_DOWN' // the server is not running (and if_server_down = fail)
  | 'ACCESS' // the server refused our credentials
  | 'PRIVILEGE' // a privilege is missing
  | 'FREEZE_TIMEOUT' // no lock within freeze_timeout
  | 'ABORTED' // freeze was told to stop (SIGTERM / SIGINT)
  | 'INCONSISTENT' // the lock was not held for the whole snapshot
  | 'UNSAFE' // the state directory or a file in it is not safe to use
  | 'SERVER' // any other server error
  | 'INTERNAL';

/** Exit codes, documented in the README. The agents only look at zero / non-zero. */
export const EXIT = {
  ok: 0,
  failure: 1,
  config: 2,
  inconsistent: 3,
} as const;

export class HookError extends Error {
  readonly code: ErrorCode;
  readonly exitCode: number;

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; exitCode?: number } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'HookError';
    this.code = code;
    this.exitCode = options.exitCode ?? exitCodeFor(code);
  }
}

function exitCodeFor(code: ErrorCode): number {
  switch (code) {
    case 'CONFIG':
    case 'USAGE':
      return EXIT.config;
    case 'INCONSISTENT':
      return EXIT.inconsistent;
    default:
      return EXIT.failure;
  }
}
