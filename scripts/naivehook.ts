/**
 * The naive hook that `npm run bench` measures ours against: bash and the mariadb client holding FLUSH
 * TABLES WITH READ LOCK in the background, released by writing to a FIFO, as QEMU's
 * mysql-flush.sh.sample and most hand-written hooks do. It waits for no quiet moment and bounds nothing:
 * it is the floor for how fast a release can be, not a hook to install.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface NaiveHook {
  /** bash scripts, each run with no arguments */
  freeze: string;
  thaw: string;
}

/**
 * Writes the two scripts, the client's option file (the password is in no argv) and the FIFO's directory.
 * `thenRuntime`: an executable that thaw execs (with --version) right after its FIFO write, to measure what a
 * runtime starting beside the release costs the writers, as ours does (`npm run bench -- --naive-thaw-runtime`).
 */
export function writeNaiveHook(directory: string, client: string, server: { socket: string; user: string; password: string }, thenRuntime?: string): NaiveHook {
  fs.mkdirSync(directory, { recursive: true, mode: 0o700 });
  const options = path.join(directory, 'client.cnf');
  fs.writeFileSync(options, `[client]\nsocket=${server.socket}\nuser=${server.user}\npassword="${server.password.replace(/["\\]/g, '\\$&')}"\n`, { mode: 0o600 });
  const fifo = path.join(directory, 'fifo');
  const out = path.join(directory, 'out');
  const freeze = path.join(directory, 'naive-freeze');
  const thaw = path.join(directory, 'naive-thaw');
  fs.writeFileSync(
    freeze,
    `#!/bin/bash
set -eu
rm -f '${fifo}' '${out}'
mkfifo -m 600 '${fifo}'
# The client holds the FIFO open for writing itself (<>), so it never reads EOF: thaw ends it with quit.
( exec 3<>'${fifo}'; exec '${client}' --defaults-file='${options}' --batch --skip-column-names --unbuffered <&3 >'${out}' 2>&1 ) &
echo "FLUSH TABLES WITH READ LOCK; SELECT 'naive-locked';" > '${fifo}'
until grep -q naive-locked '${out}' 2>/dev/null; do sleep 0.005; done
`,
    { mode: 0o700 },
  );
  const runtime = thenRuntime === undefined ? '' : `exec '${thenRuntime}' --version >/dev/null\n`;
  fs.writeFileSync(thaw, `#!/bin/bash\nprintf 'UNLOCK TABLES;\\nquit\\n' > '${fifo}'\n${runtime}`, { mode: 0o700 });
  return { freeze, thaw };
}
