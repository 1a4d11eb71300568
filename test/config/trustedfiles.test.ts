/** Configuration files read as root, on real files: opened once, checked on the descriptor and every directory above. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadSettings } from '../../src/config/settings';

const skip = process.geteuid?.() === 0 ? false : 'chowns files to another user: run as root';
const NOBODY = 65534;

function setup(extra: string): { dir: string; config: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vms-trusted-'));
  const config = path.join(dir, 'main.cnf');
  fs.writeFileSync(config, `[client]\nuser = snapshot\nsocket = /run/mysqld/mysqld.sock\n${extra}\n`, { mode: 0o600 });
  return { dir, config };
}

function problemsOf(config: string): string {
  try {
    loadSettings(config, { needCredentials: true });
  } catch (error) {
    return (error as Error).message;
  }
  return '';
}

test('an included file of another user is refused, even behind a symlink of root', { skip }, () => {
  const { dir, config } = setup('');
  try {
    const hers = path.join(dir, 'hers.cnf');
    fs.writeFileSync(hers, '[snapshot]\nnotify_command = id\n', { mode: 0o600 });
    fs.chownSync(hers, NOBODY, NOBODY);
    fs.symlinkSync(hers, path.join(dir, 'link.cnf'));
    fs.appendFileSync(config, `!include ${path.join(dir, 'link.cnf')}\n`);
    assert.match(problemsOf(config), /link\.cnf cannot be read \(not safe: .*owned by uid 65534/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('an included directory that others can write, or one of another user, is refused', { skip }, () => {
  const { dir, config } = setup('');
  try {
    const included = path.join(dir, 'conf.d');
    fs.mkdirSync(included);
    fs.chmodSync(included, 0o1777);
    fs.appendFileSync(config, `!includedir ${included}\n`);
    assert.match(problemsOf(config), /conf\.d is writable by group or others/);
    fs.chmodSync(included, 0o755);
    fs.chownSync(included, NOBODY, NOBODY);
    assert.match(problemsOf(config), /owned by uid 65534/);
    fs.chownSync(included, 0, 0);
    fs.writeFileSync(path.join(included, 'ok.cnf'), '[snapshot]\nnotify_timeout = 7\n', { mode: 0o644 });
    assert.equal(loadSettings(config, { needCredentials: true }).notifyTimeout, 7);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a configuration file under a directory others can write is refused before it is parsed', { skip }, () => {
  const { dir, config } = setup('');
  try {
    fs.chmodSync(dir, 0o777);
    assert.match(problemsOf(config), /not safe to read as root: .*writable by group or others/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
