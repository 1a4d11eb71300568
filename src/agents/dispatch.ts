/**
 * Which operation the program performs, decided from the name it was started under (basename of
 * process.argv0: a symlink's own name, never the real executable's) and its first words. The names and
 * their argument shapes are the agents' profiles (profiles.ts).
 */
import { profileForName, type AgentId, type NameRule, type Operation } from './profiles';

export type { Operation } from './profiles';

export type Invocation =
  | { kind: 'hook'; operation: Operation; scriptArg: string | undefined; agent: AgentId | undefined }
  | { kind: 'holder' }
  | { kind: 'cli'; args: string[] }
  | { kind: 'usage'; message: string };

export const HOLDER_NAME = 'pre-freeze-mysql-lock';
export const PRE_FREEZE_NAME = 'pre-freeze-script';
export const POST_THAW_NAME = 'post-thaw-script';
export const CLI_NAME = 'vmware-mysql-snapshot';

const OPERATIONS = new Map<string, Operation>([
  ['freeze', 'freeze'],
  ['thaw', 'thaw'],
  ['freezefail', 'freezeFail'],
]);

/** Under a name no profile knows (backupScripts.d/NN-mysql, fsfreeze-hook.d/mysql), the first word decides. */
const ANY_NAME: NameRule = { name: '', operations: ['freeze', 'thaw', 'freezeFail'], args: { min: 0, max: 1, synopsis: '[scriptArg]' }, strict: false };

/** `freeze`, `thaw`, `freezeFail` in any case (tools.conf's comment spells it `freezefail`). */
export function parseOperation(word: string | undefined): Operation | undefined {
  return word === undefined ? undefined : OPERATIONS.get(word.toLowerCase());
}

export function dispatch(name: string, args: readonly string[]): Invocation {
  if (name === HOLDER_NAME) return { kind: 'holder' };
  if (name === CLI_NAME) return { kind: 'cli', args: [...args] };
  const known = profileForName(name);
  const rule = known?.rule ?? { ...ANY_NAME, name };
  const matched = matchRule(rule, args);
  if (matched !== undefined) {
    const rest = matched.rest;
    return { kind: 'hook', operation: matched.operation, scriptArg: rest.length === 0 ? undefined : rest.join(' '), agent: known?.profile.id };
  }
  return rule.strict ? usage(rule, args) : { kind: 'cli', args: [...args] };
}

function matchRule(rule: NameRule, args: readonly string[]): { operation: Operation; rest: readonly string[] } | undefined {
  const word = parseOperation(args[0]);
  let operation: Operation;
  let rest: readonly string[];
  if (word !== undefined && rule.operations.includes(word)) {
    operation = word;
    rest = args.slice(1);
  } else if (rule.implicit !== undefined && args.length === 0) {
    operation = rule.implicit;
    rest = [];
  } else {
    return undefined;
  }
  return rest.length >= rule.args.min && rest.length <= rule.args.max ? { operation, rest } : undefined;
}

function usage(rule: NameRule, args: readonly string[]): Invocation {
  const words = rule.operations.join('|');
  const synopsis = `${rule.implicit === undefined ? words : `[${words}]`}${rule.args.synopsis === '' ? '' : ` ${rule.args.synopsis}`}`;
  const got = args.length === 0 ? 'no arguments' : `"${args.join(' ')}"`;
  return { kind: 'usage', message: `usage: ${rule.name} ${synopsis} (got ${got})` };
}
