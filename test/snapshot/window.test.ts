import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BUILTIN_IGNORED_COMMANDS, BUILTIN_IGNORED_USERS, blockerKey, findBlockers, statementPreview, windowRules, type WindowRules } from '../../src/snapshot/window';
import { type ProcessRow } from '../../src/server/processlist';

const LONG_QUERY_TIME = 1;

/** A thread running a statement for two seconds: a blocker under the default rules. */
function row(overrides: Partial<ProcessRow> = {}): ProcessRow {
  return {
    id: 10,
    user: 'app',
    host: 'localhost',
    db: 'app',
    command: 'Query',
    timeMs: 2000,
    state: 'Sending data',
    info: 'SELECT SLEEP(100)',
    ...overrides,
  };
}

function rules(
  overrides: { longQueryTime?: number; ignoreCommands?: string[]; ignoreUsers?: string[]; ownIds?: number[] } = {},
): WindowRules {
  return windowRules({
    longQueryTime: overrides.longQueryTime ?? LONG_QUERY_TIME,
    ignoreCommands: overrides.ignoreCommands ?? [],
    ignoreUsers: overrides.ignoreUsers ?? [],
    ownIds: overrides.ownIds ?? [],
  });
}

function blockerIds(rows: ProcessRow[], windowRulesUsed: WindowRules = rules()): number[] {
  return findBlockers(rows, windowRulesUsed).map((blocker) => blocker.id);
}

test('a long-running statement is a blocker; no rows means a quiet moment', () => {
  assert.deepEqual(blockerIds([row()]), [10]);
  assert.deepEqual(findBlockers([], rules()), []);
});

test('windowRules converts seconds to milliseconds and lowercases every name', () => {
  const built = rules({ longQueryTime: 0.25, ignoreCommands: ['Killed'], ignoreUsers: ['Backup'], ownIds: [3, 4] });
  assert.equal(built.longQueryMs, 250);
  assert.ok(built.ignoreCommands.includes('killed'));
  assert.ok(built.ignoreCommands.includes('binlog dump gtid'));
  assert.ok(built.ignoreUsers.includes('backup'));
  assert.ok(built.ignoreUsers.includes('system user'));
  assert.deepEqual([...built.ownIds], [3, 4]);
});

test('our own connections are never blockers', () => {
  const rows = [row({ id: 1 }), row({ id: 2 }), row({ id: 3 })];
  assert.deepEqual(blockerIds(rows, rules({ ownIds: [1, 3] })), [2]);
});

test('the ownIds iterable is read once into a set: a generator works', () => {
  function* ids(): Generator<number> {
    yield 7;
  }
  const built = windowRules({ longQueryTime: 1, ignoreCommands: [], ignoreUsers: [], ownIds: ids() });
  assert.deepEqual(blockerIds([row({ id: 7 }), row({ id: 8 })], built), [8]);
  assert.deepEqual(blockerIds([row({ id: 7 })], built), []);
});

test('every built-in ignored command is ignored, in any case', () => {
  assert.equal(BUILTIN_IGNORED_COMMANDS.length, 11);
  for (const command of BUILTIN_IGNORED_COMMANDS) {
    assert.deepEqual(blockerIds([row({ command })]), [], command);
    assert.deepEqual(blockerIds([row({ command: command.toUpperCase() })]), [], command.toUpperCase());
  }
});

test('the event scheduler and system threads are ignored, with huge times', () => {
  assert.deepEqual([...BUILTIN_IGNORED_USERS], ['system user', 'event_scheduler']);
  for (const user of BUILTIN_IGNORED_USERS) {
    assert.deepEqual(blockerIds([row({ user, timeMs: 86_400_000 })]), [], user);
    assert.deepEqual(blockerIds([row({ user: user.toUpperCase() })]), [], user.toUpperCase());
  }
});

