/**
 * The program. What to do is decided by the name we were started under: basename(process.argv0), the
 * symlink's name (process.argv[0] is the real executable). Each branch loads only what it needs.
 */
import type { Invocation } from './agents/dispatch';
import { EXIT } from './errors';
import { recordProgramLoad, type AssetLoad } from './runtime/packages';
import type { SpawnedHolder } from './snapshot/spawnholder';
import type { Waiter } from './snapshot/waiter';

/** What the executable's main script (src/runtime/seamain.ts) did before it loaded the program. */
export interface Start {
  load: AssetLoad;
  /** what to do, from the name we were started under and the arguments */
  invocation: Invocation;
  /**
   * A freeze's lock holder: a second process, whose start-up overlaps everything freeze does before it
   * locks. Started first thing; it gets its configuration when freeze has read it.
   */
  holder: SpawnedHolder | undefined;
  /** A freeze's waiter: the agent's process, which exits with our exit code (src/snapshot/waiter.ts). */
  waiter: Waiter | undefined;
}

async function main({ invocation, holder, waiter }: Start): Promise<number> {
  switch (invocation.kind) {
    case 'hook': {
      const early = holder === undefined ? undefined : new (await import('./snapshot/holderprocess')).HolderProcess(holder);
      return (await import('./snapshot/hook')).runOperation(invocation.operation, { scriptArg: invocation.scriptArg, ...(invocation.agent ? { agent: invocation.agent } : {}), ...(early ? { holder: early } : {}), ...(waiter ? { waiter } : {}) });
    }
    case 'holder':
      return (await import('./snapshot/holder')).runHolder();
    case 'cli':
      return (await import('./commands/cli')).runCli(invocation.args);
    case 'usage':
      process.stderr.write(`${invocation.message}\n`);
      return EXIT.config;
  }
}

/** Started by the executable's main script (src/runtime/seamain.ts), which loads this bundle and says how. */
export function run(start: Start): void {
  recordProgramLoad(start.load);
  // The agent's process exits with our code at once; ours ends in its own time.
  const exit = (code: number): never => {
    start.waiter?.exit(code);
    process.exit(code);
  };
  main(start).then(exit, (error: unknown) => {
    process.stderr.write(`internal error: ${(error as Error)?.message ?? String(error)}\n`);
    exit(EXIT.failure);
  });
}

/** For the build only: see src/runtime/warmup.ts. Loaded on demand, so that no operation initializes its modules. */
export async function warmUp(scratch: string): Promise<void> {
  return (await import('./runtime/warmup')).warmUp(scratch);
}
