import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { normalizeKey, parseOptionText, readOptionFile, type ParsedOptions } from '../../src/config/optionfile';

const FILE = '/etc/test.cnf';

/** The value of the only entry of `[client]\n${line}`, failing on any problem. */
function valueOf(line: string): string | undefined {
  const parsed = parseOptionText(`[client]\n${line}\n`, FILE);
  assert.deepEqual(parsed.problems, []);
  assert.equal(parsed.entries.length, 1);
  return parsed.entries[0].value;
}

function problemsOf(text: string): string[] {
  return parseOptionText(text, FILE).problems;
}

function notFound(file: string): Error {
  return Object.assign(new Error(`ENOENT: no such file or directory, open '${file}'`), { code: 'ENOENT' });
}

/** An in-memory file system for readOptionFile. */
function fakeFileSystem(files: Record<string, string>): {
  readFile: (file: string) => string;
  listDir: (directory: string) => string[];
} {
  return {
    readFile: (file) => {
      const text = files[file];
      if (text === undefined) throw notFound(file);
      return text;
    },
    listDir: (directory) => {
      const prefix = `${directory}/`;
      const names = Object.keys(files)
        .filter((file) => file.startsWith(prefix))
        .map((file) => file.slice(prefix.length));
      if (names.length === 0) throw notFound(directory);
      // Unsorted on purpose: readOptionFile must sort.
      return names.reverse();
    },
  };
}

function keysAndValues(parsed: ParsedOptions): string[] {
  return parsed.entries.map((entry) => `${entry.section}.${entry.key}=${entry.value ?? '(none)'}`);
}

test('normalizeKey lower-cases and turns dashes into underscores', () => {
  assert.equal(normalizeKey('Lock-Wait-Timeout'), 'lock_wait_timeout');
  assert.equal(normalizeKey('lock_wait_timeout'), 'lock_wait_timeout');
  assert.equal(normalizeKey('defaults-file'), 'defaults_file');
});

test('entries carry file, line, section, normalised key and value', () => {
  const parsed = parseOptionText('[client]\nuser = backup\n\n[snapshot]\nLock-Wait-Timeout=5\n', FILE);
  assert.deepEqual(parsed.problems, []);
  assert.deepEqual(parsed.entries, [
    { file: FILE, line: 2, section: 'client', key: 'user', value: 'backup' },
    { file: FILE, line: 5, section: 'snapshot', key: 'lock_wait_timeout', value: '5' },
  ]);
});

test('section names are trimmed and lower-cased but dashes are kept', () => {
  const parsed = parseOptionText('[ Client ]\na=1\n[\tmysqld-8.0\t]\nb=2\n[mysqld_safe] # comment\nc=3\n', FILE);
  assert.deepEqual(parsed.problems, []);
  assert.deepEqual(
    parsed.entries.map((entry) => entry.section),
    ['client', 'mysqld-8.0', 'mysqld_safe'],
  );
});

test('malformed section headers are problems and their options are skipped', () => {
  const parsed = parseOptionText('[client\nuser=x\n[]\nhost=y\n[client] junk\nport=1\n', FILE);
  assert.deepEqual(parsed.problems, [
    `${FILE}:1: malformed section header: expected [name]`,
    `${FILE}:3: malformed section header: expected [name]`,
    `${FILE}:5: malformed section header: expected [name]`,
  ]);
  assert.deepEqual(parsed.entries, []);
});

test('an option before any section is a problem', () => {
  const parsed = parseOptionText('# header\nuser = x\n[client]\nhost = y\n', FILE);
  assert.deepEqual(parsed.problems, [`${FILE}:2: option outside of any [section]`]);
  assert.deepEqual(keysAndValues(parsed), ['client.host=y']);
});

test('comment lines start with # or ; after optional blanks; blank lines are ignored', () => {
  const text = '# top\n; also\n[client]\n   # indented\n\t; indented\n\n   \nuser=x\r\n';
  const parsed = parseOptionText(text, FILE);
  assert.deepEqual(parsed.problems, []);
  assert.deepEqual(keysAndValues(parsed), ['client.user=x']);
  assert.equal(parsed.entries[0].line, 8);
});

