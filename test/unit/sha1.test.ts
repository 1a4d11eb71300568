import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import { Sha1 } from '../../src/sha1';

function expected(...parts: Array<string | Buffer>): Buffer {
  const hash = crypto.createHash('sha1');
  for (const part of parts) hash.update(part);
  return hash.digest();
}

test('SHA-1 of the FIPS 180 examples', () => {
  assert.equal(new Sha1().update('abc').digest('hex'), 'a9993e364706816aba3e25717850c26c9cd0d89d');
  assert.equal(new Sha1().update('').digest('hex'), 'da39a3ee5e6b4b0d3255bfef95601890afd80709');
  assert.equal(new Sha1().update('abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq').digest('hex'), '84983e441c3bd26ebaae4aa1f95129e5e54670f1');
});

test('SHA-1 agrees with node:crypto at every length around the block boundaries, in parts, for strings and buffers', () => {
  for (let length = 0; length <= 200; length += 1) {
    const data = crypto.randomBytes(length);
    assert.deepEqual(new Sha1().update(data).digest(), expected(data), `length ${length}`);
    const cut = Math.floor(length / 3);
    assert.deepEqual(new Sha1().update(data.subarray(0, cut)).update(data.subarray(cut)).digest(), expected(data), `length ${length} in two parts`);
  }
  const password = 'p#a;s\'s"w=o rd ünïcode ✓';
  assert.deepEqual(new Sha1().update(password).digest(), expected(password), 'a string is hashed as UTF-8');
  const large = crypto.randomBytes(1 << 20);
  assert.deepEqual(new Sha1().update(large).digest(), expected(large), '1 MiB');
});

test('the mysql_native_password scramble: SHA1(password) XOR SHA1(salt, SHA1(SHA1(password)))', () => {
  const salt = crypto.randomBytes(20);
  const ours = (password: string): Buffer => {
    const stage1 = new Sha1().update(password).digest();
    const stage2 = new Sha1().update(stage1).digest();
    const mask = new Sha1().update(salt).update(stage2).digest();
    return Buffer.from(stage1.map((byte, index) => byte ^ (mask[index] ?? 0)));
  };
  const reference = (password: string): Buffer => {
    const stage1 = expected(password);
    const mask = expected(salt, expected(stage1));
    return Buffer.from(stage1.map((byte, index) => byte ^ (mask[index] ?? 0)));
  };
  assert.deepEqual(ours('secret'), reference('secret'));
});
