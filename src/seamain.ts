/**
 * The single executable's main script: loads the program (src/main.ts, bundled and stored as an asset)
 * with the code cache the build made for it after running its warm-up (src/warmup.ts). Node's own
 * code cache for a main script is made without running it, and so holds only its top level: every
 * function would be compiled at its first call, ~1.7 ms of thaw's way to its signal. Built apart from
 * the program, so that this script is all that Node compiles and caches itself.
 */
import { APP_ASSETS, loadAsset, type AssetLoad } from './packages';

const { exports: program, cacheAccepted, ms } = loadAsset(APP_ASSETS);
(program as { run: (load: AssetLoad) => void }).run({ cacheAccepted, ms });
