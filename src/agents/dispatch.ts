/**
 * Which operation the program performs, decided from the name it was started under (basename of
 * process.argv0: a symlink's own name, never the real executable's) and its first words.
 */
export type Operation = 'freeze' | 'thaw' | 'freezeFail';

export type Invocation =
  | { kind: 'hook'; operation: Operation; scriptArg: string | undefined }
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

/** `freeze`, `thaw`, `freezeFail` in any case (tools.conf's comment spells it `freezefail`). */
export function parseOperation(word: string | undefined): Operation | undefined {
  return word === undefined ? undefined : OPERATIONS.get(word.toLowerCase());
}

export function dispatch(name: string, args: readonly string[]): Invocation {
  if (name === HOLDER_NAME) return { kind: 'holder' };
  if (name === PRE_FREEZE_NAME) return preFreeze(args);
  if (name === POST_THAW_NAME) return postThaw(args);
  const operation = parseOperation(args[0]);
  // Run under any other name (backupScripts.d/NN-mysql, fsfreeze-hook.d/mysql), the first word decides.
  if (operation !== undefined && args.length <= 2 && name !== CLI_NAME) {
    return { kind: 'hook', operation, scriptArg: args[1] };
  }
  return { kind: 'cli', args: [...args] };
}

function preFreeze(args: readonly string[]): Invocation {
  if (args.length === 0) return { kind: 'hook', operation: 'freeze', scriptArg: undefined };
  if (parseOperation(args[0]) === 'freeze' && args.length <= 2) {
    return { kind: 'hook', operation: 'freeze', scriptArg: args[1] };
  }
  return usage(PRE_FREEZE_NAME, '[freeze] [scriptArg]', args);
}

function postThaw(args: readonly string[]): Invocation {
  const operation = parseOperation(args[0]);
  if ((operation === 'thaw' || operation === 'freezeFail') && args.length <= 2) {
    return { kind: 'hook', operation, scriptArg: args[1] };
  }
  return usage(POST_THAW_NAME, 'thaw|freezeFail [scriptArg]', args);
}

function usage(name: string, synopsis: string, args: readonly string[]): Invocation {
  const got = args.length === 0 ? 'no arguments' : `"${args.join(' ')}"`;
  return { kind: 'usage', message: `usage: ${name} ${synopsis} (got ${got})` };
}
