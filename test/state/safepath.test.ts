/** Files a root process may trust (src/safepath.ts) and their use in run_dir and the history (src/state/). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { checkDirectoryChain, openOwnedFile, readTrustedFile, UnsafePathError } from '../../src/safepath';
import { readJson, writeFileAtomic } from '../../src/state/statedir';
import { readHistory } from '../../src/state/history';

const skip = process.geteuid?.() === 0 ? false : 'chowns files to another user: run as root';
const NOBODY = 65534;

function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'vms-safepath-'));
}

test('directories: a symlink, another owner or a group/other-writable directory on the way is refused; sticky /tmp is not', { skip }, () => {
  const root = tempDir();
  try {
    checkDirectoryChain(root);
    fs.mkdirSync(path.join(root, 'real'));
    fs.symlinkSync(path.join(root, 'real'), path.join(root, 'link'));
    assert.throws(() => checkDirectoryChain(path.join(root, 'link')), /is a symlink/);
    fs.mkdirSync(path.join(root, 'hers'));
    fs.chownSync(path.join(root, 'hers'), NOBODY, NOBODY);
    assert.throws(() => checkDirectoryChain(path.join(root, 'hers')), /owned by uid 65534/);
    fs.chmodSync(path.join(root, 'real'), 0o775);
    assert.throws(() => checkDirectoryChain(path.join(root, 'real')), (error: unknown) => error instanceof UnsafePathError && /writable by group or others/.test(error.message));
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test('files: what is checked is the descriptor opened; a FIFO neither blocks nor passes', { skip }, () => {
  const root = tempDir();
  try {
    const file = path.join(root, 'a.cnf');
    fs.writeFileSync(file, 'x', { mode: 0o600 });
    assert.equal(readTrustedFile(file).text, 'x');
    fs.chownSync(file, NOBODY, NOBODY);
    assert.throws(() => readTrustedFile(file), /owned by uid 65534/);
    execFileSync('mkfifo', [path.join(root, 'fifo')]);
    assert.throws(() => readTrustedFile(path.join(root, 'fifo')), /not a regular file/);
    assert.throws(() => openOwnedFile(path.join(root, 'fifo')), /not a regular file/);
    fs.symlinkSync(path.join(root, 'fifo'), path.join(root, 'link'));
    assert.throws(() => openOwnedFile(path.join(root, 'link')), /is a symlink/);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test('state: a FIFO at history_file is untrusted at once; nothing is written under a directory of another user', { skip }, () => {
  const root = tempDir();
  try {
    execFileSync('mkfifo', [path.join(root, 'history.json')]);
    const read = readHistory(path.join(root, 'history.json'));
    assert.equal(read.kind, 'untrusted');
    assert.equal(readJson(root, 'history.json', (_value): _value is unknown => true).kind, 'untrusted');
    const hers = path.join(root, 'hers');
    fs.mkdirSync(hers);
    fs.chownSync(hers, NOBODY, NOBODY);
    assert.throws(() => writeFileAtomic(path.join(hers, 'metrics.prom'), 'x', { mode: 0o644 }), /not safe to use as root/);
    assert.deepEqual(fs.readdirSync(hers), []);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});
