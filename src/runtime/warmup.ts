/**
 * Run once, at build time, by scripts/codecache.ts in a scratch directory: the code that runs while
 * writers wait on the lock (thaw up to its signal, what freeze does once the holder holds), so that it
 * is compiled when the build makes the program's code cache, and the executable runs it without
 * compiling a function. Nothing here talks to a server, signals a process or writes outside `scratch`.
 */
import fs = require('node:fs');
import path = require('node:path');
import { CONFIG_ENV, configFilePath, loadSettings } from '../config/settings';
import { describeCoordinates, type Coordinates } from '../server/coordinates';
import { HOLDER_NAME } from '../agents/dispatch';
import { probeWaitsForFreeze, ThawWatch } from '../snapshot/fsthaw';
import { readAhead, recordRun } from '../state/history';
import { identify } from '../state/processes';
import type { HolderState } from '../snapshot/holderstate';
import { ensureRunDir, PROGRESS_FILE, removeFile, STATE_FILE, writeJson } from '../state/statedir';
import { releaseEarly } from '../snapshot/thaw';

export async function warmUp(scratch: string): Promise<void> {
  const runDir = path.join(scratch, 'run');
  const config = path.join(scratch, 'warmup.cnf');
  fs.writeFileSync(
    config,
    [
      '[client]',
      'user = snapshot',
      'password = "p#a;s\'s=o rd"  # a comment',
      `socket = ${path.join(scratch, 'mysqld.sock')}`,
      '[snapshot]',
      `run_dir = ${runDir}`,
      `log_file = ${path.join(scratch, 'hook.log')}`,
      `history_file = ${path.join(scratch, 'history.json')}`,
      'lock_wait_timeout = 1',
      'max_lock_time = 30.5',
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  const settings = loadSettings(configFilePath(undefined, { [CONFIG_ENV]: config }), { needCredentials: false });

  // Freeze, once locked: the progress file goes, the history gets its run.
  ensureRunDir(runDir);
  const coordinates: Coordinates = { binlog: { file: 'binlog.000001', position: 4 }, gtid: '0-1-1', gtidSlavePos: null };
  const ahead = readAhead(settings.historyFile);
  writeJson(runDir, PROGRESS_FILE, { phase: 'locking', attempts: 1, blockers: [] });
  removeFile(runDir, PROGRESS_FILE);
  recordRun(settings.historyFile, { operation: 'freeze', at: Date.now(), result: 'locked', timeToLockMs: 1, attempts: 1, lockMode: 'ftwrl', coordinates, blockers: [] }, ahead);
  describeCoordinates(coordinates);

  // Thaw, up to its signal: a state naming a holder of ours that is not running (this process is no
  // holder: its name differs), so nothing is signalled.
  const self = identify(process.pid);
  if (self === null) throw new Error('warm-up: cannot read /proc/self');
  const state: HolderState = {
    version: 1,
    phase: 'held',
    holder: { ...self, name: HOLDER_NAME, exe: fs.realpathSync(process.execPath) },
    freezePid: process.pid,
    connection: null,
    startedAt: Date.now(),
    lockedAt: Date.now(),
    maxLockTime: settings.maxLockTime,
    coordinates,
  };
  writeJson(runDir, STATE_FILE, state);
  if ((await releaseEarly(settings)) !== 'none') throw new Error('warm-up: releaseEarly signalled a process');

  // The holder, once freeze has exited: probes for the filesystem thaw, and one look at our threads.
  const watch = new ThawWatch(scratch, { thawed: () => undefined, gaveUp: (why) => { throw new Error(`warm-up: ${why}`); } }).start();
  await new Promise((resolve) => setTimeout(resolve, 100));
  watch.stop();
  probeWaitsForFreeze();
}
