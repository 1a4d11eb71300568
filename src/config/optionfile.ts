/**
 * Parser for MySQL option files (my.cnf syntax), following mysys/my_default.cc of MySQL and MariaDB:
 * `[section]` headers, `key`, `key = value`, `#` and `;` comment lines, a `#` comment after a value,
 * optional quotes around a value, backslash escapes, and the `!include` / `!includedir` directives.
 *
 * Problems are reported as `FILE:LINE: what is wrong` and never quote a value (it may be a password).
 */
import path = require('node:path');
import { listTrustedDirectory, readTrustedFile } from '../safepath';

export interface OptionEntry {
  file: string;
  line: number;
  section: string;
  key: string;
  value: string | undefined;
}

export interface ParsedOptions {
  entries: OptionEntry[];
  problems: string[];
}

/** MySQL gives up at this nesting level too. */
const MAX_INCLUDE_DEPTH = 10;

const ESCAPES: ReadonlyMap<string, string> = new Map([
  ['b', '\b'],
  ['t', '\t'],
  ['n', '\n'],
  ['r', '\r'],
  ['s', ' '],
  ['\\', '\\'],
  ['"', '"'],
  ["'", "'"],
]);

type ParseEvent =
  | { kind: 'entry'; entry: OptionEntry }
  | { kind: 'problem'; problem: string }
  | { kind: 'include'; line: number; target: string }
  | { kind: 'includedir'; line: number; target: string };

type SectionState = { kind: 'none' } | { kind: 'named'; name: string } | { kind: 'broken' };

type ValueResult = { ok: true; value: string } | { ok: false; reason: string };

/** `Lock-Wait-Timeout` and `lock_wait_timeout` name the same option. */
export function normalizeKey(key: string): string {
  return key.toLowerCase().replaceAll('-', '_');
}

/** Parses one file's text. `!include` and `!includedir` lines are ignored here: see readOptionFile. */
export function parseOptionText(text: string, file: string): ParsedOptions {
  const parsed: ParsedOptions = { entries: [], problems: [] };
  for (const event of parseEvents(text, file)) {
    if (event.kind === 'entry') parsed.entries.push(event.entry);
    if (event.kind === 'problem') parsed.problems.push(event.problem);
  }
  return parsed;
}

/**
 * Reads `file` and every file it includes, in order. A relative include path is taken relative to the
 * including file's directory. The top-level file must be readable: its read error is thrown unchanged, so
 * that the caller can word it; an unreadable included file is a problem instead.
 */
export function readOptionFile(
  file: string,
  readFile: (path: string) => string = readTextFile,
  listDir: (dir: string) => string[] = listDirectory,
): ParsedOptions {
  const parsed: ParsedOptions = { entries: [], problems: [] };
  const text = readFile(file);
  appendFile(file, text, [path.resolve(file)], { readFile, listDir, parsed });
  return parsed;
}

/** A short reason for a failed read, such as "not found" or "permission denied". */
export function describeReadError(error: unknown): string {
  switch (errorCode(error)) {
    case 'ENOENT':
      return 'not found';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EISDIR':
      return 'is a directory';
    case 'ENOTDIR':
      return 'not a directory';
    case 'UNSAFE_PATH':
      return `not safe: ${error instanceof Error ? error.message : String(error)}`;
    default:
      return error instanceof Error ? error.message : String(error);
  }
}

export function errorCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null || !('code' in error)) return undefined;
  return typeof error.code === 'string' ? error.code : undefined;
}

interface IncludeContext {
  readFile: (path: string) => string;
  listDir: (dir: string) => string[];
  parsed: ParsedOptions;
}

/** Opened once, checked on the descriptor (and its directories), and that text is what is parsed. */
function readTextFile(file: string): string {
  return readTrustedFile(file).text;
}

/** Full paths of the directory's entries. */
function listDirectory(directory: string): string[] {
  return listTrustedDirectory(directory);
}

/** `chain` holds the resolved paths of the files being read, outermost first. */
function appendFile(file: string, text: string, chain: readonly string[], context: IncludeContext): void {
  for (const event of parseEvents(text, file)) {
    switch (event.kind) {
      case 'entry':
        context.parsed.entries.push(event.entry);
        break;
      case 'problem':
        context.parsed.problems.push(event.problem);
        break;
      case 'include':
        includeFile(path.resolve(path.dirname(file), event.target), `${file}:${event.line}`, chain, context);
        break;
      case 'includedir':
        includeDirectory(path.resolve(path.dirname(file), event.target), `${file}:${event.line}`, chain, context);
        break;
    }
  }
}

function includeFile(target: string, where: string, chain: readonly string[], context: IncludeContext): void {
  if (chain.includes(target)) {
    context.parsed.problems.push(`${where}: !include ${target} is already being read (include cycle): skipped`);
    return;
  }
  if (chain.length > MAX_INCLUDE_DEPTH) {
    context.parsed.problems.push(
      `${where}: !include ${target} is nested more than ${MAX_INCLUDE_DEPTH} levels deep: skipped`,
    );
    return;
  }
  let text: string;
  try {
    text = context.readFile(target);
  } catch (error) {
    context.parsed.problems.push(`${where}: included file ${target} cannot be read (${describeReadError(error)})`);
    return;
  }
  appendFile(target, text, [...chain, target], context);
}

/** On Unix MySQL reads only the `.cnf` files of an included directory, in sorted order. */
function includeDirectory(directory: string, where: string, chain: readonly string[], context: IncludeContext): void {
  let names: string[];
  try {
    names = context.listDir(directory);
  } catch (error) {
    context.parsed.problems.push(
      `${where}: included directory ${directory} cannot be read (${describeReadError(error)})`,
    );
    return;
  }
  const optionFiles = names.map((name) => path.resolve(directory, name)).filter((file) => file.endsWith('.cnf')).sort();
  for (const file of optionFiles) includeFile(file, where, chain, context);
}