test('key forms: bare key, key = value, key=value, empty value', () => {
  const parsed = parseOptionText('[client]\nskip-ssl\nuser = a\nhost=b\npassword =\n  port   =   3306  \n', FILE);
  assert.deepEqual(parsed.problems, []);
  assert.deepEqual(keysAndValues(parsed), [
    'client.skip_ssl=(none)',
    'client.user=a',
    'client.host=b',
    'client.password=',
    'client.port=3306',
  ]);
});

test('a bare key may carry a trailing comment', () => {
  const parsed = parseOptionText('[client]\nskip-ssl # no TLS\nkey # comment = not a value\n', FILE);
  assert.deepEqual(keysAndValues(parsed), ['client.skip_ssl=(none)', 'client.key=(none)']);
});

test('a line with only a value is a problem that does not show the value', () => {
  const problems = problemsOf('[client]\n = s3cret\n');
  assert.deepEqual(problems, [`${FILE}:2: option without a name`]);
});

test('unquoted values: # starts a comment, ; is literal, inner whitespace is kept', () => {
  assert.equal(valueOf('user = backup # the backup user'), 'backup');
  assert.equal(valueOf('user = backup#no space needed'), 'backup');
  assert.equal(valueOf('password = a;b'), 'a;b');
  assert.equal(valueOf('password = a ; b'), 'a ; b');
  assert.equal(valueOf('password = two  words  '), 'two  words');
  assert.equal(valueOf('password = #'), '');
});

test('unquoted values split on the first = only', () => {
  assert.equal(valueOf('password=a=b'), 'a=b');
  assert.equal(valueOf('password = =leading'), '=leading');
});

test('quoted values keep #, ; and whitespace literally', () => {
  assert.equal(valueOf('password = "a # b ; c"'), 'a # b ; c');
  assert.equal(valueOf("password = '  padded  '"), '  padded  ');
  assert.equal(valueOf('password = ""'), '');
  assert.equal(valueOf("password = ''"), '');
  assert.equal(valueOf('password = "quoted" # comment after the quote'), 'quoted');
  assert.equal(valueOf("password='x'   "), 'x');
});

test('tricky passwords round-trip when quoted as MySQL requires', () => {
  assert.equal(valueOf(`password = "a#b;c'd=e f"`), `a#b;c'd=e f`);
  assert.equal(valueOf(`password = 'x"y'`), 'x"y');
  assert.equal(valueOf('password = "p\\"q"'), 'p"q');
  assert.equal(valueOf("password = 'it\\'s'"), "it's");
  assert.equal(valueOf('password = "back\\\\slash"'), 'back\\slash');
  assert.equal(valueOf('password = "C:\\path"'), 'C:\\path');
  assert.equal(valueOf('password = "ends with backslash\\\\"'), 'ends with backslash\\');
  assert.equal(valueOf('password = " \\s#;=\'\\t"'), "  #;='\t");
});

test('MySQL quirks: outer quotes are removed when they match, a quote inside an unquoted value protects #', () => {
  // mysys strips one pair of matching outer quotes; it does not require inner quotes to be escaped.
  assert.equal(valueOf('password = "abc"def"'), 'abc"def');
  // A backslash before the final quote stays a backslash, as in MySQL.
  assert.equal(valueOf('password = "abc\\"'), 'abc\\');
  // remove_end_comment() tracks quotes from anywhere in the value.
  assert.equal(valueOf("password = it's#x"), "it's#x");
  assert.equal(valueOf('password = ab"c'), 'ab"c');
});

test('escape sequences work in quoted and unquoted values', () => {
  assert.equal(valueOf('password = a\\bb\\tc\\nd\\re\\\\f\\sg\\"h\\\'i'), 'a\bb\tc\nd\re\\f g"h\'i');
  assert.equal(valueOf('password = "a\\bb\\tc\\nd\\re\\\\f\\sg\\"h\\\'i"'), 'a\bb\tc\nd\re\\f g"h\'i');
  assert.equal(valueOf('password = trailing\\s'), 'trailing ');
});

