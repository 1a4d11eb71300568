/**
 * A holder's claim on run_dir (src/state/holderclaim.ts), with real processes listening on real abstract
 * sockets. Under the test runner "our executable" is node itself, so a node process started as
 * pre-freeze-mysql-lock, detached, stands for a holder; everything short of that is not one.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { claimPrefix, findClaimants, newClaimPath } from '../../src/state/holderclaim';
import { waitFor } from '../support/wait';

/** A process listening on `socketPath` until the test ends. */
async function listener(context: TestContext, socketPath: string, options: { argv0: string; detached: boolean }): Promise<number> {
  const script = `require('node:net').createServer((s) => s.destroy()).listen(${JSON.stringify(socketPath)}, () => process.stdout.write('ready\\n'))`;
  const child = spawn(process.execPath, ['-e', script], { argv0: options.argv0, detached: options.detached, stdio: ['ignore', 'pipe', 'ignore'] });
  context.after(() => void child.kill('SIGKILL'));
  await new Promise<void>((resolve, reject) => {
    child.stdout.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`listener exited (${code})`)));
  });
  return child.pid ?? 0;
}

test('a detached holder of this executable listening on a claim of run_dir is found; nothing else is', async (context) => {
  const runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'vms-claim-'));
  context.after(() => fs.rmSync(runDir, { recursive: true, force: true }));
  assert.deepEqual(findClaimants(runDir), [], 'no claim, no claimant');

  const holder = await listener(context, newClaimPath(runDir), { argv0: 'pre-freeze-mysql-lock', detached: true });
  // Look-alikes: another run_dir's claim, a claim held under another name, or by a process not detached.
  await listener(context, newClaimPath(`${runDir}-other`), { argv0: 'pre-freeze-mysql-lock', detached: true });
  await listener(context, newClaimPath(runDir), { argv0: 'not-the-holder', detached: true });
  await listener(context, newClaimPath(runDir), { argv0: 'pre-freeze-mysql-lock', detached: false });
  // A name one character off the prefix.
  await listener(context, `\0${claimPrefix(runDir).slice(0, -1)}x`, { argv0: 'pre-freeze-mysql-lock', detached: true });

  assert.deepEqual(findClaimants(runDir).map((found) => found.pid), [holder]);
  assert.deepEqual(findClaimants(path.join(runDir, '.')).map((found) => found.pid), [holder], 'the same run_dir, spelled otherwise');
  process.kill(holder, 'SIGKILL');
  await waitFor('the claim to end with its process', () => (findClaimants(runDir).length === 0 ? true : undefined), { timeoutMs: 5000 });
});