test('configured commands and users are ignored too, case-insensitively both ways', () => {
  const configured = rules({ ignoreCommands: ['KILLED', 'execute'], ignoreUsers: ['Backup_Agent'] });
  assert.deepEqual(blockerIds([row({ command: 'Killed' })], configured), []);
  assert.deepEqual(blockerIds([row({ command: 'Execute' })], configured), []);
  assert.deepEqual(blockerIds([row({ user: 'backup_agent' })], configured), []);
  assert.deepEqual(blockerIds([row({ user: 'BACKUP_AGENT' })], configured), []);
  assert.deepEqual(blockerIds([row({ user: 'backup' }), row({ id: 11, command: 'Kill' })], configured), [10, 11]);
});

test('a command or user is matched whole, not as a prefix', () => {
  assert.deepEqual(blockerIds([row({ command: 'Sleeping' }), row({ id: 11, user: 'system' })]), [10, 11]);
});

test('a thread without statement text is not a blocker (NULL, empty or blank Info)', () => {
  for (const info of [null, '', '   ', '\n\t ']) {
    assert.deepEqual(blockerIds([row({ info })]), [], JSON.stringify(info));
  }
});

test('the threshold is inclusive: a statement exactly long_query_time old blocks', () => {
  assert.deepEqual(blockerIds([row({ timeMs: 999 })]), []);
  assert.deepEqual(blockerIds([row({ timeMs: 1000 })]), [10]);
  assert.deepEqual(blockerIds([row({ timeMs: 1001 })]), [10]);
});

test('with long_query_time 0 every running statement blocks, even one just started', () => {
  assert.deepEqual(blockerIds([row({ timeMs: 0 })], rules({ longQueryTime: 0 })), [10]);
});

test('blockers are sorted longest-running first, ties keep their order, ignored rows dropped', () => {
  const rows = [
    row({ id: 1, timeMs: 1500 }),
    row({ id: 2, timeMs: 9000 }),
    row({ id: 3, timeMs: 500 }),
    row({ id: 4, timeMs: 4000 }),
    row({ id: 5, timeMs: 4000 }),
    row({ id: 6, timeMs: 60_000, command: 'Sleep' }),
  ];
  assert.deepEqual(blockerIds(rows), [2, 4, 5, 1]);
});

test('findBlockers leaves its input alone', () => {
  const rows = [row({ id: 1, timeMs: 1000 }), row({ id: 2, timeMs: 5000 })];
  const copy = rows.map((entry) => ({ ...entry }));
  findBlockers(rows, rules());
  assert.deepEqual(rows, copy);
});

test('blockerKey is the same for the same thread and statement, whatever else changes', () => {
  const first = row({ timeMs: 1000, state: 'Sending data' });
  const later = row({ timeMs: 7000, state: 'Waiting for table metadata lock', db: null });
  assert.equal(blockerKey(first), blockerKey(later));
});

test('blockerKey differs for another thread or another statement', () => {
  const base = blockerKey(row());
  assert.notEqual(blockerKey(row({ id: 11 })), base);
  assert.notEqual(blockerKey(row({ info: 'SELECT SLEEP(101)' })), base);
  assert.notEqual(blockerKey(row({ info: null })), base);
  // The separator keeps id and statement apart: thread 1 running "1 x" is not thread 11 running " x".
  assert.notEqual(blockerKey(row({ id: 1, info: '1 x' })), blockerKey(row({ id: 11, info: ' x' })));
});

test('statementPreview puts the statement on one line and trims it', () => {
  assert.equal(statementPreview('  SELECT *\n  FROM   t\r\n\tWHERE id = 1  '), 'SELECT * FROM t WHERE id = 1');
  assert.equal(statementPreview(null), '');
  assert.equal(statementPreview(''), '');
  assert.equal(statementPreview(' \n '), '');
});

test('statementPreview truncates beyond the limit with an ellipsis', () => {
  const long = 'x'.repeat(250);
  assert.equal(statementPreview(long), `${'x'.repeat(200)}…`);
  assert.equal(statementPreview('x'.repeat(200)), 'x'.repeat(200));
  assert.equal(statementPreview('abcdef', 3), 'abc…');
  assert.equal(statementPreview('abc', 3), 'abc');
  // The limit applies after whitespace is collapsed.
  assert.equal(statementPreview('a     b', 3), 'a b');
});
