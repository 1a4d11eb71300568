/**
 * A short soak (scripts/soak.ts): freeze / thaw cycles of the BUILT executable under concurrent writers
 * and random long statements. The long run is `node build/scripts/soak.js --cycles 200`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatSummary, runSoak } from '../../scripts/soak';
import { loopFilesystemSkipReason } from '../support/loopfs';

const CYCLES = 12;
/** No cycle starts after this; a cycle lasts at most freeze_timeout (10 s) plus a thaw. */
const MAX_DURATION_MS = 40_000;

test(`a short soak: ${CYCLES} cycles under 3 writers and long statements lock with the right coordinates or fail cleanly, and leave nothing behind`, { timeout: 90_000 }, async () => {
  // Long statements more often than in the long run, so that a short run meets abandoned attempts too.
  const summary = await runSoak({ cycles: CYCLES, writers: 3, longStatementPauseMs: [300, 2000], maxDurationMs: MAX_DURATION_MS });
  const report = formatSummary(summary);
  process.stdout.write(`${report}\n`);
  assert.deepEqual(summary.violations, [], report);
  assert.ok(summary.cycles === CYCLES || (summary.cutShort && summary.cycles >= 3), `cycles run: ${summary.cycles}`);
  assert.equal(summary.locked + summary.failedCleanly, summary.cycles, 'every cycle locked or failed cleanly');
  assert.ok(summary.locked > 0, 'some cycles locked');
  assert.equal(summary.leakedLock, false, 'no lock left');
  assert.deepEqual(summary.leakedHolders, [], 'no holder process left');
  assert.equal(summary.leftoverConnections, 0, 'no connection of the hook left');
  assert.equal(summary.writerErrors, 0);
  assert.equal(summary.longStatementErrors, 0, 'no long statement was interrupted');
  assert.ok(summary.acknowledged > 0, 'the writers wrote');
  assert.equal(summary.rows, summary.acknowledged, 'no acknowledged write lost');
  // Outside the locked windows a writer waits at most for one abandoned attempt (lock_wait_timeout), plus
  // the time to kill it and some scheduling slack on a loaded machine.
  assert.ok(
    summary.longestStallOutsideLock.ms < summary.lockWaitTimeoutS * 1000 + 2000,
    `longest writer stall outside the locked windows: ${JSON.stringify(summary.longestStallOutsideLock)}\n${report}`,
  );
  assert.ok(summary.ok);
});

const noLoopFilesystem = loopFilesystemSkipReason();

test(
  'a short soak with the data directory frozen for every hold: each lock ends at the filesystem thaw or at thaw, never before the thaw began',
  { timeout: 90_000, ...(noLoopFilesystem === undefined ? {} : { skip: noLoopFilesystem }) },
  async () => {
    const summary = await runSoak({ cycles: 10, writers: 2, longStatements: false, freezeFilesystem: true, maxDurationMs: MAX_DURATION_MS });
    const report = formatSummary(summary);
    process.stdout.write(`${report}\n`);
    assert.deepEqual(summary.violations, [], report);
    assert.equal(summary.locked, summary.cycles, 'every cycle locked (no long statements)');
    assert.ok(summary.releasedAtFilesystemThaw !== null && summary.releasedAtFilesystemThaw > 0, `released at the filesystem thaw in ${summary.releasedAtFilesystemThaw} cycles`);
    assert.equal(summary.rows, summary.acknowledged, 'no acknowledged write lost');
    assert.equal(summary.leakedLock, false, 'no lock left');
    assert.deepEqual(summary.leakedHolders, [], 'no holder process left');
    assert.ok(summary.ok);
  },
);