test('a backslash before any other character is kept with that character', () => {
  assert.equal(valueOf('password = \\d\\x\\0'), '\\d\\x\\0');
  assert.equal(valueOf('password = end\\'), 'end\\');
});

test('an unterminated quote is a problem naming file, line and key but not the value', () => {
  const problems = problemsOf('[client]\nuser = x\npassword = "s3cret\n');
  assert.equal(problems.length, 1);
  assert.match(problems[0], /^\/etc\/test\.cnf:3: password: unterminated " quote/);
  assert.doesNotMatch(problems[0], /s3cret/);
  assert.deepEqual(problemsOf("[client]\npassword = '\n").length, 1);
});

test('text after a closing quote is a problem without the value', () => {
  const problems = problemsOf('[client]\npassword = "s3cret" extra\n');
  assert.equal(problems.length, 1);
  assert.match(problems[0], /^\/etc\/test\.cnf:2: password: /);
  assert.doesNotMatch(problems[0], /s3cret|extra/);
});

test('a quoted # keeps a later # from being a comment only while the quote is open', () => {
  assert.equal(valueOf(`password = "x#y" # real comment`), 'x#y');
});

test('Windows line endings and a byte order mark are accepted', () => {
  const parsed = parseOptionText('\uFEFF[client]\r\nuser = x\r\npassword = "y z"\r\n', FILE);
  assert.deepEqual(parsed.problems, []);
  assert.deepEqual(keysAndValues(parsed), ['client.user=x', 'client.password=y z']);
});

test('a non-breaking space at the edge of a value is kept (MySQL trims ASCII whitespace only)', () => {
  assert.equal(valueOf('password = \u00a0x\u00a0'), '\u00a0x\u00a0');
});

test('parseOptionText ignores include directives but reports malformed ones', () => {
  const parsed = parseOptionText('!include /etc/other.cnf\n!includedir /etc/conf.d\n!include\n!source x\n', FILE);
  assert.deepEqual(parsed.entries, []);
  assert.deepEqual(parsed.problems, [
    `${FILE}:3: !include needs a path`,
    `${FILE}:4: unknown directive: expected !include PATH or !includedir DIR`,
  ]);
});

test('readOptionFile follows !include, relative to the including file, in place', () => {
  const fileSystem = fakeFileSystem({
    '/etc/main.cnf': '[client]\nuser=a\n!include extra/more.cnf\nhost=h\n',
    '/etc/extra/more.cnf': '[snapshot]\nrun_dir=/run/x\n',
  });
  const parsed = readOptionFile('/etc/main.cnf', fileSystem.readFile, fileSystem.listDir);
  assert.deepEqual(parsed.problems, []);
  assert.deepEqual(keysAndValues(parsed), ['client.user=a', 'snapshot.run_dir=/run/x', 'client.host=h']);
  assert.equal(parsed.entries[1].file, '/etc/extra/more.cnf');
  assert.equal(parsed.entries[1].line, 2);
});

test('an included file starts outside of any section', () => {
  const fileSystem = fakeFileSystem({
    '/etc/main.cnf': '[client]\n!include /etc/other.cnf\n',
    '/etc/other.cnf': 'user=a\n',
  });
  const parsed = readOptionFile('/etc/main.cnf', fileSystem.readFile, fileSystem.listDir);
  assert.deepEqual(parsed.problems, ['/etc/other.cnf:1: option outside of any [section]']);
});

test('!includedir reads only .cnf files, in sorted order', () => {
  const fileSystem = fakeFileSystem({
    '/etc/main.cnf': '!includedir /etc/conf.d\n',
    '/etc/conf.d/20-b.cnf': '[client]\nuser=b\n',
    '/etc/conf.d/10-a.cnf': '[client]\nuser=a\n',
    '/etc/conf.d/30-c.cnf.dpkg-old': '[client]\nuser=old\n',
    '/etc/conf.d/README': 'not an option file',
    '/etc/conf.d/40-d.ini': '[client]\nuser=ini\n',
  });
  const parsed = readOptionFile('/etc/main.cnf', fileSystem.readFile, fileSystem.listDir);
  assert.deepEqual(parsed.problems, []);
  assert.deepEqual(keysAndValues(parsed), ['client.user=a', 'client.user=b']);
});

test('a missing include or include directory is a problem', () => {
  const fileSystem = fakeFileSystem({
    '/etc/main.cnf': '[client]\n!include missing.cnf\n!includedir /nowhere\nuser=a\n',
  });
  const parsed = readOptionFile('/etc/main.cnf', fileSystem.readFile, fileSystem.listDir);
  assert.deepEqual(parsed.problems, [
    '/etc/main.cnf:2: included file /etc/missing.cnf cannot be read (not found)',
    '/etc/main.cnf:3: included directory /nowhere cannot be read (not found)',
  ]);
  assert.deepEqual(keysAndValues(parsed), ['client.user=a']);
});

test('include cycles are reported once and do not loop', () => {
  const fileSystem = fakeFileSystem({
    '/etc/a.cnf': '[client]\nuser=a\n!include b.cnf\n',
    '/etc/b.cnf': '[client]\nhost=b\n!include a.cnf\n!include b.cnf\n',
  });
  const parsed = readOptionFile('/etc/a.cnf', fileSystem.readFile, fileSystem.listDir);
  assert.deepEqual(keysAndValues(parsed), ['client.user=a', 'client.host=b']);
  assert.deepEqual(parsed.problems, [
    '/etc/b.cnf:3: !include /etc/a.cnf is already being read (include cycle): skipped',
    '/etc/b.cnf:4: !include /etc/b.cnf is already being read (include cycle): skipped',
  ]);
});

test('includes nest at most 10 levels deep', () => {
  const files: Record<string, string> = {};
  for (let level = 0; level <= 12; level++) {
    files[`/etc/level${level}.cnf`] = `[client]\nlevel${level}=yes\n!include level${level + 1}.cnf\n`;
  }
  const fileSystem = fakeFileSystem(files);
  const parsed = readOptionFile('/etc/level0.cnf', fileSystem.readFile, fileSystem.listDir);
  assert.equal(parsed.entries.length, 11);
  assert.deepEqual(parsed.problems, [
    '/etc/level10.cnf:3: !include /etc/level11.cnf is nested more than 10 levels deep: skipped',
  ]);
});

test('readOptionFile throws the read error of the top-level file unchanged', () => {
  const fileSystem = fakeFileSystem({});
  assert.throws(() => readOptionFile('/etc/none.cnf', fileSystem.readFile, fileSystem.listDir), { code: 'ENOENT' });
});

test('readOptionFile reads real files and directories by default', () => {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'optionfile-test-'));
  try {
    fs.mkdirSync(path.join(directory, 'conf.d'));
    fs.writeFileSync(path.join(directory, 'main.cnf'), '[client]\nuser=a\n!include sub.cnf\n!includedir conf.d\n');
    fs.writeFileSync(path.join(directory, 'sub.cnf'), '[client]\npassword="p#w"\n');
    fs.writeFileSync(path.join(directory, 'conf.d', 'b.cnf'), '[snapshot]\nb=2\n');
    fs.writeFileSync(path.join(directory, 'conf.d', 'a.cnf'), '[snapshot]\na=1\n');
    fs.writeFileSync(path.join(directory, 'conf.d', 'c.txt'), '[snapshot]\nc=3\n');
    const parsed = readOptionFile(path.join(directory, 'main.cnf'));
    assert.deepEqual(parsed.problems, []);
    assert.deepEqual(keysAndValues(parsed), ['client.user=a', 'client.password=p#w', 'snapshot.a=1', 'snapshot.b=2']);
  } finally {
    fs.rmSync(directory, { recursive: true, force: true });
  }
});

test('problems never contain password values', () => {
  const secret = 'Sup3r-Secr3t';
  const text = [
    `password = ${secret}`,
    '[client]',
    `password = "${secret}`,
    `password = '${secret}' trailing`,
    `= ${secret}`,
    `[broken ${secret}`,
  ].join('\n');
  const problems = problemsOf(text);
  assert.equal(problems.length, 5);
  for (const problem of problems) assert.doesNotMatch(problem, /Secr3t/);
});
