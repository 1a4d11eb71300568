/** Which process is a thaw of ours (src/snapshot/thawstart.ts), from what /proc says of it. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PROFILES } from '../../src/agents/profiles';
import { execInProgress, thawOperation, type Own, type ProcessView } from '../../src/snapshot/thawstart';

const OWN: Own = { exe: '/usr/local/sbin/vmware-mysql-snapshot', uid: 0, configFile: '/etc/vmware-mysql-snapshot.cnf' };
const THAW: ProcessView = { exe: OWN.exe, uid: { real: 0, effective: 0 }, argv: ['/usr/sbin/post-thaw-script', 'thaw'], configFile: OWN.configFile };

test('a thaw or freezeFail of our executable, user and configuration, under any of the agents names', () => {
  assert.equal(thawOperation(THAW, OWN), 'thaw');
  assert.equal(thawOperation({ ...THAW, argv: ['/usr/sbin/post-thaw-script', 'freezeFail', 'arg'] }, OWN), 'freezeFail');
  assert.equal(thawOperation({ ...THAW, argv: ['/etc/vmware-tools/backupScripts.d/50-mysql', 'thaw'] }, OWN), 'thaw');
  assert.equal(thawOperation({ ...THAW, argv: ['/etc/qemu/fsfreeze-hook.d/mysql', 'thaw'] }, OWN), 'thaw');
  for (const profile of PROFILES) {
    for (const rule of profile.names.filter((each) => each.operations.includes('thaw'))) {
      assert.equal(thawOperation({ ...THAW, argv: [`/usr/local/libexec/vmware-mysql-snapshot/${rule.name}`, 'thaw'] }, OWN), 'thaw', `${profile.id}: ${rule.name} thaw`);
    }
  }
});

test('anything else is not: freeze, status, the holder, another executable, user or configuration', () => {
  assert.equal(thawOperation({ ...THAW, argv: ['/usr/sbin/pre-freeze-script', 'freeze'] }, OWN), undefined);
  assert.equal(thawOperation({ ...THAW, argv: ['vmware-mysql-snapshot', 'thaw'] }, OWN), undefined, 'the admin CLI asks by signal');
  assert.equal(thawOperation({ ...THAW, argv: ['vmware-mysql-snapshot', 'status'] }, OWN), undefined);
  assert.equal(thawOperation({ ...THAW, argv: ['pre-freeze-mysql-lock'] }, OWN), undefined);
  assert.equal(thawOperation({ ...THAW, argv: [] }, OWN), undefined);
  assert.equal(thawOperation({ ...THAW, exe: '/usr/bin/bash' }, OWN), undefined);
  assert.equal(thawOperation({ ...THAW, uid: { real: 1000, effective: 1000 } }, OWN), undefined);
  assert.equal(thawOperation({ ...THAW, uid: { real: 1000, effective: 0 } }, OWN), undefined, 'a setuid wrapper is not root');
  assert.equal(thawOperation({ ...THAW, configFile: '/etc/other.cnf' }, OWN), undefined);
});

test('a process whose executable is ours but whose arguments read empty is still inside execve: judged later, not dismissed', () => {
  // /proc/PID/exe is switched before the new image's arguments and environment are set up; until then
  // cmdline and environ read empty, and the configuration file looks like the default one.
  const midExec: ProcessView = { ...THAW, argv: [], configFile: '/etc/vmware-mysql-snapshot.cnf' };
  assert.equal(execInProgress(midExec), true);
  assert.equal(execInProgress(THAW), false);
  assert.equal(execInProgress({ ...THAW, argv: ['pre-freeze-mysql-lock'] }), false);
});
