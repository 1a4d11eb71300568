/** Server text made printable (src/server/printable.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { printable } from '../../src/server/printable';

test('control characters, DEL, C1 and bidirectional overrides become visible escapes; the rest is kept', () => {
  assert.equal(printable('SELECT 1'), 'SELECT 1');
  assert.equal(printable('a\u001b[2Jb'), 'a\\x1b[2Jb');
  assert.equal(printable('\u001b]0;title\u0007'), '\\x1b]0;title\\x07');
  assert.equal(printable('x\u009b31m\u007f'), 'x\\x9b31m\\x7f');
  assert.equal(printable('l\n\r\tm'), 'l\\n\\r\\tm');
  assert.equal(printable('abc\u202edef'), 'abc\\u202edef');
  assert.equal(printable('é ü 日本'), 'é ü 日本');
});
