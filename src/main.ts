/**
 * The program. What to do is decided by the name we were started under: basename(process.argv0), the
 * symlink's name (process.argv[0] is the real executable). Each branch loads only what it needs.
 */
import path = require('node:path');
import { dispatch } from './dispatch';
import { EXIT } from './errors';
import { recordProgramLoad, type AssetLoad } from './packages';

async function main(): Promise<number> {
  const invocation = dispatch(path.basename(process.argv0), process.argv.slice(2));
  switch (invocation.kind) {
    case 'hook': {
      // A freeze needs a lock holder: a second process, whose start-up overlaps everything freeze
      // does before it locks. Started first thing; it gets its configuration when freeze has read it.
      const holder = invocation.operation === 'freeze' ? (await import('./holderprocess')).HolderProcess.spawn() : undefined;
      return (await import('./hook')).runOperation(invocation.operation, { scriptArg: invocation.scriptArg, ...(holder ? { holder } : {}) });
    }
    case 'holder':
      return (await import('./holder')).runHolder();
    case 'cli':
      return (await import('./cli')).runCli(invocation.args);
    case 'usage':
      process.stderr.write(`${invocation.message}\n`);
      return EXIT.config;
  }
}

/** Started by the executable's main script (src/seamain.ts), which loads this bundle and says how. */
export function run(load: AssetLoad): void {
  recordProgramLoad(load);
  main().then(
    (code) => process.exit(code),
    (error: unknown) => {
      process.stderr.write(`internal error: ${(error as Error)?.message ?? String(error)}\n`);
      process.exit(EXIT.failure);
    },
  );
}

/** For the build only: see src/warmup.ts. Loaded on demand, so that no operation initializes its modules. */
export async function warmUp(scratch: string): Promise<void> {
  return (await import('./warmup')).warmUp(scratch);
}
