/**
 * `npm run demo` (after `npm run build`): runs the built executable's own `demo` command (src/commands/demo.ts),
 * so that the demo is exactly what an admin gets from `vmware-mysql-snapshot demo` on a host without Node.
 */
import { spawn } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';

/** This file compiles to build/scripts/demo.js; the executable is built to dist/ at the root. */
const executable = path.resolve(__dirname, '..', '..', 'dist', 'vmware-mysql-snapshot');

const child = spawn(executable, ['demo'], { stdio: 'inherit' });
// A Ctrl-C at the terminal reaches the demo as well; a signal sent to this process alone is passed on.
// Either way the demo cleans up (releasing the lock, removing its server) before it exits: wait for it.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  });
}
child.once('error', (error) => {
  process.stderr.write(`cannot run ${executable} (${error.message}): npm run build first\n`);
  process.exit(1);
});
child.once('exit', (code, signal) => process.exit(code ?? (signal === null ? 1 : 128 + os.constants.signals[signal])));
