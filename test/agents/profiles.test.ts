import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FREEZE_OVERHEAD_SECONDS, PROFILES, fitsLimit, profileForName } from '../../src/agents/profiles';

const REPO = path.resolve(__dirname, '..', '..', '..');

test('every profile default freeze_timeout ends with its overhead before the agent default limit', () => {
  for (const profile of PROFILES) {
    assert.ok(fitsLimit(profile.defaultFreezeTimeout, profile.limitSeconds), profile.id);
    if (profile.limitSeconds !== undefined) {
      assert.ok(profile.defaultFreezeTimeout + FREEZE_OVERHEAD_SECONDS <= profile.limitSeconds, profile.id);
    }
  }
  assert.equal(fitsLimit(57, 60), false);
  assert.equal(fitsLimit(56, 60), true);
  assert.equal(fitsLimit(86400, undefined), true);
});

test('the limits are the agents own defaults (docs/hook-contract.md of the team)', () => {
  const limits = Object.fromEntries(PROFILES.map((profile) => [profile.id, profile.limitSeconds]));
  assert.deepEqual(limits, { vmware: 900, 'vmware-backupscripts': 900, qemu: undefined, gcp: 60, azure: 30, nutanix: undefined, veeam: 600, aws: 10 });
});

test('no name belongs to two profiles, and each profile has an install option', () => {
  const seen = new Set<string>();
  for (const profile of PROFILES) {
    for (const rule of profile.names) {
      assert.ok(!seen.has(rule.name), rule.name);
      seen.add(rule.name);
      assert.equal(profileForName(rule.name)?.profile.id, profile.id);
    }
  }
});

test('install.sh installs each profile under its option and links the names the profile lists', () => {
  const script = fs.readFileSync(path.join(REPO, 'install.sh'), 'utf8');
  for (const profile of PROFILES) {
    if (profile.installOption !== '(default)') {
      const caseLine = new RegExp(`^\\s+(--[a-z-]+ \\| )*${profile.installOption}( \\| --[a-z-]+)*\\)$`, 'm');
      assert.match(script, caseLine, `${profile.id}: ${profile.installOption} in install.sh`);
    }
    for (const rule of profile.names) {
      // The other agents' links are named $agent-hook after their option (plan_agents).
      const agentLink = rule.name === `${profile.installOption.replace(/^--/, '')}-hook` && script.includes('agent_links+=("$libexec/$agent-hook")');
      assert.ok(agentLink || script.includes(rule.name), `${profile.id}: ${rule.name} in install.sh`);
    }
    const marker = profile.installedMarkers[0] ?? '';
    assert.ok(script.includes(path.basename(marker)), `${profile.id}: ${marker} in install.sh`);
  }
});
