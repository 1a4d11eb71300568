import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CLI_NAME,
  HOLDER_NAME,
  POST_THAW_NAME,
  PRE_FREEZE_NAME,
  dispatch,
  parseOperation,
  type Invocation,
  type Operation,
} from '../../src/agents/dispatch';
import type { AgentId } from '../../src/agents/profiles';

function hook(operation: Operation, scriptArg?: string, agent?: AgentId): Invocation {
  return { kind: 'hook', operation, scriptArg, agent };
}

function cli(...args: string[]): Invocation {
  return { kind: 'cli', args };
}

/** The usage message of a refused invocation; fails the test when it was not refused. */
function usageMessage(name: string, args: string[]): string {
  const invocation = dispatch(name, args);
  assert.equal(invocation.kind, 'usage', `${name} ${args.join(' ')} gave ${JSON.stringify(invocation)}`);
  return invocation.kind === 'usage' ? invocation.message : '';
}

test('the installed names are spelt as VMware Tools and the holder expect them', () => {
  assert.equal(PRE_FREEZE_NAME, 'pre-freeze-script');
  assert.equal(POST_THAW_NAME, 'post-thaw-script');
  assert.equal(HOLDER_NAME, 'pre-freeze-mysql-lock');
  assert.equal(CLI_NAME, 'vmware-mysql-snapshot');
});

test('parseOperation accepts the three operations in any case and nothing else', () => {
  assert.equal(parseOperation('freeze'), 'freeze');
  assert.equal(parseOperation('FREEZE'), 'freeze');
  assert.equal(parseOperation('thaw'), 'thaw');
  assert.equal(parseOperation('Thaw'), 'thaw');
  assert.equal(parseOperation('freezeFail'), 'freezeFail');
  assert.equal(parseOperation('freezefail'), 'freezeFail');
  assert.equal(parseOperation('FREEZEFAIL'), 'freezeFail');
  for (const word of [undefined, '', 'freeze-fail', 'froze', ' freeze', 'freeze ', 'thawed']) {
    assert.equal(parseOperation(word), undefined, String(word));
  }
});

// Regression: OPERATIONS was a plain object, so `50-mysql constructor` found Object.prototype members.
test('words inherited from Object.prototype are not operations', () => {
  for (const word of ['constructor', 'toString', 'valueOf', 'hasOwnProperty', '__proto__']) {
    assert.equal(parseOperation(word), undefined, word);
    assert.deepEqual(dispatch('50-mysql', [word]), cli(word), word);
  }
});

test('pre-freeze-script freezes with no arguments, with freeze, and with freeze and one argument', () => {
  assert.deepEqual(dispatch(PRE_FREEZE_NAME, []), hook('freeze', undefined, 'vmware'));
  assert.deepEqual(dispatch(PRE_FREEZE_NAME, ['freeze']), hook('freeze', undefined, 'vmware'));
  assert.deepEqual(dispatch(PRE_FREEZE_NAME, ['Freeze']), hook('freeze', undefined, 'vmware'));
  assert.deepEqual(dispatch(PRE_FREEZE_NAME, ['freeze', 'snapshot-42']), hook('freeze', 'snapshot-42', 'vmware'));
});

