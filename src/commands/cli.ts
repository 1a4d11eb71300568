/** The admin's command line: only maps arguments onto operations. */
import { Command, CommanderError } from 'commander';
import { configFilePath, loadSettings } from '../config/settings';
import { CLI_NAME } from '../agents/dispatch';
import { EXIT, HookError } from '../errors';
import { runOperation } from '../snapshot/hook';
import { VERSION } from '../version';

export async function runCli(args: readonly string[]): Promise<number> {
  let exitCode: number = EXIT.ok;
  const program = new Command(CLI_NAME)
    .description('Freeze/thaw hook that makes VM snapshots of MySQL and MariaDB consistent')
    .version(VERSION, '-V, --version')
    .option('-c, --config <file>', 'configuration file (default: $VMWARE_MYSQL_SNAPSHOT_CONFIG or /etc/vmware-mysql-snapshot.cnf)')
    .exitOverride()
    .configureOutput({ writeErr: (text) => process.stderr.write(text) })
    .addHelpText('after', `
Installed as /usr/sbin/pre-freeze-script and /usr/sbin/post-thaw-script (or under
/etc/vmware-tools/backupScripts.d/ and /etc/qemu/fsfreeze-hook.d/), the same program runs
the freeze and thaw that the hypervisor's guest agent asks for.

Examples:
  ${CLI_NAME} freeze && sleep 5 && ${CLI_NAME} thaw   # lock, hold 5 s, release
  ${CLI_NAME} status --json`);
  const config = (): string | undefined => program.opts<{ config?: string }>().config;

  program
    .command('freeze')
    .description('take the lock as pre-freeze-script does, and return once it is held')
    .addHelpText('after', `\nExample:\n  ${CLI_NAME} --config /etc/vmware-mysql-snapshot.cnf freeze`)
    .action(async () => {
      exitCode = await runOperation('freeze', { configPath: config() });
    });
  program
    .command('thaw')
    .description('release the lock as post-thaw-script thaw does; non-zero if it was not held throughout')
    .option('--failed', 'the snapshot failed (as post-thaw-script freezeFail): release, exit 0 once nothing is held')
    .addHelpText('after', `\nExample:\n  ${CLI_NAME} thaw`)
    .action(async (options: { failed?: boolean }) => {
      exitCode = await runOperation(options.failed ? 'freezeFail' : 'thaw', { configPath: config() });
    });
  program
    .command('status')
    .description('show whether a lock is held now, and how the last run ended')
    .option('--json', 'print JSON')
    .addHelpText('after', `\nExample:\n  ${CLI_NAME} status --json`)
    .action(async (options: { json?: boolean }) => {
      exitCode = await status(config(), options.json === true);
    });

  program
    .command('check')
    .description('Nagios/Icinga plugin: OK, WARNING (no successful freeze within --max-age), CRITICAL (a failed freeze or thaw, a lock held too long), UNKNOWN')
    .option('--max-age <age>', 'oldest acceptable successful freeze, e.g. 26h, 2d, 3600', '26h')
    .addHelpText('after', `\nExample (NRPE):\n  command[check_snapshot]=sudo ${CLI_NAME} check --max-age 26h`)
    .action(async (options: { maxAge: string }) => {
      exitCode = await check(config(), options.maxAge);
    });
  program
    .command('doctor')
    .description('check what a freeze needs (connection, privileges with the GRANT, binary log, replica, run_dir, log, hooks) without locking')
    .option('--json', 'print JSON')
    .addHelpText('after', `\nExample:\n  ${CLI_NAME} doctor`)
    .action(async (options: { json?: boolean }) => {
      exitCode = await doctor(config(), options.json === true);
    });

  program
    .command('lock-test')
    .description('test a snapshot window by hand: the real freeze, a hold watching who waits on the lock, the real thaw, and a report')
    .option('--hold <seconds>', 'how long to hold the lock, as a snapshot would take', (value: string) => (value.trim() === '' ? Number.NaN : Number(value)), 10)
    .addHelpText('after', `
Runs pre-freeze-script freeze and post-thaw-script thaw exactly as the guest agent does, and reports
the time to lock, the hold time, the coordinates, the sessions that waited and the longest wait.
Ctrl-C releases the lock at once. Exit code: freeze's if it failed, else thaw's (130 if interrupted).

Example:
  ${CLI_NAME} lock-test --hold 5`)
    .action(async (options: { hold: number }) => {
      const { runLockTest } = await import('./locktest');
      exitCode = await runLockTest({ configPath: config(), holdSeconds: options.hold, terminal: process.stdout.isTTY === true });
    });
  program
    .command('demo')
    .description('a real freeze, blocked writes and a thaw against a throwaway MariaDB in a temporary directory (needs the mariadb-server binaries)')
    .addHelpText('after', `\nExample:\n  ${CLI_NAME} demo`)
    .action(async () => {
      const { runDemo } = await import('./demo');
      exitCode = await runDemo({});
    });

  try {
    await program.parseAsync([...args], { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? EXIT.ok : EXIT.config;
    throw error;
  }
  if (args.length === 0) {
    process.stdout.write(program.helpInformation());
  }
  return exitCode;
}

async function status(configPath: string | undefined, json: boolean): Promise<number> {
  const { readStatus, formatStatus } = await import('./status');
  try {
    const settings = loadSettings(configFilePath(configPath, process.env), { needCredentials: false });
    const report = readStatus(settings);
    process.stdout.write(json ? `${JSON.stringify(report, null, 2)}\n` : formatStatus(report));
    return report.phase === 'unknown' ? EXIT.failure : EXIT.ok;
  } catch (error) {
    if (!(error instanceof HookError)) throw error;
    process.stderr.write(`status failed: ${error.message}\n`);
    return error.exitCode;
  }
}

async function doctor(configPath: string | undefined, json: boolean): Promise<number> {
  const { runDoctor, formatChecks } = await import('./doctor');
  try {
    const settings = loadSettings(configFilePath(configPath, process.env), { needCredentials: true });
    const checks = await runDoctor(settings);
    process.stdout.write(json ? `${JSON.stringify(checks, null, 2)}\n` : formatChecks(checks));
    return checks.some((check) => check.verdict === 'fail') ? EXIT.failure : EXIT.ok;
  } catch (error) {
    if (!(error instanceof HookError)) throw error;
    process.stderr.write(`doctor: ${error.message}\n`);
    return error.exitCode;
  }
}

async function check(configPath: string | undefined, maxAge: string): Promise<number> {
  const { evaluate, formatCheck, parseAge, CHECK_EXIT } = await import('./check');
  const maxAgeSeconds = parseAge(maxAge);
  if (maxAgeSeconds === undefined) {
    process.stdout.write(`VMWARE_MYSQL_SNAPSHOT UNKNOWN - --max-age ${maxAge} is not an age such as 26h, 2d or 3600\n`);
    return CHECK_EXIT.UNKNOWN;
  }
  try {
    const settings = loadSettings(configFilePath(configPath, process.env), { needCredentials: false });
    const { readStatus } = await import('./status');
    const { readHistory } = await import('../state/history');
    const history = readHistory(settings.historyFile);
    const result = evaluate(readStatus(settings), history.kind === 'ok' ? history.value : null, { maxAgeSeconds, maxLockTime: settings.maxLockTime, now: Date.now() });
    process.stdout.write(formatCheck(result));
    return CHECK_EXIT[result.state];
  } catch (error) {
    process.stdout.write(`VMWARE_MYSQL_SNAPSHOT UNKNOWN - ${(error as Error).message.split('\n').join(' ')}\n`);
    return CHECK_EXIT.UNKNOWN;
  }
}
