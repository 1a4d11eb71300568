/** Operating it: status, the Nagios check, Prometheus metrics and notify_command, through the built executable. */
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeHookSetup, runHook, spawnHook, type HookSetup } from '../support/hook';
import { startMariaDB, type TestServer } from '../support/mariadb';
import { sleep, waitFor } from '../support/wait';

let server: TestServer;

before(async () => {
  server = await startMariaDB();
});

after(async () => {
  await server.remove();
});

function newSetup(context: TestContext, snapshot: Record<string, string> = {}): HookSetup {
  const setup = makeHookSetup(server, { snapshot });
  context.after(async () => {
    await runHook(setup, 'post-thaw-script', ['freezeFail']);
  });
  return setup;
}

test('status and check follow a run: holding, then the last runs; check OK; metrics written', async (context) => {
  const setup = newSetup(context);
  const metrics = path.join(setup.dir, 'vms.prom');
  fs.appendFileSync(setup.configFile, `metrics_file = ${metrics}\n`);
  const before = await runHook(setup, 'vmware-mysql-snapshot', ['check']);
  assert.equal(before.code, 1, before.stdout);
  assert.match(before.stdout, /^VMWARE_MYSQL_SNAPSHOT WARNING - no successful freeze recorded yet/);

  assert.equal((await runHook(setup, 'pre-freeze-script', ['freeze'])).code, 0);
  const holding = await runHook(setup, 'vmware-mysql-snapshot', ['status']);
  assert.match(holding.stdout, /^holding the lock since .* holder pid \d+, ftwrl\n {2}coordinates: binlog binlog\.\d+:\d+/);
  assert.equal((await runHook(setup, 'post-thaw-script', ['thaw'])).code, 0);

  const status = await runHook(setup, 'vmware-mysql-snapshot', ['status']);
  assert.match(status.stdout, /^idle: no lock held, no freeze running\n\nlast runs:\n {2}.* thaw +released; held \d+ ms\n {2}.* freeze +locked; locked in \d+ ms \(1 attempt\(s\), ftwrl\); binlog binlog\.\d+:\d+/);
  const json = JSON.parse((await runHook(setup, 'vmware-mysql-snapshot', ['status', '--json'])).stdout) as { phase: string; last: Array<{ result: string }>; totals: { locked: number } };
  assert.equal(json.phase, 'idle');
  assert.deepEqual(json.last.map((run) => run.result), ['released', 'locked']);
  assert.equal(json.totals.locked, 1);

  const ok = await runHook(setup, 'vmware-mysql-snapshot', ['check', '--max-age', '1h']);
  assert.equal(ok.code, 0, ok.stdout);
  assert.match(ok.stdout, /^VMWARE_MYSQL_SNAPSHOT OK - last freeze .* locked in \d+ ms, held \d+\.\d s \| age=\d+s;3600;;0; time_to_lock=/);
  const text = fs.readFileSync(metrics, 'utf8');
  assert.match(text, /^vmware_mysql_snapshot_freezes_total 1$/m);
  assert.match(text, /^vmware_mysql_snapshot_last_hold_seconds \d/m);
  assert.deepEqual(fs.readdirSync(setup.dir).filter((name) => name.includes('.tmp')), [], 'written by rename, no temporary left');
});

test('status shows a freeze waiting for a quiet moment and who blocks it; a failure makes check CRITICAL and runs notify_command', async (context) => {
  const setup = newSetup(context, { freeze_timeout: '3' });
  const notified = path.join(setup.dir, 'notified.env');
  fs.appendFileSync(setup.configFile, `notify_command = env | grep ^VMS_ | sort > ${notified}; echo "$VMS_MESSAGE" | grep -q freeze_timeout\n`);
  const blocker = await server.connect();
  const [[{ id }]] = (await blocker.query('SELECT CONNECTION_ID() AS id')) as unknown as [[{ id: number }]];
  const sleeping = blocker.query('SELECT SLEEP(8)').catch(() => undefined);
  context.after(async () => {
    await server.query(`KILL ${Number(id)}`).catch(() => undefined);
    await sleeping;
    await blocker.end().catch(() => undefined);
  });
  await sleep(1200);
  const freeze = spawnHook(setup, 'pre-freeze-script', ['freeze']);
  const exited = new Promise<number | null>((resolve) => freeze.on('exit', resolve));
  const waiting = await waitFor('status to show the freeze waiting', async () => {
    const { stdout } = await runHook(setup, 'vmware-mysql-snapshot', ['status']);
    return stdout.startsWith('waiting') ? stdout : undefined;
  });
  assert.match(waiting, new RegExp(`^waiting for a quiet moment: freeze pid \\d+ started .*\\n {2}blocked by thread ${id} \\(root, \\d+ s\\): SELECT SLEEP\\(8\\)`));
  assert.equal(await exited, 1);

  const critical = await runHook(setup, 'vmware-mysql-snapshot', ['check']);
  assert.equal(critical.code, 2, critical.stdout);
  assert.match(critical.stdout, /^VMWARE_MYSQL_SNAPSHOT CRITICAL - the last freeze failed at .*freeze_timeout/);
  const environment = fs.readFileSync(notified, 'utf8');
  assert.match(environment, /^VMS_CODE=FREEZE_TIMEOUT$/m);
  assert.match(environment, /^VMS_OPERATION=freeze$/m);
  assert.match(environment, /^VMS_RESULT=failed$/m);
  assert.doesNotMatch(environment, /password|PWD/i, 'no secret in its environment');
  const events = fs.readFileSync(setup.logFile, 'utf8');
  assert.match(events, /"event":"notify.sent"/);
  const status = await runHook(setup, 'vmware-mysql-snapshot', ['status']);
  assert.match(status.stdout, new RegExp(`freeze +failed; waited for thread ${id} \\(root, \\d+ s\\); no lock within freeze_timeout`));
});

test('notify_command is killed after notify_timeout and does not run after a success', async (context) => {
  const setup = newSetup(context, { freeze_timeout: '1', notify_timeout: '0.5' });
  const marker = path.join(setup.dir, 'ran');
  fs.appendFileSync(setup.configFile, `notify_command = touch ${marker}; sleep 30\n`);
  assert.equal((await runHook(setup, 'pre-freeze-script', ['freeze'])).code, 0);
  assert.equal((await runHook(setup, 'post-thaw-script', ['thaw'])).code, 0);
  assert.equal(fs.existsSync(marker), false, 'no notification after a success');
  // A failing thaw: the hold expires first.
  fs.writeFileSync(setup.configFile, fs.readFileSync(setup.configFile, 'utf8').replace(/^max_lock_time = .*$/m, 'max_lock_time = 0.5'));
  assert.equal((await runHook(setup, 'pre-freeze-script', ['freeze'])).code, 0);
  await sleep(1000);
  const started = Date.now();
  const thawed = await runHook(setup, 'post-thaw-script', ['thaw']);
  assert.equal(thawed.code, 3);
  assert.ok(Date.now() - started < 5000, 'a hanging notify_command does not hold thaw up');
  assert.ok(fs.existsSync(marker));
  assert.match(fs.readFileSync(setup.logFile, 'utf8'), /"event":"notify.failed".*killed after notify_timeout/);
});