test('pre-freeze-script refuses other words and extra arguments with its usage', () => {
  for (const args of [['thaw'], ['freezeFail'], ['status'], [''], ['freeze', 'a', 'b'], ['snapshot-42']]) {
    const message = usageMessage(PRE_FREEZE_NAME, args);
    assert.match(message, /^usage: pre-freeze-script \[freeze\] \[scriptArg\] \(got "/);
    assert.ok(message.endsWith(`(got "${args.join(' ')}")`), message);
  }
});

test('post-thaw-script thaws or reports a failed freeze, with an optional argument', () => {
  assert.deepEqual(dispatch(POST_THAW_NAME, ['thaw']), hook('thaw', undefined, 'vmware'));
  assert.deepEqual(dispatch(POST_THAW_NAME, ['thaw', 'snapshot-42']), hook('thaw', 'snapshot-42', 'vmware'));
  for (const word of ['freezeFail', 'freezefail', 'FREEZEFAIL']) {
    assert.deepEqual(dispatch(POST_THAW_NAME, [word]), hook('freezeFail', undefined, 'vmware'), word);
    assert.deepEqual(dispatch(POST_THAW_NAME, [word, 'x']), hook('freezeFail', 'x', 'vmware'), word);
  }
});

test('post-thaw-script refuses no arguments, freeze, other words and extra arguments', () => {
  assert.equal(
    usageMessage(POST_THAW_NAME, []),
    'usage: post-thaw-script thaw|freezeFail [scriptArg] (got no arguments)',
  );
  for (const args of [['freeze'], ['status'], ['thaw', 'a', 'b'], ['']]) {
    assert.equal(
      usageMessage(POST_THAW_NAME, args),
      `usage: post-thaw-script thaw|freezeFail [scriptArg] (got "${args.join(' ')}")`,
    );
  }
});

test('pre-freeze-mysql-lock is the lock holder whatever its arguments', () => {
  assert.deepEqual(dispatch(HOLDER_NAME, []), { kind: 'holder' });
  assert.deepEqual(dispatch(HOLDER_NAME, ['freeze', 'x', 'y']), { kind: 'holder' });
});

test('under any other name the first word decides: backupScripts.d and fsfreeze-hook.d', () => {
  assert.deepEqual(dispatch('50-mysql', ['freeze']), hook('freeze', undefined, 'vmware-backupscripts'));
  assert.deepEqual(dispatch('50-mysql', ['thaw']), hook('thaw', undefined, 'vmware-backupscripts'));
  assert.deepEqual(dispatch('50-mysql', ['freezeFail', 'x']), hook('freezeFail', 'x', 'vmware-backupscripts'));
  assert.deepEqual(dispatch('mysql', ['thaw']), hook('thaw', undefined, 'qemu'));
  assert.deepEqual(dispatch('mysql', ['FREEZE', 'x']), hook('freeze', 'x', 'qemu'));
});

test('under any other name, a non-operation or more than two words goes to the command line', () => {
  assert.deepEqual(dispatch('mysql', []), cli());
  assert.deepEqual(dispatch('mysql', ['status']), cli('status'));
  assert.deepEqual(dispatch('mysql', ['freeze', 'a', 'b']), cli('freeze', 'a', 'b'));
  assert.deepEqual(dispatch('50-mysql', ['--help']), cli('--help'));
  assert.deepEqual(dispatch('node', ['thawing']), cli('thawing'));
});

test('vmware-mysql-snapshot always gives the command line, even for an operation word', () => {
  assert.deepEqual(dispatch(CLI_NAME, ['freeze']), cli('freeze'));
  assert.deepEqual(dispatch(CLI_NAME, ['thaw', 'x']), cli('thaw', 'x'));
  assert.deepEqual(dispatch(CLI_NAME, []), cli());
  assert.deepEqual(dispatch(CLI_NAME, ['status', '--json']), cli('status', '--json'));
});

test('names are matched exactly: other spellings are not the fixed hook names', () => {
  assert.deepEqual(dispatch('Pre-Freeze-Script', []), cli());
  assert.deepEqual(dispatch('post-thaw-script.sh', []), cli());
  assert.deepEqual(dispatch('pre-freeze-mysql-lock2', ['freeze']), hook('freeze'));
});

test('the command-line arguments are a copy, not the caller array', () => {
  const args = ['status'];
  const invocation = dispatch(CLI_NAME, args);
  assert.ok(invocation.kind === 'cli');
  assert.notEqual(invocation.args, args);
  args.push('changed');
  assert.deepEqual(invocation.args, ['status']);
});

test('the other agents: each link takes freeze or thaw and the arguments its agent passes', () => {
  assert.deepEqual(dispatch('gcp-hook', ['freeze', '1/2,3/4']), hook('freeze', '1/2,3/4', 'gcp'));
  assert.deepEqual(dispatch('gcp-hook', ['thaw', 'nvme0n1,nvme0n2']), hook('thaw', 'nvme0n1,nvme0n2', 'gcp'));
  assert.deepEqual(dispatch('azure-hook', ['freeze']), hook('freeze', undefined, 'azure'));
  assert.deepEqual(dispatch('azure-hook', ['thaw', 'a', 'b']), hook('thaw', 'a b', 'azure'));
  assert.deepEqual(dispatch('nutanix-hook', ['freeze']), hook('freeze', undefined, 'nutanix'));
  assert.deepEqual(dispatch('veeam-hook', ['thaw']), hook('thaw', undefined, 'veeam'));
  assert.deepEqual(dispatch('aws-hook', ['freeze']), hook('freeze', undefined, 'aws'));
});

test('the other agents refuse what their agent never passes, with a usage line', () => {
  assert.equal(usageMessage('gcp-hook', []), 'usage: gcp-hook freeze|thaw [DISKS] (got no arguments)');
  assert.equal(usageMessage('gcp-hook', ['freeze', 'a', 'b']), 'usage: gcp-hook freeze|thaw [DISKS] (got "freeze a b")');
  assert.equal(usageMessage('aws-hook', ['freeze', 'x']), 'usage: aws-hook freeze|thaw (got "freeze x")');
  assert.equal(usageMessage('azure-hook', ['freezeFail']), 'usage: azure-hook freeze|thaw [PARAMS...] (got "freezeFail")');
  assert.equal(usageMessage('veeam-hook', ['status']), 'usage: veeam-hook freeze|thaw [PARAMS...] (got "status")');
});
