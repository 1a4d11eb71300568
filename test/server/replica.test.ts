import { test } from 'node:test';
import assert from 'node:assert/strict';
import { quoteName } from '../../src/server/replica';

test('a channel name is quoted by doubling its quotes; backslashes are doubled only where they escape', () => {
  assert.equal(quoteName('east', true), "'east'");
  assert.equal(quoteName("o'brien", true), "'o''brien'");
  assert.equal(quoteName("o'brien", false), "'o''brien'");
  assert.equal(quoteName("a\\'; DROP", true), "'a\\\\''; DROP'");
  assert.equal(quoteName("a\\'; DROP", false), "'a\\''; DROP'");
  assert.equal(quoteName('', true), "''");
});
