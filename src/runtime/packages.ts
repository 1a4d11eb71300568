/**
 * The runtime libraries (mysql2, pino, commander, proper-lockfile) inside the single executable: each is
 * bundled on its own and stored as an asset of the executable next to a V8 code cache made when it was
 * built (scripts/build.ts), and loaded only by the operations that use it, on first use. So thaw, which
 * needs none of them before it releases the lock, does not pay for them at start-up, and freeze and the
 * holder load mysql2 without compiling it.
 *
 * Outside the executable (the TypeScript build the unit tests run) nothing here is used: the bundler
 * redirects the imports of these packages to loadPackage() only when it builds the executable.
 */
import vm = require('node:vm');

export const PACKAGES = ['mysql2/promise', 'pino', 'commander', 'proper-lockfile'] as const;
export type PackageName = (typeof PACKAGES)[number];

/** How a bundle was loaded: for `doctor` and the benchmark. */
export interface AssetLoad {
  /** false if V8 refused the code cache (another runtime build): the package was compiled instead */
  cacheAccepted: boolean;
  ms: number;
}

/** What a package, or the program itself, was loaded as. */
export interface PackageLoad extends AssetLoad {
  name: PackageName | 'program';
}

const loaded = new Map<PackageName, unknown>();
const loads: PackageLoad[] = [];

/** A bundle stored as an asset of the executable, and the code cache made for it. */
export interface Assets {
  source: string;
  cache: string;
}

/** The asset names of a package: its bundle and its code cache. */
export function assetNames(name: PackageName): Assets {
  const base = name.replace(/[^a-z0-9]+/g, '-');
  return { source: `${base}.cjs`, cache: `${base}.cache` };
}

/**
 * A bundle as one function expression, as CommonJS wraps a module. The code cache is made from, and
 * only matches, exactly this text with this file name: both are made here, for the build and the runtime.
 */
export function wrapScript(asset: string, source: string): { code: string; filename: string } {
  return { code: `(function (exports, require, module) {${source}\n})`, filename: `vmware-mysql-snapshot/${asset}` };
}

/** The program itself (src/main.ts bundled), stored like the packages: see src/runtime/seamain.ts. */
export const APP_ASSETS = { source: 'app.cjs', cache: 'app.cache' } as const;

/** Runs a wrapped bundle; what it exports. `requireBuiltin` serves the Node built-ins it requires. */
export function runScript(script: vm.Script, requireBuiltin: NodeJS.Require): unknown {
  const module = { exports: {} as unknown };
  (script.runInThisContext() as (exports: unknown, require: NodeJS.Require, module: { exports: unknown }) => void)(module.exports, requireBuiltin, module);
  return module.exports;
}

/** Compiles a bundle stored in the executable with its code cache, and runs it. */
export function loadAsset(assets: Assets): { exports: unknown } & AssetLoad {
  const startedAt = process.hrtime.bigint(); // not performance.now(): its module takes ~2 ms to load
  const sea = require('node:sea') as { getAsset(key: string, encoding: string): string; getRawAsset(key: string): ArrayBuffer };
  const { code, filename } = wrapScript(assets.source, sea.getAsset(assets.source, 'utf8'));
  const script = new vm.Script(code, { filename, cachedData: Buffer.from(sea.getRawAsset(assets.cache)) });
  const exports = runScript(script, require);
  return { exports, cacheAccepted: script.cachedDataRejected !== true, ms: Number((process.hrtime.bigint() - startedAt) / 100_000n) / 10 };
}

export function loadPackage(name: PackageName): unknown {
  if (loaded.has(name)) return loaded.get(name);
  const { exports, cacheAccepted, ms } = loadAsset(assetNames(name));
  loaded.set(name, exports);
  loads.push({ name, cacheAccepted, ms });
  return exports;
}

/** Records how the executable's main script loaded the program (src/runtime/seamain.ts). */
export function recordProgramLoad(load: AssetLoad): void {
  loads.unshift({ name: 'program', cacheAccepted: load.cacheAccepted, ms: load.ms });
}

/** The program and the packages this process has loaded so far. */
export function packageLoads(): readonly PackageLoad[] {
  return loads;
}
