/** doctor's per-agent budget: agents found by their installed files below a fake root, limits read from their settings. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { agentChecks } from '../../src/commands/agentbudget';
import { DEFAULTS, type Settings } from '../../src/config/settings';

function settings(freezeTimeout?: number): Settings {
  return {
    file: '/etc/vmware-mysql-snapshot.cnf',
    client: { user: 'u' },
    lockWaitTimeout: 2,
    longQueryTime: 1,
    maxLockTime: 60,
    freezeTimeout: freezeTimeout ?? DEFAULTS.freezeTimeout,
    freezeTimeoutSet: freezeTimeout !== undefined,
    runDir: DEFAULTS.runDir,
    logFile: DEFAULTS.logFile,
    ignoreCommands: [],
    ignoreUsers: [],
    ifServerDown: 'skip',
    lockMode: 'ftwrl',
    coordinatesFile: null,
    killLongQueries: 'off',
    killLongQueriesAfter: 1,
    replicaSqlThread: 'keep',
    releaseAt: 'filesystem_thaw',
    historyFile: DEFAULTS.historyFile,
    metricsFile: null,
    notifyCommand: null,
    notifyTimeout: 10,
    warnings: [],
  };
}

function root(files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vms-agentbudget-'));
  for (const [file, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(dir + file), { recursive: true });
    fs.writeFileSync(dir + file, text);
  }
  return dir;
}

test('no agent installed: no agent checks', () => {
  assert.deepEqual(agentChecks(settings(), { prefix: '/usr/local', root: root({}) }), []);
});

test('Google: the default budget fits the limit read from instance_configs.cfg; enabled is checked', () => {
  const dir = root({ '/etc/google/snapshots/pre.sh': '#!/bin/sh\n', '/etc/default/instance_configs.cfg': '[Snapshots]\nenabled = true\ntimeout_in_seconds = 60\n' });
  const checks = agentChecks(settings(), { prefix: '/usr/local', root: dir });
  const budget = checks.find((check) => check.name === 'agent gcp');
  assert.equal(budget?.verdict, 'ok');
  assert.match(budget?.detail ?? '', /freeze_timeout 45 s \(this agent's default\), its limit 60 s \(\[Snapshots\] timeout_in_seconds in \/etc\/default\/instance_configs.cfg\)/);
  assert.equal(checks.find((check) => check.name === 'agent gcp enabled')?.verdict, 'ok');
  assert.match(checks.map((check) => check.detail).join('\n'), /--guest-flush/);
});

test('Google: snapshots not enabled, and a configured freeze_timeout that does not fit, are warned about', () => {
  const dir = root({ '/etc/google/snapshots/pre.sh': '#!/bin/sh\n', '/etc/default/instance_configs.cfg': '[Snapshots]\nenabled = false\n' });
  const checks = agentChecks(settings(300), { prefix: '/usr/local', root: dir });
  const budget = checks.find((check) => check.name === 'agent gcp');
  assert.equal(budget?.verdict, 'warn');
  assert.match(budget?.detail ?? '', /freeze_timeout 300 s \(\/etc\/vmware-mysql-snapshot.cnf\) does not end 4 s before its limit 60 s \(its default\)/);
  assert.match(budget?.fix ?? '', /at most 56/);
  const enabled = checks.find((check) => check.name === 'agent gcp enabled');
  assert.equal(enabled?.verdict, 'warn');
  assert.match(enabled?.fix ?? '', /\[Snapshots\] enabled = true/);
});

test('Azure: timeoutInSeconds is read from the plugin configuration', () => {
  const dir = root({ '/etc/azure/VMSnapshotScriptPluginConfig.json': JSON.stringify({ timeoutInSeconds: 10 }) });
  const tight = agentChecks(settings(), { prefix: '/usr/local', root: dir }).find((check) => check.name === 'agent azure');
  assert.equal(tight?.verdict, 'warn');
  assert.match(tight?.detail ?? '', /its limit 10 s \(timeoutInSeconds in \/etc\/azure\/VMSnapshotScriptPluginConfig.json\)/);
  fs.writeFileSync(path.join(dir, 'etc/azure/VMSnapshotScriptPluginConfig.json'), JSON.stringify({ timeoutInSeconds: 30 }));
  assert.equal(agentChecks(settings(), { prefix: '/usr/local', root: dir }).find((check) => check.name === 'agent azure')?.verdict, 'ok');
});

test('VMware: [vmbackup] timeout of tools.conf; AWS found under the prefix', () => {
  const dir = root({
    '/usr/sbin/pre-freeze-script': '',
    '/etc/vmware-tools/tools.conf': '[vmbackup]\ntimeout = 120\n',
    '/opt/vms/share/vmware-mysql-snapshot/aws/ssm-document.yaml': '',
  });
  const checks = agentChecks(settings(), { prefix: '/opt/vms', root: dir });
  const vmware = checks.find((check) => check.name === 'agent vmware');
  assert.equal(vmware?.verdict, 'warn');
  assert.match(vmware?.detail ?? '', /its limit 120 s \(\[vmbackup\] timeout in \/etc\/vmware-tools\/tools.conf\)/);
  const aws = checks.find((check) => check.name === 'agent aws');
  assert.equal(aws?.verdict, 'ok');
  assert.match(aws?.detail ?? '', /freeze_timeout 6 s \(this agent's default\), its limit 10 s \(its default\); it freezes no filesystem/);
});
