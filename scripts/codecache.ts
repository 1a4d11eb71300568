/**
 * Run by the pinned runtime while the executable is built (scripts/build.ts): compiles one bundle
 * exactly as the executable will, runs it, and writes V8's code cache for it. V8 puts in a cache only
 * the functions compiled by then, so what runs here is what the executable finds compiled:
 * - a library (src/runtime/packages.ts): its loading; mysql2 also a session like ours (scripts/warmmysql2.ts),
 *   proper-lockfile also freeze's lock taken and released (src/state/freezelock.ts);
 * - the program (`app`, src/runtime/seamain.ts): its warm-up (src/runtime/warmup.ts), the code that runs while writers
 *   wait on the lock, in a scratch directory.
 *   node codecache.js <package|app> <bundle> <cache file>
 */
import fs = require('node:fs');
import os = require('node:os');
import path = require('node:path');
import vm = require('node:vm');
import type * as Mysql2Promise from 'mysql2/promise';
import type * as ProperLockfile from 'proper-lockfile';
import { freezeLockCalls } from '../src/state/freezelock';
import { APP_ASSETS, assetNames, PACKAGES, runScript, wrapScript, type PackageName } from '../src/runtime/packages';
import { warmUpMysql2 } from './warmmysql2';

async function main(): Promise<void> {
  const [name, bundle, cacheFile] = process.argv.slice(2);
  if ((name !== 'app' && !PACKAGES.includes(name as PackageName)) || bundle === undefined || cacheFile === undefined) {
    process.stderr.write('usage: codecache.js <package|app> <bundle> <cache file>\n');
    process.exit(2);
  }
  const source = fs.readFileSync(bundle, 'utf8');
  // Wrapped and named exactly as src/runtime/packages.ts loadAsset() does, or V8 would refuse the cache.
  const { code, filename } = wrapScript((name === 'app' ? APP_ASSETS : assetNames(name as PackageName)).source, source);
  const script = new vm.Script(code, { filename });
  const exports = runScript(script, require);
  if (name === 'app') {
    const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'vms-warmup-'));
    try {
      await (exports as { warmUp: (scratch: string) => Promise<void> }).warmUp(scratch);
    } finally {
      fs.rmSync(scratch, { recursive: true, force: true });
    }
  } else if (name === 'mysql2/promise') {
    const { ok, resultSets, errors } = await warmUpMysql2(exports as typeof Mysql2Promise);
    if (ok === 0 || resultSets === 0 || errors === 0) throw new Error(`mysql2's warm-up missed a path: ${ok} OK, ${resultSets} result sets, ${errors} errors`);
  } else if (name === 'proper-lockfile') {
    // freeze's lock, taken and released as src/state/freezelock.ts does (its release is in the stall window)
    const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'vms-warmup-'));
    try {
      const lockfile = exports as typeof ProperLockfile;
      const { target, lock, unlock } = freezeLockCalls(scratch);
      await lockfile.lock(target, lock);
      lockfile.unlockSync(target, unlock);
    } finally {
      fs.rmSync(scratch, { recursive: true, force: true });
    }
  }
  fs.writeFileSync(cacheFile, script.createCachedData());
}

main().then(
  // Some libraries start timers or handlers when loaded: their work here is done.
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`code cache: ${(error as Error).message}\n`);
    process.exit(1);
  },
);
