/**
 * Deadlines on the monotonic clock (src/clock.ts), on which freeze measures freeze_timeout, the retry
 * pause and the wait for the holder's answer, and thaw its wait for the holder's exit (max_lock_time is
 * a Node timer, monotonic too): an injected clock drives them, and a step of the wall clock (Date.now)
 * moves none of them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Deadline, monotonic, type Clock } from '../../src/clock';
import { identify, waitForExit } from '../../src/state/processes';

class FakeClock implements Clock {
  constructor(public ms = 1000) {}
  now(): number {
    return this.ms;
  }
}

/** Date.now stepped by `stepMs` for the duration of `run`. */
async function withWallClockStep<T>(stepMs: number, run: () => Promise<T> | T): Promise<T> {
  const real = Date.now;
  Date.now = () => real() + stepMs;
  try {
    return await run();
  } finally {
    Date.now = real;
  }
}

test('a deadline passes when its clock reaches it, measured from a given moment', () => {
  const clock = new FakeClock(5000);
  // freeze_timeout counts from the process start, before the Deadline is made
  const deadline = new Deadline(6000, clock, 4000);
  assert.equal(deadline.remainingMs(), 5000);
  assert.equal(deadline.passed(), false);
  clock.ms = 9999;
  assert.equal(deadline.remainingMs(), 1);
  clock.ms = 10_000;
  assert.equal(deadline.passed(), true);
  assert.equal(deadline.remainingMs(), 0);
});

test('a wall-clock step forward or back neither ends a deadline early nor extends it', async () => {
  const deadline = new Deadline(60_000);
  for (const step of [3_600_000, -3_600_000]) {
    await withWallClockStep(step, () => {
      assert.equal(deadline.passed(), false);
      const remaining = deadline.remainingMs();
      assert.ok(remaining > 59_000 && remaining <= 60_000, `remaining ${remaining} after a step of ${step} ms`);
    });
  }
  const before = monotonic.now();
  await withWallClockStep(-86_400_000, () => assert.ok(monotonic.now() >= before));
});

test('the thaw wait (waitForExit) is bounded on the monotonic clock: a wall-clock step forward does not cut it short', async () => {
  const self = identify(process.pid);
  assert.ok(self !== null);
  const started = monotonic.now();
  // We never exit: the wait must last its 300 ms although the wall clock jumps an hour ahead at once.
  const gone = await withWallClockStep(3_600_000, () => waitForExit(self, 300, 10));
  assert.equal(gone, false);
  const took = monotonic.now() - started;
  assert.ok(took >= 290 && took < 2000, `waited ${took} ms`);
});
