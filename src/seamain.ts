/**
 * The single executable's main script: loads the program (src/main.ts, bundled and stored as an asset)
 * with the code cache the build made for it after running its warm-up (src/warmup.ts). Node's own
 * code cache for a main script is made without running it, and so holds only its top level: every
 * function would be compiled at its first call, ~1.7 ms of thaw's way to its signal. Built apart from
 * the program, so that this script is all that Node compiles and caches itself.
 */
import vm = require('node:vm');
import { APP_ASSETS, runScript, wrapScript } from './packages';

const sea = require('node:sea') as { getAsset(key: string, encoding: string): string; getRawAsset(key: string): ArrayBuffer };
const { code, filename } = wrapScript(APP_ASSETS.source, sea.getAsset(APP_ASSETS.source, 'utf8'));
const script = new vm.Script(code, { filename, cachedData: Buffer.from(sea.getRawAsset(APP_ASSETS.cache)) });
(runScript(script, require) as { run: () => void }).run();