function parseEvents(text: string, file: string): ParseEvent[] {
  const events: ParseEvent[] = [];
  let section: SectionState = { kind: 'none' };
  // A CR before the newline goes with the line's trailing whitespace.
  const lines = (text.startsWith('\uFEFF') ? text.slice(1) : text).split('\n');
  lines.forEach((rawLine, index) => {
    const lineNumber = index + 1;
    const where = `${file}:${lineNumber}`;
    const line = trimWhitespace(rawLine);
    if (line === '' || line.startsWith('#') || line.startsWith(';')) return;

    if (line.startsWith('[')) {
      const name = parseSectionName(line);
      if (name === undefined) {
        events.push({ kind: 'problem', problem: `${where}: malformed section header: expected [name]` });
        section = { kind: 'broken' };
      } else {
        section = { kind: 'named', name };
      }
      return;
    }

    if (line.startsWith('!')) {
      events.push(parseDirective(line, lineNumber, where));
      return;
    }

    // The header of this section was already reported as malformed.
    if (section.kind === 'broken') return;
    if (section.kind === 'none') {
      events.push({ kind: 'problem', problem: `${where}: option outside of any [section]` });
      return;
    }
    events.push(parseOptionLine(line, section.name, file, lineNumber));
  });
  return events;
}

/** `[ Client ]` gives `client`; anything after `]` other than a comment makes the header malformed. */
function parseSectionName(line: string): string | undefined {
  const match = /^\[([^\]]*)\][ \t]*(?:[#;].*)?$/.exec(line);
  if (match === null) return undefined;
  const name = trimWhitespace(match[1]).toLowerCase();
  return name === '' ? undefined : name;
}

function parseDirective(line: string, lineNumber: number, where: string): ParseEvent {
  const match = /^!(includedir|include)(?:[ \t]+(.*))?$/.exec(line);
  if (match === null) {
    return { kind: 'problem', problem: `${where}: unknown directive: expected !include PATH or !includedir DIR` };
  }
  const directive = match[1] === 'includedir' ? 'includedir' : 'include';
  const target = trimWhitespace(match[2] ?? '');
  if (target === '') return { kind: 'problem', problem: `${where}: !${directive} needs a path` };
  return { kind: directive, line: lineNumber, target };
}

function parseOptionLine(line: string, section: string, file: string, lineNumber: number): ParseEvent {
  const where = `${file}:${lineNumber}`;
  const equals = line.indexOf('=');
  const hash = line.indexOf('#');
  const hasValue = equals >= 0 && (hash < 0 || equals < hash);
  const keyText = hasValue ? line.slice(0, equals) : hash >= 0 ? line.slice(0, hash) : line;
  const key = normalizeKey(trimWhitespace(keyText));
  if (key === '') return { kind: 'problem', problem: `${where}: option without a name` };
  if (!hasValue) return { kind: 'entry', entry: { file, line: lineNumber, section, key, value: undefined } };

  const value = parseValue(line.slice(equals + 1));
  if (!value.ok) return { kind: 'problem', problem: `${where}: ${key}: ${value.reason}` };
  return { kind: 'entry', entry: { file, line: lineNumber, section, key, value: value.value } };
}

/**
 * As MySQL does: drop a trailing `#` comment (a `#` inside quotes is literal), trim, remove one pair of
 * matching outer quotes, then resolve escapes.
 */
function parseValue(text: string): ValueResult {
  const value = trimWhitespace(stripTrailingComment(text));
  const quote = value[0];
  if (quote !== '"' && quote !== "'") return { ok: true, value: unescapeValue(value) };
  if (value.length < 2 || !value.endsWith(quote)) {
    return { ok: false, reason: `unterminated ${quote} quote (or text after the closing quote)` };
  }
  return { ok: true, value: unescapeValue(value.slice(1, -1)) };
}

/** Port of remove_end_comment() in mysys: quotes are tracked anywhere in the value, escapes only inside quotes. */
function stripTrailingComment(text: string): string {
  let openQuote: string | undefined;
  let escaped = false;
  for (let index = 0; index < text.length; index++) {
    const character = text[index];
    if ((character === '"' || character === "'") && !escaped) {
      if (openQuote === undefined) openQuote = character;
      else if (openQuote === character) openQuote = undefined;
    }
    if (openQuote === undefined && character === '#') return text.slice(0, index);
    escaped = openQuote !== undefined && character === '\\' && !escaped;
  }
  return text;
}

/** An unknown escape keeps its backslash (`\d` stays `\d`), and so does a backslash at the very end. */
function unescapeValue(text: string): string {
  let result = '';
  for (let index = 0; index < text.length; index++) {
    const character = text[index];
    if (character === '\\' && index < text.length - 1) {
      const next = text[index + 1];
      result += ESCAPES.get(next) ?? `\\${next}`;
      index++;
    } else {
      result += character;
    }
  }
  return result;
}

/** ASCII whitespace only, like MySQL: a non-breaking space at the edge of a password is part of it. */
function trimWhitespace(text: string): string {
  let start = 0;
  let end = text.length;
  while (start < end && isAsciiWhitespace(text.charCodeAt(start))) start++;
  while (end > start && isAsciiWhitespace(text.charCodeAt(end - 1))) end--;
  return text.slice(start, end);
}

/** Space, or \t \n \v \f \r. Not a regular expression: V8 compiles each at its first use, and options are read at every start. */
function isAsciiWhitespace(code: number): boolean {
  return code === 32 || (code >= 9 && code <= 13);
}
