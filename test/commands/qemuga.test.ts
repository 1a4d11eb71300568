/** doctor's qemu-ga check, on a made-up root: which hook qemu-ga runs (running, or as configured), and whether a failed freeze stops the snapshot. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs = require('node:fs');
import os = require('node:os');
import path = require('node:path');
import { keyFileValue, qemuGaCheck, type QemuGaPlaces } from '../../src/commands/qemuga';

const REPO = path.resolve(__dirname, '..', '..', '..');
const STOCK = '#!/bin/sh\nFSFREEZE_D=$(dirname -- "$0")/fsfreeze-hook.d\nfor file in "$FSFREEZE_D"/* ; do "$file" "$@"; done\n\nexit 0\n';
const DEBIAN_UNIT = '[Service]\nExecStart=-/usr/sbin/qemu-ga\n';
const RHEL_UNIT = '[Service]\nEnvironmentFile=/etc/sysconfig/qemu-ga\nExecStart=/usr/bin/qemu-ga --method=virtio-serial --path=/dev/virtio-ports/org.qemu.guest_agent.0 --allow-rpcs=${FILTER_RPC_ARGS} -F${FSFREEZE_HOOK_PATHNAME}\n';

function root(files: Record<string, string>, links: Record<string, string> = {}): QemuGaPlaces {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vms-qemuga-check-'));
  const executable = path.join(dir, 'usr/local/sbin/vmware-mysql-snapshot');
  fs.mkdirSync(path.dirname(executable), { recursive: true });
  fs.writeFileSync(executable, '');
  fs.mkdirSync(path.join(dir, 'proc'));
  for (const [file, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
    fs.writeFileSync(path.join(dir, file), text);
  }
  for (const [link, target] of Object.entries(links)) {
    fs.mkdirSync(path.dirname(path.join(dir, link)), { recursive: true });
    fs.symlinkSync(path.join(dir, target), path.join(dir, link));
  }
  return { root: dir, executable: fs.realpathSync(executable) };
}

const ourDispatcher = fs.readFileSync(path.join(REPO, 'qemu', 'fsfreeze-hook'), 'utf8');
const ourLink = { '/etc/qemu/fsfreeze-hook.d/mysql': '/usr/local/sbin/vmware-mysql-snapshot' };

test('qemu-ga check: nothing to say without qemu-ga and without our qemu hook', () => {
  assert.equal(qemuGaCheck(root({})), undefined);
});

test('qemu-ga check: Debian\'s service without -F or fsfreeze-hook= runs no hook', () => {
  const check = qemuGaCheck(root({ '/lib/systemd/system/qemu-guest-agent.service': DEBIAN_UNIT, '/etc/qemu/fsfreeze-hook': STOCK }, ourLink));
  assert.equal(check?.verdict, 'warn');
  assert.match(check?.detail ?? '', /runs no fsfreeze hook .*a snapshot gets no lock/);
  assert.match(check?.fix ?? '', /install\.sh --qemu/);
});

test('qemu-ga check: fsfreeze-hook= our dispatcher is ok; QEMU\'s stock one only logs a failed freeze', () => {
  const ours = qemuGaCheck(root({
    '/lib/systemd/system/qemu-guest-agent.service': DEBIAN_UNIT,
    '/etc/qemu/qemu-ga.conf': '[general]\nfsfreeze-hook=/etc/qemu/vmware-mysql-snapshot-fsfreeze-hook\n',
    '/etc/qemu/vmware-mysql-snapshot-fsfreeze-hook': ourDispatcher,
  }, ourLink));
  assert.equal(ours?.verdict, 'ok', ours?.detail);
  assert.match(ours?.detail ?? '', /fails qemu-ga's freeze/);
  const stock = qemuGaCheck(root({
    '/lib/systemd/system/qemu-guest-agent.service': DEBIAN_UNIT,
    '/etc/qemu/qemu-ga.conf': '[general]\nfsfreeze-hook=/etc/qemu/fsfreeze-hook\n',
    '/etc/qemu/fsfreeze-hook': STOCK,
  }, ourLink));
  assert.equal(stock?.verdict, 'warn');
  assert.match(stock?.detail ?? '', /always exits 0 .*only logged.*without the lock/);
  const unlinked = qemuGaCheck(root({ '/lib/systemd/system/qemu-guest-agent.service': DEBIAN_UNIT, '/etc/qemu/qemu-ga.conf': '[general]\nfsfreeze-hook=/etc/qemu/fsfreeze-hook\n', '/etc/qemu/fsfreeze-hook': STOCK, '/etc/qemu/fsfreeze-hook.d/other': '' }));
  assert.match(unlinked?.detail ?? '', /has no link to our hook/);
});

test('qemu-ga check: RHEL\'s unit passes -F${FSFREEZE_HOOK_PATHNAME} from /etc/sysconfig/qemu-ga', () => {
  const check = qemuGaCheck(root({
    '/usr/lib/systemd/system/qemu-guest-agent.service': RHEL_UNIT,
    '/etc/sysconfig/qemu-ga': 'FILTER_RPC_ARGS="guest-file-open"\nFSFREEZE_HOOK_PATHNAME=/etc/qemu-ga/vmware-mysql-snapshot-fsfreeze-hook\n',
    '/etc/qemu-ga/vmware-mysql-snapshot-fsfreeze-hook': ourDispatcher,
  }, { '/etc/qemu-ga/fsfreeze-hook.d/mysql': '/usr/local/sbin/vmware-mysql-snapshot' }));
  assert.equal(check?.verdict, 'ok', check?.detail);
  assert.match(check?.detail ?? '', /through \/etc\/qemu-ga\/vmware-mysql-snapshot-fsfreeze-hook/);
});

test('qemu-ga check: a running qemu-ga (-F with no path: the default hook) that differs from its settings must be restarted', () => {
  const places = root({
    '/lib/systemd/system/qemu-guest-agent.service': DEBIAN_UNIT,
    '/etc/qemu/qemu-ga.conf': '[general]\nfsfreeze-hook=/etc/qemu/vmware-mysql-snapshot-fsfreeze-hook\n',
    '/etc/qemu/vmware-mysql-snapshot-fsfreeze-hook': ourDispatcher,
    '/etc/qemu/fsfreeze-hook': STOCK,
    '/proc/4242/cmdline': '/usr/sbin/qemu-ga\0-m\0virtio-serial\0-F\0',
    '/proc/4242/environ': 'PATH=/usr/bin\0',
  }, ourLink);
  const check = qemuGaCheck(places);
  assert.equal(check?.verdict, 'warn');
  assert.match(check?.detail ?? '', /^qemu-ga \(pid 4242\) runs our hook through \/etc\/qemu\/fsfreeze-hook, which always exits 0.*; as configured it would run \/etc\/qemu\/vmware-mysql-snapshot-fsfreeze-hook instead$/);
  assert.match(check?.fix ?? '', /restart qemu-ga/);
});

test('keyFileValue reads [general] as GLib does: comments skipped, the last value wins, other groups ignored', () => {
  const text = '# fsfreeze-hook=/no\n[other]\nfsfreeze-hook=/other\n[general]\n fsfreeze-hook = /first\nverbose=true\nfsfreeze-hook=/last\n';
  assert.equal(keyFileValue(text, 'general', 'fsfreeze-hook'), '/last');
  assert.equal(keyFileValue('[general]\nverbose=true\n', 'general', 'fsfreeze-hook'), undefined);
});
