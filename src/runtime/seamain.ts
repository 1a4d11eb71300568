/**
 * The single executable's main script: loads the program (src/main.ts, bundled and stored as an asset)
 * with the code cache the build made for it after running its warm-up (src/runtime/warmup.ts). Node's own
 * code cache for a main script is made without running it, and so holds only its top level: every
 * function would be compiled at its first call, ~1.7 ms of thaw's way to its signal. Built apart from
 * the program, so that this script is all that Node compiles and caches itself.
 *
 * A freeze first turns the agent's process into a small waiter and goes on in a worker, a second process
 * of this executable (src/snapshot/waiter.ts): the agent then waits for the end of a shell, not of a
 * runtime, while writers wait on the lock. The worker starts its lock holder first, before the program
 * loads: the holder's start-up is the longer path of every freeze (src/snapshot/spawnholder.ts).
 */
import path = require('node:path');
import { dispatch } from '../agents/dispatch';
import type { Start } from '../main';
import { APP_ASSETS, loadAsset } from './packages';
import { SpawnedHolder } from '../snapshot/spawnholder';
import { becomeWaiter, Waiter } from '../snapshot/waiter';

const waiter = Waiter.ofWorker();
const name = waiter?.name ?? path.basename(process.argv0);
const args = process.argv.slice(2);
const invocation = dispatch(name, args);
const freeze = invocation.kind === 'hook' && invocation.operation === 'freeze';
if (freeze && waiter === undefined) becomeWaiter(name, args);
const holder = freeze ? SpawnedHolder.spawn() : undefined;
const { exports: program, cacheAccepted, ms } = loadAsset(APP_ASSETS);
(program as { run: (start: Start) => void }).run({ load: { cacheAccepted, ms }, invocation, holder, waiter: freeze ? waiter : undefined });
